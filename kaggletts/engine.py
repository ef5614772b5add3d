"""A papermill engine named `kaggle`: `papermill in.ipynb out.ipynb --engine kaggle` (or
`papermill.execute_notebook(..., engine_name="kaggle")`) runs the notebook papermill hands
over on Kaggle through kaggletts' Kaggle backend, and keeps papermill's contract:

- the output notebook gets the Kaggle run's outputs and papermill's per-cell metadata, so a
  failing cell ends in papermill's own PapermillExecutionError; a failure before any cell
  ran (validation, credentials, quota, a refused push) is the kaggletts error;
- papermill's options mean what they say on Kaggle or are refused (see docs/notebooks.md);
- any notebook runs, not only kaggletts' own: one without kaggletts metadata is a plain run;
- the run's outputs land beside the output notebook, and its metadata says where.

Cells advance on papermill's progress bar once the executed notebook is back: Kaggle runs
the notebook with papermill itself and tells nothing per cell while it runs. During the run
the bar shows the kernel's own `[k/N]` progress lines."""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import difflib
import hashlib
import json
import logging
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import nbformat

from kaggletts.api import run_job, validate
from kaggletts.backends import get_backend
from kaggletts.backends.kaggle.kernel import MAX_SESSION_SECONDS
from kaggletts.backends.kaggle.options import KernelOptions
from kaggletts.backends.kaggle.records import RunStore
from kaggletts.durations import parse_duration
from kaggletts.errors import RunFailed, UsageError
from kaggletts.jobs import Job, output_root
from kaggletts.layout import EXECUTED_NOTEBOOK
from kaggletts.notebook import KernelSettings, NotebookSpec, find_notebook
from kaggletts.progress import Progress, kernel_log
from kaggletts.settings import load_settings

papermill_log = logging.getLogger("papermill")
# The one kernel a Kaggle session runs notebooks with.
KAGGLE_KERNEL = "python3"
KAGGLE_KERNELSPEC = {"name": KAGGLE_KERNEL, "display_name": "Python 3", "language": "python"}
# papermill's default --start-timeout: it reaches the engine whether given or not.
PAPERMILL_START_TIMEOUT = 60
INJECTED_TAG = "injected-parameters"
# The output notebook's metadata key for where and how the Kaggle run went.
RUN_METADATA = "kaggletts_run"
# Cell metadata a papermill run writes: taken from the Kaggle run, cell by cell.
RUN_CELL_METADATA = ("papermill", "execution")


@dataclass(frozen=True)
class EngineOptions:
    """The engine's own keyword arguments, beside papermill's: for example
    `papermill.execute_notebook(src, out, engine_name="kaggle", machine_shape="NvidiaTeslaT4",
    timeout="45m")`. Unset ones come from kaggletts' settings (pyproject.toml, the user file,
    KAGGLETTS_* variables), which is how papermill's command line sets them."""

    # A Kaggle API endpoint, e.g. a `kaggletts emulator` (KAGGLETTS_KAGGLE_ENDPOINT).
    endpoint: str | None = None
    # The accelerator, e.g. "NvidiaTeslaT4"; a notebook without kaggletts metadata gets a
    # GPU only when one is named.
    machine_shape: str | None = None
    enable_internet: bool | None = None
    # The session's time budget in seconds, given as seconds or a text such as "45m" (or
    # as --execution-timeout).
    timeout: float | None = None
    # Where the outputs go, as `<output_dir>/<notebook>/<job id>/`; by default the folder
    # `<output notebook's name>-outputs` beside the output notebook.
    output_dir: str | os.PathLike | None = None
    keep_kernels: bool | None = None
    # Return a finished run of the same request (notebook, parameters, options) as it is,
    # as kaggletts.execute does, instead of running it again as papermill would.
    reuse_result: bool = False

    @classmethod
    def from_kwargs(cls, kwargs: dict[str, Any]) -> EngineOptions:
        names = [f.name for f in dataclasses.fields(cls)]
        for name in kwargs:
            if name not in names:
                close = difflib.get_close_matches(name, names, n=1)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                raise UsageError(
                    f"the kaggle engine takes no option {name!r}{hint} "
                    f"(it takes: {', '.join(names)})"
                )
        if kwargs.get("timeout") is not None:
            kwargs = {**kwargs, "timeout": parse_duration(kwargs["timeout"], "timeout")}
        return cls(**kwargs)


