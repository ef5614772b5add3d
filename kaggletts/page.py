"""The audition page of a job: `index.html`, a header and one row per clip with a player,
and `clips.csv` for spreadsheets, written beside the audio when a job finishes
(kaggletts.finish gathers what the page says beyond the result).

The page opens from file:// with no network: no scripts, no fonts or styles from elsewhere,
players with relative sources. Every text in it comes from user input or from a notebook's
scraps, so every text is escaped. Clip records grow fields over time (seed, precision,
pieces...): whatever a record carries beyond the known columns is shown as key=value."""

from __future__ import annotations

import csv
import html
import io
import json
import os
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from kaggletts.layout import CSV_FILE, EXECUTED_NOTEBOOK, PAGE_FILE, RESULT_FILE
from kaggletts.words import counted

if TYPE_CHECKING:
    from kaggletts.records import ClipRecord
    from kaggletts.result import Result

# Fields with a column of their own; `bytes` and `sha256` were checked when the audio was
# kept and are in clips.csv, where a spreadsheet can use them.
_OWN_COLUMNS = ("text", "file", "duration", "settings", "rms", "warnings")
# The line is the row's number; the schema is for kaggletts.
_HIDDEN_ON_PAGE = frozenset({"bytes", "sha256", "line", "schema"})
_CSV_FIRST = ("number", "file", "text", "duration", "rms", "settings", "warnings")
# A value longer than this (a notebook's long list, say) is cut on the page; clips.csv has it whole.
_LONGEST_VALUE = 300
# A spreadsheet runs a cell that starts with one of these as a formula.
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")

PAGE_STYLE = """
:root { color-scheme: light dark; font-family: system-ui, sans-serif; font-size: 15px; }
body { margin: 1.5rem; }
h1 { font-size: 1.3rem; margin: 0 0 .5rem; }
dl.header { display: grid; grid-template-columns: max-content 1fr; gap: .15rem 1rem; margin: 0; }
dl.header dt { font-weight: 600; }
dl.header dd { margin: 0; overflow-wrap: anywhere; }
details { margin: .5rem 0 1rem; }
table { border-collapse: collapse; width: 100%; }
th, td { padding: .35rem .5rem; text-align: left; vertical-align: top; }
thead th { position: sticky; top: 0; background: Canvas; border-bottom: 2px solid #8888; }
tbody tr:nth-child(even) { background: #8881; }
tbody tr.warned { background: #f902; }
td.num, td.number { font-variant-numeric: tabular-nums; white-space: nowrap; }
td.number { text-align: right; }
td.text { overflow-wrap: anywhere; min-width: 12rem; }
td.text .file { font-size: .8rem; opacity: .7; }
audio { width: 15rem; height: 2rem; }
.kv { font-size: .85rem; overflow-wrap: anywhere; }
.kv span { display: inline-block; margin-right: .6rem; }
.extra { opacity: .7; }
ul.warnings { margin: 0; padding-left: 1rem; color: #c60; }
h2 { font-size: 1.1rem; margin: 1.5rem 0 .3rem; }
tr.missing td { color: #c33; }
""".strip()
# The table in a notebook has its looks on its cells: a notebook front end loads no page's
# stylesheet, and JupyterLab's own right-aligns table cells and centres them vertically.
_CELL_STYLE = ' style="padding: .35em .6em; text-align: left; vertical-align: top"'
_FILE_STYLE = ' style="font-size: .8em; opacity: .7"'


@dataclass(frozen=True)
class Header:
    """What the page says about the run as a whole."""

    notebook: str
    backend: str
    job_id: str
    finished: float
    run_seconds: float
    quota: str
    cost: str | None
    made_on: str | None
    kernel_urls: tuple[str, ...]
    run_scrap: dict[str, Any]


