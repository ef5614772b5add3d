"""A book read into chapters of text made for speaking: an EPUB from its navigation (in spine
order, with its title, author, language and cover) through ebooklib, Markdown from its
headings through markdown-it-py, plain text from its heading lines. Markup, footnote
markers and soft hyphens go; paragraphs stay."""

from __future__ import annotations

import os
import posixpath
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kaggletts.errors import UsageError

READERS = (".txt", ".md", ".markdown", ".epub")
# A plain-text line that starts a chapter unless --chapter-pattern says otherwise: a line of
# its own such as "Chapter 3", "CHAPTER IV. The Storm", "Part Two", "Prologue".
DEFAULT_CHAPTER_PATTERN = r"(?i)(chapter|part|book|prologue|epilogue)\b.{0,80}"
# Footnote references: [1], [^note] (Markdown), superscript digits, and the daggers
# books mark notes with.
FOOTNOTE_MARKER = re.compile(
    r"\[\^?[\w-]{1,12}\]|[\u00b9\u00b2\u00b3\u2070-\u2079]+|[\u2020\u2021]"
)
SOFT_HYPHEN = "\u00ad"
MARKDOWN_FOOTNOTE_NOTE = re.compile(r"^\[\^[^\]]+\]:.*(\n[ \t]+.*)*$", re.MULTILINE)
MARKDOWN_FOOTNOTE_REFERENCE = re.compile(r"\[\^[^\]]+\](?!:)")


@dataclass(frozen=True)
class Chapter:
    title: str
    paragraphs: tuple[str, ...]


@dataclass(frozen=True)
class Book:
    title: str
    author: str
    language: str
    chapters: tuple[Chapter, ...]
    # The cover picture's bytes (JPEG or PNG) as the EPUB carries it.
    cover: bytes | None = None


def speakable(text: str) -> str:
    """Text as a voice should read it: footnote markers and soft hyphens removed,
    whitespace (line breaks of hard-wrapped text too) made single spaces."""
    text = FOOTNOTE_MARKER.sub("", text.replace(SOFT_HYPHEN, ""))
    return " ".join(text.split())


