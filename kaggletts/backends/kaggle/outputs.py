"""A finished session's outputs: its line ledger first (bounded in size), then only the
clips the ledger names, each verified against its recorded size and sha256, and the
executed notebook where Kaggle lists it; or, for a failed session, the cell and exception
that failed it, and whatever clips it recorded where its outputs are listed.

A notebook without the support code (no ledger) is read from its executed notebook's
scraps, and a plain one (see NotebookSpec) keeps every file it left: those named like
kaggletts' own files under notebook-files/, and none dropped without an error."""

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
from kaggletts.backends.kaggle.remote import KernelState, RemoteStatus
from kaggletts.errors import NotListed, RunFailed
from kaggletts.layout import (
    EXECUTED_NOTEBOOK,
    KERNEL_LOG,
    LEDGER_FILE,
    LEDGER_FOLDER,
    NOTEBOOK_FILES,
)
from kaggletts.ledger import read_ledger_file
from kaggletts.notebook import find_failure
from kaggletts.progress import run_label
from kaggletts.result import (
    clip_problem,
    clip_records,
    is_output_name,
    is_safe_name,
    read_scraps,
)
from kaggletts.words import counted

log = logging.getLogger("kaggletts")
# About 150 KB for a small TTS run; a notebook that prints megabytes of output is not
# worth more than this of disk and memory.
MAX_NOTEBOOK_BYTES = 64 * 1024 * 1024
# Kaggle lists (and serves) only the first 500 outputs of a session, by name (kaggle-api
# #664, #463): a listing this long may have left files out.
LISTED_OUTPUTS = 500
# A ledger line is about 600 bytes: room for far more lines than a session can speak.
MAX_LEDGER_BYTES = 64 * 1024 * 1024


class Listing:
    """The output listing of the shard's session, listed again when a file is missing
    (Kaggle lists outputs a little after COMPLETE) or its signed URL has expired. For a
    session that failed, `files_may_never_come`: a listing that already gives the session's
    log but no file at all is taken as final (Kaggle may list no outputs of a failure)."""

    def __init__(
        self, ctx: RunContext, shard: Shard, patience: float, files_may_never_come: bool = False
    ):
        self.ctx, self.shard, self.patience = ctx, shard, patience
        self.files_may_never_come = files_may_never_come
        self.urls: dict[str, str] = {}
        self.log = ""

    def url_for(self, name: str, refresh: bool) -> str:
        if refresh or name not in self.urls:
            self.list_until_present(name)
        return self.urls[name]

    def list_until_present(self, *names: str) -> str:
        """List until one of `names` is there (the first one listed is returned)."""
        found: list[str] = []

        def list_once() -> bool:
            files, self.log = self.ctx.remote.outputs(self.shard.slug)
            self.urls = {f.name: f.url for f in files}
            found[:] = [name for name in names if name in self.urls]
            return bool(found) or (self.files_may_never_come and bool(self.log) and not files)

        patience = tenacity.Retrying(
            retry=tenacity.retry_if_result(lambda present: not present),
            wait=tenacity.wait_exponential(multiplier=0.5, max=10),
            stop=tenacity.stop_after_delay(self.patience)
            | tenacity.stop_when_event_set(self.ctx.stop),
            sleep=self.ctx.pause,
            # Retried only while the file is not listed: patience ran out unlisted.
            retry_error_callback=lambda state: False,
        )
        if not patience(list_once) or not found:
            raise NotListed(
                f"{self.shard.label} finished but none of its outputs {', '.join(names)} was "
                f"listed within {self.patience:.0f}s"
            )
        return found[0]


def collect(ctx: RunContext, shard: Shard, patience: float | None = None) -> int:
    """Download and verify what the shard's run made; returns how many clips."""
    directory = Path(shard.directory)
    listing = Listing(ctx, shard, ctx.backend.outputs_wait if patience is None else patience)
    downloader = _downloader(ctx, shard)
    if listing.list_until_present(LEDGER_FILE, EXECUTED_NOTEBOOK) == LEDGER_FILE:
        return _collect_from_ledger(ctx, shard, listing, downloader)
    downloader.fetch(
        Wanted(EXECUTED_NOTEBOOK, max_size=MAX_NOTEBOOK_BYTES), directory, listing.url_for
    )
    scraps = read_scraps(directory / EXECUTED_NOTEBOOK)
    if ctx.job.spec.plain and "clips" not in scraps:
        fetched = _collect_every_file(shard, listing, downloader)
        log.info("%s: downloaded %s", shard.label, counted(fetched + 1, "file"))
        return 0
    clips = clip_records(scraps, directory / EXECUTED_NOTEBOOK)
    wanted = [Wanted(clip.file, clip.bytes, clip.sha256) for clip in clips]
    downloader.fetch_all(wanted, directory, listing.url_for)
    (directory / KERNEL_LOG).write_text(listing.log, encoding="utf-8")
    log.info("%s: downloaded and verified %s", shard.label, counted(len(wanted) + 1, "file"))
    return len(clips)


def _downloader(ctx: RunContext, shard: Shard) -> Downloader:
    """The shard's downloads, shown as `<notebook> [shard k/n] download`."""
    label = run_label(ctx.job.spec.name, shard.index, len(ctx.run.shards))
    return Downloader(
        requests.Session(), ctx.backend.retry, ctx.backend.download_workers,
        where=f"{shard.slug} download", label=f"{label} download",
    )


