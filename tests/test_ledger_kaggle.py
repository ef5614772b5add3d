"""Every line counts, on the Kaggle backend against the emulator in its default mode: what
a session made is collected from its line ledger however it ended, and the same request
again pushes only the lines that are missing."""

from __future__ import annotations

import pytest
from helpers import KEY, USER, pushed_utterances, pushes, run_kaggle

import kaggletts
from kaggletts.emulator import Emulator, Limits, Quirks

pytestmark = pytest.mark.slow


def test_a_line_that_fails_on_kaggle_costs_only_itself_and_a_rerun_pushes_only_it(
    tmp_path, standins
):
    texts = ["First line.", "Second line.", "The broken line.", "Fourth line."]
    params = {"utterances": texts, "batch_size": 1}
    state = tmp_path / "state"
    with Emulator(
        state_dir=state, users={USER: KEY}, image_paths=[standins.dir],
        kernel_env={"KAGGLETTS_STANDIN_FAULT": "fail-text-broken"},
    ) as emulator:
        with pytest.raises(kaggletts.Incomplete) as ended:
            run_kaggle(emulator, tmp_path / "out", params, notebook="qwen")
        partial = ended.value.result
        port = int(emulator.url.rsplit(":", 1)[1])
        assert [p.name for p in partial.audio] == [
            "001-first-line.wav", "002-second-line.wav", "004-fourth-line.wav"
        ]
        assert [m.number for m in partial.missing] == [3]
        assert "stand-in" in partial.missing[0].reason
    # The same endpoint (port), hence the same job: its ledger says what is missing.
    with Emulator(state_dir=state, users={USER: KEY}, image_paths=[standins.dir],
                  port=port) as emulator:
        whole = run_kaggle(emulator, tmp_path / "out", params, notebook="qwen")
        assert not whole.missing
        assert [p.name for p in whole.audio] == [
            "001-first-line.wav", "002-second-line.wav", "003-the-broken-line.wav",
            "004-fourth-line.wav",
        ]
        assert pushed_utterances(emulator)[-1] == ["The broken line."]
        assert pushes(emulator) == 2


def test_a_deadline_mid_batch_keeps_what_was_made_and_a_rerun_speaks_only_the_rest(
    tmp_path, standins
):
    texts = [f"Line number {n}." for n in range(1, 61)]
    params = {"utterances": texts, "batch_size": 1}
    state = tmp_path / "state"
    # Each line takes a second, so a 25 s budget ends with most of the 60 lines unspoken.
    with Emulator(
        state_dir=state, users={USER: KEY}, image_paths=[standins.dir],
        kernel_env={"KAGGLETTS_STANDIN_FAULT": "sleep-1"},
    ) as emulator:
        with pytest.raises(kaggletts.Incomplete) as ended:
            run_kaggle(emulator, tmp_path / "out", params, notebook="qwen", timeout=25.0)
        first = ended.value.result
        port = int(emulator.url.rsplit(":", 1)[1])
        spoken = len(first.audio)
        assert 0 < spoken < len(texts)
        assert [m.number for m in first.missing] == list(range(spoken + 1, len(texts) + 1))
        assert "deadline passed" in first.missing[0].reason
    with Emulator(state_dir=state, users={USER: KEY}, image_paths=[standins.dir],
                  port=port) as emulator:
        done = run_kaggle(emulator, tmp_path / "out", params, notebook="qwen", timeout=25.0)
        assert [c.line for c in done.clips] == list(range(1, len(texts) + 1))
        # The first session's kernel is kept (FAST keeps kernels): the second push is last.
        assert pushed_utterances(emulator)[1:] == [texts[spoken:]]


def test_a_session_that_errors_keeps_its_clips_only_where_failed_outputs_are_listed(
    tmp_path, standins
):
    """The notebook's own process dies mid-batch (os._exit in the stand-in on the third
    line): where Kaggle lists a failed version's outputs (an assumption) the clips made
    before are kept; by default the user is told they are lost."""
    texts = ["First line.", "Second line.", "The fatal line.", "Fourth line."]
    params = {"utterances": texts, "batch_size": 1}
    for assume, kept in (((), 0), (("failed-outputs",), 2)):
        with Emulator(
            state_dir=tmp_path / f"state-{kept}", users={USER: KEY}, image_paths=[standins.dir],
            kernel_env={"KAGGLETTS_STANDIN_FAULT": "exit-text-fatal"}, assume=assume,
        ) as emulator:
            out = tmp_path / f"out-{kept}"
            with pytest.raises(kaggletts.RunFailed) as failure:
                run_kaggle(emulator, out, params, notebook="qwen")
            wavs = sorted(p.name for p in out.rglob("*.wav"))
            if kept:
                assert f"the {kept} clips it made were kept" in str(failure.value)
                assert wavs == ["001-first-line.wav", "002-second-line.wav"]
            else:
                assert "what it made is lost" in str(failure.value)
                assert wavs == []


def test_twelve_hundred_lines_are_collected_within_the_listing_cap(tmp_path):
    texts = [f"Line {n}." for n in range(1, 1201)]
    with Emulator(
        state_dir=tmp_path / "state", users={USER: KEY}, quirks=Quirks(unlisted_notebook=True)
    ) as emulator:
        assert emulator.config.limits.listed_outputs == Limits().listed_outputs == 500
        result = run_kaggle(emulator, tmp_path / "out", {"utterances": texts})
        assert len(result.audio) == 1200 and not result.missing
        assert [c.line for c in result.clips] == list(range(1, 1201))
        assert pushes(emulator) == 3  # at most 480 lines a session
        assert all(path.is_file() for path in result.audio)


def test_a_request_with_two_of_twenty_lines_edited_pushes_only_those_two(tmp_path):
    texts = [f"Line {n} of a script read on the emulator." for n in range(1, 21)]
    edited = list(texts)
    edited[4], edited[11] = "Line five, rewritten.", "Line twelve, rewritten."
    with Emulator(state_dir=tmp_path / "state", users={USER: KEY}) as emulator:
        first = run_kaggle(emulator, tmp_path / "out", {"utterances": texts})
        second = run_kaggle(emulator, tmp_path / "out", {"utterances": edited})
        assert second.job_id != first.job_id
        assert pushed_utterances(emulator) == [texts, [edited[4], edited[11]]]
        assert [c.text for c in second.clips] == edited
        reused = [n for n, c in enumerate(second.clips, 1) if c.reused]
        assert reused == [n for n in range(1, 21) if n not in (5, 12)]
        for number in reused:
            assert second.audio[number - 1].read_bytes() == first.audio[number - 1].read_bytes()
        assert second.audio[4].name == "005-line-five-rewritten.wav"


def test_sharded_results_name_each_clip_by_its_real_path(tmp_path):
    import csv

    texts = ["Alpha one.", "Beta two.", "Gamma three.", "Delta four."]
    with Emulator(state_dir=tmp_path / "state", users={USER: KEY}) as emulator:
        result = run_kaggle(emulator, tmp_path / "out", {"utterances": texts}, shards=2)
    files = [clip.file for clip in result.clips]
    assert files == ["shard-1/001-alpha-one.wav", "shard-1/002-beta-two.wav",
                     "shard-2/003-gamma-three.wav", "shard-2/004-delta-four.wav"]
    assert [result.directory / name for name in files] == result.audio
    with (result.directory / "clips.csv").open(encoding="utf-8-sig", newline="") as handle:
        assert [row["file"] for row in csv.DictReader(handle)] == files
