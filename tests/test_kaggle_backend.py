"""The Kaggle backend end to end against the emulator: real HTTP, real papermill runs,
the official client library, with Kaggle's rough edges switched on."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import textwrap
import time
import wave
from pathlib import Path

import pytest
import requests

import kaggletts
from kaggletts.backends.kaggle import KaggleBackend
from kaggletts.backends.kaggle.credentials import Credentials, find_credentials
from kaggletts.backends.kaggle.polling import PollSchedule
from kaggletts.backends.kaggle.retry import RetryPolicy
from kaggletts.emulator import Emulator, Faults, Latency, Quirks
from kaggletts.result import sha256_of

pytestmark = pytest.mark.slow

USER, KEY = "alice", "alice-secret-key-7f3e9"
OTHER_KEY = "bob-secret-key-0c41"
FAST = {
    "retry": RetryPolicy(attempts=12, first_wait=0.05, max_wait=0.5, max_total=60),
    "poll": PollSchedule(first=0.2, fraction=0.1, cap=1.0),
    "cap_wait": 0.5,
    "outputs_wait": 30.0,
}


def lines(count: int, tag: str = "") -> list[str]:
    return [f"Line {n} {tag}of the batch, spoken on the emulator." for n in range(1, count + 1)]


def backend(emulator: Emulator, **overrides) -> KaggleBackend:
    return KaggleBackend(
        endpoint=emulator.url, credentials=Credentials(USER, key=KEY), **{**FAST, **overrides}
    )


def run_kaggle(emulator: Emulator, out: Path, params: dict, **overrides) -> kaggletts.Result:
    options = {**FAST, **overrides}
    return kaggletts.execute(
        "espeak",
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


def assert_verified(result: kaggletts.Result, texts: list[str]) -> None:
    clips = result.scraps["clips"]
    assert [c["text"] for c in clips] == texts
    assert len(result.audio) == len(texts)
    for path, clip in zip(result.audio, clips, strict=True):
        assert path.is_absolute() and path.is_file()
        assert sha256_of(path) == clip["sha256"]
        with wave.open(str(path)) as audio:
            assert audio.getsampwidth() == 2 and audio.getnframes() > 1000


@pytest.fixture
def emulator(tmp_path: Path):
    with Emulator(
        state_dir=tmp_path / "state", users={USER: KEY, "bob": OTHER_KEY}, seed=1
    ) as running:
        yield running


def test_twenty_line_batch_runs_on_the_emulator_with_one_push(emulator, tmp_path):
    texts = lines(20)
    result = run_kaggle(emulator, tmp_path / "out", {"utterances": texts})

    assert_verified(result, texts)
    assert result.backend == "kaggle" and result.scraps["run"]["notebook"] == "espeak"
    assert emulator.push_count(USER, "kaggletts-espeak-1") == 1
    kernel_log = json.loads((result.directory / "kernel.log").read_text())
    assert any("[20/20]" in entry["data"] for entry in kernel_log)

    again = run_kaggle(emulator, tmp_path / "out", {"utterances": texts})
    assert again.cached and again.audio == result.audio
    assert emulator.push_count(USER, "kaggletts-espeak-1") == 1
    metadata = json.loads((result.directory / "kernel" / "kernel-metadata.json").read_text())
    assert not metadata["enable_gpu"] and metadata["machine_shape"] is None
    assert backend(emulator).quota().used_seconds == 0, "a CPU kernel uses no GPU quota"


def test_cli_runs_on_the_emulator_and_prints_json(emulator, tmp_path):
    batch = tmp_path / "batch.yaml"
    batch.write_text("utterances:\n" + "".join(f"  - {t}\n" for t in lines(20)))
    out = str(tmp_path / "out")
    done = kaggletts_cli(
        "run",
        "espeak",
        "-f",
        str(batch),
        "--backend",
        "kaggle",
        "--out",
        out,
        "--json",
        env=cli_env(emulator),
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    document = json.loads(done.stdout)
    assert document["status"] == "complete" and len(document["audio"]) == 20
    for path, clip in zip(document["audio"], document["scraps"]["clips"], strict=True):
        assert sha256_of(Path(path)) == clip["sha256"]
    assert KEY not in done.stdout + done.stderr


def test_papermill_engine_runs_on_the_emulator(emulator, tmp_path):
    params = tmp_path / "params.yaml"
    params.write_text("utterances:\n" + "".join(f"  - {t}\n" for t in lines(20)))
    out = tmp_path / "executed.ipynb"
    env = cli_env(emulator, KAGGLETTS_OUTPUT=str(tmp_path / "jobs"))
    notebook = kaggletts.find_notebook("espeak").path
    done = subprocess.run(
        [
            str(Path(sys.executable).with_name("papermill")),
            str(notebook),
            str(out),
            "-f",
            str(params),
            "--engine",
            "kaggle",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr

    import scrapbook

    clips = scrapbook.read_notebook(str(out)).scraps["clips"].data
    assert [c["text"] for c in clips] == lines(20)
    job_dir = next((tmp_path / "jobs" / "espeak").iterdir())
    for clip in clips:
        assert sha256_of(job_dir / clip["file"]) == clip["sha256"]


@pytest.mark.parametrize(
    "kinds", [("500", "502", "503"), ("429",), ("drop", "lost-reply"), ("truncate",)]
)
def test_each_fault_kind_is_ridden_out(tmp_path, kinds):
    with Emulator(
        state_dir=tmp_path / "state",
        users={USER: KEY},
        seed=7,
        faults=Faults(rate=0.3, kinds=kinds, retry_after_seconds=0),
    ) as emulator:
        texts = lines(3, "-".join(kinds) + " ")
        result = run_kaggle(emulator, tmp_path / "out", {"utterances": texts})
        assert_verified(result, texts)
        assert emulator.push_count(USER, "kaggletts-espeak-1") == 1
        assert sum(n for (_, kind), n in emulator.faults_injected.items() if kind in kinds) > 0


def test_twenty_runs_under_rough_edges_each_push_once(tmp_path):
    faults = Faults(
        rate=0.2,
        kinds=("500", "503", "429", "drop", "lost-reply", "truncate"),
        retry_after_seconds=0,
    )
    quirks = Quirks(stale_status_seconds=1.0, late_outputs_seconds=0.5)
    with Emulator(
        state_dir=tmp_path / "state", users={USER: KEY}, seed=3, faults=faults, quirks=quirks
    ) as emulator:
        for run in range(20):
            texts = lines(2, f"run {run} ")
            result = run_kaggle(emulator, tmp_path / "out", {"utterances": texts})
            assert_verified(result, texts)
            assert emulator.push_count(USER, "kaggletts-espeak-1") == run + 1
        assert sum(emulator.faults_injected.values()) >= 10


def test_a_lost_push_reply_attaches_to_the_version_that_landed(emulator, tmp_path):
    emulator.fail_next("SaveKernel", "lost-reply")
    texts = lines(2)
    result = run_kaggle(emulator, tmp_path / "out", {"utterances": texts})
    assert_verified(result, texts)
    assert emulator.push_count(USER, "kaggletts-espeak-1") == 1


CLIENT = textwrap.dedent("""
    import sys
    import kaggletts
    from kaggletts.backends.kaggle.credentials import Credentials
    from kaggletts.backends.kaggle.polling import PollSchedule
    url, out, key, texts = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
    kaggletts.execute("espeak", {"utterances": texts}, backend="kaggle", output_dir=out,
                      endpoint=url, credentials=Credentials("alice", key=key),
                      poll=PollSchedule(first=0.2, fraction=0.1, cap=1.0))
