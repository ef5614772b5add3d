"""Jobs: a content-hashed id per request, a folder per job, a typed record of its state
written before anything is pushed (so a crashed client can pick its job up again), and a
lock so that one process at a time drives a job."""

from __future__ import annotations

import dataclasses
import errno
import hashlib
import json
import logging
import os
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from kaggletts.errors import CannotWrite, CorruptRecord, KaggleTTSError, UsageError, summary
from kaggletts.kernel import support
from kaggletts.layout import DEFAULT_OUTPUT_DIR, LOCK_FILE, RECORD_FILE
from kaggletts.notebook import NotebookSpec, find_notebook
from kaggletts.result import Result, write_json_atomic


class JobState(StrEnum):
    PLANNED = "planned"
    RUNNING = "running"
    COMPLETE = "complete"
    # Ended with some lines spoken and others missing; the same request speaks the rest.
    PARTIAL = "partial"
    FAILED = "failed"
    # Stopped watching, by Ctrl-C or SIGTERM; whatever ran on Kaggle goes on unwatched.
    INTERRUPTED = "interrupted"
    # Lost touch with Kaggle past the retries; the run goes on there.
    DETACHED = "detached"
    CANCELLED = "cancelled"


# The errors of a folder that takes no more files.
UNWRITABLE = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS})


def output_root(output_dir: str | os.PathLike | None) -> Path:
    """`output_dir`, as the settings (which read $KAGGLETTS_OUTPUT) or the caller chose it."""
    return Path(output_dir or DEFAULT_OUTPUT_DIR)


def batch_lines(params: dict[str, Any]) -> list[Any]:
    """What a parameter set speaks, in order, read as the notebooks read it."""
    return support.batch_items(params.get("text"), params.get("utterances", []))


def line_texts(params: dict[str, Any]) -> list[str]:
    return [support.line_text(line) for line in batch_lines(params)]


def params_for_lines(params: dict[str, Any], numbers: list[int]) -> dict[str, Any]:
    """The parameters (a job's, or a part's with its own `line_numbers`) that speak only the
    job's lines `numbers` (counted from 1), each under its number in the whole job, so its
    clip keeps the name it has there."""
    lines = batch_lines(params)
    own = params.get("line_numbers") or range(1, len(lines) + 1)
    by_number = dict(zip(own, lines, strict=True))
    part = {name: value for name, value in params.items() if name != "text"}
    part.update(
        utterances=[by_number[number] for number in numbers],
        line_numbers=list(numbers),
        line_count=params.get("line_count") or len(lines),
    )
    return part


def line_numbers_of(params: dict[str, Any]) -> list[int]:
    """The job-wide numbers of the lines a parameter set (a job's or a part's) speaks."""
    return list(params.get("line_numbers") or range(1, len(batch_lines(params)) + 1))


def job_id_for(
    spec: NotebookSpec, params: dict[str, Any], backend: str, identity: dict[str, Any]
) -> str:
    """The same notebook, parameters, backend and run identity (for Kaggle: the endpoint,
    the account and every option that changes the run) give the same id, hence the stored
    result; anything else is another job."""
    request: dict[str, Any] = {"notebook": spec.sha256, "params": params, "backend": backend}
    if identity:
        request["identity"] = identity
    text = json.dumps(request, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


@dataclass
class JobRecord:
    """`job.json`: what was asked, where, and how far it got. `run` belongs to the backend
    (the Kaggle backend keeps its sessions there)."""

    job_id: str
    notebook: str
    notebook_path: str
    notebook_sha256: str
    backend: str
    params: dict[str, Any]
    identity: dict[str, Any] = field(default_factory=dict)
    state: JobState = JobState.PLANNED
    error: str | None = None
    created: float = field(default_factory=time.time)
    updated: float = field(default_factory=time.time)
    run: dict[str, Any] = field(default_factory=dict)

    @property
    def lines(self) -> list[Any]:
        return batch_lines(self.params)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Any, where: Path) -> JobRecord:
        names = {f.name for f in dataclasses.fields(cls)}
        required = {"job_id", "notebook", "notebook_path", "notebook_sha256", "backend", "params"}
        if not isinstance(data, dict) or not required <= data.keys():
            raise CorruptRecord(f"{where} is not a kaggletts job record")
        try:
            record = cls(**{k: v for k, v in data.items() if k in names})
            record.state = JobState(record.state)
        except (TypeError, ValueError):
            raise CorruptRecord(f"{where} is not a kaggletts job record") from None
        if not isinstance(record.params, dict) or not isinstance(record.run, dict):
            raise CorruptRecord(f"{where} is not a kaggletts job record")
        return record


