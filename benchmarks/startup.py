"""Start-up cost, measured in the same invocation, interleaved, several times each:

- `kaggletts --help` against `kaggle --help` (the official CLI's help);
- `import kaggletts` against `import papermill`: what a script pays to load kaggletts, which
  imports papermill only when it runs a notebook, against loading the library a user
  without kaggletts would run notebooks with. It measures the lazy import, not a run;
- `import kaggletts, papermill, scrapbook` against `import papermill, scrapbook`: what
  kaggletts adds on top of the libraries any local run loads (the fair comparison for a
  run: both sides load papermill).

Each row's ratio is kaggletts' median wall time over the baseline's (smaller is better);
the goal is at most half for the first two, at most 1.2 for the third.
Run as a script to print a table: `python benchmarks/startup.py [REPEATS]`."""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from pathlib import Path

GOAL = 0.5
ADDED_GOAL = 1.2
BIN = Path(sys.executable).parent


def wall_time(command: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - started


def compare(name: str, ours: list[str], baseline: list[str], repeats: int,
            goal: float = GOAL) -> dict:
    wall_time(ours), wall_time(baseline)  # warm the file cache for both
    times: dict[str, list[float]] = {"ours": [], "baseline": []}
    for _ in range(repeats):
        times["ours"].append(wall_time(ours))
        times["baseline"].append(wall_time(baseline))
    mine, theirs = statistics.median(times["ours"]), statistics.median(times["baseline"])
    ratio = mine / theirs
    return {"name": name, "kaggletts": round(mine, 4), "baseline": round(theirs, 4),
            "ratio": round(ratio, 3), "goal": f"<= {goal:g}", "met": ratio <= goal,
            "unit": "s"}


def run(repeats: int = 7) -> list[dict]:
    python = sys.executable
    return [
        compare("kaggletts --help vs kaggle --help (s)",
                [str(BIN / "kaggletts"), "--help"], [str(BIN / "kaggle"), "--help"], repeats),
        compare("import kaggletts (lazy: no papermill) vs import papermill (s)",
                [python, "-c", "import kaggletts"], [python, "-c", "import papermill"], repeats),
        compare("import kaggletts + papermill + scrapbook vs papermill + scrapbook (s)",
                [python, "-c", "import kaggletts, papermill, scrapbook"],
                [python, "-c", "import papermill, scrapbook"], repeats, ADDED_GOAL),
    ]


def print_table(rows: list[dict]) -> None:
    columns = ["name", "kaggletts", "baseline", "ratio", "goal", "met"]
    widths = {c: max(len(c), *(len(str(r[c])) for r in rows)) for c in columns}
    print("  ".join(c.ljust(widths[c]) for c in columns))
    for row in rows:
        print("  ".join(str(row[c]).ljust(widths[c]) for c in columns))


if __name__ == "__main__":
    print_table(run(int(sys.argv[1]) if len(sys.argv) > 1 else 7))
