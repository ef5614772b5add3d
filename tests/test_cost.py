"""What a run costs: the figures the notebooks record, the line `kaggletts run` prints, and
`kaggletts quota --estimate` from stored runs of the same notebook, mode and model."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

import kaggletts
from kaggletts import cli, cost
from kaggletts.backends.kaggle.credentials import Credentials
from kaggletts.backends.kaggle.polling import PollSchedule
from kaggletts.emulator import Emulator
from kaggletts.emulator.pytest_plugin import USERS
from kaggletts.records import RunRecord
from kaggletts.result import Result

QWEN = cost.RunKind("qwen", "custom_voice", "Qwen/Qwen3-TTS-12Hz-1.7B-CustomVoice")


def scrap(total, synthesis, characters, audio, **kind):
    return {"total_seconds": total, "synthesis_seconds": synthesis, "characters": characters,
            "audio_seconds": audio, "mode": "custom_voice",
            "model_id": "Qwen/Qwen3-TTS-12Hz-1.7B-CustomVoice", **kind}


def result(backend, *runs, notebook="qwen"):
    scraps = {"clips": [], "run": runs[0]}
    if len(runs) > 1:
        scraps["shards"] = list(runs)
    return Result("job", notebook, backend, Path("."), [], scraps, Path("x.ipynb"))


def test_a_run_recorded_before_the_figures_existed_has_no_cost():
    assert cost.RunCost.from_run("qwen", RunRecord(total_seconds=10.0)) is None
    assert cost.run_costs(result("kaggle", {"total_seconds": 10.0})) == []


def test_the_summary_counts_every_session_of_a_sharded_kaggle_run():
    line = cost.summary(result("kaggle", scrap(300, 200, 1000, 60), scrap(300, 200, 1000, 60)))
    assert line == ("300.0 s of session per minute of audio; this run used at least "
                    "10.0 min of GPU quota in 2 sessions (plus each session's start-up)")
    assert cost.summary(result("local", scrap(30, 20, 100, 6))) is None, "nothing to count"
    on_cpus = cost.summary(result("kaggle", scrap(30, 20, 100, 6), notebook="espeak"))
    assert on_cpus == (
        "300.0 s of session per minute of audio on Kaggle's CPUs (no GPU quota used)"
    )


def recorded(run: dict) -> cost.RunCost:
    found = cost.RunCost.from_run("qwen", RunRecord.from_dict(run, "a test's run"))
    assert found is not None
    return found


def test_the_estimate_uses_only_runs_of_the_same_kind():
    history = [recorded(scrap(300, 200, 1000, 60)),
               recorded(scrap(500, 400, 1000, 60)),
               recorded(scrap(900, 10, 10, 6, model_id="other"))]
    found = cost.estimate(QWEN, 4000, history)
    assert found is not None
    assert (found.runs, found.startup_seconds) == (2, 100)
    assert found.seconds_per_character == pytest.approx(0.3)  # 600 s for 2000 characters
    assert found.session_seconds == pytest.approx(100 + 0.3 * 4000)
    assert cost.estimate(cost.RunKind("chatterbox", "english", ""), 10, history) is None


@pytest.mark.slow
def test_quota_estimate_reads_the_kaggle_jobs_stored_under_the_output_folder(
    kaggle_emulator: Emulator, tmp_path: Path
):
    out = tmp_path / "out"
    spoken = kaggletts.execute(
        "espeak",
        {"utterances": ["The first line of a recorded run.", "And its second line."]},
        backend="kaggle",
        output_dir=out,
        endpoint=kaggle_emulator.url,
        credentials=Credentials("alice", key=USERS["alice"]),
        poll=PollSchedule(first=0.2, fraction=0.1, cap=1.0),
        settle_wait=0.2,
    )
    [recorded] = cost.run_costs(spoken)
    batch = tmp_path / "batch.yaml"
    batch.write_text("utterances:\n  - " + "x" * 500 + "\n  - " + "y" * 500 + "\n")

    outcome = CliRunner().invoke(
        cli.cli, ["quota", "--estimate", "espeak", "-f", str(batch), "--out", str(out)]
    )

    assert outcome.exit_code == 0, outcome.output
    seconds = recorded.startup_seconds + recorded.synthesis_seconds / recorded.characters * 1000
    assert outcome.output.startswith(
        f"espeak: 1000 characters, about {seconds / 60:.1f} min of session time (CPU only: "
        f"no GPU quota) in one session: {recorded.startup_seconds:.0f} s to start"
    )
    assert "from 1 recorded session (their own time" in outcome.output
    voice_design = tmp_path / "design.yaml"
    voice_design.write_text("mode: voice_design\nmodel_id: Qwen/Qwen3-TTS-12Hz-1.7B-VoiceDesign"
                            "\ninstruct: calm\ntext: Hello.\n")
    outcome = CliRunner().invoke(
        cli.cli, ["quota", "--estimate", "qwen", "-f", str(voice_design), "--out", str(out)]
    )
    assert outcome.exit_code == 0, outcome.output
    assert "no Kaggle run of qwen, voice_design" in outcome.output
