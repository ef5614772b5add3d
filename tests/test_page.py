"""The audition page: index.html and clips.csv beside a job's audio, the players in
Jupyter, and `kaggletts open`. The page is checked in real headless chromium: every player
loads and plays its file, texts that look like markup stay text, the screenshot is not
blank, and a page of 1,000 lines keeps its header in view and fits the window's width (the
checks in chromium are marked slow)."""

from __future__ import annotations

import csv
import json
import shutil
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest
from headless_chromium import Chromium, chromium_or_skip, luminance_spread

import kaggletts
from kaggletts.finish import write_result_page
from kaggletts.jobs import JobRecord
from kaggletts.layout import CSV_FILE, PAGE_FILE
from kaggletts.result import Result

TEXTS = [
    "Tags <script>window.kaggletts_pwned = 1</script> & \"double\" and 'single' quotes.",
    "Emoji 🎉 and accents: café.",
    "=1+2 looks like a formula to a spreadsheet.",
    "The last line.",
]
# The probe the tests run in the page: every player asked to load its file's metadata,
# and what each one then says (a file that is missing or not audio gives an error code).
PROBE_PLAYERS = """
Promise.all([...document.querySelectorAll('audio')].map(audio => new Promise(done => {
  const report = () => done({
    src: audio.getAttribute('src'), ready: audio.readyState, duration: audio.duration,
    error: audio.error && audio.error.code});
  audio.addEventListener('loadedmetadata', report, {once: true});
  audio.addEventListener('error', report, {once: true});
  audio.preload = 'metadata';
  audio.load();
})))
"""

# Then each player is played through its last 0.3 s: true where it reached its end.
PLAY_ENDINGS = """
(async () => {
  const ended = [];
  for (const audio of document.querySelectorAll('audio')) {
    audio.currentTime = Math.max(0, audio.duration - 0.3);
    const end = new Promise(done => audio.addEventListener('ended', () => done(true)));
    await audio.play();
    ended.push(await Promise.race([end, new Promise(done => setTimeout(done, 5000, false))]));
  }
  return ended;
})()
"""


@pytest.fixture(scope="module")
def result(tmp_path_factory: pytest.TempPathFactory) -> Result:
    """A real espeak run whose texts hold markup, quotes, an ampersand, emoji and a
    formula, one line in another voice."""
    utterances: list[Any] = list(TEXTS)
    utterances[1] = {"text": TEXTS[1], "voice": "en-gb"}
    out = tmp_path_factory.mktemp("page")
    return kaggletts.execute("espeak", {"utterances": utterances}, output_dir=out)


@pytest.fixture(scope="module")
def browser() -> Iterator[Chromium]:
    with Chromium(chromium_or_skip()) as chromium:
        yield chromium


class PageParts(HTMLParser):
    """What the page holds: its tags, the players' sources and the clips' text cells."""

    def __init__(self, page: str):
        super().__init__()
        self.tags: list[str] = []
        self.sources: list[str] = []
        self.texts: list[str] = []
        self._in_text_cell = False
        self.feed(page)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        found = dict(attrs)
        if tag == "audio":
            self.sources.append(found["src"] or "")
        if tag == "td" and found.get("class") == "text":
            self._in_text_cell = True
            self.texts.append("")
        if tag == "a":  # the file link ends the text part of the cell
            self._in_text_cell = False

    def handle_data(self, data: str) -> None:
        if self._in_text_cell:
            self.texts[-1] += data


# -- the files ----------------------------------------------------------------------------


def test_the_page_has_a_player_per_clip_with_a_relative_source_and_the_texts_as_text(
    result: Result,
) -> None:
    page = PageParts((result.directory / PAGE_FILE).read_text(encoding="utf-8"))

    assert page.texts == TEXTS
    assert "script" not in page.tags
    assert [result.directory / unquote(src) for src in page.sources] == result.audio
    assert all(not src.startswith(("/", "file:")) for src in page.sources)


