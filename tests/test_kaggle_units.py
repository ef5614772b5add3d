"""The Kaggle backend's parts on their own: a server that misbehaves in ways the emulator
does not (endless pages, endless bodies), the names a notebook may give its clips, the
record's state machine, and what makes two requests the same job."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import requests

import kaggletts
from kaggletts.backends.kaggle.credentials import Credentials
from kaggletts.backends.kaggle.download import Downloader, Wanted
from kaggletts.backends.kaggle.outputs import last_log_line
from kaggletts.backends.kaggle.records import BadTransition, KaggleRun, RunStore, Shard, ShardState
from kaggletts.backends.kaggle.remote import (
    MAX_OUTPUT_PAGES,
    KaggleRemote,
    KernelState,
    RemoteStatus,
    explain,
)
from kaggletts.backends.kaggle.retry import RetryPolicy
from kaggletts.errors import (
    CorruptRecord,
    KaggleTTSError,
    KaggleUnreachable,
    ListingCutShort,
    PushRejected,
    RunFailed,
    TooLarge,
)
from kaggletts.jobs import Job, list_jobs
from kaggletts.result import clip_records, is_clip_name

Reply = Callable[[BaseHTTPRequestHandler], None]


@pytest.fixture
def server() -> Iterator[Callable[[Reply], str]]:
    """A loopback HTTP server answering every request with the reply given; yields a
    function that installs the reply and returns the server's URL."""
    replies: list[Reply] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            replies[-1](self)

        do_GET = do_POST  # noqa: N815

        def log_message(self, *_args: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()

    def serve(reply: Reply) -> str:
        replies.append(reply)
        return f"http://127.0.0.1:{httpd.server_port}"

    yield serve
    httpd.shutdown()
    httpd.server_close()


def json_reply(body: dict) -> Reply:
    def reply(handler: BaseHTTPRequestHandler) -> None:
        data = json.dumps(body).encode()
        handler.send_response(200)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)

    return reply


def remote_at(url: str) -> KaggleRemote:
    return KaggleRemote(
        Credentials("alice", key="k"), url, RetryPolicy(attempts=2, first_wait=0.01)
    )


def test_a_repeated_page_token_ends_the_listing(server):
    url = server(
        json_reply({"files": [{"fileName": "a.wav", "url": "u"}], "nextPageToken": "again"})
    )
    files, _ = remote_at(url).outputs("kernel")
    assert [f.name for f in files] == ["a.wav", "a.wav"], "two pages, then the repeat stops it"


def test_a_listing_past_the_page_bound_fails_rather_than_lose_the_rest(server):
    """10,000 files and more: the pages beyond the bound are never taken as the whole."""
    pages = iter(range(10_000))

    def reply(handler: BaseHTTPRequestHandler) -> None:
        page = next(pages)
        json_reply({
            "files": [{"fileName": f"f-{page}-{n}.txt", "url": "u"} for n in range(200)],
            "nextPageToken": f"page-{page}",
        })(handler)

    with pytest.raises(ListingCutShort, match=r"more than 50 pages of outputs \(10000 files"):
        remote_at(server(reply)).outputs("kernel")
    assert next(pages) == MAX_OUTPUT_PAGES


def endless_body(handler: BaseHTTPRequestHandler) -> None:
    handler.send_response(200)
    handler.send_header("Content-Type", "application/octet-stream")
    handler.end_headers()
    chunk = b"\0" * 65536
    try:
        for _ in range(200 * 16):  # 200 MB at most, should anyone read it all
            handler.wfile.write(chunk)
    except (BrokenPipeError, ConnectionResetError):
        pass


def test_a_download_stops_at_the_recorded_size(server, tmp_path):
    url = server(endless_body)
    downloader = Downloader(requests.Session(), RetryPolicy(attempts=2, first_wait=0.01))
    with pytest.raises(RunFailed, match="does not match the size"):
        downloader.fetch(Wanted("clip.wav", 32_000, "0" * 64), tmp_path, lambda *_: url)
    assert downloader.bytes_fetched < 2 * (32_000 + (1 << 20)), "read past the size, then stop"
    assert not list(tmp_path.iterdir()), "nothing half-written is left"


def test_a_file_with_no_recorded_size_is_bounded(server, tmp_path):
    url = server(endless_body)
    downloader = Downloader(requests.Session(), RetryPolicy(attempts=2, first_wait=0.01))
    with pytest.raises(TooLarge):
        downloader.fetch(Wanted("__notebook__.ipynb", max_size=100_000), tmp_path, lambda *_: url)
    assert downloader.bytes_fetched < 100_000 + (1 << 20)


@pytest.mark.parametrize(
    "name",
    [
        "job.json",
        "result.json",
        "kernel/notebook.ipynb",
        "index.html",
        "../escape.wav",
        "/abs.wav",
        "shard-2/001-a.wav",
        ".hidden.wav",
        "kernel/001.wav",
        "a\\b.wav",
        "001-a.mp3",
        "sub/../001.wav",
    ],
)
def test_clip_names_stay_in_their_lane(name):
    assert not is_clip_name(name)


@pytest.mark.parametrize("name", ["001-hello.wav", "0001-français.wav", "voices/002-b.wav"])
def test_ordinary_clip_names_pass(name):
    assert is_clip_name(name)


