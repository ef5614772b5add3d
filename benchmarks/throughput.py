"""Throughput of the qwen notebook on the models tier's tiny real Qwen3-TTS (CPU, offline),
side by side in one run, and a projection for a Kaggle T4 x2 session computed from cited
figures.

Measured: LINES lines generated together (batch_size 8) against line by line (batch_size
1), and two worker processes against one on this machine's cores (batch_size 8), each the
notebook's own synthesis time (its `run` scrap; the fastest of REPEATS interleaved runs),
the clips' sha256 compared. The notebook
runs unchanged under papermill, in a kernel shaped like Kaggle's image, against the real
qwen-tts installed by the notebook's own setup code (tests/models/qwen/qwen_image.py), with
a tiny random checkpoint; the measurement runs in a subprocess of its own, so the kernel's
environment stays out of the other benchmarks. The tiny talker never stops early, so every
line is TOKENS codec frames: the figures say what batching and workers do to the notebook's
own loop, not how fast a real model speaks.

Projected (computed, not run: no GPU here): 100 Qwen3-TTS 1.7B lines of about 10 s in one
T4 x2 session against one session per line. Cold start and time per clip at batch size 1
come from the measured P100 run in shared/kaggle.md; the batching gain from published
measurements of the official qwen-tts package on CUDA (see BATCH_GAINS); two GPUs are
taken as twice one, since each runs its own replica in its own process.
Run as a script: `python benchmarks/throughput.py [LINES]` (needs torch, as `nox -s bench`
installs it)."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
MODEL = "Qwen/Qwen3-TTS-12Hz-1.7B-CustomVoice"
LINES = 32
TOKENS = 24
GOAL_BATCHED, GOAL_WORKERS, GOAL_SESSION = 3.0, 1.6, 20.0
# "batched" is also the one-worker baseline of "two workers": the same batches on one device.
RUNS = {"line by line": {"batch_size": 1, "workers": 1},
        "batched": {"batch_size": 8, "workers": 1},
        "two workers": {"batch_size": 8, "workers": 2}}
# Each run is repeated, the runs interleaved, and the fastest kept: this machine is shared,
# and one slow moment should not decide a ratio.
REPEATS = 2

CLIPS, GPUS = 100, 2
# Throughput at the notebook's batch_size 8 over batch size 1, published; none on a T4.
BATCH_GAINS = {
    # dudarenok-maker/Castwright docs/tts-performance.md, clean-VRAM record of 2026-05-26:
    # qwen_tts 0.6B-Base, bfloat16, SDPA, RTX 4070; serial RTF 3.2 and 3.4, one call of 8
    # lines RTF 1.28 (twice). The lower serial figure is taken: 3.2 / 1.28.
    "Castwright: qwen-tts, RTX 4070, batch 8": 3.2 / 1.28,
    # Blaizzy/mlx-audio PR 534: Qwen3-TTS 0.6B on an M3 Max (MLX, not CUDA), 1.42x real time
    # alone, 2.77x with 3 lines together: a lower bound, at batch 3.
    "mlx-audio PR 534: MLX port, M3 Max, batch 3": 2.77 / 1.42,
}


def run(lines: int = LINES, repeats: int = REPEATS) -> list[dict]:
    """The measured rows (from a subprocess running `measure`) and the projection rows."""
    # benchmarks/common.py, imported here rather than at the top: the `measure` subprocess
    # imports the models tier's own `common` module instead.
    import common

    measured = subprocess.run(
        [sys.executable, __file__, "--measure", str(lines), str(repeats)], check=True, text=True,
        stdout=subprocess.PIPE, cwd=ROOT)
    runs = json.loads(measured.stdout.strip().splitlines()[-1])
    seconds = {name: result["synthesis_seconds"] for name, result in runs.items()}
    same_batched = runs["batched"]["sha256"] == runs["line by line"]["sha256"]
    same_workers = runs["two workers"]["sha256"] == runs["batched"]["sha256"]
    shares = {device: runs["two workers"]["devices"].count(device)
              for device in sorted(set(runs["two workers"]["devices"]))}
    return [
        common.row(f"{lines} lines: batched (8 per call) vs line by line, synthesis",
                   seconds["batched"], seconds["line by line"], GOAL_BATCHED, digits=2,
                   note="same seed; " + ("identical audio" if same_batched else
                                         "the audio differs (a batch draws its samples "
                                         "together)")),
        common.row(f"{lines} lines: two workers vs one (batch 8), synthesis",
                   seconds["two workers"], seconds["batched"], GOAL_WORKERS, digits=2,
                   note=f"clips per worker {shares}; identical audio to one worker: "
                        f"{'yes' if same_workers else 'no'} (the models tier asserts it "
                        "with one CPU thread per worker; here each worker gets the cores' "
                        "share of threads and the single worker all of them)"),
        *projection(),
    ]


def projection() -> list[dict]:
    """100 lines in one T4 x2 session against one session per line, in session seconds."""
    import common

    # The measured P100 run (shared/kaggle.md): cold start, and one 10 s clip at batch size 1.
    cold_start, clip = common.COLD_START, common.CLIP_SECONDS
    baseline = CLIPS * (cold_start + clip)
    source = (f"computed: cold start {cold_start:g} s and {clip:g} s per clip at batch "
              "size 1 from the measured P100 run")
    rows = [common.row(f"projection, T4 x2, {CLIPS} lines in one session, one GPU, line by "
                       "line: session seconds", cold_start + CLIPS * clip, baseline,
                       GOAL_SESSION, unit="Kaggle s", digits=0, note=source)]
    for cited, gain in BATCH_GAINS.items():
        rows.append(common.row(
            f"projection, T4 x2, {CLIPS} lines in one session, {GPUS} GPUs, batched (gain "
            f"{gain:.2f}, {cited.partition(':')[0]}): session seconds",
            cold_start + CLIPS * clip / (GPUS * gain), baseline, GOAL_SESSION,
            unit="Kaggle s", digits=0, note=f"{source}; batching gain {gain:.2f} ({cited}); "
                                             f"{GPUS} GPUs as {GPUS} x one"))
    return rows


def measure(lines: int, repeats: int) -> dict:
    """Each run's fastest synthesis seconds, clip hashes and devices, in this process (a
    subprocess of `run`): the notebook's kernels read the environment set here."""
    sys.path[:0] = [str(ROOT / "tests" / "models"), str(ROOT / "tests" / "models" / "qwen")]
    # The models tier's modules, found on the path just set; mypy checks them with the tests
    # and reads `common` here as benchmarks/common.py.
    import pytest
    from common import hf_snapshot, kaggle_kernel  # type: ignore[attr-defined]
    from qwen_image import provide_qwen_image  # type: ignore[import-not-found]

    import kaggletts

    provide_qwen_image()
    from tiny_checkpoints import TinyModel, build  # type: ignore[import-not-found]

    texts = [f"Line {n}: " + "word " * (1 + n % 5) for n in range(1, lines + 1)]
    with tempfile.TemporaryDirectory() as folder, pytest.MonkeyPatch.context() as mp:
        tmp = Path(folder)
        hf_snapshot(tmp / "hf", MODEL, lambda snapshot: build(TinyModel(MODEL), snapshot))
        kaggle_kernel(mp, tmp / "kernel", tmp / "hf")
        results: dict[str, dict[str, Any]] = {}
        for repeat in range(repeats):
            for name, params in RUNS.items():
                result = kaggletts.execute(
                    "qwen", {"model_id": MODEL, "utterances": texts, "max_new_tokens": TOKENS,
                             **params}, backend="local", output_dir=tmp / f"{name} {repeat}")
                seconds = result.scraps["run"]["synthesis_seconds"]
                if name in results and results[name]["synthesis_seconds"] <= seconds:
                    continue
                results[name] = {
                    "synthesis_seconds": seconds,
                    "sha256": [clip.sha256 for clip in result.clips],
                    "devices": [clip.device for clip in result.clips]}
    return results


if __name__ == "__main__":
    if sys.argv[1:2] == ["--measure"]:
        print(json.dumps(measure(*map(int, sys.argv[2:4]))))
    else:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        import common

        common.print_table(run(*map(int, sys.argv[1:])))
