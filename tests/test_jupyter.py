"""A Kaggle-backed `kaggletts.execute` in a Jupyter cell, executed by nbclient against the
emulator: with no logging set up, the cell shows the kernel's link and the run's progress,
as tqdm's notebook bar where ipywidgets are installed and as lines where they are not."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import nbformat
import pytest
from helpers import USER
from nbclient import NotebookClient

from kaggletts.emulator import Emulator

TESTS = Path(__file__).resolve().parent
TEXTS = ["Hello from Jupyter.", "A second line."]
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


def run_in_jupyter(emulator: Emulator, folder: Path, *first_cells: str) -> Any:
    """The executed notebook of a cell that runs the espeak notebook on the emulator."""
    run = f"""
import kaggletts
from helpers import FAST, KEY, USER
from kaggletts.backends.kaggle.credentials import Credentials
kaggletts.execute("espeak", {{"utterances": {TEXTS!r}}}, backend="kaggle", output_dir="out",
                  endpoint={emulator.url!r}, credentials=Credentials(USER, key=KEY), **FAST)
"""
    cells = [nbformat.v4.new_code_cell(source) for source in (*first_cells, run)]
    notebook = nbformat.v4.new_notebook(cells=cells)
    NotebookClient(
        notebook, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(folder)}}
    ).execute()
    return notebook


@pytest.fixture(autouse=True)
def _kernel_imports_the_helpers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "PYTHONPATH", os.pathsep.join(filter(None, [str(TESTS), os.environ.get("PYTHONPATH")]))
    )


def texts_shown(cell: Any) -> str:
    return "".join(
        output.get("text", "") + output.get("data", {}).get("text/plain", "")
        for output in cell.outputs
    )


@pytest.mark.slow
def test_without_ipywidgets_the_cell_shows_the_kernel_link_and_progress_lines(
    emulator: Emulator, tmp_path: Path
) -> None:
    notebook = run_in_jupyter(emulator, tmp_path, "import sys\nsys.modules['ipywidgets'] = None")
    shown = texts_shown(notebook.cells[-1])

    kernel = f"{emulator.url}/code/{USER}/kaggletts-espeak-"
    assert kernel in shown, shown
    assert "espeak: line 1/2 001-hello-from-jupyter.wav" in shown
    assert "espeak: line 2/2 002-a-second-line.wav" in shown
    assert "espeak download: 2/2 files" in shown
    assert "<Result espeak kaggle job" in shown, "the result is the cell's value"
    assert not any(o.get("name") == "stderr" for o in notebook.cells[-1].outputs), shown


@pytest.mark.slow
def test_with_ipywidgets_the_cell_shows_the_kernel_link_and_notebook_bars(
    emulator: Emulator, tmp_path: Path
) -> None:
    pytest.importorskip("ipywidgets")
    notebook = run_in_jupyter(emulator, tmp_path)
    cell = notebook.cells[-1]

    assert f"{emulator.url}/code/{USER}/kaggletts-espeak-" in texts_shown(cell)
    bars = [o for o in cell.outputs if WIDGET_VIEW in o.get("data", {})]
    assert len(bars) == 2, "a bar for the lines spoken and one for the download"
    widgets = notebook.metadata.widgets[WIDGET_STATE]["state"].values()
    # tqdm's notebook bar spaces its texts with figure spaces.
    labels = [
        str(w["state"].get("value")).replace("\u2007", " ")
        for w in widgets
        if w["model_name"] == "HTMLModel"
    ]
    done = [w["state"] for w in widgets if w["model_name"] == "FloatProgressModel"]
    assert "espeak: 100%" in labels and "espeak download: 100%" in labels, labels
    assert any(label.startswith(" 2/2 ") and "002-a-second-line.wav" in label for label in labels)
    assert any(label.endswith("2/2 files]") for label in labels), labels
    assert all(bar["value"] == bar["max"] for bar in done), done
