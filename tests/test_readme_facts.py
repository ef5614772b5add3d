"""The README's "Before a GPU run" gives figures that live in code: each must be the code's,
so that a change to a notebook or a limit that leaves the README behind fails here."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import nbformat
import pytest

import kaggletts
from kaggletts import cost, parameters
from kaggletts.backends.kaggle.backend import MAX_LINES_PER_SESSION
from kaggletts.kernel.support import PAUSE_SECONDS

README = Path(__file__).resolve().parent.parent / "README.md"


def section() -> str:
    text = README.read_text(encoding="utf-8")
    return text.split("\n## Before a GPU run\n", 1)[1].split("\n## ", 1)[0]


def row(table_start: str, notebook: str) -> str:
    """The row of `notebook` in the table that follows `table_start`."""
    table = section().split(table_start, 1)[1]
    return next(line for line in table.splitlines() if line.startswith(f"| {notebook} |"))


def piece_limit(notebook: str) -> int:
    """MAX_CHARACTERS as the notebook's own code computes it from its parameters' defaults."""
    spec = kaggletts.find_notebook(notebook)
    cells = nbformat.read(spec.path, as_version=4).cells
    source = "\n".join(cell.source for cell in cells if cell.cell_type == "code")
    line = next(line for line in source.splitlines() if line.startswith("MAX_CHARACTERS = "))
    defaults = {name: p.default for name, p in spec.parameters.items()}
    return eval(
        compile(ast.parse(line.split("=", 1)[1].strip(), mode="eval"), "<cell>", "eval"),
        {"max": max, "int": int},
        defaults,
    )


@pytest.mark.parametrize("notebook", ["qwen", "chatterbox"])
def test_the_piece_size_is_what_the_notebook_computes(notebook: str) -> None:
    cell = row("| notebook | characters per piece |", notebook).split(" | ")[1]
    assert re.search(rf"(^|\D){piece_limit(notebook):,}(\D|$)", cell), cell


def test_the_limits_and_the_pause_are_the_codes() -> None:
    text = " ".join(section().split())
    assert f"{PAUSE_SECONDS} s of silence" in text
    assert f"at most {parameters.MAX_STRING_CHARS:,} characters" in text
    assert f"at most {parameters.MAX_UTTERANCES:,} lines" in text
    assert f"at most {MAX_LINES_PER_SESSION} lines" in text


def test_the_cost_figures_are_the_estimates() -> None:
    qwen = row("| notebook | start-up | per line |", "qwen")
    assert f"{cost.MEASURED_STARTUP_SECONDS:.0f} s" in qwen
    assert f"about {cost.MEASURED_SECONDS_PER_LINE:.0f} s" in qwen
    chatterbox = row("| notebook | start-up | per line |", "chatterbox").split(" | ")
    assert chatterbox[1] == f"{cost.GUESSED_STARTUP_SECONDS:.0f} s"
    assert chatterbox[2] == f"{kaggletts.find_notebook('chatterbox').seconds_per_utterance:g} s"
    espeak = row("| notebook | start-up | per line |", "espeak").split(" | ")
    assert espeak[2].startswith(f"{kaggletts.find_notebook('espeak').seconds_per_utterance:g} s")
