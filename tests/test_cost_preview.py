"""The price before the push (issue 17.8): a GPU notebook's push is preceded by its
estimated session time, with its source, the GPU quota left this week, and above a
threshold a question that a run without a terminal answers by refusing (--yes pushes)."""

from __future__ import annotations

from helpers import KEY, USER, cli_env, kaggletts_cli

from kaggletts.emulator import Emulator


def test_a_gpu_push_prints_its_estimate_and_asks_above_the_threshold(tmp_path, standins):
    first, second = tmp_path / "first.txt", tmp_path / "second.txt"
    first.write_text("The first line.\nThe second line.\nThe third line.\n")
    second.write_text("Another line.\nAnd one more.\n")
    with Emulator(
        state_dir=tmp_path / "state", users={USER: KEY}, image_paths=[standins.dir]
    ) as emulator:
        env = cli_env(emulator, KAGGLETTS_OUTPUT=str(tmp_path / "o"))
        ran = kaggletts_cli("run", "qwen", "-f", str(first), env=env)
        assert ran.returncode == 0, ran.stderr
        # Nothing of the user's own yet: the measured run, named as the source.
        # 114 s to start and 26 s for each of 3 lines: about 3 min.
        assert (
            "estimate: about 3 min of GPU session time, taken from the GPU quota, for 3 lines "
            "in 1 session; " in ran.stderr
        )
        assert "Source: a measured P100 run of Qwen3-TTS 1.7B fp16" in ran.stderr
        assert "h of GPU quota left this week (refreshes " in ran.stderr
        assert ran.stderr.index("estimate:") < ran.stderr.index("pushed ")

        # The first run is finished and stored: the estimate now comes from it (the
        # stand-in model's seconds, well above a one-second threshold).
        refused = kaggletts_cli("run", "qwen", "-f", str(second), "--ask-above", "1s", env=env)
        assert refused.returncode == 2
        assert "for 2 lines in 1 session; " in refused.stderr
        assert "Source: from 1 finished Kaggle session of yours of qwen" in refused.stderr
        assert "no terminal to ask on; add --yes" in refused.stderr
        assert emulator.calls["SaveKernel"] == 1, "nothing pushed without a yes"

        agreed = kaggletts_cli(
            "run", "qwen", "-f", str(second), "--ask-above", "1s", "--yes", env=env
        )
        assert agreed.returncode == 0, agreed.stderr
        assert emulator.calls["SaveKernel"] == 2
