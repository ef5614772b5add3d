"""The errors kaggletts raises; each knows the exit code the CLI gives it.

Exit codes: 0 done, 1 the run failed, 2 bad input, 3 the run goes on (or may go on) on
Kaggle without this process watching it, or goes on once the week's GPU quota refreshes,
4 some lines were spoken and others not (the same request again speaks only the rest),
130 interrupted."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from kaggletts.layout import PAGE_FILE

if TYPE_CHECKING:
    from pathlib import Path

    from kaggletts.result import Result


# What follows a url's path: its query or fragment.
_URL_QUERY = re.compile(r"(https?://[^\s?#]*)[?#]\S*")


class KaggleTTSError(Exception):
    """Base of every error kaggletts raises on purpose; the message is for the user."""

    exit_code = 1

    def text(self) -> str:
        """The message with the notes added on the error's way out (what becomes of a
        job's sessions, say), one to a line, as the user is told it."""
        return "\n  ".join([str(self), *getattr(self, "__notes__", ())])


class UsageError(KaggleTTSError):
    """The request is wrong: a bad parameter, file, value or notebook name (exit 2)."""

    exit_code = 2


class CorruptRecord(UsageError):
    """A job record that cannot be read back (truncated, edited, not a job)."""


class DamagedResult(UsageError):
    """A stored result.json that cannot be used (truncated, edited, of another shape)."""


class CannotWrite(UsageError):
    """The output folder cannot hold the job's files: a file is in the way, it is
    read-only, or its disk is full."""

    def __init__(self, path: Path, error: OSError):
        super().__init__(f"cannot write {path}: {error.strerror or error}")


class RunFailed(KaggleTTSError):
    """The notebook ran and failed, or the run could not be carried out (exit 1)."""

    def __init__(self, message: str, *, cell: str | None = None, exception: str | None = None):
        super().__init__(message)
        self.cell = cell
        self.exception = exception


class BadRecord(RunFailed):
    """A record a notebook wrote (a clip, a run, a ledger entry) that kaggletts cannot read:
    the message names the file and the field."""


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
            f"speak only the missing lines; the page {result.directory / PAGE_FILE} "
            f"lists them\n  executed notebook: {result.notebook}"
        )
        self.result = result


class KaggleUnreachable(RunFailed):
    """Kaggle did not answer, or answered only with transient failures, past the retries."""


class PushRejected(RunFailed):
    """Kaggle refused to run the kernel (its answer names why)."""


class SessionCapFull(PushRejected):
    """The account's concurrent batch sessions are all taken: the push may be tried again
    once one ends."""


class KernelGone(RunFailed):
    """The shard's kernel will never run: it was deleted, or shows no session at all."""


class CancelledElsewhere(RunFailed):
    """`kaggletts cancel`, in another process, stopped the job this process drives: the
    record it wrote stands, and this process records nothing more."""


class NotListed(RunFailed):
    """A session's outputs were not listed within the patience given: Kaggle lists them a
    while after the session ends, so they may well be listed later."""


class ListingCutShort(RunFailed):
    """A session's output listing went on past the pages kaggletts follows: what it did
    not list would be lost without a word, so nothing of it is taken as the whole."""


class TooLarge(RunFailed):
    """The server sent more bytes than the file may have: reading on would not help."""


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


def summary(error: BaseException) -> str:
    """One line on the error that ended a job, for its record: a kaggletts error's first
    line; anything else (a bug) by its type and message, since its message alone may not
    say what it is, with the query of any url in it left out (a signed download url's
    signature is a secret)."""
    if isinstance(error, KaggleTTSError):
        return str(error).partition("\n")[0]
    said = f"{type(error).__name__}: {error}".partition("\n")[0]
    return _URL_QUERY.sub(r"\1?…", said)
