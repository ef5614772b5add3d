"""`kaggletts emulator` options: relative paths, the loopback rule, option parsing."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import click.testing
import pytest
import requests
from emulator_helpers import notebook_text

from kaggletts.emulator.cli import _is_loopback
from kaggletts.emulator.cli import emulator as emulator_command

USES_IMAGE_AND_DATASET = """
import os, pathlib
import image_module
root = pathlib.Path(os.environ['KAGGLETTS_INPUT_ROOT'])
assert (root / 'relative-voices' / 'voice.txt').read_text() == 'reference voice'
print(image_module.GREETING)
"""


def _invoke(*args: str) -> click.testing.Result:
    return click.testing.CliRunner().invoke(
        emulator_command, list(args), prog_name="kaggletts emulator"
    )


@pytest.mark.slow
def test_relative_paths_are_taken_from_the_start_directory(tmp_path: Path):
    (tmp_path / "voices").mkdir()
    (tmp_path / "voices" / "voice.txt").write_text("reference voice")
    (tmp_path / "image").mkdir()
    (tmp_path / "image" / "image_module.py").write_text("GREETING = 'from the image'\n")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "kaggletts.emulator",
            "--user",
            "alice:alice-key",
            "--state",
            "state",
            "--dataset",
            "alice/relative-voices=voices",
            "--image-path",
            "image",
        ],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    try:
        url = process.stdout.readline().strip().removeprefix("listening on ")
        api = f"{url}/api/v1/kernels.KernelsApiService"
        auth = ("alice", "alice-key")
        pushed = requests.post(
            f"{api}/SaveKernel",
            json={
                "slug": "alice/relative-paths",
                "newTitle": "Relative Paths",
                "text": notebook_text(USES_IMAGE_AND_DATASET),
                "language": "python",
                "kernelType": "notebook",
                "datasetDataSources": ["alice/relative-voices"],
            },
            auth=auth,
            timeout=30,
        ).json()
        assert pushed["invalidDatasetSources"] == []
        kernel = {"userName": "alice", "kernelSlug": "relative-paths"}
        deadline = time.monotonic() + 120
        while True:
            reply = requests.post(
                f"{api}/GetKernelSessionStatus", json=kernel, auth=auth, timeout=30
            )
            if reply.json()["status"] not in ("QUEUED", "RUNNING") or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert reply.json() == {"status": "COMPLETE"}
        assert (tmp_path / "state" / "state.json").exists()
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0


def test_a_public_address_needs_explicit_users():
    result = _invoke("--host", "0.0.0.0")
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "--user" in lines[0] and "0.0.0.0" in lines[0]


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.1.2.3", True),
        ("::1", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("", False),
        ("192.168.1.20", False),
        ("emulator.example", False),
    ],
)
def test_loopback_addresses(host: str, loopback: bool):
    assert _is_loopback(host) is loopback


@pytest.mark.parametrize("value", ["PREEMPTED", "PREEMPTED:", ":5", "PREEMPTED:-1", "X:soon"])
def test_unknown_status_option_needs_name_and_seconds(value: str):
    result = _invoke("--unknown-status", value)
    assert result.exit_code == 2 and "NAME:SECONDS" in result.output


KAGGLETTS = Path(sys.executable).with_name("kaggletts")


def _serving(*args: str, cwd: Path) -> tuple[subprocess.Popen, str]:
    """`kaggletts emulator ARGS` started and listening: the process and its URL."""
    process = subprocess.Popen([str(KAGGLETTS), "emulator", *args], cwd=cwd,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert process.stdout is not None and process.stderr is not None
    line = process.stdout.readline().strip()
    assert line.startswith("listening on "), (line, process.stderr.read())
    return process, line.removeprefix("listening on ")


def _refused(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    """`kaggletts emulator ARGS`, expected to stop at once with a one-line refusal."""
    process = subprocess.Popen([str(KAGGLETTS), "emulator", *args], cwd=cwd,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        stdout, stderr = process.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        process.send_signal(signal.SIGTERM)
        stdout, stderr = process.communicate(timeout=30)
        pytest.fail(f"the emulator served instead of refusing: {stdout} {stderr}")
    assert process.returncode == 2, (stdout, stderr)
    assert len(stderr.strip().splitlines()) == 1 and "Traceback" not in stderr, stderr
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


def test_a_second_emulator_on_the_same_state_leaves_the_first_ones_sessions(tmp_path):
    first, url = _serving("--user", "alice:alice-key", "--state", "state", cwd=tmp_path)
    api = f"{url}/api/v1/kernels.KernelsApiService"
    auth = ("alice", "alice-key")
    kernel = {"userName": "alice", "kernelSlug": "long-one"}
    try:
        requests.post(f"{api}/SaveKernel", auth=auth, timeout=30, json={
            "slug": "alice/long-one", "newTitle": "Long One", "language": "python",
            "kernelType": "notebook", "text": notebook_text("import time\ntime.sleep(600)"),
        }).raise_for_status()

        def status() -> str:
            return requests.post(f"{api}/GetKernelSessionStatus", json=kernel, auth=auth,
                                 timeout=30).json()["status"]

        deadline = time.monotonic() + 60
        while status() != "RUNNING" and time.monotonic() < deadline:
            time.sleep(0.2)
        assert status() == "RUNNING"

        second = _refused("--user", "alice:alice-key", "--state", "state", cwd=tmp_path)
        assert f"{tmp_path / 'state'} is the state folder of another running emulator" \
            in second.stderr
        time.sleep(1)
        assert status() == "RUNNING", "the first emulator's session was stopped"
    finally:
        first.send_signal(signal.SIGTERM)
        assert first.wait(timeout=30) == 0
    # Once the first one is gone, its state folder serves again.
    again, _ = _serving("--state", "state", cwd=tmp_path)
    again.send_signal(signal.SIGTERM)
    assert again.wait(timeout=30) == 0


def test_a_port_in_use_is_named(tmp_path):
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        refused = _refused("--port", str(port), cwd=tmp_path)
    assert f"cannot listen on 127.0.0.1:{port}: Address already in use" in refused.stderr


def test_a_port_that_cannot_be_is_refused(tmp_path):
    refused = _refused("--port", "99999", cwd=tmp_path)
    assert "cannot listen on 127.0.0.1:99999: bind(): port must be 0-65535" in refused.stderr
