"""Finding and stopping a session's whole process tree.

Jupyter starts each kernel in a new session of its own, so killing the runner's process
group alone would leave the kernel behind; the tree is walked through /proc instead.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time

from .kernel_runner import PROC, descendants

__all__ = ["PROC", "descendants", "is_alive", "kill_tree"]


def is_alive(pid: int) -> bool:
    try:
        stat = (PROC / str(pid) / "stat").read_text()
    except OSError:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    # A zombie has exited; only its parent's wait() is pending.
    return stat[stat.rfind(")") + 2 :].split()[0] != "Z"


def _signal_tree(pid: int, tree: list[int], signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signum)
    for member in tree:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(member, signum)


def kill_tree(pid: int, grace_seconds: float = 3.0) -> None:
    """SIGTERM the runner's group and every descendant, then SIGKILL what is left."""
    tree = descendants(pid)
    _signal_tree(pid, tree, signal.SIGTERM)
    deadline = time.monotonic() + grace_seconds
    while time.monotonic() < deadline:
        if not any(is_alive(member) for member in [pid, *tree]):
            return
        time.sleep(0.05)
    _signal_tree(pid, tree + descendants(pid), signal.SIGKILL)
