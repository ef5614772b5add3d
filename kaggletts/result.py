"""What a run returns: the audio files, the scraps the notebook glued, the executed
notebook and timings; stored as `result.json` beside them (by kaggletts.finish, with the
page) so a repeat is instant."""

from __future__ import annotations

import json
import logging
import os
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kaggletts.errors import BadRecord, DamagedResult, RunFailed
from kaggletts.layout import EXECUTED_NOTEBOOK, RESERVED_NAMES, RESULT_FILE, SHARD_FOLDER
from kaggletts.ledger import (
    Ledger,
    MissingLine,
    ledger_files,
    read_ledger,
    sha256_of,
)
from kaggletts.page import notebook_html
from kaggletts.records import ClipRecord, RunRecord
from kaggletts.words import counted

log = logging.getLogger("kaggletts")

_SHA256 = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class Result:
    job_id: str
    notebook_name: str
    backend: str
    directory: Path
    audio: list[Path]
    scraps: dict[str, Any]
    notebook: Path
    timings: dict[str, float] = field(default_factory=dict)
    status: str = "complete"
    cached: bool = False
    # The job's lines that have no clip (a failed line, a session that ended early), each
    # with its reason: running the same request again speaks only these.
    missing: list[MissingLine] = field(default_factory=list)
    # The scraps' records, read from them: every session's run, one per shard when sharded.
    clips: list[ClipRecord] = field(init=False, repr=False, compare=False)
    run: RunRecord = field(init=False, repr=False, compare=False)
    shards: list[RunRecord] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # Records from a notebook were checked as they came; these names are for result.json.
        clips = [ClipRecord.from_dict(clip, f"clip {number}")
                 for number, clip in enumerate(self.scraps.get("clips", []), 1)]
        run = RunRecord.from_dict(self.scraps.get("run") or {}, "the run")
        shards = [RunRecord.from_dict(shard, f"shard {number}'s run")
                  for number, shard in enumerate(self.scraps.get("shards") or [], 1)]
        object.__setattr__(self, "clips", clips)
        object.__setattr__(self, "run", run)
        object.__setattr__(self, "shards", shards)

    @property
    def runs(self) -> list[RunRecord]:
        """Every session's run: each shard's, or the one run."""
        return self.shards or [self.run]

    def __repr__(self) -> str:
        missing = f", {len(self.missing)} missing" if self.missing else ""
        return (
            f"<Result {self.notebook_name} {self.backend} job {self.job_id}: "
            f"{counted(len(self.clips), 'clip')}{missing}, {self.audio_seconds:.1f}s of audio in "
            f"{self.directory}>"
        )

    def _repr_html_(self) -> str:
        """Jupyter shows the clips with players."""
        return notebook_html(self)

    def to_json(self, **dumps_options: Any) -> str:
        """The result as one JSON document (what `kaggletts run --json` prints)."""
        return json.dumps(self.to_dict(), ensure_ascii=False, **dumps_options)

    def to_dict(self) -> dict[str, Any]:
        """The result as plain data: paths as strings, as stored in result.json."""
        return {
            "job_id": self.job_id,
            "status": self.status,
            "notebook_name": self.notebook_name,
            "backend": self.backend,
            "audio": [str(p) for p in self.audio],
            "scraps": self.scraps,
            "notebook": str(self.notebook),
            "timings": self.timings,
            "missing": [line.to_dict() for line in self.missing],
        }

    def save(self) -> None:
        """Store the result as result.json (kaggletts.finish writes its page first)."""
        write_json_atomic(self.directory / RESULT_FILE, self.to_dict())

    @property
    def audio_seconds(self) -> float:
        """The clips' recorded durations added up; a duration that is no number counts 0."""
        return sum(clip.duration or 0.0 for clip in self.clips)

    @classmethod
    def load(cls, directory: Path, verify: bool = False) -> Result | None:
        """The stored result of a finished job, or None if it never finished. A damaged
        one is as good as none (the job is run again), and a warning says so; `verify`
        checks each clip's sha256 too, not only that it is there at its size."""
        try:
            return cls.read(directory, verify)
        except DamagedResult as damage:
            log.warning("%s; taken as no stored result", damage)
            return None

    @classmethod
    def read(cls, directory: Path, verify: bool = False) -> Result | None:
        """The stored result, None if there is none, or DamagedResult saying what is wrong
        with a result.json that cannot be used."""
        path = directory / RESULT_FILE
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        except (OSError, UnicodeDecodeError) as error:
            raise DamagedResult(f"cannot read {path}: {error}") from None
        try:
            data = json.loads(text)
        except ValueError:
            raise DamagedResult(f"{path} is damaged (not JSON)") from None
        if (problem := _stored_problem(data)) is not None:
            raise DamagedResult(f"{path} is damaged ({problem})")
        audio = [_in_folder(Path(p), directory, data["job_id"]) for p in data["audio"]]
        try:
            result = cls(
                job_id=data["job_id"],
                notebook_name=data["notebook_name"],
                backend=data["backend"],
                directory=directory,
                audio=audio,
                scraps=data["scraps"],
                notebook=Path(data["notebook"]),
                timings=data.get("timings", {}),
                status=data.get("status", "complete"),
                cached=True,
                missing=[
                    MissingLine(m["line"], m["text"], m["reason"])
                    for m in data.get("missing", [])
                ],
            )
        except BadRecord as bad:
            raise DamagedResult(f"{path} is damaged ({bad})") from None
        for clip_path, clip in zip(audio, result.clips, strict=False):
            if not clip_path.is_file() or clip_path.stat().st_size != clip.bytes or (
                verify and sha256_of(clip_path) != clip.sha256
            ):
                raise DamagedResult(f"{clip_path} is gone or changed since {path} was stored")
        return result


