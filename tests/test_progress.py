"""The kernel's progress lines, parsed, logged and drawn as a bar on a terminal."""

from __future__ import annotations

import io
import logging

from kaggletts.progress import KernelLines, Progress, TerminalProgress, parse_progress


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


def test_a_terminal_gets_a_bar_that_names_the_line_just_made():
    stream = io.StringIO()
    handler = TerminalProgress(stream)
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger = logging.getLogger("kaggletts.test-progress")
    logger.propagate = False
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        logger.info("pushed the kernel")
        for done in (1, 2, 3):
            logger.info("line", extra={"progress": Progress("job", done, 3, f"00{done}-x.wav")})
    finally:
        logger.removeHandler(handler)
    shown = stream.getvalue()
    assert shown.startswith("pushed the kernel\n")
    assert "3/3" in shown and "003-x.wav" in shown and "line/s" in shown
    assert not handler.bars, "a finished bar is closed"
