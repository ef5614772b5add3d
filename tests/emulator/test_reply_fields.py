"""Every field of every JSON reply is one kagglesdk declares for that method's response type.

The response types are read from kagglesdk's own service clients (`self._client.call(service,
method, request, ResponseType)`), and each reply is walked recursively through nested
messages and lists against the types' `_fields`, as `KaggleObject.from_dict` reads them.
"""

from __future__ import annotations

import importlib
import inspect
import re
from pathlib import Path
from typing import Any

import pytest
import requests
from emulator_helpers import call, push, wait_until
from kagglesdk.kaggle_object import KaggleObject, ListSerializer, MapSerializer

from kaggletts.emulator import Assumption, Emulator, Latency

SERVICE_MODULES = (
    "kagglesdk.kernels.services.kernels_api_service",
    "kagglesdk.datasets.services.dataset_api_service",
    "kagglesdk.blobs.services.blob_api_service",
    "kagglesdk.security.services.oauth_service",
)
CALL = re.compile(
    r'_client\.call\("(?P<service>[\w.]+)", "(?P<method>\w+)", request, (?P<type>\w+)\)'
)


def _response_types() -> dict[tuple[str, str], type[KaggleObject]]:
    found = {}
    for name in SERVICE_MODULES:
        module = importlib.import_module(name)
        for match in CALL.finditer(inspect.getsource(module)):
            found[(match["service"], match["method"])] = getattr(module, match["type"])
    return found


RESPONSE_TYPES = _response_types()


def undeclared(message: type[KaggleObject], value: Any, path: str) -> list[str]:
    """Where `value` (a JSON reply) holds something `message` does not declare."""
    if not isinstance(value, dict):
        return [f"{path}: expected an object, got {type(value).__name__}"]
    fields = {field.json_name: field for field in message._fields}
    problems = []
    for key, item in value.items():
        field = fields.get(key)
        where = f"{path}.{key}"
        if field is None:
            problems.append(f"{where}: not a field of {message.__name__}")
            continue
        is_message = isinstance(field.field_type, type) and issubclass(
            field.field_type, KaggleObject
        )
        if isinstance(field.serializer, ListSerializer):
            if not isinstance(item, list):
                problems.append(f"{where}: expected a list")
            elif is_message:
                for index, element in enumerate(item):
                    problems += undeclared(field.field_type, element, f"{where}[{index}]")
        elif isinstance(field.serializer, MapSerializer):
            if not isinstance(item, dict):
                problems.append(f"{where}: expected a map")
            elif is_message:
                for name, element in item.items():
                    problems += undeclared(field.field_type, element, f"{where}[{name!r}]")
        elif is_message:
            problems += undeclared(field.field_type, item, where)
    return problems


class Recorder:
    """Calls the emulator and keeps each JSON reply with the method it answered."""

    def __init__(self, emulator: Emulator):
        self.emulator = emulator
        self.replies: list[tuple[str, str, Any]] = []

    def call(
        self,
        method: str,
        body: dict[str, Any],
        service: str = "kernels.KernelsApiService",
        user: str | None = "alice",
    ) -> Any:
        reply = call(self.emulator, method, body, user=user, service=service)
        assert reply.status_code == 200, reply.text
        self.replies.append((service, method, reply.json()))
        return reply.json()

    def push(self, slug: str, *cells: str, **fields: Any) -> Any:
        reply = push(self.emulator, slug, *cells, **fields)
        self.replies.append(("kernels.KernelsApiService", "SaveKernel", reply.json()))
        return reply.json()


WAITS_FOR_FLAG = """
import os, time
for index in range(5):
    open(f'file{{index}}.txt', 'w').write(str(index))
print('written', flush=True)
while not os.path.exists({flag!r}):
    time.sleep(0.1)
"""


def _kernel(slug: str, version: int | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"userName": "alice", "kernelSlug": slug}
    if version:
        body["versionLabel"] = f"v{version}"
    return body


