"""Detection: how long after a session completes the client notices, and how many status
calls that costs, for kaggletts' PollSchedule against fixed 3 s and fixed 60 s polling.

Short runs (about 10 s): measured against the emulator's real sessions. Several tiny
notebooks run at once; three pollers watch each session from its push on, each with one
schedule and kaggletts' own status call (KaggleRemote.status: the kernel's newest session,
which is the one pushed, as every kaggletts push has a kernel of its own). The delay is
the moment a poller's status reply said COMPLETE minus the version's `finished_at` record.
Times run at DETECTION_SCALE (an emulated session cannot be shorter than papermill's start,
about 2 s, so the suite's 1/50 would make a "10 s run" impossible) and are reported in
Kaggle seconds. Each notebook sleeps until a wall-clock moment fixed at its push, so the
runs last 9-11 Kaggle seconds whatever the kernel's start took.

Long runs (10 min) and the first minute: computed exactly from the schedule functions with
the same loop the backend runs (status at once, then wait `interval(elapsed)`), averaged over
completion times spread evenly across 570-630 s.
Run as a script: `python benchmarks/detection.py`."""

from __future__ import annotations

import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import common
import nbformat

from kaggletts.backends.kaggle.polling import PollSchedule
from kaggletts.backends.kaggle.remote import KaggleRemote
from kaggletts.backends.kaggle.retry import RetryPolicy

DETECTION_SCALE = 1 / 2
# Seconds between papermill finishing the notebook and the emulator marking it COMPLETE.
FINISH_SECONDS = 0.3
STAGGER = 1.5
SHORT_RUN = 10.0
LONG_RUN = 600.0
LONG_DELAY_GOAL = 0.05 * LONG_RUN
SCHEDULES = {
    "kaggletts": PollSchedule(),
    "fixed 3 s": PollSchedule(first=3.0, fraction=0.0, cap=3.0),
    "fixed 60 s": PollSchedule(first=60.0, fraction=0.0, cap=60.0),
}


def poll_times(schedule: PollSchedule, until: float) -> list[float]:
    """Moments (since the push) of the status calls, up to the first at or after `until`."""
    times, elapsed = [0.0], 0.0
    while elapsed < until:
        elapsed += schedule.interval(elapsed)
        times.append(elapsed)
    return times


def simulate(schedule: PollSchedule, finished_at: float) -> tuple[float, int]:
    """(detection delay, status calls) when the run completes `finished_at` s after the push."""
    times = poll_times(schedule, finished_at)
    return times[-1] - finished_at, len(times)


def simulate_spread(schedule: PollSchedule, centre: float, spread: float = 0.05,
                    samples: int = 601) -> tuple[float, float]:
    """Mean delay and mean calls over completion times spread evenly over centre +- spread."""
    low = centre * (1 - spread)
    step = 2 * centre * spread / (samples - 1)
    results = [simulate(schedule, low + i * step) for i in range(samples)]
    return (statistics.mean(d for d, _ in results), statistics.mean(c for _, c in results))


def calls_in_first_minute(schedule: PollSchedule) -> int:
    return sum(1 for t in poll_times(schedule, 60.0) if t < 60.0)


def tiny_notebook(finish_at: float) -> str:
    """A notebook that ends at the wall-clock time `finish_at`, however long the kernel took
    to start, so its session lasts what the benchmark wants."""
    notebook = nbformat.v4.new_notebook()
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3"}
    notebook.cells = [nbformat.v4.new_code_cell(
        f"import time\ntime.sleep(max(0.0, {finish_at!r} - time.time()))")]
    return nbformat.writes(notebook)


def push(remote: KaggleRemote, folder: Path, slug: str, seconds: float) -> int:
    """Push a run meant to complete `seconds` (real) after the push."""
    import json

    folder.mkdir(parents=True, exist_ok=True)
    finish_at = time.time() + seconds - FINISH_SECONDS
    (folder / "run.ipynb").write_text(tiny_notebook(finish_at), encoding="utf-8")
    (folder / "kernel-metadata.json").write_text(json.dumps({
        "id": f"{common.USER}/{slug}", "title": slug.replace("-", " "), "code_file": "run.ipynb",
        "language": "python", "kernel_type": "notebook", "is_private": True,
        "enable_gpu": False, "enable_internet": False}), encoding="utf-8")
    return remote.push(folder).version


def watch(remote: KaggleRemote, slug: str, schedule: PollSchedule, out: dict[str, Any]) -> None:
    """kaggletts' wait loop (backends/kaggle/wait.py, wait_until_ended) with `schedule`."""
    started = time.monotonic()
    calls = 0
    while True:
        status = remote.status(slug)
        calls += 1
        if status is not None and status.ended:
            out.update(noticed=time.time(), calls=calls, state=status.state)
            return
        time.sleep(schedule.interval(time.monotonic() - started))


