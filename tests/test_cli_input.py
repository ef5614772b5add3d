"""What a user types reaches the notebook unchanged: raw `-p` text, plain-text files and
stdin, shipped examples by name; and the API's options are checked with a close match."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import kaggletts
from kaggletts import parameters
from kaggletts.durations import parse_duration
from kaggletts.notebook import find_notebook

ESPEAK = find_notebook("espeak")


def validated(*sources) -> dict:
    return parameters.validate(ESPEAK, parameters.load(*sources))


@pytest.mark.parametrize(
    "typed",
    [
        "Press 1 # then hang up",
        "'quoted'",
        '"a\\tb"',
        "&anchor hi",
        "!!str 5",
        "|",
        "2024-01-31",
        "- a list? no",
        "key: value",
        "3.0",
        "true",
        "~",
    ],
)
def test_a_text_parameter_is_the_argument_as_typed(typed):
    assert validated(parameters.from_cli_pairs([("text", typed)]))["text"] == typed


def test_non_text_parameters_from_p_are_still_read_as_yaml():
    values = validated(parameters.from_cli_pairs([("rate", "120"), ("utterances", "[a, b]")]))
    assert values["rate"] == 120 and values["utterances"] == ["a", "b"]


def test_a_text_file_is_one_utterance_per_non_empty_line_verbatim(tmp_path):
    lines = tmp_path / "lines.txt"
    lines.write_text("# not a comment\n\nkey: not a mapping\n- not a list\n  indented  \n")
    assert validated(str(lines))["utterances"] == [
        "# not a comment",
        "key: not a mapping",
        "- not a list",
        "  indented  ",
    ]


def test_a_bad_line_in_a_text_file_is_named_by_file_and_line(tmp_path):
    lines = tmp_path / "lines.txt"
    lines.write_text("fine\n\n" + "x" * (parameters.MAX_STRING_CHARS + 1) + "\n")
    with pytest.raises(kaggletts.UsageError, match=r"lines.txt:3"):
        validated(str(lines))


def test_stdin_and_shipped_examples_by_name(tmp_path):
    done = subprocess.run(
        [
            str(Path(sys.executable).with_name("kaggletts")),
            "run",
            "espeak",
            "-f",
            "-",
            "--out",
            str(tmp_path),
            "--json",
        ],
        input="First line: with a colon\n# second\n",
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert '"text": "First line: with a colon"' in done.stdout
    assert '"text": "# second"' in done.stdout
    assert (
        validated("espeak-demo")["utterances"]
        == validated(str(parameters.data_dir("params") / "espeak-demo.yaml"))["utterances"]
    )


def test_a_gpu_notebook_goes_to_kaggle_by_default():
    assert kaggletts.api.default_backend(find_notebook("qwen")) == "kaggle"
    assert kaggletts.api.default_backend(find_notebook("chatterbox")) == "kaggle"
    assert kaggletts.api.default_backend(ESPEAK) == "local"


def test_options_are_checked_with_their_backend_and_a_close_match(tmp_path):
    with pytest.raises(kaggletts.UsageError, match="'shards' only applies to backend 'kaggle'"):
        kaggletts.execute("espeak", {"text": "Hi."}, output_dir=tmp_path, shards=2)
    with pytest.raises(kaggletts.UsageError, match="did you mean 'shards'"):
        kaggletts.execute(
            "espeak", {"text": "Hi."}, backend="kaggle", output_dir=tmp_path, shardz=2
        )
    assert not list(tmp_path.rglob("job.json")), "nothing recorded for a refused request"


@pytest.mark.parametrize(
    "text, seconds",
    [
        (90, 90.0),
        ("90", 90.0),
        ("90s", 90.0),
        ("10m", 600.0),
        ("2h", 7200.0),
        ("1h30m", 5400.0),
        (" 1.5m ", 90.0),
    ],
)
def test_durations_are_read_as_people_write_them(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["10 minutes", "m", "-5", "0", "", "1x", True])
def test_a_bad_duration_is_a_clear_error(text):
    with pytest.raises(kaggletts.UsageError, match="duration|seconds"):
        parse_duration(text)


def test_the_kaggle_timeout_takes_a_duration():
    from kaggletts.backends.kaggle import KaggleBackend

    assert KaggleBackend(timeout="10m").timeout == 600.0
    with pytest.raises(kaggletts.UsageError, match="timeout 'soon'"):
        KaggleBackend(timeout="soon")
