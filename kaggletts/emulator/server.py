"""HTTP front end: routing, auth, body limits, faults, file downloads, uploads and log streams."""

from __future__ import annotations

import contextlib
import email.utils
import hashlib
import json
import logging
import mimetypes
import re
import socket
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, unquote, urlsplit

from .faults import DOWNLOAD, EMPTY_KERNEL, LOGS_STREAM, UPLOAD
from .sessions import OUTPUT_DIR, LiveLog
from .wire import ApiError

if TYPE_CHECKING:
    from .emulator import Emulator

LOGGER = logging.getLogger(__name__)
API_PATH = re.compile(r"^(?:/api)?/v1/(?P<service>[A-Za-z.]+)/(?P<method>[A-Za-z]+)$")
LOGS_PATH = re.compile(r"^(?:/api)?/v1/kernels/logs/stream/(?P<owner>[^/]+)/(?P<slug>[^/]+)$")
OUTPUT_PATH = re.compile(r"^/_emulator/outputs/(?P<resource>[^/]+/[^/]+/[0-9]+/.+)$")
UPLOAD_PATH = re.compile(r"^/_emulator/uploads/(?P<token>[A-Za-z0-9_-]+)$")
RANGE = re.compile(r"^bytes=(?P<start>[0-9]*)-(?P<end>[0-9]*)$")
CHUNK = 64 * 1024
UNAUTHENTICATED_METHODS = frozenset({"IntrospectToken"})
# kagglesdk's RPC for the log stream (a POST like every call); the kaggle CLI uses a GET
# path instead (LOGS_PATH). Both answer alike; faults and counters know both as LogsStream.
LOGS_STREAM_RPC = ("kernels.KernelsApiService", "GetKernelSessionLogsStream")
SSE_POLL_SECONDS = 0.2
# An unread request body makes the kernel reset the connection on close, which can destroy
# the error reply; bodies up to this size are read and thrown away first.
DISCARD_LIMIT = 256 * 1024 * 1024


class _Dropped(Exception):
    """Raised to abandon a request without replying, closing the connection."""


class EmulatorHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], app: Emulator):
        self.app = app
        super().__init__(address, RequestHandler)

    def handle_error(
        self, request: socket.socket | tuple[bytes, socket.socket], client_address: tuple[str, int]
    ) -> None:
        """A client that goes away mid-request (killed, timed out) is routine, not a fault."""
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)


