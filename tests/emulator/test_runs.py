"""Session life cycles: failures, cancel, timeout, the cap, versions, quirks and restarts."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from emulator_helpers import call, outputs, push, status, wait_until

from kaggletts.emulator import Emulator, Latency, Quirks
from kaggletts.emulator.processes import descendants, is_alive

# Every test here runs kernel sessions on the emulator.
pytestmark = pytest.mark.slow

SLEEPER = "import time\nprint('started', flush=True)\ntime.sleep(300)"


def _running_tree(emulator: Emulator, slug: str) -> list[int]:
    wait_until(lambda: emulator.status("alice", slug) == "RUNNING")
    pid = emulator.version("alice", slug).pid
    assert pid is not None
    # Wait for the Jupyter kernel too, so the test proves it is stopped as well.
    wait_until(lambda: len(descendants(pid)) >= 1)
    return [pid, *descendants(pid)]


def test_failing_notebook_ends_in_error(kaggle_emulator: Emulator):
    assert push(kaggle_emulator, "boom-notebook", "raise ValueError('kaboom')").ok
    version = kaggle_emulator.wait_for("alice", "boom-notebook")
    assert version.status == "ERROR"
    reply = status(kaggle_emulator, "boom-notebook")
    assert reply["status"] == "ERROR" and "ValueError" in reply["failureMessage"]
    listing = outputs(kaggle_emulator, "boom-notebook")
    assert "kaboom" in "".join(entry["data"] for entry in json.loads(listing["log"]))
    assert listing["files"] == []  # whether a failed version's outputs are listed is unknown
    kaggle_emulator.assume = {"failed-outputs"}
    listing = outputs(kaggle_emulator, "boom-notebook")
    assert "__notebook__.ipynb" in [item["fileName"] for item in listing["files"]]


def test_cancel_stops_the_process_tree(kaggle_emulator: Emulator):
    assert push(kaggle_emulator, "cancel-me", SLEEPER).ok
    tree = _running_tree(kaggle_emulator, "cancel-me")
    session_id = kaggle_emulator.session_id("alice", "cancel-me")
    reply = call(kaggle_emulator, "CancelKernelSession", {"kernelSessionId": session_id})
    assert reply.ok and "errorMessage" not in reply.json()
    assert status(kaggle_emulator, "cancel-me")["status"] in (
        "CANCEL_REQUESTED",
        "CANCEL_ACKNOWLEDGED",
    )
    kaggle_emulator.wait_for("alice", "cancel-me", statuses=["CANCEL_ACKNOWLEDGED"])
    wait_until(lambda: not any(is_alive(pid) for pid in tree), timeout=15)


def test_timeout_kills_and_reports(kaggle_emulator: Emulator):
    assert push(kaggle_emulator, "slow-notebook", SLEEPER, sessionTimeoutSeconds=4).ok
    tree = _running_tree(kaggle_emulator, "slow-notebook")
    version = kaggle_emulator.wait_for("alice", "slow-notebook")
    assert version.status == "ERROR"
    assert "exceeded the max allowed execution duration" in (version.failure_message or "")
    wait_until(lambda: not any(is_alive(pid) for pid in tree), timeout=15)


def test_session_caps_count_gpu_and_cpu_sessions_apart(kaggle_emulator: Emulator):
    # Queued sessions count as much as running ones, and start no processes.
    kaggle_emulator.latency = Latency(queue_delay=3600)
    kaggle_emulator.gpu_sessions = 1
    kaggle_emulator.cpu_sessions = 1
    gpu: dict[str, Any] = {"enableGpu": True, "machineShape": "NvidiaTeslaT4"}
    assert push(kaggle_emulator, "first-gpu-session", SLEEPER, **gpu).json()["versionNumber"] == 1
    refused = push(kaggle_emulator, "second-gpu-session", SLEEPER, **gpu)
    assert refused.status_code == 200
    assert refused.json()["error"] == "Maximum batch GPU session count of 1 reached"
    assert kaggle_emulator.push_count("alice", "second-gpu-session") == 0
    # The GPU cap is full; a CPU session still starts, until the CPU cap is full too.
    assert push(kaggle_emulator, "first-cpu-session", SLEEPER).json().get("error") is None
    refused = push(kaggle_emulator, "second-cpu-session", SLEEPER)
    assert refused.json()["error"] == "Maximum batch CPU session count of 1 reached"
    assert push(kaggle_emulator, "cap-for-bob", user="bob", **gpu).json().get("error") is None
    session_id = kaggle_emulator.session_id("alice", "first-gpu-session")
    call(kaggle_emulator, "CancelKernelSession", {"kernelSessionId": session_id})
    kaggle_emulator.wait_for("alice", "first-gpu-session", statuses=["CANCEL_ACKNOWLEDGED"])
    assert push(kaggle_emulator, "second-gpu-session", **gpu).json().get("error") is None


def test_default_session_caps(kaggle_emulator: Emulator):
    kaggle_emulator.latency = Latency(queue_delay=3600)
    for number in range(5):
        assert push(kaggle_emulator, f"cpu-session-{number}", SLEEPER).json().get("error") is None
    refused = push(kaggle_emulator, "cpu-session-5", SLEEPER).json()
    assert refused["error"] == "Maximum batch CPU session count of 5 reached"


def test_pinned_versions_and_stale_status(kaggle_emulator: Emulator):
    first = "open('which.txt', 'w').write('one')"
    assert push(kaggle_emulator, "two-versions", first).ok
    kaggle_emulator.wait_for("alice", "two-versions", 1)
    kaggle_emulator.quirks = Quirks(stale_status_seconds=3600)
    second = "open('which.txt', 'w').write('two')\nraise RuntimeError('v2 fails')"
    assert push(kaggle_emulator, "two-versions", second).json()["versionNumber"] == 2
    kaggle_emulator.wait_for("alice", "two-versions", 2)
    assert status(kaggle_emulator, "two-versions")["status"] == "COMPLETE"  # stale: v1
    assert status(kaggle_emulator, "two-versions", version=2)["status"] == "ERROR"
    kaggle_emulator.quirks = Quirks()
    assert status(kaggle_emulator, "two-versions")["status"] == "ERROR"
    v1 = {f["fileName"]: f["url"] for f in outputs(kaggle_emulator, "two-versions", 1)["files"]}
    import requests

    assert requests.get(v1["which.txt"], timeout=10).text == "one"
    bare = call(
        kaggle_emulator,
        "GetKernelSessionStatus",
        {"userName": "alice", "kernelSlug": "two-versions", "versionLabel": "1"},
    )
    assert bare.status_code == 404


def test_late_outputs(kaggle_emulator: Emulator):
    kaggle_emulator.quirks = Quirks(late_outputs_seconds=3600)
    assert push(kaggle_emulator, "late-outputs").ok
    kaggle_emulator.wait_for("alice", "two-versions" if False else "late-outputs")
    assert outputs(kaggle_emulator, "late-outputs")["files"] == []
    kaggle_emulator.quirks = Quirks()
    assert outputs(kaggle_emulator, "late-outputs")["files"]


def test_output_pages(kaggle_emulator: Emulator):
    writer = "for i in range(5):\n    open(f'file{i}.txt', 'w').write(str(i))"
    assert push(kaggle_emulator, "many-outputs", writer).ok
    kaggle_emulator.wait_for("alice", "many-outputs")
    names, token = [], None
    while True:
        page = outputs(
            kaggle_emulator, "many-outputs", pageSize=2, **({"pageToken": token} if token else {})
        )
        assert len(page["files"]) <= 2
        names += [item["fileName"] for item in page["files"]]
        token = page.get("nextPageToken")
        if not token:
            break
    assert len(names) == 7 and len(set(names)) == 7


def test_restart_keeps_state_and_fails_running_sessions(tmp_path: Path):
    users = {"alice": "alice-key"}
    with Emulator(state_dir=tmp_path, users=users) as emulator:
        assert push(emulator, "kept-notebook").ok
        emulator.wait_for("alice", "kept-notebook")
        assert push(emulator, "interrupted", SLEEPER).ok
        wait_until(lambda: emulator.status("alice", "interrupted") == "RUNNING")
        pid = emulator.version("alice", "interrupted").pid
    assert pid is not None and not is_alive(pid)
    with Emulator(state_dir=tmp_path, users=users) as emulator:
        assert status(emulator, "kept-notebook")["status"] == "COMPLETE"
        assert outputs(emulator, "kept-notebook")["files"]
        assert emulator.status("alice", "interrupted") in ("ERROR", "CANCEL_ACKNOWLEDGED")
        assert push(emulator, "kept-notebook").json()["versionNumber"] == 2


def test_delete_kernel_ends_its_live_session_by_default(kaggle_emulator: Emulator):
    kernel = {"userName": "alice", "kernelSlug": "busy-kernel"}
    kaggle_emulator.latency = Latency(queue_delay=3600)
    assert push(kaggle_emulator, "busy-kernel").ok
    version = kaggle_emulator.version("alice", "busy-kernel")
    assert call(kaggle_emulator, "DeleteKernel", kernel).json() == {}
    assert not version.is_active and kaggle_emulator.push_count("alice", "busy-kernel") == 0
    assert call(kaggle_emulator, "GetKernel", kernel).status_code == 403


def test_delete_kernel(kaggle_emulator: Emulator):
    kernel = {"userName": "alice", "kernelSlug": "short-lived"}
    kaggle_emulator.assume = {"delete-refused-while-running"}
    kaggle_emulator.latency = Latency(queue_delay=3600)
    assert push(kaggle_emulator, "short-lived").ok
    busy = call(kaggle_emulator, "DeleteKernel", kernel).json()
    assert "queued or running" in busy["errorMessage"]
    session_id = kaggle_emulator.session_id("alice", "short-lived")
    call(kaggle_emulator, "CancelKernelSession", {"kernelSessionId": session_id})
    kaggle_emulator.wait_for("alice", "short-lived", statuses=["CANCEL_ACKNOWLEDGED"])
    assert call(kaggle_emulator, "DeleteKernel", kernel, user="bob").status_code == 403
    assert call(kaggle_emulator, "DeleteKernel", kernel).json() == {}
    assert kaggle_emulator.push_count("alice", "short-lived") == 0
    assert call(kaggle_emulator, "GetKernel", kernel).status_code == 403
    assert call(kaggle_emulator, "DeleteKernel", kernel).status_code == 403
    kaggle_emulator.latency = Latency()
    assert push(kaggle_emulator, "short-lived").json()["versionNumber"] == 1


def test_a_notebook_without_a_kernelspec_fails_as_on_kaggle(kaggle_emulator: Emulator):
    """Kaggle's runner names no kernel of its own (kaggle-api #689)."""
    import nbformat

    notebook = nbformat.v4.new_notebook()
    notebook.cells = [nbformat.v4.new_code_cell("print('hi')")]
    assert push(kaggle_emulator, "no-kernelspec", text=nbformat.writes(notebook)).ok
    version = kaggle_emulator.wait_for("alice", "no-kernelspec")
    assert version.status == "ERROR"
    assert "No kernel name found in notebook" in status(kaggle_emulator, "no-kernelspec")[
        "failureMessage"
    ]
