"""Credentials, privacy between users, and signed, expiring download URLs."""

from __future__ import annotations

import pytest
import requests
from emulator_helpers import call, outputs, push

from kaggletts.emulator import Emulator

KERNEL = {"userName": "alice", "kernelSlug": "private-notebook"}


def _completed(emulator: Emulator) -> dict:
    assert push(emulator, "private-notebook", "open('secret.txt', 'w').write('s' * 100)").ok
    emulator.wait_for("alice", "private-notebook")
    return {
        item["fileName"]: item["url"] for item in outputs(emulator, "private-notebook")["files"]
    }


def test_credentials(kaggle_emulator: Emulator):
    url = f"{kaggle_emulator.url}/api/v1/kernels.KernelsApiService/GetAcceleratorQuotaStatistics"
    assert requests.post(url, json={}, auth=("alice", "wrong"), timeout=10).status_code == 401
    assert requests.post(url, json={}, auth=("mallory", "x"), timeout=10).status_code == 401
    assert requests.post(url, json={}, timeout=10).status_code == 401
    token = kaggle_emulator.issue_token("bob")
    bearer = {"Authorization": f"Bearer {token}"}
    assert requests.post(url, json={}, headers=bearer, timeout=10).ok
    assert kaggle_emulator.calls_by_user[("GetAcceleratorQuotaStatistics", "bob")] == 1
    bad = {"Authorization": "Bearer nope"}
    assert requests.post(url, json={}, headers=bad, timeout=10).status_code == 401


@pytest.mark.slow
def test_private_kernel_is_invisible_to_others(kaggle_emulator: Emulator):
    urls = _completed(kaggle_emulator)
    for method in ("GetKernelSessionStatus", "GetKernel", "ListKernelSessionOutput"):
        assert call(kaggle_emulator, method, KERNEL, user="bob").status_code == 403
    assert call(kaggle_emulator, "GetKernel", KERNEL, user="alice").ok
    session_id = kaggle_emulator.session_id("alice", "private-notebook")
    cancel = call(
        kaggle_emulator, "CancelKernelSession", {"kernelSessionId": session_id}, user="bob"
    )
    assert cancel.status_code == 404
    assert push(kaggle_emulator, "private-notebook", user="bob").status_code == 200
    forged = urls["secret.txt"].replace("secret.txt", "__notebook__.ipynb")
    assert requests.get(forged, timeout=10).status_code == 403
    stream = f"{kaggle_emulator.url}/api/v1/kernels/logs/stream/alice/private-notebook"
    assert requests.get(stream, auth=("bob", "bob-key"), timeout=10).status_code == 403


@pytest.mark.slow
def test_download_ranges_and_expiry(kaggle_emulator: Emulator):
    urls = _completed(kaggle_emulator)
    whole = requests.get(urls["secret.txt"], timeout=10)
    assert whole.status_code == 200 and whole.headers["Accept-Ranges"] == "bytes"
    assert whole.headers["Content-Length"] == "100" and whole.headers["ETag"]
    part = requests.get(urls["secret.txt"], headers={"Range": "bytes=90-"}, timeout=10)
    assert part.status_code == 206 and len(part.content) == 10
    assert part.headers["Content-Range"] == "bytes 90-99/100"
    changed = requests.get(
        urls["secret.txt"], headers={"Range": "bytes=90-", "If-Range": '"other"'}, timeout=10
    )
    assert changed.status_code == 200 and len(changed.content) == 100
    beyond = requests.get(urls["secret.txt"], headers={"Range": "bytes=500-"}, timeout=10)
    assert beyond.status_code == 416
    kaggle_emulator.signer.ttl_seconds = -1
    expired = outputs(kaggle_emulator, "private-notebook")["files"][0]["url"]
    assert requests.get(expired, timeout=10).status_code == 403