@pytest.mark.parametrize(
    "scraps, problem",
    [
        ({}, "recorded no `clips` scrap"),
        ({"clips": {"file": "a.wav"}}, "is not a list"),
        ({"clips": ["a.wav"]}, "clip 1 in the `clips` scrap: not a mapping"),
        ({"clips": [{"file": "a.wav", "sha256": "0" * 64}]}, "clip 1 .*: `bytes` is missing"),
        ({"clips": [{"file": "a.wav", "bytes": 3, "sha256": "nope"}]}, "`sha256` is not a sha256"),
        ({"clips": [{"file": "job.json", "bytes": 3, "sha256": "0" * 64}]}, "'job.json'"),
    ],
)
def test_malformed_clip_scraps_are_a_clear_failure(scraps, problem):
    with pytest.raises(RunFailed, match=problem.replace("`", ".").replace("(", ".")):
        clip_records(scraps, Path("__notebook__.ipynb"))


@pytest.mark.parametrize(
    "log, line",
    [
        (json.dumps([{"stream_name": "stdout", "time": 1, "data": "a\nlast one\n"}]), "last one"),
        (json.dumps({"not": "a list"}), '{"not": "a list"}'),
        (json.dumps(["plain", "strings"]), "strings"),
        ("not json at all\nfinal", "final"),
        ("", ""),
    ],
)
def test_the_last_log_line_is_read_from_any_log(log, line):
    assert last_log_line(log) == line


def a_job(tmp_path: Path, **identity: object) -> Job:
    spec = kaggletts.find_notebook("espeak")
    return Job.create(spec, {"text": "Same words."}, "kaggle", tmp_path, dict(identity))


def test_the_job_id_covers_where_and_how_it_runs(tmp_path):
    base = a_job(tmp_path, endpoint="https://a", account="alice", machine_shape=None)
    assert a_job(tmp_path, endpoint="https://a", account="alice", machine_shape=None).id == base.id
    for other in (
        a_job(tmp_path, endpoint="https://b", account="alice", machine_shape=None),
        a_job(tmp_path, endpoint="https://a", account="bob", machine_shape=None),
        a_job(tmp_path, endpoint="https://a", account="alice", machine_shape="NvidiaTeslaT4"),
    ):
        assert other.id != base.id


def test_the_record_refuses_a_step_its_state_machine_does_not_allow(tmp_path):
    job = a_job(tmp_path, endpoint="e", account="a")
    store = RunStore(job)
    shard = Shard(1, "kaggletts-espeak-x-1", {"text": "Same words."}, str(job.directory))
    run = KaggleRun("e", "a", [shard])
    store.save(run)
    with pytest.raises(BadTransition):
        store.move(run, shard, ShardState.DOWNLOADED)
    store.move(run, shard, ShardState.PUSHING)
    stored = RunStore(job).load()
    assert stored is not None and stored.shards[0].state is ShardState.PUSHING


@pytest.mark.parametrize("text", ["[]", '{"job_id": "x"}', "{trunc", '{"job_id": 1, "run": 3}'])
def test_a_damaged_record_is_refused_clearly_and_hides_no_other_job(tmp_path, text):
    good = a_job(tmp_path, endpoint="e", account="a")
    good.update_record()
    bad = a_job(tmp_path, endpoint="other", account="a")
    bad.directory.mkdir(parents=True)
    (bad.directory / "job.json").write_text(text)
    with pytest.raises(CorruptRecord, match="job.json"):
        bad.read_record()
    assert [j.record.job_id for j in list_jobs(tmp_path)] == [good.id]


def test_the_kernel_states_are_the_ones_kagglesdk_names():
    from kagglesdk.kernels.types.kernels_enums import KernelWorkerStatus

    assert [state.name for state in KernelWorkerStatus] == [
        state.value for state in KernelState if state is not KernelState.UNKNOWN
    ]


def test_a_state_kaggle_has_not_named_before_is_kept_by_name_and_not_an_end():
    odd = RemoteStatus.named("PAUSED_FOR_MAINTENANCE")
    assert (odd.state, odd.name, odd.ended) == (
        KernelState.UNKNOWN, "PAUSED_FOR_MAINTENANCE", False
    )
    assert RemoteStatus.named("CANCEL_ACKNOWLEDGED").ended
    assert not RemoteStatus.named("NEW_SCRIPT").ended


def test_every_remote_error_is_a_kaggletts_error():
    assert issubclass(PushRejected, KaggleTTSError)
    unreadable = explain(ValueError("bad enum"), "http://x", "status of k")
    assert not isinstance(unreadable, KaggleUnreachable)
    assert "cannot read" in str(unreadable)
    down = explain(requests.ConnectionError("refused"), "http://x", "status of k")
    assert isinstance(down, KaggleUnreachable) and "did not answer" in str(down)


def test_each_downloaded_file_reports_its_progress(server, tmp_path, caplog):
    body = b"RIFF" + b"\0" * 60

    def reply(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(200)
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)

    url = server(reply)
    import hashlib

    digest = hashlib.sha256(body).hexdigest()
    wanted = [Wanted(f"00{n}-x.wav", len(body), digest) for n in (1, 2, 3)]
    caplog.set_level(logging.INFO, logger="kaggletts.download")
    Downloader(
        requests.Session(), RetryPolicy(attempts=2), where="k-1 download", label="espeak download"
    ).fetch_all(wanted, tmp_path, lambda *_: url)
    progress = [r.progress for r in caplog.records if getattr(r, "progress", None)]
    assert sorted(p.files for p in progress) == [1, 2, 3]
    assert sorted(p.bytes for p in progress) == [64, 128, 192]
    assert {(p.total_files, p.total_bytes, p.where, p.label) for p in progress} == {
        (3, 192, "k-1 download", "espeak download")
    }
