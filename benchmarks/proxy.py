"""A forwarding proxy on 127.0.0.1 in front of the emulator that can stop answering for a
time window: an outage of every API call and download, without touching the emulator
(whose faults are per request, not per time window).

The Host header is passed through, so the emulator's signed output URLs point back at the
proxy and downloads go through the outage too. Every request is counted by method, refused
ones included, so a call attempted during the outage (a cancel, say) is still seen."""

from __future__ import annotations

import http.client
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from urllib.parse import urlsplit

# Headers that belong to one connection, not to the message (RFC 9110, 7.6.1).
HOP_BY_HOP = frozenset({"connection", "keep-alive", "transfer-encoding", "te", "trailer",
                        "upgrade", "proxy-authorization", "proxy-authenticate"})
# Headers the proxy writes itself (send_response adds Server and Date).
OWN_HEADERS = frozenset({"content-length", "server", "date"})
OUTAGE_BODY = b'{"code": 503, "message": "Service Unavailable (benchmark outage)"}'


def method_of(path: str) -> str:
    """The API method a request path names (`/api/v1/<service>/<method>`), or `download`."""
    path = urlsplit(path).path
    if path.startswith("/api/v1/"):
        return path.rstrip("/").rsplit("/", 1)[-1]
    return "download" if path.startswith("/_emulator/outputs/") else path


class OutageProxy:
    """Forward to `target` (an http://host:port URL); `outage(seconds)` answers 503 to
    everything for that long from now."""

    def __init__(self, target: str):
        parts = urlsplit(target)
        self.target = (parts.hostname or "127.0.0.1", parts.port or 80)
        self.seen: Counter[str] = Counter()
        self.refused: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._outage_until = 0.0
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def outage(self, seconds: float) -> None:
        with self._lock:
            self._outage_until = time.monotonic() + seconds

    def in_outage(self) -> bool:
        with self._lock:
            return time.monotonic() < self._outage_until

    def __enter__(self) -> OutageProxy:
        self._thread.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _count(self, method: str, refused: bool) -> None:
        with self._lock:
            self.seen[method] += 1
            if refused:
                self.refused[method] += 1

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Forward(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                pass  # the benchmark reports counts, not a request log

            def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
                self._forward()

            def do_POST(self) -> None:  # noqa: N802
                self._forward()

            def do_HEAD(self) -> None:  # noqa: N802
                self._forward()

            def do_PUT(self) -> None:  # noqa: N802
                self._forward()

            def _forward(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                down = proxy.in_outage()
                proxy._count(method_of(self.path), down)
                if down:
                    self._reply(503, {"Content-Type": "application/json"}, OUTAGE_BODY)
                    return
                upstream = http.client.HTTPConnection(*proxy.target, timeout=120)
                try:
                    headers = {k: v for k, v in self.headers.items()
                               if k.lower() not in HOP_BY_HOP}
                    upstream.request(self.command, self.path, body=body, headers=headers)
                    answer = upstream.getresponse()
                    payload = answer.read()
                    kept = {k: v for k, v in answer.getheaders()
                            if k.lower() not in HOP_BY_HOP | OWN_HEADERS}
                    self._reply(answer.status, kept, payload)
                except (OSError, http.client.HTTPException):
                    # The emulator dropped the connection (one of its faults): so do we.
                    self.close_connection = True
                finally:
                    upstream.close()

            def _reply(self, status: int, headers: dict[str, str], payload: bytes) -> None:
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                if status >= 400:
                    self.send_header("Connection", "close")
                    self.close_connection = True
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(payload)

        return Forward
