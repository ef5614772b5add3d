"""`kaggletts book`: EPUB, Markdown and text books read into chapters, spoken by the eSpeak
notebook as one job, and assembled into an M4B and chapter MP3s. What is written is read
back by readers that share no code with FFmpeg: mutagen (the M4B's chapters and tags, the
MP3s' ID3 tags) and libsndfile (soundfile: the samples), measured here with numpy."""

from __future__ import annotations

import io
import json
import logging
import math
import struct
import tracemalloc
import wave
import zlib
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import soundfile
from ebooklib import epub
from mutagen.id3 import ID3
from mutagen.mp4 import MP4

import kaggletts
from kaggletts.audiobook.assemble import AcxCheck, Pauses, chapter_samples, measure
from kaggletts.audiobook.chapters import read_book
from kaggletts.audiobook.page import FlaggedLine, flagged_lines, write_book_page
from kaggletts.audiobook.plan import (
    LINE_CHARACTERS,
    MAP_FILE,
    BookMap,
    ChapterLines,
    book_lines,
)
from kaggletts.progress import Progress, ProgressBars, ProgressPlace
from kaggletts.records import ClipRecord
from kaggletts.result import Result

LONG_PARAGRAPH = (
    "The river ran wide and slow past the mill, carrying leaves and small branches from the "
    "hills where the storm had been. Nobody in the village remembered a flood like it, not "
    "even the oldest fisherman, who sat each morning on the bridge and counted the boats. "
    "By noon the water had reached the lowest step of the church, and the bells rang twice."
)
DEFAULT_PAUSES = Pauses()
# Every player on a page asked to load its file's metadata, and what each then says (a file
# missing or not audio gives an error code): as tests/test_page.py probes the job page.
PROBE_PLAYERS = """
Promise.all([...document.querySelectorAll('audio')].map(audio => new Promise(done => {
  const report = () => done({duration: audio.duration, error: audio.error && audio.error.code});
  audio.addEventListener('loadedmetadata', report, {once: true});
  audio.addEventListener('error', report, {once: true});
  audio.preload = 'metadata';
  audio.load();
})))
"""
CHAPTERS = [
    ("The Arrival", ["A stranger came to town on a grey morning.", LONG_PARAGRAPH]),
    ("The Market", ["The market was loud and full of colour.", "Everyone had something to sell."]),
    ("The Departure", ["At dusk the stranger left, as quietly as he came.", "Nobody saw him go."]),
]


