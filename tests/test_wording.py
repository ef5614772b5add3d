"""What users read: counts in the singular where there is one, a cost line only where a
run costs something, a byte-order mark that is not spoken, no kernel noise from the
emulator."""

from __future__ import annotations

import json

import pytest
from helpers import cli_env, kaggletts_cli


def test_a_one_line_local_run_says_1_clip_and_no_cost(run_cli, tmp_path):
    done = run_cli("run", "espeak", "--text", "Hello there.", "--out", str(tmp_path / "out"))
    assert done.code == 0, done.stderr
    assert done.stdout.startswith("1 clip, "), done.stdout
    assert "  done: 1 clip in " in done.stderr, "the kernel's own count too"
    assert "cost:" not in done.stdout, "a run on this machine takes no quota to count"
    assert run_cli("cache").stdout.startswith("1 clip, ")
    assert run_cli("cache", "--clear").stdout.startswith("removed 1 clip from ")


def test_a_byte_order_mark_at_the_start_of_a_text_file_is_not_spoken(run_cli, tmp_path):
    lines = tmp_path / "lines.txt"
    lines.write_bytes("Hello there.\nSecond line.\n".encode("utf-8-sig"))
    done = run_cli("run", "espeak", "-f", str(lines), "--out", str(tmp_path / "out"), "--json")
    assert done.code == 0, done.stderr
    clips = json.loads(done.stdout)["scraps"]["clips"]
    assert [clip["text"] for clip in clips] == ["Hello there.", "Second line."]
    assert clips[0]["file"] == "001-hello-there.wav"


def test_the_notebook_list_says_where_each_runs_in_words(run_cli):
    listed = run_cli("notebooks", "espeak", "qwen").stdout
    assert "espeak  (runs on this machine by default;" in listed
    assert "qwen  (runs on Kaggle by default;" in listed


@pytest.mark.slow
def test_an_emulator_run_shows_no_kernel_warning_and_counts_one_clip(emulator, tmp_path):
    done = kaggletts_cli(
        "run",
        "espeak",
        "--backend",
        "kaggle",
        "--text",
        "Hello there.",
        env=cli_env(emulator, KAGGLETTS_OUTPUT=str(tmp_path / "out")),
    )
    assert done.returncode == 0, done.stderr
    assert "without encryption" not in done.stderr
    assert "downloaded and verified 1 clip and the line ledger" in done.stderr
    assert done.stdout.startswith("1 clip, ")
