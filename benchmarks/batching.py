"""Batching on Kaggle: 100 eSpeak NG utterances against the emulator with a Kaggle-like
latency profile (common.PROFILE), time scaled by common.SCALE.

kaggletts: one session, then sharded over two (shards=2, gpu_sessions=2), with its default
PollSchedule and RetryPolicy scaled by the same factor (`cache=False`: every line spoken).
Baseline: what a careful user does without kaggletts, measured in full - ONE hand-written
notebook that loops over all the lines and speaks each with eSpeak NG the way the espeak
notebook does (the same engine, voice, rate and pitch), writing one WAV per line; pushed
with the official CLI (`kaggle kernels push -p DIR`), polled with `kaggle kernels status`
every USER_POLL Kaggle seconds (scaled), and downloaded with `kaggle kernels output`. The
unchanged CLI reaches the emulator as docs/emulator.md says (KAGGLE_API_ENVIRONMENT=LOCALHOST
with the emulator as its HTTP proxy).

Reported: wall time and session seconds (RUNNING time incl. cold start, summed over the
emulator's version records), both converted back to Kaggle seconds (divided by SCALE). Each
CLI call starts a Python process (about a second here, measured as the median of
`kaggle --help`), real time that the time scale cannot shrink: the push's and the output's
starts, which lie before and after the session, are counted once in the baseline's wall time
rather than x 1/SCALE; the status calls' starts overlap the session and stay as measured
(they stretch the user's polling period to at least one CLI call). kaggletts runs in this
process and gets no such correction (its own work on the client counts x 1/SCALE).
Run as a script: `python benchmarks/batching.py [UTTERANCES]`."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import common
import nbformat

import kaggletts
from kaggletts.result import sha256_of

# One session either way: kaggletts must not cost more than the hand-written notebook, and
# its own support code (ledger, verification) at most a tenth more session time.
WALL_GOAL = 1.0
SESSION_GOAL = 0.9
# Two sessions: each pays its own queue and cold start, so the goal is to lose no wall time
# and at most double the session time.
SHARDED_WALL_GOAL = 1.0
SHARDED_SESSION_GOAL = 0.5
UTTERANCES = 100
USER_POLL = 30.0  # Kaggle seconds between a careful user's status checks
TERMINAL = ("COMPLETE", "ERROR", "CANCEL_ACKNOWLEDGED")
KAGGLE_CLI = Path(sys.executable).with_name("kaggle")

# The careful user's notebook: eSpeak NG through espeakng-loader, as notebooks/espeak.ipynb
# speaks (voice en-us, rate 175, pitch 50), one 16-bit mono WAV per line.
USER_NOTEBOOK = """\
import ctypes, wave
import espeakng_loader

LINES = {lines!r}
engine = ctypes.CDLL(espeakng_loader.get_library_path())
engine.espeak_Synth.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int,
                                ctypes.c_uint, ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p]
rate = engine.espeak_Initialize(2, 0, espeakng_loader.get_data_path().encode(), 0)
chunks = []

@ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p)
def collect(samples, count, events):
    if samples and count > 0:
        chunks.append(ctypes.string_at(samples, count * 2))
    return 0

engine.espeak_SetSynthCallback(collect)
engine.espeak_SetVoiceByName(b"en-us")
engine.espeak_SetParameter(1, 175, 0)
engine.espeak_SetParameter(3, 50, 0)
for number, line in enumerate(LINES, 1):
    chunks.clear()
    encoded = line.encode("utf-8")
    assert engine.espeak_Synth(encoded, len(encoded) + 1, 0, 0, 0, 1, None, None) == 0
    assert engine.espeak_Synchronize() == 0
    with wave.open(f"{{number:03d}}.wav", "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(b"".join(chunks))
print("spoke", len(LINES), "lines")
"""


def utterances(count: int) -> list[str]:
    return [f"Line {n} of the batch, spoken on the emulated Kaggle." for n in range(1, count + 1)]


def run_kaggletts(lines: list[str], root: Path, shards: int) -> dict[str, Any]:
    with common.emulator(root, latency=common.kaggle_latency(), gpu_sessions=2) as emu:
        with common.Timer() as timer:
            result = kaggletts.execute(
                "espeak", {"utterances": lines}, backend="kaggle", output_dir=root / "out",
                cache=False,
                **common.backend_options(emu.url, shards=shards, gpu_sessions=shards))
        assert len(result.audio) == len(lines) and not result.missing
        for path, clip in zip(result.audio, result.clips, strict=True):
            assert sha256_of(path) == clip.sha256, path
        return {"wall": timer.seconds, "session": common.session_seconds(emu),
                "pushes": common.pushes(emu), "status_calls": emu.calls["GetKernelSessionStatus"]}


def user_folder(folder: Path, slug: str, lines: list[str]) -> Path:
    """The careful user's kernel folder: the notebook and its kernel-metadata.json, with the
    espeak notebook's kernel settings."""
    notebook = nbformat.v4.new_notebook()
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3"}
    notebook.cells = [nbformat.v4.new_code_cell(USER_NOTEBOOK.format(lines=lines))]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "speak.ipynb").write_text(nbformat.writes(notebook), encoding="utf-8")
    metadata = {"id": f"{common.USER}/{slug}", "title": slug.replace("-", " "),
                "code_file": "speak.ipynb", "language": "python", "kernel_type": "notebook",
                "is_private": True, "enable_gpu": False, "enable_internet": True}
    (folder / "kernel-metadata.json").write_text(json.dumps(metadata), encoding="utf-8")
    return folder


