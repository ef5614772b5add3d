"""The qwen notebook's batched generation and worker processes against the real qwen-tts
with a tiny checkpoint: two "devices" (two CPU worker processes standing in for a T4 x2
session's GPUs) each speak a share, the clips come back in input order, and the audio is
the same as one worker's for the same seed."""

from __future__ import annotations

import pytest
from conftest import CUSTOM_VOICE
from test_qwen_notebook import CLIP_SECONDS, check_result, run

LINES = [f"Line number {n}." for n in range(1, 7)]


@pytest.fixture(scope="module")
def one_worker(kernel, tmp_path_factory):
    return run(tmp_path_factory.mktemp("one"), {"model_id": CUSTOM_VOICE, "utterances": LINES,
                                                "batch_size": 2, "workers": 1})


@pytest.fixture(scope="module")
def two_workers(kernel, tmp_path_factory):
    return run(tmp_path_factory.mktemp("two"), {"model_id": CUSTOM_VOICE, "utterances": LINES,
                                                "batch_size": 2, "workers": 2})


def test_lines_are_generated_together_through_the_real_batched_api(one_worker):
    check_result(one_worker, LINES)
    assert [clip["batch"] for clip in one_worker.clips] == [2] * len(LINES)
    assert [c["duration"] for c in one_worker.clips] == pytest.approx([CLIP_SECONDS] * 6)


def test_two_workers_each_make_their_share_in_input_order(two_workers):
    check_result(two_workers, LINES)
    devices = [clip["device"] for clip in two_workers.clips]
    assert sorted(devices) == ["cpu:0"] * 3 + ["cpu:1"] * 3
    assert two_workers.scraps["run"]["devices"] == ["cpu:0", "cpu:1"]
    assert two_workers.scraps["run"]["precisions_used"] == ["float16"]


def test_two_workers_make_the_same_audio_as_one(one_worker, two_workers):
    assert [c["sha256"] for c in two_workers.clips] == [c["sha256"] for c in one_worker.clips]
