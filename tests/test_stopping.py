"""Stopping that stops (issue 17.4): a session past its time limit is stopped by deleting
its kernel, `kaggletts cancel` deletes a running job's kernels, and `kaggletts clean`
deletes the kernels of jobs that are over, never any other kernel."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from helpers import (
    KEY,
    USER,
    cli_env,
    kaggletts_cli,
    kernels,
    record_of,
    run_kaggle,
    wait_until,
)

from kaggletts.backends.kaggle import push
from kaggletts.backends.kaggle.credentials import Credentials
from kaggletts.backends.kaggle.remote import KaggleRemote
from kaggletts.emulator import Emulator
from kaggletts.emulator.config import Quirks
from kaggletts.errors import RunFailed


def test_a_session_past_its_time_limit_is_stopped_by_deleting_its_kernel(
    tmp_path, notebook_maker, monkeypatch, caplog
):
    """With the emulator ignoring the limit pushed (the CI report's kernel), the backend
    does not wait for a session that "stops by itself": it deletes the kernel and says so,
    and what the session made is reported lost (a running session's outputs are not
    listed by default)."""
    hanging = notebook_maker(
        tmp_path / "hangs.ipynb", "seconds: int = 120  # How long", ("work", "import time\n"
                                                                    "time.sleep(seconds)")
    )
    # Scale the margin Kaggle's limit gets over the run's own budget down to test time.
    monkeypatch.setattr(push, "SESSION_MARGIN_SECONDS", 1)
    caplog.set_level(logging.WARNING, logger="kaggletts")
    with Emulator(
        state_dir=tmp_path / "state", users={USER: KEY},
        quirks=Quirks(ignored_time_limit=True),
    ) as emulator:
        with pytest.raises(RunFailed, match="deleted kernel alice/") as stopped:
            run_kaggle(emulator, tmp_path / "out", {}, notebook=hanging, timeout=1.0,
                       overrun_wait=1.0)
        assert kernels(emulator) == [], "the kernel was deleted"
        assert "past its time limit" in str(stopped.value)
        assert "what it made is lost" in str(stopped.value)
        [shard] = record_of(tmp_path / "out")["run"]["shards"]
        assert shard["state"] == "stopped"
        assert "deleted kernel" in caplog.text


def test_cancel_says_what_is_lost_then_deletes_the_running_kernel(tmp_path, standins):
    """`kaggletts cancel` stops a run on real Kaggle's terms: no session id is known, so
    it deletes the kernel, which ends its session, after saying what that loses."""
    batch = tmp_path / "batch.txt"
    batch.write_text("".join(f"Line number {n}.\n" for n in range(1, 31)))
    with Emulator(
        state_dir=tmp_path / "state", users={USER: KEY}, image_paths=[standins.dir],
        kernel_env={"KAGGLETTS_STANDIN_FAULT": "sleep-1"},
    ) as emulator:
        env = cli_env(emulator, KAGGLETTS_OUTPUT=str(tmp_path / "o"))
        client_said = tmp_path / "client.err"
        with client_said.open("w") as client_err:
            client = subprocess.Popen(
                [Path(sys.executable).with_name("kaggletts"), "run", "qwen", "-f", batch,
                 "--backend", "kaggle"],
                env=env, stdout=subprocess.DEVNULL, stderr=client_err,
            )
            try:
                wait_until(lambda: kernels(emulator), "the push")
                [slug] = kernels(emulator)
                wait_until(lambda: emulator.status(USER, slug) == "RUNNING", "the session")
                job_id = record_of(tmp_path / "o")["job_id"]
                cancelled = kaggletts_cli("cancel", job_id, "--yes", env=env)
                # The run still driving the job finds its kernel gone; it must end without
                # writing "failed" over the record `cancel` wrote.
                ended = client.wait(timeout=120)
            finally:
                client.kill()
                client.wait(timeout=30)
        assert cancelled.returncode == 0, cancelled.stderr
        assert ended == 1
        assert "was cancelled by another kaggletts process" in client_said.read_text()
        said = cancelled.stdout
        assert said.index("are lost unless") < said.index("deleted kernel"), "warned first"
        assert f"deleted kernel {USER}/{slug}, which stops its session" in said
        assert kernels(emulator) == []
    record = record_of(tmp_path / "o")
    assert record["state"] == "cancelled"
    assert record["run"]["shards"][0]["state"] == "stopped"


def push_own_kernel(emulator: Emulator, folder: Path, slug: str) -> None:
    """A kernel the user made without kaggletts, named like one of its own."""
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("print('mine')")])
    notebook.metadata["kernelspec"] = {"name": "python3", "language": "python",
                                       "display_name": "Python 3"}
    folder.mkdir()
    (folder / "notebook.ipynb").write_text(nbformat.writes(notebook))
    metadata = {"id": f"{USER}/{slug}", "title": slug.replace("-", " "),
                "code_file": "notebook.ipynb", "language": "python", "kernel_type": "notebook",
                "is_private": True, "enable_gpu": False, "enable_internet": False}
    (folder / "kernel-metadata.json").write_text(json.dumps(metadata))
    KaggleRemote(Credentials(USER, key=KEY), emulator.url).push(folder)


def test_clean_deletes_only_the_kernels_of_jobs_that_are_over(
    tmp_path, emulator, failing_notebook
):
    """A failed job's kernel is left on Kaggle (for a look at it); `kaggletts clean`
    lists it, `--yes` deletes it, and a kernel kaggletts did not make is never touched,
    even one named like its own."""
    out = tmp_path / "o"
    env = cli_env(emulator, KAGGLETTS_OUTPUT=str(out))
    own = "kaggletts-espeak-0123456789-1-1"
    push_own_kernel(emulator, tmp_path / "own", own)
    failed = kaggletts_cli(
        "run", str(failing_notebook), "--backend", "kaggle", "--text", "Broken.", env=env
    )
    assert failed.returncode == 1, failed.stderr
    [leftover] = [slug for slug in kernels(emulator) if slug != own]

    listed = kaggletts_cli("clean", env=env)
    assert listed.returncode == 0, listed.stderr
    assert f"would delete {USER}/{leftover} " in listed.stdout
    assert kernels(emulator) == sorted([leftover, own]), "a dry run by default"

    cleaned = kaggletts_cli("clean", "--yes", env=env)
    assert cleaned.returncode == 0, cleaned.stderr
    assert f"deleted {USER}/{leftover} " in cleaned.stdout
    assert kernels(emulator) == [own]
    again = kaggletts_cli("clean", env=env)
    assert "no kernel of a finished job is left" in again.stdout