class KaggleEngine:
    """papermill's engine `kaggle`, found by its entry point. papermill imports every
    engine's entry point while papermill.engines is first imported (as importing any part
    of papermill does), so this module imports papermill only inside the functions that
    use it: at its top, an import of this module first would have papermill find it half
    made (tests/test_imports.py)."""

    @classmethod
    def execute_notebook(cls, nb: Any, kernel_name: str, **kwargs: Any) -> Any:
        """papermill's own wrapper, its execution manager around execute_managed_notebook."""
        from papermill.engines import Engine

        return Engine.execute_notebook.__func__(cls, nb, kernel_name, **kwargs)

    @classmethod
    def nb_language(cls, nb: Any, language: str | None = None) -> str:
        from papermill.engines import Engine

        return Engine.nb_language(nb, language)

    @classmethod
    def nb_kernel_name(cls, nb: Any, name: str | None = None) -> str:
        """Kaggle runs every notebook with its own Python 3 kernel: the notebook must be a
        Python one, and `--kernel` may name only that kernel."""
        language = nb.metadata.get("kernelspec", {}).get("language") or nb.metadata.get(
            "language_info", {}
        ).get("name", "python")
        if language.lower() != "python":
            raise UsageError(f"Kaggle runs Python notebooks only; this one is in {language}")
        if name not in (None, KAGGLE_KERNEL):
            raise UsageError(
                f"--kernel {name} cannot be honoured: Kaggle runs every notebook with its "
                f"own {KAGGLE_KERNEL} kernel (leave --kernel out, or give {KAGGLE_KERNEL})"
            )
        return KAGGLE_KERNEL

    @classmethod
    def execute_managed_notebook(
        cls,
        nb_man: Any,
        kernel_name: str,
        *,
        input_path: Any = None,
        log_output: bool = False,
        stdout_file: IO[str] | None = None,
        stderr_file: IO[str] | None = None,
        start_timeout: float | None = PAPERMILL_START_TIMEOUT,
        execution_timeout: float | None = None,
        **engine_options: Any,
    ) -> None:
        options = EngineOptions.from_kwargs(engine_options)
        if stderr_file is not None:
            raise UsageError(
                "--stderr-file cannot be honoured: Kaggle's live log does not tell stderr "
                "from stdout; --stdout-file gets both"
            )
        budget = time_budget(execution_timeout, start_timeout, options.timeout)
        run = PapermillRun(nb_man, options, budget, notebook_name(input_path))
        with kernel_output_to(log_output, stdout_file):
            executed = run.execute()
        copy_run_into(nb_man, executed)
        description = run.description()
        nb_man.nb.metadata[RUN_METADATA] = description
        papermill_log.info("Kaggle outputs: %s", description["outputs"])


def time_budget(
    execution_timeout: float | None, start_timeout: float | None, timeout: float | None
) -> float | None:
    """The session's time budget. Kaggle has no per-cell timeout, so --execution-timeout
    bounds the whole run; the start of a session (its place in Kaggle's queue, the image's
    start) is Kaggle's to schedule, so --start-timeout has nothing to bound."""
    if start_timeout not in (None, PAPERMILL_START_TIMEOUT):
        raise UsageError(
            "--start-timeout cannot be honoured: a Kaggle session starts when Kaggle's queue "
            "and image allow; give the whole budget, start included, as --execution-timeout"
        )
    if execution_timeout and timeout is not None:
        raise UsageError(
            "two time budgets: give --execution-timeout or the engine's timeout, not both"
        )
    return execution_timeout or timeout


