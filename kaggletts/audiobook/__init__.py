"""A book, not a batch: a .txt, .md or .epub file spoken as ONE job of its lines (so the
ledger, resuming and the line cache work for it as for any batch: nothing is spoken twice,
an edited paragraph re-speaks only its lines), then assembled into an audiobook.

import kaggletts
audiobook = kaggletts.book("novel.epub", "espeak")
audiobook.m4b  # the M4B, a chapter mark per chapter
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kaggletts.audiobook.assemble import ChapterAudio, Pauses
from kaggletts.audiobook.plan import BookMap, BookPlan
from kaggletts.errors import Incomplete, UsageError
from kaggletts.progress import Progress, ProgressPlace

log = logging.getLogger("kaggletts")


@dataclass(frozen=True)
class Audiobook:
    """A spoken book's files: the M4B and each chapter's audio with its ACX check."""

    title: str
    author: str
    m4b: Path
    # index.html in the book's folder: each chapter's player, figures and flagged lines.
    page: Path
    chapters: tuple[ChapterAudio, ...]
    job_id: str
    job_directory: Path
    reused_lines: int

    @property
    def passed(self) -> bool:
        return all(chapter.check.passed for chapter in self.chapters)

    def to_dict(self) -> dict[str, Any]:
        return {
            "title": self.title,
            "author": self.author,
            "m4b": str(self.m4b),
            "page": str(self.page),
            "job_id": self.job_id,
            "job_directory": str(self.job_directory),
            "reused_lines": self.reused_lines,
            "acx_passed": self.passed,
            "chapters": [chapter.to_dict() for chapter in self.chapters],
        }


def book(
    path: str | os.PathLike[str],
    notebook: str | os.PathLike[str],
    params: Any = None,
    *,
    output: str | os.PathLike[str] | None = None,
    chapter_pattern: str | None = None,
    pauses: Pauses | None = None,
    wav: bool = False,
    **run_options: Any,
) -> Audiobook:
    """Speak the book in `path` (.txt, .md or .epub) with `notebook` and make it an
    audiobook in the folder `output` (default: "<book>-audiobook" here): one M4B with a
    chapter mark per chapter, an MP3 per chapter, with `wav` a WAV per chapter too;
    `pauses` (default: Pauses()) are the seconds between lines, paragraphs and chapters.

    `params` are the notebook's parameters as for `execute` (a voice, a speed), except the
    lines, which the book gives; `run_options` are `execute`'s (backend, output_dir,
    force, cache, settings, timeout, ...). A run that ends with lines missing raises
    Incomplete before any audio is assembled; the same call again speaks only those."""
    from kaggletts import api
    from kaggletts.audiobook.assemble import assemble
    from kaggletts.audiobook.chapters import read_book
    from kaggletts.audiobook.page import flagged_lines, write_book_page
    from kaggletts.audiobook.plan import book_lines
    from kaggletts.words import counted

    source = read_book(path, chapter_pattern)
    lines = book_lines(source)
    sources = _with_lines(params, lines.texts)
    run_options["on_progress"] = _chapter_progress(lines.map, run_options.get("on_progress"))
    try:
        result = api.execute(notebook, sources, **run_options)
    except Incomplete as partial:
        lines.map.write(partial.result.directory)
        raise
    # Assembled from the job's own map: what its clips were spoken as.
    book_map = BookMap.read(lines.map.write(result.directory).parent)
    clips = {
        clip.line: audio
        for clip, audio in zip(result.clips, result.audio, strict=True)
        if clip.line is not None  # every clip of a job has its line
    }
    folder = (
        Path(output) if output is not None else Path(f"{Path(path).stem}-audiobook")
    ).resolve()
    log.info("assembling %s: %s", source.title, counted(len(book_map.chapters), "chapter"))
    m4b, chapters = assemble(
        book_map,
        clips,
        folder,
        f"{_file_name(source.title)}.m4b",
        source.cover,
        pauses or Pauses(),
        wav,
    )
    for chapter in chapters:
        for problem in chapter.check.problems:
            log.warning("warning: %s fails ACX's check: %s", chapter.title, problem)
    flagged = flagged_lines(book_map, result.clips)
    page = write_book_page(folder, source.title, source.author, m4b, chapters, flagged)
    return Audiobook(
        source.title,
        source.author,
        m4b,
        page,
        tuple(chapters),
        result.job_id,
        result.directory,
        sum(1 for clip in result.clips if clip.reused),
    )


def plan(
    path: str | os.PathLike[str],
    notebook: str | os.PathLike[str],
    params: Any = None,
    *,
    chapter_pattern: str | None = None,
    output_dir: str | os.PathLike[str] | None = None,
) -> BookPlan:
    """What speaking the book would take (`book --dry-run`), nothing run: its size, its
    estimated audio, and the session time, sessions and GPU quota weeks, from the figures
    of the pre-push cost preview (the user's own finished Kaggle runs of the same kind
    stored under `output_dir` when there are any)."""
    from kaggletts import api, cost
    from kaggletts.audiobook.chapters import read_book
    from kaggletts.audiobook.plan import book_lines, plan_book
    from kaggletts.notebook import find_notebook
    from kaggletts.settings import load_settings

    lines = book_lines(read_book(path, chapter_pattern))
    spec = find_notebook(notebook)
    settings = load_settings()
    values = api.validate(
        spec, _with_lines(params, lines.texts), settings.notebook_defaults(spec.name)
    )
    defaults = {name: parameter.default for name, parameter in spec.parameters.items()}
    history = cost.kaggle_history(output_dir or settings.output_dir)
    return plan_book(
        lines,
        cost.kind_of(spec.name, values, defaults),
        history,
        spec.seconds_per_utterance,
        spec.kernel.enable_gpu,
    )


def _chapter_progress(
    book_map: BookMap, on_progress: Callable[[Progress], None] | None
) -> Callable[[Progress], None]:
    """The caller's `on_progress` (if any), after the line just made is logged by its
    chapter ("chapter 2/3 'The Market': line 5/12"), which a terminal's bar also shows.
    The line is known by its clip's name, which starts with its number in the job."""

    def on_line(progress: Progress) -> None:
        number = re.match(r"\d+", Path(progress.file).name)
        found = book_map.chapter_of(int(number.group())) if number else None
        if number and found:
            place, chapter = found
            where = f"chapter {place}/{len(book_map.chapters)} {chapter.title!r}"
            log.info(
                "%s: line %d/%d",
                where,
                int(number.group()) - chapter.first + 1,
                len(chapter.numbers),
                extra={"progress": ProgressPlace(progress.where, f"{progress.name}, {where}")},
            )
        if on_progress is not None:
            on_progress(progress)

    return on_line


def _with_lines(params: Any, lines: Sequence[str]) -> list[Any]:
    """The parameter sources with the book's lines last; lines given otherwise are refused."""
    from kaggletts import parameters

    if params is None:
        sources: list[Any] = []
    elif isinstance(params, list | tuple):
        sources = list(params)
    else:
        sources = [params]
    given = parameters.load(*sources).values
    if given.get("text") or given.get("utterances"):
        raise UsageError("the book gives the lines to speak: set no `text` or `utterances`")
    return [*sources, {"utterances": list(lines)}]


def _file_name(title: str) -> str:
    """A book title as a file name: its words, without what file systems refuse."""
    return re.sub(r'[\\/:*?"<>|\x00-\x1f]+', " ", title).strip(" .") or "audiobook"
