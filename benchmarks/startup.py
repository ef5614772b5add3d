"""Start-up cost: `kaggletts --help` against `kaggle --help`, and `import kaggletts` against
`import papermill`, measured in the same invocation, interleaved, several times each.

Each row's ratio is kaggletts' median wall time over the baseline's; the goal is at most
half. Run as a script to print a table: `python benchmarks/startup.py [REPEATS]`."""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from pathlib import Path

GOAL = 0.5
BIN = Path(sys.executable).parent


def wall_time(command: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - started


def compare(name: str, ours: list[str], baseline: list[str], repeats: int) -> dict:
    wall_time(ours), wall_time(baseline)  # warm the file cache for both
    times: dict[str, list[float]] = {"ours": [], "baseline": []}
    for _ in range(repeats):
        times["ours"].append(wall_time(ours))
        times["baseline"].append(wall_time(baseline))
    mine, theirs = statistics.median(times["ours"]), statistics.median(times["baseline"])
    ratio = mine / theirs
    return {"name": name, "kaggletts": round(mine, 4), "baseline": round(theirs, 4),
            "ratio": round(ratio, 3), "goal": f"<= {GOAL}", "met": ratio <= GOAL}


def run(repeats: int = 7) -> list[dict]:
    python = sys.executable
    return [
        compare("kaggletts --help vs kaggle --help (s)",
                [str(BIN / "kaggletts"), "--help"], [str(BIN / "kaggle"), "--help"], repeats),
        compare("import kaggletts vs import papermill (s)",
                [python, "-c", "import kaggletts"], [python, "-c", "import papermill"], repeats),
    ]


def print_table(rows: list[dict]) -> None:
    columns = ["name", "kaggletts", "baseline", "ratio", "goal", "met"]
    widths = {c: max(len(c), *(len(str(r[c])) for r in rows)) for c in columns}
    print("  ".join(c.ljust(widths[c]) for c in columns))
    for row in rows:
        print("  ".join(str(row[c]).ljust(widths[c]) for c in columns))


if __name__ == "__main__":
    print_table(run(int(sys.argv[1]) if len(sys.argv) > 1 else 7))
