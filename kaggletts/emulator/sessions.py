"""Running each pushed version as a papermill subprocess laid out like a Kaggle session."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from . import kernel_runner
from .config import Latency, Limits
from .processes import kill_tree
from .rendering import render_results
from .store import KernelRecord, Store, VersionRecord

NOTEBOOK_NAME = kernel_runner.NOTEBOOK_NAME
SCRIPT_NAME = "__script__.py"
RESULTS_NAME = "__results__.html"
LOG_FILE = "log.json"
OUTPUT_DIR = "output"
SECRET_NAME = re.compile(r"KEY|TOKEN|SECRET|PASSWORD|CREDENTIAL|AUTH", re.IGNORECASE)
POLL_SECONDS = 0.1
OUTPUT_CHECK_SECONDS = 1.0


@dataclass
class LiveLog:
    """A session's log as it grows, in Kaggle's `{stream_name, time, data}` entry format."""

    started: float = field(default_factory=time.monotonic)
    entries: list[dict[str, object]] = field(default_factory=list)
    finished: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def append(self, stream_name: str, data: str) -> None:
        with self.lock:
            elapsed = round(time.monotonic() - self.started, 3)
            self.entries.append({"stream_name": stream_name, "time": elapsed, "data": data})

    def snapshot(self) -> list[dict[str, object]]:
        with self.lock:
            return list(self.entries)


@dataclass
class _Control:
    cancel: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None


def kernel_environment(
    input_root: Path, home: Path, image_paths: tuple[Path, ...]
) -> dict[str, str]:
    """The parent's environment minus anything that could carry a credential."""
    environment = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith("KAGGLE_") and not SECRET_NAME.search(name)
    }
    python_path = [str(path) for path in image_paths]
    if environment.get("PYTHONPATH"):
        python_path.append(environment["PYTHONPATH"])
    if python_path:
        environment["PYTHONPATH"] = os.pathsep.join(python_path)
    environment.update(
        KAGGLE_KERNEL_RUN_TYPE="Batch",
        KAGGLETTS_INPUT_ROOT=str(input_root),
        HOME=str(home),
        PYTHONUNBUFFERED="1",
    )
    return environment


def _make_read_only(root: Path) -> None:
    for path in sorted(root.rglob("*"), reverse=True):
        if path.is_symlink():
            continue
        path.chmod(0o555 if path.is_dir() else 0o444)
    root.chmod(0o555)


def _remove_tree(root: Path) -> None:
    if not root.exists():
        return
    # The inputs were made read-only for the kernel; give them back to the owner first.
    for directory, _, _ in os.walk(root):
        os.chmod(directory, stat.S_IRWXU)
    shutil.rmtree(root)


def _tree_size(root: Path) -> int:
    total = 0
    for directory, _, files in os.walk(root):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(directory, name)).st_size
    return total


