"""A papermill engine named `kaggle`: `papermill in.ipynb out.ipynb --engine kaggle`
runs the notebook on Kaggle through kaggletts and writes the executed notebook."""

from __future__ import annotations

from typing import Any

from papermill.engines import Engine

from kaggletts.errors import RunFailed
from kaggletts.result import EXECUTED_NOTEBOOK


class KaggleEngine(Engine):
    @classmethod
    def execute_managed_notebook(cls, nb_man: Any, kernel_name: str, **kwargs: Any) -> None:
        import nbformat

        from kaggletts.api import prepare, run_job
        from kaggletts.backends import get_backend

        params = dict(nb_man.nb.metadata.get("papermill", {}).get("parameters") or {})
        runner = get_backend("kaggle")
        job = prepare(kwargs["input_path"], params, "kaggle", None, runner.identity())
        try:
            result = run_job(job, runner)
        except RunFailed:
            # A notebook that failed in a cell on Kaggle comes back with its error
            # outputs, which papermill turns into its own PapermillExecutionError; any
            # other failure (no audio, a bad download) is raised as it is.
            failed = sorted(job.directory.rglob(EXECUTED_NOTEBOOK))
            executed = nbformat.read(failed[0], as_version=4) if failed else None
            if executed is None or not _has_error_output(executed):
                raise
            nb_man.nb.cells = executed.cells
            return
        nb_man.nb.cells = nbformat.read(result.notebook, as_version=4).cells


def _has_error_output(nb: Any) -> bool:
    return any(
        output.get("output_type") == "error"
        for cell in nb.cells
        if cell.cell_type == "code"
        for output in cell.get("outputs", [])
    )
