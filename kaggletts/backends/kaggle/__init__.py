"""Run notebooks on Kaggle: push, poll, download, verify, resume, fan out.

Every step is written to the job record before it is taken, so that the same request
again (or `kaggletts attach`) picks the job up where it stopped, and never pushes a
second time for a push that reached Kaggle but whose reply was lost."""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import json
import logging
import math
import os
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from kaggletts.backends.kaggle.credentials import Credentials, find_credentials
from kaggletts.backends.kaggle.download import Downloader, Wanted
from kaggletts.backends.kaggle.kernel import (
    KernelOptions,
    kernel_slug,
    push_token_of,
    write_kernel_folder,
)
from kaggletts.backends.kaggle.polling import PollSchedule
from kaggletts.backends.kaggle.remote import KaggleRemote, PushRejected, Quota, explain
from kaggletts.backends.kaggle.retry import RetryPolicy, is_transient
from kaggletts.backends.kaggle.voices import attach_voices
from kaggletts.errors import KaggleTTSError, RunFailed
from kaggletts.jobs import Job, batch_lines
from kaggletts.notebook import find_failure, parameterize
from kaggletts.result import EXECUTED_NOTEBOOK, Result, build_result, read_scraps

log = logging.getLogger("kaggletts")

ENDPOINT_VARIABLE = "KAGGLETTS_KAGGLE_ENDPOINT"
SESSION_CAP_ERROR = "Maximum batch GPU session count"
COLD_START_SECONDS = 180
LOG_FILE = "kernel.log"
TERMINAL = {"COMPLETE", "ERROR", "CANCEL_ACKNOWLEDGED", "CANCEL_REQUESTED"}
# Shards that ended without a result run again when the same request comes back.
RUN_AGAIN = {"error", "cancelled", "cancel_acknowledged", "cancel_requested", "rejected"}


class DeadlinePassed(RunFailed):
    """The job ran out of its time; its sessions are cancelled."""