def test_clips_csv_has_a_row_per_clip_that_a_spreadsheet_reads_safely(result: Result) -> None:
    with (result.directory / CSV_FILE).open(encoding="utf-8-sig", newline="") as handle:
        rows = list(csv.DictReader(handle))

    assert [row["number"] for row in rows] == ["1", "2", "3", "4"]
    assert [row["text"] for row in rows] == [*TEXTS[:2], "'" + TEXTS[2], TEXTS[3]]
    assert [row["sha256"] for row in rows] == [clip.sha256 for clip in result.clips]
    assert rows[1]["settings"].split("; ") == ["pitch=50", "rate=175", "voice=en-gb"]
    assert float(rows[0]["duration"]) == pytest.approx(result.clips[0].duration)


def test_the_result_has_a_short_repr_and_players_in_jupyter(
    result: Result, monkeypatch: pytest.MonkeyPatch
) -> None:
    text = repr(result)
    assert len(text) < 200 + len(str(result.directory))
    assert f"job {result.job_id}: 4 clips" in text

    # Jupyter resolves a relative source against the notebook's folder, the kernel's cwd.
    notebook_folder = result.directory.parent.parent
    monkeypatch.chdir(notebook_folder)
    cell = PageParts(result._repr_html_())
    assert [notebook_folder / unquote(src) for src in cell.sources] == result.audio
    assert cell.texts == TEXTS


# -- in chromium --------------------------------------------------------------------------


@pytest.mark.slow
def test_every_player_loads_and_plays_its_clip_in_chromium_and_markup_stays_text(
    result: Result, browser: Chromium
) -> None:
    browser.open((result.directory / PAGE_FILE).as_uri())
    players = browser.evaluate(PROBE_PLAYERS)

    assert [p["error"] for p in players] == [None] * 4
    assert all(p["ready"] >= 1 for p in players)
    assert [p["duration"] for p in players] == pytest.approx(
        [clip.duration for clip in result.clips], abs=0.01
    )
    assert browser.evaluate(PLAY_ENDINGS, user_gesture=True) == [True] * 4
    assert browser.evaluate("typeof window.kaggletts_pwned") == "undefined"
    shown = browser.evaluate(
        "[...document.querySelectorAll('td.text')].map(cell => cell.firstChild.textContent)"
    )
    assert shown == TEXTS

    spread, levels = luminance_spread(browser.screenshot())
    assert spread > 20 and levels > 20, f"the screenshot looks blank ({spread=}, {levels=})"


@pytest.mark.slow
def test_the_probe_sees_a_player_whose_file_is_gone(
    result: Result, browser: Chromium, tmp_path: Path
) -> None:
    copy = shutil.copytree(result.directory, tmp_path / "job")
    (copy / result.audio[2].name).unlink()

    browser.open((copy / PAGE_FILE).as_uri())
    errors = [p["error"] for p in browser.evaluate(PROBE_PLAYERS)]

    assert errors[:2] == [None, None] and errors[3] is None
    assert errors[2] is not None


@pytest.mark.slow
def test_a_page_of_1000_lines_keeps_its_header_in_view_and_fits_the_width(
    tmp_path: Path, browser: Chromium
) -> None:
    long_text = "A long line of text that has to wrap in its cell rather than widen the page. " * 4
    clips = [fake_clip(n, long_text if n % 10 == 0 else f"Line {n}.") for n in range(1, 1001)]
    page = write_result_page(fake_result(tmp_path, clips))
    assert page.stat().st_size < 1000 * 1200

    browser.open(page.as_uri())
    layout = browser.evaluate(
        """(() => {
          window.scrollTo(0, document.body.scrollHeight);
          const head = document.querySelector('thead th').getBoundingClientRect();
          return {rows: document.querySelectorAll('tbody tr').length,
                  headTop: head.top, scrolled: window.scrollY,
                  overflow: document.documentElement.scrollWidth - window.innerWidth};
        })()"""
    )

    assert layout["rows"] == 1000
    assert layout["scrolled"] > 10000
    assert layout["headTop"] == 0, "the column names scroll away"
    assert layout["overflow"] <= 0, "the page is wider than the window"


