"""The local backend (papermill on this machine): the job folder, stable job ids, stored
results returned without running, --force, failures that name the cell, the CLI's --json,
and the promise that importing kaggletts (or `kaggletts --help`) loads no third-party package
but click."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import kaggletts
from kaggletts import api

PARAMS = {"utterances": ["First line.", {"text": "Second line.", "rate": 220}]}
# The start-up promise: `import kaggletts` and `kaggletts --help` load nothing beyond the
# standard library but click. Each third-party package below takes from about 40 ms
# (platformdirs, slugify) to 1.6 s (scrapbook, which brings pandas) to import on the
# project's 2-core machine (python -X importtime), against about 0.2 s for all of
# kaggletts.cli; so the modules they load import these only inside the functions that use
# them: filelock and platformdirs (jobs, cache, settings), yaml (parameters), papermill
# (notebook), scrapbook (result); the audiobook's av, numpy, pyloudnorm, ebooklib and
# markdown_it only when a book is read or assembled. The CLI imports the backends, progress
# (tqdm) and doctor only in the commands that use them; the Kaggle backend's requests and
# tenacity come with it, and kagglesdk, nbformat and slugify only with the calls that need
# them.
LOADED_AT_START_UP = ["click"]


@pytest.fixture(scope="module")
def first_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("local")
    result = kaggletts.execute("espeak", PARAMS, output_dir=out)
    executed = result.notebook.stat().st_mtime_ns
    return out, result, executed


def test_result_layout(first_run):
    out, result, _ = first_run
    assert result.directory == (out / "espeak" / result.job_id).resolve()
    names = {p.name for p in result.directory.iterdir()}
    assert {"__notebook__.ipynb", "parameterized.ipynb", "result.json", "job.json"} <= names
    assert sorted(n for n in names if n.endswith(".wav")) == ["001-first-line.wav",
                                                              "002-second-line.wav"]
    assert result.notebook == result.directory / "__notebook__.ipynb"
    assert result.audio == [result.directory / "001-first-line.wav",
                            result.directory / "002-second-line.wav"]
    assert result.timings["run"] > 0
    record = json.loads((result.directory / "job.json").read_text(encoding="utf-8"))
    assert record["state"] == "complete"
    assert record["job_id"] == result.job_id
    assert record["params"] == PARAMS
    assert (record["notebook"], record["backend"]) == ("espeak", "local")
    stored = json.loads((result.directory / "result.json").read_text(encoding="utf-8"))
    assert stored["job_id"] == result.job_id and stored["status"] == "complete"


def test_job_id_is_stable_and_depends_on_the_request(first_run, tmp_path):
    out, result, _ = first_run
    same = api.prepare("espeak", dict(reversed(PARAMS.items())), "local", out)
    assert same.id == result.job_id
    assert len(result.job_id) == 16 and int(result.job_id, 16) >= 0
    other_text = api.prepare("espeak", {"utterances": ["First line."]}, "local", out)
    other_rate = api.prepare("espeak", {**PARAMS, "rate": 176}, "local", out)
    other_backend = api.prepare("espeak", PARAMS, "kaggle", out)
    ids = {result.job_id, other_text.id, other_rate.id, other_backend.id}
    assert len(ids) == 4
    # The output folder is not part of the request.
    assert api.prepare("espeak", PARAMS, "local", tmp_path).id == result.job_id


def test_the_same_request_returns_the_stored_result_without_running(first_run):
    out, result, executed_mtime = first_run
    again = kaggletts.execute("espeak", PARAMS, output_dir=out)
    assert again.cached and not result.cached
    assert again.job_id == result.job_id
    assert again.audio == result.audio
    assert again.scraps == result.scraps
    assert again.timings == result.timings
    assert result.notebook.stat().st_mtime_ns == executed_mtime  # no kernel ran


def test_force_runs_again(first_run):
    out, result, executed_mtime = first_run
    time.sleep(0.01)
    forced = kaggletts.execute("espeak", PARAMS, output_dir=out, force=True)
    assert not forced.cached
    assert forced.job_id == result.job_id
    assert forced.notebook.stat().st_mtime_ns != executed_mtime
    # eSpeak NG is deterministic: the same clips again.
    assert [c.sha256 for c in forced.clips] == [c.sha256 for c in result.clips]


# A last cell for the espeak notebook that changes its first clip after the notebook
# recorded it, and what the check of each clip against its record then says: the line is
# not taken as spoken (the same request makes it again).
TAMPERINGS = {
    "bytes changed": ("data = bytearray(clip.read_bytes()); data[-1] ^= 1; clip.write_bytes(data)",
                      "its clip 001-tamper-with-me.wav is gone or changed since it was made"),
    "cut short": ("clip.write_bytes(clip.read_bytes()[:8])",
                  "its clip 001-tamper-with-me.wav is gone or changed since it was made"),
}


@pytest.mark.parametrize(("tampering", "expected"), TAMPERINGS.values(), ids=TAMPERINGS)
def test_a_tampered_clip_is_detected_on_a_fresh_run(tmp_path, tampering, expected):
    import nbformat

    notebook = nbformat.read(kaggletts.find_notebook("espeak").path, as_version=4)
    notebook.cells.append(nbformat.v4.new_code_cell(
        f"import pathlib\nclip = pathlib.Path(output_dir or '.', clips[0]['file'])\n{tampering}",
        id="tamper"))
    tampered = tmp_path / "tampered.ipynb"
    nbformat.write(notebook, tampered)
    with pytest.raises(kaggletts.RunFailed, match=expected):
        kaggletts.execute(tampered, {"text": "Tamper with me."}, output_dir=tmp_path / "out")


def test_a_failing_notebook_raises_run_failed_naming_the_cell(tmp_path, failing_notebook):
    with pytest.raises(kaggletts.RunFailed) as caught:
        kaggletts.execute(failing_notebook, {"text": "Hello."}, output_dir=tmp_path)
    failure = caught.value
    message = str(failure)
    assert "notebook 'failing' failed in cell 'speak'" in message
    assert "ValueError: cannot say 'Hello.'" in message
    assert failure.exception == "ValueError: cannot say 'Hello.'"
    assert failure.cell is not None and "'speak'" in failure.cell
    assert failure.exit_code == 1
    job = api.prepare(failing_notebook, {"text": "Hello."}, "local", tmp_path)
    record = json.loads((job.directory / "job.json").read_text(encoding="utf-8"))
    assert record["state"] == "failed" and "speak" in record["error"]
    assert not (job.directory / "result.json").exists()
    assert (job.directory / "__notebook__.ipynb").exists()  # kept for inspection


def test_a_failing_run_exits_1_with_one_line_and_no_traceback(
    kaggletts_cmd, tmp_path, failing_notebook
):
    done = kaggletts_cmd("run", str(failing_notebook), "-p", "text", "Hello.",
                         "--out", str(tmp_path / "out"))
    assert done.code == 1
    assert done.stdout == ""
    assert "Traceback" not in done.output
    errors = [line for line in done.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1
    assert "failed in cell 'speak'" in errors[0]
    assert "ValueError: cannot say 'Hello.'" in errors[0]


def test_cli_json_prints_exactly_one_json_document(kaggletts_cmd, tmp_path):
    done = kaggletts_cmd("run", "espeak", "-p", "text", "Hello there.", "-p", "rate", "200",
                         "--out", str(tmp_path / "out"), "--json", cwd=tmp_path)
    assert done.code == 0, done.stderr
    document = json.loads(done.stdout)  # the whole of stdout, nothing else
    assert set(document) == {"job_id", "status", "audio", "scraps", "notebook", "missing"}
    assert document["missing"] == []
    assert document["status"] == "complete"
    [audio] = document["audio"]
    assert Path(audio).is_file() and Path(audio).parent.name == document["job_id"]
    assert Path(document["notebook"]).name == "__notebook__.ipynb"
    assert document["scraps"]["clips"][0]["text"] == "Hello there."
    assert document["scraps"]["clips"][0]["settings"]["rate"] == 200
    assert "[1/1] 001-hello-there.wav" in done.stderr, "progress goes to stderr"
    assert "without encryption" not in done.stderr, "the kernel's start-up noise is hidden"
    # Asked again: the stored result, still one document.
    again = kaggletts_cmd("run", "espeak", "-p", "text", "Hello there.", "-p", "rate", "200",
                          "--out", str(tmp_path / "out"), "--json", cwd=tmp_path)
    assert json.loads(again.stdout) == document


def test_cli_plain_output_says_where_the_clips_are(first_run, kaggletts_cmd, tmp_path):
    out, result, _ = first_run
    params = tmp_path / "p.yaml"
    params.write_text(json.dumps(PARAMS), encoding="utf-8")  # JSON is YAML
    done = kaggletts_cmd("run", "espeak", "-f", str(params), "--out", str(out))
    assert done.code == 0, done.stderr
    assert done.stdout.startswith("2 clips, ")
    assert "stored result" in done.stdout and str(result.directory) in done.stdout


def test_notebooks_json_lists_the_three_notebooks(kaggletts_cmd):
    done = kaggletts_cmd("notebooks", "--json")
    assert done.code == 0, done.stderr
    listing = json.loads(done.stdout)
    assert sorted(listing) == ["chatterbox", "espeak", "qwen"]
    for name, info in listing.items():
        assert Path(info["path"]).name == f"{name}.ipynb"
        assert {"text", "utterances"} <= set(info["parameters"])
        for parameter in info["parameters"].values():
            assert set(parameter) == {"type", "default", "help"}
            assert parameter["help"].strip()
    espeak = listing["espeak"]["parameters"]
    assert espeak["rate"] == {"type": "int", "default": 175, "help": espeak["rate"]["help"]}
    assert listing["qwen"]["parameters"]["x_vector_only"]["type"] == "bool"
    assert listing["qwen"]["parameters"]["dtype"]["default"] == "auto"
    assert "voice" in listing["espeak"]["per_utterance"]


def loaded_after(code: str) -> list[str]:
    """The packages outside the standard library (and kaggletts) that running `code` in a
    fresh interpreter loads."""
    probe = (f"import sys\nstarted = set(sys.modules)\n{code}\nimport json\n"
             "loaded = {m.partition('.')[0] for m in set(sys.modules) - started}\n"
             "print('LOADED=' + json.dumps(sorted(loaded - set(sys.stdlib_module_names)"
             " - {'kaggletts'})))\n")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    [line] = [ln for ln in done.stdout.splitlines() if ln.startswith("LOADED=")]
    return json.loads(line.removeprefix("LOADED="))


def test_import_kaggletts_loads_no_third_party_package():
    assert loaded_after("import kaggletts") == []


HELP = """
import sys
sys.argv = ["kaggletts", "--help"]
from kaggletts.cli import main
try:
    main()
