"""GetKernelSessionLogsStream through kagglesdk 0.1.38's own client method: Server-Sent Events
while the session runs, the persisted JSON log once it has ended, 504 if it stays queued."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from emulator_helpers import KEYS, push
from kagglesdk.kaggle_env import KaggleEnv
from kagglesdk.kaggle_http_client import KaggleHttpClient
from kagglesdk.kernels.services.kernels_api_service import KernelsApiClient
from kagglesdk.kernels.types.kernels_api_service import ApiGetKernelSessionLogsStreamRequest

from kaggletts.backends.kaggle.retry import status_of
from kaggletts.emulator import Emulator, Latency

# Every test here follows a running kernel session's log.
pytestmark = pytest.mark.slow

PRINTS_AROUND_A_FLAG = """
import os, time
print('first line', flush=True)
while not os.path.exists({flag!r}):
    time.sleep(0.1)
print('second line', flush=True)
"""


def _stream(emulator: Emulator, user: str = "alice", **fields: Any) -> requests.Response:
    http = KaggleHttpClient(env=KaggleEnv.LOCAL, api_token=KEYS[user])
    http._endpoint = emulator.url
    request = ApiGetKernelSessionLogsStreamRequest()
    for name, value in fields.items():
        setattr(request, name, value)
    return KernelsApiClient(http).get_kernel_session_logs_stream(request)


def _events(response: requests.Response) -> Iterator[str]:
    for line in response.iter_lines():
        if line:
            assert line.startswith(b"data: ")
            yield line.removeprefix(b"data: ").decode("utf-8")


# Events that never arrive make the reader block: fail fast instead.
@pytest.mark.timeout(120)
def test_live_events_then_the_persisted_log(kaggle_emulator: Emulator, tmp_path: Path):
    flag = tmp_path / "go-on"
    # Queued at first: the call waits for the session to start, then streams.
    kaggle_emulator.latency = Latency(queue_delay=1.0)
    assert push(kaggle_emulator, "streamed-log", PRINTS_AROUND_A_FLAG.format(flag=str(flag))).ok
    response = _stream(
        kaggle_emulator, user_name="alice", kernel_slug="streamed-log", wait_for_logs_url_seconds=60
    )
    assert response.headers["Content-Type"] == "text/event-stream"
    events = _events(response)
    received = []
    for payload in events:
        received.append(payload)
        if "first line" in payload:
            break
    assert kaggle_emulator.status("alice", "streamed-log") == "RUNNING"
    flag.touch()
    received += list(events)
    assert received[-1] == "END_OF_LOG"
    entries = [json.loads(payload) for payload in received[:-1]]
    assert all(set(entry) == {"stream_name", "time", "data"} for entry in entries)
    stdout = "".join(entry["data"] for entry in entries if entry["stream_name"] == "stdout")
    assert "first line" in stdout and "second line" in stdout

    kaggle_emulator.wait_for("alice", "streamed-log")
    ended = _stream(
        kaggle_emulator, user_name="alice", kernel_slug="streamed-log", version_label="v1"
    )
    assert ended.headers["Content-Type"] == "application/json"
    persisted = ended.json()
    assert "second line" in "".join(entry["data"] for entry in persisted)

    # A caller that knows the session id may name it instead; it is nobody else's.
    session_id = kaggle_emulator.session_id("alice", "streamed-log")
    assert _stream(kaggle_emulator, kernel_session_id=session_id).json() == persisted
    with pytest.raises(requests.HTTPError):
        _stream(kaggle_emulator, user="bob", kernel_session_id=session_id)


def test_a_session_still_queued_after_the_wait_is_a_504(kaggle_emulator: Emulator):
    kaggle_emulator.latency = Latency(queue_delay=3600)
    assert push(kaggle_emulator, "queued-log").ok
    with pytest.raises(requests.HTTPError) as raised:
        _stream(
            kaggle_emulator,
            user_name="alice",
            kernel_slug="queued-log",
            wait_for_logs_url_seconds=1,
        )
    assert status_of(raised.value) == 504


def test_stream_faults_and_permissions(kaggle_emulator: Emulator):
    assert push(kaggle_emulator, "private-log").ok
    kaggle_emulator.wait_for("alice", "private-log")
    kaggle_emulator.fail_next("LogsStream", "503")
    with pytest.raises(requests.HTTPError) as raised:
        _stream(kaggle_emulator, user_name="alice", kernel_slug="private-log")
    assert status_of(raised.value) == 503
    with pytest.raises(requests.HTTPError) as raised:
        _stream(kaggle_emulator, user="bob", user_name="alice", kernel_slug="private-log")
    assert status_of(raised.value) == 403
    # Counted once it got past the fault: bob's refused call.
    assert kaggle_emulator.calls["LogsStream"] == 1


@pytest.mark.timeout(120)
def test_the_kaggle_cli_follows_a_running_session(
    kaggle_emulator: Emulator, official_api, tmp_path: Path
):
    flag = tmp_path / "go-on"
    assert push(kaggle_emulator, "followed-log", PRINTS_AROUND_A_FLAG.format(flag=str(flag))).ok
    kaggle_emulator.wait_for("alice", "followed-log", statuses=["RUNNING"])
    events = official_api("alice").kernels_logs_stream("alice/followed-log")
    data = []
    for event in events:
        data.append(event["data"])
        if "first line" in event["data"]:
            break
    flag.touch()
    data += [event["data"] for event in events]
    assert "second line" in "".join(data)
