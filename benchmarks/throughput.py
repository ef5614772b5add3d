"""Throughput of the qwen notebook on the models tier's tiny real Qwen3-TTS (CPU, offline),
side by side in one run, plus a computed projection for a Kaggle T4 x2 session.

Measured: 32 lines generated together (batch_size 8) against line by line (batch_size 1),
and two worker processes against one on this machine's cores, each the notebook's own
synthesis time (its `run` scrap), with the clips' sha256 compared. Run inside the qwen
models environment (`nox -s "models(family='qwen')"` makes it):
`.nox/models-family-qwen/bin/python benchmarks/throughput.py` writes its section of
benchmarks/RESULTS.md.

The tiny talker never stops early, so every line is `TOKENS` codec frames: the numbers
say what batching and workers do to the notebook's own loop, not how fast a real model
speaks."""

from __future__ import annotations

import re
import sys
import tempfile
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "tests" / "models"), str(ROOT / "tests" / "models" / "qwen")]

from common import hf_snapshot, kaggle_kernel  # noqa: E402
from tiny_checkpoints import TinyModel, build  # noqa: E402

import kaggletts  # noqa: E402

MODEL = "Qwen/Qwen3-TTS-12Hz-1.7B-CustomVoice"
LINES = [f"Line {n}: " + "word " * (1 + n % 5) for n in range(1, 33)]
TOKENS = 24
RESULTS = ROOT / "benchmarks" / "RESULTS.md"
SECTION = "## throughput (qwen models tier)"

# Published and measured figures for the projection (computed, not run).
COLD_START = 114.0  # s: pip installs 79 + model load 35, the measured P100 run (shared/kaggle.md)
CLIP_SECONDS = 26.0  # s of one 10 s clip at batch size 1, same run
# Batched throughput over batch size 1, from Blaizzy/mlx-audio PR 534 (Qwen3-TTS 0.6B, M3
# Max): 1.42x real time alone, 2.77x with 3 lines together. Taken as the gain at
# batch_size 8 on a T4, which is a lower bound if batching keeps scaling past 3.
BATCH_GAIN = 2.77 / 1.42
GPUS = 2
CLIPS = 100


def run(tmp: Path, name: str, **params) -> kaggletts.Result:
    return kaggletts.execute("qwen", {"model_id": MODEL, "utterances": LINES,
                                      "max_new_tokens": TOKENS, **params},
                             backend="local", output_dir=tmp / name)


def measure() -> list[dict]:
    with tempfile.TemporaryDirectory() as folder, pytest.MonkeyPatch.context() as mp:
        tmp = Path(folder)
        hf_snapshot(tmp / "hf", MODEL, lambda f: build(TinyModel(MODEL), f))
        kaggle_kernel(mp, tmp / "kernel", tmp / "hf")
        runs = {name: run(tmp, name, **params) for name, params in {
            "line by line": {"batch_size": 1}, "batched": {"batch_size": 8},
            "one worker": {"batch_size": 8, "workers": 1},
            "two workers": {"batch_size": 8, "workers": 2}}.items()}
    seconds = {name: result.scraps["run"]["synthesis_seconds"] for name, result in runs.items()}
    sha = {name: [c["sha256"] for c in result.clips] for name, result in runs.items()}
    shares = sorted({c["device"] for c in runs["two workers"].clips})
    return [
        row("32 lines: batched (8 per call) vs line by line, synthesis", seconds["batched"],
            seconds["line by line"], ">= 3", 3, "s",
            "same seed; the audio differs (a batch draws its samples together)"
            if sha["batched"] != sha["line by line"] else "identical audio"),
        row("32 lines: two workers vs one (batch 8), synthesis", seconds["two workers"],
            seconds["one worker"], ">= 1.6", 1.6, "s",
            f"devices {', '.join(shares)}; identical audio to one worker: "
            f"{'yes' if sha['two workers'] == sha['one worker'] else 'NO'}"),
    ]


def row(name, ours, baseline, goal, bound, unit, note):
    ratio = baseline / ours
    return {"name": name, "ours": f"{ours:.2f}", "baseline": f"{baseline:.2f}",
            "ratio": f"{ratio:.2f}", "goal": goal, "met": "yes" if ratio >= bound else "**NO**",
            "unit": unit, "note": note}


def projection() -> list[dict]:
    """100 Qwen 1.7B lines of about 10 s: one T4 x2 session against one session per line."""
    per_line = COLD_START + CLIP_SECONDS  # the baseline's session time for each line
    baseline = CLIPS * per_line
    one_gpu_unbatched = COLD_START + CLIPS * CLIP_SECONDS
    ours = COLD_START + CLIPS * CLIP_SECONDS / (GPUS * BATCH_GAIN)
    note = (f"computed: cold start {COLD_START:.0f} s and {CLIP_SECONDS:.0f} s per clip from the "
            f"measured P100 run; batching gain {BATCH_GAIN:.2f} (mlx-audio PR 534), {GPUS} GPUs")
    return [
        row("projection, T4 x2, 100 lines, one session, 1 GPU, line by line: session seconds",
            one_gpu_unbatched, baseline, ">= 20", 20, "Kaggle s", note),
        row("projection, T4 x2, 100 lines, one session, 2 GPUs, batched: session seconds",
            ours, baseline, ">= 20", 20, "Kaggle s", note),
    ]


def write(rows: list[dict], took: float) -> None:
    lines = [SECTION, "",
             f"Measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} in "
             f"{took:.0f} s on this machine's CPU cores with the tiny real Qwen3-TTS "
             f"(`python benchmarks/throughput.py` in the qwen models environment). Ratios are "
             "baseline / kaggletts; the projection rows are computed from cited figures, not "
             "run: no GPU was used.", "",
             "| name | kaggletts | baseline | ratio | goal | met | unit |",
             "|---|---|---|---|---|---|---|"]
    lines += [f"| {r['name']} | {r['ours']} | {r['baseline']} | {r['ratio']} | {r['goal']} | "
              f"{r['met']} | {r['unit']} |" for r in rows]
    lines += [""] + [f"- {r['name']}: {r['note']}" for r in rows] + [""]
    text = RESULTS.read_text(encoding="utf-8") if RESULTS.exists() else ""
    section = "\n".join(lines)
    pattern = re.compile(re.escape(SECTION) + r".*?(?=\n## |\Z)", re.S)
    text = pattern.sub(lambda _: section.rstrip("\n") + "\n", text) if SECTION in text else (
        text.rstrip("\n") + "\n\n" + section)
    RESULTS.write_text(text, encoding="utf-8")


def main() -> None:
    started = time.perf_counter()
    rows = measure() + projection()
    for r in rows:
        print(f"{r['name']}: {r['ours']} vs {r['baseline']} {r['unit']} -> {r['ratio']}x "
              f"({r['goal']}: {r['met']}); {r['note']}")
    write(rows, time.perf_counter() - started)


if __name__ == "__main__":
    main()
