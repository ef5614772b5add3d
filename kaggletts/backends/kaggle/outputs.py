"""A finished session's outputs: the executed notebook first (bounded in size), then only
the clips its scraps name, each verified against its recorded size and sha256; or, for a
failed session, the cell and exception that failed it."""

from __future__ import annotations

import contextlib
import json
import logging
from pathlib import Path

import requests
import tenacity

from kaggletts.backends.kaggle.context import RunContext
from kaggletts.backends.kaggle.download import Downloader, Wanted
from kaggletts.backends.kaggle.records import Shard
from kaggletts.backends.kaggle.remote import RemoteStatus
from kaggletts.errors import RunFailed
from kaggletts.notebook import find_failure
from kaggletts.result import EXECUTED_NOTEBOOK, clip_records, is_output_name, read_scraps

log = logging.getLogger("kaggletts")
LOG_FILE = "kernel.log"
# About 150 KB for a small TTS run; a notebook that prints megabytes of output is not
# worth more than this of disk and memory.
MAX_NOTEBOOK_BYTES = 64 * 1024 * 1024


class Listing:
    """The output listing of the shard's session, listed again when a file is missing
    (Kaggle lists outputs a little after COMPLETE) or its signed URL has expired."""

    def __init__(self, ctx: RunContext, shard: Shard, patience: float):
        self.ctx, self.shard, self.patience = ctx, shard, patience
        self.urls: dict[str, str] = {}
        self.log = ""

    def url_for(self, name: str, refresh: bool) -> str:
        if refresh or name not in self.urls:
            self._list_until_present(name)
        return self.urls[name]

    def _list_until_present(self, name: str) -> None:
        def list_once() -> bool:
            files, self.log = self.ctx.remote.outputs(self.shard.slug)
            self.urls = {f.name: f.url for f in files}
            return name in self.urls

        patience = tenacity.Retrying(
            retry=tenacity.retry_if_result(lambda present: not present),
            wait=tenacity.wait_exponential(multiplier=0.5, max=10),
            stop=tenacity.stop_after_delay(self.patience)
            | tenacity.stop_when_event_set(self.ctx.stop),
            sleep=self.ctx.pause,
            # Retried only while the file is not listed: patience ran out unlisted.
            retry_error_callback=lambda state: False,
        )
        if not patience(list_once):
            raise RunFailed(
                f"{self.shard.label} finished but its output {name!r} was not listed "
                f"within {self.patience:.0f}s"
            )


def collect(ctx: RunContext, shard: Shard) -> int:
    """Download and verify what the shard's run made; returns how many clips."""
    directory = Path(shard.directory)
    listing = Listing(ctx, shard, ctx.settings.outputs_wait)
    downloader = Downloader(requests.Session(), ctx.settings.retry, ctx.settings.download_workers)
    downloader.fetch(
        Wanted(EXECUTED_NOTEBOOK, max_size=MAX_NOTEBOOK_BYTES), directory, listing.url_for
    )
    scraps = read_scraps(directory / EXECUTED_NOTEBOOK)
    if ctx.job.spec.plain and "clips" not in scraps:
        # A plain notebook names no files: everything it left in the working folder is
        # its output (names from the server, so only those clear of kaggletts' own).
        clips = []
        wanted = [Wanted(name) for name in listing.urls if is_output_name(name)]
    else:
        clips = clip_records(scraps, directory / EXECUTED_NOTEBOOK)
        wanted = [Wanted(c["file"], c["bytes"], c["sha256"]) for c in clips]
    downloader.fetch_all(wanted, directory, listing.url_for, f"{shard.slug} download")
    (directory / LOG_FILE).write_text(listing.log, encoding="utf-8")
    log.info("%s: downloaded and verified %d files", shard.label, len(wanted) + 1)
    return len(clips)


def failure_of(ctx: RunContext, shard: Shard, status: RemoteStatus) -> RunFailed:
    """Why the shard's session failed, as precisely as its outputs tell."""
    import nbformat

    if status.state != "ERROR":
        return RunFailed(f"{shard.label} was cancelled on Kaggle ({status.state.lower()})")
    directory = Path(shard.directory)
    listing = Listing(ctx, shard, min(ctx.settings.outputs_wait, 30))
    failure = None
    with contextlib.suppress(RunFailed, requests.RequestException, ValueError):
        Downloader(requests.Session(), ctx.settings.retry).fetch(
            Wanted(EXECUTED_NOTEBOOK, max_size=MAX_NOTEBOOK_BYTES), directory, listing.url_for
        )
        failure = find_failure(nbformat.read(directory / EXECUTED_NOTEBOOK, as_version=4))
    (directory / LOG_FILE).write_text(listing.log, encoding="utf-8")
    name = ctx.job.spec.name
    message = (
        failure.describe(name)
        if failure
        else f"notebook {name!r} failed on Kaggle: "
        f"{status.failure_message or last_log_line(listing.log) or 'no message'}"
    )
    return RunFailed(
        f"{message}\n  log: {directory / LOG_FILE}",
        cell=failure.cell if failure else None,
        exception=failure.exception if failure else None,
    )


def last_log_line(kaggle_log: str) -> str:
    """The newest non-empty line of a Kaggle log: a JSON list of stream entries, or, from
    a server that sends something else, the text as it is."""
    try:
        entries = json.loads(kaggle_log) if kaggle_log else []
    except ValueError:
        entries = kaggle_log
    if not isinstance(entries, list):
        entries = [{"data": kaggle_log}]
    for entry in reversed(entries):
        data = entry.get("data", "") if isinstance(entry, dict) else entry
        lines = [line for line in str(data).splitlines() if line.strip()]
        if lines:
            return lines[-1].strip()[:120]
    return ""
