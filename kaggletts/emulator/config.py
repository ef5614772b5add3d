"""Typed settings for the emulator: latency, faults and resource bounds."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

FAULT_KINDS: tuple[str, ...] = ("500", "502", "503", "429", "drop", "lost-reply", "truncate")
DEFAULT_USER = "kaggle-emulator"
DEFAULT_KEY = "emulator-key"


@dataclass(frozen=True)
class Latency:
    """Delays modelling Kaggle's queue, image start-up and API round trips (seconds)."""

    queue_delay: float = 0.0
    cold_start: float = 0.0
    request_delay: float = 0.0


@dataclass(frozen=True)
class Faults:
    """Random faults: each request fails with probability `rate`, drawn from `kinds`."""

    rate: float = 0.0
    kinds: tuple[str, ...] = ("500", "502", "503", "429", "drop", "lost-reply", "truncate")
    retry_after_seconds: int = 1

    def __post_init__(self) -> None:
        unknown = [kind for kind in self.kinds if kind not in FAULT_KINDS]
        if unknown:
            raise ValueError(f"unknown fault kinds {unknown}; choose from {FAULT_KINDS}")
        if not 0.0 <= self.rate <= 1.0:
            raise ValueError("fault rate must be between 0 and 1")


@dataclass(frozen=True)
class Quirks:
    """Kaggle's observed inconsistencies, each off at 0."""

    stale_status_seconds: float = 0.0
    late_outputs_seconds: float = 0.0


@dataclass(frozen=True)
class Limits:
    """Bounds that keep a misbehaving client or notebook from exhausting the host."""

    max_request_bytes: int = 32 * 1024 * 1024
    max_upload_bytes: int = 1024 * 1024 * 1024
    max_kernels_per_user: int = 200
    max_versions_per_kernel: int = 500
    max_output_bytes: int = 2 * 1024 * 1024 * 1024
    # A session's log keeps its start and its end within this; it counts as output.
    max_log_bytes: int = 16 * 1024 * 1024
    max_session_seconds: int = 12 * 3600
    url_ttl_seconds: int = 3600
    weekly_gpu_seconds: int = 30 * 3600
    outputs_page_size: int = 200
    # A connection idle (or a body stalled) this long is closed, freeing its thread.
    request_timeout_seconds: float = 60.0


@dataclass
class EmulatorConfig:
    """Everything an `Emulator` needs; the CLI and the Python API both build one."""

    state_dir: Path
    users: dict[str, str] = field(default_factory=lambda: {DEFAULT_USER: DEFAULT_KEY})
    host: str = "127.0.0.1"
    port: int = 0
    gpu_sessions: int = 2
    seed: int | None = None
    latency: Latency = field(default_factory=Latency)
    faults: Faults = field(default_factory=lambda: Faults(rate=0.0))
    quirks: Quirks = field(default_factory=Quirks)
    limits: Limits = field(default_factory=Limits)
    image_paths: tuple[Path, ...] = ()
    python: str | None = None
    kernel_env: dict[str, str] = field(default_factory=dict)
