"""The errors kaggletts raises; each knows the exit code the CLI gives it."""

from __future__ import annotations


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
