"""Run a job as one or more Kaggle kernel sessions: plan, push, wait, collect.

The record of every shard is written before each step, so the same request again (or
`kaggletts attach`) picks the job up where it stopped without a second GPU session."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from kaggletts import cost
from kaggletts.backends.kaggle.context import RunContext
from kaggletts.backends.kaggle.credentials import Credentials, find_credentials
from kaggletts.backends.kaggle.kernel import slug_stem
from kaggletts.backends.kaggle.options import KaggleOptions
from kaggletts.backends.kaggle.outputs import collect, failure_of, kept_text, salvage
from kaggletts.backends.kaggle.polling import PollSchedule
from kaggletts.backends.kaggle.push import push_shard
from kaggletts.backends.kaggle.quota import MIN_QUOTA_SECONDS
from kaggletts.backends.kaggle.records import (
    ENDED_BADLY,
    KaggleRun,
    RunStore,
    Shard,
    ShardState,
)
from kaggletts.backends.kaggle.remote import KaggleRemote, KernelState, Quota
from kaggletts.backends.kaggle.retry import RetryPolicy
from kaggletts.backends.kaggle.voices import attach_voices
from kaggletts.backends.kaggle.wait import ends_by_text, wait_until_ended
from kaggletts.errors import (
    CancelledElsewhere,
    CorruptRecord,
    Interrupted,
    KaggleTTSError,
    KaggleUnreachable,
    LeftOnKaggle,
    NotListed,
    QuotaExhausted,
    RunFailed,
    UsageError,
    summary,
)
from kaggletts.finish import finish
from kaggletts.jobs import (
    Job,
    JobState,
    batch_lines,
    line_numbers_of,
    line_texts,
    params_for_lines,
)
from kaggletts.kernel.support import characters_of
from kaggletts.layout import shard_folder
from kaggletts.ledger import ledger_files, read_ledger
from kaggletts.parameters import check_kaggle_kernel
from kaggletts.progress import Progress
from kaggletts.result import Result, build_result
from kaggletts.words import counted

log = logging.getLogger("kaggletts")

COLD_START_SECONDS = 180
# Kaggle lists and downloads only the first 500 outputs of a session (kaggle-api #664,
# #463): a session's clips, its ledger, the executed notebook and a few files of Kaggle's
# own stay under that.
MAX_LINES_PER_SESSION = 480
# How many attempts of a shard a damaged record is rebuilt from at most.
MAX_ATTEMPTS_PROBED = 50


def _until_a_failure_past_the_quota(futures: list[Future[None]]) -> set[Future[None]]:
    """Wait for every shard, or for the first to fail other than by a used-up GPU quota:
    sessions already pushed are paid for, so they are watched to their end and collected
    while the shards not yet pushed stop at the quota. Returns the shards done."""
    waiting = set(futures)
    while waiting:
        done, waiting = wait(waiting, return_when=FIRST_EXCEPTION)
        if any(not isinstance(f.exception(), QuotaExhausted | None) for f in done):
            break
    return {f for f in futures if f.done()}


@dataclass
class KaggleBackend(KaggleOptions):
    """The Kaggle backend: its options (KaggleOptions, typed values), and the machinery
    below. Every wait is a field, so tests and benchmarks can scale time; the state of a
    run lives in a RunContext, never here."""

    credentials: Credentials | None = None
    shard_size: int = 500
    poll: PollSchedule = field(default_factory=PollSchedule)
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    cap_wait: float = 30.0
    outputs_wait: float = 300.0
    # After a push's reply was lost: how long to give Kaggle to show the kernel it made.
    settle_wait: float = 5.0
    # How long status calls may keep failing (past each call's retries) before the run is
    # left to go on on Kaggle unwatched (exit 3).
    outage_wait: float = 600.0
    # How long past its time limit a session may still be reported running before its
    # kernel is deleted to stop it (Kaggle is meant to stop it at the limit).
    overrun_wait: float = 600.0
    download_workers: int = 4
    # Asked whether to push above `ask_above`: False stops the run before any push. None
    # (the Python API's default) pushes without asking; the command line asks on a
    # terminal and refuses without one unless --yes.
    confirm: Callable[[str], bool] | None = None
    # Called with each line of progress the kernel reports (also logged to kaggletts.kernel).
    on_progress: Callable[[Progress], None] | None = None
    name: ClassVar[str] = "kaggle"

    def __post_init__(self) -> None:
        self._remote: KaggleRemote | None = None

    def remote(self) -> KaggleRemote:
        if self._remote is None:
            self._remote = KaggleRemote(
                self.credentials or find_credentials(), self.endpoint, self.retry
            )
        return self._remote

    def identity(self) -> dict[str, Any]:
        """What makes two runs of the same notebook and parameters different jobs."""
        remote = self.remote()
        return {
            "endpoint": remote.endpoint,
            "account": remote.username,
            "machine_shape": self.kernel.machine_shape,
            "enable_internet": self.kernel.enable_internet,
            "is_private": self.kernel.is_private,
            "dataset_sources": sorted(self.kernel.dataset_sources),
            "shards": self.shards or f"{self.shard_size} lines each",
        }

    # -- the run -------------------------------------------------------------------

    def run(self, job: Job, *, force: bool = False, attach: bool = False) -> Result:
        check_kaggle_kernel(job.spec, job.params, self.kernel)
        remote = self.remote()
        store = RunStore(job)
        run = self._recorded_run(job, remote, store)
        if run is None:
            if attach and job.read_record() is not None:
                raise UsageError(f"job {job.id} was never planned on Kaggle; run the request")
            run = self._plan(job, remote, store)
        elif force:
            if run.may_run():
                raise UsageError(
                    f"job {job.id} has a session that may still run on Kaggle "
                    f"({', '.join(s.slug for s in run.may_run())}); `kaggletts attach "
                    f"{job.id}` collects it, and --force is for after it has ended"
                )
            # As the local backend does: a forced run's outputs are not mixed with the last's.
            job.empty_folder()
            run = self._plan(job, remote, store, after=run)
        elif not attach:
            self._retry_what_is_missing(job, run, store)
        else:
            self._refuse_to_push_when_attaching(job, run)
        ctx = RunContext(job, remote, store, run, self, time.time() + self._time_allowed(job))
        self._preview_cost(ctx)
        store.save(run, JobState.RUNNING)
        started = time.monotonic()
        self._drive_all(ctx)
        parts = [Path(s.directory) for s in sorted(run.shards, key=lambda s: s.index)]
        if job.directory not in parts and (ledger_files(job.directory) or not parts):
            parts.insert(0, job.directory)  # lines taken from the line cache
        result = finish(build_result(
            job.id,
            job.spec.name,
            self.name,
            job.directory,
            {"run": round(time.monotonic() - started, 3)},
            parts,
            plain=job.spec.plain,
            texts=line_texts(job.params),
        ))
        store.save(run, JobState.PARTIAL if result.missing else JobState.COMPLETE)
        if not self.keep_kernels:
            self._delete_kernels(ctx)
        return result

    def _drive_all(self, ctx: RunContext) -> None:
        """Drive every shard at once (up to the account's session cap); on the first
        failure, stop watching the others and say what becomes of them."""
        pending = [s for s in ctx.run.shards if s.state is not ShardState.DOWNLOADED]
        if not pending:
            return
        workers = max(1, min(self.gpu_sessions, len(pending)))

        def drive(shard: Shard) -> None:
            try:
                self._drive(ctx, shard)
            except Exception as error:
                if not isinstance(error, QuotaExhausted):
                    ctx.stop.set()  # at once: this worker's next shard must not be pushed
                raise

        with ThreadPoolExecutor(max_workers=workers) as pool:
            futures = [pool.submit(drive, shard) for shard in pending]
            try:
                done = _until_a_failure_past_the_quota(futures)
            except KeyboardInterrupt:
                ctx.stop.set()
                wait(futures)
                # Nothing may run any more: the sessions ended, their outputs wait.
                said = self._leave(ctx, "interrupted") or (
                    f"no session of job {ctx.job.id} runs on Kaggle; "
                    f"`kaggletts attach {ctx.job.id}` collects what they made"
                )
                ctx.store.save(ctx.run, JobState.INTERRUPTED, "interrupted")
                raise Interrupted(f"interrupted; {said}") from None
            failures = [error for f in done if (error := f.exception()) is not None]
            if not failures:
                return
            ctx.stop.set()
            wait(futures)
        for error in failures:
            if isinstance(error, CancelledElsewhere):
                raise error  # the sessions are stopped and the record says so already
        if all(isinstance(error, QuotaExhausted) for error in failures):
            raise self._stopped_by_quota(ctx, failures[0])
        first = next(error for error in failures if not isinstance(error, QuotaExhausted))
        detached = isinstance(first, LeftOnKaggle)
        # A detached job's message already says that its sessions go on, and how to attach.
        said = "" if detached else self._leave(ctx, "failed")
        state = JobState.DETACHED if detached else JobState.FAILED
        ctx.store.save(ctx.run, state, summary(first))
        if said:
            first.add_note(said)
        raise first

    def _stopped_by_quota(self, ctx: RunContext, error: BaseException) -> QuotaExhausted:
        """Every session pushed has ended and been collected; the rest wait for the quota."""
        folders = dict.fromkeys([ctx.job.directory, *(Path(s.directory) for s in ctx.run.shards)])
        spoken = len({entry.number for f in folders for entry in read_ledger(f).made})
        left = len(line_texts(ctx.job.params)) - spoken
        said = (
            f"{error}. Job {ctx.job.id}: {counted(spoken, 'line')} spoken and kept in "
            f"{ctx.job.directory}, {left} left; nothing was pushed past the quota. Run the "
            "same command again once the quota refreshes: it speaks only the lines left"
        )
        ctx.store.save(ctx.run, JobState.PARTIAL, str(error))
        return QuotaExhausted(said, refreshes=getattr(error, "refreshes", None))

    def _drive(self, ctx: RunContext, shard: Shard) -> None:
        if ctx.stop.is_set():
            return  # a shard that waited for a worker while the run stopped: push nothing
        if shard.state in (ShardState.PLANNED, ShardState.PUSHING):
            push_shard(ctx, shard)
        if shard.state is ShardState.PUSHED:
            status = wait_until_ended(ctx, shard)
            if status is None:
                return
            if status.state is not KernelState.COMPLETE:
                failure = failure_of(ctx, shard, status)
                ended = (
                    ShardState.FAILED if status.state is KernelState.ERROR else ShardState.STOPPED
                )
                ctx.move(shard, ended, error=str(failure).splitlines()[0])
                raise failure
            ctx.move(shard, ShardState.COMPLETE)
        if shard.state is ShardState.COMPLETE:
            self._collect(ctx, shard)

    def _collect(self, ctx: RunContext, shard: Shard) -> None:
        """Download what a session that ended well made. Whatever goes wrong here, the
        shard stays COMPLETE and its kernel is kept: the session's work is on Kaggle, and
        `attach` (or the same request) collects it again, never pushing it anew."""
        try:
            made = collect(ctx, shard)
        except (KaggleUnreachable, NotListed) as error:
            raise LeftOnKaggle(
                f"{error}. Job {ctx.job.id}'s run on Kaggle is over and its outputs stay "
                f"there; `kaggletts attach {ctx.job.id}` downloads them"
            ) from error
        except RunFailed as error:
            error.add_note(
                f"kernel {ctx.remote.username}/{shard.slug} is kept with its outputs "
                f"(`kaggletts attach {ctx.job.id}` tries collecting them again; --force runs "
                "the job anew)"
            )
            raise
        if made < len(batch_lines(shard.params)):
            log.warning(
                "%s: %d of %d lines spoken; the rest are listed with their reasons when the "
                "job ends",
                shard.label,
                made,
                len(batch_lines(shard.params)),
            )
        ctx.move(shard, ShardState.DOWNLOADED)

    def _leave(self, ctx: RunContext, reason: str) -> str:
        """Stop what can be stopped, and say what happens to the rest ("" if nothing of the
        job runs on Kaggle). Kaggle tells no session id, so a session is cancelled here
        only where one was learned; every other one runs to its time limit (its kernel is
        deleted past it by the next watch, or now by `kaggletts cancel`)."""
        cancelled, left = self.cancel(ctx.job, ctx.remote, reason=reason, ctx=ctx)
        if not (cancelled or left):
            return ""
        said = []
        if cancelled:
            said.append(
                f"cancelled {counted(len(cancelled), 'Kaggle session')}: {', '.join(cancelled)}"
            )
        if left:
            said.append(
                f"{counted(len(left), 'session')} "
                f"{'keeps' if len(left) == 1 else 'keep'} running on Kaggle: {'; '.join(left)}; "
                f"`kaggletts attach {ctx.job.id}` collects what they make"
            )
        return "; ".join(said)

    def cancel(
        self,
        job: Job,
        remote: KaggleRemote | None = None,
        *,
        reason: str = "cancelled",
        ctx: RunContext | None = None,
    ) -> tuple[list[str], list[str]]:
        """Cancel the job's sessions that Kaggle may still run, where their session id is
        known. Returns the sessions cancelled and, for the others, what becomes of them."""
        remote = remote or self.remote()
        store = ctx.store if ctx else RunStore(job)
        run = ctx.run if ctx else store.load()
        cancelled: list[str] = []
        left: list[str] = []
        if run is None:
            return cancelled, left
        for shard in run.may_run():
            if shard.session_id is None:
                left.append(f"{remote.username}/{shard.slug}{ends_by_text(shard)}")
                continue
            remote.cancel(shard.session_id)
            store.move(run, shard, ShardState.STOPPED, error=reason)
            cancelled.append(shard.label)
        return cancelled, left

    def stop(self, job: Job) -> list[str]:
        """Stop the job's sessions that Kaggle may still run by deleting their kernels (no
        session id is known on real Kaggle, so deleting is the one stop that works), each
        after taking the clips its outputs list (a running session's are not known to be
        listed). Returns what was done to each, and what of its work was kept."""
        remote = self.remote()
        store = RunStore(job)
        run = store.load()
        if run is None:
            return []
        ctx = RunContext(job, remote, store, run, self, time.time())
        said = []
        for shard in run.may_run():
            where = f"{remote.username}/{shard.slug}"
            if shard.state is ShardState.PUSHING and not remote.kernel_exists(shard.slug):
                ctx.move(shard, ShardState.PLANNED)
                continue
            kept, _, _ = salvage(ctx, shard, running=True)
            remote.delete_kernel(shard.slug)
            if shard.state is ShardState.PUSHING:
                ctx.move(shard, ShardState.PLANNED, attempt=shard.attempt + 1, filed_as=None)
            else:
                ctx.move(shard, ShardState.STOPPED, error="cancelled: its kernel was deleted")
            said.append(f"deleted kernel {where}, which stops its session; {kept_text(kept)}")
        store.save(run, JobState.CANCELLED, "cancelled")
        return said

    def leftover_kernels(self, job: Job) -> tuple[list[str], str | None]:
        """The kernels kaggletts made for a job that is over (finished, failed, or past its
        sessions' time limits and the overrun margin) that Kaggle still holds: those named by
        the job's slug stems and attempts, never any other. Otherwise ([], why not)."""
        remote = self.remote()
        run = RunStore(job).load()
        if run is None:
            return [], None
        if (run.endpoint, run.account) != (remote.endpoint, remote.username):
            return [], f"run as {run.account} on {run.endpoint}"
        if any(s.state is ShardState.COMPLETE for s in run.shards):
            return [], f"its outputs wait on Kaggle (`kaggletts attach {job.id}`)"
        now = time.time()
        if any((s.ends_by or now) + self.overrun_wait > now for s in run.may_run()):
            return [], "a session of it may still run"
        slugs = [
            slug
            for shard in run.shards
            for slug in dict.fromkeys(
                [*(f"{shard.slug_stem}-{a}" for a in range(1, shard.attempt + 1)),
                 *([shard.filed_as] if shard.filed_as else [])]
            )
        ]
        return [slug for slug in slugs if remote.kernel_exists(slug)], None

    # -- planning ------------------------------------------------------------------

    def _recorded_run(self, job: Job, remote: KaggleRemote, store: RunStore) -> KaggleRun | None:
        try:
            run = store.load()
        except CorruptRecord as damage:
            return self._recover(job, remote, store, damage)
        if run is not None and (run.endpoint, run.account) != (remote.endpoint, remote.username):
            raise UsageError(
                f"job {job.id} was run against {run.endpoint} as {run.account}, not "
                f"{remote.endpoint} as {remote.username}; it is not picked up elsewhere"
            )
        return run

    def _recover(
        self, job: Job, remote: KaggleRemote, store: RunStore, damage: CorruptRecord
    ) -> KaggleRun:
        """Rebuild a damaged record from what Kaggle holds: the plan is a function of the
        request, and each shard's pushes are kernels with predictable slugs."""
        run = self._plan(job, remote, store)
        for shard in run.shards:
            attempt = 0
            while attempt < MAX_ATTEMPTS_PROBED and remote.kernel_exists(
                f"{shard.slug_stem}-{attempt + 1}"
            ):
                attempt += 1
            if attempt:
                shard.attempt = attempt
                store.move(run, shard, ShardState.PUSHING)
        log.warning(
            "warning: %s; rebuilt it from what Kaggle holds (%d of %d shards already pushed)",
            damage,
            sum(s.state is ShardState.PUSHING for s in run.shards),
            len(run.shards),
        )
        return run

    def _plan(
        self, job: Job, remote: KaggleRemote, store: RunStore, after: KaggleRun | None = None
    ) -> KaggleRun:
        """Split the lines still to speak (those in no ledger of the job's folder yet: the
        line cache may have given some) into shards of at most MAX_LINES_PER_SESSION, and
        record them before anything is pushed. One shard runs in the job's folder. A plan
        made `after` an earlier run of the job (--force) speaks every line again and starts
        past that run's attempts, so no kernel of it, kept or not, is pushed to again."""
        params, dataset_sources = attach_voices(job.spec, job.params, remote)
        lines = batch_lines(params)
        done = set() if after else {entry.number for entry in read_ledger(job.directory).made}
        numbers = [number for number in range(1, len(lines) + 1) if number not in done]
        per_session = min(self.shard_size, MAX_LINES_PER_SESSION)
        count = max(self.shards or 1, math.ceil(len(numbers) / per_session))
        count = min(count, len(numbers)) if numbers else 0
        if not lines:
            count = 1  # a plain notebook speaks no lines: its one session is the job
        base, extra = divmod(len(numbers), max(count, 1))
        bounds = [index * base + min(index, extra) for index in range(count + 1)]
        shards = []
        for index in range(1, count + 1):
            share = numbers[bounds[index - 1] : bounds[index]]
            part = params if share == list(range(1, len(lines) + 1)) else (
                params_for_lines(params, share)
            )
            directory = job.directory / shard_folder(index) if count > 1 else job.directory
            stem = slug_stem(job.spec.name, job.id, index)
            earlier = [s.attempt for s in after.shards if s.slug_stem == stem] if after else []
            shards.append(
                Shard(index, stem, part, str(directory), attempt=max(earlier, default=0) + 1)
            )
        run = KaggleRun(remote.endpoint, remote.username, shards, dataset_sources)
        store.save(run, JobState.PLANNED)
        return run

    def _retry_what_is_missing(self, job: Job, run: KaggleRun, store: RunStore) -> None:
        """The same request again runs, as a new attempt on a kernel of its own, every shard
        that ended without all its lines: only the lines its ledgers lack."""
        for shard in run.shards:
            if shard.state not in ENDED_BADLY and shard.state is not ShardState.DOWNLOADED:
                continue
            if job.spec.plain and shard.state is ShardState.DOWNLOADED:
                continue  # a plain notebook keeps no ledger: its finished session is all of it
            spoken = {entry.number for entry in read_ledger(Path(shard.directory)).made}
            missing = [n for n in line_numbers_of(shard.params) if n not in spoken]
            if not missing:
                continue
            params = params_for_lines(shard.params, missing) if spoken else shard.params
            if spoken:
                log.info("%s: %s already spoken; pushing the %d missing",
                         shard.slug_stem, counted(len(spoken), "line"), len(missing))
            store.move(
                run,
                shard,
                ShardState.PLANNED,
                params=params,
                attempt=shard.attempt + 1,
                filed_as=None,
                version=None,
                url=None,
                session_id=None,
                ends_by=None,
                error=None,
            )

    def _refuse_to_push_when_attaching(self, job: Job, run: KaggleRun) -> None:
        ended = [s for s in run.shards if s.state in ENDED_BADLY]
        if ended:
            raise UsageError(
                f"job {job.id} {ended[0].state.value} ({ended[0].error or 'no message'}); "
                "attach collects runs and never pushes again: run the request again to "
                "speak its missing lines"
            )

    def _time_allowed(self, job: Job) -> float:
        if self.timeout is not None:
            return self.timeout
        estimate = job.utterance_count * job.spec.seconds_per_utterance
        return min(3 * estimate + 2 * COLD_START_SECONDS + 600, 12 * 3600)

    def _delete_kernels(self, ctx: RunContext) -> None:
        """The job's kernels, its failed attempts' too, once its result is safe on disk:
        one kernel per push would otherwise pile up in the user's account."""
        for shard in ctx.run.shards:
            slugs = [f"{shard.slug_stem}-{attempt}" for attempt in range(1, shard.attempt + 1)]
            for slug in dict.fromkeys([*slugs, shard.slug]):
                try:
                    ctx.remote.delete_kernel(slug)
                except KaggleTTSError as error:
                    log.debug("kept kernel %s: %s", slug, error)

    # -- quota -----------------------------------------------------------------------

    def quota(self) -> Quota:
        return self.remote().quota()

    def _preview_cost(self, ctx: RunContext) -> None:
        """Before a GPU notebook's sessions are pushed: their estimated time (an estimate,
        with its source), the GPU quota it takes and what is left this week. Above
        `ask_above`, `confirm` is asked, and a no stops the run before any push."""
        job = ctx.job
        pending = [s for s in ctx.run.shards if s.state is ShardState.PLANNED]
        if not (job.spec.kernel.enable_gpu and pending):
            return
        defaults = {name: p.default for name, p in job.spec.parameters.items()}
        figures = cost.session_figures(
            cost.kind_of(job.spec.name, job.params, defaults),
            cost.kaggle_history(job.directory.parent.parent),
            job.spec.seconds_per_utterance,
        )
        batches = [batch_lines(s.params) for s in pending]
        lines = sum(len(batch) for batch in batches)
        need = sum(figures.session_seconds(len(b), characters_of(b)) for b in batches)
        try:
            quota = ctx.remote.quota()
            left = (
                f"{quota.remaining_seconds / 3600:.1f} h of GPU quota left this week "
                f"(refreshes {quota.refresh_time})"
            )
        except KaggleTTSError as error:
            quota, left = None, f"GPU quota left unknown ({error})"
        preview = (
            f"estimate: about {cost.duration_text(need)} of GPU session time, taken from the "
            f"GPU quota, for {counted(lines, 'line')} in {counted(len(pending), 'session')}; "
            f"{left}. "
            f"Source: {figures.source}"
        )
        log.info("%s", preview)
        if quota and quota.allowed_seconds and quota.remaining_seconds < MIN_QUOTA_SECONDS:
            return  # nothing to ask: the first push stops at the quota
        if quota and quota.allowed_seconds and need > quota.remaining_seconds:
            log.warning(
                "warning: the estimate is more than the GPU quota left this week; the run "
                "stops when it is used up, and the same command goes on once it refreshes"
            )
        if self.ask_above is None or need <= self.ask_above or self.confirm is None:
            return
        question = (
            f"the estimate is over {cost.duration_text(self.ask_above)} of GPU time; "
            f"push {counted(len(pending), 'session')}?"
        )
        if not self.confirm(question):
            store_state = f"not pushed: {question.split(';')[0]}, and it was not confirmed"
            ctx.store.save(ctx.run, JobState.CANCELLED, store_state)
            raise UsageError(f"{store_state} (--yes or a higher --ask-above pushes it)")