# JupyterLab's rules for a table in a cell's HTML output (its rendermime base.css): cells
# right-aligned and centred vertically, half an em of padding, no borders, a fixed layout.
JUPYTERLAB_TABLES = """
.jp-RenderedHTMLCommon table { border-collapse: collapse; border-spacing: 0; border: none;
  font-size: 13px; table-layout: fixed; margin-left: auto; margin-right: auto; }
.jp-RenderedHTMLCommon td, .jp-RenderedHTMLCommon th, .jp-RenderedHTMLCommon tr {
  vertical-align: middle; padding: .5em; line-height: normal; white-space: normal;
  max-width: none; border: none; text-align: right; }
.jp-RenderedHTMLCommon tbody tr:nth-child(even) { background: #f5f5f5; }
"""
# What the test reads in the page: each cell's padding and alignment, and where a text
# cell's text and its file name are drawn.
TABLE_LAYOUT = """
[...document.querySelectorAll('table.clips tr')].map(row => [...row.cells].map(cell => {
  const style = getComputedStyle(cell);
  const text = cell.firstChild && cell.firstChild.nodeType === Node.TEXT_NODE
    ? (() => { const r = document.createRange(); r.selectNode(cell.firstChild);
               return r.getBoundingClientRect(); })() : null;
  const link = cell.querySelector('a');
  return {padding: parseFloat(style.paddingLeft), align: style.textAlign,
          shown: cell.innerText, textBottom: text && text.bottom,
          linkTop: link && link.getBoundingClientRect().top};
}))
"""


def jupyter_output_page(result: Result, folder: Path, stylesheet: str) -> Path:
    """The result's HTML as a notebook front end shows it: inside an output element, with
    the front end's stylesheet or none."""
    page = folder / f"jupyter-output-{len(stylesheet)}.html"
    page.write_text(
        f'<!DOCTYPE html><html><head><meta charset="utf-8"><style>{stylesheet}</style></head>'
        f'<body><div class="jp-RenderedHTMLCommon">{result._repr_html_()}</div></body></html>',
        encoding="utf-8",
    )
    return page


@pytest.mark.slow
@pytest.mark.parametrize("stylesheet", ["", JUPYTERLAB_TABLES], ids=["plain", "jupyterlab"])
def test_the_jupyter_table_keeps_text_file_and_cells_apart_with_or_without_jupyterlab_styles(
    result: Result, browser: Chromium, monkeypatch: pytest.MonkeyPatch, stylesheet: str
) -> None:
    notebook_folder = result.directory.parent.parent
    monkeypatch.chdir(notebook_folder)
    browser.open(jupyter_output_page(result, notebook_folder, stylesheet).as_uri())
    header, *rows = browser.evaluate(TABLE_LAYOUT)

    assert [cell["shown"] for cell in header][:2] == ["#", "text"]
    for cell in [*header, *(cell for row in rows for cell in row)]:
        assert cell["padding"] >= 5, f"cells are not padded apart: {cell}"
        assert cell["align"] == "left", f"a cell is not left-aligned: {cell}"
    for row, text, path in zip(rows, TEXTS, result.audio, strict=True):
        text_cell = row[1]
        assert text_cell["shown"].split("\n") == [text, path.name], text_cell
        assert text_cell["linkTop"] >= text_cell["textBottom"], "the file name runs on the text"
    assert "pitch=50 rate=175 voice=en-gb" in rows[1][4]["shown"]

    spread, levels = luminance_spread(browser.screenshot())
    assert spread > 20 and levels > 20, f"the screenshot looks blank ({spread=}, {levels=})"


# -- the header and what clips may carry -----------------------------------------------------


def test_the_header_links_kaggle_kernels_and_shows_whatever_a_clip_carries(
    tmp_path: Path,
) -> None:
    clip = fake_clip(1, "Hello.") | {
        "warnings": ["clipped <loud>"],
        "seed": 7,
        "precision": "float32",
    }
    shards = [
        {"url": "https://www.kaggle.com/code/me/kaggletts-qwen-1"},
        {"url": None},
        {"url": "javascript:alert(1)"},
    ]
    runs = [{"total_seconds": 50.0}, {"total_seconds": 40.0}, {"total_seconds": 0.5}]
    result = fake_result(tmp_path, [clip], backend="kaggle", scraps={"shards": runs})
    record = JobRecord(result.job_id, "qwen", "qwen.ipynb", "0" * 64, "kaggle", {})
    record.run = {"shards": shards}
    (tmp_path / "job.json").write_text(json.dumps(record.to_dict()), encoding="utf-8")

    page = write_result_page(result).read_text(encoding="utf-8")

    assert '<a href="https://www.kaggle.com/code/me/kaggletts-qwen-1">' in page
    assert "javascript:alert(1)" in page and 'href="javascript' not in page
    assert "at least 1 min 30 s in 3 sessions" in page
    assert '<tr id="clip-1" class="warned">' in page
    assert "<li>clipped &lt;loud&gt;</li>" in page
    assert "seed=7" in page and "precision=float32" in page