def _in_folder(path: Path, directory: Path, job_id: str) -> Path:
    """A stored clip's path in the job's folder as it is now: a folder moved or renamed
    since keeps its clips below the job id."""
    if job_id in path.parts and not path.is_relative_to(directory):
        return directory.resolve().joinpath(*path.parts[path.parts.index(job_id) + 1 :])
    return path


def _stored_problem(data: Any) -> str | None:
    """What makes a stored result unusable, or None."""
    if not isinstance(data, dict):
        return "not a mapping"
    for name in ("job_id", "notebook_name", "backend", "notebook"):
        if not isinstance(data.get(name), str):
            return f"no `{name}`"
    if not isinstance(data.get("audio"), list) or not all(
        isinstance(p, str) for p in data["audio"]
    ):
        return "`audio` is not a list of paths"
    scraps = data.get("scraps")
    if not isinstance(scraps, dict) or not isinstance(scraps.get("clips", []), list):
        return "`scraps` holds no list of clips"
    if not isinstance(scraps.get("shards") or [], list):
        return "`shards` is not a list of runs"
    if not isinstance(data.get("timings", {}), dict) or not isinstance(
        data.get("status", ""), str
    ):
        return "`timings` or `status` has the wrong type"
    missing = data.get("missing", [])
    if not isinstance(missing, list) or not all(
        isinstance(m, dict) and isinstance(m.get("line"), int)
        and isinstance(m.get("text"), str) and isinstance(m.get("reason"), str)
        for m in missing
    ):
        return "`missing` is not a list of lines"
    return None


def read_scraps(executed_notebook: Path) -> dict[str, Any]:
    """The values the notebook glued with scrapbook, as plain data."""
    import scrapbook

    scraps = scrapbook.read_notebook(str(executed_notebook)).scraps
    return {name: scrap.data for name, scrap in scraps.items()}


def clip_records(
    scraps: dict[str, Any], executed: Path, *, plain: bool = False
) -> list[ClipRecord]:
    """The notebook's `clips` scrap, checked: every entry names a WAV inside the output by
    a relative path that none of kaggletts' own files use, with its size and sha256. The
    names come from the notebook, and from the server for a Kaggle run: never trusted.
    A `plain` notebook (see NotebookSpec) may record none."""
    clips = scraps.get("clips")
    if clips is None and plain:
        return []
    if clips is None:
        raise RunFailed(f"{executed} recorded no `clips` scrap; did the notebook finish?")
    if not isinstance(clips, list):
        raise RunFailed(f"{executed}: the `clips` scrap is not a list")
    records = []
    for number, clip in enumerate(clips, 1):
        where = f"{executed}: clip {number} in the `clips` scrap"
        record = ClipRecord.from_dict(clip, where)
        problem = clip_problem(record)
        if problem:
            raise RunFailed(f"{where} {problem}")
        records.append(record)
    return records


def clip_problem(clip: ClipRecord) -> str | None:
    if not is_clip_name(clip.file):
        return f"names a file kaggletts will not write: {clip.file[:80]!r}"
    return None


def is_clip_name(name: str) -> bool:
    """A relative path to a .wav file, inside the output, clear of kaggletts' own names."""
    return name.lower().endswith(".wav") and is_output_name(name)