def notebook_name(input_path: Any) -> str:
    """The job's notebook name: the input file's, or `notebook` for stdin or a notebook
    object handed over in Python."""
    if isinstance(input_path, str | os.PathLike) and os.fspath(input_path) != "-":
        return Path(os.fspath(input_path)).stem or "notebook"
    return "notebook"


class PapermillRun:
    """One papermill execution on Kaggle: the request made from what papermill handed
    over, its job, and the executed notebook it came back with."""

    def __init__(self, nb_man: Any, options: EngineOptions, budget: float | None, name: str):
        self.nb_man, self.options, self.budget = nb_man, options, budget
        self.settings = load_settings()
        self.root = outputs_root(nb_man.nb.metadata.papermill.get("output_path"), options,
                                 self.settings.output_dir)
        self.staged = stage(request_notebook(nb_man.nb), name, self.root)
        self.params = dict(nb_man.nb.metadata.papermill.get("parameters") or {})
        self.job: Job | None = None

    def execute(self) -> Any:
        """The executed notebook of a run that finished, or of one that failed in a cell;
        any other failure is raised as the kaggletts error it is."""
        spec = self._spec()
        # Bad parameters are refused before credentials are looked for.
        values = validate(spec, self.params) if not spec.plain else plain_values(self.params)
        runner = self._backend(spec)
        self.job = Job.create(spec, values, "kaggle", self.root, runner.identity())
        force = not self.options.reuse_result and self.job.stored_result() is not None
        started = time.time()
        try:
            return nbformat.read(run_job(self.job, runner, force=force).notebook, as_version=4)
        except RunFailed:
            # A notebook that failed in a cell comes back with its error outputs, from
            # which papermill raises its own PapermillExecutionError; only a notebook
            # downloaded by this run counts (an older attempt's may lie there).
            failed = self.job.directory / EXECUTED_NOTEBOOK
            if failed.is_file() and failed.stat().st_mtime >= started:
                executed = nbformat.read(failed, as_version=4)
                if failing_cell(executed.cells) is not None:
                    return executed
            raise

    def _spec(self) -> Any:
        """A notebook declaring kaggletts metadata gets all of kaggletts (its parameters
        checked, its clips verified, the job's deadline injected); any other is a plain
        run, on the machine the options name."""
        if "kaggletts" in json.loads(self.staged.read_text(encoding="utf-8"))["metadata"]:
            return find_notebook(self.staged)
        kernel = self.settings.backend_options("kaggle").get("kernel", KernelOptions())
        return NotebookSpec(
            name=self.staged.stem,
            path=self.staged,
            parameters={},
            per_utterance=(),
            kernel=KernelSettings(True, bool(kernel.enable_internet), None),
            plain=True,
        )

    def _backend(self, spec: Any) -> Any:
        options = self.settings.backend_options("kaggle")
        kernel = options.pop("kernel", KernelOptions())
        chosen = {
            name: value
            for name in ("machine_shape", "enable_internet")
            if (value := getattr(self.options, name)) is not None
        }
        for name in ("endpoint", "keep_kernels"):
            if (value := getattr(self.options, name)) is not None:
                options[name] = value
        budget = self.budget or options.get("timeout")
        if budget is None and spec.plain:
            # papermill sets no limit by default; Kaggle's is the session maximum.
            budget = MAX_SESSION_SECONDS
        # One session: its executed notebook is the output notebook.
        options.update(shards=1, kernel=dataclasses.replace(kernel, **chosen),
                       on_progress=self._show_progress)
        if budget is not None:
            options["timeout"] = budget
        return get_backend("kaggle", **options)

    def _show_progress(self, progress: Progress) -> None:
        """The kernel's `[k/N]` lines on papermill's bar while the session runs."""
        if self.nb_man.pbar is not None:
            self.nb_man.pbar.set_postfix_str(f"line {progress.done}/{progress.total}")

    def description(self) -> dict[str, Any]:
        """Where the run went, for the output notebook's metadata."""
        job = self.job
        assert job is not None, "a run is described once it has executed"
        run = RunStore(job).load()
        assert run is not None, "an executed Kaggle job has its run stored"
        shard = run.shards[0]
        record = job.read_record()
        return {
            "job_id": job.id,
            "endpoint": job.identity.get("endpoint"),
            "kernel": f"{job.identity.get('account')}/{shard.slug}",
            "version": shard.version,
            "url": shard.url,
            "outputs": str(job.directory),
            "state": record.state.value if record else None,
        }


