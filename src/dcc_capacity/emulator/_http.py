"""A lean HTTP/1.1 server for the emulator: httptools parsing on a plain asyncio Protocol.

Why not uvicorn + ASGI: the gateway is the request path the whole suite
measures against, and uvicorn's generic machinery (a task, a cycle object
and four ASGI message dicts per request, head and body written separately)
is work the emulator's one core could spend on signatures: replacing it
gained 5-7 % requests/s (docs/performance.md). Here a request that the app
can answer at once (the usual case: checks, a free worker, the signed
answer) is answered inside ``data_received`` with one write and no task at
all; only requests that wait for a worker or a queue get a task.

HTTP semantics kept: keep-alive (HTTP/1.1 default, ``Connection: close``,
HTTP/1.0), pipelining (answers in request order), ``Expect: 100-continue``,
chunked request bodies (httptools de-chunks), bounded request heads (64 KiB)
and bodies (over ``max_body_bytes`` the body is read and discarded up to
64 MiB so the client still gets its answer), back-pressure both ways and an
idle keep-alive timeout. Malformed HTTP gets ``400`` and the connection closes.
"""

from __future__ import annotations

import asyncio
import functools
import gc
import logging
import signal
import socket
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

import httptools

from dcc_capacity.emulator._net import no_delay

__all__ = ["LeanServer", "Reply"]

log = logging.getLogger("dcc_capacity.emulator")

Reply = tuple[int, bytes, bytes]
"""(status, body, content type) - what the app's ``route`` returns, or an awaitable of it."""
Router = Callable[[bytes, str, bytes, bytes, "bytes | None"], "Reply | Awaitable[Reply]"]

_REASONS = {100: b"Continue", 200: b"OK", 400: b"Bad Request", 404: b"Not Found", 405: b"Method Not Allowed",
            413: b"Payload Too Large", 429: b"Too Many Requests", 431: b"Request Header Fields Too Large",
            500: b"Internal Server Error", 503: b"Service Unavailable"}
_HEAD_LIMIT = 64 * 1024
_DRAIN_LIMIT = 64 * 1024 * 1024
_PIPELINE_LIMIT = 64
_IDLE_TIMEOUT_S = 30.0


def _head(status: int, ctype: bytes, length: int, close: bool) -> bytes:
    reason = _REASONS.get(status, b"Unknown")
    return b"HTTP/1.1 %d %s\r\ncontent-type: %s\r\ncontent-length: %d\r\n%s\r\n" % (
        status, reason, ctype, length, b"connection: close\r\n" if close else b"")


