"""Jobs: a content-hashed id per request, a folder per job and a record of its state
written before anything is pushed, so a crashed client can pick its job up again."""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kaggletts.errors import UsageError
from kaggletts.notebook import NotebookSpec
from kaggletts.result import Result, write_json_atomic

RECORD_FILE = "job.json"
DEFAULT_OUTPUT_DIR = "kaggletts-output"


def output_root(output_dir: str | os.PathLike | None) -> Path:
    return Path(output_dir or os.environ.get("KAGGLETTS_OUTPUT") or DEFAULT_OUTPUT_DIR)


def batch_lines(params: dict[str, Any]) -> list[Any]:
    """What a parameter set speaks, in order: `text` first (a batch of one), then
    `utterances`, as the notebooks' support cell reads them."""
    return ([params["text"]] if params.get("text") else []) + list(params.get("utterances", []))


def job_id_for(spec: NotebookSpec, params: dict[str, Any], backend: str) -> str:
    """The same notebook, parameters and backend give the same id, hence the stored result."""
    request = json.dumps(
        {"notebook": spec.sha256, "params": params, "backend": backend},
        sort_keys=True,
        ensure_ascii=False,
        separators=(",", ":"),
    )
    return hashlib.sha256(request.encode("utf-8")).hexdigest()[:16]


@dataclass(frozen=True)
class Job:
    """One request: which notebook with which parameters on which backend, and its folder."""

    id: str
    spec: NotebookSpec
    params: dict[str, Any]
    backend: str
    directory: Path

    @classmethod
    def create(
        cls,
        spec: NotebookSpec,
        params: dict[str, Any],
        backend: str,
        output_dir: str | os.PathLike | None,
    ) -> Job:
        job_id = job_id_for(spec, params, backend)
        directory = (output_root(output_dir) / spec.name / job_id).resolve()
        return cls(job_id, spec, params, backend, directory)

    @property
    def utterance_count(self) -> int:
        return len(batch_lines(self.params))

    @classmethod
    def from_record(cls, directory: Path) -> Job:
        """The job whose record is in `directory`, as it was requested."""
        from kaggletts.notebook import find_notebook

        record = json.loads((directory / RECORD_FILE).read_text(encoding="utf-8"))
        path = record.get("notebook_path")
        spec = find_notebook(path if path and Path(path).is_file() else record["notebook"])
        if record.get("notebook_sha256") not in (None, spec.sha256):
            raise UsageError(
                f"job {record['job_id']}'s notebook {spec.path} has changed since the job was "
                "recorded; run the request again instead"
            )
        return cls(record["job_id"], spec, record["params"], record["backend"], directory)

    def stored_result(self) -> Result | None:
        return Result.load(self.directory)

    def read_record(self) -> dict[str, Any]:
        try:
            return json.loads((self.directory / RECORD_FILE).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}

    def write_record(self, **changes: Any) -> dict[str, Any]:
        """Merge `changes` into the job record on disk, atomically, and return it."""
        self.directory.mkdir(parents=True, exist_ok=True)
        record = self.read_record() or {
            "job_id": self.id,
            "notebook": self.spec.name,
            "notebook_path": str(self.spec.path),
            "notebook_sha256": self.spec.sha256,
            "backend": self.backend,
            "params": self.params,
            "created": time.time(),
        }
        record.update(changes, updated=time.time())
        write_json_atomic(self.directory / RECORD_FILE, record)
        return record


def find_job(job_id: str, output_dir: str | os.PathLike | None = None) -> Job:
    """A recorded job by its id or a unique prefix of it."""
    matches = [r for r in list_records(output_dir) if r["job_id"].startswith(job_id)]
    if len(matches) != 1:
        found = "no job" if not matches else f"{len(matches)} jobs"
        raise UsageError(
            f"{found} under {output_root(output_dir)} matches {job_id!r}; "
            "`kaggletts jobs` lists them"
        )
    return Job.from_record(Path(matches[0]["directory"]))


def list_records(output_dir: str | os.PathLike | None = None) -> list[dict[str, Any]]:
    """Every job record under the output folder, newest first."""
    records = []
    for path in output_root(output_dir).glob(f"*/*/{RECORD_FILE}"):
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        record["directory"] = str(path.parent.resolve())
        records.append(record)
    return sorted(records, key=lambda r: r.get("updated", 0), reverse=True)
