"""The records the notebooks write (kaggletts.kernel.support), as the package reads them: a
clip's (in the `clips` scrap and each spoken line's ledger entry) and a run's (the `run`
scrap and the ledger's last entry). Each is checked once, where it enters the package
(the executed notebook, a ledger, a stored result.json), and used by attribute after.

A record carries the schema version support.py wrote (RECORD_SCHEMA); one without is of
version 1, written before records said theirs. A notebook's fields of its own (a model's
seed or precision, the packages it installed) are kept in `extra`, as written."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field, fields
from typing import Any, Self

from kaggletts.errors import BadRecord
from kaggletts.kernel.support import RECORD_SCHEMA

_SHA256 = re.compile(r"[0-9a-f]{64}")


def schema_of(data: dict[str, Any], where: str) -> int:
    """The record's schema version: 1 when it has none; one this package cannot read
    (newer, or not a version number) fails with where it is."""
    schema = data.get("schema", 1)
    if not isinstance(schema, int) or isinstance(schema, bool) or schema < 1:
        raise BadRecord(f"{where}: `schema` is {schema!r}, not a schema version")
    if schema > RECORD_SCHEMA:
        raise BadRecord(
            f"{where}: written with record schema {schema}; this kaggletts reads up to "
            f"{RECORD_SCHEMA} (upgrade kaggletts)"
        )
    return schema


def _of_kind(value: Any, kind: type | tuple[type, ...]) -> bool:
    """isinstance, where a bool is no number (JSON's true is not 1)."""
    return isinstance(value, kind) and not (isinstance(value, bool) and kind is not bool)


class _Fields:
    """A record's mapping, read field by field. A field kaggletts relies on (a clip's file,
    size and sha256) must be there with its type, or BadRecord names where the record is
    and the field; a field that only describes the clip or run (shown on the page, added
    up in a cost) reads as None when it has another type: the audio is not lost to it, and
    the record keeps the value as written."""

    def __init__(self, data: Any, where: str):
        if not isinstance(data, dict):
            raise BadRecord(f"{where}: not a mapping but {type(data).__name__}")
        self.data, self.where = data, where

    def required(self, name: str, kind: type, what: str) -> Any:
        if name not in self.data:
            raise BadRecord(f"{self.where}: `{name}` is missing")
        value = self.data[name]
        if not _of_kind(value, kind):
            raise BadRecord(f"{self.where}: `{name}` is {type(value).__name__}, not {what}")
        return value

    def optional(self, name: str, kind: type | tuple[type, ...]) -> Any:
        value = self.data.get(name)
        return value if _of_kind(value, kind) else None

    def text(self, name: str) -> str | None:
        return self.optional(name, str)

    def integer(self, name: str) -> int | None:
        return self.optional(name, int)

    def number(self, name: str) -> float | None:
        value = self.optional(name, (int, float))
        return None if value is None else float(value)

    def flag(self, name: str) -> bool:
        return self.optional(name, bool) or False

    def texts(self, name: str) -> tuple[str, ...]:
        """A list's items, or one value, as texts: what is not a text as its JSON."""
        value = self.data.get(name)
        if not value:
            return ()
        return tuple(
            v if isinstance(v, str) else json.dumps(v, ensure_ascii=False, default=str)
            for v in (value if isinstance(value, list) else [value])
        )

    def rest(self, known: type) -> dict[str, Any]:
        """The fields `known` (a record class) has no attribute for, in the order written."""
        names = {f.name for f in fields(known)} - {"extra", "written"}
        return {k: v for k, v in self.data.items() if k not in names}


@dataclass(frozen=True)
class ClipRecord:
    """One clip as the notebook recorded it: the WAV's path relative to the folder it was
    written in, its size and sha256 (checked before the audio is kept), and how it was made.
    `line` (its number in the job) and `reused` (taken from the line cache) are the
    package's own additions."""

    file: str
    bytes: int
    sha256: str
    text: str = ""
    duration: float | None = None
    sample_rate: int | None = None
    rms: float | None = None
    synthesis_seconds: float | None = None
    settings: dict[str, Any] = field(default_factory=dict)
    device: str | None = None
    # How many lines went through the model call that made it.
    batch: int | None = None
    warnings: tuple[str, ...] = ()
    # Each piece's own record, for a line spoken in several generations.
    pieces: tuple[dict[str, Any], ...] = ()
    line: int | None = None
    reused: bool = False
    schema: int = 1
    extra: dict[str, Any] = field(default_factory=dict)
    # The mapping as written, kept whole: a stored result holds what the notebook recorded.
    written: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_dict(cls, data: Any, where: str) -> Self:
        """The record in `data`, or BadRecord naming `where` and the field at fault."""
        read = _Fields(data, where)
        schema = schema_of(read.data, where)
        sha256 = read.required("sha256", str, "a text")
        if not _SHA256.fullmatch(sha256):
            raise BadRecord(f"{where}: `sha256` is not a sha256 digest")
        return cls(
            file=read.required("file", str, "a text"),
            bytes=read.required("bytes", int, "a whole number"),
            sha256=sha256,
            text=read.text("text") or "",
            duration=read.number("duration"),
            sample_rate=read.integer("sample_rate"),
            rms=read.number("rms"),
            synthesis_seconds=read.number("synthesis_seconds"),
            settings=read.optional("settings", dict) or {},
            device=read.text("device"),
            batch=read.integer("batch"),
            warnings=read.texts("warnings"),
            pieces=tuple(p for p in read.optional("pieces", list) or [] if isinstance(p, dict)),
            line=read.integer("line"),
            reused=read.flag("reused"),
            schema=schema,
            extra=read.rest(cls),
            written=dict(read.data),
        )

    def to_dict(self) -> dict[str, Any]:
        """The record as the notebook wrote it (with the package's additions)."""
        return dict(self.written)


@dataclass(frozen=True)
class RunRecord:
    """What a notebook session recorded about itself: its own time and what it spoke (the
    cost figures), how far its batch got and why it stopped. A run recorded before one of
    these existed, or by a notebook without the support code, lacks it (None)."""

    notebook: str | None = None
    model_id: str | None = None
    # Qwen's mode, or Chatterbox's variant: with the notebook and model, what makes runs alike.
    mode: str | None = None
    variant: str | None = None
    device: str | None = None
    devices: tuple[str, ...] | None = None
    batch_size: int | None = None
    total_seconds: float | None = None
    synthesis_seconds: float | None = None
    audio_seconds: float | None = None
    characters: int | None = None
    session_seconds_per_audio_minute: float | None = None
    lines_done: int | None = None
    lines_failed: int | None = None
    lines_total: int | None = None
    # Why the batch stopped early (an error that left no later line possible), if it did.
    stopped: str | None = None
    stopped_at_deadline: bool = False
    schema: int = 1
    extra: dict[str, Any] = field(default_factory=dict)
    written: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_dict(cls, data: Any, where: str) -> Self:
        """The record in `data`, or BadRecord naming `where` and the field at fault."""
        read = _Fields(data, where)
        return cls(
            notebook=read.text("notebook"),
            model_id=read.text("model_id"),
            mode=read.text("mode"),
            variant=read.text("variant"),
            device=read.text("device"),
            devices=read.texts("devices") or None,
            batch_size=read.integer("batch_size"),
            total_seconds=read.number("total_seconds"),
            synthesis_seconds=read.number("synthesis_seconds"),
            audio_seconds=read.number("audio_seconds"),
            characters=read.integer("characters"),
            session_seconds_per_audio_minute=read.number("session_seconds_per_audio_minute"),
            lines_done=read.integer("lines_done"),
            lines_failed=read.integer("lines_failed"),
            lines_total=read.integer("lines_total"),
            stopped=read.text("stopped"),
            stopped_at_deadline=read.flag("stopped_at_deadline"),
            schema=schema_of(read.data, where),
            extra=read.rest(cls),
            written=dict(read.data),
        )

    def to_dict(self) -> dict[str, Any]:
        """The record as the notebook wrote it."""
        return dict(self.written)
