"""Batching on Kaggle: 100 eSpeak NG utterances against the emulator with a Kaggle-like
latency profile (common.PROFILE), time scaled by common.SCALE.

kaggletts: one session, then sharded over two (shards=2, gpu_sessions=2), with its default
PollSchedule and RetryPolicy scaled by the same factor.
Baseline: the first proof of concept - one kernel run per utterance, one after another, with
the official `KaggleApi` (kernels_push from a folder, kernels_status every 60 s scaled,
kernels_output of everything).

Reported: wall time and GPU-session seconds (RUNNING time incl. cold start, summed over the
emulator's version records), both converted back to Kaggle seconds (divided by SCALE).
Run as a script: `python benchmarks/batching.py [UTTERANCES] [BASELINE_RUNS]`."""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import common

import kaggletts
from kaggletts.result import sha256_of

GOAL = 20.0
UTTERANCES = 100
FIXED_POLL = 60.0
TERMINAL = {"COMPLETE", "ERROR", "CANCEL_ACKNOWLEDGED"}
# Runs of the baseline actually made; the rest is extrapolated linearly (per-run cost is
# constant: every run is the same push, wait, download of one utterance).
BASELINE_RUNS = 20


def utterances(count: int) -> list[str]:
    return [f"Line {n} of the batch, spoken on the emulated Kaggle." for n in range(1, count + 1)]


def run_kaggletts(lines: list[str], root: Path, shards: int) -> dict[str, Any]:
    with common.emulator(root, latency=common.kaggle_latency(), gpu_sessions=2) as emu:
        with common.Timer() as timer:
            result = kaggletts.execute(
                "espeak", {"utterances": lines}, backend="kaggle", output_dir=root / "out",
                **common.backend_options(emu.url, shards=shards, gpu_sessions=shards))
        assert len(result.audio) == len(lines)
        for path, clip in zip(result.audio, result.scraps["clips"], strict=True):
            assert sha256_of(path) == clip["sha256"], path
        return {"wall": timer.seconds, "session": common.session_seconds(emu),
                "pushes": common.pushes(emu), "status_calls": emu.calls["GetKernelSessionStatus"]}


def baseline_folder(folder: Path, slug: str, line: str) -> Path:
    """What the proof of concept pushed: the notebook with its parameters injected by
    papermill, and a kernel-metadata.json."""
    import papermill

    folder.mkdir(parents=True, exist_ok=True)
    notebook = kaggletts.find_notebook("espeak").path
    papermill.execute_notebook(str(notebook), str(folder / "espeak.ipynb"),
                               parameters={"text": line}, prepare_only=True, progress_bar=False,
                               log_output=False)
    metadata = {"id": f"{common.USER}/{slug}", "title": slug.replace("-", " "),
                "code_file": "espeak.ipynb", "language": "python", "kernel_type": "notebook",
                "is_private": True, "enable_gpu": False, "enable_internet": True}
    (folder / "kernel-metadata.json").write_text(json.dumps(metadata), encoding="utf-8")
    return folder


def run_baseline(lines: list[str], root: Path) -> dict[str, Any]:
    slug = "tts-proof-of-concept"
    interval = FIXED_POLL * common.SCALE
    with common.emulator(root, latency=common.kaggle_latency(), gpu_sessions=2) as emu:
        api = common.official_api(emu.url, root / "kaggle-config")
        wavs = 0
        with common.Timer() as timer:
            for number, line in enumerate(lines, 1):
                folder = baseline_folder(root / f"kernel-{number}", slug, line)
                pushed = api.kernels_push(str(folder))
                if pushed.error:
                    raise RuntimeError(pushed.error)
                while True:
                    status = api.kernels_status(f"{common.USER}/{slug}").status.name
                    if status in TERMINAL:
                        break
                    time.sleep(interval)
                if status != "COMPLETE":
                    raise RuntimeError(f"baseline run {number} ended {status}")
                files, _ = api.kernels_output(f"{common.USER}/{slug}", str(root / f"out-{number}"))
                wavs += sum(1 for name in files if name.endswith(".wav"))
        assert wavs == len(lines), (wavs, len(lines))
        return {"wall": timer.seconds, "session": common.session_seconds(emu),
                "pushes": common.pushes(emu),
                "status_calls": emu.calls["GetKernelSessionStatus"]}


def run(count: int = UTTERANCES, baseline_runs: int = BASELINE_RUNS) -> list[dict]:
    lines = utterances(count)
    measured = min(baseline_runs, count)
    with tempfile.TemporaryDirectory(prefix="kaggletts-bench-batching-") as tmp:
        root = Path(tmp)
        one = run_kaggletts(lines, root / "one", shards=1)
        two = run_kaggletts(lines, root / "two", shards=2)
        base = run_baseline(lines[:measured], root / "baseline")
    factor = count / measured
    extrapolated = measured < count
    label = (f"baseline measured for {measured} of {count} runs and extrapolated linearly "
             f"(x{factor:g})" if extrapolated else f"baseline measured for all {count} runs")
    base_wall, base_session = base["wall"] * factor, base["session"] * factor
    scale = common.SCALE
    rows = []
    for name, ours in ((f"one session ({one['pushes']} push)", one),
                       (f"2 shards ({two['pushes']} pushes)", two)):
        note = (f"{label}; {base['pushes']} baseline pushes measured, "
                f"{base['status_calls']} status calls; kaggletts {ours['status_calls']} status "
                f"calls; emulated {ours['wall']:.1f} s wall / "
                f"{ours['session']:.1f} s sessions vs baseline {base_wall:.1f} / "
                f"{base_session:.1f} s")
        rows.append(common.row(f"batching {count} utterances, {name}: wall time",
                               ours["wall"] / scale, base_wall / scale, GOAL,
                               unit="Kaggle s", digits=0, note=note))
        rows.append(common.row(f"batching {count} utterances, {name}: GPU-session seconds",
                               ours["session"] / scale, base_session / scale, GOAL,
                               unit="Kaggle s", digits=0))
    if extrapolated:
        for entry in rows:
            entry["baseline"] = f"{entry['baseline']} (extrapolated)"
    return rows


if __name__ == "__main__":
    args = [int(a) for a in sys.argv[1:]]
    common.print_table(run(*args))
