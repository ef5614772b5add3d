"""The Kaggle part of a job record: one shard per kernel session, each a small state
machine whose every step is written to disk before it is taken.

A shard's push goes to a kernel slug of its own (job id, shard, attempt), so "did my push
land?" is "does this kernel exist?", a question Kaggle's public API answers; nothing
depends on metadata Kaggle may or may not keep, or on a session id it never sends."""

from __future__ import annotations

import dataclasses
import threading
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from kaggletts.errors import CancelledElsewhere, CorruptRecord
from kaggletts.jobs import Job, JobRecord, JobState


class ShardState(StrEnum):
    PLANNED = "planned"  # recorded; nothing pushed for this attempt
    PUSHING = "pushing"  # a push may be in flight: find out whether it landed before another
    PUSHED = "pushed"  # Kaggle took it: the session is queued, running or over
    COMPLETE = "complete"  # the session ended well; outputs not yet downloaded
    DOWNLOADED = "downloaded"  # outputs downloaded and verified
    FAILED = "failed"  # the notebook failed on Kaggle, or its outputs are unusable
    REJECTED = "rejected"  # Kaggle refused the push
    STOPPED = "stopped"  # cancelled on Kaggle by its session id, or its kernel deleted


TRANSITIONS: dict[ShardState, frozenset[ShardState]] = {
    # A planned shard may step to a later attempt before it is pushed.
    ShardState.PLANNED: frozenset({ShardState.PLANNED, ShardState.PUSHING}),
    ShardState.PUSHING: frozenset({ShardState.PUSHED, ShardState.PLANNED, ShardState.REJECTED}),
    ShardState.PUSHED: frozenset({ShardState.COMPLETE, ShardState.FAILED, ShardState.STOPPED}),
    ShardState.COMPLETE: frozenset({ShardState.DOWNLOADED}),
    # A session that ended with lines missing: the same request pushes those again.
    ShardState.DOWNLOADED: frozenset({ShardState.PLANNED}),
    # A failed attempt is run again only by a new request for the same job, as a new attempt.
    ShardState.FAILED: frozenset({ShardState.PLANNED}),
    ShardState.REJECTED: frozenset({ShardState.PLANNED}),
    ShardState.STOPPED: frozenset({ShardState.PLANNED}),
}
# States in which a session of the shard may still be queued or running on Kaggle.
MAY_RUN = frozenset({ShardState.PUSHING, ShardState.PUSHED})
ENDED_BADLY = frozenset({ShardState.FAILED, ShardState.REJECTED, ShardState.STOPPED})


class BadTransition(RuntimeError):
    """A bug: the backend tried a step its state machine does not allow."""


@dataclass
class Shard:
    index: int
    slug_stem: str
    params: dict[str, Any]
    directory: str
    attempt: int = 1
    state: ShardState = ShardState.PLANNED
    # Where Kaggle's push reply says the attempt's kernel was filed, when that is not the
    # slug pushed (Kaggle derives a new kernel's slug from its title).
    filed_as: str | None = None
    version: int | None = None
    url: str | None = None
    # Known only where Kaggle tells it (real Kaggle does not, as far as is known).
    session_id: int | None = None
    # Unix time of the session's time limit (its injected deadline plus a margin); Kaggle
    # is meant to stop it there, and its kernel is deleted if Kaggle has not.
    ends_by: float | None = None
    error: str | None = None

    @property
    def pushed_slug(self) -> str:
        return f"{self.slug_stem}-{self.attempt}"

    @property
    def slug(self) -> str:
        return self.filed_as or self.pushed_slug

    @property
    def label(self) -> str:
        return f"{self.slug} v{self.version}" if self.version else self.slug


@dataclass
class KaggleRun:
    endpoint: str
    account: str
    shards: list[Shard]
    dataset_sources: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any], job: Job) -> KaggleRun:
        try:
            shards = [Shard(**{**s, "state": ShardState(s["state"])}) for s in data["shards"]]
            return cls(data["endpoint"], data["account"], shards, list(data["dataset_sources"]))
        except (KeyError, TypeError, ValueError):
            raise CorruptRecord(
                f"the Kaggle part of job {job.id}'s record ({job.directory}) is damaged"
            ) from None

    def may_run(self) -> list[Shard]:
        return [s for s in self.shards if s.state in MAY_RUN]


class RunStore:
    """The one place a Kaggle run's record changes: every change is checked against the
    state machine and written through before the step it records is taken. Threads of
    one process share it; other processes are kept out by the job's lock, except
    `kaggletts cancel`, which stops a job whoever drives it: once it has marked the job
    cancelled, the driving process writes nothing over that (CancelledElsewhere)."""

    def __init__(self, job: Job):
        self.job = job
        self._lock = threading.Lock()
        self._record: JobRecord | None = None

    def load(self) -> KaggleRun | None:
        """The recorded run, or None when the job has no Kaggle run yet. A damaged record
        raises CorruptRecord; saving afterwards starts the record anew."""
        with self._lock:
            self._record = None
            record = self.job.read_record()
            self._record = record or self.job.new_record()
            if record is None or not record.run:
                return None
            return KaggleRun.from_dict(record.run, self.job)

    def save(self, run: KaggleRun, state: JobState | None = None, error: str | None = None) -> None:
        with self._lock:
            self._write(run, state, error)

    def move(self, run: KaggleRun, shard: Shard, to: ShardState, **fields: Any) -> Shard:
        """Take `shard` to state `to`, with `fields` changed, and store the run."""
        with self._lock:
            if to not in TRANSITIONS[shard.state]:
                raise BadTransition(f"{shard.slug}: {shard.state} -> {to}")
            shard.state = to
            for name, value in fields.items():
                setattr(shard, name, value)
            self._write(run, None, None)
            return shard

    def _write(self, run: KaggleRun, state: JobState | None, error: str | None) -> None:
        record = self._record or self.job.new_record()
        try:
            stored = self.job.read_record()
        except CorruptRecord:
            stored = None  # written anew below
        if (
            stored is not None
            and stored.state is JobState.CANCELLED
            and stored.updated > record.updated
        ):
            self._record = stored
            raise CancelledElsewhere(
                f"job {self.job.id} was cancelled by another kaggletts process "
                f"(kaggletts cancel): {stored.error or 'cancelled'}"
            )
        record.run = run.to_dict()
        if state is not None:
            record.state, record.error = state, error
        self._record = self.job.write_record(record)
