"""Wait for a pushed session to end. Trouble reaching Kaggle is not a failure of the run:
past the retry policy the job is left as it is and the caller is told to attach later."""

from __future__ import annotations

import logging
import time

from kaggletts.backends.kaggle.context import RunContext
from kaggletts.backends.kaggle.records import Shard
from kaggletts.backends.kaggle.remote import RemoteStatus
from kaggletts.errors import KaggleUnreachable, LeftOnKaggle

log = logging.getLogger("kaggletts")
# States after which a session does no more work.
ENDED = frozenset({"COMPLETE", "ERROR", "CANCEL_REQUESTED", "CANCEL_ACKNOWLEDGED"})
# How long past its own time limit a session may still be reported running before
# kaggletts stops waiting for it (Kaggle stops sessions at the limit).
OVERRUN_SECONDS = 600


def wait_until_ended(ctx: RunContext, shard: Shard) -> RemoteStatus | None:
    """The session's final status, or None when the run was told to stop watching."""
    started = time.monotonic()
    said = ""
    give_up_at = (shard.ends_by or ctx.deadline) + OVERRUN_SECONDS
    while True:
        try:
            status = ctx.remote.status(shard.slug)
        except KaggleUnreachable as error:
            raise still_running(ctx, shard, str(error)) from None
        state = "QUEUED" if status is None else status.state
        if status is not None and not status.known:
            state = f"{state} (a state kaggletts does not know; still waiting)"
        if state != said:
            log.info("%s: %s after %.0fs", shard.label, state.lower(), time.monotonic() - started)
            said = state
        if status is not None and status.known and status.state in ENDED:
            return status
        if ctx.stop.is_set():
            return None
        if time.time() >= give_up_at:
            raise still_running(
                ctx, shard, f"Kaggle still reports it {state.lower()} past its time limit"
            )
        pause = ctx.settings.poll.interval(time.monotonic() - started)
        ctx.stop.wait(min(pause, max(give_up_at - time.time(), 0.1)))


def still_running(ctx: RunContext, shard: Shard, why: str) -> LeftOnKaggle:
    return LeftOnKaggle(
        f"{why}. Job {ctx.job.id} is still running on Kaggle ({ctx.remote.username}/"
        f"{shard.slug}{ends_by_text(shard)}); nothing was cancelled. "
        f"`kaggletts attach {ctx.job.id}` collects it"
    )


def ends_by_text(shard: Shard) -> str:
    if shard.ends_by is None:
        return ""
    return f", stops by itself by {time.strftime('%H:%M', time.localtime(shard.ends_by))}"
