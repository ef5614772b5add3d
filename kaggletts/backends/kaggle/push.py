"""Push a shard exactly once.

Each attempt pushes to a kernel slug of its own, recorded as PUSHING before the request
goes out, and never one that already exists (another folder's or machine's run of the
same request, or an attempt kept by --keep-kernels). When the reply is lost or is an
error, the question "did it land?" is "does Kaggle show a run of that kernel?": a kernel
can exist without one (kaggle-api #122: a push answered 500 left the kernel, titled, with
no code). Without a run within a bounded wait, the next attempt is pushed to a new slug;
when Kaggle cannot be asked, the job stops and says which kernel to look at, and never
pushes on a guess."""

from __future__ import annotations

import dataclasses
import logging
import time
from pathlib import Path

import requests
import tenacity

from kaggletts.backends.kaggle.context import RunContext
from kaggletts.backends.kaggle.kernel import MAX_SESSION_SECONDS, write_kernel_folder
from kaggletts.backends.kaggle.records import Shard, ShardState
from kaggletts.backends.kaggle.remote import explain
from kaggletts.backends.kaggle.retry import is_transient
from kaggletts.errors import (
    KaggleTTSError,
    KaggleUnreachable,
    LeftOnKaggle,
    PushRejected,
    QuotaExhausted,
    RunFailed,
    SessionCapFull,
)
from kaggletts.layout import KERNEL_FOLDER
from kaggletts.notebook import parameterize

log = logging.getLogger("kaggletts")
# Margin of the session's own time limit over the notebook's deadline: the line under way
# when the deadline passes, writing outputs, and the image's start.
SESSION_MARGIN_SECONDS = 900
# How many existing kernels of a shard's earlier attempts are stepped over at most.
MAX_TAKEN_ATTEMPTS = 50


def push_shard(ctx: RunContext, shard: Shard) -> None:
    """Take a PLANNED or PUSHING shard to PUSHED (or raise). A GPU shard is pushed only
    while the week's GPU quota can pay for a session (QuotaExhausted leaves it PLANNED)."""
    uses_gpu = ctx.job.spec.kernel.enable_gpu
    policy = ctx.backend.retry
    backoff = tenacity.wait_random_exponential(multiplier=policy.first_wait, max=policy.max_wait)
    failures_in_transit = 0

    def attempt() -> None:
        nonlocal failures_in_transit
        if shard.state is ShardState.PUSHING and _landed(ctx, shard):
            return
        if shard.state is ShardState.PLANNED:
            if uses_gpu:
                ctx.quota.before_push(ctx.remote)
            _take_a_free_slug(ctx, shard)
            folder = _kernel_folder(ctx, shard)
            ctx.move(shard, ShardState.PUSHING)
        else:
            folder = _kernel_folder(ctx, shard)
        try:
            reply = ctx.remote.push(folder)
        except SessionCapFull:
            ctx.move(shard, ShardState.PLANNED)
            raise
        except RunFailed as rejection:
            if uses_gpu and isinstance(rejection, PushRejected):
                meaning = ctx.quota.after_refusal(ctx.remote, rejection)
                if isinstance(meaning, QuotaExhausted):
                    # Nothing ran: the next request pushes it (to a new slug, should
                    # the refused push have left a kernel).
                    ctx.move(shard, ShardState.PLANNED)
                    raise meaning from None
                rejection = meaning
            ctx.move(shard, ShardState.REJECTED, error=str(rejection))
            raise rejection from None
        except (requests.RequestException, ValueError) as error:
            if not is_transient(error):
                refused = explain(error, ctx.remote.endpoint, f"the push of {shard.slug}")
                ctx.move(shard, ShardState.REJECTED, error=str(refused))
                raise refused from None
            failures_in_transit += 1
            raise
        ends_by = time.time() + _session_seconds(ctx)
        filed_as = None
        if reply.slug and reply.slug != shard.pushed_slug:
            # Status and outputs of the slug pushed would answer 403: follow the reply.
            log.warning(
                "warning: Kaggle filed the push of %s as %s; following that kernel",
                shard.pushed_slug,
                reply.slug,
            )
            filed_as = reply.slug
        ctx.move(
            shard,
            ShardState.PUSHED,
            version=reply.version,
            url=reply.url,
            filed_as=filed_as,
            session_id=reply.session_id,
            ends_by=ends_by,
        )
        for source in reply.invalid_sources:
            log.warning("warning: Kaggle did not attach dataset %s", source)
        log.info("pushed %s: %s", shard.label, reply.url)

    def wait(state: tenacity.RetryCallState) -> float:
        error = state.outcome.exception() if state.outcome else None
        if isinstance(error, SessionCapFull):
            log.info("%s; waiting %.0fs for a session to free up", error, ctx.backend.cap_wait)
            return ctx.backend.cap_wait
        return backoff(state)

    def give_up(state: tenacity.RetryCallState) -> bool:
        return (
            ctx.stop.is_set()
            or failures_in_transit >= policy.attempts
            or time.time() + ctx.backend.cap_wait > ctx.deadline
        )

    retrying = tenacity.Retrying(
        retry=tenacity.retry_if_exception(
            lambda e: isinstance(e, SessionCapFull) or is_transient(e)
        ),
        wait=wait,
        stop=give_up,
        sleep=ctx.pause,
        reraise=True,
    )
    try:
        retrying(attempt)
    except SessionCapFull as error:
        if ctx.stop.is_set():
            return
        raise RunFailed(
            f"{error}; the cap stayed full until the job's deadline, so job {ctx.job.id} "
            "was not pushed"
        ) from None
    except (requests.RequestException, ValueError) as error:
        # The last push failed in transit: it may have landed all the same.
        if _landed(ctx, shard):
            return
        raise explain(error, ctx.remote.endpoint, f"the push of {shard.slug}") from None


