"""`kaggletts doctor` against the emulator: every check passes on a healthy setup, and each
broken one (wrong key, unreachable endpoint, exhausted quota, a readable key file, a bad
setting) is named as the failing check, with the checks that depend on it skipped."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import nbformat
import pytest

from kaggletts.backends.kaggle.credentials import Credentials
from kaggletts.backends.kaggle.remote import KaggleRemote
from kaggletts.doctor import Check, Verdict, examine, passed
from kaggletts.emulator import Emulator, Limits

pytestmark = pytest.mark.slow

USER, KEY = "alice", "alice-secret-key-7f3e9"


@pytest.fixture
def emulator(tmp_path: Path):
    with Emulator(state_dir=tmp_path / "state", users={USER: KEY}, seed=1) as running:
        yield running


@pytest.fixture
def machine(monkeypatch, tmp_path: Path) -> Path:
    """A user with no credentials, settings or project anywhere; returns their home."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    for name in (
        "KAGGLE_API_TOKEN",
        "KAGGLE_USERNAME",
        "KAGGLE_KEY",
        "KAGGLE_CONFIG_DIR",
        "KAGGLETTS_OUTPUT",
        "KAGGLETTS_KAGGLE_ENDPOINT",
        "KAGGLETTS_BACKEND",
    ):
        monkeypatch.delenv(name, raising=False)
    (tmp_path / "work").mkdir()
    monkeypatch.chdir(tmp_path / "work")
    return home


def log_in(monkeypatch, url: str, key: str = KEY) -> None:
    monkeypatch.setenv("KAGGLE_USERNAME", USER)
    monkeypatch.setenv("KAGGLE_KEY", key)
    monkeypatch.setenv("KAGGLETTS_KAGGLE_ENDPOINT", url)


def verdicts(findings) -> dict[Check, Verdict]:
    return {finding.check: finding.verdict for finding in findings}


def finding(findings, check: Check):
    return next(f for f in findings if f.check is check)


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_a_healthy_setup_passes_every_check_with_a_round_trip(
    emulator, machine, monkeypatch, run_cli
):
    log_in(monkeypatch, emulator.url)
    done = run_cli("doctor", "--run", "--json")
    report = json.loads(done.stdout)
    assert done.code == 0 and report["ok"], done.output
    assert [c["check"] for c in report["checks"]] == [check.value for check in Check]
    assert {c["verdict"] for c in report["checks"]} == {"ok"}
    by_name = {c["check"]: c for c in report["checks"]}
    assert "KAGGLE_USERNAME/KAGGLE_KEY" in by_name["credentials"]["detail"]
    assert f"as {USER}" in by_name["login"]["detail"]
    assert "30.0 of 30.0 GPU hours left" in by_name["gpu-quota"]["detail"]
    # The round trip really pushed one CPU kernel, downloaded its outputs and tidied it away.
    assert emulator.calls["SaveKernel"] == 1 and emulator.calls["ListKernelSessionOutput"] >= 1
    assert emulator.calls["DeleteKernel"] == 1 and not emulator.store.kernels
    assert "downloaded" in by_name["round-trip"]["detail"]
    assert not [v for k in emulator.store.kernels.values() for v in k.versions if v.uses_gpu]


def test_without_run_the_round_trip_is_skipped_and_the_rest_passes(emulator, machine, monkeypatch):
    log_in(monkeypatch, emulator.url)
    findings = examine()
    assert passed(findings)
    assert finding(findings, Check.ROUND_TRIP).verdict is Verdict.SKIP
    assert emulator.calls["SaveKernel"] == 0, "nothing is pushed unless asked"


def test_a_wrong_key_fails_the_login_and_skips_what_needs_it(
    emulator, machine, monkeypatch, run_cli
):
    log_in(monkeypatch, emulator.url, key="not-the-key")
    done = run_cli("doctor", "--run")
    assert done.code == 1
    lines = {line.split()[1]: line for line in done.stdout.splitlines() if line[:1] != " "}
    assert lines["login"].startswith("FAIL") and "refused these credentials" in lines["login"]
    assert lines["credentials"].startswith("ok"), "found, just not accepted"
    assert lines["gpu-quota"].startswith("skip") and lines["round-trip"].startswith("skip")
    assert "fix: create a new API token" in done.stdout
    assert emulator.calls["SaveKernel"] == 0


def test_an_unreachable_endpoint_is_named_with_where_it_was_set(machine, monkeypatch):
    log_in(monkeypatch, f"http://127.0.0.1:{closed_port()}")
    findings = examine(round_trip=True)
    endpoint = finding(findings, Check.ENDPOINT)
    assert endpoint.verdict is Verdict.FAIL and "did not answer" in endpoint.detail
    assert "$KAGGLETTS_KAGGLE_ENDPOINT" in endpoint.fix
    assert verdicts(findings)[Check.LOGIN] is Verdict.SKIP
    assert verdicts(findings)[Check.ROUND_TRIP] is Verdict.SKIP
    assert not passed(findings)


