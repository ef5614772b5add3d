"""Kernels, versions and datasets, kept in memory and persisted as JSON under the state dir."""

from __future__ import annotations

import contextlib
import json
import os
import threading
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .processes import PROC, kill_tree

ACTIVE_STATUSES = frozenset({"QUEUED", "RUNNING", "CANCEL_REQUESTED"})
FINAL_STATUSES = frozenset({"COMPLETE", "ERROR", "CANCEL_ACKNOWLEDGED"})
GPU_SHAPES_PREFIX = "Nvidia"
RESTART_FAILURE = "The Kaggle emulator stopped while this session was active; it did not finish."


def requests_gpu(enable_gpu: bool, machine_shape: str | None) -> bool:
    """Whether a push asks for a GPU: `enableGpu`, or a machine shape naming one."""
    return enable_gpu or (machine_shape or "").startswith(GPU_SHAPES_PREFIX)


@dataclass
class VersionRecord:
    number: int
    session_id: int
    created_at: float
    kernel_type: str
    language: str
    enable_gpu: bool
    enable_internet: bool
    machine_shape: str | None
    timeout_seconds: int
    dataset_sources: list[str]
    status: str = "QUEUED"
    started_at: float | None = None
    finished_at: float | None = None
    failure_message: str | None = None
    pid: int | None = None

    @property
    def uses_gpu(self) -> bool:
        return requests_gpu(self.enable_gpu, self.machine_shape)

    @property
    def is_active(self) -> bool:
        return self.status in ACTIVE_STATUSES

    @property
    def has_left_queue(self) -> bool:
        """Whether the version is past QUEUED (a cancel requested before the session started
        leaves it queued until the cancel is acknowledged)."""
        if self.status == "CANCEL_REQUESTED":
            return self.started_at is not None
        return self.status != "QUEUED"


@dataclass
class KernelRecord:
    kernel_id: int
    owner: str
    slug: str
    title: str
    is_private: bool
    created_at: float
    category_ids: list[str] = field(default_factory=list)
    versions: list[VersionRecord] = field(default_factory=list)

    @property
    def ref(self) -> str:
        return f"{self.owner}/{self.slug}"

    @property
    def latest(self) -> VersionRecord | None:
        return self.versions[-1] if self.versions else None

    def version(self, number: int) -> VersionRecord | None:
        if 1 <= number <= len(self.versions):
            return self.versions[number - 1]
        return None


@dataclass
class DatasetRecord:
    dataset_id: int
    owner: str
    slug: str
    title: str
    is_private: bool
    created_at: float
    version_number: int = 1
    status: str = "ready"

    @property
    def ref(self) -> str:
        return f"{self.owner}/{self.slug}"


class Store:
    """The emulator's state. Callers hold `lock` across read-modify-write sequences."""

    def __init__(self, state_dir: Path):
        self.root = state_dir
        self.root.mkdir(parents=True, exist_ok=True)
        self.lock = threading.RLock()
        self.kernels: dict[str, KernelRecord] = {}
        self.datasets: dict[str, DatasetRecord] = {}
        self._next_id = 1
        self._load()

    @property
    def _state_file(self) -> Path:
        return self.root / "state.json"

    def _load(self) -> None:
        if not self._state_file.exists():
            return
        data = json.loads(self._state_file.read_text(encoding="utf-8"))
        self._next_id = int(data["next_id"])
        for raw in data["kernels"]:
            versions = [VersionRecord(**version) for version in raw.pop("versions")]
            kernel = KernelRecord(**raw, versions=versions)
            self.kernels[kernel.ref] = kernel
        for raw in data["datasets"]:
            dataset = DatasetRecord(**raw)
            self.datasets[dataset.ref] = dataset
        self._fail_interrupted_sessions()

    def _fail_interrupted_sessions(self) -> None:
        # The emulator stopped some time after it last saved; a session it was running is
        # charged (GPU quota) up to then, not for the time the emulator was down.
        last_saved = self._state_file.stat().st_mtime
        for kernel in self.kernels.values():
            for version in kernel.versions:
                if not version.is_active:
                    continue
                if version.pid is not None:
                    self._stop_orphaned_runner(kernel, version.number, version.pid)
                if version.status == "CANCEL_REQUESTED":
                    version.status = "CANCEL_ACKNOWLEDGED"
                else:
                    version.status = "ERROR"
                    version.failure_message = RESTART_FAILURE
                version.finished_at = version.finished_at or max(
                    last_saved, version.started_at or version.created_at
                )
                version.pid = None
        self.save()

    def _stop_orphaned_runner(self, kernel: KernelRecord, number: int, pid: int) -> None:
        """Kill a session process a crashed emulator left running, if `pid` is still it."""
        try:
            argv = (PROC / str(pid) / "cmdline").read_bytes().decode(errors="replace")
        except OSError:
            return
        arguments = argv.split("\0")
        source_dir = str(self.version_dir(kernel, number) / "source")
        is_runner = any(argument.endswith("kernel_runner.py") for argument in arguments)
        if is_runner and any(argument.startswith(source_dir + "/") for argument in arguments):
            kill_tree(pid)

    def save(self) -> None:
        with self.lock:
            data = {
                "next_id": self._next_id,
                "kernels": [asdict(kernel) for kernel in self.kernels.values()],
                "datasets": [asdict(dataset) for dataset in self.datasets.values()],
            }
            temporary = self._state_file.with_suffix(".tmp")
            temporary.write_text(json.dumps(data, indent=1), encoding="utf-8")
            os.replace(temporary, self._state_file)

    def mark_alive(self) -> None:
        """Touch state.json: after a crash, running sessions are charged up to its mtime."""
        with self.lock, contextlib.suppress(OSError):
            os.utime(self._state_file)

    def new_id(self) -> int:
        with self.lock:
            issued = self._next_id
            self._next_id += 1
            return issued

    def kernel_by_id(self, kernel_id: int) -> KernelRecord | None:
        with self.lock:
            return next((k for k in self.kernels.values() if k.kernel_id == kernel_id), None)

    def session(self, session_id: int) -> tuple[KernelRecord, VersionRecord] | None:
        with self.lock:
            for kernel in self.kernels.values():
                for version in kernel.versions:
                    if version.session_id == session_id:
                        return kernel, version
            return None

    def owned_by(self, owner: str) -> list[KernelRecord]:
        with self.lock:
            return [kernel for kernel in self.kernels.values() if kernel.owner == owner]

    def active_sessions(self, owner: str, *, uses_gpu: bool) -> int:
        """Sessions of `owner` queued or running, of one kind: Kaggle caps GPU sessions and
        CPU sessions separately."""
        return sum(
            1
            for kernel in self.owned_by(owner)
            for version in kernel.versions
            if version.is_active and version.uses_gpu == uses_gpu
        )

    def kernel_dir(self, kernel: KernelRecord) -> Path:
        return self.root / "kernels" / kernel.owner / kernel.slug

    def version_dir(self, kernel: KernelRecord, number: int) -> Path:
        return self.kernel_dir(kernel) / f"v{number}"

    def working_dir(self, kernel: KernelRecord, number: int) -> Path:
        """A running session's working folder; its files move to `output/` when it ends."""
        return self.version_dir(kernel, number) / "session" / "working"

    def dataset_dir(self, owner: str, slug: str) -> Path:
        return self.root / "datasets" / owner / slug / "files"

    def uploads_dir(self) -> Path:
        return self.root / "uploads"
