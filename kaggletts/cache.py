"""The line cache: every verified clip, kept by everything that makes its audio, so that a
line once spoken is never paid for again, in this request or any later one.

A line's key is the sha256 of: the notebook's own bytes (its code, the support module's
copy in it, its defaults), the backend and the run options that change the audio (the
machine shape, say), every setting of the request but the batch itself and the ones that
only place or time it, the line (its text and its own settings), and the bytes of every
local reference file it names. Every notebook setting is in the key, the seed included: a
notebook with a fixed seed speaks a line alike each time, and a change to any setting is a
new key. The cache lives in the user's cache folder (or $KAGGLETTS_CACHE_DIR), holds at
most `max_bytes` (the least recently used clips go first) and is shown and cleared by
`kaggletts cache`."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kaggletts import environment
from kaggletts.jobs import Job, batch_lines
from kaggletts.kernel import support
from kaggletts.layout import LEDGER_FILE
from kaggletts.ledger import read_ledger
from kaggletts.result import Result, sha256_of

log = logging.getLogger("kaggletts")
DEFAULT_MAX_BYTES = 5 * 1024**3
# Settings that place or time a run, or number its lines: none changes a line's audio.
_NOT_IN_KEY = frozenset(
    {"text", "utterances", "line_numbers", "line_count", "deadline", "output_dir"}
)
# Run options that say where and as whom a job ran, not what it sounds like.
_IDENTITY_NOT_IN_KEY = frozenset({"endpoint", "account", "shards"})


@dataclass(frozen=True)
class CacheStats:
    directory: Path
    clips: int
    bytes: int
    max_bytes: int


class LineCache:
    def __init__(self, directory: Path | None = None, max_bytes: int = DEFAULT_MAX_BYTES):
        self.directory = directory or default_directory()
        self.max_bytes = max_bytes

    def key(self, job: Job, line: Any) -> str:
        settings = {k: v for k, v in job.params.items() if k not in _NOT_IN_KEY}
        identity = {k: v for k, v in job.identity.items() if k not in _IDENTITY_NOT_IN_KEY}
        material = {
            "notebook": job.spec.sha256,
            "backend": job.backend,
            "identity": identity,
            "settings": settings,
            "line": line,
            "files": _file_hashes(job, [settings, line]),
        }
        text = json.dumps(material, sort_keys=True, ensure_ascii=False, default=str)
        return hashlib.sha256(text.encode("utf-8")).hexdigest()

    def fill(self, job: Job) -> list[int]:
        """Put every line of the job that the cache holds, and that no ledger in the job's
        folder has yet, into the folder under its name in this job and into the ledger
        there, as spoken and reused; returns their numbers."""
        lines = batch_lines(job.params)
        out_dir = job.params.get("output_dir") or "."
        spoken = {entry.number for entry in read_ledger(job.directory).made}
        reused = []
        ledger = support.Ledger(job.directory / LEDGER_FILE)
        for number, line in enumerate(lines, 1):
            if number in spoken:
                continue
            found = self._lookup(self.key(job, line))
            if found is None:
                continue
            record, audio = found
            utterance = {"text": support.line_text(line)}
            if isinstance(line, dict) and line.get("name"):
                utterance["name"] = line["name"]
            name = support.clip_path(out_dir, number, utterance, len(lines)).as_posix()
            target = job.directory / name
            try:
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(audio, target)
            except OSError as error:
                # The run itself meets a folder that takes no more files, and says so.
                log.debug("line cache: %s not copied: %s", name, error)
                break
            ledger.add("line", **{**record, "line": number, "status": "spoken", "file": name,
                                  "reused": True})
            reused.append(number)
        return reused

    def store(self, job: Job, result: Result) -> int:
        """Keep every clip of `result` that was made, not reused; returns how many."""
        lines = batch_lines(job.params)
        kept = 0
        for clip, audio in zip(result.clips, result.audio, strict=True):
            number = clip.line
            if clip.reused or number is None or number > len(lines):
                continue
            key = self.key(job, lines[number - 1])
            record = {
                k: v for k, v in clip.to_dict().items() if k not in ("line", "file", "reused")
            }
            folder = self.directory / key[:2]
            folder.mkdir(parents=True, exist_ok=True)
            temporary = folder / f".{key}.{os.getpid()}.tmp"
            shutil.copyfile(audio, temporary)
            os.replace(temporary, folder / f"{key}.wav")
            temporary = folder / f".{key}.{os.getpid()}.json.tmp"
            temporary.write_text(json.dumps(record, ensure_ascii=False), encoding="utf-8")
            os.replace(temporary, folder / f"{key}.json")
            kept += 1
        self.prune()
        return kept

    def _lookup(self, key: str) -> tuple[dict[str, Any], Path] | None:
        """The record and audio kept under `key`, checked against each other."""
        folder = self.directory / key[:2]
        audio, record_file = folder / f"{key}.wav", folder / f"{key}.json"
        try:
            record = json.loads(record_file.read_text(encoding="utf-8"))
            intact = (
                isinstance(record, dict)
                and audio.stat().st_size == record.get("bytes")
                and sha256_of(audio) == record.get("sha256")
            )
        except (OSError, ValueError):
            return None
        if not intact:
            return None
        now = time.time()
        os.utime(audio, (now, now))  # recently used: pruned last
        return record, audio

    def stats(self) -> CacheStats:
        clips = list(self.directory.glob("*/*.wav"))
        return CacheStats(
            self.directory, len(clips), sum(p.stat().st_size for p in clips), self.max_bytes
        )

    def prune(self) -> None:
        """Drop the least recently used clips until the cache fits `max_bytes`."""
        clips = sorted(self.directory.glob("*/*.wav"), key=lambda p: p.stat().st_mtime)
        size = sum(p.stat().st_size for p in clips)
        for audio in clips:
            if size <= self.max_bytes:
                break
            size -= audio.stat().st_size
            audio.unlink(missing_ok=True)
            audio.with_suffix(".json").unlink(missing_ok=True)

    def clear(self) -> int:
        count = self.stats().clips
        shutil.rmtree(self.directory, ignore_errors=True)
        return count


def default_directory() -> Path:
    import platformdirs

    configured = environment.cache_dir()
    if configured:
        return configured
    return platformdirs.user_cache_path("kaggletts", appauthor=False) / "lines"


def _file_hashes(job: Job, sources: list[Any]) -> dict[str, str]:
    """The sha256 of every local file a setting of the job names among `sources`."""
    hashes = {}
    for source in sources:
        if not isinstance(source, dict):
            continue
        for name in job.spec.input_files:
            value = source.get(name)
            if isinstance(value, str) and value and Path(value).is_file():
                hashes[value] = sha256_of(Path(value))
    return hashes