def _drive_kernels(recorder: Recorder, tmp_path: Path) -> None:
    emulator = recorder.emulator
    emulator.latency = Latency(queue_delay=3600)
    recorder.push("queued-kernel")
    assert recorder.call("GetKernelSessionStatus", _kernel("queued-kernel"))["status"] == "QUEUED"
    recorder.call("ListKernelSessionOutput", _kernel("queued-kernel"))
    recorder.call("GetKernel", _kernel("queued-kernel"))
    session = {"kernelSessionId": emulator.session_id("alice", "queued-kernel")}
    recorder.call("CancelKernelSession", session)
    emulator.wait_for("alice", "queued-kernel", statuses=["CANCEL_ACKNOWLEDGED"])
    assert recorder.call("CancelKernelSession", session)["errorMessage"]
    emulator.latency = Latency()

    flag = tmp_path / "go-on"
    recorder.push(
        "fields-kernel",
        WAITS_FOR_FLAG.format(flag=str(flag)),
        enableGpu=True,
        machineShape="NvidiaTeslaT4",
    )
    wait_until(lambda: emulator.status("alice", "fields-kernel") == "RUNNING")
    recorder.call("GetKernelSessionStatus", _kernel("fields-kernel"))
    working = emulator.store.working_dir(emulator.store.kernels["alice/fields-kernel"], 1)
    wait_until(lambda: (working / "file4.txt").exists())
    running = recorder.call("ListKernelSessionOutput", _kernel("fields-kernel") | {"pageSize": 2})
    if emulator.assumes(Assumption.RUNNING_OUTPUTS):
        assert running["nextPageToken"]
    refused = recorder.push("capped-kernel", enableGpu=True, machineShape="NvidiaTeslaT4")
    if emulator.gpu_sessions == 1:
        assert refused["error"]
    flag.touch()
    emulator.wait_for("alice", "fields-kernel")
    recorder.call("GetKernelSessionStatus", _kernel("fields-kernel", 1))
    token = None
    while True:
        page = recorder.call(
            "ListKernelSessionOutput",
            _kernel("fields-kernel") | {"pageSize": 2} | ({"pageToken": token} if token else {}),
        )
        token = page.get("nextPageToken")
        if not token:
            break
    recorder.call("GetKernel", _kernel("fields-kernel"))
    recorder.call("GetKernel", _kernel("fields-kernel", 1))
    recorder.call("GetAcceleratorQuotaStatistics", {})

    recorder.push("failing-kernel", "raise ValueError('no')")
    emulator.wait_for("alice", "failing-kernel")
    failed = recorder.call("GetKernelSessionStatus", _kernel("failing-kernel"))
    assert failed["status"] == "ERROR" and failed["failureMessage"]
    recorder.call("DeleteKernel", _kernel("failing-kernel"))


def _drive_datasets(recorder: Recorder) -> None:
    datasets, blobs = "datasets.DatasetApiService", "blobs.BlobApiService"
    content = b"reference voice"
    started = recorder.call(
        "StartBlobUpload", {"name": "voice.txt", "contentLength": len(content)}, service=blobs
    )
    uploaded = requests.put(started["createUrl"], data=content, timeout=30)
    assert uploaded.status_code == 200
    created = recorder.call(
        "CreateDataset",
        {
            "ownerSlug": "alice",
            "slug": "field-voices",
            "title": "Field Voices",
            "files": [{"token": started["token"]}],
        },
        service=datasets,
    )
    assert created["status"] == "ok"
    slug = {"ownerSlug": "alice", "datasetSlug": "field-voices"}
    recorder.call("GetDatasetStatus", slug, service=datasets)
    recorder.call("GetDataset", slug, service=datasets)
    again = recorder.call(
        "StartBlobUpload", {"name": "voice.txt", "contentLength": len(content)}, service=blobs
    )
    requests.put(again["createUrl"], data=content, timeout=30).raise_for_status()
    recorder.call(
        "CreateDatasetVersion",
        slug | {"body": {"files": [{"token": again["token"]}]}},
        service=datasets,
    )
    recorder.call(
        "IntrospectToken",
        {"token": recorder.emulator.issue_token("alice")},
        service="security.OAuthService",
        user=None,
    )


KERNEL_METHODS = {
    "SaveKernel",
    "GetKernelSessionStatus",
    "ListKernelSessionOutput",
    "GetKernel",
    "CancelKernelSession",
    "GetAcceleratorQuotaStatistics",
    "DeleteKernel",
}
DATASET_METHODS = {
    "StartBlobUpload",
    "CreateDataset",
    "CreateDatasetVersion",
    "GetDatasetStatus",
    "GetDataset",
    "IntrospectToken",
}


def _check(recorder: Recorder, methods: set[str]) -> None:
    assert {method for _, method, _ in recorder.replies} == methods
    problems = []
    for service, method, reply in recorder.replies:
        message = RESPONSE_TYPES[(service, method)]
        problems += undeclared(message, reply, method)
        message.from_dict(reply)  # and kagglesdk reads it
    assert problems == []


@pytest.mark.slow
def test_default_replies_hold_only_declared_fields(make_emulator, tmp_path: Path):
    recorder = Recorder(make_emulator(gpu_sessions=1))
    _drive_kernels(recorder, tmp_path)
    _drive_datasets(recorder)
    _check(recorder, KERNEL_METHODS | DATASET_METHODS)


@pytest.mark.slow
def test_replies_under_every_assumption_hold_only_declared_fields(make_emulator, tmp_path: Path):
    recorder = Recorder(make_emulator(assume=set(Assumption), gpu_sessions=1))
    _drive_kernels(recorder, tmp_path)
    _check(recorder, KERNEL_METHODS)


def test_the_walk_finds_undeclared_nested_fields():
    message = RESPONSE_TYPES[("kernels.KernelsApiService", "ListKernelSessionOutput")]
    reply = {"files": [{"fileName": "a", "url": "u", "size": 3}], "log": "[]", "extra": 1}
    assert undeclared(message, reply, "r") == [
        "r.files[0].size: not a field of ApiKernelSessionOutputFile",
        "r.extra: not a field of ApiListKernelSessionOutputResponse",
    ]
    pulled = RESPONSE_TYPES[("kernels.KernelsApiService", "GetKernel")]
    assert undeclared(pulled, {"metadata": {"ref": "a/b", "sessionId": 4}}, "r") == [
        "r.metadata.sessionId: not a field of ApiKernelMetadata"
    ]
