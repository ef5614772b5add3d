"""Every field of every JSON reply is one kagglesdk declares for that method's response type,
and holds the JSON type that field's serializer reads.

The response types are read from kagglesdk's own service clients (`self._client.call(service,
method, request, ResponseType)`), and each reply is walked recursively through nested
messages, lists and maps against the types' `_fields` (`FieldMetadata.field_type` and
`serializer`), as `KaggleObject.from_dict` reads them. The log stream, typed `FileDownload`
(no fields), is checked in both its forms (SSE while the session runs, JSON after) against
the `{stream_name, time, data}` entries the kaggle CLI reads, as is the `log` of output
listings.
"""

from __future__ import annotations

import importlib
import inspect
import json
import re
from datetime import datetime, timedelta
from enum import Enum
from pathlib import Path
from typing import Any

import pytest
import requests
from emulator_helpers import KEYS, call, push, wait_until
from kagglesdk.kaggle_object import KaggleObject, ListSerializer, MapSerializer

from kaggletts.emulator import Assumption, Emulator, Latency

SERVICE_MODULES = (
    "kagglesdk.kernels.services.kernels_api_service",
    "kagglesdk.datasets.services.dataset_api_service",
    "kagglesdk.blobs.services.blob_api_service",
    "kagglesdk.security.services.oauth_service",
)
DURATION = re.compile(r"-?\d+(\.\d+)?s")
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


def _json_type_problem(declared: type, value: Any) -> str | None:
    """Why `value` is not how kagglesdk's serializers write a field of type `declared`."""
    if isinstance(declared, type) and issubclass(declared, Enum):
        ok, wanted = isinstance(value, str) and value in declared.__members__, "a member name"
    elif declared is timedelta:  # TimeDeltaSerializer: "<seconds>[.<fraction>]s"
        ok, wanted = isinstance(value, str) and bool(DURATION.fullmatch(value)), "'<n>s'"
    elif declared is datetime:  # DateTimeSerializer: ISO 8601 with a trailing Z
        ok, wanted = isinstance(value, str) and _is_timestamp(value), "an ISO timestamp"
    elif declared is bool:
        ok, wanted = isinstance(value, bool), "a boolean"
    elif declared is int:
        ok, wanted = isinstance(value, int) and not isinstance(value, bool), "an integer"
    elif declared is float:
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        wanted = "a number"
    elif declared is str:
        ok, wanted = isinstance(value, str), "a string"
    else:
        return f"a field of type {declared.__name__}, which this check does not know"
    return None if ok else f"expected {wanted}, got {value!r}"


def _is_timestamp(value: str) -> bool:
    try:
        datetime.fromisoformat(value.removesuffix("Z"))
    except ValueError:
        return False
    return value.endswith("Z")


def mismatches(message: type[KaggleObject], value: Any, path: str) -> list[str]:
    """Where `value` (a JSON reply) holds a field `message` does not declare, or a value whose
    JSON type is not the one the declared field's serializer reads."""
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
        if isinstance(field.serializer, ListSerializer):
            if not isinstance(item, list):
                problems.append(f"{where}: expected a list")
                continue
            elements = [(f"{where}[{index}]", element) for index, element in enumerate(item)]
        elif isinstance(field.serializer, MapSerializer):
            if not isinstance(item, dict):
                problems.append(f"{where}: expected a map")
                continue
            elements = [(f"{where}[{name!r}]", element) for name, element in item.items()]
        else:
            elements = [(where, item)]
        for element_path, element in elements:
            if isinstance(field.field_type, type) and issubclass(field.field_type, KaggleObject):
                problems += mismatches(field.field_type, element, element_path)
            elif problem := _json_type_problem(field.field_type, element):
                problems.append(f"{element_path}: {problem}")
    return problems


