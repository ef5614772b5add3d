"""The Kaggle backend when things go wrong, against the emulator in its default mode (the
least real Kaggle is known to do): crashed and concurrent clients, lost replies, outages,
interrupts, deadlines, damaged records, jobs moved between endpoints."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from helpers import (
    CRASH_TEXTS,
    FAST,
    KEY,
    USER,
    assert_verified,
    cli_env,
    kaggletts_cli,
    kernels,
    lines,
    pushes,
    record_of,
    run_kaggle,
    start_client,
    wait_until,
)

import kaggletts
from kaggletts.backends.kaggle.retry import RetryPolicy
from kaggletts.emulator import Emulator, Faults, Latency, Quirks
from kaggletts.errors import LeftOnKaggle

pytestmark = pytest.mark.slow

def wait_for_push(emulator: Emulator, count: int = 1) -> None:
    wait_until(lambda: pushes(emulator) >= count, "the client never pushed")


def kill_after_push(emulator: Emulator, out: Path) -> None:
    """Start a client for CRASH_TEXTS and SIGKILL it once its push has reached Kaggle."""
    client = start_client(emulator, out)
    wait_for_push(emulator)
    client.send_signal(signal.SIGKILL)
    client.wait(timeout=30)


def test_a_killed_client_resumes_without_a_second_push(tmp_path):
    with Emulator(
        state_dir=tmp_path / "state", users={USER: KEY}, latency=Latency(cold_start=3.0)
    ) as emulator:
        kill_after_push(emulator, tmp_path / "out")
        assert not list((tmp_path / "out").rglob("*.wav")), "killed before the download"

        result = run_kaggle(emulator, tmp_path / "out", {"utterances": CRASH_TEXTS})
        assert_verified(result, CRASH_TEXTS)
        assert pushes(emulator) == 1


def test_a_damaged_record_is_rebuilt_from_what_kaggle_holds(tmp_path):
    with Emulator(
        state_dir=tmp_path / "state", users={USER: KEY}, latency=Latency(cold_start=2.0)
    ) as emulator:
        kill_after_push(emulator, tmp_path / "out")
        record = next((tmp_path / "out").rglob("job.json"))
        record.write_text(record.read_text()[:57])

        result = run_kaggle(emulator, tmp_path / "out", {"utterances": CRASH_TEXTS})
        assert_verified(result, CRASH_TEXTS)
        assert pushes(emulator) == 1, "the landed push was found, not made again"


def test_two_identical_requests_at_once_make_one_push(tmp_path):
    with Emulator(
        state_dir=tmp_path / "state", users={USER: KEY}, latency=Latency(cold_start=1.0)
    ) as emulator:
        first = start_client(emulator, tmp_path / "out")
        time.sleep(0.2)
        second = start_client(emulator, tmp_path / "out")
        outputs = [client.communicate(timeout=120) for client in (first, second)]
        assert [c.returncode for c in (first, second)] == [0, 0], outputs
        assert outputs[0][0] == outputs[1][0], "both got the same audio files"
        assert pushes(emulator) == 1


def test_an_api_outage_leaves_the_job_running_and_attach_collects_it(tmp_path):
    """Every status call fails past the retry policy: nothing is cancelled, the run ends
    saying how to pick the job up (exit 3 from the CLI), and attach later does so with no
    second push."""
    with Emulator(
        state_dir=tmp_path / "state", users={USER: KEY}, latency=Latency(cold_start=1.0)
    ) as emulator:
        out = tmp_path / "o"
        emulator.fail_next("GetKernelSessionStatus", "503", times=FAST["retry"].attempts)
        with pytest.raises(LeftOnKaggle) as outage:
            run_kaggle(emulator, out, {"text": "Through the outage."}, outage_wait=0)
        assert "still running on Kaggle" in str(outage.value) and outage.value.exit_code == 3
        assert str(outage.value).count("kaggletts attach") == 1
        assert emulator.calls["CancelKernelSession"] == 0
        assert record_of(out)["state"] == "detached"

        env = cli_env(emulator, KAGGLETTS_OUTPUT=str(out))
        attached = kaggletts_cli("attach", record_of(out)["job_id"], "--json", env=env)
        assert attached.returncode == 0, attached.stderr
        assert len(json.loads(attached.stdout)["audio"]) == 1
        assert emulator.calls["SaveKernel"] == 1 and kernels(emulator) == [], "deleted after"


def test_an_outage_longer_than_each_calls_retries_is_ridden_out(tmp_path):
    with Emulator(
        state_dir=tmp_path / "state", users={USER: KEY}, latency=Latency(cold_start=1.0)
    ) as emulator:
        emulator.fail_next("GetKernelSessionStatus", "503", times=3 * FAST["retry"].attempts)
        emulator.fail_next("ListKernelSessionOutput", "drop", times=3)
        result = run_kaggle(emulator, tmp_path / "out", {"text": "Patience."})
        assert_verified(result, ["Patience."])
        assert pushes(emulator) == 1 and emulator.calls["CancelKernelSession"] == 0


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM])
def test_stopping_the_client_says_what_happens_and_cancels_nothing_it_cannot(tmp_path, stop):
    with Emulator(
        state_dir=tmp_path / "state", users={USER: KEY}, latency=Latency(cold_start=60.0)
    ) as emulator:
        env = cli_env(emulator, KAGGLETTS_OUTPUT=str(tmp_path / "o"))
        client = subprocess.Popen(
            [
                str(Path(sys.executable).with_name("kaggletts")),
                "run",
                "espeak",
                "-p",
                "text",
                "Stop me.",
                "--backend",
                "kaggle",
            ],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        wait_for_push(emulator)
        wait_until(lambda: record_of(tmp_path / "o")["state"] == "running", "never ran")
        time.sleep(0.5)
        client.send_signal(stop)
        _, stderr = client.communicate(timeout=60)
        assert client.returncode == 130, stderr
        assert "1 session keeps running on Kaggle" in stderr and ", time limit " in stderr
        assert "kaggletts attach" in stderr and "Traceback" not in stderr
        assert emulator.calls["CancelKernelSession"] == 0
        assert record_of(tmp_path / "o")["state"] == "interrupted"
        [slug] = kernels(emulator)
        assert emulator.status(USER, slug) in ("QUEUED", "RUNNING")


def test_an_interrupt_after_the_session_ended_says_how_to_collect_it(tmp_path):
    """Ctrl-C while a finished session's outputs download: nothing runs on Kaggle, and
    the message says so and how to collect them, in full."""
    with Emulator(
        state_dir=tmp_path / "state", users={USER: KEY}, latency=Latency(request_delay=0.5)
    ) as emulator:
        out = tmp_path / "o"
        client = subprocess.Popen(
            [str(Path(sys.executable).with_name("kaggletts")), "run", "espeak", "-p", "text",
             "Collect me later.", "--backend", "kaggle"],
            env=cli_env(emulator, KAGGLETTS_OUTPUT=str(out)),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

        def shard_state() -> str | None:
            shards = record_of(out).get("run", {}).get("shards") if out.exists() else None
            return shards[0]["state"] if shards else None

        wait_until(lambda: shard_state() == "complete", "the session never completed", 120)
        client.send_signal(signal.SIGINT)
        _, stderr = client.communicate(timeout=60)
        assert client.returncode == 130, stderr
        job = record_of(out)["job_id"]
        assert stderr.strip().splitlines()[-1] == (
            f"error: interrupted; no session of job {job} runs on Kaggle; "
            f"`kaggletts attach {job}` collects what they made"
        )
        emulator.latency = Latency()
        attached = subprocess.run(
            [str(Path(sys.executable).with_name("kaggletts")), "attach", job],
            env=cli_env(emulator, KAGGLETTS_OUTPUT=str(out)), capture_output=True, text=True,
            timeout=120,
        )
        assert attached.returncode == 0, attached.stderr
        assert emulator.calls["SaveKernel"] == 1, "collected without a second push"


def test_where_a_session_id_is_known_ctrl_c_cancels_it(tmp_path):
    with Emulator(
        state_dir=tmp_path / "state",
        users={USER: KEY},
        latency=Latency(cold_start=60.0),
        assume={"session-id-in-url"},
    ) as emulator:
        client = start_client(emulator, tmp_path / "out")
        wait_for_push(emulator)
        wait_until(lambda: record_of(tmp_path / "out")["state"] == "running", "never ran")
        client.send_signal(signal.SIGINT)
        _, stderr = client.communicate(timeout=60)
        assert client.returncode != 0 and "cancelled 1 Kaggle session" in stderr
        [slug] = kernels(emulator)
        assert emulator.wait_for(USER, slug, timeout=30).status.startswith("CANCEL")


def test_the_deadline_is_kept_inside_the_session(tmp_path):
    """No remote cancel exists: the notebook itself starts no line after the deadline,
    and the session's own time limit is set from it."""
    with Emulator(
        state_dir=tmp_path / "state", users={USER: KEY}, latency=Latency(cold_start=3.0)
    ) as emulator:
        with pytest.raises(kaggletts.RunFailed, match="deadline") as failure:
            run_kaggle(emulator, tmp_path / "out", {"utterances": lines(3)}, timeout=1.0)
        assert "none of its 3 lines was spoken" in str(failure.value)
        [slug] = kernels(emulator)
        assert emulator.status(USER, slug) == "COMPLETE"
        assert emulator.calls["CancelKernelSession"] == 0
        pushed = next((tmp_path / "out").rglob("kernel/notebook.ipynb")).read_text()
        assert "deadline = " in pushed
        metadata = json.loads(next((tmp_path / "out").rglob("kernel-metadata.json")).read_text())
        assert metadata["session_timeout_seconds"] < 3600


