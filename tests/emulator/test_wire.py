"""Every response parses with kagglesdk's own types; bad requests get a 4xx, never a crash."""

from __future__ import annotations

import pytest
import requests
from emulator_helpers import call, push
from kagglesdk.kernels.types.kernels_api_service import (
    ApiCancelKernelSessionResponse,
    ApiGetAcceleratorQuotaStatisticsResponse,
    ApiGetKernelResponse,
    ApiGetKernelSessionStatusResponse,
    ApiListKernelSessionOutputResponse,
    ApiSaveKernelResponse,
)
from kagglesdk.kernels.types.kernels_enums import KernelWorkerStatus
from kagglesdk.security.types.oauth_service import IntrospectTokenResponse

from kaggletts.emulator import Emulator

KERNEL = {"userName": "alice", "kernelSlug": "wire-check"}


@pytest.mark.slow
def test_responses_parse_with_kagglesdk_types(kaggle_emulator: Emulator):
    saved = ApiSaveKernelResponse.from_dict(push(kaggle_emulator, "wire-check").json())
    assert saved.version_number == 1 and saved.kernel_id > 0
    kaggle_emulator.wait_for("alice", "wire-check")
    reply = call(kaggle_emulator, "GetKernelSessionStatus", KERNEL).json()
    status = ApiGetKernelSessionStatusResponse.from_dict(reply)
    assert status.status == KernelWorkerStatus.COMPLETE
    listing = call(kaggle_emulator, "ListKernelSessionOutput", KERNEL).json()
    parsed = ApiListKernelSessionOutputResponse.from_dict(listing)
    assert parsed.files and parsed.log
    pulled = ApiGetKernelResponse.from_dict(call(kaggle_emulator, "GetKernel", KERNEL).json())
    assert pulled.metadata.ref == "alice/wire-check" and pulled.blob.source
    cancel = call(kaggle_emulator, "CancelKernelSession", {"kernelSessionId": 1 + saved.kernel_id})
    assert ApiCancelKernelSessionResponse.from_dict(cancel.json()).error_message
    quota = call(kaggle_emulator, "GetAcceleratorQuotaStatistics").json()
    parsed_quota = ApiGetAcceleratorQuotaStatisticsResponse.from_dict(quota)
    assert parsed_quota.gpu_quota.total_time_allowed.total_seconds() == 30 * 3600
    assert parsed_quota.quota_refresh_time is not None
    token = kaggle_emulator.issue_token("alice")
    introspected = call(
        kaggle_emulator,
        "IntrospectToken",
        {"token": token},
        user=None,
        service="security.OAuthService",
    )
    assert IntrospectTokenResponse.from_dict(introspected.json()).username == "alice"


def test_bad_requests_get_4xx_and_serving_goes_on(kaggle_emulator: Emulator):
    url = f"{kaggle_emulator.url}/api/v1/kernels.KernelsApiService"
    auth = ("alice", "alice-key")
    unknown = requests.post(f"{url}/NoSuchMethod", json={}, auth=auth, timeout=10)
    assert unknown.status_code == 404 and unknown.json()["code"] == 404
    garbage = requests.post(f"{url}/SaveKernel", data=b"{not json", auth=auth, timeout=10)
    assert garbage.status_code == 400 and "JSON" in garbage.json()["message"]
    not_object = requests.post(f"{url}/SaveKernel", json=[1, 2], auth=auth, timeout=10)
    assert not_object.status_code == 400
    huge = requests.post(f"{url}/SaveKernel", data=b"x" * (33 * 1024 * 1024), auth=auth, timeout=30)
    assert huge.status_code == 413
    wrong_type = call(kaggle_emulator, "GetKernelSessionStatus", {"userName": 5})
    assert wrong_type.status_code == 400
    short_title = push(kaggle_emulator, "short", title="abc")
    # The kaggle client's own refusal, word for word (kae kernels_push).
    assert short_title.status_code == 400
    assert short_title.json()["message"] == "Title must be at least five characters"
    assert push(kaggle_emulator, "wire-check", language="r").status_code == 400
    bad_notebook = push(kaggle_emulator, "wire-check", text='{"cells": 3}')
    assert bad_notebook.status_code == 400
    bad_id = push(kaggle_emulator, "wire-check", text=_notebook_with_cell_id("bad id!"))
    assert bad_id.status_code == 400 and "not valid" in bad_id.json()["message"]
    unknown_dataset = push(kaggle_emulator, "wire-check", datasetDataSources=["alice/missing-data"])
    assert unknown_dataset.json()["invalidDatasetSources"] == ["alice/missing-data"]
    assert kaggle_emulator.push_count("alice", "wire-check") == 1
    assert call(kaggle_emulator, "GetAcceleratorQuotaStatistics").ok


def _notebook_with_cell_id(cell_id: str) -> str:
    import json

    import nbformat

    notebook = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("print(1)")
    cell["id"] = cell_id
    notebook.cells.append(cell)
    return json.dumps(notebook)
