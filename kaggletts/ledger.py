"""The line ledger the notebooks write (kaggletts.kernel.support.Ledger), read back: which
of a job's lines were spoken, which failed and why, and what each session said of itself.

A job's ledgers are files, one or more per part of the job (a session appends its entries;
each Kaggle attempt's ledger is downloaded beside the others'), merged by the lines' job-wide
numbers: a spoken entry wins over a failed one, and a later one over an earlier."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from enum import StrEnum
from functools import cached_property
from pathlib import Path
from typing import Any

from kaggletts.errors import BadRecord
from kaggletts.layout import LEDGER_FILE, LEDGER_FOLDER
from kaggletts.records import ClipRecord, RunRecord, schema_of


class LineStatus(StrEnum):
    SPOKEN = "spoken"
    FAILED = "failed"


@dataclass(frozen=True)
class LineEntry:
    """One line's outcome: its number in the job, its text, and its clip's record (a spoken
    line's) or why it failed."""

    number: int
    status: LineStatus
    text: str
    clip: ClipRecord | None = None
    reason: str | None = None
    # The folder the clip's `file` is relative to (the part of the job it was made in).
    directory: Path = Path()

    @cached_property
    def intact(self) -> bool:
        """A spoken line's clip is on disk with the size and sha256 it was made with."""
        if self.clip is None:
            return False
        path = self.directory / self.clip.file
        try:
            return (
                path.is_file()
                and path.stat().st_size == self.clip.bytes
                and sha256_of(path) == self.clip.sha256
            )
        except OSError:
            return False


@dataclass(frozen=True)
class MissingLine:
    """A line of the job that has no clip, and why."""

    number: int
    text: str
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return {"line": self.number, "text": self.text, "reason": self.reason}


@dataclass
class Ledger:
    """A part's ledgers merged: each line's outcome by number, and the sessions' own
    records (the `run` entries), oldest first."""

    lines: dict[int, LineEntry] = field(default_factory=dict)
    runs: list[RunRecord] = field(default_factory=list)

    def add(self, entry: LineEntry) -> None:
        known = self.lines.get(entry.number)
        if known is None or not (
            known.status is LineStatus.SPOKEN and entry.status is LineStatus.FAILED
        ):
            self.lines[entry.number] = entry

    def merge(self, other: Ledger) -> None:
        for entry in other.lines.values():
            self.add(entry)
        self.runs += other.runs

    @property
    def spoken(self) -> list[LineEntry]:
        """Lines recorded as spoken, in order, whether or not their clips are here yet."""
        return [e for _, e in sorted(self.lines.items()) if e.status is LineStatus.SPOKEN]

    @property
    def made(self) -> list[LineEntry]:
        """Lines spoken whose clips are on disk as they were made: done for good."""
        return [e for e in self.spoken if e.intact]

    def missing(self, texts: list[str]) -> list[MissingLine]:
        """The job's lines (texts in order, numbered from 1) without a clip, each with the
        reason its session gave, or what is known of why it was not reached."""
        why_not_reached = self._why_not_reached()
        missing = []
        for number, text in enumerate(texts, 1):
            entry = self.lines.get(number)
            if entry is not None and entry.clip is not None:
                if entry.intact:
                    continue
                reason = f"its clip {entry.clip.file} is gone or changed since it was made"
            else:
                reason = entry.reason if entry is not None and entry.reason else why_not_reached
            missing.append(MissingLine(number, text, reason))
        return missing

    def _why_not_reached(self) -> str:
        for run in reversed(self.runs):
            if run.stopped:
                return f"not spoken: the batch stopped ({run.stopped})"
            if run.stopped_at_deadline:
                return "not spoken: the job's deadline passed before it was reached"
        return "not spoken: its session ended before it was reached"


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def ledger_files(directory: Path) -> list[Path]:
    """A part's ledgers, oldest first: each downloaded attempt's, then the one a local
    session writes in its working folder."""
    attempts = sorted(
        (directory / LEDGER_FOLDER).glob(f"*/{LEDGER_FILE}"),
        key=lambda path: int(path.parent.name) if path.parent.name.isdigit() else 0,
    )
    local = directory / LEDGER_FILE
    return [*attempts, *([local] if local.is_file() else [])]


def read_ledger(directory: Path) -> Ledger:
    """Every ledger of a part, merged."""
    ledger = Ledger()
    for path in ledger_files(directory):
        ledger.merge(read_ledger_file(path, directory))
    return ledger


def read_ledger_file(path: Path, directory: Path) -> Ledger:
    """One ledger file, its clips' files relative to `directory`. Entries come from the
    notebook, or from Kaggle's servers: each is checked, and a bad one fails the read with
    where it is; a last line cut short by a killed session is dropped."""
    ledger = Ledger()
    # Entries are separated by "\n" alone: a text may hold U+2028 and other characters
    # that str.splitlines() would also break at.
    lines = path.read_text(encoding="utf-8", errors="replace").split("\n")
    if lines and not lines[-1]:
        lines.pop()
    for number, text in enumerate(lines, 1):
        try:
            data = json.loads(text)
        except ValueError:
            if number == len(lines):
                break  # the session died while writing it
            raise BadRecord(f"{path}, line {number}: not a ledger entry") from None
        _take(ledger, data, f"{path}, line {number}", directory)
    return ledger


def _take(ledger: Ledger, data: Any, where: str, directory: Path) -> None:
    if not isinstance(data, dict) or data.get("kind") not in ("line", "run"):
        raise BadRecord(f"{where}: not a ledger entry")
    schema_of(data, where)
    record = {k: v for k, v in data.items() if k not in ("kind", "status")}
    if data["kind"] == "run":
        ledger.runs.append(RunRecord.from_dict(record, where))
        return
    number, text = data.get("line"), data.get("text")
    try:
        status = LineStatus(str(data.get("status")))
    except ValueError:
        raise BadRecord(f"{where}: unknown line status {data.get('status')!r}") from None
    if not isinstance(number, int) or isinstance(number, bool) or number < 1:
        raise BadRecord(f"{where}: a line entry without a line number")
    if not isinstance(text, str):
        raise BadRecord(f"{where}: line {number} has no text")
    if status is LineStatus.FAILED:
        ledger.add(LineEntry(number, status, text, reason=str(data.get("reason") or "failed")))
        return
    clip = ClipRecord.from_dict(record, where)
    ledger.add(LineEntry(number, status, text, clip=clip, directory=directory))
