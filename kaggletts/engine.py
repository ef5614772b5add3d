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

        params = dict(nb_man.nb.metadata.get("papermill", {}).get("parameters") or {})
        job = prepare(kwargs["input_path"], params, "kaggle", None)
        try:
            result = run_job(job)
            executed_path = result.notebook
        except RunFailed:
            # A notebook that failed on Kaggle comes back with its error outputs;
            # papermill turns those into its own PapermillExecutionError.
            failed = sorted(job.directory.rglob(EXECUTED_NOTEBOOK))
            if not failed:
                raise
            executed_path = failed[0]
        executed = nbformat.read(executed_path, as_version=4)
        nb_man.nb.cells = executed.cells
