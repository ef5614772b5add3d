"""Running each pushed version as a papermill subprocess laid out like a Kaggle session."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import stat
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
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
# A session stopped at its time limit: the wording a public script quotes from Kaggle
# (kaggle.md). Every other failure message here is the emulator's own, assumed wording.
TIME_LIMIT_MESSAGE = (
    "Your notebook was stopped because it exceeded the max allowed execution duration."
)
# The parent's variables a kernel sees; anything else (credentials included) stays behind.
PASSTHROUGH_NAMES = frozenset(
    {"PATH", "HOME", "LANG", "TZ", "TMPDIR", "USER", "LOGNAME", "VIRTUAL_ENV"}
)
POLL_SECONDS = 0.1
OUTPUT_CHECK_SECONDS = 1.0
# How often a running session marks the state as alive (bounds GPU time charged after a crash).
ALIVE_SECONDS = 30.0


# What one entry adds to log.json besides its text: the keys, the stream name and the time.
ENTRY_OVERHEAD = 64


class LiveLog:
    """A session's log as it grows, in Kaggle's `{stream_name, time, data}` entry format.

    It holds at most about `max_bytes`: the first half and the latest half, with a marker
    entry where the middle was left out, so a chatty notebook cannot exhaust memory.
    """

    def __init__(self, max_bytes: int = 16 * 1024 * 1024):
        self.started = time.monotonic()
        self.finished = threading.Event()
        self.lock = threading.Lock()
        self._half = max(1, max_bytes // 2)
        self._head: list[tuple[int, dict[str, object]]] = []
        self._tail: deque[tuple[int, dict[str, object], int]] = deque()
        self._head_bytes = 0
        self._tail_bytes = 0
        self._dropped = 0
        self._dropped_bytes = 0
        self._count = 0

    @property
    def size(self) -> int:
        """Bytes held (roughly what log.json takes)."""
        with self.lock:
            return self._head_bytes + self._tail_bytes

    def append(self, stream_name: str, data: str) -> None:
        with self.lock:
            elapsed = round(time.monotonic() - self.started, 3)
            entry: dict[str, object] = {"stream_name": stream_name, "time": elapsed, "data": data}
            size = len(data.encode("utf-8", errors="replace")) + ENTRY_OVERHEAD
            self._count += 1
            if not self._tail and self._head_bytes + size <= self._half:
                self._head.append((self._count, entry))
                self._head_bytes += size
                return
            self._tail.append((self._count, entry, size))
            self._tail_bytes += size
            while self._tail_bytes > self._half and len(self._tail) > 1:
                _, _, dropped = self._tail.popleft()
                self._tail_bytes -= dropped
                self._dropped += 1
                self._dropped_bytes += dropped

    def _marker(self) -> dict[str, object]:
        first_kept = self._tail[0][1] if self._tail else {"time": 0.0}
        return {
            "stream_name": "stderr",
            "time": first_kept["time"],
            "data": f"[Kaggle emulator: {self._dropped} log entries (about "
            f"{self._dropped_bytes} bytes) were left out here; a log keeps at most "
            f"{2 * self._half} bytes, its start and its end]\n",
        }

    def after(self, seen: int) -> tuple[list[dict[str, object]], int]:
        """The entries appended after the first `seen` (with the marker if some of them were
        left out), and the new count to pass next time."""
        with self.lock:
            found = [entry for number, entry in self._head if number > seen]
            if self._tail:
                first_tail = self._tail[0][0]
                last_head = self._head[-1][0] if self._head else 0
                if self._dropped and first_tail - 1 > max(seen, last_head):
                    found.append(self._marker())
                found += [entry for number, entry, _ in self._tail if number > seen]
            return found, self._count

    def snapshot(self) -> list[dict[str, object]]:
        return self.after(0)[0]


@dataclass
class _Control:
    cancel: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None


def _passed_through(name: str) -> bool:
    if name in PASSTHROUGH_NAMES or name.startswith("LC_"):
        return True
    return name.startswith("PYTHON") and name != "PYTHONSTARTUP"


def kernel_environment(
    input_root: Path,
    home: Path,
    image_paths: tuple[Path, ...],
    kernel_env: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """A kernel's environment: an allow-list of the parent's variables (locale, paths, Python
    settings), then `kernel_env` (what the Kaggle image sets), then the emulator's own."""
    environment = {name: value for name, value in os.environ.items() if _passed_through(name)}
    environment.update(kernel_env or {})
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