def _landed(ctx: RunContext, shard: Shard) -> bool:
    """For a PUSHING shard: True (and the shard PUSHED) if Kaggle shows a session of its
    kernel; False (and the shard PLANNED as its next attempt) if it shows none within the
    settle wait, the kernel being deleted if the push left one without a run."""
    checks = 3
    for check in range(checks):
        try:
            status = ctx.remote.status(shard.slug)
            exists = status is not None or ctx.remote.kernel_exists(shard.slug)
        except KaggleUnreachable as error:
            raise LeftOnKaggle(
                f"cannot tell whether job {ctx.job.id}'s push of kernel {shard.slug} reached "
                f"Kaggle ({error}); nothing was pushed again. Look for "
                f"{ctx.remote.username}/{shard.slug} on kaggle.com, or run "
                f"`kaggletts attach {ctx.job.id}` once Kaggle answers"
            ) from None
        if status is not None:
            log.info("%s reached Kaggle although its reply was lost; following it", shard.slug)
            ctx.move(
                shard,
                ShardState.PUSHED,
                version=None,
                url=None,
                ends_by=time.time() + _session_seconds(ctx),
            )
            return True
        if check < checks - 1:
            ctx.stop.wait(ctx.backend.settle_wait)
    if exists:
        log.warning(
            "warning: the push of %s left a kernel without a run on Kaggle; deleting it and "
            "pushing a new attempt",
            shard.slug,
        )
        try:
            ctx.remote.delete_kernel(shard.slug)
        except KaggleTTSError as error:
            log.debug("kept kernel %s: %s", shard.slug, error)
    ctx.move(shard, ShardState.PLANNED, attempt=shard.attempt + 1, filed_as=None)
    return False


def _take_a_free_slug(ctx: RunContext, shard: Shard) -> None:
    """Move a PLANNED shard past attempts whose kernel exists already: they belong to
    another run of the same request (another output folder, another machine, a kept
    kernel), and pushing to one would add a version to it and adopt its outputs."""
    first = shard.attempt
    while ctx.remote.kernel_exists(shard.slug):
        if shard.attempt - first >= MAX_TAKEN_ATTEMPTS:
            raise RunFailed(
                f"kernels {shard.slug_stem}-{first} to -{shard.attempt} all exist on Kaggle "
                f"already; delete those of job {ctx.job.id} to run it again"
            )
        ctx.move(shard, ShardState.PLANNED, attempt=shard.attempt + 1, filed_as=None)


def _session_seconds(ctx: RunContext) -> int:
    return int(min(ctx.time_left(ctx.deadline) + SESSION_MARGIN_SECONDS, MAX_SESSION_SECONDS))


def _kernel_folder(ctx: RunContext, shard: Shard) -> Path:
    """The folder `kaggle kernels push` would read, with the job's deadline injected so
    the notebook starts no line after it and ends by itself."""
    spec = ctx.job.spec
    params = dict(shard.params)
    if "deadline" in spec.parameters:
        # Never at or past the session's own limit (capped at Kaggle's 12 hours): a
        # session that runs out of time ends through its own code and keeps its ledger.
        latest = time.time() + _session_seconds(ctx) - SESSION_MARGIN_SECONDS
        params["deadline"] = round(min(ctx.deadline, latest), 1)
    options = ctx.backend.kernel
    sources = (*options.dataset_sources, *ctx.run.dataset_sources)
    return write_kernel_folder(
        Path(shard.directory) / KERNEL_FOLDER,
        ctx.remote.username,
        shard.slug,
        parameterize(spec, params),
        spec,
        dataclasses.replace(options, dataset_sources=sources),
        _session_seconds(ctx),
    )
