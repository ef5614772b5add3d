"""Reliability checks of the Kaggle backend against the emulator in its default mode (no
assumptions: only what real Kaggle is known to answer, so no session id and no remote
cancel) (`nox -s soak`, or `python benchmarks/reliability.py [--quick] [PART]...`).
Pushes are counted as versions created across all of the account's kernels (kaggletts
pushes every attempt to a kernel of its own), with kernels kept after each job.

soak:       JOBS jobs under a 20% rate of mixed faults (500, 502, 503, 429, drop,
            lost-reply, truncate; Retry-After 0 or 1 s, alternating) plus stale status and
            late outputs. Counted: jobs completed, files corrupted (sha256 against the
            notebook's record AND against the emulator's own output file), duplicate pushes
            (versions beyond the first, per job). Goal 50/0/0.
crash:      client subprocesses SIGKILLed at seeded random points (before push, during push,
            while polling, during download), each resumed by the same request. Counted: jobs
            finished and verified (the requested lines, sha256 as recorded), duplicate
            pushes. Goal 10/0. Plus one case with a second job: a client killed while its
            push had not landed (every SaveKernel dropped), another request for the same
            notebook runs meanwhile; the resumed job must push and get its own audio.
lost-reply: 20 jobs, 2 at a time, a push reply lost with probability 0.5 per job (a
            seeded coin per job, forced on SaveKernel only with `fail_next`: the emulator's
            random faults cannot be aimed at one method). Goal: pushes == jobs, all verified.
twin:       the same request from two processes 0.2 s apart. Goal: 1 push, both get the
            same audio files.
outage:     every API call and download refused (HTTP 503) for 90 Kaggle seconds while the
            job runs, by a forwarding proxy in front of the emulator (proxy.py). Goal: no
            cancel attempted, the job finished (by the run itself, or by the same request
            after the outage when the run stopped with exit 3), 1 push.
moved:      a client pushes to emulator A and is killed while its session is queued; the
            same request against emulator B. Goal: B pushes its own run and the result is
            B's (A's run is never adopted), A keeps its 1 push.
bad-input:  every tests/bad_params/*.yaml through `kaggletts run NOTEBOOK -f FILE`; each must
            exit 2 with its `# expect:` message on stderr and no traceback.

Kaggle waits (queue, cold start, retries, polling, the outage) are time-scaled by
common.SCALE like the rest of the benchmarks."""

from __future__ import annotations

import json
import random
import re
import signal
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import common
from proxy import OutageProxy

import kaggletts
from kaggletts.emulator import FAULT_KINDS, Emulator, Faults, Latency, Quirks
from kaggletts.errors import LeftOnKaggle
from kaggletts.result import sha256_of

REPO = Path(__file__).resolve().parents[1]
HERE = Path(__file__).resolve().parent
SOAK_JOBS = 50
SOAK_WORKERS = 2
CRASHES = 10
KILL_POINTS = ("before push", "during push", "while polling", "during download")
LOST_REPLY_JOBS = 20
LOST_REPLY_RATE = 0.5
TWIN_GAP = 0.2
OUTAGE_SECONDS = 90.0  # Kaggle seconds; the emulated outage is this times common.SCALE
SEED = 20240601
PARTS = ("soak", "crash", "lost-reply", "twin", "outage", "moved", "bad-input")


# -- shared ------------------------------------------------------------------------------


def run_job(endpoint: str, out: Path, texts: list[str]) -> kaggletts.Result:
    """One request on the Kaggle backend. The line cache is off: the crash cases repeat the
    same lines, and a later case served from an earlier one's clips would finish before the
    client could be killed, never exercising the backend under test."""
    return kaggletts.execute("espeak", {"utterances": texts}, backend="kaggle", output_dir=out,
                             cache=False, **common.backend_options(endpoint))


def first_shard(record: dict[str, Any]) -> dict[str, Any]:
    shards = (record.get("run") or {}).get("shards") or [{}]
    return shards[0]