def is_output_name(name: str) -> bool:
    """A relative path inside the output, clear of kaggletts' own names."""
    parts = name.split("/")
    return (
        is_safe_name(name)
        and not any(part.startswith(".") for part in parts)
        and parts[0] not in RESERVED_NAMES
        and not SHARD_FOLDER.fullmatch(parts[0])
    )


def is_safe_name(name: str) -> bool:
    """A relative path that stays inside the folder it is written into, on any system."""
    parts = name.split("/")
    return (
        "\\" not in name
        and "\0" not in name
        and all(part not in ("", ".", "..") and len(part) <= 255 for part in parts)
    )


def verify_clip(path: Path, clip: ClipRecord) -> None:
    """Raise unless the file has exactly the bytes and sha256 the notebook recorded."""
    if not path.is_file():
        raise RunFailed(f"missing audio file {path}")
    size = path.stat().st_size
    if size != clip.bytes:
        raise RunFailed(f"{path}: {size} bytes, the notebook recorded {clip.bytes}")
    if sha256_of(path) != clip.sha256:
        raise RunFailed(f"{path}: sha256 differs from what the notebook recorded")


def build_result(
    job_id: str,
    notebook_name: str,
    backend: str,
    directory: Path,
    timings: dict[str, float],
    parts: list[Path] | None = None,
    *,
    plain: bool = False,
    texts: list[str] | None = None,
) -> Result:
    """Read what each part of the job made (one part per shard of a sharded run, else the
    job's folder) and check every clip against its record. Parts with a
    line ledger are read from it, each clip's `file` then relative to the job's folder, and
    `texts` (the job's lines, in order) name the lines that have no clip; a notebook without
    the support code is read from its scraps. A `plain` notebook's run may have no clips."""
    parts = parts or [directory]
    if any(ledger_files(part) for part in parts):
        clips, audio, scraps, missing = _from_ledgers(directory, parts, texts or [])
    else:
        clips, audio, scraps = _from_scraps(parts, plain)
        missing = []
    return Result(
        job_id,
        notebook_name,
        backend,
        directory.resolve(),
        audio,
        {"clips": clips, **scraps},
        (parts[0] / EXECUTED_NOTEBOOK).resolve(),
        timings,
        status="partial" if missing else "complete",
        missing=missing,
    )


def _from_ledgers(
    directory: Path, parts: list[Path], texts: list[str]
) -> tuple[list[dict[str, Any]], list[Path], dict[str, Any], list[MissingLine]]:
    ledger = Ledger()
    runs = []
    for part in parts:
        own = read_ledger(part)
        runs.append(own.runs[-1].to_dict() if own.runs else {})
        ledger.merge(own)
    clips, audio = [], []
    for entry in ledger.spoken:
        assert entry.clip is not None  # a spoken line's entry always has its clip
        problem = clip_problem(entry.clip)
        if problem:
            raise RunFailed(f"line {entry.number} in the ledger of {entry.directory} {problem}")
    for entry in ledger.made:  # a clip gone or changed since is missing: made again
        assert entry.clip is not None
        path = (entry.directory / entry.clip.file).resolve()
        audio.append(path)
        file = path.relative_to(directory.resolve()).as_posix()
        clips.append({**entry.clip.to_dict(), "line": entry.number, "file": file})
    scraps: dict[str, Any] = {"run": next((run for run in runs if run), {})}
    if len(parts) > 1:
        scraps["shards"] = runs
    return clips, audio, scraps, ledger.missing(texts)


def _from_scraps(
    parts: list[Path], plain: bool
) -> tuple[list[dict[str, Any]], list[Path], dict[str, Any]]:
    clips: list[dict[str, Any]] = []
    runs: list[dict[str, Any]] = []
    audio: list[Path] = []
    for part in parts:
        executed = part / EXECUTED_NOTEBOOK
        scraps = read_scraps(executed)
        for clip in clip_records(scraps, executed, plain=plain):
            path = (part / clip.file).resolve()
            verify_clip(path, clip)
            audio.append(path)
            clips.append(clip.to_dict())
        run = scraps.get("run", {})
        RunRecord.from_dict(run, f"{executed}: the `run` scrap")
        runs.append(run)
    found: dict[str, Any] = {"run": runs[0]}
    if len(parts) > 1:
        found["shards"] = runs
    return clips, audio, found


def write_json_atomic(path: Path, data: Any) -> None:
    """Write JSON so that a crash leaves the old file or the new one, never half of one:
    a temporary name of its own (concurrent writers never share one), flushed to disk
    before the rename replaces the old file."""
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            json.dump(data, out, indent=2, ensure_ascii=False)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
