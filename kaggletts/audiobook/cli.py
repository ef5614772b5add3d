"""`kaggletts book`: a book spoken as one job and made an audiobook. Its parameters and run
options are `run`'s own (the same click options, taken from that command)."""

from __future__ import annotations

import json
from typing import Any

import click

from kaggletts.audiobook.assemble import Pauses
from kaggletts.cli import execute_options, report, run

# `run`'s options that mean the same for a book; its NOTEBOOK argument, --text, -o and
# --format do not (the book gives the lines, and its files are the audiobook's).
RUN_OPTIONS = (
    "pairs",
    "files",
    "backend",
    "output_dir",
    "force",
    "no_cache",
    "verify",
    "as_json",
    "shards",
    "timeout",
    "keep_kernels",
    "machine_shape",
    "endpoint",
    "ask_above",
    "yes",
)
DEFAULT_PAUSES = Pauses()


@click.command()
@click.argument("path", metavar="FILE")
@click.option(
    "-n",
    "--notebook",
    required=True,
    metavar="NAME",
    help="The notebook that speaks it: espeak, qwen, chatterbox or a path.",
)
@click.option(
    "-o",
    "--output",
    "folder",
    metavar="DIR",
    help="Folder for the audiobook's files [default: ./<FILE's name>-audiobook].",
)
@click.option(
    "--chapter-pattern",
    metavar="REGEX",
    help="A .txt book: a line of its own matching this (in full) starts a chapter "
    "[default: Chapter/Part/Book/Prologue/Epilogue lines].",
)
@click.option(
    "--dry-run",
    is_flag=True,
    help="Print the plan (chapters, lines, words, estimated audio, session hours, "
    "sessions, GPU quota weeks) and run nothing.",
)
@click.option("--wav", is_flag=True, help="Also write each chapter as a WAV.")
@click.option(
    "--sentence-pause",
    type=click.FloatRange(0, 10),
    default=DEFAULT_PAUSES.sentence,
    show_default=True,
    metavar="SECONDS",
    help="Pause between lines of a paragraph.",
)
@click.option(
    "--paragraph-pause",
    type=click.FloatRange(0, 10),
    default=DEFAULT_PAUSES.paragraph,
    show_default=True,
    metavar="SECONDS",
    help="Pause between paragraphs.",
)
@click.option(
    "--chapter-pause",
    type=click.FloatRange(0, 10),
    default=DEFAULT_PAUSES.tail,
    show_default=True,
    metavar="SECONDS",
    help="Room tone at each chapter's end, before the next (ACX asks 1 to 5 s).",
)
def book(
    path: str,
    notebook: str,
    folder: str | None,
    chapter_pattern: str | None,
    dry_run: bool,
    wav: bool,
    sentence_pause: float,
    paragraph_pause: float,
    chapter_pause: float,
    pairs: tuple[tuple[str, str], ...],
    files: tuple[str, ...],
    backend: str | None,
    output_dir: str | None,
    force: bool,
    no_cache: bool,
    verify: bool,
    as_json: bool,
    yes: bool,
    **kaggle: Any,
) -> None:
    """Speak FILE (.txt, .md or .epub) and make it an audiobook: one M4B with a chapter
    mark per chapter, title, author and cover, and an MP3 per chapter, each checked against
    ACX's requirements. The book is one job: running the same command again speaks only
    lines not yet spoken, and after an edit only the edited paragraphs' lines."""
    from kaggletts import audiobook, parameters
    from kaggletts.cost import duration_text
    from kaggletts.errors import Incomplete
    from kaggletts.words import counted

    sources = [*files, parameters.from_cli_pairs(list(pairs))]
    if dry_run:
        plan = audiobook.plan(
            path, notebook, sources, chapter_pattern=chapter_pattern, output_dir=output_dir
        )
        click.echo(json.dumps(plan.to_dict()) if as_json else "\n".join(plan.describe()))
        return
    pauses = Pauses(sentence_pause, paragraph_pause, DEFAULT_PAUSES.head, chapter_pause)
    try:
        made = audiobook.book(
            path,
            notebook,
            sources,
            output=folder,
            chapter_pattern=chapter_pattern,
            pauses=pauses,
            wav=wav,
            force=force,
            cache=not no_cache,
            verify=verify,
            **execute_options(notebook, backend, output_dir, yes, kaggle),
        )
    except Incomplete as partial:
        report(partial.result, as_json)
        raise
    if as_json:
        click.echo(json.dumps(made.to_dict(), ensure_ascii=False))
        return
    seconds = sum(chapter.seconds for chapter in made.chapters)
    click.echo(f"{made.m4b}: {counted(len(made.chapters), 'chapter')}, {duration_text(seconds)}")
    if made.reused_lines:
        reused = counted(made.reused_lines, "line")
        click.echo(f"{reused} taken from the line cache, not spoken again")
    click.echo(f"listen and check: {made.page}")
    for chapter in made.chapters:
        verdict = "ACX ok" if chapter.check.passed else "ACX: " + "; ".join(chapter.check.problems)
        click.echo(f"  {chapter.mp3.name}  {duration_text(chapter.seconds)}  {verdict}")


book.params.extend(option for option in run.params if option.name in RUN_OPTIONS)