@dataclass(frozen=True)
class Job:
    """One request: which notebook with which parameters on which backend, and its folder."""

    id: str
    spec: NotebookSpec
    params: dict[str, Any]
    backend: str
    directory: Path
    identity: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def create(
        cls,
        spec: NotebookSpec,
        params: dict[str, Any],
        backend: str,
        output_dir: str | os.PathLike | None,
        identity: dict[str, Any] | None = None,
    ) -> Job:
        identity = identity or {}
        job_id = job_id_for(spec, params, backend, identity)
        directory = (output_root(output_dir) / spec.name / job_id).resolve()
        return cls(job_id, spec, params, backend, directory, identity)

    @property
    def utterance_count(self) -> int:
        return len(batch_lines(self.params))

    @classmethod
    def from_record(cls, directory: Path) -> Job:
        """The job whose record is in `directory`, as it was requested."""
        record = read_record_file(directory / RECORD_FILE)
        if record is None:
            raise UsageError(f"no job record in {directory}")
        path = record.notebook_path
        spec = find_notebook(path if path and Path(path).is_file() else record.notebook)
        if record.notebook_sha256 != spec.sha256:
            raise UsageError(
                f"job {record.job_id}'s notebook {spec.path} has changed since the job was "
                "recorded; run the request again instead"
            )
        return cls(record.job_id, spec, record.params, record.backend, directory, record.identity)

    def stored_result(self, verify: bool = False) -> Result | None:
        return Result.load(self.directory, verify)

    def read_record(self) -> JobRecord | None:
        """The record on disk; None when the job was never recorded. A record that cannot
        be read raises CorruptRecord: guessing its contents could push a job twice."""
        return read_record_file(self.directory / RECORD_FILE)

    def new_record(self) -> JobRecord:
        return JobRecord(
            job_id=self.id,
            notebook=self.spec.name,
            notebook_path=str(self.spec.path),
            notebook_sha256=self.spec.sha256,
            backend=self.backend,
            params=self.params,
            identity=self.identity,
        )

    def make_folder(self) -> None:
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise CannotWrite(self.directory, error) from None

    @contextmanager
    def failing_on_error(self) -> Iterator[None]:
        """What stops a run other than a kaggletts error (which records its own outcome)
        fails the job on its record, rather than leaving it `running` with nothing running
        (what a Kaggle session made stays there to collect): a file of the run that cannot
        be written (a full disk, a read-only folder) as one clear CannotWrite, anything
        else (a bug) raised as it is, its type and message recorded."""
        try:
            yield
        except KaggleTTSError:
            raise
        except OSError as error:
            if error.errno not in UNWRITABLE:
                self._record_failure(error)
                raise
            failure = CannotWrite(Path(error.filename or self.directory), error)
            self.update_record(state=JobState.FAILED, error=str(failure))
            raise failure from error
        except Exception as error:
            self._record_failure(error)
            raise

    def _record_failure(self, error: Exception) -> None:
        try:
            self.update_record(state=JobState.FAILED, error=summary(error))
        except KaggleTTSError as unrecorded:
            error.add_note(f"the job record does not say so: {unrecorded}")

    def empty_folder(self) -> None:
        """Remove a forced job's old files, so that a new run's outputs are not mixed with
        the last one's; the lock file stays, since this process holds it."""
        if not self.directory.is_dir():
            return
        for entry in self.directory.iterdir():
            if entry.name == LOCK_FILE:
                continue
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()

    def write_record(self, record: JobRecord) -> JobRecord:
        """Store `record` atomically (a crash leaves the old record or the new one). On a
        full disk the old record's own space is reused, written over in place: a record
        that says `running` after its run stopped would be worse than the small risk."""
        self.make_folder()
        path = self.directory / RECORD_FILE
        if not path.exists():
            _remember(self.directory)
        record.updated = time.time()
        try:
            write_json_atomic(path, record.to_dict())
        except OSError as error:
            if error.errno != errno.ENOSPC or not path.is_file():
                raise CannotWrite(path, error) from None
            try:
                path.write_text(json.dumps(record.to_dict(), ensure_ascii=False), encoding="utf-8")
            except OSError:
                raise CannotWrite(path, error) from None
        return record

    def update_record(self, **changes: Any) -> JobRecord:
        """Merge `changes` into the record (a new one if there is none) and store it."""
        record = self.read_record() or self.new_record()
        for name, value in changes.items():
            setattr(record, name, value)
        return self.write_record(record)

    @contextmanager
    def driving(self) -> Iterator[None]:
        """Hold the job's locks while this process drives it: its folder's, and the user's
        lock of the job, whatever the output folder (the job id names its kernels, so two
        folders of one request would push one kernel twice). A second process with the
        same request waits here, then finds the first one's result."""
        import filelock

        self.make_folder()
        user_lock = job_lock_path(self.id)
        user_lock.parent.mkdir(parents=True, exist_ok=True)
        locks = [filelock.FileLock(self.directory / LOCK_FILE), filelock.FileLock(user_lock)]
        taken: list[filelock.BaseFileLock] = []
        try:
            for lock in locks:
                try:
                    lock.acquire(timeout=0)
                except filelock.Timeout:
                    logging.getLogger("kaggletts").info(
                        "job %s is being run by another process; waiting for it", self.id
                    )
                    lock.acquire()
                taken.append(lock)
            yield
        finally:
            for held in reversed(taken):
                held.release()


