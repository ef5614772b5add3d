"""The errors kaggletts raises; each knows the exit code the CLI gives it.

Exit codes: 0 done, 1 the run failed, 2 bad input, 3 the run goes on (or may go on) on
Kaggle without this process watching it, or goes on once the week's GPU quota refreshes,
4 some lines were spoken and others not (the same request again speaks only the rest),
130 interrupted."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from kaggletts.result import Result


class KaggleTTSError(Exception):
    """Base of every error kaggletts raises on purpose; the message is for the user."""

    exit_code = 1


class UsageError(KaggleTTSError):
    """The request is wrong: a bad parameter, file, value or notebook name (exit 2)."""

    exit_code = 2


class RunFailed(KaggleTTSError):
    """The notebook ran and failed, or the run could not be carried out (exit 1)."""

    def __init__(self, message: str, *, cell: str | None = None, exception: str | None = None):
        super().__init__(message)
        self.cell = cell
        self.exception = exception


class Incomplete(RunFailed):
    """The job ended with some of its lines spoken and others not (a line that failed
    twice, a deadline, a session that stopped): `result` holds what was made and lists
    the missing lines with their reasons (exit 4). The same request again speaks only
    the missing lines and returns the whole result."""

    exit_code = 4

    def __init__(self, result: Result):
        spoken, missing = len(result.audio), len(result.missing)
        first = result.missing[0]
        super().__init__(
            f"job {result.job_id}: {spoken} of {spoken + missing} lines spoken, {missing} "
            f"missing (line {first.number}: {first.reason}); run the same request again to "
            f"speak only the missing lines; the page {result.directory / 'index.html'} "
            f"lists them\n  executed notebook: {result.notebook}"
        )
        self.result = result


class KaggleUnreachable(RunFailed):
    """Kaggle did not answer, or answered only with transient failures, past the retries."""


class PushRejected(RunFailed):
    """Kaggle refused to run the kernel (its answer names why)."""


class LeftOnKaggle(KaggleTTSError):
    """The job's session goes on (or may go on), or its outputs wait, on Kaggle: nothing
    was cancelled, the job record is intact, and `kaggletts attach JOB` collects the run
    (exit 3)."""

    exit_code = 3


class QuotaExhausted(KaggleTTSError):
    """This week's GPU quota on Kaggle is used up: the lines spoken so far are kept, no
    session was pushed past the quota, and the same request again, once the quota
    refreshes (`refreshes`, an ISO time, when Kaggle tells it), speaks only the lines left
    (exit 3)."""

    exit_code = 3

    def __init__(self, message: str, *, refreshes: str | None = None):
        super().__init__(message)
        self.refreshes = refreshes


class Interrupted(KaggleTTSError):
    """Ctrl-C or SIGTERM: the message says what happens to whatever still runs (exit 130)."""

    exit_code = 130
