"""Downloads: the outputs of one emulated kernel version fetched with 20 ms of latency on
every request (Latency(request_delay=0.02)).

kaggletts: the backend's own `outputs.collect` for a completed shard - list the outputs,
fetch `__notebook__.ipynb`, read its `clips` scrap, then fetch only those files with
`Downloader` (parallel, `KaggleBackend.download_workers` at once, size and sha256 verified).
Baseline: the official `KaggleApi.kernels_output` (every file, one at a time, all pages).

The kernels are tiny notebooks that write N files of random bytes (named .wav, as clips
must be) and glue a `clips` scrap
with {"file", "bytes", "sha256"} per file. Every download runs in a fresh subprocess (so
neither import costs nor earlier downloads count); the time covers the download call only.
Peak memory is tracemalloc's peak inside that subprocess (a separate pass, since tracing
slows Python down), for 100 x 1 MB and for 4 x 50 MB.
Run as a script: `python benchmarks/download.py [--quick]`."""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import common
import nbformat

SPEED_GOAL = 3.0
FLAT_GOAL = 1.5  # peak memory for 50 MB files / for 1 MB files
# kaggletts downloads with KaggleBackend.download_workers (4) at once, the official client one
# file at a time: at most that many times its memory (official / kaggletts >= 1/4).
MEMORY_GOAL = 0.25
REQUEST_DELAY = 0.02
HERE = Path(__file__).resolve().parent

WRITER = """\
import hashlib, os
import scrapbook as sb
clips = []
for n in range({count}):
    name = f"clip-{{n:03d}}.wav"
    data = os.urandom({size})
    with open(name, "wb") as out:
        out.write(data)
    clips.append({{"file": name, "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}})
    del data
sb.glue("clips", clips)
"""


def push_writer(remote: Any, folder: Path, slug: str, count: int, size: int) -> int:
    notebook = nbformat.v4.new_notebook()
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3"}
    notebook.cells = [nbformat.v4.new_code_cell(WRITER.format(count=count, size=size))]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "run.ipynb").write_text(nbformat.writes(notebook), encoding="utf-8")
    (folder / "kernel-metadata.json").write_text(json.dumps({
        "id": f"{common.USER}/{slug}", "title": slug.replace("-", " "), "code_file": "run.ipynb",
        "language": "python", "kernel_type": "notebook", "is_private": True,
        "enable_gpu": False, "enable_internet": False}), encoding="utf-8")
    return remote.push(folder).version


# -- the child: one download, in its own process ---------------------------------------


def collector(url: str, slug: str, out: Path) -> Callable[[], int]:
    """The backend's `collect` for the kernel `slug` as a completed shard whose folder is
    `out`; the call returns the bytes downloaded. `collect` reads only the context's remote,
    backend and stop event: the job around it is a stand-in request."""
    from kaggletts.api import prepare
    from kaggletts.backends.kaggle import KaggleBackend
    from kaggletts.backends.kaggle.context import RunContext
    from kaggletts.backends.kaggle.outputs import collect
    from kaggletts.backends.kaggle.records import KaggleRun, RunStore, Shard, ShardState
    from kaggletts.layout import KERNEL_LOG

    backend = KaggleBackend(endpoint=url, credentials=common.credentials())
    remote = backend.remote()
    stem, attempt = slug.rsplit("-", 1)
    shard = Shard(1, stem, {}, str(out), attempt=int(attempt), state=ShardState.COMPLETE)
    job = prepare("espeak", {"text": "stand-in"}, "kaggle", out.parent / f"{out.name}-job")
    run = KaggleRun(remote.endpoint, remote.username, [shard])
    ctx = RunContext(job, remote, RunStore(job), run, backend, time.time() + 3600)

    def download() -> int:
        collect(ctx, shard)
        # kernel.log is written from the listing's reply, not downloaded.
        return sum(p.stat().st_size for p in out.rglob("*") if p.is_file() and p.name != KERNEL_LOG)

    return download


def child(mode: str, url: str, slug: str, out: Path, trace: bool) -> dict:
    import tracemalloc

    if mode == "kaggletts":
        download = collector(url, slug, out)
    else:
        api = common.official_api(url, out.parent / f"{out.name}-config")

        def download() -> int:
            api.kernels_output(f"{common.USER}/{slug}", str(out))
            return sum(p.stat().st_size for p in out.rglob("*") if p.is_file())

    # Imports the download triggers lazily (scrapbook pulls in pandas) happen before the
    # clock and the tracing start, as `import kaggle` does for the official client.
    import scrapbook  # noqa: F401

    if trace:
        tracemalloc.start()
    started = time.perf_counter()
    fetched = download()
    seconds = time.perf_counter() - started
    peak = tracemalloc.get_traced_memory()[1] if trace else 0
    return {"seconds": seconds, "fetched": fetched, "peak": peak}


