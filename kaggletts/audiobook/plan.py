"""A book as one job's lines: every paragraph of every chapter split into lines by the
notebooks' own splitter, the map from line numbers back to chapters and paragraphs (kept in
the job's folder for assembly), and the plan `--dry-run` prints: what the book costs before
any GPU is used, from the figures the pre-push cost preview uses (kaggletts/cost.py)."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from kaggletts.audiobook.chapters import Book
from kaggletts.errors import UsageError
from kaggletts.kernel.support import split_text

# The longest line a book gives a notebook: Chatterbox's MAX_CHARACTERS, the smallest of
# the notebooks' (Qwen's is about 1,360 at its default max_new_tokens; eSpeak takes any).
# A line is the unit the ledger and the line cache keep, so a shorter one also means less
# spoken again after an edit.
LINE_CHARACTERS = 300
MAP_FILE = "book.json"
# ACX's figure for estimating a narration's length: about 9,300 words per finished hour
# (ACX, "How much does it cost to produce an audiobook"), i.e. 155 words a minute.
WORDS_PER_HOUR = 9300
WORDS_SOURCE = "ACX's 9,300 words per finished hour"
# Kaggle's limits (Kaggle's docs; kaggletts/backends/kaggle/kernel.py and the emulator use
# the same): a GPU session runs at most 12 h, and the GPU quota is about 30 h a week (the
# quota call reads the account's own).
SESSION_HOURS = 12
WEEKLY_GPU_HOURS = 30


@dataclass(frozen=True)
class ChapterLines:
    """A chapter's place in the job: its title and line numbers first..last (from 1), and
    the numbers of the lines that end a paragraph (a longer pause follows them)."""

    title: str
    first: int
    last: int
    paragraph_ends: tuple[int, ...]

    @property
    def numbers(self) -> range:
        return range(self.first, self.last + 1)


@dataclass(frozen=True)
class BookMap:
    """What assembly needs besides the clips, stored as `book.json` in the job's folder."""

    title: str
    author: str
    language: str
    chapters: tuple[ChapterLines, ...]

    def chapter_of(self, line: int) -> tuple[int, ChapterLines] | None:
        """The chapter (numbered from 1) that line `line` of the job is in."""
        for number, chapter in enumerate(self.chapters, 1):
            if chapter.first <= line <= chapter.last:
                return number, chapter
        return None

    def write(self, directory: Path) -> Path:
        path = directory / MAP_FILE
        path.write_text(json.dumps(asdict(self), ensure_ascii=False, indent=1), "utf-8")
        return path

    @classmethod
    def read(cls, directory: Path) -> BookMap:
        path = directory / MAP_FILE
        try:
            data = json.loads(path.read_text("utf-8"))
            chapters = tuple(
                ChapterLines(c["title"], c["first"], c["last"], tuple(c["paragraph_ends"]))
                for c in data["chapters"]
            )
            return cls(data["title"], data["author"], data["language"], chapters)
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise UsageError(f"{path} is no kaggletts book map: {error}") from None


@dataclass(frozen=True)
class BookLines:
    texts: tuple[str, ...]
    map: BookMap

    @property
    def words(self) -> int:
        return sum(len(text.split()) for text in self.texts)

    @property
    def characters(self) -> int:
        return sum(len(text) for text in self.texts)


def book_lines(book: Book) -> BookLines:
    texts: list[str] = []
    chapters = []
    for chapter in book.chapters:
        first, ends = len(texts) + 1, []
        for paragraph in chapter.paragraphs:
            texts += split_text(paragraph, LINE_CHARACTERS)
            ends.append(len(texts))
        chapters.append(ChapterLines(chapter.title, first, len(texts), tuple(ends)))
    return BookLines(tuple(texts), BookMap(book.title, book.author, book.language, tuple(chapters)))


@dataclass(frozen=True)
class BookPlan:
    """What a book costs: its size, its estimated audio, and where the notebook runs on a
    GPU, the sessions and quota weeks it takes, each figure with its source."""

    chapters: int
    lines: int
    words: int
    audio_hours: float
    gpu: bool
    session_hours: float
    sessions: int
    lines_per_session: int
    quota_weeks: int
    audio_source: str
    session_source: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def describe(self) -> Iterable[str]:
        from kaggletts.cost import duration_text
        from kaggletts.words import counted

        yield (
            f"{counted(self.chapters, 'chapter')}, {counted(self.lines, 'line')}, "
            f"{counted(self.words, 'word')}: about {duration_text(self.audio_hours * 3600)} "
            f"of audio ({self.audio_source})"
        )
        where = "GPU" if self.gpu else "CPU (no GPU quota)"
        yield (
            f"about {duration_text(self.session_hours * 3600)} of {where} session time in "
            f"{counted(self.sessions, 'session')} (each at most {SESSION_HOURS} h and "
            f"{self.lines_per_session} lines)"
            + (
                f", {counted(self.quota_weeks, 'week')} of a {WEEKLY_GPU_HOURS} h weekly GPU quota"
                if self.gpu
                else ""
            )
        )
        yield f"session figures: {self.session_source}"


def plan_book(
    lines: BookLines, kind: Any, history: Any, seconds_per_line: float, gpu: bool
) -> BookPlan:
    """The plan from the same per-line and per-character figures as the cost preview
    (cost.session_figures): sessions of at most 12 h and of at most as many lines as the
    Kaggle backend gives one, each paying the start-up again."""
    from kaggletts import cost
    from kaggletts.backends.kaggle.backend import MAX_LINES_PER_SESSION

    figures = cost.session_figures(kind, history, seconds_per_line)
    work = (
        figures.seconds_per_line * len(lines.texts)
        + figures.seconds_per_character * lines.characters
    )
    per_session = SESSION_HOURS * 3600 - figures.startup_seconds
    # A session also speaks no more lines than Kaggle lists the outputs of.
    sessions = max(
        1, math.ceil(work / per_session), math.ceil(len(lines.texts) / MAX_LINES_PER_SESSION)
    )
    hours = (work + sessions * figures.startup_seconds) / 3600
    return BookPlan(
        chapters=len(lines.map.chapters),
        lines=len(lines.texts),
        words=lines.words,
        audio_hours=lines.words / WORDS_PER_HOUR,
        gpu=gpu,
        session_hours=hours,
        sessions=sessions,
        lines_per_session=MAX_LINES_PER_SESSION,
        quota_weeks=math.ceil(hours / WEEKLY_GPU_HOURS) if gpu else 0,
        audio_source=WORDS_SOURCE,
        session_source=figures.source,
    )
