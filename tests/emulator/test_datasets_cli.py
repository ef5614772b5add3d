"""Datasets from the official client and from Python, mounted into runs; the CLI lifecycle."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import requests
from emulator_helpers import call, push

from kaggletts.emulator import Emulator

# Every test here runs kernel sessions that read a dataset.
pytestmark = pytest.mark.slow

CHECK_INPUTS = """
import os, pathlib
root = pathlib.Path(os.environ['KAGGLETTS_INPUT_ROOT'])
flat = (root / '{slug}' / 'voice.txt').read_text()
nested = (root / 'datasets' / 'alice' / '{slug}' / 'voice.txt').read_text()
assert flat == nested == 'reference voice'
# Mode bits, not a write attempt: root (as in CI containers) may write anyway.
assert (root / '{slug}' / 'voice.txt').stat().st_mode & 0o222 == 0
print('inputs are read-only')
"""


def test_official_client_creates_a_dataset_a_run_reads(
    kaggle_emulator: Emulator, official_api, tmp_path: Path
):
    api = official_api("alice")
    folder = tmp_path / "voices"
    folder.mkdir()
    (folder / "voice.txt").write_text("reference voice")
    metadata = {
        "title": "Reference Voices",
        "id": "alice/reference-voices",
        "licenses": [{"name": "CC0-1.0"}],
    }
    (folder / "dataset-metadata.json").write_text(json.dumps(metadata))
    created = api.dataset_create_new(str(folder), public=False, quiet=True)
    assert created.status == "ok", created.error
    assert api.dataset_status("alice/reference-voices") == "ready"
    reply = push(
        kaggle_emulator,
        "reads-voices",
        CHECK_INPUTS.format(slug="reference-voices"),
        datasetDataSources=["alice/reference-voices"],
    )
    assert reply.json()["invalidDatasetSources"] == []
    version = kaggle_emulator.wait_for("alice", "reads-voices")
    assert version.status == "COMPLETE", version.failure_message
    other = push(
        kaggle_emulator, "bob-voices", datasetDataSources=["alice/reference-voices"], user="bob"
    )
    assert other.json()["invalidDatasetSources"] == ["alice/reference-voices"]


def test_python_dataset_and_cli(tmp_path: Path):
    folder = tmp_path / "voices"
    folder.mkdir()
    (folder / "voice.txt").write_text("reference voice")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "kaggletts.emulator",
            "--port",
            "0",
            "--user",
            "alice:alice-key",
            "--state",
            str(tmp_path / "state"),
            "--dataset",
            f"alice/cli-voices={folder}",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    try:
        line = process.stdout.readline().strip()
        assert line.startswith("listening on http://127.0.0.1:")
        url = line.removeprefix("listening on ")
        quota = f"{url}/api/v1/kernels.KernelsApiService/GetAcceleratorQuotaStatistics"
        assert requests.post(quota, json={}, auth=("alice", "alice-key"), timeout=10).ok
        dataset = f"{url}/api/v1/datasets.DatasetApiService/GetDataset"
        body = {"ownerSlug": "alice", "datasetSlug": "cli-voices"}
        found = requests.post(dataset, json=body, auth=("alice", "alice-key"), timeout=10)
        assert found.json()["files"][0]["name"] == "voice.txt"
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0


def test_python_create_dataset(kaggle_emulator: Emulator, tmp_path: Path):
    voice = tmp_path / "voice.txt"
    voice.write_text("reference voice")
    kaggle_emulator.create_dataset("alice", "python-voices", [voice])
    reply = push(
        kaggle_emulator,
        "python-voices-run",
        CHECK_INPUTS.format(slug="python-voices"),
        datasetDataSources=["alice/python-voices"],
    )
    assert reply.ok
    assert kaggle_emulator.wait_for("alice", "python-voices-run").status == "COMPLETE"
    body = {"ownerSlug": "alice", "datasetSlug": "python-voices"}
    service = "datasets.DatasetApiService"
    assert call(kaggle_emulator, "GetDataset", body, user="bob", service=service).status_code == 404
