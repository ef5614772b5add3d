"""Running notebooks/chatterbox.ipynb in the tier and reading what it printed."""

from __future__ import annotations

import importlib.metadata
import os
import time
from dataclasses import dataclass
from pathlib import Path

import nbformat

import kaggletts

# A notebook file to run instead of the shipped one (to show a test failing before a fix).
NOTEBOOK = os.environ.get("KAGGLETTS_CHATTERBOX_NOTEBOOK", "chatterbox")


@dataclass
class Run:
    """One notebook run: the result (or the RunFailed) and the executed notebook's text
    output, where the notebook says what it installed and prepared."""

    outcome: kaggletts.Result | kaggletts.RunFailed
    output: str
    seconds: float


def installed(requirement: str) -> bool:
    """Whether `requirement` (a name, or name==version) is installed in this environment."""
    name, _, version = requirement.partition("==")
    try:
        found = importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return False
    return found == version if version else True


def run_notebook(tmp: Path, params: dict) -> Run:
    """The notebook, unchanged, through kaggletts' local backend in the current kernel setup."""
    started = time.perf_counter()
    outcome: kaggletts.Result | kaggletts.RunFailed
    try:
        outcome = kaggletts.execute(NOTEBOOK, params, backend="local", output_dir=tmp / "out")
        notebook = outcome.directory / "__notebook__.ipynb"
    except kaggletts.RunFailed as failure:
        outcome = failure
        notebook = Path(str(failure).split("executed notebook: ")[1].strip())
    cells = nbformat.read(notebook, as_version=4).cells
    output = "".join(o.get("text", "") for c in cells if c.cell_type == "code"
                     for o in c.outputs)
    return Run(outcome, output, time.perf_counter() - started)