def log_entry_mismatches(entries: Any, path: str) -> list[str]:
    """Where a log (the JSON list ListKernelSessionOutput's `log` holds, the log stream's JSON
    form, or its events one by one) is not a list of `{stream_name, time, data}` objects with
    a stream name, a number of seconds and text. The log stream's kagglesdk reply type is
    FileDownload, which declares no fields; the shape is the one the kaggle CLI reads
    (`kernels_logs_stream` in kaggle_api_extended.py: "JSON {stream_name, time, data}")."""
    if not isinstance(entries, list):
        return [f"{path}: expected a list of log entries, got {type(entries).__name__}"]
    problems = []
    for index, entry in enumerate(entries):
        where = f"{path}[{index}]"
        if not isinstance(entry, dict) or set(entry) != {"stream_name", "time", "data"}:
            problems.append(f"{where}: expected {{stream_name, time, data}}, got {entry!r}")
            continue
        for name, declared in (("stream_name", str), ("time", float), ("data", str)):
            if problem := _json_type_problem(declared, entry[name]):
                problems.append(f"{where}.{name}: {problem}")
    return problems


class Recorder:
    """Calls the emulator and keeps each JSON reply with the method it answered."""

    def __init__(self, emulator: Emulator):
        self.emulator = emulator
        self.replies: list[tuple[str, str, Any]] = []
        # (where, entries): every log seen, from output listings and both log stream forms.
        self.logs: list[tuple[str, Any]] = []

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
        if method == "ListKernelSessionOutput" and "log" in reply.json():
            self.logs.append((f"{method}.log", json.loads(reply.json()["log"])))
        return reply.json()

    def stream_logs(self, slug: str, *, rpc: bool, until: str | None = None) -> str:
        """Read `slug`'s log stream, by kagglesdk's RPC or the kaggle CLI's GET, and keep
        its entries; a live (SSE) stream is read until an event holding `until`. Answers the
        Content-Type."""
        auth = ("alice", KEYS["alice"])
        if rpc:
            url = f"{self.emulator.url}/api/v1/kernels.KernelsApiService/GetKernelSessionLogsStream"
            reply = requests.post(url, json=_kernel(slug), auth=auth, stream=True, timeout=30)
        else:
            url = f"{self.emulator.url}/api/v1/kernels/logs/stream/alice/{slug}"
            reply = requests.get(url, auth=auth, stream=True, timeout=30)
        assert reply.status_code == 200, reply.text
        content_type = reply.headers["Content-Type"]
        where = f"{'GetKernelSessionLogsStream' if rpc else 'GET logs/stream'} ({content_type})"
        with reply:
            if content_type.startswith("text/event-stream"):
                events = []
                for raw in reply.iter_lines():
                    line = raw.decode("utf-8")
                    if line.startswith("data:") and line != "data: END_OF_LOG":
                        events.append(json.loads(line.removeprefix("data:")))
                        if until and until in str(events[-1]):
                            break
                self.logs.append((where, events))
            else:
                self.logs.append((where, reply.json()))
        return content_type

    def dataset_version_by_id(self, dataset_id: int, token: str) -> None:
        """CreateDatasetVersionById, which kagglesdk declares to answer ApiCreateDatasetResponse."""
        body = {"id": dataset_id, "body": {"files": [{"token": token}]}}
        self.call("CreateDatasetVersionById", body, service="datasets.DatasetApiService")

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
    for rpc in (True, False):
        live = recorder.stream_logs("fields-kernel", rpc=rpc, until="written")
        assert live.startswith("text/event-stream")
    running = recorder.call("ListKernelSessionOutput", _kernel("fields-kernel") | {"pageSize": 2})
    if emulator.assumes(Assumption.RUNNING_OUTPUTS):
        assert running["nextPageToken"]
    refused = recorder.push("capped-kernel", enableGpu=True, machineShape="NvidiaTeslaT4")
    if emulator.gpu_sessions == 1:
        assert refused["error"]
    flag.touch()
    emulator.wait_for("alice", "fields-kernel")
    for rpc in (True, False):
        assert recorder.stream_logs("fields-kernel", rpc=rpc).startswith("application/json")
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