class SessionManager:
    """Starts, watches, cancels and finishes kernel sessions, one thread and process each."""

    def __init__(
        self,
        store: Store,
        limits: Limits,
        image_paths: tuple[Path, ...],
        latency: Callable[[], Latency],
        python: str | None = None,
    ):
        self._store = store
        self._limits = limits
        self._image_paths = image_paths
        self._latency = latency
        self._python = python or sys.executable
        self._controls: dict[int, _Control] = {}
        self._logs: dict[int, LiveLog] = {}
        self._lock = threading.Lock()

    def live_log(self, session_id: int) -> LiveLog | None:
        with self._lock:
            return self._logs.get(session_id)

    def start(self, kernel: KernelRecord, version: VersionRecord, source_text: str) -> None:
        version_dir = self._store.version_dir(kernel, version.number)
        source_dir = version_dir / "source"
        source_dir.mkdir(parents=True, exist_ok=True)
        source_name = NOTEBOOK_NAME if version.kernel_type == "notebook" else SCRIPT_NAME
        (source_dir / source_name).write_text(source_text, encoding="utf-8")
        control = _Control()
        log = LiveLog()
        thread = threading.Thread(
            target=self._run,
            args=(kernel, version, control, log),
            name=f"kaggle-session-{version.session_id}",
            daemon=True,
        )
        control.thread = thread
        with self._lock:
            self._controls[version.session_id] = control
            self._logs[version.session_id] = log
        thread.start()

    def cancel(self, session_id: int) -> bool:
        with self._lock:
            control = self._controls.get(session_id)
        if control is None:
            return False
        control.cancel.set()
        return True

    def stop_all(self, timeout: float = 15.0) -> None:
        with self._lock:
            controls = list(self._controls.values())
        for control in controls:
            control.cancel.set()
        deadline = time.monotonic() + timeout
        for control in controls:
            if control.thread is not None:
                control.thread.join(max(0.0, deadline - time.monotonic()))

    def _set(self, version: VersionRecord, **changes: object) -> None:
        with self._store.lock:
            for name, value in changes.items():
                setattr(version, name, value)
            self._store.save()

    def _run(
        self, kernel: KernelRecord, version: VersionRecord, control: _Control, log: LiveLog
    ) -> None:
        try:
            self._run_session(kernel, version, control, log)
        except Exception as error:
            log.append("stderr", f"Kaggle emulator failure: {type(error).__name__}: {error}\n")
            self._conclude(
                kernel, version, log, status="ERROR", failure_message=f"Session failed: {error}"
            )
        finally:
            log.finished.set()
            with self._lock:
                self._controls.pop(version.session_id, None)

    def _conclude(
        self, kernel: KernelRecord, version: VersionRecord, log: LiveLog, **changes: object
    ) -> None:
        # The log is written before the final status, so whoever sees the status finds it.
        version_dir = self._store.version_dir(kernel, version.number)
        version_dir.mkdir(parents=True, exist_ok=True)
        (version_dir / LOG_FILE).write_text(json.dumps(log.snapshot()), encoding="utf-8")
        self._set(version, finished_at=time.time(), pid=None, **changes)

    def _run_session(
        self, kernel: KernelRecord, version: VersionRecord, control: _Control, log: LiveLog
    ) -> None:
        if control.cancel.wait(self._latency().queue_delay):
            self._conclude(kernel, version, log, status="CANCEL_ACKNOWLEDGED")
            return
        version_dir = self._store.version_dir(kernel, version.number)
        session_dir = version_dir / "session"
        working = session_dir / "working"
        input_root = session_dir / "input"
        home = session_dir / "home"
        for directory in (working, input_root, home):
            directory.mkdir(parents=True, exist_ok=True)
        self._mount_datasets(version, input_root, log)
        _make_read_only(input_root)

        failure_file = version_dir / "failure.txt"
        source = (
            version_dir
            / "source"
            / (NOTEBOOK_NAME if version.kernel_type == "notebook" else SCRIPT_NAME)
        )
        command = [
            self._python,
            "-P",
            kernel_runner.__file__,
            "--kernel-type",
            version.kernel_type,
            "--source",
            str(source),
            "--working",
            str(working),
            "--failure-file",
            str(failure_file),
            "--cold-start",
            str(self._latency().cold_start),
        ]
        log.started = time.monotonic()
        process = subprocess.Popen(
            command,
            cwd=working,
            env=kernel_environment(input_root, home, self._image_paths),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        self._set(version, status="RUNNING", started_at=time.time(), pid=process.pid)
        readers = [
            threading.Thread(target=self._pump, args=(stream, name, log), daemon=True)
            for stream, name in ((process.stdout, "stdout"), (process.stderr, "stderr"))
        ]
        for reader in readers:
            reader.start()

        outcome = self._watch(process, version, control, working)
        for reader in readers:
            reader.join(timeout=5)
        self._finish(kernel, version, source, working, process.returncode, outcome, log)
        _remove_tree(session_dir)

    def _mount_datasets(self, version: VersionRecord, input_root: Path, log: LiveLog) -> None:
        for ref in version.dataset_sources:
            owner, slug = ref.split("/")
            files = self._store.dataset_dir(owner, slug)
            if not files.is_dir():
                log.append("stderr", f"Dataset {ref} has no files yet; it is not mounted.\n")
                continue
            shutil.copytree(files, input_root / slug, dirs_exist_ok=True)
            nested = input_root / "datasets" / owner
            nested.mkdir(parents=True, exist_ok=True)
            (nested / slug).symlink_to(Path("..") / ".." / slug, target_is_directory=True)

    @staticmethod
    def _pump(stream: IO[bytes] | None, name: str, log: LiveLog) -> None:
        if stream is None:
            return
        with stream:
            for line in iter(lambda: stream.readline(64 * 1024), b""):
                log.append(name, line.decode("utf-8", errors="replace"))

    def _watch(
        self,
        process: subprocess.Popen[bytes],
        version: VersionRecord,
        control: _Control,
        working: Path,
    ) -> str | None:
        """Wait for the process; returns why it was stopped early, or None if it exited."""
        started = time.monotonic()
        timeout = min(version.timeout_seconds, self._limits.max_session_seconds)
        next_size_check = started + OUTPUT_CHECK_SECONDS
        while process.poll() is None:
            reason = None
            now = time.monotonic()
            if control.cancel.is_set():
                reason = "cancelled"
            elif now - started > timeout:
                reason = "timeout"
            elif now >= next_size_check:
                next_size_check = now + OUTPUT_CHECK_SECONDS
                if _tree_size(working) > self._limits.max_output_bytes:
                    reason = "output-limit"
            if reason is not None:
                kill_tree(process.pid)
                process.wait()
                return reason
            time.sleep(POLL_SECONDS)
        return None

    def _finish(
        self,
        kernel: KernelRecord,
        version: VersionRecord,
        source: Path,
        working: Path,
        returncode: int | None,
        outcome: str | None,
        log: LiveLog,
    ) -> None:
        version_dir = self._store.version_dir(kernel, version.number)
        output = version_dir / OUTPUT_DIR
        output.mkdir(parents=True, exist_ok=True)
        for entry in working.iterdir():
            shutil.move(str(entry), output / entry.name)
        if version.kernel_type == "notebook":
            shutil.copyfile(source, output / NOTEBOOK_NAME)
            render_results(output / NOTEBOOK_NAME, output / RESULTS_NAME)

        failure_file = version_dir / "failure.txt"
        if outcome == "cancelled":
            status, message = "CANCEL_ACKNOWLEDGED", None
        elif outcome == "timeout":
            status = "ERROR"
            message = (
                f"Your notebook hit the session timeout of {version.timeout_seconds} seconds "
                "and was stopped (timeout)."
            )
        elif outcome == "output-limit":
            status = "ERROR"
            message = f"Your notebook wrote more than {self._limits.max_output_bytes} output bytes."
        elif returncode == 0:
            status, message = "COMPLETE", None
        elif failure_file.exists():
            status, message = "ERROR", failure_file.read_text(encoding="utf-8")
        else:
            status, message = "ERROR", f"Kernel process exited with code {returncode}."
        if message:
            log.append("stderr", message + "\n")
        self._conclude(kernel, version, log, status=status, failure_message=message)