""")
CRASH_TEXTS = [f"Crash test line {n}." for n in range(3)]


def start_client_with(emulator: Emulator, out: Path, *texts: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", CLIENT, emulator.url, str(out), KEY, *texts],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def start_client(emulator: Emulator, out: Path) -> subprocess.Popen:
    return start_client_with(emulator, out, *CRASH_TEXTS)


def wait_for_version(emulator: Emulator, count: int, slug: str = "kaggletts-espeak-1") -> None:
    deadline = time.monotonic() + 60
    while emulator.push_count(USER, slug) < count:
        assert time.monotonic() < deadline, "the client never pushed"
        time.sleep(0.05)


def wait_for_record(out: Path, ready) -> None:
    """Until some job record under `out` satisfies `ready`: the client wrote it to disk."""
    deadline = time.monotonic() + 60
    while not any(ready(json.loads(p.read_text())) for p in out.rglob("job.json")):
        assert time.monotonic() < deadline, "no job record got there"
        time.sleep(0.05)


def wait_for_push(emulator: Emulator) -> None:
    wait_for_version(emulator, 1)


def test_a_killed_client_resumes_without_a_second_push(tmp_path):
    with Emulator(
        state_dir=tmp_path / "state", users={USER: KEY}, latency=Latency(cold_start=3.0)
    ) as emulator:
        client = start_client(emulator, tmp_path / "out")
        wait_for_push(emulator)
        client.send_signal(signal.SIGKILL)
        client.wait(timeout=30)
        assert not list((tmp_path / "out").rglob("*.wav")), "killed before the download"

        result = run_kaggle(emulator, tmp_path / "out", {"utterances": CRASH_TEXTS})
        assert_verified(result, CRASH_TEXTS)
        assert emulator.push_count(USER, "kaggletts-espeak-1") == 1


def test_ctrl_c_cancels_the_session_on_kaggle(tmp_path):
    with Emulator(
        state_dir=tmp_path / "state", users={USER: KEY}, latency=Latency(cold_start=60.0)
    ) as emulator:
        client = start_client(emulator, tmp_path / "out")
        wait_for_push(emulator)
        time.sleep(0.5)
        client.send_signal(signal.SIGINT)
        _, stderr = client.communicate(timeout=60)
        assert client.returncode != 0
        assert emulator.wait_for(USER, "kaggletts-espeak-1", timeout=30).status.startswith("CANCEL")
        record = json.loads(next((tmp_path / "out").rglob("job.json")).read_text())
        assert record["state"] == "cancelled" and record["cancel_reason"] == "interrupted"
        assert KEY not in stderr


def test_the_deadline_cancels_the_session(tmp_path):
    with Emulator(
        state_dir=tmp_path / "state", users={USER: KEY}, latency=Latency(cold_start=60.0)
    ) as emulator:
        with pytest.raises(kaggletts.RunFailed, match="deadline"):
            run_kaggle(emulator, tmp_path / "out", {"text": "Too slow."}, timeout=3.0)
        version = emulator.wait_for(USER, "kaggletts-espeak-1", timeout=30)
        assert version.status.startswith("CANCEL")


def test_a_full_session_cap_is_waited_out(tmp_path):
    with Emulator(
        state_dir=tmp_path / "state",
        users={USER: KEY},
        gpu_sessions=1,
        latency=Latency(cold_start=2.0),
    ) as emulator:
        other = backend(emulator)
        blocker = kaggletts.api.prepare(
            "espeak", {"text": "I hold the only session."}, "kaggle", tmp_path / "blocker"
        )
        other._plan(blocker, other.remote())
        other._push(blocker, other.remote(), other._shard(blocker, 1), time.monotonic() + 60)

        texts = lines(2)
        result = run_kaggle(emulator, tmp_path / "out", {"utterances": texts}, shards=1)
        assert_verified(result, texts)
        assert emulator.calls["SaveKernel"] > 2, "the second push was refused at least once"
        assert emulator.push_count(USER, "kaggletts-espeak-1") == 2


def test_fan_out_over_three_shards_merges_in_input_order(emulator, tmp_path):
    texts = lines(4)  # uneven on purpose: 2 + 1 + 1, no empty shard
    result = run_kaggle(emulator, tmp_path / "out", {"utterances": texts}, shards=3)
    assert_verified(result, texts)
    assert len(result.scraps["shards"]) == 3
    for shard in (1, 2, 3):
        assert emulator.push_count(USER, f"kaggletts-espeak-{shard}") == 1


def test_a_failing_notebook_names_its_cell_and_exception(emulator, tmp_path):
    with pytest.raises(kaggletts.RunFailed) as failure:
        run_kaggle(
            emulator,
            tmp_path / "out",
            {"utterances": ["Fine.", {"text": "Broken.", "voice": "xx-nowhere"}]},
        )
    assert failure.value.cell and "synthesize" in failure.value.cell
    assert "unknown eSpeak NG voice 'xx-nowhere'" in str(failure.value)


def test_the_key_appears_nowhere(emulator, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    out = tmp_path / "out"
    run_kaggle(emulator, out, {"utterances": lines(2)})
    with pytest.raises(kaggletts.RunFailed) as failure:
        run_kaggle(emulator, out, {"text": "x", "voice": "xx-nowhere"})
    searched = [p for root in (out, tmp_path / "state") for p in root.rglob("*") if p.is_file()]
    assert any(p.name == "notebook.ipynb" for p in searched), "the pushed notebook was searched"
    for path in searched:
        assert KEY.encode() not in path.read_bytes(), path
    assert KEY not in caplog.text and KEY not in str(failure.value)
    assert KEY not in repr(Credentials(USER, key=KEY))


def test_credentials_follow_the_clients_lookup_order(tmp_path, caplog):
    home = tmp_path / "home"
    (home / ".kaggle").mkdir(parents=True)
    with pytest.raises(kaggletts.UsageError, match="KAGGLE_API_TOKEN"):
        find_credentials({}, home)

    kaggle_json = home / ".kaggle" / "kaggle.json"
    kaggle_json.write_text(json.dumps({"username": "carol", "key": "k1"}))
    kaggle_json.chmod(0o644)
    assert find_credentials({}, home).username == "carol"
    assert "readable by other users" in caplog.text

    assert find_credentials({"KAGGLE_USERNAME": "dan", "KAGGLE_KEY": "k2"}, home).username == "dan"
    token = find_credentials(
        {"KAGGLE_API_TOKEN": "tok", "KAGGLE_USERNAME": "dan", "KAGGLE_KEY": "k2"}, home
    )
    assert token.token == "tok" and token.key is None


def test_polling_is_quick_at_first_and_sparse_later():
    schedule = PollSchedule()
    checks, elapsed = 0, 0.0
    while elapsed < 60:
        elapsed += schedule.interval(elapsed)
        checks += 1
    assert checks <= 20, "no more calls than fixed 3 s polling in the first minute"
    assert schedule.interval(5) <= 2 and schedule.interval(3600) == schedule.cap


def test_a_wrong_key_is_a_clear_error_with_exit_code_2(emulator, tmp_path):
    out = str(tmp_path / "out")
    done = kaggletts_cli(
        "run",
        "espeak",
        "-p",
        "text",
        "Hi",
        "--backend",
        "kaggle",
        "--out",
        out,
        env=cli_env(emulator, KAGGLE_KEY="not-the-key"),
    )
    assert done.returncode == 2
    assert "refused these credentials" in done.stderr and "HTTP 401" in done.stderr
    assert "Traceback" not in done.stderr and "not-the-key" not in done.stderr


def test_job_commands_status_attach_cancel_and_quota(tmp_path):
    with Emulator(
        state_dir=tmp_path / "state", users={USER: KEY}, latency=Latency(cold_start=2.0)
    ) as emulator:
        env = cli_env(emulator, KAGGLETTS_OUTPUT=str(tmp_path / "o"))
        client = start_client(emulator, tmp_path / "o")
        wait_for_push(emulator)
        client.send_signal(signal.SIGKILL)
        client.wait(timeout=30)

        listed = kaggletts_cli("jobs", env=env)
        job_id = listed.stdout.split()[0]
        assert listed.returncode == 0 and "kaggle" in listed.stdout
        status = kaggletts_cli("status", job_id[:6], env=env)
        assert status.returncode == 0, status.stderr
        assert "kaggletts-espeak-1 v1" in status.stdout or "v1 landed" in status.stdout

        attached = kaggletts_cli("attach", job_id, "--json", env=env)
        assert attached.returncode == 0, attached.stderr
        assert len(json.loads(attached.stdout)["audio"]) == 3
        assert emulator.push_count(USER, "kaggletts-espeak-1") == 1

        quota = kaggletts_cli("quota", env=env)
        assert quota.returncode == 0 and "h left of 30.0 h" in quota.stdout

        unknown = kaggletts_cli("status", "ffffffff", env=env)
        assert unknown.returncode == 2 and "no job" in unknown.stderr

        emulator.latency = Latency(cold_start=60.0)
        second = start_client_with(emulator, tmp_path / "o", "A second job.")
        wait_for_version(emulator, 2)
        wait_for_record(tmp_path / "o", lambda r: r.get("shards", [{}])[0].get("version") == 2)
        second.send_signal(signal.SIGKILL)
        second.wait(timeout=30)
        job_two = kaggletts_cli("jobs", env=env).stdout.split()[0]
        cancelled = kaggletts_cli("cancel", job_two, env=env)
        assert cancelled.returncode == 0 and "cancelled 1" in cancelled.stdout
        assert emulator.wait_for(USER, "kaggletts-espeak-1", 2, timeout=30).status.startswith(
            "CANCEL"
        )


def test_a_reference_voice_is_uploaded_once_as_a_private_dataset(tmp_path, standins):
    voice = standins.wav(tmp_path / "voices" / "narrator.wav", 1.5)
    clone = {
        "mode": "voice_clone",
        "model_id": "Qwen/Qwen3-TTS-12Hz-1.7B-Base",
        "ref_audio": str(voice),
        "ref_text": "The reference transcript.",
    }
    with Emulator(
        state_dir=tmp_path / "state", users={USER: KEY}, image_paths=[standins.dir]
    ) as emulator:

        def clone_run(*texts: str) -> kaggletts.Result:
            return kaggletts.execute(
                "qwen",
                {**clone, "utterances": list(texts)},
                backend="kaggle",
                output_dir=tmp_path / "out",
                endpoint=emulator.url,
                credentials=Credentials(USER, key=KEY),
                **FAST,
            )

        first = clone_run("One.", "Two.")
        assert [c["text"] for c in first.clips] == ["One.", "Two."]
        [dataset] = emulator.store.datasets.values()
        assert dataset.is_private and dataset.slug.startswith("kaggletts-voices-")
        metadata = json.loads((first.directory / "kernel" / "kernel-metadata.json").read_text())
        assert metadata["dataset_sources"] == [f"{USER}/{dataset.slug}"]
        assert metadata["enable_gpu"] and metadata["machine_shape"] == "NvidiaTeslaT4"
        assert first.clips[0]["settings"]["ref_audio"] == f"{dataset.slug}/narrator.wav"

        clone_run("Three.")
        assert len(emulator.store.datasets) == 1 and emulator.calls["StartBlobUpload"] == 1

        standins.wav(voice, 2.5)
        clone_run("Four.")
        assert len(emulator.store.datasets) == 2 and emulator.calls["StartBlobUpload"] == 2

        quota = backend(emulator).quota()
        assert 0 < quota.used_seconds < quota.allowed_seconds == 30 * 3600, "GPU runs count"


def test_a_resumed_push_never_adopts_another_jobs_version(emulator, tmp_path):
    """A client killed after recording `pushing` but before its request left: meanwhile
    another job pushes to the same kernel slug. Resuming must push its own version."""
    out = tmp_path / "out"
    own = {"utterances": ["Job A line one.", "Job A line two."]}
    job = kaggletts.api.prepare("espeak", own, "kaggle", out)
    killed = backend(emulator)
    killed._plan(job, killed.remote())
    killed._update_shard(job, 1, state="pushing", before_version=None)

    other = run_kaggle(emulator, out, {"utterances": ["Job B says something else."]})
    assert [c["text"] for c in other.clips] == ["Job B says something else."]

    resumed = run_kaggle(emulator, out, own)
    assert_verified(resumed, own["utterances"])
    assert emulator.push_count(USER, "kaggletts-espeak-1") == 2


def test_a_download_outage_is_picked_up_again_without_a_second_push(
    emulator, tmp_path, monkeypatch
):
    from kaggletts.backends.kaggle import download

    def network_down(*_args, **_kwargs):
        raise requests.ConnectionError("network down, see http://signed.example/?sig=SECRET")

    texts = lines(2)
    with monkeypatch.context() as patch:
        patch.setattr(download.Downloader, "_stream", network_down)
        with pytest.raises(kaggletts.RunFailed) as failure:
            run_kaggle(emulator, tmp_path / "out", {"utterances": texts})
    assert "could not download __notebook__.ipynb" in str(failure.value)
    assert "SECRET" not in str(failure.value)
    assert not list((tmp_path / "out").rglob("*.part"))

    result = run_kaggle(emulator, tmp_path / "out", {"utterances": texts})
    assert_verified(result, texts)
    assert emulator.push_count(USER, "kaggletts-espeak-1") == 1


def test_a_landed_push_is_told_apart_from_another_jobs_with_the_same_parameters(
    emulator, tmp_path
):
    """Job X's push lands but its reply is lost and X dies; job Y then pushes the same
    shard parameters to the same slug. X must resume on its own version, not Y's."""
    out = tmp_path / "out"
    x_lines, y_lines = lines(4, "shared "), lines(2, "shared ") + ["Y's own line three."]
    job_x = kaggletts.api.prepare("espeak", {"utterances": x_lines}, "kaggle", out)
    dying = backend(emulator, shards=2, retry=RetryPolicy(attempts=1, first_wait=0.01))
    dying._plan(job_x, dying.remote())
    emulator.fail_next("SaveKernel", "lost-reply")
    with pytest.raises(kaggletts.KaggleTTSError):
        dying._push(job_x, dying.remote(), dying._shard(job_x, 1), time.monotonic() + 60)
    assert dying._shard(job_x, 1)["state"] == "pushing"
    assert emulator.push_count(USER, "kaggletts-espeak-1") == 1

    y = run_kaggle(emulator, out, {"utterances": y_lines}, shards=2)
    assert [c["text"] for c in y.clips] == y_lines

    x = run_kaggle(emulator, out, {"utterances": x_lines}, shards=2)
    assert_verified(x, x_lines)
    assert dying._shard(job_x, 1)["version"] == 1, "X adopted its own landed push"
    assert emulator.push_count(USER, "kaggletts-espeak-1") == 2
