"""Entry point of one kernel session's subprocess: `python -m kaggletts.emulator.kernel_runner`.

It runs in its own process group so the emulator can stop it (and the Jupyter kernel it
starts) for a cancel or a timeout. On Linux it is also a child subreaper: whatever the notebook
starts in the background (even in a new session) is reparented to it rather than to init, and
it stops all of that when the notebook ends, so no process outlives its session. It
deliberately imports nothing else from kaggletts.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import subprocess
import sys
import time
import traceback
from pathlib import Path

NOTEBOOK_NAME = "__notebook__.ipynb"
PR_SET_CHILD_SUBREAPER = 36
PROC = Path("/proc")


def become_subreaper() -> bool:
    """Adopt orphaned descendants (Linux only); returns whether that worked."""
    if not sys.platform.startswith("linux"):
        return False
    import ctypes

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def _children_by_parent() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    with contextlib.suppress(OSError):
        for entry in PROC.iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parent = int(stat[stat.rfind(")") + 2 :].split()[1])
            children.setdefault(parent, []).append(int(entry.name))
    return children


def descendants(pid: int) -> list[int]:
    """Every live process below `pid` (children, grandchildren, ...), found through /proc:
    Jupyter starts each kernel in a session of its own, out of the runner's process group."""
    children = _children_by_parent()
    found: list[int] = []
    pending = [pid]
    while pending:
        for child in children.get(pending.pop(), []):
            found.append(child)
            pending.append(child)
    return found


def _reap() -> bool:
    """Collect exited children; returns whether any child is left."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return False
        if pid == 0:
            return True


def stop_descendants(grace_seconds: float = 3.0) -> None:
    """SIGTERM every process below this one, then SIGKILL the rest, and reap them."""
    for signum in (signal.SIGTERM, signal.SIGKILL):
        tree = descendants(os.getpid())
        if not tree:
            break
        for pid in tree:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signum)
        deadline = time.monotonic() + grace_seconds
        while _reap() and time.monotonic() < deadline:
            time.sleep(0.05)
    _reap()


def _write_failure(failure_file: Path, message: str) -> None:
    failure_file.write_text(message, encoding="utf-8")


def run_notebook(source_dir: Path, working_dir: Path, failure_file: Path) -> int:
    import papermill
    from papermill.exceptions import PapermillExecutionError

    # Kaggle records both paths as the bare file name, so run from the notebook's folder.
    os.chdir(source_dir)
    try:
        papermill.execute_notebook(
            NOTEBOOK_NAME,
            NOTEBOOK_NAME,
            cwd=str(working_dir),
            # Kaggle's runner names no kernel: a notebook without a kernelspec fails there
            # with "No kernel name found in notebook" (kaggle-api #689), and so here.
            progress_bar=False,
            # ipykernel's start-up warning about its loopback TCP connection is the
            # emulator's own noise, not a line of the notebook's log.
            extra_arguments=["--IPKernelApp.log_level=ERROR"],
            stdout_file=sys.stdout,
            stderr_file=sys.stderr,
            request_save_on_cell_execute=True,
        )
    except PapermillExecutionError as error:
        traceback.print_exc()
        _write_failure(
            failure_file,
            f"Notebook cell {error.exec_count} failed: {error.ename}: {error.evalue}",
        )
        return 1
    except Exception as error:
        traceback.print_exc()
        _write_failure(failure_file, f"Notebook could not run: {type(error).__name__}: {error}")
        return 1
    return 0


def run_script(script: Path, working_dir: Path) -> int:
    os.chdir(working_dir)
    code = subprocess.call([sys.executable, "-u", str(script)])
    # A script killed by a signal ends the way a shell reports it.
    return 128 - code if code < 0 else code


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--kernel-type", choices=("notebook", "script"), required=True)
    parser.add_argument("--source", type=Path, required=True)
    parser.add_argument("--working", type=Path, required=True)
    parser.add_argument("--failure-file", type=Path, required=True)
    parser.add_argument("--cold-start", type=float, default=0.0)
    args = parser.parse_args(argv)

    # Models the image start: package installs and model loads before the first cell.
    if args.cold_start > 0:
        time.sleep(args.cold_start)
    become_subreaper()
    try:
        if args.kernel_type == "script":
            return run_script(args.source, args.working)
        return run_notebook(args.source.parent, args.working, args.failure_file)
    finally:
        stop_descendants()


if __name__ == "__main__":
    sys.exit(main())
