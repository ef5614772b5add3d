"""The qwen notebook's batched generation and worker processes against the real qwen-tts
with a tiny checkpoint: two "devices" (two CPU worker processes standing in for a T4 x2
session's GPUs) each speak a share, the clips come back in input order, and the audio is
the same as one worker's for the same seed."""

from __future__ import annotations

import pytest
from qwen_runs import CLIP_SECONDS, CUSTOM_VOICE, check_result, run

LINES = [f"Line number {n}." for n in range(1, 7)]


@pytest.fixture(scope="module")
def one_thread(kernel):
    """CPU sums depend on how many threads share them: the same seed gives the same audio
    only with the same thread count, so each worker, and the single one, gets one."""
    kernel.setenv("OMP_NUM_THREADS", "1")
    yield
    kernel.delenv("OMP_NUM_THREADS")


@pytest.fixture(scope="module")
def one_worker(one_thread, tmp_path_factory):
    return run(tmp_path_factory.mktemp("one"), {"model_id": CUSTOM_VOICE, "utterances": LINES,
                                                "batch_size": 2, "workers": 1})


@pytest.fixture(scope="module")
def two_workers(one_thread, tmp_path_factory):
    return run(tmp_path_factory.mktemp("two"), {"model_id": CUSTOM_VOICE, "utterances": LINES,
                                                "batch_size": 2, "workers": 2})


def test_lines_are_generated_together_through_the_real_batched_api(one_worker):
    check_result(one_worker, LINES)
    assert [clip.batch for clip in one_worker.clips] == [2] * len(LINES)
    assert [c.duration for c in one_worker.clips] == pytest.approx([CLIP_SECONDS] * 6)


def test_two_workers_each_make_their_share_in_input_order(two_workers):
    check_result(two_workers, LINES)
    devices = [clip.device for clip in two_workers.clips]
    # Three batches of two lines dealt by expected length: two to one worker, one to the other.
    assert sorted(devices.count(device) for device in ("cpu:0", "cpu:1")) == [2, 4]
    assert [clip.batch for clip in two_workers.clips] == [2] * len(LINES)
    assert two_workers.scraps["run"]["devices"] == ["cpu:0", "cpu:1"]
    assert two_workers.scraps["run"]["precisions_used"] == ["float32"]


def test_two_workers_make_the_same_audio_as_one(one_worker, two_workers):
    assert [c.sha256 for c in two_workers.clips] == [c.sha256 for c in one_worker.clips]
