"""What one run of a Kaggle job carries from step to step; the backend (its options and
waits) stays as it is, the state of this run lives here."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from kaggletts.backends.kaggle.quota import QuotaGate
from kaggletts.backends.kaggle.records import KaggleRun, RunStore, Shard, ShardState
from kaggletts.backends.kaggle.remote import KaggleRemote
from kaggletts.jobs import Job

if TYPE_CHECKING:
    from kaggletts.backends.kaggle.backend import KaggleBackend


@dataclass
class RunContext:
    job: Job
    remote: KaggleRemote
    store: RunStore
    run: KaggleRun
    backend: KaggleBackend
    # Unix time after which the notebook starts no new line (injected into the run).
    deadline: float
    stop: threading.Event = field(default_factory=threading.Event)
    quota: QuotaGate = field(default_factory=QuotaGate)

    def move(self, shard: Shard, to: ShardState, **fields: object) -> Shard:
        return self.store.move(self.run, shard, to, **fields)

    def pause(self, seconds: float) -> None:
        """Wait up to `seconds`, less if the run is stopped meanwhile."""
        self.stop.wait(seconds)

    def time_left(self, until: float) -> float:
        return max(until - time.time(), 0.0)
