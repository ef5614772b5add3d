"""Debian's chromium, headless, driven over the DevTools protocol on a pipe (no port, no
package): the page tests open a page, wait on its media, and take a screenshot.

The pipe is what `--remote-debugging-pipe` gives: chromium reads commands from its file
descriptor 3 and writes replies and events to 4, each a JSON text ended by a NUL byte."""

from __future__ import annotations

import base64
import contextlib
import fcntl
import json
import os
import select
import shutil
import struct
import subprocess
import tempfile
import time
import zlib
from pathlib import Path
from typing import Any

import pytest

# The flags the workplace needs: without the background-networking ones chromium reaches
# for the network at start-up, which this machine's closed network refuses.
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--mute-audio",
)


def chromium_or_skip() -> str:
    """The chromium executable. Missing, it skips the test, except in CI (CI=true), where
    the slow session installs it and its absence is a failure."""
    found = shutil.which("chromium")
    if found:
        return found
    reason = (
        "Debian's chromium is not installed; `nox -s slow` installs it where apt-get "
        "can (root), or run `apt-get install chromium`"
    )
    if os.environ.get("CI") == "true":
        pytest.fail(reason)
    pytest.skip(reason)


class DevToolsError(RuntimeError):
    """Chromium answered a command with an error, or not in time."""


class Chromium:
    """One headless browser with one page. Use as a context manager."""

    def __init__(self, executable: str, width: int = 1200, height: int = 800):
        self.executable = executable
        self.width, self.height = width, height
        self._next_id = 0
        self._buffer = b""
        self.events: list[dict[str, Any]] = []

    def __enter__(self) -> Chromium:
        self._profile = tempfile.TemporaryDirectory(prefix="kaggletts-chromium-")
        commands_read, self._commands = os.pipe()
        self._replies, replies_write = os.pipe()
        # Above 3 and 4, so that the redirections cannot overwrite one another (bash, not
        # sh: dash takes single-digit descriptors only).
        child_in = fcntl.fcntl(commands_read, fcntl.F_DUPFD, 10)
        child_out = fcntl.fcntl(replies_write, fcntl.F_DUPFD, 10)
        os.close(commands_read)
        os.close(replies_write)
        self._log = open(Path(self._profile.name) / "chromium.log", "wb")  # noqa: SIM115
        self.process = subprocess.Popen(
            [
                "bash",
                "-c",
                f'exec "$0" "$@" 3<&{child_in} {child_in}<&- 4>&{child_out} {child_out}>&-',
                self.executable,
                *FLAGS,
                f"--user-data-dir={self._profile.name}",
                "--remote-debugging-pipe",
                "about:blank",
            ],
            pass_fds=(child_in, child_out),
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=self._log,
        )
        os.close(child_in)
        os.close(child_out)
        target = self.send("Target.createTarget", url="about:blank")["targetId"]
        self.session = self.send("Target.attachToTarget", targetId=target, flatten=True)[
            "sessionId"
        ]
        self.send(
            "Emulation.setDeviceMetricsOverride",
            width=self.width,
            height=self.height,
            deviceScaleFactor=1,
            mobile=False,
            session=self.session,
        )
        self.send("Page.enable", session=self.session)
        return self

    def __exit__(self, *exc: object) -> None:
        # A browser that already died has nothing to close; it is waited for below.
        with contextlib.suppress(DevToolsError, OSError):
            self.send("Browser.close", timeout=10)
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        os.close(self._commands)
        os.close(self._replies)
        self._log.close()
        self._profile.cleanup()

    # -- the page ------------------------------------------------------------------------

    def open(self, url: str, timeout: float = 30) -> None:
        """Navigate and wait for the page's load event."""
        self.events.clear()
        self.send("Page.navigate", url=url, session=self.session)
        deadline = time.monotonic() + timeout
        while not any(e.get("method") == "Page.loadEventFired" for e in self.events):
            if time.monotonic() > deadline:
                raise DevToolsError(f"{url} did not load in {timeout}s")
            self._read_one(deadline)

    def evaluate(self, expression: str, timeout: float = 60, user_gesture: bool = False) -> Any:
        """The value of a JavaScript expression in the page, promises awaited; as if the
        user had clicked (`user_gesture`), it may start playback."""
        reply = self.send(
            "Runtime.evaluate",
            expression=expression,
            awaitPromise=True,
            returnByValue=True,
            userGesture=user_gesture,
            session=self.session,
            timeout=timeout,
        )
        if "exceptionDetails" in reply:
            raise DevToolsError(f"the page threw: {reply['exceptionDetails']}")
        return reply["result"].get("value")

    def screenshot(self) -> bytes:
        """A PNG of the viewport."""
        reply = self.send("Page.captureScreenshot", format="png", session=self.session)
        return base64.b64decode(reply["data"])

    # -- the protocol --------------------------------------------------------------------

    def send(
        self, method: str, *, session: str | None = None, timeout: float = 30, **params: Any
    ) -> dict[str, Any]:
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params}
        if session:
            message["sessionId"] = session
        os.write(self._commands, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            reply = self._read_one(deadline)
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise DevToolsError(f"{method}: {reply['error']}")
                return reply.get("result", {})

    def _read_one(self, deadline: float) -> dict[str, Any]:
        """The next message; events are kept in `events` as well."""
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._replies], [], [], left)[0]:
                raise DevToolsError("chromium did not answer in time")
            chunk = os.read(self._replies, 1 << 20)
            if not chunk:
                raise DevToolsError(f"chromium closed its pipe (exit {self.process.poll()})")
            self._buffer += chunk
        text, self._buffer = self._buffer.split(b"\0", 1)
        message = json.loads(text)
        if "method" in message:
            self.events.append(message)
        return message