def test_the_cpu_session_cap_is_waited_out(tmp_path):
    with Emulator(
        state_dir=tmp_path / "state",
        users={USER: KEY},
        cpu_sessions=1,
        latency=Latency(cold_start=2.0),
    ) as emulator:
        blocker = threading.Thread(
            target=run_kaggle, args=(emulator, tmp_path / "b", {"text": "I hold the slot."})
        )
        blocker.start()
        wait_for_push(emulator)
        result = run_kaggle(emulator, tmp_path / "out", {"utterances": lines(2)})
        blocker.join(timeout=120)
        assert_verified(result, lines(2))
        assert emulator.calls["SaveKernel"] > 2, "the second push was refused at least once"
        assert pushes(emulator) == 2


def test_a_status_kaggle_has_not_named_before_is_waited_through(tmp_path):
    quirks = Quirks(unknown_status="PAUSED_FOR_MAINTENANCE", unknown_status_seconds=1.5)
    with Emulator(state_dir=tmp_path / "state", users={USER: KEY}, quirks=quirks) as emulator:
        result = run_kaggle(emulator, tmp_path / "out", {"text": "New states happen."})
        assert_verified(result, ["New states happen."])


def test_a_job_moved_to_another_endpoint_never_adopts_the_other_run(tmp_path):
    out = tmp_path / "out"
    with Emulator(
        state_dir=tmp_path / "a", users={USER: KEY}, latency=Latency(cold_start=60.0)
    ) as first:
        kill_after_push(first, out)
        with Emulator(state_dir=tmp_path / "b", users={USER: KEY}) as second:
            result = run_kaggle(second, out, {"utterances": CRASH_TEXTS})
            assert_verified(result, CRASH_TEXTS)
            assert pushes(second) == 1 and pushes(first) == 1
            assert len({p.parent for p in out.rglob("job.json")}) == 2, "two jobs, two folders"