def measure_short_runs(sessions: int) -> dict[str, Any]:
    scale = DETECTION_SCALE
    scaled = {name: s.scaled(scale) for name, s in SCHEDULES.items()}
    # Runs of 9-11 Kaggle seconds, spread evenly.
    lengths = [SHORT_RUN * (0.9 + 0.2 * i / max(sessions - 1, 1)) for i in range(sessions)]
    with tempfile.TemporaryDirectory(prefix="kaggletts-bench-detect-") as tmp, \
            common.emulator(Path(tmp), gpu_sessions=sessions) as emu:
        remote = KaggleRemote(common.credentials(), emu.url, RetryPolicy().scaled(scale))
        watchers: list[tuple[str, str, int, dict[str, Any], threading.Thread]] = []
        for index, length in enumerate(lengths):
            if index:
                time.sleep(STAGGER)  # kernels starting together on 2 cores start slowly
            slug = f"detect-short-{index}"
            version = push(remote, Path(tmp) / slug, slug, length * scale)
            for name, schedule in scaled.items():
                out: dict[str, Any] = {}
                thread = threading.Thread(target=watch, args=(remote, slug, schedule, out),
                                          daemon=True)
                thread.start()
                watchers.append((name, slug, version, out, thread))
        for *_, thread in watchers:
            thread.join(timeout=120)
        delays: dict[str, list[float]] = {name: [] for name in scaled}
        calls: dict[str, list[int]] = {name: [] for name in scaled}
        durations = []
        for name, slug, version, out, _ in watchers:
            record = emu.version(common.USER, slug, version)
            assert out.get("state") == "COMPLETE" and record.finished_at is not None, (
                slug, out, record.failure_message)
            delays[name].append((out["noticed"] - record.finished_at) / scale)
            calls[name].append(out["calls"])
            if name == "kaggletts":
                durations.append((record.finished_at - record.created_at) / scale)
    return {"delay": {n: statistics.mean(v) for n, v in delays.items()},
            "worst": {n: max(v) for n, v in delays.items()},
            "calls": {n: statistics.mean(v) for n, v in calls.items()},
            "durations": durations}


def run(sessions: int = 4) -> list[dict]:
    short = measure_short_runs(sessions)
    durations = short["durations"]
    span = f"{min(durations):.1f}-{max(durations):.1f} s"
    rows = []
    ours, fixed3, fixed60 = (short["delay"][n] for n in SCHEDULES)
    rows.append(common.check(
        "detection delay, short runs (measured), mean", round(ours, 2), "<= 2 s", ours <= 2.0,
        baseline=f"3 s: {fixed3:.2f} / 60 s: {fixed60:.2f}",
        ratio=f"{fixed3 / ours:.2f} / {fixed60 / ours:.2f}", unit="Kaggle s",
        note=(f"{sessions} sessions of {span} (push to completion, Kaggle seconds), time scale "
              f"1/{1 / DETECTION_SCALE:g}; worst kaggletts delay {short['worst']['kaggletts']:.2f}"
              f" s; ratio = fixed / kaggletts")))
    ours, fixed3, fixed60 = (short["calls"][n] for n in SCHEDULES)
    rows.append(common.check(
        "status calls until noticed, short runs (measured), mean", round(ours, 2),
        "<= 2 x fixed 3 s", ours <= 2 * fixed3,
        baseline=f"3 s: {fixed3:.2f} / 60 s: {fixed60:.2f}",
        ratio=f"{fixed3 / ours:.2f} / {fixed60 / ours:.2f}", unit="calls",
        note="the price of noticing within 2 s: at most twice the calls of polling every 3 s"))
    sim = {n: simulate_spread(s, SHORT_RUN, spread=0.2) for n, s in SCHEDULES.items()}
    ours, fixed3, fixed60 = (sim[n][0] for n in SCHEDULES)
    rows.append(common.check(
        "detection delay, short runs (simulated, 8-12 s), mean", round(ours, 2), "<= 2 s",
        ours <= 2.0, baseline=f"3 s: {fixed3:.2f} / 60 s: {fixed60:.2f}",
        ratio=f"{fixed3 / ours:.2f} / {fixed60 / ours:.2f}", unit="Kaggle s",
        note="cross-check of the measurement, computed from the schedule functions"))
    first = {n: calls_in_first_minute(s) for n, s in SCHEDULES.items()}
    rows.append(common.check(
        "status calls in the first minute (schedule)", first["kaggletts"], "<= fixed 3 s",
        first["kaggletts"] <= first["fixed 3 s"],
        baseline=f"3 s: {first['fixed 3 s']} / 60 s: {first['fixed 60 s']}",
        ratio=f"{first['fixed 3 s'] / first['kaggletts']:.2f}", unit="calls"))
    sim = {n: simulate_spread(s, LONG_RUN) for n, s in SCHEDULES.items()}
    per15 = {n: calls * 15 / LONG_RUN for n, (_, calls) in sim.items()}
    rows.append(common.check(
        "status calls per 15 s, long runs (10 min, simulated)", round(per15["kaggletts"], 3),
        "<= 1", per15["kaggletts"] <= 1.0,
        baseline=f"3 s: {per15['fixed 3 s']:.2f} / 60 s: {per15['fixed 60 s']:.3f}",
        ratio=f"{per15['fixed 3 s'] / per15['kaggletts']:.2f} / "
              f"{per15['fixed 60 s'] / per15['kaggletts']:.2f}", unit="calls",
        note=(f"mean calls per run: kaggletts {sim['kaggletts'][1]:.1f}, fixed 3 s "
              f"{sim['fixed 3 s'][1]:.1f}, fixed 60 s {sim['fixed 60 s'][1]:.1f}")))
    ours, fixed3, fixed60 = (sim[n][0] for n in SCHEDULES)
    rows.append(common.check(
        "detection delay, long runs (10 min, simulated), mean", round(ours, 2),
        f"<= {LONG_DELAY_GOAL:g} s", ours <= LONG_DELAY_GOAL,
        baseline=f"3 s: {fixed3:.2f} / 60 s: {fixed60:.2f}", unit="Kaggle s",
        ratio=f"{fixed3 / ours:.2f} / {fixed60 / ours:.2f}",
        note="goal: 5% of the run, with fewer than one call per 15 s (the row above)"))
    return rows


if __name__ == "__main__":
    common.print_table(run())