def _collect_every_file(shard: Shard, listing: Listing, downloader: Downloader) -> int:
    """A plain notebook names no files: everything it left in the working folder is its
    output. A file whose name kaggletts keeps for itself (index.html, kernel/, a dotfile)
    comes back under notebook-files/; a name that would leave the folder, or a listing
    that may have stopped at Kaggle's cap, fails the collection (the kernel is kept)."""
    directory = Path(shard.directory)
    names = sorted(name for name in listing.urls if name != EXECUTED_NOTEBOOK)
    unsafe = [name for name in names if not is_safe_name(name)]
    if unsafe:
        raise RunFailed(
            f"{shard.label} left outputs named outside its folder, which kaggletts will not "
            f"write: {', '.join(repr(name) for name in unsafe[:5])}"
        )
    renamed = [name for name in names if not is_output_name(name)]
    downloader.fetch_all(
        [Wanted(name) for name in names if is_output_name(name)], directory, listing.url_for
    )
    downloader.fetch_all(
        [Wanted(name) for name in renamed], directory / NOTEBOOK_FILES, listing.url_for
    )
    (directory / KERNEL_LOG).write_text(listing.log, encoding="utf-8")
    if renamed:
        log.warning(
            "warning: %d listed files have names kaggletts keeps for its own; they are "
            "under %s: %s",
            len(renamed), directory / NOTEBOOK_FILES, ", ".join(renamed[:10]),
        )
    if len(listing.urls) >= LISTED_OUTPUTS:
        raise RunFailed(
            f"Kaggle listed {len(listing.urls)} outputs of {shard.label}, and it lists only "
            f"the first {LISTED_OUTPUTS} of a session by name: any file the notebook left that "
            f"sorts after {max(listing.urls)!r} was not listed, so it is not in {directory} "
            f"(the {len(names)} listed are); write fewer files (an archive, say)"
        )
    return len(names)


def _collect_from_ledger(
    ctx: RunContext, shard: Shard, listing: Listing, downloader: Downloader
) -> int:
    """The attempt's ledger (kept beside earlier attempts' under ledger/<attempt>/), every
    clip it records as spoken, and the executed notebook if it is listed."""
    directory = Path(shard.directory)
    attempt_folder = directory / LEDGER_FOLDER / str(shard.attempt)
    downloader.fetch(Wanted(LEDGER_FILE, max_size=MAX_LEDGER_BYTES), attempt_folder,
                     listing.url_for)
    spoken = read_ledger_file(attempt_folder / LEDGER_FILE, directory).spoken
    wanted = [
        Wanted(entry.clip.file, entry.clip.bytes, entry.clip.sha256)
        for entry in spoken
        if entry.clip is not None and clip_problem(entry.clip) is None
    ]
    downloader.fetch_all(wanted, directory, listing.url_for)
    if EXECUTED_NOTEBOOK in listing.urls:
        downloader.fetch(
            Wanted(EXECUTED_NOTEBOOK, max_size=MAX_NOTEBOOK_BYTES), directory, listing.url_for
        )
    (directory / KERNEL_LOG).write_text(listing.log, encoding="utf-8")
    log.info(
        "%s: downloaded and verified %s and the line ledger", shard.label,
        counted(len(wanted), "clip"),
    )
    return len(wanted)


def salvage(
    ctx: RunContext, shard: Shard, running: bool = False
) -> tuple[int, Listing, Downloader]:
    """Take the clips the ledger of a session that did not end well records, where Kaggle
    lists its outputs (not known for a failed, cancelled or running session); returns how
    many were kept, and the listing and downloader for anything else wanted of it. A
    running session's outputs are listed once: nothing says a later listing would hold
    more, and its kernel is about to be deleted."""
    patience = 0.0 if running else min(ctx.backend.outputs_wait, 30)
    listing = Listing(ctx, shard, patience, files_may_never_come=True)
    downloader = _downloader(ctx, shard)
    kept = 0
    with contextlib.suppress(RunFailed, requests.RequestException, ValueError):
        if listing.list_until_present(LEDGER_FILE, EXECUTED_NOTEBOOK) == LEDGER_FILE:
            kept = _collect_from_ledger(ctx, shard, listing, downloader)
    (Path(shard.directory) / KERNEL_LOG).write_text(listing.log, encoding="utf-8")
    return kept, listing, downloader


def kept_text(kept: int) -> str:
    if kept:
        return f"the {kept} clips it made were kept, and the same request speaks only the rest"
    return "Kaggle listed none of its clips, so what it made is lost"


def failure_of(ctx: RunContext, shard: Shard, status: RemoteStatus) -> RunFailed:
    """Why the shard's session failed, as precisely as its outputs tell, and what of its
    work was kept. Whether Kaggle lists a failed version's outputs is not known: where it
    does, the clips its ledger records are downloaded and verified (the same request then
    speaks only the rest); where it does not, the message says what was lost."""
    import nbformat

    directory = Path(shard.directory)
    kept, listing, downloader = salvage(ctx, shard)
    failure = None
    with contextlib.suppress(RunFailed, requests.RequestException, ValueError):
        if EXECUTED_NOTEBOOK in listing.urls and status.state is KernelState.ERROR:
            downloader.fetch(
                Wanted(EXECUTED_NOTEBOOK, max_size=MAX_NOTEBOOK_BYTES), directory, listing.url_for
            )
            failure = find_failure(nbformat.read(directory / EXECUTED_NOTEBOOK, as_version=4))
    saved = f"; {kept_text(kept)}"
    if status.state is not KernelState.ERROR:
        return RunFailed(f"{shard.label} was cancelled on Kaggle ({status.name.lower()}){saved}")
    name = ctx.job.spec.name
    message = (
        failure.describe(name)
        if failure
        else f"notebook {name!r} failed on Kaggle: "
        f"{status.failure_message or last_log_line(listing.log) or 'no message'}"
    )
    return RunFailed(
        f"{message}{saved}\n  log: {directory / KERNEL_LOG}",
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
