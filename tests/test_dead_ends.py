"""Odd notebooks, output folders that cannot hold a job, damaged records and results: each
ends in one line naming the problem and its exit code, never "internal error", and leaves
no record claiming a run that nothing runs."""

from __future__ import annotations

import csv
import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import kaggletts

KAGGLETTS = Path(sys.executable).with_name("kaggletts")


def one_line(result, code: int, *expected: str) -> None:
    assert result.code == code, result
    assert "internal error" not in result.output and "Traceback" not in result.output
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    for text in expected:
        assert text in result.stderr, (text, result.stderr)


def record_of(job_folder: Path) -> dict:
    return json.loads((job_folder / "job.json").read_text(encoding="utf-8"))


@pytest.fixture
def finished(tmp_path):
    """A finished local espeak job: (output folder, its result)."""
    out = tmp_path / "out"
    return out, kaggletts.execute("espeak", {"text": "A stored result."}, output_dir=out)


# -- notebooks --------------------------------------------------------------------------------


def notebook_with_parameters(source: str) -> dict:
    return {
        "cells": [{"cell_type": "code", "id": "parameters", "metadata": {"tags": ["parameters"]},
                   "source": source,
                   "outputs": [], "execution_count": None}],
        "metadata": {}, "nbformat": 4, "nbformat_minor": 5,
    }


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("{", "not a notebook: cannot be read as JSON"),
        ("{}", "not a notebook: it has no list of `cells`"),
        ("[]", "not a notebook: it has no list of `cells`"),
        ('{"cells": {"a": 1}}', "not a notebook: it has no list of `cells`"),
        (json.dumps(notebook_with_parameters('text: str = ""\nwhere = os.getcwd()\n')),
         "parameter where's default 'os.getcwd()' is not a plain value"),
    ],
    ids=["not-json", "no-cells", "json-list", "cells-not-a-list", "non-literal-default"],
)
def test_a_notebook_that_cannot_be_inspected_is_named(run_cli, tmp_path, content, expected):
    path = tmp_path / "odd.ipynb"
    path.write_text(content, encoding="utf-8")
    one_line(run_cli("run", str(path), "--text", "Hi.", "--out", str(tmp_path / "out")), 2,
             f"{path}: ", expected)


# -- output folders ---------------------------------------------------------------------------


def test_an_output_folder_that_is_a_file_is_named(run_cli, tmp_path):
    in_the_way = tmp_path / "notes.txt"
    in_the_way.write_text("mine\n")
    one_line(run_cli("run", "espeak", "--text", "Hi.", "--out", str(in_the_way)), 2,
             f"cannot write {in_the_way}/espeak/", "Not a directory")
    assert in_the_way.read_text() == "mine\n"


def test_an_output_folder_nobody_can_make_is_named(run_cli, monkeypatch):
    monkeypatch.setenv("KAGGLETTS_OUTPUT", "/proc/self")
    one_line(run_cli("run", "espeak", "--text", "Hi."), 2, "cannot write /proc/")


def can_mount_a_private_tmpfs() -> bool:
    if shutil.which("unshare") is None:
        return False
    probe = "mount -t tmpfs -o size=8k tmpfs /mnt"
    return subprocess.run(["unshare", "-rm", "sh", "-c", probe],
                          capture_output=True).returncode == 0


