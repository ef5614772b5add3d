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
