"""The public entry point: `execute(notebook, params)`."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from typing import Any

from kaggletts import parameters
from kaggletts.audio import RequestedAudio
from kaggletts.backends import Backend, get_backend
from kaggletts.cache import LineCache
from kaggletts.errors import Incomplete, RunFailed
from kaggletts.jobs import Job
from kaggletts.notebook import NotebookSpec, find_notebook
from kaggletts.progress import shown_in_notebook
from kaggletts.result import Result
from kaggletts.settings import Settings, checked_options, load_settings
from kaggletts.words import counted

log = logging.getLogger("kaggletts")
ParamSource = Mapping[str, Any] | str | os.PathLike | parameters.ParameterSet


def prepare(
    notebook: str | os.PathLike | NotebookSpec,
    params: ParamSource | Sequence[ParamSource] | None,
    backend: str,
    output_dir: str | os.PathLike | None,
    identity: dict[str, Any] | None = None,
    defaults: parameters.ParameterSet | None = None,
) -> Job:
    """Validate the request and name its job, without running anything. `identity` is
    what else makes the run what it is (the backend's account, endpoint, options);
    `defaults` (the notebook's from the settings) go under `params`."""
    spec = notebook if isinstance(notebook, NotebookSpec) else find_notebook(notebook)
    values = validate(spec, params, defaults)
    return Job.create(spec, values, backend, output_dir, identity)


def validate(
    spec: NotebookSpec,
    params: ParamSource | Sequence[ParamSource] | None,
    defaults: parameters.ParameterSet | None = None,
) -> dict[str, Any]:
    """The parameters checked against the notebook, `defaults` under them."""
    if params is None:
        sources: Sequence[ParamSource] = ()
    elif isinstance(params, Mapping | str | os.PathLike | parameters.ParameterSet):
        sources = (params,)
    else:
        sources = params
    merged = parameters.load(defaults or parameters.ParameterSet(), *sources)
    return parameters.validate(spec, merged)


def default_backend(spec: NotebookSpec) -> str:
    """Where a notebook runs unless told otherwise: a GPU notebook on Kaggle, the rest
    on this machine."""
    return "kaggle" if spec.kernel.enable_gpu else "local"


def execute(
    notebook: str | os.PathLike,
    params: ParamSource | Sequence[ParamSource] | None = None,
    *,
    backend: str | None = None,
    output_dir: str | os.PathLike | None = None,
    force: bool = False,
    cache: bool = True,
    verify: bool = False,
    settings: Settings | None = None,
    output: str | os.PathLike[str] | None = None,
    formats: str | Sequence[str] = (),
    **backend_options: Any,
) -> Result:
    """Run `notebook` (a shipped name such as "qwen", or a path) with `params`.

    `params` is a dict, a YAML or text file path, or a list of them merged in order.
    `backend` defaults to the notebook's own: Kaggle for the GPU notebooks, this machine
    for the rest. The same request again returns the stored result at once unless `force`
    is true. Lines spoken before with the same notebook and settings (by any request) are
    taken from the line cache unless `cache` is false. A stored result is returned only
    when its clips are there at their sizes (and, with `verify`, their sha256).
    `backend_options` are the backend's options: on every backend `timeout` (seconds or
    "10m": no line is started after it) and `on_progress` (called with each line's
    Progress); for Kaggle also `shards`, `kernel`, `endpoint`, ...; each that is also a
    setting is checked as the setting is; an unknown one is refused.

    What the call leaves out comes from `settings` (by default those found from here:
    pyproject.toml, the user file, KAGGLETTS_* variables); an explicit `kernel=` replaces
    the kernel settings as a whole.

    `output` names one audio file (.wav, .mp3, .flac or .ogg) to write the clips into,
    joined in line order with a short pause between them; `formats` ("mp3", ...) give
    each clip in those formats too, beside its WAV. Both are written once the run ends,
    from the clips it made, also when it ends with lines missing.
    """
    requested = RequestedAudio.check(output, formats)
    chosen = settings or load_settings()
    spec = find_notebook(notebook)
    backend = backend or chosen.backend or default_backend(spec)
    output_dir = output_dir or chosen.output_dir
    # Bad parameters are reported before anything else is asked for (credentials, say).
    values = validate(spec, params, chosen.notebook_defaults(spec.name))
    given = checked_options(backend, backend_options, "kaggletts.execute")
    runner = get_backend(backend, **{**chosen.backend_options(backend), **given})
    job = Job.create(spec, values, backend, output_dir, runner.identity())
    with shown_in_notebook():
        try:
            result = run_job(
                job, runner, force=force, cache=LineCache() if cache else None, verify=verify
            )
        except Incomplete as partial:
            requested.write(partial.result)
            raise
    requested.write(result)
    return result


def run_job(
    job: Job,
    runner: Backend | None = None,
    *,
    force: bool = False,
    attach: bool = False,
    cache: LineCache | None = None,
    verify: bool = False,
) -> Result:
    """The job's stored result, or the job run (or picked up again) on its backend, by
    one process at a time: a second identical request waits, then finds the result. With
    a `cache`, lines it holds are taken from it and not spoken again (unless `force`),
    and the lines the run made are kept in it. A job with lines missing raises Incomplete
    (RunFailed where none was spoken); the same request again speaks only those."""
    with job.driving():
        stored = None if force else job.stored_result(verify)
        if stored is not None and not stored.missing:
            return stored
        if cache is not None and not (force or attach):
            reused = cache.fill(job)
            if reused:
                log.info("%d of %d lines taken from the line cache", len(reused),
                         job.utterance_count)
        with job.failing_on_error():
            result = (runner or get_backend(job.backend)).run(job, force=force, attach=attach)
        if cache is not None:
            cache.store(job, result)
    if not result.missing:
        return result
    if not result.audio:
        reasons = sorted({line.reason for line in result.missing})
        raise RunFailed(
            f"job {job.id}: none of its {counted(len(result.missing), 'line')} was spoken: "
            + "; ".join(reasons[:3])
            + f"\n  executed notebook: {result.notebook}"
        )
    raise Incomplete(result)