def test_force_refuses_a_job_whose_session_may_still_run(tmp_path):
    with Emulator(
        state_dir=tmp_path / "state", users={USER: KEY}, latency=Latency(cold_start=60.0)
    ) as emulator:
        kill_after_push(emulator, tmp_path / "out")
        with pytest.raises(kaggletts.UsageError, match="may still run on Kaggle"):
            run_kaggle(emulator, tmp_path / "out", {"utterances": CRASH_TEXTS}, force=True)
        assert pushes(emulator) == 1


def test_attach_never_pushes_a_failed_job_again(tmp_path, failing_notebook):
    with Emulator(state_dir=tmp_path / "state", users={USER: KEY}) as emulator:
        env = cli_env(emulator, KAGGLETTS_OUTPUT=str(tmp_path / "o"))
        failed = kaggletts_cli(
            "run",
            str(failing_notebook),
            "-p",
            "text",
            "x",
            "--backend",
            "kaggle",
            env=env,
            timeout=300,
        )
        assert failed.returncode == 1 and "cannot say" in failed.stderr
        job_id = record_of(tmp_path / "o")["job_id"]
        attached = kaggletts_cli("attach", job_id, env=env)
        assert attached.returncode == 2 and "never pushes again" in attached.stderr
        assert pushes(emulator) == 1


