"""Typed settings for the emulator: assumptions, latency, faults, quirks and resource bounds."""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

FAULT_KINDS: tuple[str, ...] = (
    "500",
    "502",
    "503",
    "429",
    "drop",
    "lost-reply",
    "truncate",
    "empty-kernel",
)
DEFAULT_USER = "kaggle-emulator"
DEFAULT_KEY = "emulator-key"


class Assumption(StrEnum):
    """A behaviour of real Kaggle that is believed but not known. Each is off by default: the
    emulator then answers the least that is known, so a client must not rely on it."""

    SESSION_ID_IN_URL = "session-id-in-url"
    METADATA_KEPT = "metadata-kept"
    VERSION_SOURCE = "version-source"
    QUEUED_VERSION_COUNTED = "queued-version-counted"
    RUNNING_OUTPUTS = "running-outputs"
    DELETE_REFUSED_WHILE_RUNNING = "delete-refused-while-running"
    FAILED_OUTPUTS = "failed-outputs"
    TITLE_CONFLICT = "title-conflict"


# Why each assumption is only an assumption (docs/emulator.md gives the same, at more length).
ASSUMPTION_EVIDENCE: dict[Assumption, str] = {
    Assumption.SESSION_ID_IN_URL: (
        "SaveKernel's url ends in ?scriptVersionId=<session id>. Assumed: kaggle.com addresses "
        "a version's page that way, but real push logs print a plain /code/<owner>/<slug> url "
        "and no public response carries a session id (kaggle-cli PRs 1170, 1174, issue 1169)."
    ),
    Assumption.METADATA_KEPT: (
        "GetKernel's source keeps custom notebook and cell metadata. No evidence either way; "
        "Kaggle adds kernelspec, language_info and kaggle metadata of its own."
    ),
    Assumption.VERSION_SOURCE: (
        "GetKernel with versionLabel vN returns version N's source. One contributor's test "
        "table (kaggle-cli PR 1201), no maintainer's word."
    ),
    Assumption.QUEUED_VERSION_COUNTED: (
        "GetKernel's currentVersionNumber counts a version that is still QUEUED. No evidence."
    ),
    Assumption.RUNNING_OUTPUTS: (
        "ListKernelSessionOutput of a running version lists the files and log written so far. "
        "The log is known to be missing while a session runs (kaggle-cli issue 653)."
    ),
    Assumption.DELETE_REFUSED_WHILE_RUNNING: (
        "DeleteKernel of a kernel with a session queued or running is refused with "
        "errorMessage. No evidence either way; by default the emulator ends the sessions "
        "and deletes the kernel."
    ),
    Assumption.FAILED_OUTPUTS: (
        "ListKernelSessionOutput of a version that ended in ERROR or was cancelled lists the "
        "files it wrote. No source either way; by default the emulator lists none of them "
        "(its log is still given)."
    ),
    Assumption.TITLE_CONFLICT: (
        "SaveKernel of a new kernel whose title does not slugify to its slug answers 409 "
        "Conflict. No source says so; a public CI report (unsloth's Kaggle CI) says such a "
        "kernel is filed at the title's address instead, which is the default."
    ),
}


def parse_assumptions(names: Iterable[str]) -> frozenset[Assumption]:
    """The assumptions named; an unknown name raises ValueError naming the closest one."""
    known = [assumption.value for assumption in Assumption]
    parsed = set()
    for name in names:
        if name not in known:
            close = difflib.get_close_matches(name, known, n=1)
            hint = f"did you mean '{close[0]}'?" if close else f"choose from {', '.join(known)}"
            raise ValueError(f"unknown assumption '{name}': {hint}")
        parsed.add(Assumption(name))
    return frozenset(parsed)


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
    # For this long after each push, GetKernelSessionStatus answers `unknown_status` (a status
    # name kagglesdk's enum may not know) instead of the version's real status.
    unknown_status: str | None = None
    unknown_status_seconds: float = 0.0
    # The executed notebook (__notebook__.ipynb) left out of output listings: no public
    # fixture of a kernel's outputs shows it (the one known lists __script__.ipynb).
    unlisted_notebook: bool = False
    # Sessions run past the time limit pushed with them (up to the 12-hour cap): a public
    # CI report saw a kernel pushed with a 5,400 s limit sit RUNNING for over two hours
    # until it was deleted, and deleting it stopped the billing.
    ignored_time_limit: bool = False
    # GetAcceleratorQuotaStatistics answers 404, as a method the server does not offer: not
    # seen on Kaggle (the official client calls it), but a client must not depend on it.
    no_quota_call: bool = False

    def __post_init__(self) -> None:
        if self.unknown_status == "":
            raise ValueError("an injected unknown status needs a name")


@dataclass(frozen=True)
class Limits:
    """Bounds on requests, sessions and outputs. Those that only protect the host (request,
    upload and log sizes, idle connections) are on by default and are not Kaggle's; limits
    no source gives for Kaggle (kernels per user, versions per kernel, output size) are off
    (None) unless a test sets them."""

    max_request_bytes: int = 32 * 1024 * 1024
    max_upload_bytes: int = 1024 * 1024 * 1024
    # Assumed caps, answered with 429 when set: Kaggle's, if any, are not published.
    max_kernels_per_user: int | None = None
    max_versions_per_kernel: int | None = None
    # Assumed: a session writing more than this (files plus log) is killed and ends in
    # ERROR. Kaggle's docs give /kaggle/working 20 GB; what happens beyond is not known.
    max_output_bytes: int | None = None
    # A session's log keeps its start and its end within this (host protection); it counts
    # as output.
    max_log_bytes: int = 16 * 1024 * 1024
    max_session_seconds: int = 12 * 3600
    url_ttl_seconds: int = 3600
    weekly_gpu_seconds: float = 30 * 3600
    # Seconds of GPU quota a second of a GPU session uses: emulated sessions take seconds
    # where real ones take hours, so a test or a demo scales them up (3600: a second of
    # session is an hour of quota).
    gpu_quota_scale: float = 1.0
    # The quota refreshes every this many seconds from the emulator's start; None: weekly,
    # on Saturday 00:00 UTC.
    gpu_quota_period: float | None = None
    outputs_page_size: int = 200
    # Listing and download stop at the first 500 files, by name (a Kaggle maintainer in
    # kaggle-api #664: "Downloading output files is limited to the first 500 currently").
    listed_outputs: int = 500
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
    cpu_sessions: int = 5
    assume: frozenset[Assumption] = frozenset()
    seed: int | None = None
    latency: Latency = field(default_factory=Latency)
    faults: Faults = field(default_factory=lambda: Faults(rate=0.0))
    quirks: Quirks = field(default_factory=Quirks)
    limits: Limits = field(default_factory=Limits)
    image_paths: tuple[Path, ...] = ()
    python: str | None = None
    kernel_env: dict[str, str] = field(default_factory=dict)