def outputs_root(output_path: str | None, options: EngineOptions, configured: str | None) -> Path:
    """Where the run's job folder goes: the engine's option, else kaggletts' settings, else
    a folder beside the output notebook named after it (for a local one)."""
    chosen = options.output_dir or configured
    if chosen or not output_path or output_path == "-" or "://" in output_path:
        return output_root(chosen).resolve()
    output = Path(output_path)
    if not output.is_absolute():
        output = papermill_folder() / output
    return output.parent / f"{output.stem}-outputs"


def papermill_folder() -> Path:
    """The folder papermill reads and writes relative paths from: the working folder it
    was called in, which its local file handler keeps (the engine runs inside --cwd)."""
    from papermill.iorw import papermill_io

    handler = papermill_io.get_handler("local")
    folder = handler.cwd(None)
    handler.cwd(folder)
    return Path(folder or os.getcwd())


def request_notebook(nb: Any) -> Any:
    """The notebook papermill handed over without what papermill added for this run (its
    injected parameters, which the backend injects again with the job's own, and its run
    metadata), so the same request makes the same file and so the same job."""
    request = copy.deepcopy(nb)
    request.cells = [c for c in request.cells if INJECTED_TAG not in c.metadata.get("tags", [])]
    for cell in request.cells:
        for key in RUN_CELL_METADATA:
            cell.metadata.pop(key, None)
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    request.metadata.pop("papermill", None)
    request.metadata.pop(RUN_METADATA, None)
    # Kaggle refuses a notebook without a kernelspec (kaggle-cli issue 689).
    request.metadata.setdefault("kernelspec", dict(KAGGLE_KERNELSPEC))
    return request


def stage(nb: Any, name: str, root: Path) -> Path:
    """The request notebook written where its job record can find it again, named by its
    content: `<root>/.papermill/<sha256>/<name>.ipynb`."""
    text = nbformat.writes(nb)
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]
    path = root / ".papermill" / digest / f"{name}.ipynb"
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return path


def plain_values(params: dict[str, Any]) -> dict[str, Any]:
    """A plain notebook's parameters, unchecked as papermill leaves them, but plain data:
    they name the job and are injected as text on Kaggle."""
    try:
        json.dumps(params)
    except (TypeError, ValueError) as error:
        raise UsageError(f"parameters must be plain data for a Kaggle run: {error}") from None
    return params


@contextlib.contextmanager
def kernel_output_to(log_output: bool, stdout_file: IO[str] | None) -> Iterator[None]:
    """While the session runs, its live log goes where papermill sends a local kernel's
    output: papermill's logger with --log-output, the --stdout-file; nowhere without them.
    Every line reaches the handler whatever the logging levels: the --stdout-file gets it
    all, and papermill's logger applies its own level, as for a local kernel."""
    handler = KernelOutput(log_output, stdout_file)
    propagated, level = kernel_log.propagate, kernel_log.level
    kernel_log.addHandler(handler)
    kernel_log.propagate = False
    kernel_log.setLevel(logging.DEBUG)
    try:
        yield
    finally:
        kernel_log.removeHandler(handler)
        kernel_log.propagate = propagated
        kernel_log.setLevel(level)