def write_page(result: Result, kernel_urls: Sequence[str], cost: str | None) -> Path:
    """Write index.html and clips.csv into the result's folder; returns the page's path.
    `kernel_urls` (the Kaggle kernels that ran the job) and `cost` (what the run cost per
    minute of audio) are what the header says beyond the result."""
    directory = result.directory
    write_text_atomic(directory / CSV_FILE, render_csv(result), encoding="utf-8-sig")
    page = directory / PAGE_FILE
    header = read_header(result, kernel_urls, cost)
    write_text_atomic(page, render_page(result, header), encoding="utf-8")
    return page


def read_header(result: Result, kernel_urls: Sequence[str], cost: str | None) -> Header:
    """The header's facts: the result, those given, and the time the result was stored
    (result.json's modification time, so a page written again later still says when the
    run finished)."""
    stored = result.directory / RESULT_FILE
    finished = stored.stat().st_mtime if stored.exists() else time.time()
    return Header(
        notebook=result.notebook_name,
        backend=result.backend,
        job_id=result.job_id,
        finished=finished,
        run_seconds=sum(v for v in result.timings.values() if isinstance(v, int | float)),
        quota=_quota_used(result),
        cost=cost,
        made_on=_made_on(result.clips),
        kernel_urls=tuple(kernel_urls),
        run_scrap=result.run.to_dict(),
    )


def render_page(result: Result, header: Header) -> str:
    """The whole index.html: players point at the clips relative to the page."""
    title = f"{header.notebook} · {counted(len(result.clips), 'clip')} · job {header.job_id}"
    return "\n".join(
        [
            "<!DOCTYPE html>",
            '<html lang="en"><head><meta charset="utf-8">',
            '<meta name="viewport" content="width=device-width, initial-scale=1">',
            f"<title>{escape(title)}</title>",
            f"<style>\n{PAGE_STYLE}\n</style>",
            "</head><body>",
            f"<h1>{escape(title)}</h1>",
            _header_html(result, header),
            clips_table(result, lambda path: relative_url(path, result.directory)),
            missing_table(result),
            "</body></html>",
            "",
        ]
    )


def notebook_html(result: Result) -> str:
    """The players for Jupyter: sources relative to the kernel's working folder, which
    JupyterLab and Notebook resolve against the notebook's folder (so they play when the
    job folder is inside the folder Jupyter serves, as ./kaggletts-output is)."""
    summary = (
        f"<p><b>{escape(result.notebook_name)}</b>, {escape(result.backend)}, "
        f"{counted(len(result.clips), 'clip')}, {seconds_text(result.audio_seconds)} of audio; "
        f"job {escape(result.job_id)}: <code>{escape(str(result.directory))}</code></p>"
    )
    cwd = Path.cwd()
    return summary + clips_table(result, lambda path: relative_url(path, cwd), inline=True)


def clips_table(result: Result, source: Callable[[Path], str], inline: bool = False) -> str:
    """One row per clip: number, text, player, duration, settings and the rest, RMS and
    warnings. `source` turns a clip's path into the player's (relative) url; `inline`
    styles the cells themselves, for a front end that shows no stylesheet of the page."""
    cell = _CELL_STYLE if inline else ""
    rows = [
        _clip_row(clip.line or number, clip, source(path), inline)
        for number, (clip, path) in enumerate(zip(result.clips, result.audio, strict=True), 1)
    ]
    heads = ("#", "text", "listen", "duration", "settings", "RMS", "warnings")
    return "\n".join(
        [
            '<table class="clips">',
            "<thead><tr>" + "".join(f"<th{cell}>{head}</th>" for head in heads) + "</tr></thead>",
            "<tbody>",
            *rows,
            "</tbody></table>",
        ]
    )


def missing_table(result: Result) -> str:
    """The job's lines that have no clip, with the reason each gave ("" when none)."""
    if not result.missing:
        return ""
    rows = [
        f'<tr class="missing"><td class="number">{line.number}</td>'
        f'<td class="text">{escape(line.text)}</td><td>{escape(line.reason)}</td></tr>'
        for line in result.missing
    ]
    return "\n".join(
        [
            f"<h2>{len(result.missing)} missing {'line' if len(result.missing) == 1 else 'lines'}"
            "</h2>",
            "<p>Running the same request again speaks only these.</p>",
            '<table class="missing">',
            "<thead><tr><th>#</th><th>text</th><th>why</th></tr></thead>",
            "<tbody>",
            *rows,
            "</tbody></table>",
        ]
    )