def verify(result: kaggletts.Result, emu: Emulator, texts: list[str] | None = None) -> int:
    """Files that differ from the notebook's record or from the emulator's output file of
    the kernel the job record names, plus clips that are not the requested lines (when
    `texts` is given)."""
    record = json.loads((result.directory / "job.json").read_text(encoding="utf-8"))
    shard = first_shard(record)
    slug = f"{shard['slug_stem']}-{shard['attempt']}"
    outputs = emu.output_dir(common.USER, slug, emu.version(common.USER, slug).number)
    bad = 0
    for path, clip in zip(result.audio, result.clips, strict=True):
        digest = sha256_of(path)
        if digest != clip.sha256 or digest != sha256_of(outputs / clip.file):
            bad += 1
    if texts is not None:
        spoken = [clip.text for clip in result.clips]
        bad += sum(a != b for a, b in zip(spoken, texts, strict=False))
        bad += abs(len(spoken) - len(texts))
    return bad + abs(len(result.audio) - len(result.clips))


def duplicate_pushes(emu: Emulator) -> int:
    """Versions beyond the first of each job: a push that cost a second session."""
    return sum(count - 1 for count in common.pushes_per_job(emu).values())


def wait_until(condition: Callable[[], bool], timeout: float = 120.0) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.005)
    return True


