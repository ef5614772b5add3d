"""The kernel's own output, line by line, wherever it runs: each line is logged to the
`kaggletts.kernel` logger, and the notebooks' per-line progress (`[k/N] file 2.5s`) is
parsed into a Progress that travels on the log record (and to an optional callback), so
that a terminal or a Jupyter notebook can draw a bar and a Python caller can follow along.

What shows the records: on a terminal that knows its width, a bar per run (or shard) and
per download; in a notebook front end where the caller set up no logging, tqdm's notebook
bar (plain lines where ipywidgets are missing); elsewhere plain lines, since a bar needs a
width to draw in (a terminal of unknown size draws none)."""

from __future__ import annotations

import contextlib
import logging
import os
import re
import sys
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    from tqdm import tqdm

kernel_log = logging.getLogger("kaggletts.kernel")
_PROGRESS_LINE = re.compile(r"^\[(\d+)/(\d+)\]\s+(\S+)(?:\s+(\d+(?:\.\d+)?)s)?")
# A download shown as lines says how far it is at most this often (in tenths), not per file.
_DOWNLOAD_STEPS = 10


@dataclass(frozen=True)
class Progress:
    """One line of the batch spoken: `done` of `total` in the run (or shard) `where`,
    which people know as `label` (the notebook, and the shard of a sharded run)."""

    where: str
    done: int
    total: int
    file: str
    seconds: float | None = None
    label: str = ""

    @property
    def name(self) -> str:
        return self.label or self.where


@dataclass(frozen=True)
class DownloadProgress:
    """A file of a run's outputs downloaded: `files` of `total_files`, `bytes` so far of
    `total_bytes` (None where the sizes are not all known beforehand)."""

    where: str
    label: str
    files: int
    total_files: int
    bytes: int
    total_bytes: int | None
    file: str


@dataclass(frozen=True)
class ProgressPlace:
    """Where the line just made falls in a larger whole (a book's chapter): on a terminal
    the label of the run `where`'s bar, elsewhere the record's own text."""

    where: str
    label: str


def run_label(notebook: str, shard: int = 1, shards: int = 1) -> str:
    """What a run is called on its bar: the notebook, and the shard when there are several."""
    return notebook if shards <= 1 else f"{notebook} shard {shard}/{shards}"


def parse_progress(line: str, where: str, label: str = "") -> Progress | None:
    match = _PROGRESS_LINE.match(line.strip())
    if match is None:
        return None
    done, total, file, seconds = match.groups()
    return Progress(where, int(done), int(total), file, float(seconds) if seconds else None, label)


class KernelLines:
    """A file-like sink (papermill's stdout_file) or a feed of log text: whole lines are
    logged as they complete; progress lines carry their Progress."""

    def __init__(
        self,
        where: str,
        level: int = logging.INFO,
        on_progress: Callable[[Progress], None] | None = None,
        label: str = "",
    ):
        self.where, self.level, self.on_progress, self.label = where, level, on_progress, label
        self.pending = ""

    def write(self, text: str) -> int:
        lines = (self.pending + text).split("\n")
        self.pending = lines.pop()
        for line in lines:
            self.line(line)
        return len(text)

    def flush(self) -> None:
        if self.pending:
            self.line(self.pending)
        self.pending = ""

    def line(self, line: str) -> None:
        if not line.strip():
            return
        progress = parse_progress(line, self.where, self.label)
        kernel_log.log(self.level, "  %s", line.rstrip(), extra={"progress": progress})
        if progress is not None and self.on_progress is not None:
            self.on_progress(progress)


class ProgressBars(logging.Handler):
    """A bar per run (or shard) that advances with the kernel's progress and names the
    line just made, and a bar per download counting bytes and files; every other record
    is written above the bars. `make_bar` makes a tqdm bar (the terminal's or the
    notebook's), `write` shows a record's text."""

    def __init__(self, make_bar: Callable[..., tqdm[Any]], write: Callable[[str], None]):
        super().__init__()
        self.make_bar, self.write = make_bar, write
        self.bars: dict[str, tqdm[Any]] = {}

    def emit(self, record: logging.LogRecord) -> None:
        progress = getattr(record, "progress", None)
        if isinstance(progress, Progress):
            self._advance(
                progress.where,
                progress.done,
                progress.file,
                lambda: self.make_bar(total=progress.total, desc=progress.name, unit="line"),
                finished=progress.done >= progress.total,
            )
        elif isinstance(progress, ProgressPlace):
            if progress.where in self.bars:
                self.bars[progress.where].set_description_str(progress.label, refresh=True)
        elif isinstance(progress, DownloadProgress):
            self._advance(
                progress.where,
                progress.bytes,
                f"{progress.files}/{progress.total_files} files",
                lambda: self.make_bar(
                    total=progress.total_bytes,
                    desc=progress.label,
                    unit="B",
                    unit_scale=True,
                    unit_divisor=1024,
                ),
                finished=progress.files >= progress.total_files,
            )
        else:
            self.write(self.format(record))

    def close(self) -> None:
        """Close the bars of runs that did not finish (a notebook's turns red), so that
        they stop where the run stopped."""
        for bar in self.bars.values():
            bar.close()
        self.bars.clear()
        super().close()

    def _advance(
        self,
        where: str,
        count: int,
        postfix: str,
        new_bar: Callable[[], tqdm[Any]],
        finished: bool,
    ) -> None:
        bar = self.bars.get(where)
        if bar is None:
            bar = self.bars[where] = new_bar()
        bar.update(count - bar.n)
        bar.set_postfix_str(postfix, refresh=True)
        if finished:
            bar.close()
            del self.bars[where]