def _upload(recorder: Recorder, content: bytes) -> str:
    """A blob token for `content`, uploaded as the kaggle client does."""
    started = recorder.call(
        "StartBlobUpload",
        {"name": "voice.txt", "contentLength": len(content)},
        service="blobs.BlobApiService",
    )
    requests.put(started["createUrl"], data=content, timeout=30).raise_for_status()
    return started["token"]


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
    dataset_id = recorder.call("GetDataset", slug, service=datasets)["id"]
    recorder.call(
        "CreateDatasetVersion",
        slug | {"body": {"files": [{"token": _upload(recorder, content)}]}},
        service=datasets,
    )
    recorder.dataset_version_by_id(dataset_id, _upload(recorder, content))
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
    "CreateDatasetVersionById",
    "GetDatasetStatus",
    "GetDataset",
    "IntrospectToken",
}


def _check(recorder: Recorder, methods: set[str]) -> None:
    assert {method for _, method, _ in recorder.replies} == methods
    problems = []
    for service, method, reply in recorder.replies:
        message = RESPONSE_TYPES[(service, method)]
        problems += mismatches(message, reply, method)
        message.from_dict(reply)  # and kagglesdk reads it
    for where, entries in recorder.logs:
        problems += log_entry_mismatches(entries, where)
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
    assert mismatches(message, reply, "r") == [
        "r.files[0].size: not a field of ApiKernelSessionOutputFile",
        "r.extra: not a field of ApiListKernelSessionOutputResponse",
    ]
    pulled = RESPONSE_TYPES[("kernels.KernelsApiService", "GetKernel")]
    assert mismatches(pulled, {"metadata": {"ref": "a/b", "sessionId": 4}}, "r") == [
        "r.metadata.sessionId: not a field of ApiKernelMetadata"
    ]


def test_the_walk_finds_values_of_the_wrong_json_type():
    saved = RESPONSE_TYPES[("kernels.KernelsApiService", "SaveKernel")]
    assert mismatches(saved, {"versionNumber": "3", "invalidDatasetSources": [1]}, "r") == [
        "r.versionNumber: expected an integer, got '3'",
        "r.invalidDatasetSources[0]: expected a string, got 1",
    ]
    status = RESPONSE_TYPES[("kernels.KernelsApiService", "GetKernelSessionStatus")]
    assert mismatches(status, {"status": "DONE"}, "r") == [
        "r.status: expected a member name, got 'DONE'"
    ]
    quota = RESPONSE_TYPES[("kernels.KernelsApiService", "GetAcceleratorQuotaStatistics")]
    bad_quota = {
        "quotaRefreshTime": "Saturday",
        "gpuQuota": {"timeUsed": 30, "isPayToScaleEnabled": 0},
    }
    assert mismatches(quota, bad_quota, "r") == [
        "r.quotaRefreshTime: expected an ISO timestamp, got 'Saturday'",
        "r.gpuQuota.timeUsed: expected '<n>s', got 30",
        "r.gpuQuota.isPayToScaleEnabled: expected a boolean, got 0",
    ]
    assert mismatches(quota, {"quotaRefreshTime": "2026-12-05T00:00:00.000Z"}, "r") == []


def test_log_entries_are_checked_for_shape_and_types():
    entries = [
        {"stream_name": "stdout", "time": 0.5, "data": "ok\n"},
        {"stream_name": "stdout", "time": "0.5", "data": "late\n"},
        {"data": "bare\n"},
    ]
    assert log_entry_mismatches(entries, "log") == [
        "log[1].time: expected a number, got '0.5'",
        "log[2]: expected {stream_name, time, data}, got {'data': 'bare\\n'}",
    ]
    assert log_entry_mismatches({"data": "x"}, "log") == [
        "log: expected a list of log entries, got dict"
    ]