def test_the_header_says_which_devices_made_the_clips_and_what_the_run_cost(
    tmp_path: Path,
) -> None:
    clips = [fake_clip(n, f"Line {n}.") | {"device": device, "batch": batch}
             for n, device, batch in ((1, "cuda:1", 2), (2, "cuda:0", 2), (3, "cuda:0", 1))]
    run = {"total_seconds": 120.0, "synthesis_seconds": 60.0, "audio_seconds": 30.0,
           "characters": 300}
    result = fake_result(tmp_path, clips, backend="kaggle", scraps={"run": run})

    page = write_result_page(result).read_text(encoding="utf-8")

    assert "<dt>made on</dt><dd>cuda:0 (2 clips), cuda:1 (1 clip); up to 2 lines per call" in page
    # The quota has its own row; the cost row gives the rate alone.
    assert "<dt>cost</dt><dd>240.0 s of session per minute of audio</dd>" in page


def test_a_local_page_says_no_quota_was_used_and_names_no_kernel(result: Result) -> None:
    page = (result.directory / PAGE_FILE).read_text(encoding="utf-8")

    assert "none (ran on this machine)" in page
    assert "<dt>kernel</dt>" not in page


# -- kaggletts open -------------------------------------------------------------------------


def test_open_shows_the_page_and_writes_it_for_a_job_stored_without_one(
    result: Result, run_cli: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    opened: list[str] = []

    def open_in_browser(url: str) -> bool:
        opened.append(url)
        return True

    monkeypatch.setattr("webbrowser.open", open_in_browser)
    out = str(result.directory.parent.parent)
    page = result.directory / PAGE_FILE
    page.unlink()

    done = run_cli("open", result.job_id[:8], "--out", out)

    assert done.code == 0, done.output
    assert opened == [page.as_uri()]
    assert PageParts(page.read_text(encoding="utf-8")).texts == TEXTS


def test_open_says_where_the_page_is_when_there_is_no_browser(
    result: Result, run_cli: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("webbrowser.open", lambda url: False)

    done = run_cli("open", result.job_id, "--out", str(result.directory.parent.parent))

    assert done.code == 0
    assert (result.directory / PAGE_FILE).as_uri() in done.stdout


def test_open_refuses_an_unknown_job(run_cli: Any, tmp_path: Path) -> None:
    done = run_cli("open", "0123abcd", "--out", str(tmp_path))

    assert done.code == 2
    assert "no job" in done.stderr


# -- helpers --------------------------------------------------------------------------------


def fake_clip(number: int, text: str) -> dict[str, Any]:
    return {
        "text": text,
        "file": f"{number:04d}-line.wav",
        "bytes": 44,
        "sha256": "0" * 64,
        "duration": 1.5,
        "sample_rate": 24000,
        "rms": 0.1,
        "settings": {"speaker": "Ryan", "language": "English"},
    }


def fake_result(
    directory: Path,
    clips: list[dict[str, Any]],
    backend: str = "local",
    scraps: dict[str, Any] | None = None,
) -> Result:
    """A stored result for a page: the audio files themselves are not needed to write one."""
    return Result(
        job_id="f" * 16,
        notebook_name="qwen",
        backend=backend,
        directory=directory,
        audio=[directory / clip["file"] for clip in clips],
        scraps={"clips": clips, "run": {"device": "cuda"}, **(scraps or {})},
        notebook=directory / "__notebook__.ipynb",
        timings={"run": 93.0},
    )
