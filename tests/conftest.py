"""Shared fixtures: output folders, the stand-in models on the kernel's PYTHONPATH, the
stand-ins' call log, and the `kaggletts` command run in-process or as a subprocess.

The notebook kernel is a subprocess started by papermill: it sees the environment of this
process, so stand-ins and switches are set with environment variables, never sys.path."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import wave
from array import array
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from kaggletts.emulator import Emulator

pytest_plugins = ["kaggletts.emulator.pytest_plugin"]


@pytest.fixture
def emulator(tmp_path: Path) -> Iterator[Emulator]:
    """The Kaggle emulator with two accounts, alice (the tests' own) and bob."""
    from helpers import KEY, OTHER_KEY, USER

    with Emulator(
        state_dir=tmp_path / "state", users={USER: KEY, "bob": OTHER_KEY}, seed=1
    ) as running:
        yield running


@pytest.fixture(autouse=True, scope="module")
def _user_state_per_module(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """The line cache reuses a line any earlier request spoke, and the job index lets a
    request copy the result the same request made in another folder: a module's fixtures
    get a cache and an index of their own, so no test is served from another module's."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("KAGGLETTS_CACHE_DIR", str(tmp_path_factory.mktemp("line-cache")))
        patch.setenv("XDG_DATA_HOME", str(tmp_path_factory.mktemp("xdg-data")))
        yield


@pytest.fixture(autouse=True)
def _user_state_per_test(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """...and each test its own."""
    monkeypatch.setenv("KAGGLETTS_CACHE_DIR", str(tmp_path / "line-cache"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg-data"))


@pytest.fixture(autouse=True, scope="session")
def _a_t4_x2_for_kaggle_shaped_runs() -> Iterator[None]:
    """A Kaggle-shaped kernel (the emulator's: KAGGLE_KERNEL_RUN_TYPE is set) asks the driver
    for its GPUs before it installs anything: the stand-in nvidia-smi reports a T4 x2
    (KAGGLETTS_STANDIN_GPUS changes that)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PATH", os.pathsep.join([str(STANDINS / "bin"), os.environ["PATH"]]))
        yield


@pytest.fixture(autouse=True, scope="session")
def _user_folders_of_our_own(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """The job index and the user settings file live in the user's folders: tests (and
    the CLI subprocesses they start) get folders of their own, not the developer's."""
    saved = {name: os.environ.get(name) for name in ("XDG_DATA_HOME", "XDG_CONFIG_HOME")}
    os.environ["XDG_DATA_HOME"] = str(tmp_path_factory.mktemp("xdg-data"))
    os.environ["XDG_CONFIG_HOME"] = str(tmp_path_factory.mktemp("xdg-config"))
    yield
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value

TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent
STANDINS = TESTS / "standins"
KAGGLETTS = Path(sys.executable).with_name("kaggletts")


@dataclass
class CliResult:
    code: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


def use_standins(mp: pytest.MonkeyPatch, calls: Path, *, fault: str | None = None,
                 input_root: Path | None = None) -> Path:
    """Put the stand-in models first on the kernel's import path, log their calls to
    `calls`, and set (or clear) the fault switch and the inputs root."""
    existing = os.environ.get("PYTHONPATH")
    mp.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(STANDINS), existing])))
    mp.setenv("KAGGLETTS_STANDIN_CALLS", str(calls))
    if fault:
        mp.setenv("KAGGLETTS_STANDIN_FAULT", fault)
    else:
        mp.delenv("KAGGLETTS_STANDIN_FAULT", raising=False)
    if input_root is not None:
        mp.setenv("KAGGLETTS_INPUT_ROOT", str(input_root))
    return calls


def read_calls(path: Path) -> list[dict]:
    """The stand-ins' calls, in order, as logged in `path`."""
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def write_wav(path: Path, seconds: float, rate: int = 24000) -> Path:
    """A 16-bit mono WAV of a quiet square wave, for reference clips."""
    path.parent.mkdir(parents=True, exist_ok=True)
    samples = array("h", (3000 if (i // 50) % 2 else -3000 for i in range(int(seconds * rate))))
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(samples.tobytes())
    return path


@pytest.fixture
def out_dir(tmp_path: Path) -> Path:
    """A fresh output folder for one test."""
    return tmp_path / "out"


@pytest.fixture
def standin_path(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """The stand-in models on the kernel's PYTHONPATH; returns the call-log file."""
    return use_standins(monkeypatch, tmp_path / "standin-calls.jsonl")


@pytest.fixture(scope="module")
def module_monkeypatch() -> Iterator[pytest.MonkeyPatch]:
    """A MonkeyPatch for module-scoped fixtures (one notebook run checked by many tests)."""
    with pytest.MonkeyPatch.context() as mp:
        yield mp


@pytest.fixture
def run_cli(monkeypatch: pytest.MonkeyPatch,
            capsys: pytest.CaptureFixture[str]) -> Callable[..., CliResult]:
    """`kaggletts ARGS...` in this process through `kaggletts.cli.main`, as the console
    script calls it: returns the exit code (0 when main returns) and what it printed."""
    from kaggletts.cli import main

    def call(*args: str) -> CliResult:
        root = logging.getLogger()
        handlers = list(root.handlers)
        monkeypatch.setattr(sys, "argv", ["kaggletts", *args])
        capsys.readouterr()
        try:
            main()
            code = 0
        except SystemExit as stop:
            code = stop.code if isinstance(stop.code, int) else (0 if stop.code is None else 1)
        finally:
            for handler in root.handlers[:]:
                if handler not in handlers:
                    root.removeHandler(handler)
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return call


def run_kaggletts(*args: str, cwd: Path | None = None, timeout: float = 300,
                  executable: Path = KAGGLETTS, env: dict | None = None) -> CliResult:
    """The installed `kaggletts` console script as a real subprocess."""
    done = subprocess.run([str(executable), *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env=env)
    return CliResult(done.returncode, done.stdout, done.stderr)


@pytest.fixture
def kaggletts_cmd() -> Callable[..., CliResult]:
    """Run the `kaggletts` console script next to this interpreter as a subprocess."""
    assert KAGGLETTS.is_file(), f"no console script at {KAGGLETTS}"
    return run_kaggletts


class Standins:
    """The stand-in helpers as one fixture, for module-scoped fixtures and tests."""

    dir = STANDINS
    use = staticmethod(use_standins)
    calls = staticmethod(read_calls)
    wav = staticmethod(write_wav)


@pytest.fixture(scope="session")
def standins() -> type[Standins]:
    return Standins


def write_notebook(path: Path, parameters: str, *cells: tuple[str, str]) -> Path:
    """A plain Python notebook (no kaggletts metadata): a `parameters` cell, then code
    cells given as (id, source)."""
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    nb.cells = [
        nbformat.v4.new_code_cell(parameters, metadata={"tags": ["parameters"]}, id="params"),
        *(nbformat.v4.new_code_cell(source, id=cell_id) for cell_id, source in cells),
    ]
    nbformat.write(nb, path)
    return path


@pytest.fixture
def notebook_maker() -> Callable[..., Path]:
    """`write_notebook`, for tests that need a notebook of their own."""
    return write_notebook


@pytest.fixture
def failing_notebook(tmp_path: Path) -> Path:
    """A notebook whose cell `speak` raises ValueError, past every check before the run."""
    return write_notebook(
        tmp_path / "failing.ipynb",
        'text: str = ""  # One line',
        ("speak", "raise ValueError(f'cannot say {text!r}')"),
    )
