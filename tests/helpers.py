"""Helpers shared by the test modules that drive the Kaggle backend against the emulator:
alice's credentials, fast retry and polling, runs through the API and the CLI, and what the
emulator saw."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
import wave
from pathlib import Path
from typing import Any

import kaggletts
from kaggletts.backends.kaggle.credentials import Credentials
from kaggletts.backends.kaggle.polling import PollSchedule
from kaggletts.backends.kaggle.retry import RetryPolicy
from kaggletts.emulator import Emulator
from kaggletts.result import sha256_of

USER, KEY = "alice", "alice-secret-key-7f3e9"
OTHER_KEY = "bob-secret-key-0c41"
FAST: dict[str, Any] = {
    "retry": RetryPolicy(attempts=12, first_wait=0.05, max_wait=0.5, max_total=60),
    "poll": PollSchedule(first=0.2, fraction=0.1, cap=1.0),
    "cap_wait": 0.5,
    "outputs_wait": 30.0,
    "settle_wait": 0.2,
    # Most tests count pushes in the emulator after the run; deletion has a test of its own.
    "keep_kernels": True,
}


def lines(count: int, tag: str = "") -> list[str]:
    return [f"Line {n} {tag}of the batch, spoken on the emulator." for n in range(1, count + 1)]


def run_kaggle(
    emulator: Emulator, out: Path, params: dict, notebook: str | Path = "espeak", **overrides
) -> kaggletts.Result:
    options = {**FAST, **overrides}
    return kaggletts.execute(
        notebook,
        params,
        backend="kaggle",
        output_dir=out,
        endpoint=emulator.url,
        credentials=Credentials(USER, key=KEY),
        **options,
    )


def kaggletts_cli(*args: str, env: dict, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(Path(sys.executable).with_name("kaggletts")), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def cli_env(emulator: Emulator, **extra: str) -> dict[str, str]:
    """The environment of a CLI subprocess that uses the emulator as alice."""
    env = {k: v for k, v in os.environ.items() if k != "KAGGLE_API_TOKEN"}
    env.update(KAGGLE_USERNAME=USER, KAGGLE_KEY=KEY, KAGGLETTS_KAGGLE_ENDPOINT=emulator.url)
    return {**env, **extra}


def pushes(emulator: Emulator, owner: str = USER) -> int:
    """Versions created in all of `owner`'s kernels: every push that reached Kaggle,
    whether or not its reply came back."""
    return sum(len(k.versions) for k in emulator.store.kernels.values() if k.owner == owner)


def pushed_utterances(emulator: Emulator) -> list[list[str]]:
    """The `utterances` each push carried, in the order the pushes came, read from the
    notebooks the emulator received. (Not by slug: a request to another endpoint is another
    job, whose slug's id may sort either way.)"""
    pushed = []
    versions = sorted(
        ((kernel, version) for kernel in emulator.store.kernels.values()
         for version in kernel.versions),
        key=lambda pair: pair[1].created_at,
    )
    for kernel, version in versions:
        source = (emulator.store.version_dir(kernel, version.number) / "source"
                  / "pushed-__notebook__.ipynb")
        notebook = json.loads(source.read_text(encoding="utf-8"))
        injected = next(
            "".join(c["source"]) for c in notebook["cells"]
            if "injected-parameters" in c["metadata"].get("tags", [])
        )
        scope: dict = {}
        exec(injected, scope)  # the injected cell holds only literal assignments
        pushed.append(scope["utterances"] or [scope["text"]])
    return pushed


def kernels(emulator: Emulator, owner: str = USER) -> list[str]:
    return sorted(k.slug for k in emulator.store.kernels.values() if k.owner == owner)


def assert_verified(result: kaggletts.Result, texts: list[str]) -> None:
    clips = result.scraps["clips"]
    assert [c["text"] for c in clips] == texts
    assert len(result.audio) == len(texts)
    for path, clip in zip(result.audio, clips, strict=True):
        assert path.is_absolute() and path.is_file()
        assert sha256_of(path) == clip["sha256"]
        with wave.open(str(path)) as audio:
            assert audio.getsampwidth() == 2 and audio.getnframes() > 1000


# -- clients in processes of their own (killed, interrupted, run twice at once) ----

CLIENT = textwrap.dedent("""
    import signal
    import sys
    import kaggletts
    # The tests stop this client with SIGINT: started from a background job it would
    # inherit SIGINT ignored.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    from kaggletts.backends.kaggle.credentials import Credentials
    from kaggletts.backends.kaggle.polling import PollSchedule
    url, out, key, texts = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
    result = kaggletts.execute(
        "espeak", {"utterances": texts}, backend="kaggle", output_dir=out, endpoint=url,
        credentials=Credentials("alice", key=key), keep_kernels=True, settle_wait=0.2,
        poll=PollSchedule(first=0.2, fraction=0.1, cap=1.0))
    print(" ".join(str(p) for p in result.audio))
""")
CRASH_TEXTS = [f"Crash test line {n}." for n in range(3)]


def start_client(emulator: Emulator, out: Path, *texts: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", CLIENT, emulator.url, str(out), KEY, *(texts or CRASH_TEXTS)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_until(condition, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


def record_of(out: Path) -> dict:
    return json.loads(next(out.rglob("job.json")).read_text())