def render_csv(result: Result) -> str:
    """clips.csv: the known columns first, then any other field a clip carries, in the
    order first seen; settings as key=value pairs, lists and mappings as JSON. A line with
    no clip has a row of its own, with the reason in `missing`."""
    extra: dict[str, None] = {}
    for clip in result.clips:
        extra.update(dict.fromkeys(k for k in clip.to_dict() if k not in _CSV_FIRST))
    columns = [*_CSV_FIRST, *extra, *(["missing"] if result.missing else [])]
    rows = [
        {**clip.to_dict(), "number": clip.line or number}
        for number, clip in enumerate(result.clips, 1)
    ]
    rows += [
        {"number": line.number, "text": line.text, "missing": line.reason}
        for line in result.missing
    ]
    rows.sort(key=lambda row: row["number"] if isinstance(row["number"], int) else 0)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    # The header too: the extra columns are named by the notebook.
    writer.writerow([_formula_safe(name) for name in columns])
    for row in rows:
        writer.writerow([_csv_cell(name, row.get(name)) for name in columns])
    return out.getvalue()


# -- the header ----------------------------------------------------------------------------


def _header_html(result: Result, header: Header) -> str:
    clips = result.clips
    warned = sum(1 for clip in clips if clip.warnings)
    rows: list[tuple[str, str]] = [
        ("notebook", f'{escape(header.notebook)} (<a href="{EXECUTED_NOTEBOOK}">executed '
         "notebook</a>)"),
        ("backend", escape(header.backend)),
    ]
    if header.kernel_urls:
        rows.append(("kernel", "<br>".join(_link(url) for url in header.kernel_urls)))
    rows += [
        ("finished", escape(_time_text(header.finished))),
        ("took", escape(seconds_text(header.run_seconds))),
        ("quota used", escape(header.quota)),
        *([("cost", escape(header.cost))] if header.cost else []),
        *([("made on", escape(header.made_on))] if header.made_on else []),
        (
            "clips",
            f"{len(clips)}, {escape(seconds_text(result.audio_seconds))} of audio"
            + (f"; <b>{warned} with warnings</b>" if warned else "")
            + f' (<a href="{CSV_FILE}">{CSV_FILE}</a>)',
        ),
        ("job", escape(header.job_id)),
    ]
    body = "\n".join(f"<dt>{name}</dt><dd>{value}</dd>" for name, value in rows)
    details = ""
    if header.run_scrap:
        details = (
            "<details><summary>what the notebook recorded about the run</summary>"
            f'<div class="kv">{_key_values(header.run_scrap.items())}</div></details>'
        )
    return f'<dl class="header">\n{body}\n</dl>\n{details}'


def _quota_used(result: Result) -> str:
    """Kaggle counts a GPU session's whole time against the weekly quota; what a result
    knows is each notebook's own run time, so that is given as a lower bound."""
    if result.backend != "kaggle":
        return "none (ran on this machine)"
    runs = result.runs
    seconds = sum(run.total_seconds or 0.0 for run in runs)
    sessions = counted(len(runs), "session")
    return f"at least {seconds_text(seconds)} in {sessions} (plus each session's start-up)"


def _made_on(clips: list[ClipRecord]) -> str | None:
    """Which devices made the clips and how many lines went through one call, as the
    notebooks record it per clip (`device`, `batch`): where a T4 x2 session's work went."""
    devices = Counter(clip.device for clip in clips if clip.device is not None)
    if not devices:
        return None
    made = ", ".join(f"{device} ({count} clip{'' if count == 1 else 's'})"
                     for device, count in sorted(devices.items()))
    batches = [clip.batch for clip in clips if clip.batch is not None]
    return made + (f"; up to {max(batches)} lines per call" if batches else "")


# -- a clip's row --------------------------------------------------------------------------


