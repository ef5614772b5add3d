"""Batching: N eSpeak NG utterances in one local run (one kernel start) against N runs of
one utterance each (force=True, fresh output folders), in the same invocation.

The ratio is the single runs' total wall time over the batch's; the goal is at least 10x.
Run as a script to print a table: `python benchmarks/local_batch.py [N]`."""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import kaggletts

GOAL = 10.0


def utterances(count: int) -> list[str]:
    return [f"This is line number {n} of the batch, spoken on its own."
            for n in range(1, count + 1)]


def run(count: int = 50) -> list[dict]:
    lines = utterances(count)
    with tempfile.TemporaryDirectory(prefix="kaggletts-bench-") as tmp:
        root = Path(tmp)
        started = time.perf_counter()
        batch = kaggletts.execute("espeak", {"utterances": lines}, output_dir=root / "batch",
                                  force=True)
        batch_seconds = time.perf_counter() - started
        assert len(batch.audio) == count

        started = time.perf_counter()
        for number, line in enumerate(lines):
            single = kaggletts.execute("espeak", {"text": line},
                                       output_dir=root / f"single-{number}", force=True)
            assert len(single.audio) == 1 and not single.cached
        singles_seconds = time.perf_counter() - started

    ratio = singles_seconds / batch_seconds
    return [{"name": f"{count} utterances: one batch run vs {count} single runs (s)",
             "kaggletts": round(batch_seconds, 3), "baseline": round(singles_seconds, 3),
             "ratio": round(ratio, 1), "goal": f">= {GOAL:g}", "met": ratio >= GOAL}]


if __name__ == "__main__":
    from startup import print_table

    print_table(run(int(sys.argv[1]) if len(sys.argv) > 1 else 50))