def test_the_endpoint_option_wins_over_the_settings(emulator, machine, monkeypatch):
    log_in(monkeypatch, f"http://127.0.0.1:{closed_port()}")
    findings = examine(endpoint=emulator.url)
    assert verdicts(findings)[Check.LOGIN] is Verdict.PASS


def use_gpu_time(emulator: Emulator, folder: Path) -> None:
    """Push a GPU kernel that runs for a moment, as a GPU notebook would, and wait for it."""
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("import time; time.sleep(1.5)")])
    nb.metadata["kernelspec"] = {"name": "python3", "language": "python", "display_name": "Py"}
    folder.mkdir()
    (folder / "notebook.ipynb").write_text(nbformat.writes(nb))
    metadata = {
        "id": f"{USER}/gpu-burner",
        "title": "gpu burner",
        "code_file": "notebook.ipynb",
        "language": "python",
        "kernel_type": "notebook",
        "is_private": True,
        "enable_gpu": True,
        "enable_internet": False,
        "machine_shape": "NvidiaTeslaT4",
        "session_timeout_seconds": 60,
    }
    (folder / "kernel-metadata.json").write_text(json.dumps(metadata))
    KaggleRemote(Credentials(USER, key=KEY), emulator.url).push(folder)
    emulator.wait_for(USER, "gpu-burner")


def test_an_exhausted_gpu_quota_fails_with_its_refresh_time(machine, monkeypatch, tmp_path):
    with Emulator(
        state_dir=tmp_path / "state", users={USER: KEY}, limits=Limits(weekly_gpu_seconds=1)
    ) as emulator:
        use_gpu_time(emulator, tmp_path / "gpu-kernel")
        log_in(monkeypatch, emulator.url)
        findings = examine()
    quota = finding(findings, Check.GPU_QUOTA)
    assert quota.verdict is Verdict.FAIL and "GPU hours of this week are used" in quota.detail
    assert "refreshes" in quota.detail and "espeak" in quota.fix
    assert verdicts(findings)[Check.LOGIN] is Verdict.PASS
    assert not passed(findings)


def test_an_account_without_gpu_quota_is_told_to_verify(machine, monkeypatch, tmp_path):
    with Emulator(
        state_dir=tmp_path / "state", users={USER: KEY}, limits=Limits(weekly_gpu_seconds=0)
    ) as emulator:
        log_in(monkeypatch, emulator.url)
        findings = examine()
    quota = finding(findings, Check.GPU_QUOTA)
    assert quota.verdict is Verdict.FAIL and "no weekly GPU quota" in quota.detail
    assert "phone-verified" in quota.fix


def test_no_credentials_say_where_to_put_them(machine, monkeypatch):
    findings = examine()
    credentials = finding(findings, Check.CREDENTIALS)
    assert credentials.verdict is Verdict.FAIL and "no Kaggle credentials" in credentials.detail
    assert "kaggle.json" in credentials.fix
    assert verdicts(findings)[Check.PERMISSIONS] is Verdict.SKIP


@pytest.mark.parametrize(("mode", "verdict"), [(0o644, Verdict.FAIL), (0o600, Verdict.PASS)])
def test_a_key_file_others_can_read_fails_with_the_chmod_to_run(
    emulator, machine, monkeypatch, mode, verdict
):
    kaggle_json = machine / ".kaggle" / "kaggle.json"
    kaggle_json.parent.mkdir()
    kaggle_json.write_text(json.dumps({"username": USER, "key": KEY}))
    kaggle_json.chmod(mode)
    monkeypatch.setenv("KAGGLETTS_KAGGLE_ENDPOINT", emulator.url)
    findings = examine()
    permissions = finding(findings, Check.PERMISSIONS)
    assert permissions.verdict is verdict
    assert str(kaggle_json) in permissions.detail
    if verdict is Verdict.FAIL:
        assert permissions.fix == f"chmod 600 {kaggle_json}"
    assert verdicts(findings)[Check.LOGIN] is Verdict.PASS


def test_a_bad_setting_is_the_failing_check(emulator, machine, monkeypatch):
    log_in(monkeypatch, emulator.url)
    Path("pyproject.toml").write_text("[tool.kaggletts.kaggle]\nshards = 0\n")
    findings = examine()
    settings = finding(findings, Check.SETTINGS)
    assert settings.verdict is Verdict.FAIL and "pyproject.toml:2: kaggle.shards" in settings.detail
    assert verdicts(findings)[Check.LOGIN] is Verdict.PASS, "the rest runs on the defaults"