def cli_env(url: str, home: Path) -> dict[str, str]:
    """The unchanged `kaggle` CLI pointed at the emulator (docs/emulator.md)."""
    env = {k: v for k, v in os.environ.items()
           if k not in {"KAGGLE_API_TOKEN", "NO_PROXY", "no_proxy"}}
    home.mkdir(parents=True, exist_ok=True)
    env.update(KAGGLE_API_ENVIRONMENT="LOCALHOST", HTTP_PROXY=url, http_proxy=url,
               KAGGLE_USERNAME=common.USER, KAGGLE_KEY=common.KEY, HOME=str(home),
               KAGGLE_CONFIG_DIR=str(home / ".kaggle"))
    return env


def kaggle_cli(*args: str, env: dict[str, str]) -> str:
    done = subprocess.run([str(KAGGLE_CLI), *args], env=env, capture_output=True, text=True,
                          timeout=300)
    if done.returncode != 0:
        raise RuntimeError(f"kaggle {' '.join(args)} failed: {done.stderr[-2000:]}")
    return done.stdout


def cli_start_seconds(env: dict[str, str], repeats: int = 5) -> float:
    """The median wall time of `kaggle --help`: what starting the CLI costs, with no call."""
    times = []
    for _ in range(repeats):
        with common.Timer() as timer:
            kaggle_cli("--help", env=env)
        times.append(timer.seconds)
    return statistics.median(times)


def run_baseline(lines: list[str], root: Path) -> dict[str, Any]:
    slug = "speak-my-script"
    interval = USER_POLL * common.SCALE
    with common.emulator(root, latency=common.kaggle_latency(), gpu_sessions=2) as emu:
        env = cli_env(emu.url, root / "home")
        start = cli_start_seconds(env)
        folder = user_folder(root / "kernel", slug, lines)
        calls = 0
        with common.Timer() as timer:
            kaggle_cli("kernels", "push", "-p", str(folder), env=env)
            calls += 1
            while True:
                asked = time.perf_counter()
                reply = kaggle_cli("kernels", "status", f"{common.USER}/{slug}", env=env)
                calls += 1
                if any(state in reply for state in TERMINAL):
                    break
                time.sleep(max(0.0, interval - (time.perf_counter() - asked)))
            if "COMPLETE" not in reply:
                raise RuntimeError(f"the hand-written notebook did not complete: {reply}")
            kaggle_cli("kernels", "output", f"{common.USER}/{slug}", "-p", str(root / "out"),
                       env=env)
            calls += 1
        wavs = sorted((root / "out").glob("*.wav"))
        assert len(wavs) == len(lines), (len(wavs), len(lines))
        return {"wall": timer.seconds, "session": common.session_seconds(emu),
                "pushes": common.pushes(emu), "cli_calls": calls, "cli_start": start,
                "status_calls": emu.calls["GetKernelSessionStatus"]}


def run(count: int = UTTERANCES) -> list[dict]:
    lines = utterances(count)
    with tempfile.TemporaryDirectory(prefix="kaggletts-bench-batching-") as tmp:
        root = Path(tmp)
        base = run_baseline(lines, root / "baseline")
        one = run_kaggletts(lines, root / "one", shards=1)
        two = run_kaggletts(lines, root / "two", shards=2)
    scale = common.SCALE
    # The push's and the output's CLI process starts are real seconds on the critical path:
    # counted once, not x 1/SCALE.
    starts = 2 * base["cli_start"]
    base_wall = (base["wall"] - starts) / scale + starts
    base_session = base["session"] / scale
    rows = []
    for name, ours, goals in (
            (f"one session ({one['pushes']} push)", one, (WALL_GOAL, SESSION_GOAL)),
            (f"2 shards ({two['pushes']} pushes)", two,
             (SHARDED_WALL_GOAL, SHARDED_SESSION_GOAL))):
        note = (f"baseline: 1 hand-written notebook, {base['pushes']} push, "
                f"{base['cli_calls']} kaggle CLI calls ({base['status_calls']} status calls, one "
                f"every {USER_POLL:g} Kaggle s or one CLI call, whichever is longer), the push's "
                f"and the output's process starts ({base['cli_start']:.2f} s each) counted "
                f"once; kaggletts {ours['status_calls']} "
                f"status calls; emulated {ours['wall']:.1f} s wall / {ours['session']:.1f} s "
                f"sessions vs baseline {base['wall']:.1f} / {base['session']:.1f} s")
        rows.append(common.row(f"batching {count} utterances, {name}: wall time",
                               ours["wall"] / scale, base_wall, goals[0],
                               unit="Kaggle s", digits=0, note=note))
        rows.append(common.row(f"batching {count} utterances, {name}: session seconds",
                               ours["session"] / scale, base_session, goals[1],
                               unit="Kaggle s", digits=0))
    return rows


if __name__ == "__main__":
    common.print_table(run(*[int(a) for a in sys.argv[1:]]))