def read_book(path: str | os.PathLike[str], chapter_pattern: str | None = None) -> Book:
    """The book in `path` (.txt, .md or .epub), or a UsageError naming what is wrong."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in READERS:
        raise UsageError(f"cannot read {str(path)!r} as a book: kaggletts reads .txt, .md, .epub")
    if not path.is_file():
        raise UsageError(f"no book file {str(path)!r}")
    if chapter_pattern is not None and suffix != ".txt":
        raise UsageError(
            "--chapter-pattern applies to a .txt book; Markdown and EPUB "
            "books have headings and navigation"
        )
    if suffix == ".epub":
        book = _epub(path)
    else:
        try:
            text = path.read_text(encoding="utf-8-sig")
        except (OSError, UnicodeDecodeError) as error:
            raise UsageError(f"cannot read {str(path)!r}: {error}") from None
        book = (
            _markdown(text, path.stem)
            if suffix != ".txt"
            else _plain(text, path.stem, chapter_pattern or DEFAULT_CHAPTER_PATTERN)
        )
    if not book.chapters:
        raise UsageError(f"{str(path)!r} holds no text to speak")
    return book


def _plain(text: str, stem: str, pattern: str) -> Book:
    """Paragraphs are separated by blank lines; a paragraph of one line matching `pattern`
    starts a chapter and is its title (and is spoken)."""
    try:
        heading = re.compile(pattern)
    except re.error as error:
        raise UsageError(
            f"--chapter-pattern {pattern!r} is no regular expression: {error}"
        ) from None
    chapters = _Chapters(stem)
    for block in re.split(r"\n\s*\n", text):
        lines = [line.strip() for line in block.strip().splitlines()]
        if len(lines) == 1 and heading.fullmatch(lines[0]):
            chapters.start(speakable(lines[0]))
        chapters.paragraph(speakable(" ".join(lines)))
    return Book(stem, "", "", chapters.done())


def _markdown(text: str, stem: str) -> Book:
    """Chapters at the headings' top level; a single top heading over second-level ones is
    the book's title and they are the chapters. Each heading is spoken as its chapter's
    first line."""
    from markdown_it import MarkdownIt

    # CommonMark has no footnotes: their references would read as links, their notes as
    # link definitions.
    text = MARKDOWN_FOOTNOTE_NOTE.sub("", MARKDOWN_FOOTNOTE_REFERENCE.sub("", text))
    tokens = MarkdownIt("commonmark").enable("table").parse(text)
    levels = [int(t.tag[1]) for t in tokens if t.type == "heading_open"]
    title, chapter_level = stem, min(levels, default=1)
    if levels.count(chapter_level) == 1 and chapter_level + 1 in levels:
        chapter_level += 1
    chapters = _Chapters(stem)
    for opening, inline in zip(tokens, tokens[1:], strict=False):
        if inline.type != "inline" or not opening.type.endswith("_open"):
            continue
        words = speakable(_inline_text(inline))
        if opening.type == "heading_open" and int(opening.tag[1]) < chapter_level:
            title = chapters.untitled = words or title
            continue
        if opening.type == "heading_open" and int(opening.tag[1]) == chapter_level:
            chapters.start(words)
        chapters.paragraph(words)
    return Book(title, "", "", chapters.done())


def _inline_text(inline: Any) -> str:
    """An inline token's words without markup: emphasis, links and code keep their text,
    images and raw HTML go."""
    parts = []
    for child in inline.children or []:
        if child.type in ("text", "code_inline"):
            parts.append(child.content)
        elif child.type in ("softbreak", "hardbreak"):
            parts.append(" ")
    return "".join(parts)


def _epub(path: Path) -> Book:
    import ebooklib
    from ebooklib import epub

    try:
        # EPUB 3's navigation document where there is one (ebooklib gives its links
        # relative to the package), else EPUB 2's NCX.
        document = epub.read_epub(str(path), {"ignore_ncx": True})
    except Exception as error:  # ebooklib raises bare exceptions, zipfile and lxml theirs
        raise UsageError(f"cannot read {str(path)!r} as an EPUB: {error}") from None

    def first(name: str) -> str:
        found = document.get_metadata("DC", name)
        return str(found[0][0]).strip() if found else ""

    documents = {
        item.get_name(): item for item in document.get_items_of_type(ebooklib.ITEM_DOCUMENT)
    }
    titles: dict[str, str] = {}
    for href, title in _navigation(document.toc):
        name = _document_named(href.split("#")[0], documents)
        if name is not None:
            titles.setdefault(name, title)
    chapters = _Chapters(path.stem)
    for idref, _ in document.spine:
        item = document.get_item_with_id(idref)
        if item is None or item.get_name() not in documents:
            continue
        paragraphs = _xhtml_paragraphs(item.get_content())
        if item.get_name() in titles:
            chapters.start(titles[item.get_name()])
        elif titles:
            if not chapters.started():
                continue  # a cover or title page before the first chapter the book lists
        elif paragraphs:
            chapters.start(paragraphs[0])  # no navigation: a document is a chapter
        for paragraph in paragraphs:
            chapters.paragraph(paragraph)
    return Book(
        first("title") or path.stem,
        first("creator"),
        first("language"),
        chapters.done(),
        _cover(document),
    )


def _document_named(href: str, documents: Mapping[str, Any]) -> str | None:
    """The document a navigation link names. An NCX's links are relative to the NCX's own
    folder, which need not be the package's: such a link names the one document whose
    path ends with it."""
    if href in documents:
        return href
    tail = "/" + re.sub(r"^(\.\.?/)+", "", posixpath.normpath(href))
    found = [name for name in documents if ("/" + name).endswith(tail)]
    return found[0] if len(found) == 1 else None


def _navigation(entries: Any) -> list[tuple[str, str]]:
    """The table of contents' top entries (a section stands for its first link) as
    (href, title), in order."""
    found = []
    for entry in entries:
        if isinstance(entry, tuple):
            section, children = entry
            href = getattr(section, "href", None) or next(
                (h for h, _ in _navigation(children)), None
            )
            if href:
                found.append((href, speakable(section.title)))
        elif getattr(entry, "href", None):
            found.append((entry.href, speakable(entry.title)))
    return found


# The elements a paragraph of an XHTML chapter is; those inside another are read with it.
BLOCKS = (
    "p",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "li",
    "dt",
    "dd",
    "blockquote",
    "pre",
    "td",
    "th",
    "figcaption",
)
# Footnotes and their markers, as EPUB 3 (epub:type) and DPUB-ARIA (role) mark them.
NOTE_TYPES = {"noteref", "footnote", "endnote", "rearnote", "note"}


def _xhtml_paragraphs(content: bytes) -> list[str]:
    from lxml import html

    try:
        root = html.fromstring(content)
    except Exception:  # lxml.etree.ParserError on a document with nothing in it
        return []
    for element in list(root.iter()):
        if not isinstance(element.tag, str):
            continue
        kinds = set(
            (
                element.get("{http://www.idpf.org/2007/ops}type") or element.get("epub:type") or ""
            ).split()
        ) | {element.get("role", "").removeprefix("doc-")}
        dropped = element.tag in ("script", "style", "sup") or kinds & NOTE_TYPES
        if dropped and element.getparent() is not None:
            element.drop_tree()  # its tail, the text after it, stays
    paragraphs = []
    for element in root.iter(*BLOCKS):
        if any(True for _ in element.iterdescendants(*BLOCKS)):
            continue
        text = speakable(element.text_content())
        if text:
            paragraphs.append(text)
    return paragraphs


def _cover(document: Any) -> bytes | None:
    """The cover picture: ebooklib's cover item, else the image the OPF's <meta
    name="cover"> or an EPUB 3 "cover-image" property names."""
    import ebooklib

    for item in document.get_items_of_type(ebooklib.ITEM_COVER):
        return item.get_content()
    meta = document.get_metadata("OPF", "cover")
    named = meta[0][1].get("content") if meta else None
    for item in document.get_items_of_type(ebooklib.ITEM_IMAGE):
        if item.get_id() == named or "cover-image" in (getattr(item, "properties", None) or []):
            return item.get_content()
    return None


class _Chapters:
    """Chapters as they are read: paragraphs before the first heading make a chapter of
    their own, under the book's title."""

    def __init__(self, untitled: str):
        self.untitled = untitled
        self.finished: list[Chapter] = []
        self.title: str | None = None
        self.paragraphs: list[str] = []

    def started(self) -> bool:
        return self.title is not None or bool(self.finished)

    def start(self, title: str) -> None:
        self._close()
        self.title = title

    def paragraph(self, text: str) -> None:
        if text:
            self.paragraphs.append(text)

    def done(self) -> tuple[Chapter, ...]:
        self._close()
        return tuple(self.finished)

    def _close(self) -> None:
        if self.paragraphs:
            self.finished.append(Chapter(self.title or self.untitled, tuple(self.paragraphs)))
        self.paragraphs = []