except SystemExit:
    pass
"""


def test_kaggletts_help_loads_no_third_party_package_but_click():
    assert loaded_after(HELP) == LOADED_AT_START_UP


def test_the_probe_sees_a_third_party_import():
    # The checks above can fail: importing papermill does show up, the standard library not.
    assert "papermill" in loaded_after("import papermill")
    assert loaded_after("import json, csv, email.parser") == []


def test_kaggletts_help_lists_the_commands(kaggletts_cmd):
    done = kaggletts_cmd("--help")
    assert done.code == 0
    for command in ("run", "notebooks", "emulator"):
        assert f"  {command}" in done.stdout


def test_jobs_are_listed_whatever_folder_they_were_written_to(kaggletts_cmd, tmp_path):
    for folder, text in (("one", "First job speaks."), ("two", "Second job, elsewhere.")):
        done = kaggletts_cmd("run", "espeak", "--text", text, "--out", str(tmp_path / folder))
        assert done.code == 0, done.stderr
    listed = kaggletts_cmd("jobs")
    assert listed.code == 0 and listed.stdout.splitlines()[0].split()[:3] == [
        "JOB", "NOTEBOOK", "BACKEND"]
    rows = listed.stdout.splitlines()[1:]
    assert [r.split("  ")[-1].strip() for r in rows[:2]] == [
        "Second job, elsewhere.", "First job speaks."]
    job_id = rows[1].split()[0]
    status = kaggletts_cmd("status", job_id[:8])
    assert status.code == 0 and "complete" in status.stdout


def test_a_result_is_plain_data_and_one_json_document(tmp_path):
    result = kaggletts.execute("espeak", {"text": "Plain data."}, output_dir=tmp_path)
    data = result.to_dict()
    assert data["audio"] == [str(p) for p in result.audio] and data["status"] == "complete"
    assert json.loads(result.to_json()) == data
    assert json.loads((result.directory / "result.json").read_text()) == data


def test_one_notebook_is_shown_with_where_it_runs_and_its_choices(kaggletts_cmd):
    shown = kaggletts_cmd("notebooks", "qwen")
    assert shown.code == 0 and shown.stdout.startswith("qwen  (runs on Kaggle by default")
    assert "one of: Vivian, Serena" in shown.stdout and "espeak" not in shown.stdout


def test_a_kernel_left_dying_by_ctrl_c_is_not_reported_with_a_traceback(tmp_path, caplog):
    import asyncio
    import gc

    from nbclient.exceptions import DeadKernelError

    kaggletts.execute("espeak", {"text": "Quick."}, output_dir=tmp_path)

    async def cell_of_a_stopped_kernel():
        raise DeadKernelError("Kernel died")

    async def leave_it_unawaited():
        asyncio.ensure_future(cell_of_a_stopped_kernel())
        await asyncio.sleep(0)

    asyncio.run(leave_it_unawaited())
    gc.collect()
    assert "Kernel died" not in caplog.text


@pytest.mark.slow
@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM])
def test_stopping_a_local_run_is_one_line_exit_130_and_a_record_that_says_so(tmp_path, stop):
    lines = tmp_path / "long.txt"
    lines.write_text("\n".join(f"Line {n} of a batch long enough to stop." for n in range(2000)))
    run = subprocess.Popen(
        [str(Path(sys.executable).with_name("kaggletts")), "run", "espeak", "-f", str(lines),
         "--out", str(tmp_path / "o")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    deadline = time.monotonic() + 60
    while not list((tmp_path / "o").rglob("[0-9]*.wav")):
        if run.poll() is not None or time.monotonic() > deadline:
            pytest.fail(f"the run never started: {run.communicate()}")
        time.sleep(0.1)
    run.send_signal(stop)
    _, stderr = run.communicate(timeout=60)
    assert run.returncode == 130, stderr
    assert "Traceback" not in stderr and stderr.strip().splitlines()[-1].startswith("error: interr")
    record = json.loads(next((tmp_path / "o").rglob("job.json")).read_text())
    assert record["state"] == "interrupted"


# -- the options every backend takes -------------------------------------------------------


def test_on_progress_follows_a_local_run_line_by_line(tmp_path):
    seen: list = []
    kaggletts.execute("espeak", {"utterances": ["One.", "Two."]}, backend="local",
                      output_dir=tmp_path, on_progress=seen.append)
    assert [(p.done, p.total, p.file) for p in seen] == [
        (1, 2, "001-one.wav"), (2, 2, "002-two.wav")]


def test_a_local_timeout_is_the_notebooks_deadline(tmp_path):
    # A second (the least a timeout may be) is over before the kernel has started: no line
    # is begun.
    with pytest.raises(kaggletts.RunFailed, match="the job's deadline passed") as failure:
        kaggletts.execute("espeak", {"utterances": ["One.", "Two."]}, backend="local",
                          output_dir=tmp_path, timeout=1)
    assert "none of its 2 lines was spoken" in str(failure.value)


def test_a_local_cell_running_past_the_timeout_is_stopped(tmp_path, notebook_maker):
    slow = notebook_maker(tmp_path / "slow.ipynb", "seconds = 1",
                          ("wait", "import time\ntime.sleep(seconds)"))
    started = time.monotonic()
    with pytest.raises(kaggletts.RunFailed, match="was stopped 1 s past its 2 s timeout"):
        kaggletts.execute(slow, {"seconds": 120}, backend="local", output_dir=tmp_path / "out",
                          timeout="2s", overrun_wait=1)
    assert time.monotonic() - started < 60
    [record] = (tmp_path / "out").rglob("job.json")
    assert json.loads(record.read_text(encoding="utf-8"))["state"] == "failed"


def test_the_cli_takes_a_timeout_for_a_local_run(run_cli, tmp_path):
    done = run_cli("run", "espeak", "--text", "Hello there.", "--timeout", "10m",
                   "--out", str(tmp_path))
    assert done.code == 0, done.output
    [parameterized] = tmp_path.rglob("parameterized.ipynb")
    assert "deadline = 1" in parameterized.read_text(encoding="utf-8")
    refused = run_cli("run", "espeak", "--text", "Hello there.", "--shards", "2",
                      "--out", str(tmp_path))
    assert refused.code == 2
    assert refused.stderr == "error: --shards only applies to --backend kaggle\n"