def png(width: int = 8, height: int = 8) -> bytes:
    """A small red PNG, written by hand (zlib and struct)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    rows = b"".join(b"\x00" + b"\xc8\x32\x32" * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


def write_epub(path: Path, chapters=CHAPTERS, cover: bytes | None = None, folder: str = "") -> Path:
    """An EPUB 3 (with an NCX too) as ebooklib writes it: a cover page, then a document per
    chapter, each paragraph carrying a footnote marker."""
    book = epub.EpubBook()
    book.set_identifier("kaggletts-test-book")
    book.set_title("The Stranger")
    book.set_language("en")
    book.add_author("Ada Writer")
    if cover:
        book.set_cover("cover.png", cover)
    documents = []
    for number, (title, paragraphs) in enumerate(chapters, 1):
        document = epub.EpubHtml(title=title, file_name=f"{folder}chapter{number}.xhtml", lang="en")
        body = "".join(
            f'<p>{p}<sup><a href="#n{number}">{number}</a></sup></p>' for p in paragraphs
        )
        document.content = f"<html><body><h1>{title}</h1>{body}</body></html>"
        book.add_item(document)
        documents.append(document)
    book.toc = documents
    book.add_item(epub.EpubNcx())
    book.add_item(epub.EpubNav())
    book.spine = ["cover", "nav", *documents] if cover else ["nav", *documents]
    epub.write_epub(str(path), book)
    return path


def write_markdown(path: Path, second_paragraph: str = LONG_PARAGRAPH) -> Path:
    path.write_text(
        "# The Stranger\n\n"
        "## The Arrival\n\nA *stranger* came to town[^1] on a grey morning.\n\n"
        f"{second_paragraph}\n\n"
        "## The Departure\n\nAt dusk the **stranger** left, as qui\u00adetly as he came.\n\n"
        "[^1]: A town by a river.\n",
        encoding="utf-8",
    )
    return path


def wav_seconds(path: Path) -> float:
    with wave.open(str(path), "rb") as clip:
        return clip.getnframes() / clip.getframerate()


def dbfs(level: float) -> float:
    return 20 * math.log10(level) if level > 0 else -math.inf


def acx_figures(path: Path) -> dict[str, float]:
    """RMS, peak and noise floor (the quietest half second's RMS) of a decoded file."""
    samples, rate = soundfile.read(str(path), dtype="float64", always_2d=False)
    half = rate // 2
    windows = [samples[start : start + half] for start in range(0, len(samples) - half, half // 2)]
    return {
        "rms": dbfs(float(np.sqrt(np.mean(samples**2)))),
        "peak": dbfs(float(np.max(np.abs(samples)))),
        "noise_floor": dbfs(min(float(np.sqrt(np.mean(w**2))) for w in windows)),
        "seconds": len(samples) / rate,
    }


def expected_seconds(job_directory: Path, pauses: Pauses = DEFAULT_PAUSES) -> float:
    """The clips plus every pause the book map asks for, per chapter."""
    clips = Result.read(job_directory)
    assert clips is not None
    total = sum(wav_seconds(path) for path in clips.audio)
    for chapter in json.loads((job_directory / MAP_FILE).read_text())["chapters"]:
        inner = range(chapter["first"], chapter["last"])
        total += (
            pauses.head
            + pauses.tail
            + sum(
                pauses.paragraph if n in chapter["paragraph_ends"] else pauses.sentence
                for n in inner
            )
        )
    return total


# --- Reading books -------------------------------------------------------------------------


def test_an_epub_gives_its_chapters_in_spine_order_with_title_author_language_and_cover(
    tmp_path,
):
    cover = png()
    book = read_book(write_epub(tmp_path / "stranger.epub", cover=cover))
    assert (book.title, book.author, book.language, book.cover) == (
        "The Stranger",
        "Ada Writer",
        "en",
        cover,
    )
    assert [chapter.title for chapter in book.chapters] == [t for t, _ in CHAPTERS]
    first = book.chapters[0]
    # The heading is spoken first; footnote markers are gone, paragraphs kept.
    assert first.paragraphs == ("The Arrival", *CHAPTERS[0][1])


def test_an_epub_whose_chapters_are_in_a_folder_of_their_own_finds_them(tmp_path):
    book = read_book(write_epub(tmp_path / "stranger.epub", folder="Text/"))
    assert [chapter.title for chapter in book.chapters] == [t for t, _ in CHAPTERS]


def test_an_epub_2_finds_its_chapters_from_an_ncx_in_another_folder(tmp_path):
    """An EPUB 2 as Sigil lays it out: the NCX in Misc/ names chapters as ../Text/..."""
    import zipfile

    path = tmp_path / "old.epub"
    names = [f"Text/ch{n}.xhtml" for n in (1, 2)]
    opf = (
        '<?xml version="1.0"?><package xmlns="http://www.idpf.org/2007/opf" version="2.0" '
        'unique-identifier="id"><metadata xmlns:dc="http://purl.org/dc/elements/1.1/">'
        '<dc:identifier id="id">old</dc:identifier><dc:title>Old Book</dc:title>'
        "<dc:creator>Old Author</dc:creator><dc:language>en</dc:language></metadata>"
        '<manifest><item id="ncx" href="Misc/toc.ncx" media-type="application/x-dtbncx+xml"/>'
        + "".join(
            f'<item id="c{n}" href="{name}" media-type="application/xhtml+xml"/>'
            for n, name in enumerate(names, 1)
        )
        + '</manifest><spine toc="ncx"><itemref idref="c1"/><itemref idref="c2"/></spine>'
        "</package>"
    )
    ncx = (
        '<?xml version="1.0"?><ncx xmlns="http://www.daisy.org/z3986/2005/ncx/" version="2005-1">'
        "<head/><docTitle><text>Old Book</text></docTitle><navMap>"
        + "".join(
            f'<navPoint id="p{n}"><navLabel><text>Part {n}</text></navLabel>'
            f'<content src="../{name}"/></navPoint>'
            for n, name in enumerate(names, 1)
        )
        + "</navMap></ncx>"
    )
    with zipfile.ZipFile(path, "w") as book:
        book.writestr("mimetype", "application/epub+zip")
        book.writestr(
            "META-INF/container.xml",
            '<?xml version="1.0"?><container version="1.0" '
            'xmlns="urn:oasis:names:tc:opendocument:xmlns:container"><rootfiles>'
            '<rootfile full-path="OEBPS/content.opf" '
            'media-type="application/oebps-package+xml"/></rootfiles></container>',
        )
        book.writestr("OEBPS/content.opf", opf)
        book.writestr("OEBPS/Misc/toc.ncx", ncx)
        for n, name in enumerate(names, 1):
            book.writestr(
                f"OEBPS/{name}",
                '<html xmlns="http://www.w3.org/1999/xhtml"><body>'
                f"<h2>Part {n}</h2><p>Words of part {n}.</p></body></html>",
            )
    read = read_book(path)
    assert (read.title, read.author) == ("Old Book", "Old Author")
    assert [(c.title, c.paragraphs) for c in read.chapters] == [
        ("Part 1", ("Part 1", "Words of part 1.")),
        ("Part 2", ("Part 2", "Words of part 2.")),
    ]


def test_markdown_chapters_come_from_its_headings_without_markup_or_footnotes(tmp_path):
    book = read_book(write_markdown(tmp_path / "stranger.md"))
    assert book.title == "The Stranger"
    assert [c.title for c in book.chapters] == ["The Arrival", "The Departure"]
    assert book.chapters[0].paragraphs[1] == "A stranger came to town on a grey morning."
    assert book.chapters[1].paragraphs[1] == "At dusk the stranger left, as quietly as he came."
    assert all("A town by a river" not in p for c in book.chapters for p in c.paragraphs)


def test_plain_text_chapters_start_at_heading_lines_or_a_given_pattern(tmp_path):
    text = tmp_path / "tale.txt"
    text.write_text(
        "Before it all.\n\nCHAPTER 1\n\nHard\nwrapped line.\n\n"
        "Chapter 2. The end\n\nDone.\n\n* * *\n\nAfter the break.\n"
    )
    book = read_book(text)
    assert [c.title for c in book.chapters] == ["tale", "CHAPTER 1", "Chapter 2. The end"]
    assert book.chapters[1].paragraphs == ("CHAPTER 1", "Hard wrapped line.")
    by_pattern = read_book(text, chapter_pattern=r"\* \* \*")
    assert [c.title for c in by_pattern.chapters] == ["tale", "* * *"]


def test_a_book_kaggletts_cannot_read_is_refused_in_one_line(run_cli, tmp_path):
    (tmp_path / "book.pdf").write_bytes(b"%PDF")
    ran = run_cli("book", str(tmp_path / "book.pdf"), "--notebook", "espeak")
    assert ran.code == 2
    assert ran.stderr.strip() == (
        f"error: cannot read {str(tmp_path / 'book.pdf')!r} as a book: kaggletts reads .txt, "
        ".md, .epub"
    )
    text = tmp_path / "book.txt"
    text.write_text("Words.\n")
    ran = run_cli("book", str(text), "-n", "espeak", "-p", "text", "Hello")
    assert ran.code == 2 and "the book gives the lines to speak" in ran.stderr
    ran = run_cli("book", str(text), "-n", "espeak", "--chapter-pattern", "(")
    assert ran.code == 2 and "is no regular expression" in ran.stderr
    assert "Traceback" not in ran.output


def test_long_paragraphs_become_lines_by_the_notebooks_splitter_and_the_map_keeps_them(
    tmp_path,
):
    lines = book_lines(read_book(write_markdown(tmp_path / "stranger.md")))
    assert len(LONG_PARAGRAPH) > LINE_CHARACTERS
    assert all(len(text) <= LINE_CHARACTERS for text in lines.texts)
    # Heading, short paragraph, the long one cut at sentences; heading, paragraph.
    first, second = lines.map.chapters
    assert " ".join(lines.texts[first.paragraph_ends[1] : first.last]) == LONG_PARAGRAPH
    assert (first.first, second.first, second.last) == (1, first.last + 1, len(lines.texts))
    assert first.paragraph_ends[:2] == (1, 2) and second.paragraph_ends == (
        second.first,
        second.last,
    )


# --- The plan ------------------------------------------------------------------------------


def test_dry_run_plans_a_90000_word_novel_for_qwen_from_the_measured_figures(run_cli, tmp_path):
    sentence = "The night was long and the road was empty, so she kept on walking. "  # 14 words
    chapter = "\n\n".join(sentence * 5 for _ in range(43))  # 3,010 words
    novel = tmp_path / "novel.txt"
    novel.write_text("\n\n".join(f"Chapter {n}\n\n{chapter}" for n in range(1, 31)))
    ran = run_cli("book", str(novel), "-n", "qwen", "--dry-run", "--json")
    assert ran.code == 0, ran.output
    plan = json.loads(ran.stdout)
    assert plan["chapters"] == 30
    assert plan["words"] == 30 * (2 + 43 * 70)
    # Each 350-character paragraph is two lines of at most 300; the heading one more.
    assert plan["lines"] == 30 * (1 + 43 * 2)
    assert plan["audio_hours"] == pytest.approx(plan["words"] / 9300)
    # Qwen's measured run: 114 s to start a session, 26 s a line; sessions of at most 12 h
    # and 480 lines (Kaggle lists a session's first 500 outputs); 30 h weeks.
    work = 26 * plan["lines"]
    sessions = max(math.ceil(work / (12 * 3600 - 114)), math.ceil(plan["lines"] / 480))
    assert plan["sessions"] == sessions == 6
    assert plan["session_hours"] == pytest.approx((work + 114 * sessions) / 3600)
    assert plan["quota_weeks"] == math.ceil(plan["session_hours"] / 30)
    assert "measured P100 run of Qwen3-TTS 1.7B" in plan["session_source"]
    assert "9,300 words per finished hour" in plan["audio_source"]
    assert not list(tmp_path.rglob("job.json")), "a dry run runs nothing"


# --- The ACX check -------------------------------------------------------------------------


def test_a_check_that_fails_names_the_figure_and_by_how_much():
    rate = 24000
    loud = 0.9 * np.sin(2 * np.pi * 440 * np.arange(rate * 3) / rate)
    check = measure(np.concatenate([np.zeros(rate // 10), loud]).astype(np.float32), rate)
    assert check.peak == pytest.approx(dbfs(0.9), abs=0.01)
    assert not check.passed
    assert f"peak {dbfs(0.9):.1f} dBFS is {dbfs(0.9) + 3:.1f} dB above ACX's -3 dBFS" in (
        check.problems
    )
    assert any(p.startswith("RMS -4.") and "above ACX's -23..-18 dBFS" for p in check.problems)
    assert "room tone at the head 0.10 s is 0.40 s below ACX's 0.5..1 s" in check.problems
    assert "room tone at the tail 0.00 s is 1.00 s below ACX's 1..5 s" in check.problems
    quiet_enough = AcxCheck(rms=-20, peak=-4, noise_floor=-59, head=0.7, tail=2)
    assert quiet_enough.problems == ["noise floor -59.0 dBFS is 1.0 dB above ACX's -60 dBFS"]


def write_noise_clips(folder: Path, count: int, seconds: float, rate: int) -> dict[int, Path]:
    """`count` clips of speech-loud noise, each with peaks for the limiter to bring down."""
    rng = np.random.default_rng(7)
    clips = {}
    for number in range(1, count + 1):
        samples = np.clip(rng.standard_normal(round(seconds * rate)) * 0.1, -0.95, 0.95)
        clips[number] = folder / f"{number:03d}.wav"
        with wave.open(str(clips[number]), "wb") as out:
            out.setnchannels(1)
            out.setsampwidth(2)
            out.setframerate(rate)
            out.writeframes((samples * 32767).astype(np.int16).tobytes())
    return clips


def test_a_chapter_is_levelled_and_measured_in_little_more_than_its_own_samples(tmp_path):
    """Issue 18: a long chapter must not cost a multiple of its samples in memory (joining,
    levelling and measuring each used to copy it several times, float64 among them)."""
    rate, count = 24000, 18
    clips = write_noise_clips(tmp_path, count, 10, rate)
    chapter = ChapterLines("Three minutes", 1, count, (9, count))
    warm_up = ChapterLines("Imports", 1, 1, (1,))
    measure(chapter_samples(warm_up, clips, rate, DEFAULT_PAUSES), rate)
    tracemalloc.start()
    try:
        samples = chapter_samples(chapter, clips, rate, DEFAULT_PAUSES)
        check = measure(samples, rate)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    size = count * 10 * rate * 4  # the chapter's clips as float32
    assert len(samples) * 4 >= size
    assert peak < 2 * size, f"peak {peak / size:.1f}x the chapter's float32 samples"
    assert check.passed, check.problems


@pytest.mark.parametrize("rate", [16000, 22050, 24000, 44100])
def test_loudness_measured_in_blocks_is_pyloudnorms_integrated_loudness(rate):
    """The chapter's loudness is measured a block at a time; pyloudnorm measures the whole
    at once. Speech-like bursts with quiet stretches, so both gates have work to do."""
    import pyloudnorm

    rng = np.random.default_rng(rate)
    t = np.arange(round(47.3 * rate)) / rate
    bursts = (np.sin(2 * np.pi * 0.3 * t) > 0) * 0.2 * np.sin(2 * np.pi * 180 * t)
    samples = (bursts + 0.003 * rng.standard_normal(len(t))).astype(np.float32)
    samples[: len(samples) // 3] *= 0.01
    expected = pyloudnorm.Meter(rate).integrated_loudness(samples)
    assert measure(samples, rate).loudness == pytest.approx(expected, abs=0.01)


# --- Spoken books --------------------------------------------------------------------------


def test_an_epub_becomes_an_m4b_with_its_chapters_tags_and_cover_and_acx_ready_mp3s(
    run_cli, tmp_path
):
    book = write_epub(tmp_path / "stranger.epub", cover=png())
    folder = tmp_path / "audiobook"
    ran = run_cli(
        "book",
        str(book),
        "-n",
        "espeak",
        "--out",
        str(tmp_path / "jobs"),
        "-o",
        str(folder),
        "--wav",
        "--json",
    )
    assert ran.code == 0, ran.output
    made = json.loads(ran.stdout)
    m4b = Path(made["m4b"])
    assert m4b == folder / "The Stranger.m4b"

    read = MP4(str(m4b))
    assert read.chapters is not None and read.tags is not None and read.info is not None
    assert [chapter.title for chapter in read.chapters] == [t for t, _ in CHAPTERS]
    assert read.tags["\xa9nam"] == ["The Stranger"] and read.tags["\xa9ART"] == ["Ada Writer"]
    assert bytes(read.tags["covr"][0]) == png()
    expected = expected_seconds(Path(made["job_directory"]))
    assert read.info.length == pytest.approx(expected, rel=0.01)
    starts = [chapter.start for chapter in read.chapters]
    durations = [chapter["duration"] for chapter in made["chapters"]]
    assert starts == pytest.approx([0, durations[0], durations[0] + durations[1]], abs=0.05)

    for number, chapter in enumerate(made["chapters"], 1):
        mp3 = Path(chapter["file"])
        assert mp3.parent == folder and mp3.suffix == ".mp3"
        assert ID3(str(mp3))["TIT2"].text == [CHAPTERS[number - 1][0]]
        assert ID3(str(mp3))["TALB"].text == ["The Stranger"]
        figures = acx_figures(mp3)
        assert -23 <= figures["rms"] <= -18, figures
        assert figures["peak"] <= -3, figures
        assert figures["noise_floor"] <= -60, figures
        assert figures["seconds"] == pytest.approx(chapter["duration"], abs=0.1)
        assert chapter["acx"]["passed"] and chapter["acx"]["problems"] == []
        assert 0.5 <= chapter["acx"]["head_seconds"] <= 1
        assert 1 <= chapter["acx"]["tail_seconds"] <= 5
        # The WAV holds the very samples measured: head and tail room tone included.
        samples, rate = soundfile.read(chapter["wav"], always_2d=False)
        head = samples[: int(0.5 * rate)]
        assert dbfs(float(np.sqrt(np.mean(head**2)))) < -60, "room tone, not speech, at the head"
    # What was spoken: each heading, then its paragraphs, without their footnote markers.
    spoken = Result.read(Path(made["job_directory"]))
    assert spoken is not None
    assert " ".join(clip.text for clip in spoken.clips) == " ".join(
        text for title, paragraphs in CHAPTERS for text in (title, *paragraphs)
    )


def test_a_markdown_book_continues_from_its_job_and_an_edit_respeaks_only_its_lines(
    tmp_path,
):
    source = write_markdown(tmp_path / "stranger.md")
    jobs, folder = tmp_path / "jobs", tmp_path / "audiobook"
    first = kaggletts.book(source, "espeak", output=folder, output_dir=jobs)
    assert [c.title for c in first.chapters] == ["The Arrival", "The Departure"]
    assert first.reused_lines == 0
    spoken = Result.read(first.job_directory)
    assert spoken is not None
    lines = len(spoken.clips)

    again = kaggletts.book(source, "espeak", output=folder, output_dir=jobs)
    assert again.job_id == first.job_id, "the same book is the same job: its stored result"

    edited = LONG_PARAGRAPH.replace("twice", "three times")
    write_markdown(source, edited)
    changed = kaggletts.book(source, "espeak", output=folder, output_dir=jobs)
    result = Result.read(changed.job_directory)
    assert result is not None and len(result.clips) == lines
    respoken = [clip.text for clip in result.clips if not clip.reused]
    assert respoken == [
        piece for piece in book_lines(read_book(source)).texts if "three times" in piece
    ]
    assert len(respoken) == 1, "the paragraph's first sentences are a line of their own"
    assert changed.reused_lines == lines - len(respoken)
    info = MP4(str(changed.m4b)).info
    assert info is not None
    assert info.length == pytest.approx(expected_seconds(changed.job_directory), rel=0.01)


def write_three_chapters(path: Path, middle: str = CHAPTERS[1][1][0]) -> Path:
    """A Markdown book of three one-paragraph chapters, the second's paragraph `middle`."""
    paragraphs = [CHAPTERS[0][1][0], middle, CHAPTERS[2][1][0]]
    path.write_text(
        "".join(
            f"# {title}\n\n{text}\n\n"
            for (title, _), text in zip(CHAPTERS, paragraphs, strict=True)
        ),
        encoding="utf-8",
    )
    return path


def test_an_edit_rewrites_only_its_chapters_files_and_the_m4b(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="kaggletts")
    source = tmp_path / "three.md"

    def files(made: kaggletts.Audiobook) -> dict[str, tuple[int, int]]:
        paths = [chapter.mp3 for chapter in made.chapters] + [made.m4b]
        return {path.name: (path.stat().st_ino, path.stat().st_mtime_ns) for path in paths}

    options = {"output": tmp_path / "audiobook", "output_dir": tmp_path / "jobs"}
    write_three_chapters(source)
    before = files(kaggletts.book(source, "espeak", **options))
    caplog.clear()
    unchanged = kaggletts.book(source, "espeak", **options)
    assert files(unchanged) == before, "nothing changed: no file written again"
    assert "three.m4b and its chapters are unchanged: not written again" in caplog.text

    write_three_chapters(source, "The market was quiet and grey.")
    caplog.clear()
    edited = kaggletts.book(source, "espeak", **options)
    after = files(edited)
    first, middle, last, m4b = before
    assert after[first] == before[first] and after[last] == before[last]
    assert after[middle] != before[middle] and after[m4b] != before[m4b]
    assert "chapter 1/3, The Arrival: " in caplog.text
    assert caplog.text.count("unchanged, not written again") == 2
    info = MP4(str(edited.m4b)).info
    assert info is not None
    assert info.length == pytest.approx(expected_seconds(edited.job_directory), rel=0.01)
    assert [c.to_dict() for c in edited.chapters][0] == unchanged.chapters[0].to_dict()


def test_the_books_page_lists_each_chapter_with_its_player_figures_and_verdict(tmp_path):
    made = kaggletts.book(
        write_three_chapters(tmp_path / "three.md"),
        "espeak",
        output=tmp_path / "audiobook",
        output_dir=tmp_path / "jobs",
    )
    assert made.page == tmp_path / "audiobook" / "index.html"
    page = made.page.read_text("utf-8")
    assert page.count("<audio ") == 3
    for chapter in made.chapters:
        assert f'src="{chapter.mp3.name}"' in page
        assert (
            f"{chapter.check.rms:.1f} dBFS" in page and f"{chapter.check.loudness:.1f} LUFS" in page
        )
    assert page.count('<span class="ok">ok</span>') == 3


def test_lines_spoken_are_logged_by_chapter_and_the_callers_on_progress_sees_each(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="kaggletts")
    seen: list[Progress] = []
    source = write_markdown(tmp_path / "stranger.md")
    kaggletts.book(
        source,
        "espeak",
        output=tmp_path / "audiobook",
        output_dir=tmp_path / "jobs",
        on_progress=seen.append,
    )
    texts = book_lines(read_book(source)).texts
    assert [progress.done for progress in seen] == list(range(1, len(texts) + 1))
    shown = [r.getMessage() for r in caplog.records if ": line " in r.getMessage()]
    first = "chapter 1/2 'The Arrival'"
    # The Arrival: its heading, a line, then the long paragraph's two lines.
    assert shown == [
        f"{first}: line 1/4",
        f"{first}: line 2/4",
        f"{first}: line 3/4",
        f"{first}: line 4/4",
        "chapter 2/2 'The Departure': line 1/2",
        "chapter 2/2 'The Departure': line 2/2",
    ]


def test_a_terminals_bar_is_labelled_with_the_chapter_of_the_line_just_made():
    from tqdm import tqdm

    screen = io.StringIO()
    bars = ProgressBars(lambda **options: tqdm(file=screen, **options), print)
    for record in (
        Progress("kernel-1", 1, 3, "001-a.wav", label="espeak"),
        ProgressPlace("kernel-1", "espeak, chapter 1/2 'One'"),
    ):
        bars.handle(logging.makeLogRecord({"msg": "", "progress": record}))
    assert bars.bars["kernel-1"].desc == "espeak, chapter 1/2 'One'"
    bars.close()


def test_flagged_lines_are_those_whose_clips_carry_warnings_by_chapter():
    book = BookMap(
        "T", "", "en", (ChapterLines("One", 1, 2, (2,)), ChapterLines("Two", 3, 4, (4,)))
    )
    clips = [
        ClipRecord("a.wav", 1, "0", text="first", line=1),
        ClipRecord("b.wav", 1, "0", text="second", line=2, warnings=("made again after: x",)),
        ClipRecord("c.wav", 1, "0", text="third", line=3),
        ClipRecord("d.wav", 1, "0", text="fourth", line=4),
    ]
    assert flagged_lines(book, clips) == [
        [FlaggedLine(2, "second", ("made again after: x",))],
        [],
    ]


@pytest.mark.slow
def test_the_books_page_plays_every_chapter_and_shows_a_failing_figure_in_chromium(tmp_path):
    from headless_chromium import Chromium, chromium_or_skip

    made = kaggletts.book(
        write_three_chapters(tmp_path / "three.md"),
        "espeak",
        output=tmp_path / "audiobook",
        output_dir=tmp_path / "jobs",
    )
    # The second chapter as if its tail were cut short and a notebook had flagged a line.
    short = replace(made.chapters[1], check=replace(made.chapters[1].check, tail=0.2))
    chapters = [made.chapters[0], short, made.chapters[2]]
    flagged = [[], [FlaggedLine(2, "The <b>market</b>", ("made again after: silence",))], []]
    page = write_book_page(made.m4b.parent, made.title, made.author, made.m4b, chapters, flagged)

    with Chromium(chromium_or_skip()) as browser:
        browser.open(page.as_uri())
        players = browser.evaluate(PROBE_PLAYERS)
        rows = browser.evaluate(
            "[...document.querySelectorAll('tbody tr')].map(row => "
            "[...row.cells].map(cell => cell.innerText.trim()))"
        )
        failing = browser.evaluate(
            "[...document.querySelectorAll('td.fail')].map(cell => [cell.innerText, cell.title])"
        )
    assert [p["error"] for p in players] == [None] * 3
    assert [p["duration"] for p in players] == pytest.approx(
        [chapter.seconds for chapter in made.chapters], abs=0.1
    )
    headings = ["Loudness", "RMS", "Peak", "Noise floor", "Head", "Tail"]
    for row, chapter in zip(rows, chapters, strict=True):
        figures = dict(zip(headings, row[4:10], strict=True))
        assert figures["RMS"] == f"{chapter.check.rms:.1f} dBFS"
        assert figures["Peak"] == f"{chapter.check.peak:.1f} dBFS"
        assert figures["Noise floor"] == f"{chapter.check.noise_floor:.1f} dBFS"
        assert figures["Loudness"] == f"{chapter.check.loudness:.1f} LUFS"
    assert [row[10] for row in rows] == [
        "ok",
        "room tone at the tail 0.20 s is 0.80 s below ACX's 1..5 s",
        "ok",
    ]
    assert failing == [["0.20 s", "room tone at the tail 0.20 s is 0.80 s below ACX's 1..5 s"]]
    assert rows[1][11] == "line 2: The <b>market</b>\nmade again after: silence"
    assert rows[0][11] == rows[2][11] == ""


def test_a_chapter_failing_a_check_says_which_figure_and_by_how_much(run_cli, tmp_path):
    text = tmp_path / "short.txt"
    text.write_text("Chapter 1\n\nA short chapter, read aloud.\n", encoding="utf-8")
    ran = run_cli(
        "book",
        str(text),
        "-n",
        "espeak",
        "--out",
        str(tmp_path / "jobs"),
        "-o",
        str(tmp_path / "audiobook"),
        "--chapter-pause",
        "0.2",
        "--json",
    )
    assert ran.code == 0, ran.output
    [chapter] = json.loads(ran.stdout)["chapters"]
    assert not chapter["acx"]["passed"]
    assert chapter["acx"]["problems"] == [
        "room tone at the tail 0.20 s is 0.80 s below ACX's 1..5 s"
    ]
    assert (
        "warning: Chapter 1 fails ACX's check: room tone at the tail 0.20 s is 0.80 s below "
        "ACX's 1..5 s" in ran.stderr
    )
    again = run_cli(
        "book",
        str(text),
        "-n",
        "espeak",
        "--out",
        str(tmp_path / "jobs"),
        "-o",
        str(tmp_path / "audiobook"),
    )
    assert again.code == 0, again.output
    assert again.stdout.startswith(f"{tmp_path / 'audiobook' / 'short.m4b'}: 1 chapter, ")
    assert "  001-chapter-1.mp3  " in again.stdout and again.stdout.rstrip().endswith("ACX ok")


@pytest.mark.slow
def test_a_book_on_the_emulator_is_one_job_and_an_edit_pushes_only_its_line(tmp_path):
    from helpers import FAST, KEY, USER, pushes

    from kaggletts.backends.kaggle.credentials import Credentials
    from kaggletts.emulator import Emulator

    source = write_markdown(tmp_path / "stranger.md")
    with Emulator(state_dir=tmp_path / "state", users={USER: KEY}) as emulator:
        options = {
            **FAST,
            "backend": "kaggle",
            "output_dir": tmp_path / "jobs",
            "endpoint": emulator.url,
            "credentials": Credentials(USER, key=KEY),
            "output": tmp_path / "audiobook",
        }
        first = kaggletts.book(source, "espeak", **options)
        assert pushes(emulator) == 1, "the whole book is one job, in one session"
        write_markdown(source, LONG_PARAGRAPH.replace("twice", "three times"))
        second = kaggletts.book(source, "espeak", **options)
        assert pushes(emulator) == 2
    result = Result.read(second.job_directory)
    assert result is not None
    assert [c.text for c in result.clips if not c.reused] == [
        piece for piece in book_lines(read_book(source)).texts if "three times" in piece
    ]
    assert [c.title for c in second.chapters] == [c.title for c in first.chapters]
    read = MP4(str(second.m4b))
    assert read.chapters is not None
    assert [c.title for c in read.chapters] == ["The Arrival", "The Departure"]
    assert all(chapter.check.passed for chapter in second.chapters)
