"""Each fault kind, forced and random, never corrupts state."""

from __future__ import annotations

import pytest
import requests
from emulator_helpers import call, outputs, push

from kaggletts.emulator import Emulator, Faults
from kaggletts.emulator.faults import FaultInjector

QUOTA = "GetAcceleratorQuotaStatistics"


@pytest.mark.parametrize("kind", ["500", "502", "503", "429"])
def test_status_faults(kaggle_emulator: Emulator, kind: str):
    kaggle_emulator.fail_next(QUOTA, kind)
    failed = call(kaggle_emulator, QUOTA)
    assert failed.status_code == int(kind) and failed.json()["code"] == int(kind)
    if kind == "429":
        assert failed.headers["Retry-After"] == "1"
    assert call(kaggle_emulator, QUOTA).ok


def test_drop_happens_before_handling(kaggle_emulator: Emulator):
    kaggle_emulator.fail_next("SaveKernel", "drop")
    with pytest.raises(requests.ConnectionError):
        push(kaggle_emulator, "dropped-push")
    assert kaggle_emulator.push_count("alice", "dropped-push") == 0
    assert push(kaggle_emulator, "dropped-push").json()["versionNumber"] == 1


def test_lost_reply_keeps_the_effect(kaggle_emulator: Emulator):
    kaggle_emulator.fail_next("SaveKernel", "lost-reply")
    with pytest.raises(requests.ConnectionError):
        push(kaggle_emulator, "lost-reply-push")
    assert kaggle_emulator.push_count("alice", "lost-reply-push") == 1
    assert kaggle_emulator.calls["SaveKernel"] == 1


@pytest.mark.slow
def test_truncated_download(kaggle_emulator: Emulator):
    assert push(
        kaggle_emulator, "truncated-output", "open('big.bin', 'wb').write(b'x' * 200000)"
    ).ok
    kaggle_emulator.wait_for("alice", "truncated-output")
    url = {f["fileName"]: f["url"] for f in outputs(kaggle_emulator, "truncated-output")["files"]}
    kaggle_emulator.fail_next("download", "truncate")
    with pytest.raises(requests.exceptions.RequestException):
        requests.get(url["big.bin"], timeout=10).raise_for_status()
    assert len(requests.get(url["big.bin"], timeout=10).content) == 200000


def test_random_faults_are_deterministic_under_a_seed():
    faults = Faults(rate=0.5, kinds=("500", "drop"))
    first = [FaultInjector(faults, seed=7).draw("SaveKernel") for _ in range(1)]
    draws = [FaultInjector(faults, seed=7) for _ in range(2)]
    sequences = [[injector.draw("SaveKernel") for _ in range(50)] for injector in draws]
    assert sequences[0] == sequences[1] and first[0] == sequences[0][0]
    assert {None, "500", "drop"} == set(sequences[0])


def test_random_faults_at_runtime(kaggle_emulator: Emulator):
    kaggle_emulator.faults = Faults(rate=1.0, kinds=("503",))
    assert call(kaggle_emulator, QUOTA).status_code == 503
    kaggle_emulator.faults = Faults(rate=0.0)
    assert call(kaggle_emulator, QUOTA).ok


def test_a_push_can_fail_half_way_leaving_a_kernel_without_code(kaggle_emulator: Emulator):
    """kaggle-api #122: SaveKernel answered 500 and the kernel appeared, titled, no code."""
    kaggle_emulator.fail_next("SaveKernel", "empty-kernel")
    assert push(kaggle_emulator, "half-pushed", title="Half Pushed").status_code == 500
    pulled = call(kaggle_emulator, "GetKernel", {"userName": "alice", "kernelSlug": "half-pushed"})
    assert pulled.ok and pulled.json()["metadata"]["title"] == "Half Pushed"
    assert not pulled.json()["blob"]["source"]
    which = {"userName": "alice", "kernelSlug": "half-pushed"}
    asked = call(kaggle_emulator, "GetKernelSessionStatus", which)
    assert asked.status_code == 404 and kaggle_emulator.push_count("alice", "half-pushed") == 0
