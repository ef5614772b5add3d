"""Run a notebook on this machine with papermill: one kernel start for the whole batch."""

from __future__ import annotations

import importlib.util
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from kaggletts.errors import Interrupted, RunFailed, UsageError
from kaggletts.finish import finish
from kaggletts.jobs import Job, JobState, line_texts, params_for_lines
from kaggletts.layout import EXECUTED_NOTEBOOK, KERNEL_LOG, PARAMETERIZED_NOTEBOOK
from kaggletts.ledger import read_ledger
from kaggletts.notebook import find_failure, parameterize
from kaggletts.progress import KernelLines, Progress
from kaggletts.result import Result, build_result
from kaggletts.words import counted

log = logging.getLogger("kaggletts")


@dataclass
class LocalBackend:
    """Settings of a run on this machine; the same `timeout` and `on_progress` as the
    Kaggle backend's, so code runs a notebook the same way on either."""

    # Seconds: the notebook starts no line after it.
    timeout: float | None = None
    # How long a cell may run past `timeout` (a line under way, the results written)
    # before it is stopped, as Kaggle's sessions are stopped past their limit.
    overrun_wait: float = 600.0
    # Called with each line of progress the kernel reports (also logged to kaggletts.kernel).
    on_progress: Callable[[Progress], None] | None = None
    name: ClassVar[str] = "local"

    def identity(self) -> dict[str, Any]:
        return {}

    def run(self, job: Job, *, force: bool = False, attach: bool = False) -> Result:
        if job.spec.kernel.enable_gpu and importlib.util.find_spec("torch") is None:
            raise UsageError(
                f"notebook {job.spec.name!r} needs PyTorch and a GPU, which this machine "
                "lacks; run it on Kaggle (--backend kaggle, its default)"
            )
        if force:
            job.empty_folder()
        job.make_folder()
        return self._run(job)

    def _run(self, job: Job) -> Result:
        import nbformat
        import papermill
        from nbclient.exceptions import CellTimeoutError
        from papermill.exceptions import PapermillExecutionError

        params = self._params_for_what_is_missing(job)
        if params is None:
            return self._result(job, 0.0)
        deadline = None if self.timeout is None else time.time() + float(self.timeout)
        if deadline is not None and "deadline" in job.spec.parameters:
            params = {**params, "deadline": round(deadline, 1)}
        nbformat.write(parameterize(job.spec, params), job.directory / PARAMETERIZED_NOTEBOOK)
        job.update_record(state=JobState.RUNNING, error=None)
        log.info(
            "running %s locally: %s, job %s",
            job.spec.name,
            counted(len(params.get("line_numbers") or []) or job.utterance_count, "line"),
            job.id,
        )

        started = time.perf_counter()
        executed = job.directory / EXECUTED_NOTEBOOK
        logging.getLogger("asyncio").addFilter(_not_an_orphaned_kernel_death)
        try:
            papermill.execute_notebook(
                str(job.directory / PARAMETERIZED_NOTEBOOK),
                str(executed),
                cwd=str(job.directory),
                kernel_name="python3",
                progress_bar=False,
                timeout_func=self._time_limit(deadline),
                stdout_file=KernelLines(job.id, on_progress=self.on_progress, label=job.spec.name),
                stderr_file=KernelLines(job.id, logging.DEBUG, label=job.spec.name),
                # The kernel's own start-up warnings (a loopback TCP connection without
                # encryption) are noise; its errors go to a file in the job folder.
                extra_arguments=["--IPKernelApp.log_level=ERROR"],
                kernel_manager_class=_kernel_manager_logging_to(job.directory / KERNEL_LOG),
            )
        except CellTimeoutError:
            kept = (
                "; the lines it spoke are kept, and the same request speaks only the rest"
                if "line_numbers" in job.spec.parameters
                else ""
            )
            message = (
                f"job {job.id} was stopped {self.overrun_wait:g} s past its "
                f"{float(self.timeout or 0):g} s timeout, notebook {job.spec.name!r} still "
                f"running{kept}"
            )
            job.update_record(state=JobState.FAILED, error=message)
            raise RunFailed(f"{message}\n  executed notebook: {executed}") from None
        except KeyboardInterrupt:
            job.update_record(state=JobState.INTERRUPTED, error="interrupted")
            raise Interrupted(f"interrupted; the local run of job {job.id} was stopped") from None
        except PapermillExecutionError as error:
            failure = find_failure(nbformat.read(executed, as_version=4))
            message = (
                failure.describe(job.spec.name)
                if failure
                else f"notebook {job.spec.name!r} failed: {error.ename}: {error.evalue}"
            )
            job.update_record(state=JobState.FAILED, error=message)
            raise RunFailed(
                f"{message}\n  executed notebook: {executed}",
                cell=failure.cell if failure else None,
                exception=failure.exception if failure else None,
            ) from None
        return self._result(job, round(time.perf_counter() - started, 3))

    def _time_limit(self, deadline: float | None) -> Callable[[Any], int | None]:
        """nbclient's limit on a cell (whole seconds; None: none): the time left until
        `overrun_wait` past the deadline, so the run as a whole stops there."""
        stop_at = None if deadline is None else deadline + self.overrun_wait
        return lambda cell: None if stop_at is None else max(1, math.ceil(stop_at - time.time()))

    def _params_for_what_is_missing(self, job: Job) -> dict[str, Any] | None:
        """The job's parameters, or, where an earlier run of it spoke some lines (its
        ledger says which), those that speak only the rest; None when none is left."""
        if "line_numbers" not in job.spec.parameters:
            return job.params
        spoken = {entry.number for entry in read_ledger(job.directory).made}
        if not spoken:
            return job.params
        missing = [n for n in range(1, job.utterance_count + 1) if n not in spoken]
        if missing:
            log.info("%s of job %s already spoken", counted(len(spoken), "line"), job.id)
        return params_for_lines(job.params, missing) if missing else None

    def _result(self, job: Job, seconds: float) -> Result:
        result = finish(build_result(
            job.id, job.spec.name, self.name, job.directory, {"run": seconds},
            texts=line_texts(job.params),
        ))
        job.update_record(state=JobState.PARTIAL if result.missing else JobState.COMPLETE)
        return result


def _not_an_orphaned_kernel_death(record: logging.LogRecord) -> bool:
    """Ctrl-C leaves nbclient's cell task pending; papermill's clean-up then shuts the kernel
    down, the task ends in DeadKernelError that nobody awaits, and asyncio logs it with a
    traceback whenever the task is collected. A death that matters reaches papermill as an
    exception, so these reports are dropped."""
    from nbclient.exceptions import DeadKernelError

    return not (record.exc_info and isinstance(record.exc_info[1], DeadKernelError))


def _kernel_manager_logging_to(path: Path) -> type:
    """A kernel manager whose kernel process writes its own stderr (ipykernel's log) to
    `path`: a kernel cut off by Ctrl-C complains there, not on the user's terminal."""
    from jupyter_client.manager import AsyncKernelManager

    class KernelLoggingToFile(AsyncKernelManager):
        # AsyncKernelManager turns KernelManager's blocking start_kernel into a coroutine;
        # jupyter_client ignores the same clash in its own declaration.
        async def start_kernel(self, **kw: Any) -> None:  # type: ignore[override]
            with path.open("ab") as stderr:  # the kernel keeps its own copy of the file
                await super().start_kernel(**kw, stderr=stderr)

    return KernelLoggingToFile
