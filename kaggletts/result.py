"""What a run returns: the audio files, the scraps the notebook glued, the executed
notebook and timings; stored as `result.json` beside them so a repeat is instant."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kaggletts.errors import RunFailed

EXECUTED_NOTEBOOK = "__notebook__.ipynb"
RESULT_FILE = "result.json"


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

    @property
    def clips(self) -> list[dict[str, Any]]:
        return self.scraps.get("clips", [])

    def to_json(self) -> dict[str, Any]:
        return {
            "job_id": self.job_id,
            "status": self.status,
            "notebook_name": self.notebook_name,
            "backend": self.backend,
            "audio": [str(p) for p in self.audio],
            "scraps": self.scraps,
            "notebook": str(self.notebook),
            "timings": self.timings,
        }

    def save(self) -> None:
        write_json_atomic(self.directory / RESULT_FILE, self.to_json())

    @classmethod
    def load(cls, directory: Path) -> Result | None:
        """The stored result of a finished job, or None if it never finished."""
        try:
            data = json.loads((directory / RESULT_FILE).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return cls(
            job_id=data["job_id"],
            notebook_name=data["notebook_name"],
            backend=data["backend"],
            directory=directory,
            audio=[Path(p) for p in data["audio"]],
            scraps=data["scraps"],
            notebook=Path(data["notebook"]),
            timings=data.get("timings", {}),
            status=data.get("status", "complete"),
            cached=True,
        )


def read_scraps(executed_notebook: Path) -> dict[str, Any]:
    """The values the notebook glued with scrapbook, as plain data."""
    import scrapbook

    scraps = scrapbook.read_notebook(str(executed_notebook)).scraps
    return {name: scrap.data for name, scrap in scraps.items()}


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verify_clip(path: Path, clip: dict[str, Any]) -> None:
    """Raise unless the file has exactly the bytes and sha256 the notebook recorded."""
    if not path.is_file():
        raise RunFailed(f"missing audio file {path}")
    size = path.stat().st_size
    if size != clip["bytes"]:
        raise RunFailed(f"{path}: {size} bytes, the notebook recorded {clip['bytes']}")
    if sha256_of(path) != clip["sha256"]:
        raise RunFailed(f"{path}: sha256 differs from what the notebook recorded")


def build_result(
    job_id: str,
    notebook_name: str,
    backend: str,
    directory: Path,
    timings: dict[str, float],
    parts: list[Path] | None = None,
) -> Result:
    """Read the scraps of each executed notebook (one per part of a sharded run, else the
    one in `directory`), check every clip against its record, and store the result."""
    parts = parts or [directory]
    clips: list[dict[str, Any]] = []
    runs: list[dict[str, Any]] = []
    audio: list[Path] = []
    for part in parts:
        executed = part / EXECUTED_NOTEBOOK
        scraps = read_scraps(executed)
        if "clips" not in scraps:
            raise RunFailed(f"{executed} recorded no `clips` scrap; did the notebook finish?")
        for clip in scraps["clips"]:
            path = (part / clip["file"]).resolve()
            if part.resolve() not in path.parents:
                raise RunFailed(f"the notebook named a file outside its output: {clip['file']!r}")
            verify_clip(path, clip)
            audio.append(path)
        clips += scraps["clips"]
        runs.append(scraps.get("run", {}))
    scraps = {"clips": clips, "run": runs[0]}
    if len(parts) > 1:
        scraps["shards"] = runs
    result = Result(
        job_id,
        notebook_name,
        backend,
        directory.resolve(),
        audio,
        scraps,
        (parts[0] / EXECUTED_NOTEBOOK).resolve(),
        timings,
    )
    result.save()
    return result


def write_json_atomic(path: Path, data: Any) -> None:
    """Write JSON so that a crash leaves the old file or the new one, never half of one."""
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(json.dumps(data, indent=2, ensure_ascii=False), encoding="utf-8")
    temporary.replace(path)
