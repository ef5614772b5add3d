"""Retry policies as data. Every remote call goes through one of these: transient
failures (connection errors, timeouts, 5xx, 429) are retried with jittered, bounded
backoff, honouring Retry-After; 4xx answers are final."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import requests
import tenacity

log = logging.getLogger("kaggletts")

TRANSIENT_STATUS = {429, 500, 502, 503, 504}


def status_of(error: BaseException) -> int | None:
    response = getattr(error, "response", None)
    return getattr(response, "status_code", None)


def is_transient(error: BaseException) -> bool:
    if isinstance(error, requests.HTTPError):
        return status_of(error) in TRANSIENT_STATUS
    # A reply cut off mid-body parses as broken JSON: the call itself may be repeated.
    return isinstance(
        error,
        requests.ConnectionError
        | requests.Timeout
        | requests.exceptions.ChunkedEncodingError
        | requests.exceptions.JSONDecodeError
        | TransientError,
    )


class TransientError(Exception):
    """Raised by kaggletts for conditions worth another try (a short download, say)."""


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 8
    first_wait: float = 0.5
    max_wait: float = 30.0
    max_total: float = 600.0

    def scaled(self, factor: float) -> RetryPolicy:
        return RetryPolicy(
            self.attempts, self.first_wait * factor, self.max_wait * factor, self.max_total * factor
        )

    def retrying(self, what: str) -> tenacity.Retrying:
        backoff = tenacity.wait_random_exponential(multiplier=self.first_wait, max=self.max_wait)

        def wait(state: tenacity.RetryCallState) -> float:
            error = state.outcome.exception() if state.outcome else None
            retry_after = _retry_after(error)
            return retry_after if retry_after is not None else backoff(state)

        def before_sleep(state: tenacity.RetryCallState) -> None:
            error = state.outcome.exception() if state.outcome else None
            log.debug(
                "%s: %s; retry %d in %.1fs",
                what,
                _describe(error),
                state.attempt_number,
                state.upcoming_sleep,
            )

        return tenacity.Retrying(
            retry=tenacity.retry_if_exception(is_transient),
            wait=wait,
            stop=tenacity.stop_after_attempt(self.attempts)
            | tenacity.stop_after_delay(self.max_total),
            before_sleep=before_sleep,
            reraise=True,
        )


def _retry_after(error: BaseException | None) -> float | None:
    # Only an HTTPError is retried for its status (is_transient).
    if not isinstance(error, requests.HTTPError) or error.response is None:
        return None
    if error.response.status_code != 429:
        return None
    header = error.response.headers.get("Retry-After", "")
    try:
        return min(float(header), 120.0)
    except ValueError:
        return None


def _describe(error: BaseException | None) -> str:
    status = status_of(error) if error else None
    return f"HTTP {status}" if status else type(error).__name__