def _clip_row(number: int, clip: ClipRecord, url: str, inline: bool) -> str:
    warnings = clip.warnings
    extra = [
        (k, v) for k, v in clip.to_dict().items() if k not in _OWN_COLUMNS + tuple(_HIDDEN_ON_PAGE)
    ]
    settings_html = _key_values(sorted(clip.settings.items()))
    if extra:
        settings_html += f'<div class="extra">{_key_values(extra)}</div>'
    warnings_html = (
        '<ul class="warnings">' + "".join(f"<li>{escape(w)}</li>" for w in warnings) + "</ul>"
        if warnings
        else ""
    )
    row_class = ' class="warned"' if warnings else ""
    cell, file_style = (_CELL_STYLE, _FILE_STYLE) if inline else ("", "")
    return (
        f'<tr id="clip-{number}"{row_class}>'
        f'<td class="number"{cell}>{number}</td>'
        f'<td class="text"{cell}>{escape(clip.text)}'
        f'<div class="file"{file_style}>'
        f'<a href="{escape(url)}">{escape(clip.file)}</a></div></td>'
        f'<td{cell}><audio controls preload="none" src="{escape(url)}"></audio></td>'
        f'<td class="num"{cell}>{escape(_number_text(clip.duration, "{:.2f} s"))}</td>'
        f'<td class="kv"{cell}>{settings_html}</td>'
        f'<td class="num"{cell}>{escape(_number_text(clip.rms, "{:.3f}"))}</td>'
        f"<td{cell}>{warnings_html}</td></tr>"
    )


def _key_values(pairs: Iterable[tuple[str, Any]]) -> str:
    # Spaced, so that the pairs stay apart where no stylesheet spaces them.
    return " ".join(
        f"<span>{escape(str(key))}={escape(_value_text(value))}</span>" for key, value in pairs
    )


# -- formatting ----------------------------------------------------------------------------


def escape(text: str) -> str:
    return html.escape(text, quote=True)


def _link(url: str) -> str:
    """A link for web urls only: a url from a server's reply is not trusted to be one."""
    if url.startswith(("https://", "http://")):
        return f'<a href="{escape(url)}">{escape(url)}</a>'
    return escape(url)


def relative_url(path: Path, base: Path) -> str:
    """`path` as a url relative to `base`, percent-encoded (names may hold spaces, # or ?);
    a file:// url where no relative path exists (another drive on Windows)."""
    try:
        relative = os.path.relpath(path, base)
    except ValueError:
        return path.resolve().as_uri()
    return quote(Path(relative).as_posix())


def _value_text(value: Any) -> str:
    if isinstance(value, str):
        text = value
    elif isinstance(value, bool) or value is None:
        text = json.dumps(value)
    elif isinstance(value, float):
        text = f"{value:.4g}"
    elif isinstance(value, int):
        text = str(value)
    else:
        text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= _LONGEST_VALUE else text[: _LONGEST_VALUE - 1] + "…"


def _number_text(value: Any, pattern: str) -> str:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return pattern.format(value)
    return "" if value is None else _value_text(value)


def _csv_cell(name: str, value: Any) -> str:
    if value is None:
        return ""
    if name == "settings" and isinstance(value, dict):
        text = "; ".join(f"{k}={_csv_value(v)}" for k, v in sorted(value.items()))
    elif name == "warnings" and isinstance(value, list):
        text = "; ".join(_csv_value(w) for w in value)
    else:
        text = _csv_value(value)
    return text if _is_number(value) else _formula_safe(text)


def _formula_safe(text: str) -> str:
    """A text such as "=HYPERLINK(...)" would run as a formula when the file is opened."""
    return "'" + text if text.startswith(_FORMULA_STARTS) else text


def _csv_value(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool) or value is None or isinstance(value, list | dict):
        return json.dumps(value, ensure_ascii=False, default=str)
    return str(value)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def seconds_text(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, rest = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {rest:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def _time_text(timestamp: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S %z", time.localtime(timestamp))


def write_text_atomic(path: Path, text: str, encoding: str) -> None:
    """Replace `path` whole: a reader never sees half a page."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        temporary.write_text(text, encoding=encoding)
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
