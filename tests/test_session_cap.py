"""Sessions fan out within the account's concurrent GPU-session cap (issue 18.3): a push
that finds the cap full waits for a slot, and once the run stops (a failed session) no
shard still waiting for a slot is pushed."""

from __future__ import annotations

import pytest
from helpers import KEY, USER, pushes, run_kaggle

import kaggletts
from kaggletts.emulator import Emulator

pytestmark = pytest.mark.slow

TEXTS = [f"Line {n} of a long book." for n in range(1, 7)]


def test_sessions_fan_out_within_the_accounts_gpu_session_cap(tmp_path, standins):
    """Two sessions at once by default; where the account's cap is full (one here, as when
    another session of the account runs), a push waits for a slot and the batch finishes."""
    with Emulator(
        state_dir=tmp_path / "state", users={USER: KEY}, image_paths=[standins.dir],
        gpu_sessions=1,
    ) as emulator:
        result = run_kaggle(
            emulator, tmp_path / "out", {"utterances": TEXTS}, notebook="qwen", shards=3
        )
        assert [clip.line for clip in result.clips] == list(range(1, len(TEXTS) + 1))
        assert pushes(emulator) == 3 < emulator.calls["SaveKernel"]


def test_a_failed_session_stops_the_shards_still_waiting_for_a_slot(tmp_path, standins):
    """One session at a time: when the first fails, the shards waiting for a slot are not
    pushed (their worker must not take them up before the run has stopped)."""
    texts = ["The fatal line.", *TEXTS[1:4]]
    with Emulator(
        state_dir=tmp_path / "state", users={USER: KEY}, image_paths=[standins.dir],
        kernel_env={"KAGGLETTS_STANDIN_FAULT": "exit-text-fatal"},
    ) as emulator:
        with pytest.raises(kaggletts.RunFailed):
            run_kaggle(
                emulator, tmp_path / "out", {"utterances": texts}, notebook="qwen", shards=2,
                gpu_sessions=1,
            )
        assert pushes(emulator) == 1
