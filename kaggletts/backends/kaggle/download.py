"""Downloads of a finished run's outputs: only the files the result needs, several at
once, streamed to disk in bounded memory, each into a temporary name and renamed only
once its size and sha256 match what the notebook recorded."""

from __future__ import annotations

import hashlib
import logging
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import requests

from kaggletts.backends.kaggle.retry import RetryPolicy, TransientError
from kaggletts.errors import KaggleUnreachable, RunFailed, TooLarge
from kaggletts.progress import DownloadProgress
from kaggletts.result import sha256_of

log = logging.getLogger("kaggletts")
# A record per file: drawn as a bar on a terminal, left out of plain logs (see the CLI).
download_log = logging.getLogger("kaggletts.download")
CHUNK_BYTES = 1 << 20
MAX_MISMATCHES = 2


@dataclass(frozen=True)
class Wanted:
    """A file to fetch and, when the notebook recorded them, its size and sha256; or,
    when nothing recorded its size, the most it may take."""

    name: str
    size: int | None = None
    sha256: str | None = None
    max_size: int | None = None

    @property
    def limit(self) -> int | None:
        return self.size if self.size is not None else self.max_size


class Mismatch(TransientError):
    """The bytes arrived whole but are not what the notebook recorded."""


class StaleUrl(TransientError):
    """A signed URL was refused (expired): list the outputs again for a fresh one."""


@dataclass
class Downloader:
    session: requests.Session
    policy: RetryPolicy
    workers: int = 4
    # The download's key on its log records, and its name on a bar.
    where: str = "download"
    label: str = "download"
    bytes_fetched: int = 0
    _count_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def fetch_all(
        self,
        wanted: list[Wanted],
        directory: Path,
        url_for: Callable[[str, bool], str],
    ) -> list[Path]:
        """Download `wanted` into `directory`; `url_for(name, refresh)` gives each URL.
        Each file done is logged with the files and bytes so far, which a terminal or a
        notebook shows as a bar."""
        sizes = [item.size for item in wanted]
        total_bytes = None if None in sizes else sum(size or 0 for size in sizes)
        files = received = 0

        def fetch_one(item: Wanted) -> Path:
            nonlocal files, received
            path = self.fetch(item, directory, url_for)
            with self._count_lock:
                files += 1
                received += path.stat().st_size
                progress = DownloadProgress(
                    self.where, self.label, files, len(wanted), received, total_bytes, item.name
                )
            download_log.info("  downloaded %s", item.name, extra={"progress": progress})
            return path

        with ThreadPoolExecutor(max_workers=self.workers) as pool:
            return list(pool.map(fetch_one, wanted))

    def fetch(self, item: Wanted, directory: Path, url_for: Callable[[str, bool], str]) -> Path:
        target = (directory / item.name).resolve()
        if directory.resolve() not in target.parents:
            raise RunFailed(f"refusing output name outside the job folder: {item.name!r}")
        if target.is_file() and _matches(target, item):
            return target
        refresh, mismatches = [False], [0]

        def attempt() -> Path:
            try:
                return self._stream(url_for(item.name, refresh[0]), item, target)
            except StaleUrl:
                refresh[0] = True
                raise
            except Mismatch:
                # A transfer can be garbled once; the same wrong bytes twice are what
                # Kaggle holds, and fetching them again will not change them.
                mismatches[0] += 1
                if mismatches[0] >= MAX_MISMATCHES:
                    raise RunFailed(
                        f"{item.name} on Kaggle does not match the size and sha256 the notebook "
                        f"recorded ({mismatches[0]} downloads)"
                    ) from None
                raise

        try:
            return self.policy.retrying(f"download {item.name}")(attempt)
        except (TransientError, requests.RequestException) as error:
            # The message names the file only: a request error would show the signed URL.
            raise KaggleUnreachable(
                f"could not download {item.name} from Kaggle: {_reason(error)}"
            ) from None

    def _stream(self, url: str, item: Wanted, target: Path) -> Path:
        partial = target.with_name(f".{target.name}.part")
        target.parent.mkdir(parents=True, exist_ok=True)
        digest = hashlib.sha256()
        written = 0
        try:
            with self.session.get(url, stream=True, timeout=(10, 120)) as response:
                if response.status_code in (401, 403, 404):
                    raise StaleUrl(f"HTTP {response.status_code}")
                response.raise_for_status()
                announced = response.headers.get("Content-Length")
                limit = item.limit
                with partial.open("wb") as out:
                    for chunk in response.iter_content(CHUNK_BYTES):
                        out.write(chunk)
                        digest.update(chunk)
                        written += len(chunk)
                        if limit is not None and written > limit:
                            break  # a server that sends on and on is not read to the end
            over_limit = limit is not None and written > limit
            if over_limit and item.size is None:
                raise TooLarge(f"{item.name} is larger than the {limit} bytes kaggletts accepts")
            if not over_limit and announced is not None and written < int(announced):
                raise TransientError(f"got {written} of {announced} bytes")
            if item.size is not None and written != item.size:
                raise Mismatch(f"got {written} bytes, the notebook wrote {item.size}")
            if item.sha256 is not None and digest.hexdigest() != item.sha256:
                raise Mismatch("sha256 differs from the notebook's record")
            os.replace(partial, target)
            return target
        finally:
            partial.unlink(missing_ok=True)
            with self._count_lock:
                self.bytes_fetched += written


def _reason(error: BaseException) -> str:
    status = getattr(getattr(error, "response", None), "status_code", None)
    if status:
        return f"HTTP {status}"
    return str(error) if isinstance(error, TransientError) else type(error).__name__


def _matches(path: Path, item: Wanted) -> bool:
    """A file already on disk from an earlier attempt counts only if it verifies."""
    if item.sha256 is None:
        return False
    if item.size is not None and path.stat().st_size != item.size:
        return False
    return sha256_of(path) == item.sha256
