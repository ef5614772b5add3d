"""The papermill engine `kaggle` driven the way papermill users drive it: papermill's own
command line as a subprocess and its Python API in-process, against the emulator (which
runs each pushed notebook with papermill, as Kaggle does)."""

from __future__ import annotations

import json
import logging
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
import scrapbook
from helpers import KEY, USER, cli_env, lines

import kaggletts
from kaggletts.emulator import Emulator
from kaggletts.errors import UsageError
from kaggletts.result import sha256_of

pytestmark = pytest.mark.slow

PAPERMILL = Path(sys.executable).with_name("papermill")


@pytest.fixture
def emulator(tmp_path: Path):
    with Emulator(state_dir=tmp_path / "state", users={USER: KEY}, seed=1) as running:
        yield running


def papermill_cli(
    notebook: Path, out: Path | str, env: dict, *args: str, cwd: Path | None = None
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(PAPERMILL), str(notebook), str(out), *args, "--engine", "kaggle"],
        env=env,
        # Never the checkout: a notebook run in place writes its files into the folder.
        cwd=cwd or Path(out).parent,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture
def table_notebook(tmp_path: Path, notebook_maker) -> Path:
    """Writes a CSV file, records no clips, and fails in cell `check` when told to."""
    return notebook_maker(
        tmp_path / "table.ipynb",
        'rows = 3\nlabel = "x"\nextra = []\nfail = False',
        ("write", "open('table.csv', 'w').write(''.join(f'{label},{i}\\n' for i in range(rows)))\n"
                  "print(f'wrote {rows} rows labelled {label!r}; extra {extra}')"),
        ("check", "if fail:\n    raise ValueError(f'told to fail after {rows} rows')"),
        ("last", "print('done')"),
    )


@pytest.fixture
def slow_notebook(tmp_path: Path, notebook_maker) -> Path:
    """Prints progress lines in the notebooks' `[k/N]` form, a little apart."""
    return notebook_maker(
        tmp_path / "slow.ipynb",
        "lines = 3",
        ("work", "import time\nfor k in range(1, lines + 1):\n    time.sleep(1.0)\n"
                 "    print(f'[{k}/{lines}] {k:03d}-line.wav 1.5s', flush=True)"),
    )


def cells_as_run(nb) -> list[tuple]:
    """What papermill's contract fixes per cell: kind, tags, status, exception flag,
    execution count and output types."""
    return [
        (
            cell.cell_type,
            cell.metadata.get("tags", []),
            cell.metadata.get("papermill", {}).get("status"),
            cell.metadata.get("papermill", {}).get("exception"),
            cell.get("execution_count"),
            [output["output_type"] for output in cell.get("outputs", [])],
        )
        for cell in nb.cells
    ]


def test_papermill_engine_runs_on_the_emulator(emulator, tmp_path):
    params = tmp_path / "params.yaml"
    params.write_text("utterances:\n" + "".join(f"  - {t}\n" for t in lines(20)))
    out = tmp_path / "executed.ipynb"
    env = cli_env(emulator, KAGGLETTS_OUTPUT=str(tmp_path / "jobs"))
    done = papermill_cli(kaggletts.find_notebook("espeak").path, out, env, "-f", str(params))
    assert done.returncode == 0, done.stderr

    clips = scrapbook.read_notebook(str(out)).scraps["clips"].data
    assert [c["text"] for c in clips] == lines(20)
    job_dir = next((tmp_path / "jobs" / "espeak").iterdir())
    for clip in clips:
        assert sha256_of(job_dir / clip["file"]) == clip["sha256"]
    executed = nbformat.read(out, as_version=4)
    assert all(c.metadata.papermill["status"] == "completed" for c in executed.cells)
    assert all(c.metadata.papermill["duration"] is not None for c in executed.cells)
    assert executed.metadata.kaggletts_run["outputs"] == str(job_dir)
    assert f"Kaggle outputs: {job_dir}" in done.stderr


def test_the_papermill_engine_fails_when_the_run_failed_after_it_completed(
    emulator, tmp_path, notebook_maker
):
    """The session ends COMPLETE, but what it recorded is unusable: papermill must not
    report success."""
    source = notebook_maker(
        tmp_path / "sneaky.ipynb",
        'text: str = ""  # One line',
        ("glue", "import scrapbook\n"
                 "scrapbook.glue('clips', [{'text': text, 'file': 'job.json', 'bytes': 2,"
                 " 'sha256': '0' * 64}], encoder='json')"),
    )
    env = cli_env(emulator, KAGGLETTS_OUTPUT=str(tmp_path / "jobs"))
    done = papermill_cli(source, tmp_path / "out.ipynb", env, "-p", "text", "hello")
    assert done.returncode != 0
    assert "names a file kaggletts will not write: 'job.json'" in done.stderr