def test_job_commands_status_attach_cancel_and_quota(tmp_path):
    with Emulator(
        state_dir=tmp_path / "state", users={USER: KEY}, latency=Latency(cold_start=2.0)
    ) as emulator:
        env = cli_env(emulator, KAGGLETTS_OUTPUT=str(tmp_path / "o"))
        kill_after_push(emulator, tmp_path / "o")

        listed = kaggletts_cli("jobs", env=env)
        assert listed.returncode == 0 and listed.stdout.startswith("JOB")
        job_id = listed.stdout.splitlines()[1].split()[0]
        status = kaggletts_cli("status", job_id[:6], env=env)
        assert status.returncode == 0, status.stderr
        assert f"{USER}/kaggletts-espeak-{job_id[:10]}-1-1" in status.stdout

        # Without a terminal to ask on and without --yes, nothing is deleted.
        unasked = kaggletts_cli("cancel", job_id, env=env)
        assert unasked.returncode == 2 and "add --yes" in unasked.stderr
        assert "Lines they spoke are lost unless" in unasked.stdout

        attached = kaggletts_cli("attach", job_id, "--json", env=env)
        assert attached.returncode == 0, attached.stderr
        assert len(json.loads(attached.stdout)["audio"]) == 3
        assert emulator.calls["SaveKernel"] == 1 and kernels(emulator) == [], "deleted after"

        quota = kaggletts_cli("quota", env=env)
        assert quota.returncode == 0 and "h left of 30.0 h" in quota.stdout

        unknown = kaggletts_cli("status", "ffffffff", env=env)
        assert unknown.returncode == 2 and "no job" in unknown.stderr

        (tmp_path / "o" / "espeak" / "0123456789abcdef").mkdir(parents=True)
        (tmp_path / "o" / "espeak" / "0123456789abcdef" / "job.json").write_text("[]")
        listed = kaggletts_cli("jobs", env=env)
        assert listed.returncode == 0 and job_id in listed.stdout


def test_a_download_outage_is_picked_up_again_without_a_second_push(tmp_path, monkeypatch):
    import requests

    from kaggletts.backends.kaggle import download

    def network_down(*_args, **_kwargs):
        raise requests.ConnectionError("network down, see http://signed.example/?sig=SECRET")

    texts = lines(2)
    with Emulator(state_dir=tmp_path / "state", users={USER: KEY}) as emulator:
        with monkeypatch.context() as patch:
            patch.setattr(download.Downloader, "_stream", network_down)
            with pytest.raises(LeftOnKaggle) as failure:
                run_kaggle(
                    emulator,
                    tmp_path / "out",
                    {"utterances": texts},
                    retry=RetryPolicy(attempts=2, first_wait=0.01, max_wait=0.02),
                )
        assert "could not download 0-kaggletts-ledger.jsonl" in str(failure.value)
        assert "kaggletts attach" in str(failure.value) and "SECRET" not in str(failure.value)
        assert not list((tmp_path / "out").rglob("*.part"))

        result = run_kaggle(emulator, tmp_path / "out", {"utterances": texts})
        assert_verified(result, texts)
        assert pushes(emulator) == 1


def test_lost_push_replies_at_half_the_pushes_never_cost_a_second_session(tmp_path):
    faults = Faults(rate=0.5, kinds=("lost-reply",), retry_after_seconds=0)
    with Emulator(
        state_dir=tmp_path / "state", users={USER: KEY}, seed=11, faults=faults
    ) as emulator:
        for job in range(4):
            texts = lines(1, f"job {job} ")
            assert_verified(run_kaggle(emulator, tmp_path / "out", {"utterances": texts}), texts)
        assert pushes(emulator) == 4
        assert emulator.faults_injected[("SaveKernel", "lost-reply")] >= 1