def is_utf8_name(name: str) -> bool:
    """Whether a file name decoded from the OS (undecodable bytes kept as surrogates) is
    valid UTF-8, so it can be listed in JSON and put in a URL."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _warn_about_names(output: Path, log: LiveLog) -> None:
    for path in sorted(output.rglob("*")):
        name = path.relative_to(output).as_posix()
        if path.is_file() and not is_utf8_name(name):
            shown = name.encode("utf-8", errors="surrogateescape").decode("utf-8", "replace")
            log.append(
                "stderr",
                f"Kaggle emulator: the output file {shown!r} is not listed: "
                "its name is not valid UTF-8.\n",
            )


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
        kernel_env: Mapping[str, str] | None = None,
    ):
        self._store = store
        self._kernel_env = dict(kernel_env or {})
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
        log = LiveLog(self._limits.max_log_bytes)
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

    def _effective_timeout(self, version: VersionRecord) -> int:
        """The pushed timeout, clamped to the emulator's longest session."""
        return min(version.timeout_seconds, self._limits.max_session_seconds)

    def _cancelled(self, version: VersionRecord, control: _Control) -> bool:
        with self._store.lock:
            return control.cancel.is_set() or version.status == "CANCEL_REQUESTED"

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
            # log.json holds it now; a reader still streaming keeps its own reference.
            with self._lock:
                self._controls.pop(version.session_id, None)
                self._logs.pop(version.session_id, None)

    def _conclude(
        self, kernel: KernelRecord, version: VersionRecord, log: LiveLog, **changes: object
    ) -> None:
        # The log is written, and its live stream closed, before the final status: whoever
        # sees the status finds the log, and the log stream then answers it as JSON.
        version_dir = self._store.version_dir(kernel, version.number)
        version_dir.mkdir(parents=True, exist_ok=True)
        (version_dir / LOG_FILE).write_text(json.dumps(log.snapshot()), encoding="utf-8")
        log.finished.set()
        self._set(version, finished_at=time.time(), pid=None, **changes)

    def _run_session(
        self, kernel: KernelRecord, version: VersionRecord, control: _Control, log: LiveLog
    ) -> None:
        if control.cancel.wait(self._latency().queue_delay) or self._cancelled(version, control):
            self._conclude(kernel, version, log, status="CANCEL_ACKNOWLEDGED")
            return
        version_dir = self._store.version_dir(kernel, version.number)
        working = self._store.working_dir(kernel, version.number)
        session_dir = working.parent
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
        # Mounting can take a while; a cancel that came meanwhile is honoured before starting.
        if self._cancelled(version, control):
            _remove_tree(session_dir)
            self._conclude(kernel, version, log, status="CANCEL_ACKNOWLEDGED")
            return
        log.started = time.monotonic()
        process = subprocess.Popen(
            command,
            cwd=working,
            env=kernel_environment(input_root, home, self._image_paths, self._kernel_env),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        with self._store.lock:
            version.started_at = time.time()
            version.pid = process.pid
            # A cancel that came since keeps its CANCEL_REQUESTED; _watch then stops the run.
            if version.status == "QUEUED":
                version.status = "RUNNING"
            self._store.save()
        readers = [
            threading.Thread(target=self._pump, args=(stream, name, log), daemon=True)
            for stream, name in ((process.stdout, "stdout"), (process.stderr, "stderr"))
        ]
        for reader in readers:
            reader.start()

        outcome = self._watch(process, version, control, working, log)
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
        log: LiveLog,
    ) -> str | None:
        """Wait for the process; returns why it was stopped early, or None if it exited."""
        started = time.monotonic()
        timeout = self._effective_timeout(version)
        next_size_check = started + OUTPUT_CHECK_SECONDS
        next_alive_mark = started + ALIVE_SECONDS
        while process.poll() is None:
            reason = None
            now = time.monotonic()
            if control.cancel.is_set():
                reason = "cancelled"
            elif now - started > timeout:
                reason = "timeout"
            elif now >= next_size_check:
                next_size_check = now + OUTPUT_CHECK_SECONDS
                if now >= next_alive_mark:
                    next_alive_mark = now + ALIVE_SECONDS
                    self._store.mark_alive()
                output_cap = self._limits.max_output_bytes
                if output_cap is not None and _tree_size(working) + log.size > output_cap:
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
        _warn_about_names(output, log)

        failure_file = version_dir / "failure.txt"
        if outcome == "cancelled":
            status, message = "CANCEL_ACKNOWLEDGED", None
        elif outcome == "timeout":
            status, message = "ERROR", TIME_LIMIT_MESSAGE
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
