"""The weekly GPU quota: used by GPU sessions' run time (scaled for tests), reported by
GetAcceleratorQuotaStatistics, refreshed on demand or on a period, and, opt-in, a quota
call that is not served."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

import click.testing
import pytest
from emulator_helpers import call, push

from kaggletts.emulator import Emulator, Limits, Quirks
from kaggletts.emulator.cli import emulator as emulator_command

GPU: dict[str, Any] = {"enableGpu": True, "machineShape": "NvidiaTeslaT4"}


def quota(emulator: Emulator) -> dict[str, Any]:
    reply = call(emulator, "GetAcceleratorQuotaStatistics")
    reply.raise_for_status()
    return reply.json()


def seconds(duration: str) -> float:
    return float(duration.removesuffix("s"))


@pytest.mark.slow
def test_a_scaled_quota_runs_out_refuses_gpu_pushes_and_refreshes(
    make_emulator: Callable[..., Emulator],
):
    emulator = make_emulator(limits=Limits(weekly_gpu_seconds=3600, gpu_quota_scale=36000))
    assert push(emulator, "first-gpu-run", "import time; time.sleep(0.5)", **GPU).ok
    assert emulator.wait_for("alice", "first-gpu-run").status == "COMPLETE"
    used = quota(emulator)["gpuQuota"]
    assert seconds(used["timeUsed"]) >= 0.5 * 36000 and seconds(used["totalTimeAllowed"]) == 3600

    refused = push(emulator, "second-gpu-run", **GPU)
    assert refused.status_code == 200 and "weekly GPU quota" in refused.json()["error"]
    assert emulator.push_count("alice", "second-gpu-run") == 0
    assert "error" not in push(emulator, "a-cpu-run").json(), "CPU sessions use no GPU quota"

    emulator.refresh_gpu_quota()
    assert seconds(quota(emulator)["gpuQuota"].get("timeUsed", "0s")) == 0
    assert "error" not in push(emulator, "second-gpu-run", **GPU).json()


def test_the_quota_refreshes_every_period_from_the_start(make_emulator: Callable[..., Emulator]):
    emulator = make_emulator(limits=Limits(gpu_quota_period=60))
    refresh = datetime.fromisoformat(quota(emulator)["quotaRefreshTime"]).timestamp()
    assert time.time() < refresh <= time.time() + 60


def test_the_weekly_quota_refreshes_on_a_saturday_by_default(
    make_emulator: Callable[..., Emulator],
):
    refresh = datetime.fromisoformat(quota(make_emulator())["quotaRefreshTime"])
    assert refresh.weekday() == 5 and (refresh.hour, refresh.minute) == (0, 0)


def test_the_quota_call_can_be_left_unserved(make_emulator: Callable[..., Emulator]):
    emulator = make_emulator(quirks=Quirks(no_quota_call=True))
    assert call(emulator, "GetAcceleratorQuotaStatistics").status_code == 404
    emulator.quirks = Quirks()
    assert quota(emulator)["gpuQuota"]


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (("--gpu-quota", "soon"), "--gpu-quota"),
        (("--gpu-quota-scale", "0"), "--gpu-quota-scale"),
        (("--gpu-quota-period", "-5m"), "--gpu-quota-period"),
    ],
)
def test_quota_options_are_checked(args: tuple[str, ...], named: str):
    result = click.testing.CliRunner().invoke(emulator_command, list(args))
    assert result.exit_code == 2 and named in result.output