class RequestHandler(BaseHTTPRequestHandler):
    server: EmulatorHTTPServer
    protocol_version = "HTTP/1.1"
    server_version = "KaggleEmulator/1.0"

    @property
    def app(self) -> Emulator:
        return self.server.app

    def setup(self) -> None:
        super().setup()
        # A client that goes quiet mid-request gets its connection closed instead of holding
        # a thread forever. The limit is this emulator's, so it goes on the connection, not
        # in StreamRequestHandler's `timeout`, which is the handler class's.
        self.connection.settimeout(self.server.app.config.limits.request_timeout_seconds)

    def log_message(self, format: str, *args: object) -> None:
        LOGGER.debug("%s " + format, self.address_string(), *args)

    # Plumbing --------------------------------------------------------------------------

    def _guarded(self, handler: object) -> None:
        raw_length = self.headers.get("Content-Length", "0") or "0"
        self._unread = int(raw_length) if raw_length.isdigit() else 0
        host = self.headers.get("Host")
        self.app.set_request_base_url(f"http://{host}" if host else None)
        try:
            handler()  # type: ignore[operator]
        except _Dropped:
            self._discard_body()
            self._drop()
        except ApiError as error:
            self._discard_body()
            self._send_json(error.status, error.body(), error.headers)
        except (BrokenPipeError, ConnectionResetError, TimeoutError):
            self.close_connection = True
        except Exception as error:
            LOGGER.exception("internal error")
            with contextlib.suppress(OSError):
                self._send_json(500, {"code": 500, "message": f"Internal error: {error}"})

    def _read(self, size: int) -> bytes:
        chunk = self.rfile.read(min(size, self._unread))
        self._unread -= len(chunk)
        return chunk

    def _read_some(self, size: int) -> bytes:
        """Up to `size` bytes of what has arrived (at least one), without waiting for all."""
        chunk = self.rfile.read1(min(size, self._unread))
        self._unread -= len(chunk)
        return chunk

    def _discard_body(self) -> None:
        if self._unread > DISCARD_LIMIT:
            return
        while self._unread > 0 and self._read(CHUNK):
            pass

    def _drop(self) -> None:
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)

    def _send_json(self, status: int, body: object, headers: dict[str, str] | None = None) -> None:
        payload = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(payload)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        if status >= 400:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        self.wfile.write(payload)

    def _apply_fault(self, method: str) -> str | None:
        """Inject a drawn fault that happens before handling; return one due after it (the
        caller applies it, then counts it with `_record_fault`)."""
        delay = self.app.latency.request_delay
        if delay > 0:
            time.sleep(delay)
        fault = self.app.injector.draw(method)
        if fault is None:
            return None
        if fault == "drop":
            self.app.record_fault(method, fault)
            raise _Dropped
        if fault == "429":
            self.app.record_fault(method, fault)
            retry_after = str(self.app.faults.retry_after_seconds)
            raise ApiError(429, "Too many requests", {"Retry-After": retry_after})
        if fault in ("500", "502", "503"):
            self.app.record_fault(method, fault)
            raise ApiError(int(fault), f"Injected fault {fault}")
        return fault

    def _lose_reply(self, method: str) -> None:
        """The request took effect; its reply is lost."""
        self.app.record_fault(method, "lost-reply")
        raise _Dropped

    def _body_length(self, limit: int) -> int:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            raise ApiError(411, "Chunked request bodies are not supported here")
        raw = self.headers.get("Content-Length", "0") or "0"
        if not raw.isdigit():
            raise ApiError(400, "Invalid Content-Length")
        length = int(raw)
        if length > limit:
            self.close_connection = True
            raise ApiError(413, f"Request body of {length} bytes exceeds the {limit} byte limit")
        return length

    def _read_json(self) -> dict[str, object]:
        length = self._body_length(self.app.config.limits.max_request_bytes)
        raw = self._read(length) if length else b"{}"
        try:
            body = json.loads(raw or b"{}")
        except (ValueError, RecursionError) as error:
            # ValueError covers malformed JSON and bad UTF-8; RecursionError deep nesting.
            reason = "it is nested too deeply" if isinstance(error, RecursionError) else error
            raise ApiError(400, f"Request body is not valid JSON: {reason}") from error
        if not isinstance(body, dict):
            raise ApiError(400, "Request body must be a JSON object")
        return body

    # Verbs -----------------------------------------------------------------------------

    def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
        self._guarded(self._post)

    def do_GET(self) -> None:  # noqa: N802
        self._guarded(self._get)

    def do_HEAD(self) -> None:  # noqa: N802
        self._guarded(lambda: self._get(head=True))

    def do_PUT(self) -> None:  # noqa: N802
        self._guarded(self._put)

    def _post(self) -> None:
        path = urlsplit(self.path).path
        match = API_PATH.match(path)
        if not match:
            raise ApiError(404, f"No such endpoint: {path}")
        service, method = match["service"], match["method"]
        if (service, method) == LOGS_STREAM_RPC:
            body = self._read_json()
            self._apply_fault(LOGS_STREAM)
            self._stream_logs(body)
            return
        handler = self.app.api_handler(service, method)
        if handler is None:
            self._body_length(self.app.config.limits.max_request_bytes)
            raise ApiError(404, f"Unknown method {service}/{method}")
        body = self._read_json()
        fault = self._apply_fault(method)
        user = "" if method in UNAUTHENTICATED_METHODS else self._user()
        self.app.record_call(method, user)
        if fault == EMPTY_KERNEL:
            self.app.kernels.save_kernel_without_code(user, body)
            self.app.record_fault(method, fault)
            raise ApiError(500, "Injected fault empty-kernel")
        reply = handler(user, body)
        if fault == "lost-reply":
            self._lose_reply(method)
        self._send_json(200, reply)

    def _user(self) -> str:
        return self.app.auth.identify(self.headers.get("Authorization"))

    def _get(self, head: bool = False) -> None:
        url = urlsplit(self.path)
        query = {key: values[-1] for key, values in parse_qs(url.query).items()}
        if match := OUTPUT_PATH.match(url.path):
            self._download(unquote(match["resource"]), query, head)
        elif match := LOGS_PATH.match(url.path):
            self._apply_fault(LOGS_STREAM)
            body: dict[str, object] = {"userName": match["owner"], "kernelSlug": match["slug"]}
            for name in ("versionLabel", "waitForLogsUrlSeconds"):
                if name in query:
                    body[name] = query[name]
            self._stream_logs(body)
        elif url.path in ("/", "/_emulator/health"):
            self._send_json(200, {"status": "ok"})
        else:
            raise ApiError(404, f"No such endpoint: {url.path}")

    # Output downloads ------------------------------------------------------------------

    def _download(self, resource: str, query: dict[str, str], head: bool) -> None:
        fault = self._apply_fault(DOWNLOAD)
        self.app.signer.verify(resource, query.get("expires"), query.get("sig"))
        self.app.record_call(DOWNLOAD, "")
        owner, slug, number, name = resource.split("/", 3)
        kernel = self.app.store.kernels.get(f"{owner}/{slug}")
        if kernel is None:
            raise ApiError(404, "No such file")
        # A running session's files are still in its working folder (listed only under the
        # running-outputs assumption); they move to output/ when it ends.
        roots = (
            self.app.store.version_dir(kernel, int(number)) / OUTPUT_DIR,
            self.app.store.working_dir(kernel, int(number)),
        )
        for root in (root.resolve() for root in roots):
            file = (root / name).resolve()
            if file.is_relative_to(root) and file.is_file():
                self._send_file(file, resource, head, truncate=fault == "truncate")
                return
        raise ApiError(404, "No such file")

    def _send_file(self, file: Path, resource: str, head: bool, truncate: bool) -> None:
        info = file.stat()
        size = info.st_size
        etag = (
            '"'
            + hashlib.sha256(f"{resource}:{size}:{info.st_mtime_ns}".encode()).hexdigest()[:32]
            + '"'
        )
        start, end = 0, size - 1
        status = 200
        requested = self.headers.get("Range")
        if_range = self.headers.get("If-Range")
        if requested and (if_range is None or if_range == etag):
            match = RANGE.match(requested.strip())
            if not match or (not match["start"] and not match["end"]):
                raise ApiError(416, "Malformed Range", {"Content-Range": f"bytes */{size}"})
            if match["start"]:
                start = int(match["start"])
                end = min(int(match["end"]), size - 1) if match["end"] else size - 1
            else:
                start = max(0, size - int(match["end"]))
            if start >= size or start > end:
                raise ApiError(416, "Range not satisfiable", {"Content-Range": f"bytes */{size}"})
            status = 206
        length = end - start + 1 if size else 0
        self.send_response(status)
        self.send_header(
            "Content-Type", mimetypes.guess_type(file.name)[0] or "application/octet-stream"
        )
        self.send_header("Content-Length", str(length))
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("ETag", etag)
        self.send_header("Last-Modified", email.utils.formatdate(info.st_mtime, usegmt=True))
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        self.end_headers()
        if head:
            return
        budget = length // 2 if truncate else length
        with file.open("rb") as handle:
            handle.seek(start)
            while budget > 0:
                chunk = handle.read(min(CHUNK, budget))
                if not chunk:
                    break
                self.wfile.write(chunk)
                budget -= len(chunk)
        if truncate:
            self.wfile.flush()
            self.app.record_fault(DOWNLOAD, "truncate")
            raise _Dropped

    # Uploads (the blob store behind StartBlobUpload) ----------------------------------

    def _put(self) -> None:
        url = urlsplit(self.path)
        match = UPLOAD_PATH.match(url.path)
        if not match:
            raise ApiError(404, f"No such endpoint: {url.path}")
        fault = self._apply_fault(UPLOAD)
        length = self._body_length(self.app.config.limits.max_upload_bytes)
        status, headers = self.app.uploads.receive(
            match["token"], self._read_some, length, self.headers.get("Content-Range")
        )
        if fault == "lost-reply":
            self._lose_reply(UPLOAD)
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", "0")
        self.end_headers()

    # Log streaming ---------------------------------------------------------------------

    def _stream_logs(self, body: dict[str, object]) -> None:
        """Server-Sent Events while the session runs (one `data:` JSON log entry each, then
        `data: END_OF_LOG`); the persisted JSON log once it has ended (kagglesdk 0.1.38)."""
        user = self._user()
        self.app.record_call(LOGS_STREAM, user)
        source = self.app.kernels.open_log_stream(user, body)
        if isinstance(source, bytes):
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(source)))
            self.end_headers()
            self.wfile.write(source)
            return
        self._send_events(source)

    def _send_events(self, live: LiveLog) -> None:
        # Chunked, one event per chunk: requests' iter_lines (the kaggle CLI's --follow) reads
        # a chunked body chunk by chunk, but waits for 512 bytes of an unframed one.
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        seen = 0
        while True:
            done = live.finished.is_set()
            entries, seen = live.after(seen)
            for entry in entries:
                self._write_chunk(f"data: {json.dumps(entry)}\n\n".encode())
            if done:
                break
            live.finished.wait(SSE_POLL_SECONDS)
        self._write_chunk(b"data: END_OF_LOG\n\n")
        self._write_chunk(b"")

    def _write_chunk(self, data: bytes) -> None:
        """One chunk of a chunked body; an empty one ends the body."""
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()
