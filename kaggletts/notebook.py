"""The notebooks: where they live, what their `parameters` cell declares, and how
parameters are injected (papermill's own machinery) and failures read back."""

from __future__ import annotations

import ast
import hashlib
import json
import os
from dataclasses import dataclass, field
from functools import cache, cached_property
from pathlib import Path
from typing import Any

from kaggletts.errors import UsageError

_PACKAGE_DIR = Path(__file__).resolve().parent


def data_dir(kind: str) -> Path:
    """`notebooks` or `params`: inside an installed wheel, else at the checkout's top."""
    packaged = _PACKAGE_DIR / "_data" / kind
    return packaged if packaged.is_dir() else _PACKAGE_DIR.parent / kind


@dataclass(frozen=True)
class Parameter:
    name: str
    type_name: str
    default: Any
    help: str


@dataclass(frozen=True)
class KernelSettings:
    """What a Kaggle kernel needs to run the notebook (kernel-metadata fields)."""

    enable_gpu: bool
    enable_internet: bool
    machine_shape: str | None
    # Settings a T4 cannot run well, each `{"when": {name: value}, "why": reason}`: refused
    # before a push, since a T4 is the only GPU a Kaggle push gets.
    t4_refuses: tuple[dict[str, Any], ...] = ()


@dataclass(frozen=True)
class NotebookSpec:
    name: str
    path: Path
    parameters: dict[str, Parameter]
    per_utterance: tuple[str, ...]
    input_files: tuple[str, ...] = ()
    rules: tuple[dict[str, Any], ...] = ()
    ranges: dict[str, tuple[float, float]] = field(default_factory=dict)
    relative_paths: tuple[str, ...] = ()
    choices: dict[str, tuple[str, ...]] = field(default_factory=dict)
    # A named source of allowed values (kaggletts.parameters.CHOICE_SOURCES), for lists
    # read from installed data rather than written into the notebook.
    choices_from: dict[str, str] = field(default_factory=dict)
    choices_ignore_case: tuple[str, ...] = ()
    # Parameters the notebook reads only under a condition ({name: {other: value}}):
    # their values are checked against choices and files only when it holds.
    only_when: dict[str, dict[str, Any]] = field(default_factory=dict)
    kernel: KernelSettings = KernelSettings(False, False, None)
    seconds_per_utterance: float = 1.0
    # A notebook run as it is by the papermill engine, without kaggletts metadata: its
    # run needs no `clips` scrap, and without one everything it wrote is its output.
    plain: bool = False

    @cached_property
    def sha256(self) -> str:
        return hashlib.sha256(self.path.read_bytes()).hexdigest()


def notebook_names() -> list[str]:
    return sorted(p.stem for p in data_dir("notebooks").glob("*.ipynb"))


def find_notebook(name_or_path: str | os.PathLike) -> NotebookSpec:
    """A shipped notebook by name (`qwen`) or any notebook by path."""
    text = os.fspath(name_or_path)
    path = Path(text)
    if not (text.endswith(".ipynb") and path.is_file()):
        path = data_dir("notebooks") / f"{text}.ipynb"
        if not path.is_file():
            known = ", ".join(notebook_names())
            raise UsageError(f"unknown notebook {text!r}; known notebooks: {known}")
    return _inspect(path.resolve(), path.stat().st_mtime_ns)


@cache
def _inspect(path: Path, _mtime: int) -> NotebookSpec:
    from papermill.translators import PythonTranslator

    try:
        nb = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as error:
        raise UsageError(f"{path}: not a notebook: cannot be read as JSON ({error})") from None
    if not isinstance(nb, dict) or not isinstance(nb.get("cells"), list) or not all(
        isinstance(cell, dict) for cell in nb["cells"]
    ):
        raise UsageError(f"{path}: not a notebook: it has no list of `cells`")
    cells = [c for c in nb["cells"] if "parameters" in c.get("metadata", {}).get("tags", [])]
    if len(cells) != 1:
        raise UsageError(f"{path}: needs exactly one cell tagged `parameters`, has {len(cells)}")
    cell = {**cells[0], "source": "".join(cells[0].get("source", ""))}
    parameters = {}
    for declared in PythonTranslator.inspect(cell):
        try:
            default = ast.literal_eval(declared.default)
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            raise UsageError(
                f"{path}: parameter {declared.name}'s default {declared.default[:80]!r} is "
                "not a plain value (a number, string, list...): it cannot be validated"
            ) from None
        parameters[declared.name] = Parameter(
            name=declared.name,
            type_name=declared.inferred_type_name,
            default=default,
            help=declared.help,
        )
    meta = nb.get("metadata", {}).get("kaggletts", {})
    kernel = meta.get("kernel", {})
    return NotebookSpec(
        name=path.stem,
        path=path,
        parameters=parameters,
        per_utterance=tuple(meta.get("per_utterance", ())),
        input_files=tuple(meta.get("input_files", ())),
        rules=tuple(meta.get("rules", ())),
        ranges={k: (float(lo), float(hi)) for k, (lo, hi) in meta.get("ranges", {}).items()},
        relative_paths=tuple(meta.get("relative_paths", ())),
        choices={k: tuple(v) for k, v in meta.get("choices", {}).items()},
        choices_from=dict(meta.get("choices_from", {})),
        choices_ignore_case=tuple(meta.get("choices_ignore_case", ())),
        only_when={k: dict(v) for k, v in meta.get("only_when", {}).items()},
        kernel=KernelSettings(
            enable_gpu=bool(kernel.get("enable_gpu", False)),
            enable_internet=bool(kernel.get("enable_internet", False)),
            machine_shape=kernel.get("machine_shape"),
            t4_refuses=tuple(kernel.get("t4_refuses", ())),
        ),
        seconds_per_utterance=float(meta.get("seconds_per_utterance", 1.0)),
    )


PYTHON_KERNELSPEC = {"name": "python3", "display_name": "Python 3", "language": "python"}


def parameterize(spec: NotebookSpec, params: dict[str, Any]):
    """The notebook with `params` injected by papermill, outputs cleared, ready to run."""
    from papermill.iorw import load_notebook_node
    from papermill.parameterize import parameterize_notebook

    nb = load_notebook_node(str(spec.path))
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
    nb = parameterize_notebook(nb, params, kernel_name="python3", language="python")
    # Kaggle's runner starts the kernel the notebook names and fails without one
    # (kaggle-api #689); papermill's kernel_name above names it only for itself.
    if not nb.metadata.get("kernelspec", {}).get("name"):
        nb.metadata["kernelspec"] = dict(PYTHON_KERNELSPEC)
    return nb


@dataclass(frozen=True)
class Failure:
    """Where an executed notebook failed and with what exception."""

    cell: str
    exception: str
    traceback: str

    def describe(self, notebook: str) -> str:
        return f"notebook {notebook!r} failed in {self.cell}: {self.exception}"


def find_failure(executed) -> Failure | None:
    """The first cell of an executed notebook whose output is an error."""
    from papermill.exceptions import strip_color

    code_cells = [c for c in executed.cells if c.cell_type == "code"]
    for number, cell in enumerate(code_cells, 1):
        if "papermill-error-cell-tag" in cell.metadata.get("tags", []):
            continue
        for output in cell.get("outputs", []):
            if output.get("output_type") == "error":
                first_line = next((ln for ln in cell.source.splitlines() if ln.strip()), "")
                where = f"cell {cell.get('id', number)!r} (code cell {number}: {first_line[:60]})"
                return Failure(
                    cell=where,
                    exception=f"{output['ename']}: {output['evalue']}",
                    traceback=strip_color("\n".join(output.get("traceback", []))),
                )
    return None
