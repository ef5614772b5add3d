"""The public entry point: `execute(notebook, params)`."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

from kaggletts import parameters
from kaggletts.backends import Backend, get_backend
from kaggletts.jobs import Job
from kaggletts.notebook import find_notebook
from kaggletts.result import Result

ParamSource = Mapping[str, Any] | str | os.PathLike | parameters.ParameterSet


def prepare(
    notebook: str | os.PathLike,
    params: ParamSource | Sequence[ParamSource] | None,
    backend: str,
    output_dir: str | os.PathLike | None,
    identity: dict[str, Any] | None = None,
) -> Job:
    """Validate the request and name its job, without running anything. `identity` is
    what else makes the run what it is (the backend's account, endpoint, options)."""
    spec = find_notebook(notebook)
    if params is None:
        sources: Sequence[ParamSource] = ()
    elif isinstance(params, Mapping | str | os.PathLike | parameters.ParameterSet):
        sources = (params,)
    else:
        sources = params
    values = parameters.validate(spec, parameters.load(*sources))
    return Job.create(spec, values, backend, output_dir, identity)


def execute(
    notebook: str | os.PathLike,
    params: ParamSource | Sequence[ParamSource] | None = None,
    *,
    backend: str = "local",
    output_dir: str | os.PathLike | None = None,
    force: bool = False,
    **backend_options: Any,
) -> Result:
    """Run `notebook` (a shipped name such as "qwen", or a path) with `params`.

    `params` is a dict, a YAML file path, or a list of them merged in order. The
    same request again returns the stored result at once unless `force` is true.
    """
    runner = get_backend(backend, **backend_options)
    job = prepare(notebook, params, backend, output_dir, runner.identity())
    return run_job(job, runner, force=force)


def run_job(
    job: Job, runner: Backend | None = None, *, force: bool = False, attach: bool = False
) -> Result:
    """The job's stored result, or the job run (or picked up again) on its backend, by
    one process at a time: a second identical request waits, then finds the result."""
    with job.driving():
        if not force and (stored := job.stored_result()) is not None:
            return stored
        return (runner or get_backend(job.backend)).run(job, force=force, attach=attach)