class KernelOutput(logging.Handler):
    def __init__(self, log_output: bool, stdout_file: IO[str] | None):
        super().__init__()
        self.log_output, self.stdout_file = log_output, stdout_file

    def emit(self, record: logging.LogRecord) -> None:
        line = record.getMessage().removeprefix("  ")
        if self.log_output:
            papermill_log.info(line)
        if self.stdout_file is not None:
            self.stdout_file.write(line + "\n")
            self.stdout_file.flush()


def failing_cell(cells: list[Any]) -> int | None:
    """The index of the first cell with an error output, as papermill looks for it."""
    for index, cell in enumerate(cells):
        if any(output.get("output_type") == "error" for output in cell.get("outputs", [])):
            return index
    return None


def copy_run_into(nb_man: Any, executed: Any) -> None:
    """Give each cell papermill handed over its outputs, execution count and papermill
    metadata from the Kaggle run, and advance the progress bar over the cells that ran."""
    from papermill.execute import ERROR_MARKER_TAG

    local = nb_man.nb.cells
    remote = [c for c in executed.cells if ERROR_MARKER_TAG not in c.metadata.get("tags", [])]
    if not any(INJECTED_TAG in c.metadata.get("tags", []) for c in local):
        # The backend always injects (the job's deadline, at least); papermill had nothing.
        remote = [c for c in remote if INJECTED_TAG not in c.metadata.get("tags", [])]
    pairs = paired(local, remote)
    failed_at = failing_cell([r for _, r in pairs])
    for index, (mine, theirs) in enumerate(pairs):
        if mine.cell_type == "code":
            mine.outputs = theirs.get("outputs", [])
            mine.execution_count = theirs.get("execution_count")
        for key in RUN_CELL_METADATA:
            if key in theirs.metadata:
                mine.metadata[key] = copy.deepcopy(theirs.metadata[key])
        if "status" not in mine.metadata.get("papermill", {}):
            mine.metadata["papermill"] = derived_cell_metadata(index, failed_at)
        if mine.metadata.papermill.get("exception"):
            nb_man.nb.metadata.papermill["exception"] = True
        if nb_man.pbar is not None and mine.metadata.papermill["status"] != nb_man.PENDING:
            nb_man.pbar.update(1)


def paired(local: list[Any], remote: list[Any]) -> list[tuple[Any, Any]]:
    """Each local cell with the Kaggle run's: the injected-parameters cells with each other
    (the backend injects its own, where papermill put one or after the parameters cell),
    every other cell in order."""
    def split(cells: list[Any]) -> tuple[list[Any], list[Any]]:
        injected = [c for c in cells if INJECTED_TAG in c.metadata.get("tags", [])]
        return injected, [c for c in cells if INJECTED_TAG not in c.metadata.get("tags", [])]

    local_injected, local_rest = split(local)
    remote_injected, remote_rest = split(remote)
    if len(local_injected) != len(remote_injected) or [c.cell_type for c in local_rest] != [
        c.cell_type for c in remote_rest
    ]:
        raise RunFailed(
            f"the notebook Kaggle ran does not line up with the one papermill handed over "
            f"({len(remote)} cells for {len(local)})"
        )
    by_cell = dict(zip(map(id, local_injected), remote_injected, strict=True))
    rest = iter(remote_rest)
    return [(cell, by_cell[id(cell)] if id(cell) in by_cell else next(rest)) for cell in local]


def derived_cell_metadata(index: int, failed_at: int | None) -> dict[str, Any]:
    """papermill's cell metadata for a run that kept none: cells before the failing one
    completed, the failing one failed, the rest never ran. Timings are unknown."""
    failed = index == failed_at
    ran = failed_at is None or index < failed_at
    return {
        "exception": failed,
        "start_time": None,
        "end_time": None,
        "duration": None,
        "status": "failed" if failed else "completed" if ran else "pending",
    }
