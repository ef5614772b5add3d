"""What the Kaggle backend pushes and how it follows a kernel: slugs that round-trip, a
push counted only once a run exists, kernels that vanish, one kernel for one request
whatever the output folder. Against the emulator in its default mode."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest
from conftest import write_notebook
from test_kaggle_backend import KEY, OTHER_KEY, USER, run_kaggle

from kaggletts.emulator import Emulator

pytestmark = pytest.mark.slow


@pytest.fixture
def emulator(tmp_path: Path):
    with Emulator(
        state_dir=tmp_path / "state", users={USER: KEY, "bob": OTHER_KEY}, seed=1
    ) as running:
        yield running


def test_a_notebook_without_a_kernelspec_is_pushed_with_one(emulator, tmp_path):
    path = write_notebook(
        tmp_path / "bare.ipynb",
        'text = ""',
        ("glue", "import scrapbook\nscrapbook.glue('clips', [], encoder='json')"),
    )
    bare = nbformat.read(path, as_version=4)
    del bare.metadata["kernelspec"]
    nbformat.write(bare, path)

    result = run_kaggle(emulator, tmp_path / "out", {"text": "hi"}, notebook=path)
    assert result.status == "complete"
    pushed = json.loads(next((tmp_path / "out").rglob("kernel/notebook.ipynb")).read_text())
    assert pushed["metadata"]["kernelspec"]["name"] == "python3"