@pytest.mark.skipif(not can_mount_a_private_tmpfs(), reason="cannot mount a private tmpfs")
def test_a_full_disk_fails_the_job_on_its_record(tmp_path):
    """On a tmpfs too small for the run, at several sizes (so the write that fails is the
    executed notebook, a clip, the result or the page): one line, and a record that says
    failed, not running."""
    page = 4096
    whole = kaggletts.execute("espeak", {"text": "Full disk, yes."}, output_dir=tmp_path / "whole")
    needed = sum(math.ceil(p.stat().st_size / page) for p in whole.directory.iterdir())
    disk = tmp_path / "disk"
    disk.mkdir()
    script = (
        'mount -t tmpfs -o size="$1" tmpfs "$2" || exit 99\n'
        '"$3" run espeak --text "Full disk, yes." --no-cache --out "$2/out" 2>"$2.err"\n'
        'echo "exit $?"; echo $(ls "$2"/out/espeak/*/); cat "$2"/out/espeak/*/job.json\n'
        'cat "$2.err" >&2\n'
    )
    for pages in (needed - 1, needed - 3, needed - 6, needed // 2, needed // 3):
        done = subprocess.run(
            ["unshare", "-rm", "sh", "-c", script, "sh", f"{pages * page}", str(disk),
             str(KAGGLETTS)],
            capture_output=True, text=True, timeout=300,
        )
        code, files, stored = done.stdout.split("\n", 2)
        assert code == "exit 2", (pages, done.stdout, done.stderr)
        assert "Traceback" not in done.stderr and "internal error" not in done.stderr
        error = done.stderr.strip().splitlines()[-1]
        assert error.startswith("error: cannot write ") and error.endswith(
            ": No space left on device"), error
        record = json.loads(stored)
        assert record["state"] == "failed", record
        assert record["error"] == error.removeprefix("error: "), record
        assert "result.json" not in files.split(), "a stored result of a failed job"


@pytest.mark.slow
@pytest.mark.skipif(not can_mount_a_private_tmpfs(), reason="cannot mount a private tmpfs")
def test_a_full_disk_while_a_kaggle_run_is_collected_is_one_line(tmp_path):
    """The session's clips do not fit the output folder: one line and exit 2, and the
    kernel stays on Kaggle, so its outputs can still be collected."""
    from helpers import KEY, USER, cli_env, kernels

    from kaggletts.emulator import Emulator

    disk = tmp_path / "disk"
    disk.mkdir()
    script = (
        'mount -t tmpfs -o size=480k tmpfs "$1" || exit 99\n'
        '"$2" run espeak -f "$3" --backend kaggle --no-cache --out "$1/out" 2>"$1.err"\n'
        'echo "exit $?"; cat "$1.err" >&2\n'
    )
    lines = tmp_path / "lines.txt"
    lines.write_text("".join(f"A line long enough to need some room, number {n}.\n"
                             for n in range(1, 9)), encoding="utf-8")
    with Emulator(state_dir=tmp_path / "state", users={USER: KEY}) as emulator:
        done = subprocess.run(
            ["unshare", "-rm", "sh", "-c", script, "sh", str(disk), str(KAGGLETTS), str(lines)],
            capture_output=True, text=True, timeout=300, env=cli_env(emulator),
        )
        assert done.stdout.strip() == "exit 2", (done.stdout, done.stderr)
        assert "Traceback" not in done.stderr and "internal error" not in done.stderr
        error = done.stderr.strip().splitlines()[-1]
        assert error.startswith("error: cannot write ") and error.endswith(
            ": No space left on device"), error
        assert len(kernels(emulator)) == 1, "the kernel is kept until its outputs are safe"


# -- a bug in the middle of a run --------------------------------------------------------------


class KernelCrash(RuntimeError):
    """What no kaggletts code raises: a stand-in for a bug, or a library failing in a way
    nobody foresaw."""


def test_a_bug_in_the_middle_of_a_local_run_fails_the_job_on_its_record(
    run_cli, tmp_path, monkeypatch
):
    import papermill

    def crash(*args, **kwargs):
        raise KernelCrash("the kernel fell over")

    monkeypatch.setattr(papermill, "execute_notebook", crash)
    out = tmp_path / "out"
    done = run_cli("run", "espeak", "--text", "Never spoken.", "--out", str(out))

    assert done.code == 1, done
    assert "internal error: KernelCrash: the kernel fell over" in done.stderr
    [folder] = (out / "espeak").iterdir()
    record = record_of(folder)
    assert (record["state"], record["error"]) == ("failed", "KernelCrash: the kernel fell over")


def test_a_bug_while_a_kaggle_run_is_collected_fails_the_job_on_its_record(
    emulator, tmp_path, monkeypatch
):
    """The session ends well; downloading its outputs meets an error nothing foresaw. The
    record says failed, with the error but not the signature of the url it names, and the
    kernel stays with its outputs."""
    import requests
    from helpers import kernels, run_kaggle

    from kaggletts.layout import LEDGER_FILE

    def crash(session, url, *args, **kwargs):
        raise KernelCrash(f"the network stack fell over fetching {url}")

    monkeypatch.setattr(requests.Session, "get", crash)
    out = tmp_path / "out"
    with pytest.raises(KernelCrash, match=r"\?expires=.*&sig="):
        run_kaggle(emulator, out, {"text": "Spoken, never downloaded."}, keep_kernels=False)

    [folder] = (out / "espeak").iterdir()
    record = record_of(folder)
    assert record["state"] == "failed", record
    assert record["error"].startswith("KernelCrash: the network stack fell over fetching http")
    assert record["error"].endswith(f"/{LEDGER_FILE}?…"), record["error"]
    assert "sig=" not in (folder / "job.json").read_text(encoding="utf-8")
    assert [shard["state"] for shard in record["run"]["shards"]] == ["complete"]
    assert len(kernels(emulator)) == 1, "the session's outputs are still there to collect"


def test_what_becomes_of_a_failed_runs_kernel_is_said_on_the_command_line(
    emulator, tmp_path, notebook_maker
):
    """A failure while collecting (here a notebook that records no clips) gets a note on the
    kernel kept with its outputs, added to the error on its way out rather than a rebuilt
    error: the command line prints it under the error."""
    from helpers import USER, cli_env, kaggletts_cli

    source = notebook_maker(tmp_path / "silent.ipynb", "text = ''", ("say", "print(text)"))
    done = kaggletts_cli("run", str(source), "--text", "Nothing recorded.", "--backend",
                         "kaggle", "--out", str(tmp_path / "out"), env=cli_env(emulator))

    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr and "internal error" not in done.stderr
    said = done.stderr[done.stderr.index("error: "):].splitlines()
    [job] = (tmp_path / "out" / "silent").iterdir()
    assert said[0].endswith("recorded no `clips` scrap; did the notebook finish?"), said
    assert said[1:] == [
        f"  kernel {USER}/kaggletts-silent-{job.name[:10]}-1-1 is kept with its outputs "
        f"(`kaggletts attach {job.name}` tries collecting them again; --force runs the job "
        "anew)"
    ]


# -- damaged records and results ----------------------------------------------------------------


def test_status_on_a_damaged_record_explains_the_damage(run_cli, finished):
    out, result = finished
    (result.directory / "job.json").write_text('{"job_id": "trunc', encoding="utf-8")
    for command in ("status", "attach", "open"):
        one_line(run_cli(command, result.job_id[:6], "--out", str(out)), 2,
                 f"{result.directory / 'job.json'} is damaged (not JSON)")


def test_an_empty_job_id_matches_no_job(run_cli, finished):
    out, _ = finished
    for command in ("status", "open", "cancel"):
        one_line(run_cli(command, "", "--out", str(out)), 2, "no job id given")


@pytest.mark.parametrize(
    ("stored", "damage"),
    [
        ('{"job_id": "x", "aud', "is damaged (not JSON)"),
        ('[]', "is damaged (not a mapping)"),
        ('{"job_id": "x", "notebook_name": "espeak", "backend": "local", "notebook": "n", '
         '"audio": "a.wav", "scraps": {}}', "is damaged (`audio` is not a list of paths)"),
        ('{"job_id": "x", "notebook_name": "espeak", "backend": "local", "notebook": "n", '
         '"audio": [], "scraps": {"clips": [1]}}', "is damaged (clip 1: not a mapping but int)"),
    ],
    ids=["truncated", "a-list", "audio-not-a-list", "clip-not-a-mapping"],
)
def test_a_damaged_result_is_no_result_to_status_open_and_run(run_cli, finished, stored,
                                                               damage):
    out, result = finished
    (result.directory / "result.json").write_text(stored, encoding="utf-8")

    status = run_cli("status", result.job_id, "--out", str(out))
    assert status.code == 0, status
    assert f"result: none usable: {result.directory / 'result.json'} {damage}" in status.stdout

    one_line(run_cli("open", result.job_id, "--out", str(out)), 2,
             f"job {result.job_id} has no usable result: ", damage)

    again = run_cli("run", "espeak", "--text", "A stored result.", "--out", str(out))
    assert again.code == 0, again
    assert f"{damage}; taken as no stored result" in again.stderr
    assert "stored result)" not in again.stdout  # it ran again
    assert kaggletts.execute("espeak", {"text": "A stored result."}, output_dir=out).cached


def notebook_recording(clip_fields: str) -> dict:
    """A kaggletts notebook that writes one WAV and records it with `clip_fields` added."""
    speak = (
        "import hashlib, wave\n"
        "import scrapbook\n"
        "with wave.open('one.wav', 'wb') as out:\n"
        "    out.setnchannels(1); out.setsampwidth(2); out.setframerate(8000)\n"
        "    out.writeframes(b'\\x10\\x00\\xf0\\xff' * 800)\n"
        "data = open('one.wav', 'rb').read()\n"
        "clip = {'file': 'one.wav', 'bytes': len(data), 'text': text,\n"
        "        'sha256': hashlib.sha256(data).hexdigest()}\n"
        f"clip.update({clip_fields})\n"
        "scrapbook.glue('clips', [clip])\n"
    )
    nb = notebook_with_parameters('text: str = ""\nutterances: list = []\n')
    nb["cells"].append({"cell_type": "code", "id": "speak", "metadata": {}, "source": speak,
                        "outputs": [], "execution_count": None})
    nb["metadata"] = {"kaggletts": {}, "kernelspec": {"name": "python3", "language": "python",
                                                      "display_name": "Python 3"}}
    return nb


def test_a_duration_that_is_no_number_is_reported_as_none(run_cli, tmp_path):
    path = tmp_path / "odd_duration.ipynb"
    path.write_text(json.dumps(notebook_recording("{'duration': 'long'}")), encoding="utf-8")
    out = tmp_path / "out"
    for attempt in ("ran", "stored"):
        done = run_cli("run", str(path), "--text", "Hi.", "--out", str(out), "--backend", "local")
        assert done.code == 0, (attempt, done)
        assert "1 clip, 0.0s of audio" in done.stdout


def test_clip_fields_a_notebook_names_are_guarded_in_the_csv_header(tmp_path):
    from kaggletts.layout import CSV_FILE

    path = tmp_path / "formula.ipynb"
    path.write_text(json.dumps(notebook_recording("{'=HYPERLINK(\"http://x\")': 1}")),
                    encoding="utf-8")
    result = kaggletts.execute(path, {"text": "Hi."}, backend="local", output_dir=tmp_path)
    with (result.directory / CSV_FILE).open(encoding="utf-8-sig", newline="") as table:
        header = next(csv.reader(table))
    assert "'=HYPERLINK(\"http://x\")" in header
