"""An injected status string kagglesdk does not know, and what the official client does then."""

from __future__ import annotations

import pytest
from emulator_helpers import push, status
from kagglesdk.kernels.types.kernels_api_service import ApiGetKernelSessionStatusResponse
from kagglesdk.kernels.types.kernels_enums import KernelWorkerStatus

from kaggletts.emulator import Emulator, Quirks


@pytest.mark.slow
def test_unknown_status_for_a_while_after_each_push(kaggle_emulator: Emulator, official_api):
    kaggle_emulator.quirks = Quirks(unknown_status="PREEMPTED", unknown_status_seconds=3600)
    assert push(kaggle_emulator, "odd-status").ok
    kaggle_emulator.wait_for("alice", "odd-status")
    assert status(kaggle_emulator, "odd-status") == {"status": "PREEMPTED"}
    assert status(kaggle_emulator, "odd-status", version=1) == {"status": "PREEMPTED"}
    # kagglesdk's enum parser raises the KeyError out of the official client's status call.
    with pytest.raises(KeyError, match="PREEMPTED"):
        official_api("alice").kernels_status("alice/odd-status")

    kaggle_emulator.quirks = Quirks(unknown_status="PREEMPTED", unknown_status_seconds=0.001)
    assert status(kaggle_emulator, "odd-status") == {"status": "COMPLETE"}


@pytest.mark.parametrize(
    ("sent", "parsed"),
    [
        ("running", KernelWorkerStatus.RUNNING),
        ("KERNEL_WORKER_STATUS_COMPLETE", KernelWorkerStatus.COMPLETE),
        # A suffix of a known name is taken for it.
        ("NNING", KernelWorkerStatus.RUNNING),
    ],
)
def test_kagglesdk_tolerates_casing_prefixes_and_suffixes(sent: str, parsed: KernelWorkerStatus):
    assert ApiGetKernelSessionStatusResponse.from_dict({"status": sent}).status == parsed


def test_an_empty_unknown_status_is_refused():
    with pytest.raises(ValueError, match="needs a name"):
        Quirks(unknown_status="", unknown_status_seconds=5)
