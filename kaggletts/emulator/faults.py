"""Deterministic fault injection: random faults at a rate, plus forced faults for targeted tests."""

from __future__ import annotations

import random
import threading
from collections import defaultdict, deque

from .config import Faults

DOWNLOAD = "download"
UPLOAD = "upload"
LOGS_STREAM = "LogsStream"
SAVE_KERNEL = "SaveKernel"
# A push answered 500 that left the kernel, with its title but no code (kaggle-api #122).
EMPTY_KERNEL = "empty-kernel"
# Which kinds apply where: a truncated body needs a streamed file, and a reply can only be
# lost after handling when the handler has effects worth keeping (an API call, an upload
# chunk). A log stream takes only the faults that happen before it starts.
BEFORE_KINDS = frozenset({"500", "502", "503", "429", "drop"})
DOWNLOAD_KINDS = BEFORE_KINDS | {"truncate"}
API_KINDS = BEFORE_KINDS | {"lost-reply"}
UPLOAD_KINDS = API_KINDS
SAVE_KERNEL_KINDS = API_KINDS | {EMPTY_KERNEL}
LOGS_STREAM_KINDS = BEFORE_KINDS


def kinds_for(method: str) -> frozenset[str]:
    """The fault kinds that can really happen to requests of `method`."""
    if method == DOWNLOAD:
        return DOWNLOAD_KINDS
    if method == UPLOAD:
        return UPLOAD_KINDS
    if method == LOGS_STREAM:
        return LOGS_STREAM_KINDS
    if method == SAVE_KERNEL:
        return SAVE_KERNEL_KINDS
    return API_KINDS


class FaultInjector:
    def __init__(self, faults: Faults, seed: int | None):
        self._lock = threading.Lock()
        self._faults = faults
        self._random = random.Random(seed)
        self._forced: dict[str, deque[str]] = defaultdict(deque)

    @property
    def faults(self) -> Faults:
        return self._faults

    @faults.setter
    def faults(self, faults: Faults) -> None:
        with self._lock:
            self._faults = faults

    def force(self, method: str, kind: str, times: int = 1) -> None:
        applicable = kinds_for(method)
        if kind not in applicable:
            raise ValueError(
                f"fault kind {kind!r} does not apply to {method}; choose from {sorted(applicable)}"
            )
        with self._lock:
            self._forced[method].extend([kind] * times)

    def clear(self) -> None:
        with self._lock:
            self._forced.clear()

    def draw(self, method: str) -> str | None:
        """The fault to inject into this request of `method`, if any."""
        applicable = kinds_for(method)
        with self._lock:
            forced = self._forced.get(method)
            if forced:
                return forced.popleft()
            kinds = [kind for kind in self._faults.kinds if kind in applicable]
            if not kinds or self._faults.rate <= 0:
                return None
            # Always consume the same draws so one seed gives one fault sequence.
            hit = self._random.random() < self._faults.rate
            kind = self._random.choice(kinds)
            return kind if hit else None
