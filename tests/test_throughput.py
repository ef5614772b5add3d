"""The qwen notebook's batched generation and worker processes, run under the stand-in
qwen_tts (tests/standins): how lines are grouped into calls, what happens when a call runs
out of memory or fails, and that two workers split the batch and keep its order."""

from __future__ import annotations

import pytest

import kaggletts

pytestmark = pytest.mark.slow

LINES = ["One.", "Number two.", "The third line.", "Four.", "The fifth line is longest."]


def run_qwen(standins, monkeypatch, tmp_path, params, fault=None):
    calls = standins.use(monkeypatch, tmp_path / "calls.jsonl", fault=fault)
    outcome: kaggletts.Result | kaggletts.RunFailed
    try:
        outcome = kaggletts.execute("qwen", {"utterances": LINES, **params}, backend="local",
                                    output_dir=tmp_path / "out")
    except kaggletts.RunFailed as failure:
        outcome = failure
    generations = [c for c in standins.calls(calls) if c["method"] == "generate_custom_voice"]
    return outcome, [c["args"][0] for c in generations]


def spoken_in_order(result) -> None:
    assert isinstance(result, kaggletts.Result), result
    assert [clip.text for clip in result.clips] == LINES
    assert [path.name[:3] for path in result.audio] == ["001", "002", "003", "004", "005"]


def test_lines_with_the_same_settings_are_generated_together_by_length(
        standins, monkeypatch, tmp_path):
    result, calls = run_qwen(standins, monkeypatch, tmp_path, {"batch_size": 2})
    spoken_in_order(result)
    assert calls == [["One.", "Four."], ["Number two.", "The third line."],
                     ["The fifth line is longest."]]
    assert [clip.batch for clip in result.clips] == [2, 2, 2, 2, 1]
    assert result.scraps["run"]["batch_size"] == 2


def test_out_of_memory_halves_the_batch_for_the_rest_of_the_run(standins, monkeypatch, tmp_path):
    result, calls = run_qwen(standins, monkeypatch, tmp_path, {"batch_size": 5},
                             fault="oom-over-2")
    spoken_in_order(result)
    assert [len(call) for call in calls] == [5, 2, 2, 1]  # 5 failed, then at most 2 at once


def test_a_failed_batch_has_its_lines_spoken_alone(standins, monkeypatch, tmp_path):
    result, calls = run_qwen(standins, monkeypatch, tmp_path, {"batch_size": 5},
                             fault="fail-batches")
    spoken_in_order(result)
    assert calls[0] == sorted(LINES, key=len)
    assert sorted(calls[1:]) == sorted([line] for line in LINES)


def test_a_nan_clip_in_a_batch_is_made_again_alone(standins, monkeypatch, tmp_path):
    result, calls = run_qwen(standins, monkeypatch, tmp_path,
                             {"batch_size": 5, "dtype": "float16"}, fault="nan-once")
    spoken_in_order(result)
    assert calls[0] == sorted(LINES, key=len)
    assert sorted(calls[1:]) == sorted([line] for line in LINES)
    assert {clip.extra["precision"] for clip in result.clips} == {"float16"}  # alone, it was fine


@pytest.fixture
def two_workers(standins, monkeypatch, tmp_path):
    return run_qwen(standins, monkeypatch, tmp_path / "two", {"batch_size": 2, "workers": 2})


def test_two_workers_each_speak_a_share_and_the_order_is_kept(two_workers):
    result, calls = two_workers
    spoken_in_order(result)
    devices = [clip.device for clip in result.clips]
    assert set(devices) == {"cpu:0", "cpu:1"}
    assert result.scraps["run"]["devices"] == ["cpu:0", "cpu:1"]
    assert sorted(map(tuple, calls)) == sorted(map(tuple, [
        ["One.", "Four."], ["Number two.", "The third line."], ["The fifth line is longest."]]))


def test_two_workers_make_the_same_audio_as_one(two_workers, standins, monkeypatch, tmp_path):
    one, _ = run_qwen(standins, monkeypatch, tmp_path / "one", {"batch_size": 2})
    two, _ = two_workers
    assert [c.sha256 for c in two.clips] == [c.sha256 for c in one.clips]
    assert {clip.device for clip in one.clips} == {"cpu"}


def test_workers_that_cannot_use_cuda_leave_the_batch_to_the_notebooks_own_process(
        standins, monkeypatch, tmp_path):
    result, calls = run_qwen(standins, monkeypatch, tmp_path, {"batch_size": 2, "workers": 2},
                             fault="cuda-lost-in-fork")
    spoken_in_order(result)
    assert {clip.device for clip in result.clips} == {"cpu:0"}
    assert result.scraps["run"]["devices"] == ["cpu:0"]
    assert len(calls) == 3
