"""Shared helpers for the benchmarks: the time scale and Kaggle-like latency profile, an
emulator with that profile, a scaled KaggleBackend configuration, the official `KaggleApi`
pointed at an emulator, timing, result rows and markdown tables."""

from __future__ import annotations

import os
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from kaggletts.backends.kaggle import KaggleBackend
from kaggletts.backends.kaggle.credentials import Credentials
from kaggletts.backends.kaggle.polling import PollSchedule
from kaggletts.backends.kaggle.retry import RetryPolicy
from kaggletts.emulator import Emulator, Faults, Latency, Quirks

# One emulated second stands for 1/SCALE seconds on Kaggle.
SCALE = 1 / 50
# The measured real run in docs (shared/kaggle.md): pip installs 79 s + model load 35 s.
COLD_START = 79.0 + 35.0
# A 10 s clip took 26 s of synthesis on the measured run.
CLIP_SECONDS = 26.0
# Queueing was not recorded; 170 s whole kernel - (79 + 35 + 26) s = 30 s left unexplained,
# taken as the queue delay.
QUEUE_DELAY = 30.0
PROFILE = (f"queue_delay {QUEUE_DELAY:g} s, cold_start {COLD_START:g} s (Kaggle seconds), "
           f"time scale 1/{1 / SCALE:g}: emulated queue_delay {QUEUE_DELAY * SCALE:.2f} s, "
           f"cold_start {COLD_START * SCALE:.2f} s")

USER, KEY = "bench", "bench-secret-key-5b21"


def kaggle_latency(scale: float = SCALE, request_delay: float = 0.0) -> Latency:
    return Latency(queue_delay=QUEUE_DELAY * scale, cold_start=COLD_START * scale,
                   request_delay=request_delay)


@contextmanager
def emulator(root: Path | None = None, *, latency: Latency | None = None,
             faults: Faults | None = None, quirks: Quirks | None = None,
             gpu_sessions: int = 2, seed: int | None = 1) -> Iterator[Emulator]:
    with tempfile.TemporaryDirectory(prefix="kaggletts-bench-emu-") as tmp:
        state = (root or Path(tmp)) / "state"
        with Emulator(state_dir=state, users={USER: KEY}, gpu_sessions=gpu_sessions,
                      seed=seed, latency=latency, faults=faults, quirks=quirks) as running:
            yield running


def credentials() -> Credentials:
    return Credentials(USER, key=KEY)


def backend_options(endpoint: str, scale: float = SCALE, **overrides: Any) -> dict[str, Any]:
    """kaggletts' own defaults (poll schedule, retries, waits) scaled by `scale`, against the
    emulator at `endpoint`. Kernels are kept: the benchmarks count the versions in them, and
    the backend would delete a job's kernels once its result is safe."""
    options: dict[str, Any] = {
        "endpoint": endpoint,
        "credentials": credentials(),
        "poll": PollSchedule().scaled(scale),
        "retry": RetryPolicy().scaled(scale),
        "cap_wait": 30.0 * scale,
        "settle_wait": KaggleBackend.settle_wait * scale,
        "outputs_wait": 300.0,
        "keep_kernels": True,
    }
    options.update(overrides)
    return options


def pushes(emu: Emulator, owner: str = USER) -> int:
    """Versions created across all of `owner`'s kernels: every push that reached the
    emulator, whether or not its reply came back (kaggletts pushes each attempt to a kernel
    of its own, so a per-slug count would miss a second push)."""
    with emu.store.lock:
        return sum(len(k.versions) for k in emu.store.kernels.values() if k.owner == owner)


def pushes_per_job(emu: Emulator, owner: str = USER) -> Counter[str]:
    """Versions created per job, keyed by the job-id prefix in kaggletts' kernel slugs
    (`kaggletts-<notebook>-<job id[:10]>-<shard>-<attempt>`)."""
    counts: Counter[str] = Counter()
    with emu.store.lock:
        for kernel in emu.store.kernels.values():
            if kernel.owner == owner:
                job = kernel.slug.rsplit("-", 2)[0]
                counts[job] += len(kernel.versions)
    return counts


def official_api(url: str, config_dir: Path) -> Any:
    """The unchanged `KaggleApi`, authenticated as USER, talking to the emulator at `url`."""
    os.environ["KAGGLE_USERNAME"], os.environ["KAGGLE_KEY"] = USER, KEY
    os.environ["KAGGLE_CONFIG_DIR"] = str(config_dir)
    os.environ.pop("KAGGLE_API_TOKEN", None)
    config_dir.mkdir(parents=True, exist_ok=True)
    from kaggle.api.kaggle_api_extended import KaggleApi

    class EmulatorKaggleApi(KaggleApi):
        def build_kaggle_client(self):
            client = super().build_kaggle_client()
            client._http_client._endpoint = url
            return client

    api = EmulatorKaggleApi()
    api.authenticate()
    return api


def session_seconds(emu: Emulator) -> float:
    """GPU-session seconds: RUNNING time (cold start included) summed over every version."""
    total = 0.0
    with emu.store.lock:
        for kernel in emu.store.kernels.values():
            for version in kernel.versions:
                if version.started_at and version.finished_at:
                    total += version.finished_at - version.started_at
    return total


class Timer:
    def __enter__(self) -> Timer:
        self.started = time.perf_counter()
        self.seconds = 0.0
        return self

    def __exit__(self, *_: object) -> None:
        self.seconds = time.perf_counter() - self.started


def row(name: str, ours: float, baseline: float, goal: float, *, lower_is_better: bool = True,
        unit: str = "s", note: str = "", digits: int = 3) -> dict[str, Any]:
    """A result row. The ratio is always oriented so that bigger is better for kaggletts
    when `lower_is_better` (baseline / kaggletts), else kaggletts / baseline."""
    if lower_is_better:
        ratio = baseline / ours if ours else float("inf")
    else:
        ratio = ours / baseline if baseline else float("inf")
    return {"name": name, "kaggletts": round(ours, digits), "baseline": round(baseline, digits),
            "ratio": round(ratio, 2), "goal": f">= {goal:g}", "met": ratio >= goal,
            "unit": unit, "note": note}


def check(name: str, value: Any, goal: str, met: bool | None, *, baseline: Any = "-",
          ratio: Any = "-", unit: str = "", note: str = "") -> dict[str, Any]:
    """A row whose goal is not a ratio (a count, a bound)."""
    return {"name": name, "kaggletts": value, "baseline": baseline, "ratio": ratio,
            "goal": goal, "met": None if met is None else bool(met), "unit": unit,
            "note": note}


COLUMNS = ("name", "kaggletts", "baseline", "ratio", "goal", "met", "unit")


def markdown_table(rows: list[dict[str, Any]]) -> str:
    def cell(value: Any) -> str:
        if isinstance(value, bool):
            return "yes" if value else "**NO**"
        if value is None:
            return "n/a"
        return str(value).replace("|", "\\|")

    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(cell(r.get(c, "")) for c in COLUMNS) + " |" for r in rows]
    notes = [f"- {r['name']}: {r['note']}" for r in rows if r.get("note")]
    return "\n".join(lines + ([""] + notes if notes else []))


def print_table(rows: list[dict[str, Any]]) -> None:
    print(markdown_table(rows))