def spawn(mode: str, url: str, slug: str, out: Path, trace: bool) -> dict:
    done = subprocess.run(
        [sys.executable, str(HERE / "download.py"), "--child", mode, url, slug, str(out),
         "1" if trace else "0"],
        capture_output=True, text=True, timeout=600, cwd=HERE)
    if done.returncode != 0:
        raise RuntimeError(f"{mode} download failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def needed_bytes(emu: Any, slug: str, version: int) -> int:
    """The clips the notebook recorded plus the executed notebook that lists them."""
    from kaggletts.layout import EXECUTED_NOTEBOOK
    from kaggletts.result import read_scraps

    output = emu.output_dir(common.USER, slug, version)
    clips = read_scraps(output / EXECUTED_NOTEBOOK)["clips"]
    return sum(c["bytes"] for c in clips) + (output / EXECUTED_NOTEBOOK).stat().st_size


def run(quick: bool = False, repeats: int = 3) -> list[dict]:
    from kaggletts.backends.kaggle.remote import KaggleRemote
    from kaggletts.emulator import Latency

    mb = 1 << 20
    small = (20, mb) if quick else (100, mb)
    large = (2, 10 * mb) if quick else (4, 50 * mb)
    repeats = 1 if quick else repeats
    with tempfile.TemporaryDirectory(prefix="kaggletts-bench-download-") as tmp, \
            common.emulator(Path(tmp)) as emu:
        root = Path(tmp)
        remote = KaggleRemote(common.credentials(), emu.url)
        # Slugs end in an attempt number, as kaggletts' own kernels do.
        slugs = {"small": "outputs-small-1", "large": "outputs-large-1"}
        versions = {"small": push_writer(remote, root / "small", slugs["small"], *small),
                    "large": push_writer(remote, root / "large", slugs["large"], *large)}
        for name, version in versions.items():
            record = emu.wait_for(common.USER, slugs[name], version, timeout=300)
            assert record.status == "COMPLETE", record.failure_message
        emu.latency = Latency(request_delay=REQUEST_DELAY)

        def one(mode: str, size: str, trace: bool, attempt: int) -> dict:
            out = root / f"{mode}-{size}-{int(trace)}-{attempt}"
            return spawn(mode, emu.url, slugs[size], out, trace)

        timings: dict[str, list[float]] = {"kaggletts": [], "official": []}
        fetched: dict[str, int] = {}
        for attempt in range(repeats):  # interleaved, median taken
            for mode in timings:
                measured = one(mode, "small", False, attempt)
                timings[mode].append(measured["seconds"])
                fetched[mode] = measured["fetched"]
        peaks = {(mode, size): one(mode, size, True, 0)["peak"]
                 for mode in timings for size in ("small", "large")}
        needed = needed_bytes(emu, slugs["small"], versions["small"])

    ours, theirs = statistics.median(timings["kaggletts"]), statistics.median(timings["official"])
    count, size = small
    label = f"{count} x {size // mb} MB"
    rows = [common.row(f"download {label} at {REQUEST_DELAY * 1000:g} ms/request: time",
                       ours, theirs, SPEED_GOAL,
                       note=f"median of {repeats}, interleaved; kaggletts runs "
                            f"{_workers()} downloads at once; scrapbook is imported before the "
                            "clock starts, as kaggle is for the baseline")]
    ratio = {mode: fetched[mode] / needed for mode in fetched}
    rows.append(common.check(f"download {label}: bytes fetched / bytes needed",
                             f"{ratio['kaggletts']:.5f}", "= 1.00",
                             round(ratio["kaggletts"], 2) == 1.00,
                             baseline=f"{ratio['official']:.5f}", unit="ratio",
                             note=(f"needed = the clips plus __notebook__.ipynb ({needed} bytes);"
                                   f" extra bytes fetched: kaggletts "
                                   f"{fetched['kaggletts'] - needed}, official client "
                                   f"{fetched['official'] - needed} (__results__.html and the "
                                   "log it writes)")))
    flat = {mode: peaks[(mode, "large")] / peaks[(mode, "small")] for mode in timings}
    lcount, lsize = large
    rows.append(common.check(
        f"peak memory, {lcount} x {lsize // mb} MB over {label}", round(flat["kaggletts"], 2),
        f"<= {FLAT_GOAL:g} (flat)", flat["kaggletts"] <= FLAT_GOAL,
        baseline=round(flat["official"], 2), unit="ratio",
        note=(f"tracemalloc peak in the downloading process: kaggletts "
              f"{peaks[('kaggletts', 'small')] / mb:.1f} -> "
              f"{peaks[('kaggletts', 'large')] / mb:.1f} MB, official "
              f"{peaks[('official', 'small')] / mb:.1f} -> "
              f"{peaks[('official', 'large')] / mb:.1f} MB")))
    for scale, (files, each) in (("small", small), ("large", large)):
        rows.append(common.row(
            f"peak memory, {files} x {each // mb} MB download (MB)",
            peaks[("kaggletts", scale)] / mb, peaks[("official", scale)] / mb,
            MEMORY_GOAL, unit="MB", digits=1,
            note=(f"tracemalloc peak in the downloading process; ratio = official / kaggletts; "
                  f"kaggletts runs {_workers()} downloads at once, the official client one")))
    return rows


def _workers() -> int:
    from kaggletts.backends.kaggle import KaggleBackend

    return KaggleBackend.download_workers


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        mode, url, slug, out, trace = sys.argv[2:7]
        print(json.dumps(child(mode, url, slug, Path(out), trace == "1")))
    else:
        common.print_table(run(quick="--quick" in sys.argv))
