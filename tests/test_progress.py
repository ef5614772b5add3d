"""The kernel's progress lines, parsed, logged, and shown on a terminal: bars on a real
pseudo-terminal of known width, lines on one of unknown size."""

from __future__ import annotations

import contextlib
import fcntl
import io
import logging
import os
import pty
import struct
import subprocess
import sys
import termios
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TextIO

import pytest

from kaggletts.progress import (
    DownloadProgress,
    KernelLines,
    Progress,
    ProgressBars,
    for_terminal,
    parse_progress,
)


def test_progress_lines_are_parsed_and_other_lines_are_not():
    assert parse_progress("[3/24] 003-hi.wav 2.5s", "job") == Progress(
        "job", 3, 24, "003-hi.wav", 2.5
    )
    assert parse_progress("  [1/1] sub/001-x.wav", "job") == Progress("job", 1, 1, "sub/001-x.wav")
    for other in ("done: 3 clips", "[a/b] x", "loaded model in 3.1s", ""):
        assert parse_progress(other, "job") is None


def test_kernel_output_is_logged_line_by_line_with_its_progress(caplog):
    seen: list[Progress] = []
    sink = KernelLines("job-1", on_progress=seen.append)
    caplog.set_level(logging.INFO, logger="kaggletts.kernel")
    sink.write("loading\n[1/2] 001-a.wav 1.0s\n[2/2] 00")
    sink.write("2-b.wav 2.0s")
    sink.flush()
    assert [p.done for p in seen] == [1, 2] and seen[1].file == "002-b.wav"
    assert [r.getMessage().strip() for r in caplog.records] == [
        "loading",
        "[1/2] 001-a.wav 1.0s",
        "[2/2] 002-b.wav 2.0s",
    ]
    assert caplog.records[2].progress == seen[1]


def test_a_terminal_gets_a_bar_named_by_the_notebook_that_names_the_line_just_made():
    with terminal(columns=100) as (stream, shown):
        emit_to(for_terminal(stream), "pushed the kernel", *run_of_three("espeak"))
        text = shown()
    assert text.startswith("pushed the kernel")
    last_draw = text.replace("\r\n", "\n").split("\r")[-1]
    assert last_draw.startswith("espeak: 100%"), last_draw
    assert "3/3" in last_draw and "003-x.wav" in last_draw and "line/s" in last_draw
    assert "kaggletts-espeak" not in text, "the kernel's slug is no name for people"


def test_a_download_bar_counts_bytes_and_files():
    downloads = [
        DownloadProgress(
            "k-1 download", "espeak download", n, 3, n * 700_000, 2_100_000, f"00{n}-x.wav"
        )
        for n in (1, 2, 3)
    ]
    with terminal(columns=120) as (stream, shown):
        handler = for_terminal(stream)
        emit_to(handler, *downloads)
        text = shown()
    last_draw = text.replace("\r\n", "\n").split("\r")[-1]
    assert last_draw.startswith("espeak download: 100%"), last_draw
    assert "2.00M/2.00M" in last_draw and "3/3 files" in last_draw
    assert "line" not in text
    assert isinstance(handler, ProgressBars) and not handler.bars, "a finished bar is closed"


def test_a_terminal_of_unknown_size_gets_lines_instead_of_a_bar():
    # A pty nobody sized (as `docker exec -t` and some CI runners give) reports 0 columns.
    with terminal(columns=0) as (stream, shown):
        emit_to(for_terminal(stream), "pushed the kernel", *run_of_three("espeak shard 1/2"))
        text = shown()
    assert text.splitlines() == [
        "pushed the kernel",
        "espeak shard 1/2: line 1/3 001-x.wav",
        "espeak shard 1/2: line 2/3 002-x.wav",
        "espeak shard 1/2: line 3/3 003-x.wav",
    ]


def test_lines_say_how_far_a_long_download_is_every_tenth_not_every_file():
    stream = io.StringIO()
    emit_to(
        for_terminal(stream),
        *(
            DownloadProgress("k download", "qwen download", n, 40, n * 1500, None, f"{n}.wav")
            for n in range(1, 41)
        ),
    )
    shown = stream.getvalue().splitlines()
    assert len(shown) == 11  # the first file, then every tenth
    assert shown[:2] == ["qwen download: 1/40 files, 1.5 kB", "qwen download: 4/40 files, 6.0 kB"]
    assert shown[-1] == "qwen download: 40/40 files, 60.0 kB"


@pytest.mark.slow
@pytest.mark.parametrize("columns", [100, 0], ids=["sized", "unknown size"])
def test_kaggletts_run_on_a_terminal_names_the_notebook_on_its_bar_or_lines(
    columns: int, tmp_path: Path
) -> None:
    with terminal(columns) as (stream, shown):
        done = subprocess.run(
            [
                str(Path(sys.executable).with_name("kaggletts")),
                "run",
                "espeak",
                "-f",
                "-",
                "--out",
                str(tmp_path),
            ],
            input=b"Hello there.\nA second line.\n",
            stdout=subprocess.DEVNULL,
            stderr=stream,
            timeout=300,
            check=False,
        )
        text = shown()
    assert done.returncode == 0, text
    if columns:
        last_draw = text.replace("\r\n", "\n").split("\r")[-1]
        assert "espeak: 100%" in text and "2/2" in text, text
        assert "espeak: line" not in text, last_draw
    else:
        lines = text.splitlines()
        assert "espeak: line 1/2 001-hello-there.wav" in lines, text
        assert "espeak: line 2/2 002-a-second-line.wav" in lines, text


# -- helpers --------------------------------------------------------------------------------


def run_of_three(label: str) -> list[Progress]:
    slug = "kaggletts-espeak-4e261a286c-1-1"
    return [Progress(slug, done, 3, f"00{done}-x.wav", 1.0, label) for done in (1, 2, 3)]


def emit_to(handler: logging.Handler, *records: str | Progress | DownloadProgress) -> None:
    """Log each message (or progress, with its message) through `handler` alone."""
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger = logging.getLogger("kaggletts.test-progress")
    logger.propagate = False
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        for record in records:
            if isinstance(record, str):
                logger.info(record)
            else:
                logger.info("  progress", extra={"progress": record})
    finally:
        logger.removeHandler(handler)


@contextlib.contextmanager
def terminal(columns: int) -> Iterator[tuple[TextIO, Callable[[], str]]]:
    """A real pseudo-terminal `columns` wide (0: of unknown size), as a text stream, and
    what has been shown on it so far. Its screen is read all along, so that a writer never
    waits on a full buffer."""
    master, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, columns, 0, 0))
    stream = open(follower, "w", encoding="utf-8")  # noqa: SIM115 - closed below
    received = bytearray()

    def read_screen() -> None:
        with contextlib.suppress(OSError):  # EIO once the terminal's other end is closed
            while chunk := os.read(master, 65536):
                received.extend(chunk)

    reader = threading.Thread(target=read_screen, daemon=True)
    reader.start()

    def shown() -> str:
        stream.flush()
        seen = -1
        while seen != len(received):  # until nothing more arrives for a moment
            seen = len(received)
            time.sleep(0.2)
        return received.decode()

    try:
        yield stream, shown
    finally:
        stream.close()
        reader.join(timeout=5)
        os.close(master)
