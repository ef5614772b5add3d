"""What a user chooses of a Kaggle run, as typed values: set on the command line, in the
Python API, in a settings file or a KAGGLETTS_* variable, each parsed once where it
enters (a duration into seconds) and carried as that value to the backend. A plain
module: the settings build these without loading the backend's machinery."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any


@dataclass(frozen=True)
class KernelOptions:
    """Overrides of a notebook's own kernel settings (its metadata `kaggletts.kernel`)."""

    machine_shape: str | None = None
    enable_internet: bool | None = None
    is_private: bool = True
    session_timeout: int | None = None
    dataset_sources: tuple[str, ...] = ()


KERNEL_OPTIONS = frozenset(f.name for f in fields(KernelOptions))


@dataclass
class KaggleOptions:
    """The Kaggle backend's options and their defaults. KaggleBackend is built from these
    and its machinery (credentials, waits, callbacks) besides."""

    # None: Kaggle's own API.
    endpoint: str | None = None
    kernel: KernelOptions = field(default_factory=KernelOptions)
    # None: one session per 500 lines.
    shards: int | None = None
    gpu_sessions: int = 2
    # The run's time budget in seconds; None: estimated from the batch.
    timeout: float | None = None
    # Kernels are deleted once their job's result is safe on disk, unless kept.
    keep_kernels: bool = False
    # Above this estimated GPU session time (seconds), a push of a GPU notebook waits for
    # the backend's `confirm`; None never asks.
    ask_above: float | None = 3600.0

    def arguments(self) -> dict[str, Any]:
        """These options as keyword arguments of the backend."""
        return {f.name: getattr(self, f.name) for f in fields(KaggleOptions)}