class ProgressLines(logging.Handler):
    """Where no bar can be drawn: every record as a line, the kernel's progress named by
    its run (`espeak: line 3/24 003-hi.wav`), a download's every tenth or so."""

    def __init__(self, stream: TextIO):
        super().__init__()
        self.stream = stream
        self.shown_step: dict[str, int] = {}

    def emit(self, record: logging.LogRecord) -> None:
        progress = getattr(record, "progress", None)
        if isinstance(progress, Progress):
            text = f"{progress.name}: line {progress.done}/{progress.total} {progress.file}"
        elif isinstance(progress, DownloadProgress):
            step = progress.files * _DOWNLOAD_STEPS // max(progress.total_files, 1)
            if step == self.shown_step.get(progress.where, -1):
                return
            self.shown_step[progress.where] = step
            text = (
                f"{progress.label}: {progress.files}/{progress.total_files} files, "
                f"{_bytes_text(progress.bytes)}"
            )
        else:
            text = self.format(record)
        try:
            self.stream.write(text + "\n")
            self.stream.flush()
        except Exception:  # noqa: BLE001 - logging's own rule: a record never fails the run
            self.handleError(record)


def for_terminal(stream: TextIO) -> logging.Handler:
    """Bars on a terminal that knows its width; lines on one that does not (a pty nobody
    sized reports 0 columns, and tqdm then draws nothing at all)."""
    if _terminal_width(stream) is None:
        return ProgressLines(stream)
    from tqdm import tqdm

    def make_bar(**options: Any) -> tqdm[Any]:
        return tqdm(file=stream, dynamic_ncols=True, **options)

    return ProgressBars(make_bar, lambda text: tqdm.write(text, file=stream))


def _terminal_width(stream: TextIO) -> int | None:
    try:
        columns = os.get_terminal_size(stream.fileno()).columns
    except (AttributeError, OSError, ValueError):
        return None
    return columns or None


@contextlib.contextmanager
def shown_in_notebook() -> Iterator[None]:
    """In a notebook front end (Jupyter, VS Code, Colab) where nothing was set up to show
    kaggletts' logs, show them in the cell while it runs: the kernel's link and the
    progress on tqdm's notebook bars, or as lines where ipywidgets are missing. A caller
    who set up logging gets its records there instead, as anywhere else."""
    logger = logging.getLogger("kaggletts")
    if not in_notebook() or logger.hasHandlers():
        yield
        return
    handler = _notebook_handler()
    handler.setFormatter(logging.Formatter("%(message)s"))
    level = logger.level
    logger.addHandler(handler)
    if level == logging.NOTSET:
        logger.setLevel(logging.INFO)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
        handler.close()


def in_notebook() -> bool:
    """Whether this process is a notebook's kernel (an IPython kernel app)."""
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    return shell is not None and "IPKernelApp" in shell.config


def _notebook_handler() -> logging.Handler:
    """tqdm's choice of bar for this front end (tqdm.autonotebook, which also knows the
    consoles that show no widgets): its notebook bar, else lines."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # its notes on which bar it chose
        from tqdm.autonotebook import tqdm as chosen
        from tqdm.notebook import tqdm as notebook_bar
    if not issubclass(chosen, notebook_bar):
        return ProgressLines(sys.stdout)
    return ProgressBars(notebook_bar, print)


def _bytes_text(count: int) -> str:
    if count < 1000:
        return f"{count} B"
    size = float(count)
    for unit in ("kB", "MB"):
        size /= 1000
        if size < 1000:
            return f"{size:.1f} {unit}"
    return f"{size / 1000:.1f} GB"