class _Conn(asyncio.Protocol):
    """One client connection; callbacks from httptools fill in the current request."""

    def __init__(self, server: LeanServer) -> None:
        self.server = server
        self.router = server.router
        self.limit = server.max_body
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.waiting: deque[list[Any]] = deque()   # [reply or None, close?] in request order
        self.out: list[bytes] | None = None         # collects writes while one data_received runs
        self.closing = False
        self.paused = False
        self.write_paused = False
        self.last = time.monotonic()
        self._reset()

    def _reset(self) -> None:
        self.url = b""
        self.head_size = 0
        self.accept = b""
        self.length: int | None = None
        self.expect = False
        self.body: list[bytes] = []
        self.size = 0
        self.too_large = False

    # -- asyncio.Protocol ------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        no_delay(transport)
        self.server.conns.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closing = True
        self.server.conns.discard(self)

    def data_received(self, data: bytes) -> None:
        if self.closing:
            return
        self.last = time.monotonic()
        self.out = []
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._fail(400)
        except httptools.HttpParserError:
            self._fail(400)
        finally:
            out, self.out = self.out, None
            if out and self.transport is not None:
                self.transport.write(out[0] if len(out) == 1 else b"".join(out))
                if self.closing:
                    self.transport.close()

    def pause_writing(self) -> None:
        self.write_paused = True
        self._flow()

    def resume_writing(self) -> None:
        self.write_paused = False
        self._flow()

    # -- httptools callbacks ---------------------------------------------------------------
    def on_message_begin(self) -> None:
        self._reset()

    def on_url(self, url: bytes) -> None:
        self.url += url
        self.head_size += len(url)
        if self.head_size > _HEAD_LIMIT:
            raise httptools.HttpParserError("request line too long")

    def on_header(self, name: bytes, value: bytes) -> None:
        self.head_size += len(name) + len(value) + 4
        if self.head_size > _HEAD_LIMIT:
            raise httptools.HttpParserError("request head too large")
        name = name.lower()
        if name == b"content-length":
            try:
                self.length = int(value)
            except ValueError:
                self.length = _DRAIN_LIMIT + 1
        elif name == b"accept":
            self.accept = value
        elif name == b"expect" and value.lower() == b"100-continue":
            self.expect = True

    def on_headers_complete(self) -> None:
        if self.length is not None and self.length > self.limit:
            self.too_large = True
        if self.expect:
            self._write(b"HTTP/1.1 100 Continue\r\n\r\n")

    def on_body(self, chunk: bytes) -> None:
        self.size += len(chunk)
        if self.too_large or self.size > self.limit:
            self.too_large = True
            self.body.clear()
            if self.size > _DRAIN_LIMIT:
                raise httptools.HttpParserError("request body beyond the drain limit")
        else:
            self.body.append(chunk)

    def on_message_complete(self) -> None:
        if self.closing:
            return
        close = not self.parser.should_keep_alive()
        method = self.parser.get_method()
        path, _, query = self.url.partition(b"?")
        body = None if self.too_large else (self.body[0] if len(self.body) == 1 else b"".join(self.body))
        try:
            reply = self.router(method, path.decode("latin-1"), query, self.accept, body)
        except Exception:  # noqa: BLE001 - one request's bug must not take the connection down
            log.exception("request failed")
            reply = (500, b"internal error\n", b"text/plain")
        if isinstance(reply, tuple):
            if not self.waiting:
                self._emit(reply, close)
                return
            self.waiting.append([reply, close])
        else:
            entry: list[Any] = [None, close]
            self.waiting.append(entry)
            task = asyncio.ensure_future(reply)
            task.add_done_callback(functools.partial(self._done, entry=entry))
        self._flow()

    # -- answers ---------------------------------------------------------------------------
    def _done(self, task: asyncio.Future, entry: list[Any]) -> None:
        if task.cancelled():
            entry[0] = (503, b"cancelled\n", b"text/plain")
        elif task.exception() is not None:
            log.error("request failed", exc_info=task.exception())
            entry[0] = (500, b"internal error\n", b"text/plain")
        else:
            entry[0] = task.result()
        while self.waiting and self.waiting[0][0] is not None and not self.closing:
            reply, close = self.waiting.popleft()
            self._emit(reply, close)
        self._flow()

    def _emit(self, reply: Reply, close: bool) -> None:
        status, body, ctype = reply
        self._write(_head(status, ctype, len(body), close) + body)
        if close:
            self._close()

    def _write(self, data: bytes) -> None:
        if self.out is not None:
            self.out.append(data)
        elif self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    def _close(self) -> None:
        self.closing = True
        if self.out is None and self.transport is not None:
            self.transport.close()

    def _fail(self, status: int) -> None:
        self.waiting.clear()
        self._write(_head(status, b"text/plain", 0, True))
        self._close()

    def _flow(self) -> None:
        """Stop reading while the client has many answers pending or is not reading ours."""
        if self.transport is None or self.closing:
            return
        busy = self.write_paused or len(self.waiting) >= _PIPELINE_LIMIT
        if busy and not self.paused:
            self.paused = True
            self.transport.pause_reading()
        elif not busy and self.paused:
            self.paused = False
            self.transport.resume_reading()

    def idle_for(self, now: float) -> float:
        return 0.0 if self.waiting else now - self.last


class LeanServer:
    """Serves ``app.route`` on already-bound sockets until ``should_exit`` (or SIGINT/SIGTERM)."""

    def __init__(self, app: Any, *, max_body: int, log_level: str = "warning", ssl_context: Any = None) -> None:
        self.app = app
        self.ssl_context = ssl_context
        """An ``ssl.SSLContext``: serve HTTPS (the plain path is untouched when None)."""
        self.router: Router = app.route
        self.max_body = max_body
        self.conns: set[_Conn] = set()
        self.started = False
        self.should_exit = False
        self.log_level = log_level

    def run(self, sockets: list[socket.socket]) -> None:
        logging.getLogger("dcc_capacity").setLevel(self.log_level.upper())
        # uvloop.run, not asyncio.Runner: Runner is Python 3.11+, and this project supports 3.10.
        try:
            import uvloop
        except ImportError:  # pragma: no cover - uvicorn[standard] brings uvloop
            asyncio.run(self.serve(sockets))
        else:
            uvloop.run(self.serve(sockets))

    def _exit(self) -> None:
        self.should_exit = True

    async def serve(self, sockets: list[socket.socket]) -> None:
        loop = asyncio.get_running_loop()
        signals = threading.current_thread() is threading.main_thread()
        if signals:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, self._exit)
        await self.app.startup()
        servers = [await loop.create_server(lambda: _Conn(self), sock=s, backlog=2048, ssl=self.ssl_context)
                   for s in sockets]
        # Everything alive now (config, PKI, catalogue, libraries) lives as long as the server: keep it out of
        # the collector's generations so full collections only walk per-request garbage (own process only).
        if signals:
            gc.freeze()
        self.started = True
        try:
            tick = 0
            while not self.should_exit:
                await asyncio.sleep(0.05)
                tick += 1
                if tick % 20 == 0:
                    now = time.monotonic()
                    for c in [c for c in self.conns if c.idle_for(now) > _IDLE_TIMEOUT_S]:
                        c._close()
        finally:
            for srv in servers:
                srv.close()
            for c in list(self.conns):
                if c.transport is not None:
                    c.transport.close()
            await self.app.shutdown()
            if signals:
                for sig in (signal.SIGINT, signal.SIGTERM):
                    loop.remove_signal_handler(sig)
