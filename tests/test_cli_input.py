"""What a user types reaches the notebook unchanged: raw `-p` text, plain-text files and
stdin, shipped examples by name; and the API's options are checked with a close match."""

from __future__ import annotations

import os
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
        "| then",
        "2024-01-31",
        "- a list? no",
        "key: value",
        "3.0",
        "true",
        "~ home",
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


def test_a_bad_kaggle_timeout_in_python_is_refused_where_it_enters(tmp_path):
    """Before any credentials are looked for, and with the words a settings file's gets."""
    with pytest.raises(kaggletts.UsageError) as error:
        kaggletts.execute(
            "espeak", {"text": "Hi."}, backend="kaggle", output_dir=tmp_path, timeout="soon"
        )
    assert str(error.value) == (
        "kaggletts.execute: kaggle.timeout 'soon' is not a duration; write 90, 90s, 10m or 2h"
    )


def refused(result, *expected: str) -> None:
    """Exit 2 with one line on stderr naming the problem: no traceback, no internal error."""
    assert result.code == 2, result
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert result.stderr.startswith("error: "), result.stderr
    for text in expected:
        assert text in result.stderr, (text, result.stderr)


def test_a_nul_in_a_text_file_is_refused_naming_its_line(run_cli, tmp_path):
    lines = tmp_path / "nul.txt"
    lines.write_bytes(b"Fine.\nHello\0world and more words here\n")
    result = run_cli("run", "espeak", "-f", str(lines), "--out", str(tmp_path / "out"))
    refused(result, "nul.txt:2:", "control character U+0000 at character 6")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("given", ["--text", "-p"])
def test_an_escape_typed_on_the_command_line_is_refused(run_cli, tmp_path, given):
    args = ("--text",) if given == "--text" else ("-p", "text")
    result = run_cli("run", "espeak", *args, "\x1b[31mred", "--out", str(tmp_path / "out"))
    refused(result, "control character U+001B at character 1")


def test_tabs_and_line_breaks_inside_a_line_are_kept_as_given(tmp_path):
    path = tmp_path / "spacing.yaml"
    path.write_text('text: "one\ttwo"\nutterances:\n  - |\n    three\n    four\n')
    values = validated(str(path))
    assert values["text"] == "one\ttwo"
    assert values["utterances"] == ["three\nfour\n"]


@pytest.mark.parametrize("text", ["....", "\u200b", " - ! "])
def test_a_line_with_nothing_to_speak_is_refused(run_cli, tmp_path, text):
    result = run_cli("run", "espeak", "--text", text, "--out", str(tmp_path / "out"))
    refused(result, "`text` has nothing to speak", "has no letter or digit")


@pytest.mark.parametrize("folder", [".cache", "kernel", "shard-1", "result.json", "a\\b"])
def test_an_output_folder_kaggletts_would_not_collect_is_refused(run_cli, tmp_path, folder):
    result = run_cli("run", "espeak", "--text", "Hi.", "-p", "output_dir", folder,
                     "--out", str(tmp_path / "out"))
    refused(result, "-p output_dir:", "would not collect clips from")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("folder", ["", ".", "./clips/", "clips/take-2"])
def test_an_output_folder_inside_the_output_is_accepted(folder):
    assert validated({"text": "Hi.", "output_dir": folder})["output_dir"] == folder


def test_yaml_merge_keys_are_read_as_yaml_defines_them(tmp_path):
    path = tmp_path / "merge.yaml"
    path.write_text(
        "utterances:\n"
        "  - &german {text: Guten Tag, voice: de, rate: 120}\n"
        "  - <<: *german\n"
        "    text: Auf Wiedersehen\n"
    )
    values = validated(str(path))
    assert values["utterances"][1] == {"voice": "de", "rate": 120, "text": "Auf Wiedersehen"}
    path.write_text("utterances:\n  - <<: {voice: de}\n    text: Hallo\n    text: again\n")
    with pytest.raises(kaggletts.UsageError, match=r"merge.yaml:4: 'text' is given twice"):
        validated(str(path))


def run_with_little_memory(command: str, *args: str) -> subprocess.CompletedProcess:
    """`kaggletts` run by bash as `$0` in `command` (which may use bash's `<(...)`), with
    2 GB of address space: a read that follows an endless source fails, not the machine."""
    return subprocess.run(
        ["bash", "-c", f"ulimit -v 2000000; {command}",
         str(Path(sys.executable).with_name("kaggletts")), *args],
        capture_output=True, text=True, timeout=120,
    )


@pytest.mark.parametrize("name", ["zero.txt", "zero.yaml"])
def test_a_device_that_never_ends_is_read_only_to_the_limit(tmp_path, name):
    link = tmp_path / name
    link.symlink_to("/dev/zero")
    for given in (str(link), "/dev/zero"):
        done = run_with_little_memory('exec "$0" run espeak -f "$1" --out "$2"',
                                      given, str(tmp_path / "out"))
        assert done.returncode == 2, done.stderr
        assert done.stderr == (
            f"error: {given}: the file is over the {parameters.MAX_FILE_BYTES}-byte limit\n"
        )


def test_an_endless_pipe_is_read_only_to_the_limit(tmp_path):
    done = run_with_little_memory('exec "$0" run espeak -f <(yes hello) --out "$1"',
                                  str(tmp_path / "out"))
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith("error: /dev/fd/") and "-byte limit" in done.stderr


def test_a_named_pipe_nobody_writes_to_does_not_hang(kaggletts_cmd, tmp_path):
    fifo = tmp_path / "lines.txt"
    os.mkfifo(fifo)
    result = kaggletts_cmd("run", "espeak", "-f", str(fifo), "--out", str(tmp_path / "out"),
                           timeout=60)
    refused(result, "nothing to speak")
