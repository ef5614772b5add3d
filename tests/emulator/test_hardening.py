"""Isolation of a kernel's environment, processes outliving a session, restarts, server
robustness, logs, output names, the cancel race, fault accounting and timeout messages."""

from __future__ import annotations

import dataclasses
import json
import os
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path
from types import SimpleNamespace

import pytest
import requests
from click.testing import CliRunner
from emulator_helpers import call, outputs, push, wait_until

from kaggletts.emulator import Emulator, Faults, Limits
from kaggletts.emulator.cli import _parse_kernel_env
from kaggletts.emulator.processes import descendants, is_alive
from kaggletts.emulator.sessions import LiveLog, kernel_environment

USERS = {"alice": "alice-key", "bob": "bob-key"}
SLEEPER = "import time\nprint('started', flush=True)\ntime.sleep(300)"


def _log_text(emulator: Emulator, slug: str) -> str:
    return "".join(entry["data"] for entry in json.loads(outputs(emulator, slug)["log"]))


def _processes_with(argument: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if argument.encode() in argv:
            found.append(int(entry.name))
    return found


# 1. The kernel's environment ------------------------------------------------------------


def test_kernel_environment_is_an_allow_list(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    monkeypatch.setenv("MY_DB_URL", "postgres://u:hunter2@db/x")
    monkeypatch.setenv("KAGGLE_KEY", "real-key")
    monkeypatch.setenv("LC_ALL", "C.UTF-8")
    monkeypatch.setenv("PYTHONSTARTUP", "/tmp/startup.py")
    monkeypatch.setenv("PYTHONHASHSEED", "3")
    monkeypatch.setenv("PYTHONPATH", "/somewhere")
    environment = kernel_environment(
        tmp_path / "input", tmp_path / "home", (tmp_path / "image",), {"HF_TOKEN": "image-secret"}
    )
    assert "MY_DB_URL" not in environment and "KAGGLE_KEY" not in environment
    assert "PYTHONSTARTUP" not in environment
    assert environment["LC_ALL"] == "C.UTF-8" and environment["PYTHONHASHSEED"] == "3"
    assert environment["PYTHONPATH"] == os.pathsep.join([str(tmp_path / "image"), "/somewhere"])
    assert environment["HF_TOKEN"] == "image-secret"
    assert environment["KAGGLE_KERNEL_RUN_TYPE"] == "Batch"
    assert environment["HOME"] == str(tmp_path / "home")
    assert environment["PATH"] == os.environ["PATH"]


@pytest.mark.slow
def test_kernels_see_kernel_env_but_not_the_hosts_secrets(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
):
    monkeypatch.setenv("MY_DB_URL", "postgres://u:hunter2@db/x")
    cell = (
        "import os\n"
        "print('DB', os.environ.get('MY_DB_URL'))\n"
        "print('SWITCH', os.environ.get('KAGGLETTS_STANDIN_FAULT'))"
    )
    kernel_env = {"KAGGLETTS_STANDIN_FAULT": "nan-once"}
    with Emulator(tmp_path / "state", dict(USERS), kernel_env=kernel_env) as emulator:
        assert push(emulator, "env-check", cell).ok
        assert emulator.wait_for("alice", "env-check").status == "COMPLETE"
        log = _log_text(emulator, "env-check")
    assert "DB None" in log and "hunter2" not in log
    assert "SWITCH nan-once" in log


def test_cli_parses_kernel_env():
    assert _parse_kernel_env(("A=1", "B=x=y", "C=")) == {"A": "1", "B": "x=y", "C": ""}
    from kaggletts.emulator.cli import emulator as command

    result = CliRunner().invoke(command, ["--kernel-env", "novalue"])
    assert result.exit_code != 0 and "NAME=VALUE" in result.output


# 2. Processes outliving a session -------------------------------------------------------


@pytest.mark.slow
def test_background_processes_end_with_the_session(kaggle_emulator: Emulator):
    plain, detached = (f"{300 + uuid.uuid4().int % 10000}.{n}" for n in (1, 2))
    cell = (
        "import subprocess\n"
        f"subprocess.Popen(['sh', '-c', 'sleep {plain} &']).wait()\n"
        f"subprocess.Popen(['sleep', '{detached}'], start_new_session=True)\n"
        "print('started')"
    )
    assert push(kaggle_emulator, "leaky-kernel", cell).ok
    assert kaggle_emulator.wait_for("alice", "leaky-kernel").status == "COMPLETE"
    assert "started" in _log_text(kaggle_emulator, "leaky-kernel")
    wait_until(lambda: not _processes_with(plain) and not _processes_with(detached), timeout=15)


# 3. Restarting after a crash --------------------------------------------------------------


def _emulator_process(state: Path) -> tuple[subprocess.Popen[str], str]:
    process = subprocess.Popen(
        [sys.executable, "-m", "kaggletts.emulator", "--port", "0"]
        + ["--user", "alice:alice-key", "--state", str(state)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    line = process.stdout.readline().strip()
    assert line.startswith("listening on http://127.0.0.1:")
    return process, line.removeprefix("listening on ")


@pytest.mark.slow
def test_restart_after_a_crash_stops_the_orphaned_session(tmp_path: Path):
    state = tmp_path / "state"
    process, url = _emulator_process(state)
    try:
        stand_in = SimpleNamespace(url=url)
        assert push(stand_in, "orphaned", SLEEPER).ok  # type: ignore[arg-type]

        def runner_pid() -> int | None:
            data = json.loads((state / "state.json").read_text())
            return data["kernels"][0]["versions"][0]["pid"]

        wait_until(lambda: runner_pid() is not None)
        pid = runner_pid()
        assert pid is not None
        wait_until(lambda: len(descendants(pid)) >= 1)
        tree = [pid, *descendants(pid)]
    finally:
        process.kill()  # a crash: no chance to stop its sessions
        process.wait(timeout=30)
    assert is_alive(pid)
    with Emulator(state, {"alice": "alice-key"}) as emulator:
        assert emulator.status("alice", "orphaned") == "ERROR"
        wait_until(lambda: not any(is_alive(member) for member in tree), timeout=15)


@pytest.mark.slow
def test_restart_charges_gpu_time_only_until_the_last_save(tmp_path: Path):
    with Emulator(tmp_path, {"alice": "alice-key"}) as emulator:
        assert push(emulator, "gpu-kernel", enableGpu=True).ok
        emulator.wait_for("alice", "gpu-kernel")
    state_file = tmp_path / "state.json"
    data = json.loads(state_file.read_text())
    started = time.time() - 3600
    data["kernels"][0]["versions"][0].update(
        status="RUNNING", started_at=started, finished_at=None, pid=None
    )
    state_file.write_text(json.dumps(data))
    os.utime(state_file, (started + 60, started + 60))
    with Emulator(tmp_path, {"alice": "alice-key"}) as emulator:
        version = emulator.version("alice", "gpu-kernel")
        assert version.status == "ERROR"
        assert version.finished_at is not None
        assert version.finished_at - started == pytest.approx(60, abs=1)


# 4. Server robustness ----------------------------------------------------------------------


def test_deeply_nested_json_is_a_bad_request(kaggle_emulator: Emulator):
    nested = b"[" * 100000 + b"]" * 100000
    reply = requests.post(
        f"{kaggle_emulator.url}/api/v1/kernels.KernelsApiService/GetKernelSessionStatus",
        data=nested,
        auth=("alice", "alice-key"),
        timeout=30,
    )
    assert reply.status_code == 400 and "nested too deeply" in reply.json()["message"]
    assert call(kaggle_emulator, "GetAcceleratorQuotaStatistics").ok


def _blob_token(emulator: Emulator, name: str, length: int) -> str:
    body = {"name": name, "contentLength": length}
    return call(emulator, "StartBlobUpload", body, service="blobs.BlobApiService").json()["token"]


def test_a_stalled_upload_does_not_hold_up_others(kaggle_emulator: Emulator):
    stalled = _blob_token(kaggle_emulator, "a.bin", 1000)
    other = _blob_token(kaggle_emulator, "b.bin", 10)
    host, port = kaggle_emulator.config.host, kaggle_emulator.port
    with socket.create_connection((host, port), timeout=30) as connection:
        head = f"PUT /_emulator/uploads/{stalled} HTTP/1.1\r\nHost: {host}:{port}\r\n"
        connection.sendall(head.encode() + b"Content-Length: 1000\r\n\r\n" + b"x" * 10)
        # Give the server the partial body first, so its handler is inside the upload.
        wait_until(lambda: (kaggle_emulator.uploads.data_file(stalled).stat().st_size) == 10)
        reply = requests.put(
            f"{kaggle_emulator.url}/_emulator/uploads/{other}", b"y" * 10, timeout=20
        )
        assert reply.status_code == 200


def test_an_idle_connection_is_closed(tmp_path: Path):
    limits = Limits(request_timeout_seconds=0.5)
    with Emulator(tmp_path, dict(USERS), limits=limits) as emulator:
        with socket.create_connection((emulator.config.host, emulator.port)) as idle:
            idle.sendall(b"GET / HTTP/1.1\r\n")
            idle.settimeout(30)
            assert idle.recv(100) == b""  # closed by the server, not answered
        assert call(emulator, "GetAcceleratorQuotaStatistics").ok


# 5. Logs ----------------------------------------------------------------------------------


def test_live_log_keeps_its_start_and_end_within_the_cap():
    log = LiveLog(max_bytes=2000)
    for number in range(200):
        log.append("stdout", f"line {number}\n")
    entries = log.snapshot()
    texts = [entry["data"] for entry in entries]
    assert texts[0] == "line 0\n" and texts[-1] == "line 199\n"
    markers = [text for text in texts if "left out" in str(text)]
    assert len(markers) == 1
    assert log.size <= 2000 and len(entries) < 50
    # A reader that follows along sees each kept entry once, in order, and the marker.
    followed: list[dict[str, object]] = []
    streamed = LiveLog(max_bytes=2000)
    seen = 0
    for number in range(200):
        streamed.append("stdout", f"line {number}\n")
        if number % 7 == 0:
            entries, seen = streamed.after(seen)
            followed += entries
    followed += streamed.after(seen)[0]
    numbers = [int(str(e["data"]).split()[1]) for e in followed if "left out" not in str(e["data"])]
    assert numbers == sorted(set(numbers)) and numbers[0] == 0 and numbers[-1] == 199


@pytest.mark.slow
def test_a_chatty_session_log_is_capped_and_dropped_from_memory(tmp_path: Path):
    limits = Limits(max_log_bytes=20000)
    cell = "for i in range(3000):\n    print('line', i)"
    with Emulator(tmp_path, dict(USERS), limits=limits) as emulator:
        assert push(emulator, "chatty-kernel", cell).ok
        assert emulator.wait_for("alice", "chatty-kernel").status == "COMPLETE"
        session_id = emulator.session_id("alice", "chatty-kernel")
        wait_until(lambda: emulator.sessions.live_log(session_id) is None)
        log = _log_text(emulator, "chatty-kernel")
        stream = requests.get(
            f"{emulator.url}/api/v1/kernels/logs/stream/alice/chatty-kernel",
            auth=("alice", "alice-key"),
            timeout=30,
        )
    assert "line 0\n" in log and "line 2999\n" in log and "left out here" in log
    assert "line 1500\n" not in log
    assert stream.ok and "line 2999" in stream.text


@pytest.mark.slow
def test_the_log_counts_against_the_output_limit(tmp_path: Path):
    limits = Limits(max_output_bytes=50000, max_log_bytes=10**6)
    cell = "import time\nfor i in range(2000):\n    print('x' * 100, flush=True)\ntime.sleep(300)"
    with Emulator(tmp_path, dict(USERS), limits=limits) as emulator:
        assert push(emulator, "log-heavy", cell).ok
        version = emulator.wait_for("alice", "log-heavy")
    assert version.status == "ERROR" and "output bytes" in (version.failure_message or "")


# 6. Output names that are not UTF-8 ------------------------------------------------------


@pytest.mark.slow
def test_outputs_with_non_utf8_names_are_left_out_and_logged(kaggle_emulator: Emulator):
    cell = "open(b'caf\\xe9.txt', 'w').write('x')\nopen('fine.txt', 'w').write('y')"
    assert push(kaggle_emulator, "bytes-name", cell).ok
    assert kaggle_emulator.wait_for("alice", "bytes-name").status == "COMPLETE"
    listing = outputs(kaggle_emulator, "bytes-name")
    names = [item["fileName"] for item in listing["files"]]
    assert "fine.txt" in names and not any("caf" in name for name in names)
    assert "is not listed" in _log_text(kaggle_emulator, "bytes-name")


# 7. A cancel racing the start -------------------------------------------------------------


def _record_statuses(emulator: Emulator, slug: str) -> list[str]:
    seen: list[str] = []
    save = emulator.store.save

    def recording_save() -> None:
        kernel = emulator.store.kernels.get(f"alice/{slug}")
        if kernel is not None and kernel.latest is not None:
            seen.append(kernel.latest.status)
        save()

    emulator.store.save = recording_save  # type: ignore[method-assign]
    return seen


def test_a_cancel_during_mounting_never_starts_the_kernel(
    kaggle_emulator: Emulator, monkeypatch: pytest.MonkeyPatch
):
    sessions = kaggle_emulator.sessions
    mount = sessions._mount_datasets

    def slow_mount(version, input_root, log):
        wait_until(lambda: version.status == "CANCEL_REQUESTED", timeout=30)
        mount(version, input_root, log)

    monkeypatch.setattr(sessions, "_mount_datasets", slow_mount)
    assert push(kaggle_emulator, "cancel-early", SLEEPER).ok
    session_id = kaggle_emulator.session_id("alice", "cancel-early")
    assert call(kaggle_emulator, "CancelKernelSession", {"kernelSessionId": session_id}).ok
    version = kaggle_emulator.wait_for("alice", "cancel-early")
    assert version.status == "CANCEL_ACKNOWLEDGED" and version.started_at is None


def test_a_cancel_right_after_the_start_is_not_overwritten(
    kaggle_emulator: Emulator, monkeypatch: pytest.MonkeyPatch
):
    seen = _record_statuses(kaggle_emulator, "cancel-at-start")
    real_popen = subprocess.Popen

    def popen_then_cancel(*args, **kwargs):
        process = real_popen(*args, **kwargs)
        session_id = kaggle_emulator.session_id("alice", "cancel-at-start")
        kaggle_emulator.kernels.cancel_kernel_session("alice", {"kernelSessionId": session_id})
        return process

    monkeypatch.setattr("kaggletts.emulator.sessions.subprocess.Popen", popen_then_cancel)
    assert push(kaggle_emulator, "cancel-at-start", SLEEPER).ok
    version = kaggle_emulator.wait_for("alice", "cancel-at-start")
    monkeypatch.undo()
    assert version.status == "CANCEL_ACKNOWLEDGED"
    assert "CANCEL_REQUESTED" in seen
    assert "RUNNING" not in seen[seen.index("CANCEL_REQUESTED") :]


# 8. Faults only where they apply, counted only when they happen ----------------------------


def test_forced_faults_must_apply_to_their_target(kaggle_emulator: Emulator):
    for method, kind in (("LogsStream", "lost-reply"), ("download", "lost-reply")):
        with pytest.raises(ValueError, match="does not apply"):
            kaggle_emulator.fail_next(method, kind)
    with pytest.raises(ValueError, match="does not apply"):
        kaggle_emulator.fail_next("SaveKernel", "truncate")


def test_a_lost_upload_reply_keeps_the_bytes(kaggle_emulator: Emulator):
    token = _blob_token(kaggle_emulator, "a.bin", 3)
    kaggle_emulator.fail_next("upload", "lost-reply")
    with pytest.raises(requests.ConnectionError):
        requests.put(f"{kaggle_emulator.url}/_emulator/uploads/{token}", b"abc", timeout=20)
    assert kaggle_emulator.uploads.data_file(token).read_bytes() == b"abc"
    assert kaggle_emulator.faults_injected == {("upload", "lost-reply"): 1}


@pytest.mark.slow
def test_faults_that_do_not_happen_are_not_counted(kaggle_emulator: Emulator):
    assert push(kaggle_emulator, "quick-kernel").ok
    kaggle_emulator.wait_for("alice", "quick-kernel")
    kaggle_emulator.faults = Faults(rate=1.0, kinds=("lost-reply", "truncate"))
    stream = requests.get(
        f"{kaggle_emulator.url}/api/v1/kernels/logs/stream/alice/quick-kernel",
        auth=("alice", "alice-key"),
        timeout=30,
    )
    assert stream.ok
    assert kaggle_emulator.faults_injected == {}
    kaggle_emulator.faults = Faults(rate=0.0)
    kaggle_emulator.fail_next("GetKernelSessionStatus", "lost-reply")
    refused = call(kaggle_emulator, "GetKernelSessionStatus", {"userName": "alice"})
    assert refused.status_code == 400  # the request failed, so its reply was not lost
    assert kaggle_emulator.faults_injected == {}


# 9. The time limit's message ------------------------------------------------------------


@pytest.mark.slow
def test_a_session_past_its_time_limit_ends_with_the_reported_wording(tmp_path: Path):
    # The pushed limit is clamped to the emulator's longest session (2 s here).
    with Emulator(tmp_path, dict(USERS), limits=Limits(max_session_seconds=2)) as emulator:
        assert push(emulator, "clamped", SLEEPER, sessionTimeoutSeconds=3600).ok
        version = emulator.wait_for("alice", "clamped", timeout=60)
    assert version.status == "ERROR"
    # The wording a public script quotes from Kaggle (kaggle.md), not one of the emulator's.
    assert version.failure_message == (
        "Your notebook was stopped because it exceeded the max allowed execution duration."
    )


# 10. Limits no source gives for Kaggle are off unless set ---------------------------------

QUICK_SAVE = {"kernelExecutionType": "QUICK_SAVE"}


def _fill(emulator: Emulator, kernels: int = 0, versions_of: str | None = None, versions: int = 0):
    """Give alice `kernels` more kernels, or `versions` more versions of `versions_of`, as if
    pushed earlier (quicker than pushing them)."""
    store = emulator.store
    with store.lock:
        for index in range(kernels):
            template = store.kernels["alice/first-kernel"]
            copy = dataclasses.replace(template, kernel_id=store.new_id(), slug=f"filled-{index}")
            store.kernels[copy.ref] = copy
        if versions_of is not None:
            kernel = store.kernels[f"alice/{versions_of}"]
            for _ in range(versions):
                number = len(kernel.versions) + 1
                kernel.versions.append(dataclasses.replace(kernel.versions[-1], number=number))
        store.save()


def test_no_cap_on_kernels_or_versions_unless_one_is_set(make_emulator):
    uncapped = make_emulator()
    assert push(uncapped, "first-kernel", **QUICK_SAVE).ok
    _fill(uncapped, kernels=250, versions_of="first-kernel", versions=600)
    assert push(uncapped, "another-kernel", **QUICK_SAVE).ok
    assert push(uncapped, "first-kernel", **QUICK_SAVE).json()["versionNumber"] == 602

    capped = make_emulator(limits=Limits(max_kernels_per_user=2, max_versions_per_kernel=2))
    assert push(capped, "first-kernel", **QUICK_SAVE).ok
    assert push(capped, "first-kernel", **QUICK_SAVE).ok
    assert push(capped, "first-kernel", **QUICK_SAVE).status_code == 429
    assert push(capped, "second-kernel", **QUICK_SAVE).ok
    assert push(capped, "third-kernel", **QUICK_SAVE).status_code == 429


def test_limits_no_source_gives_are_off_by_default():
    assert Limits().max_output_bytes is None
    assert Limits().max_kernels_per_user is None and Limits().max_versions_per_kernel is None


@pytest.mark.slow
def test_a_session_writing_much_is_not_killed_by_default(make_emulator):
    # The size check runs about once a second; the notebook writes, then waits past it.
    cell = "import time\nopen('big.bin', 'wb').write(b'x' * 200_000)\ntime.sleep(2.5)"
    small_limit = make_emulator(limits=Limits(max_output_bytes=100_000))
    default = make_emulator()
    for emulator in (small_limit, default):
        assert push(emulator, "writes-much", cell).ok
    killed = small_limit.wait_for("alice", "writes-much", timeout=60)
    assert killed.status == "ERROR" and "output bytes" in (killed.failure_message or "")
    assert default.wait_for("alice", "writes-much", timeout=60).status == "COMPLETE"