def job_lock_path(job_id: str) -> Path:
    """The user's lock of one job, in the user's data directory beside the job index."""
    return job_index_path().parent / "locks" / f"{job_id}.lock"


def read_record_file(path: Path) -> JobRecord | None:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError as error:
        raise CorruptRecord(f"cannot read {path}: {error.strerror}") from None
    try:
        data = json.loads(text)
    except ValueError:
        raise CorruptRecord(f"{path} is damaged (not JSON)") from None
    return JobRecord.from_dict(data, path)


@dataclass(frozen=True)
class RecordedJob:
    record: JobRecord
    directory: Path


def find_job(job_id: str | None, output_dir: str | os.PathLike | None = None) -> Job:
    """A recorded job by its id or a unique prefix of it; None takes the latest. When only
    a damaged record matches, its damage is the answer. An id recorded in several folders
    (the same request run with another --out) is the newest of them, and the log says
    where the others are."""
    log = logging.getLogger("kaggletts")
    where = output_root(output_dir) if output_dir else "the recorded jobs"
    recorded = list_jobs(output_dir)
    if job_id is None:
        if not recorded:
            recorded_where = f"in {where}" if output_dir else "recorded"
            raise UsageError(f"no job {recorded_where} yet; `kaggletts run` makes one")
        log.info("the latest job: %s", recorded[0].record.job_id)
        return Job.from_record(recorded[0].directory)
    if not job_id.strip():
        raise UsageError("no job id given; `kaggletts jobs` lists them")
    matches = [j for j in recorded if j.record.job_id.startswith(job_id)]
    if not matches:
        for folder in _job_folders(output_dir):
            if folder.name.startswith(job_id):
                read_record_file(folder / RECORD_FILE)  # raises CorruptRecord, saying how
        raise UsageError(f"no job in {where} matches {job_id!r}; `kaggletts jobs` lists them")
    ids = sorted({j.record.job_id for j in matches})
    if len(ids) > 1:
        raise UsageError(
            f"{len(ids)} jobs in {where} match {job_id!r} ({', '.join(ids[:5])}); give more "
            "of the id"
        )
    newest, *others = matches
    for other in others:
        log.info("job %s is also recorded in %s; taking the newest, in %s",
                 newest.record.job_id, other.directory, newest.directory)
    return Job.from_record(newest.directory)


def list_jobs(output_dir: str | os.PathLike | None = None) -> list[RecordedJob]:
    """Every readable job under `output_dir`, newest first; without one, under the default
    output folder and wherever else jobs were recorded (the index). Damaged records are
    skipped here (`kaggletts status` on them says what is wrong)."""
    jobs = []
    for folder in _job_folders(output_dir):
        try:
            record = read_record_file(folder / RECORD_FILE)
        except CorruptRecord:
            continue
        if record is not None and folder.name == record.job_id:
            jobs.append(RecordedJob(record, folder))
    return sorted(jobs, key=lambda j: j.record.updated, reverse=True)


def _job_folders(output_dir: str | os.PathLike | None) -> set[Path]:
    folders = {p.parent.resolve() for p in output_root(output_dir).glob(f"*/*/{RECORD_FILE}")}
    if output_dir is None:
        folders |= set(_indexed_folders())
    return folders


def job_index_path() -> Path:
    """Where every job folder is listed, so `kaggletts jobs` finds jobs whatever `--out`
    they used: a line per folder in the user's data directory."""
    import platformdirs

    return platformdirs.user_data_path("kaggletts", appauthor=False) / "jobs.txt"


def _remember(folder: Path) -> None:
    try:
        index = job_index_path()
        index.parent.mkdir(parents=True, exist_ok=True)
        with index.open("a", encoding="utf-8") as out:
            out.write(f"{folder}\n")
    except OSError as error:
        logging.getLogger("kaggletts").debug("job index not written: %s", error)


def _indexed_folders() -> list[Path]:
    try:
        lines = job_index_path().read_text(encoding="utf-8").splitlines()
    except OSError:
        return []
    return [Path(line) for line in dict.fromkeys(lines) if line and Path(line).is_dir()]