def failure_text(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"[:300]


# A client in its own process, so that it can be SIGKILLed: the same request as run_job,
# printing the audio paths of its result.
CLIENT = textwrap.dedent("""
    import sys
    from pathlib import Path
    sys.path.insert(0, sys.argv[3])
    import reliability
    url, out, texts = sys.argv[1], Path(sys.argv[2]), sys.argv[4:]
    result = reliability.run_job(url, out, texts)
    print(" ".join(str(path) for path in result.audio))
""")


def start_client(endpoint: str, out: Path, texts: list[str]) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", CLIENT, endpoint, str(out), str(HERE), *texts],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def kill(client: subprocess.Popen) -> None:
    if client.poll() is None:
        client.send_signal(signal.SIGKILL)
    client.communicate(timeout=30)


def read_job(out: Path) -> dict[str, Any]:
    for path in out.rglob("job.json"):
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
    return {}


def shard_state(out: Path) -> str | None:
    return first_shard(read_job(out)).get("state")


# -- soak ----------------------------------------------------------------------------------


def soak(jobs: int = SOAK_JOBS, workers: int = SOAK_WORKERS) -> list[dict]:
    faults = Faults(rate=0.2, kinds=FAULT_KINDS, retry_after_seconds=1)
    quirks = Quirks(stale_status_seconds=1.0, late_outputs_seconds=0.5)
    completed, corrupted, failures = 0, 0, []
    lock = threading.Lock()
    with tempfile.TemporaryDirectory(prefix="kaggletts-bench-soak-") as tmp, \
            common.emulator(Path(tmp), faults=faults, quirks=quirks, seed=SEED) as emu:

        def job(number: int) -> None:
            nonlocal completed, corrupted
            texts = [f"Soak job {number}, line {n}." for n in (1, 2)]
            try:
                result = run_job(emu.url, Path(tmp) / "out", texts)
                bad = verify(result, emu, texts)
            except Exception as error:  # counted, reported, and the soak goes on
                with lock:
                    failures.append(f"job {number}: {failure_text(error)}")
                return
            with lock:
                completed += 1
                corrupted += bad

        def retry_after_flipper(stop: threading.Event) -> None:
            # Retry-After alternates between 0 and 1 s while the soak runs.
            flip = 0
            while not stop.wait(0.5):
                flip ^= 1
                emu.faults = Faults(rate=0.2, kinds=FAULT_KINDS, retry_after_seconds=flip)

        stop = threading.Event()
        flipper = threading.Thread(target=retry_after_flipper, args=(stop,), daemon=True)
        flipper.start()
        with common.Timer() as timer, ThreadPoolExecutor(max_workers=workers) as pool:
            list(pool.map(job, range(1, jobs + 1)))
        stop.set()
        pushes, duplicates = common.pushes(emu), duplicate_pushes(emu)
        injected = sum(emu.faults_injected.values())
        kinds = sorted({kind for _, kind in emu.faults_injected})
        lost_pushes = emu.faults_injected[("SaveKernel", "lost-reply")]
    note = (f"{jobs} jobs, {workers} at a time, {timer.seconds:.0f} s; {injected} faults "
            f"injected ({', '.join(kinds)}), {lost_pushes} of them lost push replies; stale "
            f"status 1 s, late outputs 0.5 s; {pushes} versions created")
    if failures:
        note += "; failures: " + " || ".join(failures[:5])
    return [
        common.check("soak: jobs completed", f"{completed}/{jobs}", f"{jobs}/{jobs}",
                     completed == jobs, note=note),
        common.check("soak: corrupted files", corrupted, "0", corrupted == 0),
        common.check("soak: duplicate pushes", duplicates, "0", duplicates == 0,
                     note="versions beyond the first per job, across all of the job's kernels"),
    ]


# -- crash -----------------------------------------------------------------------------------

CRASH_LINES = 12


def clips_arriving(out: Path) -> bool:
    """Whether the download of a clip has begun (its temporary file, or the clip itself)."""
    return any(out.rglob(".*.wav.part")) or any(out.rglob("*.wav"))


def kill_when(point: str, out: Path, emu: Emulator, client: subprocess.Popen,
              rng: random.Random, timeout: float = 120.0) -> str:
    """Wait for `point`, SIGKILL the client after a seeded random delay; return what was
    observed at the kill."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and client.poll() is None:
        state = shard_state(out)
        if point == "before push" and state in ("planned", "pushing"):
            time.sleep(rng.uniform(0.0, 0.05))
            break
        if point == "during push" and state == "pushing":
            time.sleep(rng.uniform(0.0, 0.08))  # inside the 0.1 s of request latency
            break
        if point == "while polling" and state == "pushed":
            time.sleep(rng.uniform(0.0, 1.0))
            break
        # The clips come after the executed notebook and its scraps are read: 12 of them,
        # 4 at a time, each request 0.1 s.
        if point == "during download" and state == "complete" and clips_arriving(out):
            time.sleep(rng.uniform(0.0, 0.3))
            break
        time.sleep(0.002)
    if client.poll() is not None:
        return f"client had already exited ({client.returncode})"
    observed_state = shard_state(out)
    kill(client)
    time.sleep(0.3)  # a request in flight is still handled by the emulator
    wavs = sum(1 for _ in out.rglob("*.wav"))
    parts = sum(1 for _ in out.rglob(".*.part"))
    return (f"killed in state {observed_state}, {common.pushes(emu)} version(s) created, "
            f"{wavs} WAV(s) + {parts} partial file(s) on disk")


def crash_once(point: str, rng: random.Random, root: Path) -> dict[str, Any]:
    latency = Latency(queue_delay=0.2, cold_start=1.5, request_delay=0.1)
    out = root / "out"
    texts = [f"Crash test line {n}." for n in range(CRASH_LINES)]
    with common.emulator(root, latency=latency, seed=rng.randrange(1 << 30)) as emu:
        client = start_client(emu.url, out, texts)
        try:
            observed = kill_when(point, out, emu, client, rng)
        finally:
            kill(client)
        try:
            result = run_job(emu.url, out, texts)
            finished = len(result.audio) == CRASH_LINES and verify(result, emu, texts) == 0
            error = ""
        except Exception as failure:
            finished, error = False, failure_text(failure)
        pushes = common.pushes(emu)
    return {"point": point, "observed": observed, "finished": finished,
            "duplicates": max(pushes - 1, 0), "error": error}


def crash(count: int = CRASHES, seed: int = SEED) -> list[dict]:
    rng = random.Random(seed)
    points = [KILL_POINTS[i % len(KILL_POINTS)] for i in range(count)]
    rng.shuffle(points)
    cases = []
    with common.Timer() as timer:
        for number, point in enumerate(points):
            with tempfile.TemporaryDirectory(prefix=f"kaggletts-bench-crash-{number}-") as tmp:
                cases.append(crash_once(point, rng, Path(tmp)))
    finished = sum(c["finished"] for c in cases)
    duplicates = sum(c["duplicates"] for c in cases)
    with tempfile.TemporaryDirectory(prefix="kaggletts-bench-crash-other-") as tmp:
        other = crash_while_another_job_pushes(Path(tmp))
    details = "; ".join(f"[{c['point']}] {c['observed']}"
                        + (f" -> {c['error']}" if c["error"] else "") for c in cases)
    return [
        common.check("crash: killed clients resumed and finished", f"{finished}/{count}",
                     f"{count}/{count}", finished == count,
                     note=f"seed {seed}, {timer.seconds:.0f} s: {details}"),
        common.check("crash: duplicate pushes", duplicates, "0", duplicates == 0),
        common.check("crash: killed before its push landed, another job pushed meanwhile: "
                     "resumed job gets its own audio", other["own"], "yes", other["own"] == "yes",
                     note=other["note"]),
    ]


def crash_while_another_job_pushes(root: Path) -> dict[str, str]:
    """A client killed while its push has not landed: every SaveKernel it sends is dropped
    before the emulator handles it, so it sits in `pushing`, asking whether its kernel
    exists and pushing again. Meanwhile, once the drops stop, another request for the same
    notebook runs to completion; then the first request is made again."""
    mine = [f"My own line {n}." for n in (1, 2)]
    out = root / "out"
    with common.emulator(root) as emu:
        emu.fail_next("SaveKernel", "drop", times=1000)
        client = start_client(emu.url, out, mine)
        try:
            reached = wait_until(lambda: shard_state(out) == "pushing"
                                 and emu.faults_injected[("SaveKernel", "drop")] >= 1)
        finally:
            kill(client)
        emu.injector.clear()
        dropped = emu.faults_injected[("SaveKernel", "drop")]
        run_job(emu.url, out, ["Somebody else's line."])
        try:
            spoken = [clip.text for clip in run_job(emu.url, out, mine).clips]
        except Exception as error:
            spoken = [failure_text(error)]
        pushes = common.pushes(emu)
    own = "yes" if reached and spoken == mine and pushes == 2 else "no"
    return {"own": own,
            "note": (f"killed {'in state pushing' if reached else 'before it reached pushing'} "
                     f"after {dropped} dropped push(es); asked for {mine}, got {spoken}; "
                     f"{pushes} version(s) created (2 expected: one per request)")}


# -- lost push replies -----------------------------------------------------------------------


def lost_replies(jobs: int = LOST_REPLY_JOBS, workers: int = SOAK_WORKERS,
                 seed: int = SEED) -> list[dict]:
    coin = random.Random(seed)
    lose = {number: coin.random() < LOST_REPLY_RATE for number in range(1, jobs + 1)}
    completed, failures = 0, []
    lock = threading.Lock()
    with tempfile.TemporaryDirectory(prefix="kaggletts-bench-lost-") as tmp, \
            common.emulator(Path(tmp)) as emu, common.Timer() as timer:

        def job(number: int) -> None:
            nonlocal completed
            if lose[number]:
                # The next push to arrive loses its reply: this job's, or the other
                # worker's; either way one push reply per flip.
                emu.fail_next("SaveKernel", "lost-reply")
            texts = [f"Lost reply job {number}."]
            try:
                verified = verify(run_job(emu.url, Path(tmp) / "out", texts), emu, texts) == 0
            except Exception as error:
                with lock:
                    failures.append(f"job {number}: {failure_text(error)}")
                return
            with lock:
                completed += verified

        with ThreadPoolExecutor(max_workers=workers) as pool:
            list(pool.map(job, lose))
        pushes = common.pushes(emu)
        lost = emu.faults_injected[("SaveKernel", "lost-reply")]
        calls = emu.calls["SaveKernel"]
    note = (f"{jobs} jobs, {workers} at a time, {timer.seconds:.0f} s; {lost} of {calls} push "
            f"replies lost (a seeded coin at {LOST_REPLY_RATE:g} per job, forced on SaveKernel "
            f"only); {completed}/{jobs} jobs completed and verified")
    if failures:
        note += "; failures: " + " || ".join(failures[:5])
    return [common.check(f"lost push replies ({LOST_REPLY_RATE:.0%}): pushes for {jobs} jobs",
                         pushes, f"{jobs}", pushes == jobs and completed == jobs, note=note)]


# -- two identical requests at once ----------------------------------------------------------


def twin() -> list[dict]:
    texts = [f"Twin request line {n}." for n in (1, 2, 3)]
    with tempfile.TemporaryDirectory(prefix="kaggletts-bench-twin-") as tmp, \
            common.emulator(Path(tmp), latency=common.kaggle_latency()) as emu, \
            common.Timer() as timer:
        out = Path(tmp) / "out"
        first = start_client(emu.url, out, texts)
        time.sleep(TWIN_GAP)
        second = start_client(emu.url, out, texts)
        replies = [client.communicate(timeout=300) for client in (first, second)]
        pushes = common.pushes(emu)
    codes = [first.returncode, second.returncode]
    audio = [stdout.strip() for stdout, _ in replies]
    got = sum(code == 0 and bool(paths) for code, paths in zip(codes, audio, strict=True))
    same = got == 2 and audio[0] == audio[1]
    note = (f"{timer.seconds:.0f} s; exit codes {codes}; "
            f"{'the same' if same else 'different'} audio files")
    errors = [stderr.strip().splitlines()[-1] for _, stderr in replies if stderr.strip()]
    if got < 2 and errors:
        note += "; " + " || ".join(errors)
    return [common.check(f"two identical requests {TWIN_GAP:g} s apart, two processes: "
                         "pushes / clients with the result", f"{pushes} / {got}", "1 / 2",
                         pushes == 1 and same, note=note)]


# -- an outage of every call -----------------------------------------------------------------


def outage(seconds: float = OUTAGE_SECONDS) -> list[dict]:
    """The outage starts as soon as the push has landed (the session is queued, then runs
    for the scaled queue delay and cold start) and lasts `seconds` Kaggle seconds."""
    texts = [f"Through the outage, line {n}." for n in (1, 2)]
    window = seconds * common.SCALE
    with tempfile.TemporaryDirectory(prefix="kaggletts-bench-outage-") as tmp, \
            common.emulator(Path(tmp), latency=common.kaggle_latency()) as emu, \
            OutageProxy(emu.url) as proxy, common.Timer() as timer:
        out = Path(tmp) / "out"
        outcome: dict[str, Any] = {}

        def first_run() -> None:
            try:
                outcome["result"] = run_job(proxy.url, out, texts)
            except Exception as error:  # LeftOnKaggle is the expected one
                outcome["error"] = error

        client = threading.Thread(target=first_run)
        client.start()
        wait_until(lambda: common.pushes(emu) >= 1)
        proxy.outage(window)
        started = time.monotonic()
        client.join(timeout=300)
        error = outcome.get("error")
        how = "ridden out by the run itself"
        if isinstance(error, LeftOnKaggle):
            # What the user is told to do on exit 3: the same request again, after the outage.
            time.sleep(max(window - (time.monotonic() - started), 0.0))
            how = (f"the run stopped with exit {error.exit_code} (LeftOnKaggle: "
                   f"{str(error).splitlines()[0][:120]}...); the same request after the outage "
                   "finished it")
            try:
                outcome["result"] = run_job(proxy.url, out, texts)
                error = None
            except Exception as again:
                error = again
        result = outcome.get("result")
        finished = result is not None and verify(result, emu, texts) == 0
        pushes = common.pushes(emu)
        cancels = proxy.seen["CancelKernelSession"]
        refused = sum(proxy.refused.values())
    note = (f"outage of {seconds:g} Kaggle s = {window:.2f} s at time scale "
            f"1/{1 / common.SCALE:g} (retries scaled alike), {refused} requests refused "
            f"(HTTP 503) during it; {how}; {timer.seconds:.0f} s")
    if error is not None:
        note += f"; not finished: {failure_text(error)}"
    return [common.check(f"outage of every call for {seconds:g} s mid-run: cancels / "
                         "finished / pushes", f"{cancels} / {'yes' if finished else 'no'} / "
                         f"{pushes}", "0 / yes / 1",
                         cancels == 0 and finished and pushes == 1, note=note)]


# -- a job moved between endpoints -----------------------------------------------------------


def moved() -> list[dict]:
    texts = [f"Moved job line {n}." for n in (1, 2)]
    queued = Latency(queue_delay=600.0 * common.SCALE)
    with tempfile.TemporaryDirectory(prefix="kaggletts-bench-moved-") as tmp, \
            common.Timer() as timer:
        root, out = Path(tmp), Path(tmp) / "out"
        with common.emulator(root / "a", latency=queued) as first:
            client = start_client(first.url, out, texts)
            try:
                pushed = wait_until(lambda: common.pushes(first) >= 1)
                state_at_kill = only_session_status(first) if pushed else "not pushed"
            finally:
                kill(client)
            with common.emulator(root / "b", latency=common.kaggle_latency()) as second:
                try:
                    result = run_job(second.url, out, texts)
                    ours = verify(result, second, texts) == 0
                    error = ""
                except Exception as failure:
                    ours, error = False, failure_text(failure)
                pushes_a, pushes_b = common.pushes(first), common.pushes(second)
        jobs = len({path.parent for path in out.rglob("job.json")})
    note = (f"A's session {state_at_kill} when its client was killed; {jobs} job folders "
            f"(the endpoint is part of the job id); {timer.seconds:.0f} s")
    if error:
        note += f"; {error}"
    return [common.check("job moved between endpoints: pushes on A / on B / result is B's own",
                         f"{pushes_a} / {pushes_b} / {'yes' if ours else 'no'}", "1 / 1 / yes",
                         pushes_a == 1 and pushes_b == 1 and ours, note=note)]


def only_session_status(emu: Emulator) -> str:
    [kernel] = emu.store.kernels.values()
    return emu.status(kernel.owner, kernel.slug)


# -- bad input -------------------------------------------------------------------------------


def bad_input(folder: Path = REPO / "tests" / "bad_params") -> list[dict]:
    files = sorted(folder.glob("*.yaml"))
    if not files:
        return [common.check("bad input: files found", 0, "> 0", False,
                             note=f"no {folder}/*.yaml")]
    executable = str(Path(sys.executable).with_name("kaggletts"))

    def one(path: Path) -> dict[str, Any]:
        header = path.read_text(encoding="utf-8")
        expect = re.search(r"^# expect: (.*)$", header, re.MULTILINE)
        notebook = re.search(r"^# notebook: (\S+)", header, re.MULTILINE)
        with tempfile.TemporaryDirectory(prefix="kaggletts-bench-bad-") as out:
            try:
                done = subprocess.run(
                    [executable, "run", notebook.group(1) if notebook else "qwen", "-f",
                     str(path), "--out", out], capture_output=True, text=True, timeout=120)
                code, stderr = done.returncode, done.stderr
            except subprocess.TimeoutExpired:
                code, stderr = None, "timed out after 120 s"
        first = next((ln for ln in stderr.splitlines() if ln.strip()), "")
        wanted = expect.group(1).strip() if expect else ""
        ok = code == 2 and bool(wanted) and wanted in stderr and "Traceback" not in stderr
        return {"file": path.name, "code": code, "first": first, "expect": wanted, "ok": ok}

    with common.Timer() as timer, ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(one, files))
    good = sum(r["ok"] for r in results)
    wrong = [f"{r['file']}: exit {r['code']}, stderr {r['first']!r} (expected {r['expect']!r})"
             for r in results if not r["ok"]]
    note = f"{len(files)} files, {timer.seconds:.0f} s"
    if wrong:
        note += "; not as expected: " + " || ".join(wrong)
    return [common.check("bad input: exit 2 + expected message, no traceback",
                         f"{good}/{len(files)}", f"{len(files)}/{len(files)}",
                         good == len(files), note=note)]


def run(quick: bool = False, parts: tuple[str, ...] = PARTS) -> list[dict]:
    checks: dict[str, Callable[[], list[dict]]] = {
        "soak": lambda: soak(10 if quick else SOAK_JOBS),
        "crash": lambda: crash(4 if quick else CRASHES),
        "lost-reply": lambda: lost_replies(6 if quick else LOST_REPLY_JOBS),
        "twin": twin,
        "outage": outage,
        "moved": moved,
        "bad-input": bad_input,
    }
    unknown = [part for part in parts if part not in checks]
    if unknown:
        raise SystemExit(f"unknown part(s) {unknown}; choose from {', '.join(PARTS)}")
    rows: list[dict] = []
    for part in parts:
        with common.Timer() as timer:
            rows += checks[part]()
        print(f"({part}: {timer.seconds:.0f} s)", file=sys.stderr, flush=True)
    return rows


if __name__ == "__main__":
    arguments = [a for a in sys.argv[1:] if not a.startswith("--")]
    rows = run("--quick" in sys.argv, tuple(arguments) or PARTS)
    common.print_table(rows)
    sys.exit(0 if all(r["met"] is not False for r in rows) else 1)