def test_a_failing_cell_is_reported_as_a_local_papermill_run_reports_it(
    emulator, tmp_path, table_notebook
):
    """Where Kaggle lists a failed version's outputs (an assumption: no source either
    way), the executed notebook comes back and papermill's own error is raised."""
    emulator.assume = {"failed-outputs"}
    env = cli_env(emulator)
    on_kaggle = papermill_cli(table_notebook, tmp_path / "kaggle.ipynb", env, "-p", "fail", "True")
    local = subprocess.run(
        [str(PAPERMILL), str(table_notebook), str(tmp_path / "local.ipynb"), "-p", "fail", "True"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )

    marker = "papermill.exceptions.PapermillExecutionError:"
    assert on_kaggle.returncode == local.returncode == 1
    assert marker in on_kaggle.stderr
    assert on_kaggle.stderr.split(marker)[1] == local.stderr.split(marker)[1]
    assert "ValueError: told to fail after 3 rows" in on_kaggle.stderr
    ran = nbformat.read(tmp_path / "kaggle.ipynb", as_version=4)
    expected = nbformat.read(tmp_path / "local.ipynb", as_version=4)
    assert cells_as_run(ran) == cells_as_run(expected)
    [error] = [o for c in ran.cells for o in c.get("outputs", []) if o.output_type == "error"]
    [local_error] = [o for c in expected.cells for o in c.get("outputs", [])
                     if o.output_type == "error"]
    assert (error.ename, error.evalue, error.traceback) == (
        local_error.ename, local_error.evalue, local_error.traceback
    )
    assert ran.metadata.papermill.exception is True
    assert ran.metadata.kaggletts_run["state"] == "failed"


def test_a_plain_notebook_returns_its_outputs_beside_the_output_notebook(
    emulator, tmp_path, table_notebook
):
    """No kaggletts metadata, no clips: a plain run. Parameters of every kind reach it;
    --cwd moves where the engine runs, not where papermill writes; --report-mode holds."""
    caller, elsewhere = tmp_path / "caller", tmp_path / "elsewhere"
    (caller / "results").mkdir(parents=True)
    elsewhere.mkdir()
    done = papermill_cli(
        table_notebook, "results/table-run.ipynb", cli_env(emulator),
        "-p", "rows", "4", "-r", "label", "007", "-y", "extra: [1, two]",
        "--cwd", str(elsewhere), "--report-mode", cwd=caller,
    )
    assert done.returncode == 0, done.stderr

    outputs = caller / "results" / "table-run-outputs"
    [job_dir] = (outputs / "table").iterdir()
    assert (job_dir / "table.csv").read_text() == "".join(f"007,{i}\n" for i in range(4))
    assert f"Kaggle outputs: {job_dir}" in done.stderr
    executed = nbformat.read(caller / "results" / "table-run.ipynb", as_version=4)
    [printed] = [o.text for c in executed.cells for o in c.get("outputs", [])
                 if o.get("name") == "stdout" and "wrote" in o.text]
    assert printed == "wrote 4 rows labelled '007'; extra [1, 'two']\n"
    assert {c.metadata.papermill["status"] for c in executed.cells} == {"completed"}
    assert all(c.metadata.jupyter.source_hidden for c in executed.cells if c.cell_type == "code")
    run = executed.metadata.kaggletts_run
    assert run["outputs"] == str(job_dir) and run["version"] == 1
    assert run["kernel"] == f"{USER}/kaggletts-table-{run['job_id'][:10]}-1-1"
    assert not (elsewhere / "results").exists()


def test_log_output_shows_the_kernels_lines_while_the_session_runs(
    emulator, tmp_path, slow_notebook
):
    stdout_file = tmp_path / "kernel-stdout.txt"
    done = papermill_cli(
        slow_notebook, tmp_path / "out.ipynb", cli_env(emulator),
        "--log-output", "--stdout-file", str(stdout_file),
    )
    assert done.returncode == 0, done.stderr
    log = done.stderr.splitlines()
    shown = [n for n, line in enumerate(log) if re.fullmatch(r"\[\d/3\] \d+-line\.wav 1\.5s", line)]
    ended = next(n for n, line in enumerate(log) if "complete after" in line)
    assert len(shown) == 3 and shown[0] < ended, "the lines came while the session ran"
    assert "[3/3] 003-line.wav 1.5s" in stdout_file.read_text().splitlines()


def test_the_progress_bar_follows_the_kernel_without_log_output(
    emulator, tmp_path, slow_notebook
):
    done = papermill_cli(slow_notebook, tmp_path / "out.ipynb", cli_env(emulator), "--progress-bar")
    assert done.returncode == 0, done.stderr
    assert "line 3/3" in done.stderr, "the bar showed the kernel's progress"
    assert "[1/3] 001-line.wav" not in done.stderr, "no kernel output without --log-output"


@pytest.mark.parametrize(
    ("args", "refusal"),
    [
        (("--start-timeout", "5"), "--start-timeout cannot be honoured"),
        (("--kernel", "ir"), "--kernel ir cannot be honoured"),
        (("--stderr-file", "err.txt"), "--stderr-file cannot be honoured"),
        (("-p", "rate", "9999"), "rate 9999 is out of range 80 to 450"),
    ],
)
def test_what_cannot_be_honoured_is_refused_before_anything_runs(
    emulator, tmp_path, args, refusal
):
    done = papermill_cli(
        kaggletts.find_notebook("espeak").path, tmp_path / "out.ipynb", cli_env(emulator),
        "-p", "text", "Hello.", *args, cwd=tmp_path,
    )
    assert done.returncode == 1
    assert refusal in done.stderr.splitlines()[-1]
    assert emulator.calls["SaveKernel"] == 0


def test_execution_timeout_is_the_sessions_time_budget(emulator, tmp_path):
    done = papermill_cli(
        kaggletts.find_notebook("espeak").path, tmp_path / "out.ipynb", cli_env(emulator),
        "-y", json.dumps({"utterances": lines(3)}), "--execution-timeout", "1",
    )
    assert done.returncode == 1
    assert "none of its 3 lines was spoken: not spoken: the job's deadline passed" in done.stderr
    assert emulator.calls["SaveKernel"] == 1


def test_prepare_only_pushes_nothing(emulator, tmp_path):
    done = papermill_cli(
        kaggletts.find_notebook("espeak").path, tmp_path / "out.ipynb", cli_env(emulator),
        "-p", "text", "Hello.", "--prepare-only",
    )
    assert done.returncode == 0, done.stderr
    prepared = nbformat.read(tmp_path / "out.ipynb", as_version=4)
    assert prepared.metadata.papermill.parameters == {"text": "Hello."}
    assert emulator.calls["SaveKernel"] == 0


def test_a_scheduler_task_runs_through_the_python_api(
    emulator, tmp_path, monkeypatch, caplog
):
    """As an Airflow or Dagster papermill task calls it: parameters as a dict, an output
    path, log output on, the engine's options as keyword arguments."""
    import papermill

    monkeypatch.delenv("KAGGLE_API_TOKEN", raising=False)
    monkeypatch.setenv("KAGGLE_USERNAME", USER)
    monkeypatch.setenv("KAGGLE_KEY", KEY)
    caplog.set_level(logging.INFO, logger="papermill")
    out = tmp_path / "task" / "espeak-run.ipynb"
    out.parent.mkdir()
    executed = papermill.execute_notebook(
        str(kaggletts.find_notebook("espeak").path),
        str(out),
        parameters={"utterances": lines(2), "voice": "en-gb"},
        engine_name="kaggle",
        log_output=True,
        progress_bar=False,
        endpoint=emulator.url,
        timeout="10m",
        output_dir=str(tmp_path / "audio"),
    )

    run = executed.metadata.kaggletts_run
    job_dir = tmp_path / "audio" / "espeak" / run["job_id"]
    assert run["outputs"] == str(job_dir) and run["endpoint"] == emulator.url
    clips = scrapbook.read_notebook(str(out)).scraps["clips"].data
    assert [c["settings"]["voice"] for c in clips] == ["en-gb", "en-gb"]
    for clip in clips:
        assert sha256_of(job_dir / clip["file"]) == clip["sha256"]
    kernel_lines = [r.getMessage() for r in caplog.records if r.name == "papermill"]
    assert any(line.startswith("[2/2] 002-line-2") for line in kernel_lines)
    assert emulator.calls["SaveKernel"] == 1

    same_task = {
        "parameters": {"utterances": lines(2), "voice": "en-gb"}, "engine_name": "kaggle",
        "progress_bar": False, "endpoint": emulator.url, "timeout": "10m",
        "output_dir": str(tmp_path / "audio"),
    }
    reused = papermill.execute_notebook(
        str(kaggletts.find_notebook("espeak").path), str(out), reuse_result=True, **same_task
    )
    assert reused.metadata.kaggletts_run["job_id"] == run["job_id"]
    assert emulator.calls["SaveKernel"] == 1, "a finished run was reused when asked"
    papermill.execute_notebook(str(kaggletts.find_notebook("espeak").path), str(out), **same_task)
    assert emulator.calls["SaveKernel"] == 2, "by default each task runs, as papermill does"

    with pytest.raises(UsageError, match="did you mean 'machine_shape'"):
        papermill.execute_notebook(
            str(kaggletts.find_notebook("espeak").path), str(out), parameters={"text": "x"},
            engine_name="kaggle", progress_bar=False, machine_shap="NvidiaTeslaT4",
        )


def test_a_plain_notebooks_files_named_like_kaggletts_own_come_back_under_notebook_files(
    emulator, tmp_path, notebook_maker
):
    """Nothing a plain notebook leaves is dropped or written over: files with the names of
    kaggletts' own come back under notebook-files/, and the kernel is deleted after."""
    written = {
        "index.html": "<p>my page</p>", "clips.csv": "a,b\n", "result.json": '{"mine": 1}',
        "kernel/model.bin": "weights", "shard-1/part.csv": "1,2\n", ".hidden_cfg": "x=1",
        "table.csv": "kept where it was\n",
    }
    source = notebook_maker(
        tmp_path / "collide.ipynb",
        f"files = {written!r}",
        ("write", "import os\nfor name, text in files.items():\n"
                  "    os.makedirs(os.path.dirname(name) or '.', exist_ok=True)\n"
                  "    open(name, 'w').write(text)"),
    )
    env = cli_env(emulator, KAGGLETTS_OUTPUT=str(tmp_path / "jobs"))
    done = papermill_cli(source, tmp_path / "out.ipynb", env)
    assert done.returncode == 0, done.stderr

    [job_dir] = (tmp_path / "jobs" / "collide").iterdir()
    assert (job_dir / "table.csv").read_text() == written["table.csv"]
    for name, text in written.items():
        if name != "table.csv":
            assert (job_dir / "notebook-files" / name).read_text() == text
    assert "my page" not in (job_dir / "index.html").read_text(), "kaggletts' page is its own"
    assert "notebook-files" in done.stderr and "index.html" in done.stderr
    assert not emulator.store.kernels, "deleted once every listed file was on disk"


def test_a_plain_notebook_past_kaggles_listing_cap_is_told_what_was_lost(
    emulator, tmp_path, notebook_maker
):
    """Kaggle lists only the first 500 outputs: the run fails saying so, what was listed
    is downloaded, and the kernel is kept with the rest."""
    source = notebook_maker(
        tmp_path / "many.ipynb",
        "count = 600",
        ("write", "for n in range(count):\n    open(f'part-{n:04d}.txt', 'w').write(str(n))"),
    )
    env = cli_env(emulator, KAGGLETTS_OUTPUT=str(tmp_path / "jobs"))
    done = papermill_cli(source, tmp_path / "out.ipynb", env)
    assert done.returncode == 1
    assert "lists only the first 500 of a session" in done.stderr
    assert "sorts after" in done.stderr and "write fewer files" in done.stderr
    [job_dir] = (tmp_path / "jobs" / "many").iterdir()
    parts = sorted(p.name for p in job_dir.glob("part-*.txt"))
    assert 490 < len(parts) < 500 and parts[0] == "part-0000.txt"
    assert len(emulator.store.kernels) == 1, "the kernel is kept with every file it holds"
    assert f"kernel {USER}/kaggletts-many-" in done.stderr


def test_a_plain_notebook_run_again_starts_from_an_empty_outputs_folder(
    emulator, tmp_path, notebook_maker
):
    """As the local backend does: a second papermill run of the same notebook leaves only
    its own files, not the first run's too."""
    source = notebook_maker(
        tmp_path / "stamped.ipynb",
        "tag = 'x'",
        ("write", "import time\nopen(f'result-{time.time_ns()}.csv', 'w').write(tag)"),
    )
    env = cli_env(emulator, KAGGLETTS_OUTPUT=str(tmp_path / "jobs"))
    for _ in range(2):
        done = papermill_cli(source, tmp_path / "out.ipynb", env)
        assert done.returncode == 0, done.stderr
    [job_dir] = (tmp_path / "jobs" / "stamped").iterdir()
    assert len(list(job_dir.glob("result-*.csv"))) == 1
    assert emulator.calls["SaveKernel"] == 2