# -- looking at a screenshot ---------------------------------------------------------------


def png_pixels(png: bytes) -> tuple[int, int, int, bytes]:
    """Width, height, channels and the raw 8-bit samples of a non-interlaced PNG (the
    kind chromium writes), with the scanline filters undone."""
    assert png[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    position, data, header = 8, b"", b""
    while position < len(png):
        (length,) = struct.unpack(">I", png[position : position + 4])
        kind = png[position + 4 : position + 8]
        body = png[position + 8 : position + 8 + length]
        if kind == b"IHDR":
            header = body
        elif kind == b"IDAT":
            data += body
        position += 12 + length
    width, height, depth, color, _, _, interlace = struct.unpack(">IIBBBBB", header)
    assert depth == 8 and interlace == 0, "only 8-bit, non-interlaced PNGs are read here"
    channels = {0: 1, 2: 3, 4: 2, 6: 4}[color]
    raw = zlib.decompress(data)
    stride = width * channels
    previous = bytearray(stride)
    rows = bytearray()
    for y in range(height):
        start = y * (stride + 1)
        kind, line = raw[start], bytearray(raw[start + 1 : start + 1 + stride])
        _unfilter(kind, line, previous, channels)
        rows += line
        previous = line
    return width, height, channels, bytes(rows)


def _unfilter(kind: int, line: bytearray, above: bytearray, bpp: int) -> None:
    if kind == 0:
        return
    if kind == 2:
        for i in range(len(line)):
            line[i] = (line[i] + above[i]) & 0xFF
        return
    for i in range(len(line)):
        left = line[i - bpp] if i >= bpp else 0
        if kind == 1:
            line[i] = (line[i] + left) & 0xFF
        elif kind == 3:
            line[i] = (line[i] + ((left + above[i]) >> 1)) & 0xFF
        else:
            up, corner = above[i], above[i - bpp] if i >= bpp else 0
            estimate = left + up - corner
            a, b, c = abs(estimate - left), abs(estimate - up), abs(estimate - corner)
            predictor = left if a <= b and a <= c else up if b <= c else corner
            line[i] = (line[i] + predictor) & 0xFF


def luminance_spread(png: bytes) -> tuple[float, int]:
    """The standard deviation of the pixels' brightness (0-255) and how many distinct
    brightness levels appear: a blank screenshot has 0 and 1."""
    width, height, channels, samples = png_pixels(png)
    levels: dict[int, int] = {}
    step = channels
    for i in range(0, len(samples), step):
        if channels >= 3:
            value = (299 * samples[i] + 587 * samples[i + 1] + 114 * samples[i + 2]) // 1000
        else:
            value = samples[i]
        levels[value] = levels.get(value, 0) + 1
    count = width * height
    mean = sum(v * n for v, n in levels.items()) / count
    variance = sum(n * (v - mean) ** 2 for v, n in levels.items()) / count
    return variance**0.5, len(levels)