@dataclass
class KaggleBackend:
    """Runs a job as one or more Kaggle kernel sessions and returns the same Result the
    local backend does. Every wait is a setting, so tests and benchmarks can scale time."""

    endpoint: str | None = None
    credentials: Credentials | None = None
    kernel: KernelOptions = field(default_factory=KernelOptions)
    shards: int | None = None
    shard_size: int = 500
    gpu_sessions: int = 2
    timeout: float | None = None
    poll: PollSchedule = field(default_factory=PollSchedule)
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    cap_wait: float = 30.0
    outputs_wait: float = 300.0
    log_every: float = 60.0
    download_workers: int = 4
    name: str = "kaggle"

    def __post_init__(self) -> None:
        self._record_lock = threading.Lock()
        self._stop = threading.Event()

    def remote(self) -> KaggleRemote:
        endpoint = self.endpoint or os.environ.get(ENDPOINT_VARIABLE) or None
        return KaggleRemote(self.credentials or find_credentials(), endpoint, self.retry)

    # -- the run -------------------------------------------------------------

    def run(self, job: Job, *, force: bool = False) -> Result:
        remote = self.remote()
        record = job.read_record()
        if force or not record.get("shards"):
            record = self._plan(job, remote)
        else:
            record = self._reset_failed_shards(job)
        shards = record["shards"]
        self._warn_about_quota(job, remote, len(shards))
        started = time.monotonic()
        deadline = started + self._time_allowed(job)
        self._stop.clear()
        with ThreadPoolExecutor(max_workers=max(1, min(self.gpu_sessions, len(shards)))) as pool:
            futures = [
                pool.submit(self._run_shard, job, remote, shard["index"], deadline)
                for shard in shards
            ]
            try:
                done, _ = wait(futures, return_when=FIRST_EXCEPTION)
                failures = [f.exception() for f in done if f.exception() is not None]
            except KeyboardInterrupt:
                self._stop.set()
                wait(futures)
                stopped = self._stop_sessions(job, remote, "interrupted")
                if not stopped:
                    self._update(job, state="interrupted")
                raise RunFailed(
                    f"interrupted; {stopped or 'nothing was running on Kaggle'}"
                ) from None
            if failures:
                # The job has failed: its other sessions would only burn quota.
                self._stop.set()
                wait(futures)
                first = failures[0]
                reason = "deadline" if isinstance(first, DeadlinePassed) else "failed"
                stopped = self._stop_sessions(job, remote, reason)
                if job.read_record().get("state") != "running":
                    self._update(job, state="error", error=str(first).splitlines()[0])
                if not stopped:
                    raise first
                raise RunFailed(
                    f"{first}\n  {stopped}",
                    cell=getattr(first, "cell", None),
                    exception=getattr(first, "exception", None),
                ) from None
        parts = [Path(s["directory"]) for s in sorted(self._shards(job), key=lambda s: s["index"])]
        result = build_result(
            job.id,
            job.spec.name,
            self.name,
            job.directory,
            {"run": round(time.monotonic() - started, 3)},
            parts,
        )
        self._update(job, state="complete")
        return result

    def _reset_failed_shards(self, job: Job) -> dict[str, Any]:
        """The same request after a failure runs again only the shards that ended without
        a result; shards with a run still on Kaggle, or finished, are picked up as they are."""
        with self._record_lock:
            record = job.read_record()
            for shard in record["shards"]:
                if shard["state"] in RUN_AGAIN:
                    shard.update(state="planned", version=None, session_id=None)
            return job.write_record(shards=record["shards"], state="resumed")

    def _stop_sessions(self, job: Job, remote: KaggleRemote, reason: str) -> str:
        """Cancel what still runs on Kaggle and say exactly what happened to it ("" when
        nothing was running)."""
        cancelled, left = self.cancel(job, remote, reason=reason)
        if not (cancelled or left):
            return ""
        said = f"cancelled {cancelled} Kaggle session(s) of job {job.id} so they stop using quota"
        if left:
            said += (
                f"; {len(left)} could not be cancelled and may still run: "
                f"{', '.join(left)} (stop them on kaggle.com)"
            )
        return said

    def _plan(self, job: Job, remote: KaggleRemote) -> dict[str, Any]:
        """Split the batch into shards and record them before anything is pushed."""
        params, dataset_sources = attach_voices(job.spec, job.params, remote)
        lines = batch_lines(params)
        count = self.shards or max(1, math.ceil(len(lines) / self.shard_size))
        count = max(1, min(count, len(lines) or 1))
        base, extra = divmod(len(lines), count)
        bounds = [index * base + min(index, extra) for index in range(count + 1)]
        shards = []
        for index in range(1, count + 1):
            part = dict(params)
            if count > 1:
                part.pop("text", None)
                part["utterances"] = lines[bounds[index - 1] : bounds[index]]
            directory = job.directory / f"shard-{index}" if count > 1 else job.directory
            shards.append(
                {
                    "index": index,
                    "slug": kernel_slug(job.spec.name, index),
                    "params": part,
                    "directory": str(directory),
                    "state": "planned",
                    "push_token": f"{job.id}-{index}-{uuid.uuid4().hex[:12]}",
                }
            )
        return job.write_record(
            state="planned",
            owner=remote.username,
            shards=shards,
            endpoint=remote.endpoint,
            dataset_sources=dataset_sources,
        )

    def _time_allowed(self, job: Job) -> float:
        if self.timeout is not None:
            return self.timeout
        estimate = job.utterance_count * job.spec.seconds_per_utterance
        return min(3 * estimate + 2 * COLD_START_SECONDS + 600, 12 * 3600)

    def _run_shard(self, job: Job, remote: KaggleRemote, index: int, deadline: float) -> None:
        shard = self._shard(job, index)
        if shard["state"] == "downloaded":
            return
        if shard["state"] in ("planned", "pushing"):
            self._push(job, remote, shard, deadline)
            shard = self._shard(job, index)
            if shard["state"] != "pushed":
                return
        state = self._wait_until_finished(job, remote, shard, deadline)
        if state == "COMPLETE":
            self._download(job, remote, shard)
            self._update_shard(job, index, state="downloaded")
        elif state != "STOPPED":
            self._raise_failure(job, remote, shard, state)

    # -- push, exactly once ----------------------------------------------------

    def _push(self, job: Job, remote: KaggleRemote, shard: dict[str, Any], deadline: float) -> None:
        slug = shard["slug"]
        directory = Path(shard["directory"])
        nb = parameterize(job.spec, shard["params"])
        sources = (*self.kernel.dataset_sources, *job.read_record().get("dataset_sources", []))
        folder = write_kernel_folder(
            directory / "kernel",
            remote.username,
            slug,
            nb,
            job.spec,
            dataclasses.replace(self.kernel, dataset_sources=sources),
            int(deadline - time.monotonic()) + 60,
            shard["push_token"],
        )
        attempts = 0
        with _slug_lock(job.directory.parent.parent, slug):
            while not self._stop.is_set():
                if shard["state"] == "pushing":
                    landed = self._find_own_push(remote, shard)
                    if landed is not None:
                        log.info(
                            "%s: the push reached Kaggle as version %d although its reply "
                            "was lost; attaching to it",
                            slug,
                            landed,
                        )
                        self._update_shard(job, shard["index"], state="pushed", version=landed)
                        return
                else:
                    shard = self._update_shard(
                        job,
                        shard["index"],
                        state="pushing",
                        before_version=remote.current_version(slug),
                    )
                try:
                    reply = remote.push(folder)
                except PushRejected as rejection:
                    if SESSION_CAP_ERROR not in str(rejection):
                        self._update_shard(
                            job, shard["index"], state="rejected", error=str(rejection)
                        )
                        self._update(job, state="rejected", error=str(rejection))
                        raise RunFailed(f"Kaggle refused to run {slug}: {rejection}") from None
                    shard = self._update_shard(job, shard["index"], state="planned")
                    if time.monotonic() + self.cap_wait > deadline:
                        raise DeadlinePassed(
                            f"Kaggle's GPU session cap stayed full until the deadline;"
                            f" job {job.id} was not pushed"
                        ) from None
                    log.info(
                        "%s: %s; waiting %.0fs for a session to free up",
                        slug,
                        rejection,
                        self.cap_wait,
                    )
                    self._stop.wait(self.cap_wait)
                    continue
                except (requests.RequestException, ValueError) as error:
                    attempts += 1
                    if not is_transient(error) or attempts >= self.retry.attempts:
                        raise explain(error, remote.endpoint) from None
                    log.debug(
                        "%s: push failed in transit (%s); checking whether it landed",
                        slug,
                        type(error).__name__,
                    )
                    self._stop.wait(min(self.retry.first_wait * 2**attempts, self.retry.max_wait))
                    continue
                self._update_shard(
                    job,
                    shard["index"],
                    state="pushed",
                    version=reply.version,
                    session_id=reply.session_id,
                    url=reply.url,
                )
                if self._stop.is_set():
                    return  # stopped while the push was in flight: the caller cancels it
                for source in reply.invalid_sources:
                    log.warning("warning: Kaggle did not attach dataset %s", source)
                log.info("pushed %s version %d: %s", slug, reply.version, reply.url)
                return

    def _find_own_push(self, remote: KaggleRemote, shard: dict[str, Any]) -> int | None:
        """The version this shard's push created, if one did: a version newer than the one
        seen before pushing that carries this shard's push token. Other jobs may push to
        the same slug, even with the same parameters."""
        newest = remote.current_version(shard["slug"]) or 0
        for version in range(newest, (shard.get("before_version") or 0), -1):
            source = remote.version_source(shard["slug"], version)
            if source is not None and push_token_of(source) == shard["push_token"]:
                return version
        return None

    # -- wait --------------------------------------------------------------------

    def _wait_until_finished(
        self, job: Job, remote: KaggleRemote, shard: dict[str, Any], deadline: float
    ) -> str:
        slug, version = shard["slug"], shard["version"]
        started = time.monotonic()
        last_said, last_log_at, latest_line = "", started, ""
        while True:
            state, _failure = remote.status(slug, version)
            elapsed = time.monotonic() - started
            if state == "RUNNING" and time.monotonic() - last_log_at >= self.log_every:
                latest_line = _last_line(remote.outputs(slug, version)[1]) or latest_line
                last_log_at = time.monotonic()
            if f"{state} {latest_line}" != last_said:
                log.info(
                    "%s v%d: %s after %.0fs %s", slug, version, state.lower(), elapsed, latest_line
                )
                last_said = f"{state} {latest_line}"
            if state in TERMINAL:
                self._update_shard(job, shard["index"], state=state.lower())
                return state
            if self._stop.is_set():
                return "STOPPED"
            if time.monotonic() >= deadline:
                raise DeadlinePassed(f"job {job.id} passed its deadline")
            self._stop.wait(min(self.poll.interval(elapsed), max(deadline - time.monotonic(), 0)))

    # -- outputs -------------------------------------------------------------------

    def _download(self, job: Job, remote: KaggleRemote, shard: dict[str, Any]) -> None:
        slug, version = shard["slug"], shard["version"]
        directory = Path(shard["directory"])
        listing = _Listing(remote, slug, version, self.outputs_wait, self._stop)
        downloader = Downloader(requests.Session(), self.retry, self.download_workers)
        downloader.fetch(Wanted(EXECUTED_NOTEBOOK), directory, listing.url_for)
        clips = read_scraps(directory / EXECUTED_NOTEBOOK).get("clips", [])
        wanted = [Wanted(c["file"], c["bytes"], c["sha256"]) for c in clips]
        downloader.fetch_all(wanted, directory, listing.url_for)
        (directory / LOG_FILE).write_text(listing.log, encoding="utf-8")
        log.info("%s v%d: downloaded and verified %d files", slug, version, len(wanted) + 1)

    def _raise_failure(
        self, job: Job, remote: KaggleRemote, shard: dict[str, Any], state: str
    ) -> None:
        import nbformat

        slug, version = shard["slug"], shard["version"]
        _, failure_message = remote.status(slug, version)
        if state != "ERROR":
            raise RunFailed(f"{slug} v{version} was cancelled on Kaggle ({state.lower()})")
        directory = Path(shard["directory"])
        listing = _Listing(remote, slug, version, min(self.outputs_wait, 30), self._stop)
        failure = None
        with contextlib.suppress(RunFailed, requests.RequestException):
            Downloader(requests.Session(), self.retry).fetch(
                Wanted(EXECUTED_NOTEBOOK), directory, listing.url_for
            )
            failure = find_failure(nbformat.read(directory / EXECUTED_NOTEBOOK, as_version=4))
        (directory / LOG_FILE).write_text(listing.log, encoding="utf-8")
        message = (
            failure.describe(job.spec.name)
            if failure
            else f"notebook {job.spec.name!r} failed on Kaggle: "
            f"{failure_message or _last_line(listing.log) or 'no message'}"
        )
        self._update(job, state="error", error=message)
        raise RunFailed(
            f"{message}\n  log: {directory / LOG_FILE}",
            cell=failure.cell if failure else None,
            exception=failure.exception if failure else None,
        )

    # -- cancel, quota ---------------------------------------------------------------

    def cancel(
        self, job: Job, remote: KaggleRemote | None = None, reason: str = "cancelled"
    ) -> tuple[int, list[str]]:
        """Cancel every session of the job still queued or running. Returns how many were
        cancelled and the ones that could not be (their session id was never learned)."""
        remote = remote or self.remote()
        cancelled, left = 0, []
        for shard in self._shards(job):
            if shard["state"] == "pushing":
                landed = self._find_own_push(remote, shard)
                if landed is None:
                    continue
                shard = self._update_shard(job, shard["index"], state="pushed", version=landed)
            if shard.get("version") is None or shard["state"] in ("downloaded", "complete"):
                continue
            state, _ = remote.status(shard["slug"], shard["version"])
            if state not in ("QUEUED", "RUNNING"):
                continue
            if shard.get("session_id") is None:
                left.append(f"{shard['slug']} v{shard['version']}")
                continue
            remote.cancel(shard["session_id"])
            self._update_shard(job, shard["index"], state="cancelled")
            cancelled += 1
        if cancelled or left:
            self._update(job, state="running" if left else "cancelled", cancel_reason=reason)
        log.info("cancelled %d Kaggle session(s) of job %s (%s)", cancelled, job.id, reason)
        for session in left:
            log.warning(
                "warning: cannot cancel %s: Kaggle never told its session id; stop it "
                "on kaggle.com",
                session,
            )
        return cancelled, left

    def quota(self) -> Quota:
        return self.remote().quota()

    def _warn_about_quota(self, job: Job, remote: KaggleRemote, shards: int) -> None:
        if not job.spec.kernel.enable_gpu:
            return
        try:
            quota = remote.quota()
        except KaggleTTSError as error:
            log.debug("GPU quota unknown (%s); running anyway", error)
            return
        need = job.utterance_count * job.spec.seconds_per_utterance + shards * COLD_START_SECONDS
        if quota.allowed_seconds and need > quota.remaining_seconds:
            log.warning(
                "warning: this batch needs about %.1f GPU hours; %.1f are left this week "
                "(refresh %s)",
                need / 3600,
                quota.remaining_seconds / 3600,
                quota.refresh_time,
            )

    # -- the job record ----------------------------------------------------------------

    def _shards(self, job: Job) -> list[dict[str, Any]]:
        return job.read_record().get("shards", [])

    def _shard(self, job: Job, index: int) -> dict[str, Any]:
        return next(s for s in self._shards(job) if s["index"] == index)

    def _update(self, job: Job, **changes: Any) -> dict[str, Any]:
        with self._record_lock:
            return job.write_record(**changes)

    def _update_shard(self, job: Job, index: int, **changes: Any) -> dict[str, Any]:
        with self._record_lock:
            shards = job.read_record()["shards"]
            for shard in shards:
                if shard["index"] == index:
                    shard.update(changes)
                    job.write_record(shards=shards)
                    return shard
        raise KeyError(index)


