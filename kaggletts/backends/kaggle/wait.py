"""Wait for a pushed session to end. Trouble reaching Kaggle is not a failure of the run:
past the retry policy the job is left as it is and the caller is told to attach later."""

from __future__ import annotations

import logging
import threading
import time

from kaggletts.backends.kaggle.context import RunContext
from kaggletts.backends.kaggle.outputs import kept_text, salvage
from kaggletts.backends.kaggle.records import Shard, ShardState
from kaggletts.backends.kaggle.remote import KernelState, RemoteStatus
from kaggletts.errors import (
    KaggleTTSError,
    KaggleUnreachable,
    KernelGone,
    LeftOnKaggle,
    RunFailed,
)
from kaggletts.progress import KernelLines, run_label

log = logging.getLogger("kaggletts")


def wait_until_ended(ctx: RunContext, shard: Shard) -> RemoteStatus | None:
    """The session's final status, or None when the run was told to stop watching. The
    session's log is followed meanwhile, for show only."""
    ended = threading.Event()
    threading.Thread(
        target=follow_log, args=(ctx, shard, ended), daemon=True, name=f"log {shard.slug}"
    ).start()
    try:
        return _poll_until_ended(ctx, shard)
    finally:
        ended.set()


def follow_log(ctx: RunContext, shard: Shard, ended: threading.Event) -> None:
    """Pass the session's log lines on as they come (kernel progress included), through
    reconnects, skipping lines already passed on. Whatever goes wrong here is logged and
    never touches the run: the log is a view of it, not part of it."""
    lines = KernelLines(
        shard.slug,
        on_progress=ctx.backend.on_progress,
        label=run_label(ctx.job.spec.name, shard.index, len(ctx.run.shards)),
    )
    seen, pause = 0, 1.0
    while not (ended.is_set() or ctx.stop.is_set()):
        try:
            for number, line in enumerate(ctx.remote.log_lines(shard.slug), 1):
                if number > seen:
                    lines.line(line)
                    seen = number
            return
        except Exception as error:  # noqa: BLE001 - a view must not fail what it shows
            log.debug("%s: the live log broke off (%s)", shard.slug, type(error).__name__)
        ended.wait(pause)
        pause = min(pause * 2, 30.0)


def _poll_until_ended(ctx: RunContext, shard: Shard) -> RemoteStatus | None:
    started = time.monotonic()
    said = ""
    give_up_at = (shard.ends_by or ctx.deadline) + ctx.backend.overrun_wait
    unreachable_since: float | None = None
    while True:
        try:
            status = ctx.remote.status(shard.slug)
        except KaggleUnreachable as error:
            # An outage is waited out for a while: the session runs on regardless.
            unreachable_since = unreachable_since or time.monotonic()
            if time.monotonic() - unreachable_since >= ctx.backend.outage_wait:
                raise still_running(ctx, shard, str(error)) from None
            log.info("%s: Kaggle does not answer (%s); still trying", shard.label, error)
            ctx.stop.wait(ctx.backend.poll.cap)
            if ctx.stop.is_set():
                return None
            continue
        unreachable_since = None
        if status is None:
            _check_a_run_can_still_come(ctx, shard, past_limit=time.time() >= give_up_at)
        state = KernelState.QUEUED.value if status is None else status.name
        if status is not None and status.state is KernelState.UNKNOWN:
            state = f"{state} (a state kaggletts does not know; still waiting)"
        if state != said:
            log.info("%s: %s after %.0fs", shard.label, state.lower(), time.monotonic() - started)
            said = state
        if status is not None and status.ended:
            return status
        if ctx.stop.is_set():
            return None
        if time.time() >= give_up_at:
            raise stop_overrun(ctx, shard, state.lower())
        pause = ctx.backend.poll.interval(time.monotonic() - started)
        ctx.stop.wait(min(pause, max(give_up_at - time.time(), 0.1)))


def _check_a_run_can_still_come(ctx: RunContext, shard: Shard, past_limit: bool) -> None:
    """Kaggle shows no session of the shard's kernel. Right after a push that is a queue;
    but a kernel that no longer exists (deleted on kaggle.com or by another client) will
    never run, nor will one still without a session past its time limit: the shard has
    failed, and the same request (or --force) pushes it anew."""
    try:
        exists = ctx.remote.kernel_exists(shard.slug)
    except KaggleUnreachable:
        return
    if exists and not past_limit:
        return
    where = f"{ctx.remote.username}/{shard.slug}"
    why = (
        f"kernel {where} no longer exists on Kaggle (deleted on kaggle.com or by another client)"
        if not exists
        else f"Kaggle shows no run of kernel {where} past its time limit"
    )
    message = (
        f"{why}: job {ctx.job.id}'s run there is lost. Run the request again (or with "
        "--force) to push it anew"
    )
    ctx.move(shard, ShardState.FAILED, error=message)
    raise KernelGone(message)


def stop_overrun(ctx: RunContext, shard: Shard, state: str) -> KaggleTTSError:
    """A session still reported running past its time limit (and the margin) may run and
    be billed for hours: a public CI report saw one pushed with a 5,400 s limit sit RUNNING
    for over two hours until its kernel was deleted, which stopped it. Kaggle offers no
    other stop without a session id, so its clips are taken where listed, then the kernel
    is deleted; the same request speaks the lines it did not keep."""
    where = f"{ctx.remote.username}/{shard.slug}"
    kept, _, _ = salvage(ctx, shard, running=True)
    try:
        ctx.remote.delete_kernel(shard.slug)
    except KaggleTTSError as error:
        return still_running(
            ctx, shard, f"Kaggle still reports it {state} past its time limit, and deleting "
            f"kernel {where} to stop it failed ({error})"
        )
    message = (
        f"Kaggle still reported {shard.label} {state} {ctx.backend.overrun_wait:.0f} s past "
        f"its time limit; deleted kernel {where} to stop it (a session past its limit may "
        f"go on being billed); {kept_text(kept)}"
    )
    ctx.move(shard, ShardState.STOPPED, error=message)
    log.warning("warning: %s", message)
    return RunFailed(message)


def still_running(ctx: RunContext, shard: Shard, why: str) -> LeftOnKaggle:
    return LeftOnKaggle(
        f"{why}. Job {ctx.job.id} is still running on Kaggle ({ctx.remote.username}/"
        f"{shard.slug}{ends_by_text(shard)}); nothing was cancelled. "
        f"`kaggletts attach {ctx.job.id}` collects it"
    )


def ends_by_text(shard: Shard) -> str:
    if shard.ends_by is None:
        return ""
    return f", time limit {time.strftime('%H:%M', time.localtime(shard.ends_by))}"
