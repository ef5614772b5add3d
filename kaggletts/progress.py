"""The kernel's own output, line by line, wherever it runs: each line is logged to the
`kaggletts.kernel` logger, and the notebooks' per-line progress (`[k/N] file 2.5s`) is
parsed into a Progress that travels on the log record (and to an optional callback), so
the CLI can draw a bar and a Python caller can follow along."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    from tqdm import tqdm

kernel_log = logging.getLogger("kaggletts.kernel")
_PROGRESS_LINE = re.compile(r"^\[(\d+)/(\d+)\]\s+(\S+)(?:\s+(\d+(?:\.\d+)?)s)?")


@dataclass(frozen=True)
class Progress:
    """One line of the batch spoken: `done` of `total` in the run (or shard) `where`."""

    where: str
    done: int
    total: int
    file: str
    seconds: float | None = None


def parse_progress(line: str, where: str) -> Progress | None:
    match = _PROGRESS_LINE.match(line.strip())
    if match is None:
        return None
    done, total, file, seconds = match.groups()
    return Progress(where, int(done), int(total), file, float(seconds) if seconds else None)


class KernelLines:
    """A file-like sink (papermill's stdout_file) or a feed of log text: whole lines are
    logged as they complete; progress lines carry their Progress."""

    def __init__(
        self,
        where: str,
        level: int = logging.INFO,
        on_progress: Callable[[Progress], None] | None = None,
    ):
        self.where, self.level, self.on_progress = where, level, on_progress
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
        progress = parse_progress(line, self.where)
        kernel_log.log(self.level, "  %s", line.rstrip(), extra={"progress": progress})
        if progress is not None and self.on_progress is not None:
            self.on_progress(progress)


class TerminalProgress(logging.Handler):
    """For a terminal: a bar per run (or shard) that advances with the kernel's progress
    and names the line just made; every other record is printed above the bars."""

    def __init__(self, stream: TextIO):
        super().__init__()
        self.stream = stream
        self.bars: dict[str, tqdm[Any]] = {}

    def emit(self, record: logging.LogRecord) -> None:
        from tqdm import tqdm

        progress: Progress | None = getattr(record, "progress", None)
        if progress is None:
            tqdm.write(self.format(record), file=self.stream)
            return
        bar = self.bars.get(progress.where)
        if bar is None:
            bar = self.bars[progress.where] = tqdm(
                total=progress.total, desc=progress.where[-24:], unit="line", file=self.stream,
                dynamic_ncols=True,
            )
        bar.update(progress.done - bar.n)
        bar.set_postfix_str(progress.file, refresh=True)
        if progress.done >= progress.total:
            bar.close()
            del self.bars[progress.where]