class _Listing:
    """The output listing of one version, fetched again when a file is missing (Kaggle
    lists outputs a little after COMPLETE) or its signed URL has expired."""

    def __init__(
        self, remote: KaggleRemote, slug: str, version: int, patience: float, stop: threading.Event
    ):
        self.remote, self.slug, self.version = remote, slug, version
        self.patience, self.stop = patience, stop
        self.urls: dict[str, str] = {}
        self.log = ""
        self.lock = threading.Lock()

    def url_for(self, name: str, refresh: bool) -> str:
        with self.lock:
            if refresh or name not in self.urls:
                self._list_until(name)
            return self.urls[name]

    def _list_until(self, name: str) -> None:
        give_up = time.monotonic() + self.patience
        wait_seconds = 0.5
        while True:
            files, self.log = self.remote.outputs(self.slug, self.version)
            self.urls = {f.name: f.url for f in files}
            if name in self.urls:
                return
            if time.monotonic() >= give_up or self.stop.is_set():
                raise RunFailed(
                    f"{self.slug} v{self.version} finished but its output "
                    f"{name!r} was not listed within {self.patience:.0f}s"
                )
            self.stop.wait(wait_seconds)
            wait_seconds = min(wait_seconds * 2, 10)


@contextlib.contextmanager
def _slug_lock(output_root: Path, slug: str) -> Iterator[None]:
    """One push at a time per kernel slug from this machine, so that a new version can
    be told apart from one another job pushed."""
    locks = output_root / ".kaggle-locks"
    locks.mkdir(parents=True, exist_ok=True)
    with (locks / f"{slug}.lock").open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _last_line(kaggle_log: str) -> str:
    """The newest non-empty line of a Kaggle log (a JSON list of stream entries)."""
    try:
        entries = json.loads(kaggle_log) if kaggle_log else []
    except ValueError:
        entries = [{"data": kaggle_log}]
    for entry in reversed(entries):
        lines = [ln for ln in str(entry.get("data", "")).splitlines() if ln.strip()]
        if lines:
            return lines[-1].strip()[:120]
    return ""
