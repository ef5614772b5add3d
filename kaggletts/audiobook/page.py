"""A spoken book's page, to listen and check: `index.html` in the book's folder, a row per
chapter with its player, its loudness figures and ACX verdict (a failing figure marked and
saying by how much), and the lines a notebook flagged in it. Written with the job page's
styling and escaping (kaggletts/page.py), and like it opens from file:// with no network."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from kaggletts.audiobook.assemble import ChapterAudio
from kaggletts.audiobook.plan import BookMap
from kaggletts.layout import PAGE_FILE
from kaggletts.page import PAGE_STYLE, escape, relative_url, seconds_text, write_text_atomic
from kaggletts.words import counted

if TYPE_CHECKING:
    from kaggletts.records import ClipRecord

# The page's own looks, after the job page's.
_BOOK_STYLE = """
td.fail { color: #c33; font-weight: 600; }
ul.problems { margin: 0; padding-left: 1rem; color: #c33; }
span.ok { color: #393; }
""".strip()
# The figures shown per chapter: the name AcxCheck.failures() gives a failing one, the
# column's heading, and how it is written.
_FIGURES = (
    ("loudness", "Loudness", "{:.1f} LUFS"),
    ("rms", "RMS", "{:.1f} dBFS"),
    ("peak", "Peak", "{:.1f} dBFS"),
    ("noise_floor", "Noise floor", "{:.1f} dBFS"),
    ("head", "Head", "{:.2f} s"),
    ("tail", "Tail", "{:.2f} s"),
)


@dataclass(frozen=True)
class FlaggedLine:
    """A line whose clip a notebook recorded warnings for."""

    number: int
    text: str
    warnings: tuple[str, ...]


def flagged_lines(book: BookMap, clips: Sequence[ClipRecord]) -> list[list[FlaggedLine]]:
    """Per chapter, in order, the lines whose clips carry warnings."""
    by_line = {clip.line: clip for clip in clips if clip.warnings and clip.line is not None}
    return [
        [
            FlaggedLine(number, by_line[number].text, by_line[number].warnings)
            for number in chapter.numbers
            if number in by_line
        ]
        for chapter in book.chapters
    ]


def write_book_page(
    folder: Path,
    title: str,
    author: str,
    m4b: Path,
    chapters: Sequence[ChapterAudio],
    flagged: Sequence[Sequence[FlaggedLine]],
) -> Path:
    """Write index.html into the book's folder; returns its path."""
    page = folder / PAGE_FILE
    seconds = sum(chapter.seconds for chapter in chapters)
    heading = f"{title} · {counted(len(chapters), 'chapter')} · {seconds_text(seconds)}"
    passed = sum(chapter.check.passed for chapter in chapters)
    rows = "\n".join(
        _chapter_row(number, chapter, lines, folder)
        for number, (chapter, lines) in enumerate(zip(chapters, flagged, strict=True), 1)
    )
    headings = "".join(f"<th>{name}</th>" for _, name, _ in _FIGURES)
    text = "\n".join(
        [
            "<!DOCTYPE html>",
            '<html lang="en"><head><meta charset="utf-8">',
            '<meta name="viewport" content="width=device-width, initial-scale=1">',
            f"<title>{escape(heading)}</title>",
            f"<style>\n{PAGE_STYLE}\n{_BOOK_STYLE}\n</style>",
            "</head><body>",
            f"<h1>{escape(heading)}</h1>",
            '<dl class="header">',
            f"<dt>Author</dt><dd>{escape(author or 'unknown')}</dd>",
            f'<dt>Audiobook</dt><dd><a href="{relative_url(m4b, folder)}">'
            f"{escape(m4b.name)}</a></dd>",
            f"<dt>ACX check</dt><dd>{passed} of {counted(len(chapters), 'chapter')} pass</dd>",
            "</dl>",
            "<table><thead><tr><th>#</th><th>Chapter</th><th>Listen</th><th>Duration</th>"
            f"{headings}<th>ACX</th><th>Lines flagged</th></tr></thead>",
            f"<tbody>\n{rows}\n</tbody></table>",
            "</body></html>",
            "",
        ]
    )
    write_text_atomic(page, text, encoding="utf-8")
    return page


def _chapter_row(
    number: int, chapter: ChapterAudio, flagged: Sequence[FlaggedLine], folder: Path
) -> str:
    check = chapter.check
    failures = check.failures()
    cells = []
    for name, _, pattern in _FIGURES:
        value = getattr(check, name)
        shown = pattern.format(value) if math.isfinite(value) else "—"
        if name in failures:
            cells.append(f'<td class="number fail" title="{escape(failures[name])}">{shown}</td>')
        else:
            cells.append(f'<td class="number">{shown}</td>')
    verdict = (
        '<span class="ok">ok</span>'
        if not failures
        else '<ul class="problems">'
        + "".join(f"<li>{escape(problem)}</li>" for problem in failures.values())
        + "</ul>"
    )
    lines = "".join(
        f"<li>line {line.number}: {escape(line.text)}<ul class=warnings>"
        + "".join(f"<li>{escape(warning)}</li>" for warning in line.warnings)
        + "</ul></li>"
        for line in flagged
    )
    return (
        f'<tr class="{"warned" if failures or flagged else ""}"><td class="num">{number}</td>'
        f'<td class="text">{escape(chapter.title)}<div class="file">{escape(chapter.mp3.name)}'
        f"</div></td>"
        f'<td><audio controls preload="none" src="{relative_url(chapter.mp3, folder)}">'
        "</audio></td>"
        f'<td class="number">{seconds_text(chapter.seconds)}</td>'
        + "".join(cells)
        + f"<td>{verdict}</td><td>{f'<ul>{lines}</ul>' if lines else ''}</td></tr>"
    )
