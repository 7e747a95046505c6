"""Delivering asynchronous responses and alerts to Service Users' callback URLs.

Everything put in one event-loop iteration is built (signed) and written in
one go: messages for a host are pipelined on a keep-alive HTTP/1.1
connection in a single write, and the answers are parsed by httptools as they
arrive, on a plain asyncio Protocol - no coroutine, queue hand-off or stream
reader per message. It is the emulator's hottest path after the request
itself, so it stays this small. A host gets more connections (up to
``concurrency``) only while the ones it has are busy. A delivery that fails
on a reused connection (closed by the server, reset, timed out) is retried
once on a fresh one; then it is counted failed and dropped - never allowed to
back up the gateway.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from urllib.parse import urlsplit

import httptools

from dcc_capacity.emulator._net import no_delay

__all__ = ["CallbackSender", "Delivery"]

log = logging.getLogger("dcc_capacity.emulator")
_WINDOW = 64
"""Answers a connection may owe before the sender opens another one to the same host."""


@dataclass(slots=True)
class Delivery:
    """One message to POST: ``build()`` makes (and signs) the bytes at send time."""

    url: str
    build: Callable[[], bytes]
    srv_class: str
    kind: str = "response"


class _Msg:
    __slots__ = ("item", "data", "tries")

    def __init__(self, item: Delivery) -> None:
        self.item = item
        self.data: bytes | None = None
        self.tries = 0


@lru_cache(maxsize=1024)
def _target(url: str) -> tuple[tuple[str, int, bool], bytes]:
    """(host, port, tls) and the request head up to the Content-Length value, once per callback URL."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"not an http(s):// URL: {url}")
    tls = parts.scheme == "https"
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    head = f"POST {path} HTTP/1.1\r\nHost: {parts.netloc}\r\nContent-Type: application/xml\r\nContent-Length: "
    return (parts.hostname, parts.port or (443 if tls else 80), tls), head.encode("latin-1")


class _Conn(asyncio.Protocol):
    """One keep-alive connection to a callback host; answers come back in the order messages were sent."""

    def __init__(self, sender: CallbackSender, key: tuple[str, int, bool]) -> None:
        self.sender = sender
        self.key = key
        self.transport: asyncio.Transport | None = None
        self.sent: deque[_Msg] = deque()
        self.early: list[bytes] = []
        self.parser = httptools.HttpResponseParser(self)
        self.dead = False
        self.used = False
        self.graceful = False
        self.progress = time.monotonic()

    def send(self, msgs: list[_Msg]) -> None:
        if not self.sent:
            self.progress = time.monotonic()
        self.sent.extend(msgs)
        data = b"".join(m.data for m in msgs)  # type: ignore[misc]
        if self.transport is None:
            self.early.append(data)
        else:
            self.transport.write(data)

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.close()      # connection_lost settles what is still owed
        elif not self.dead:
            self.dead = True
            self.sender._lost(self)

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        no_delay(transport)
        if self.early:
            self.transport.write(b"".join(self.early))  # type: ignore[union-attr]
            self.early.clear()

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            self.abort()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.dead:
            self.dead = True
            self.sender._lost(self)

    # httptools callbacks
    def on_message_complete(self) -> None:
        if not self.sent:                           # an answer nobody asked for
            self.abort()
            return
        msg = self.sent.popleft()
        self.used = True
        self.progress = time.monotonic()
        status = self.parser.get_status_code()
        self.sender._report(msg.item, 200 <= status < 300)
        if not self.parser.should_keep_alive():
            # The server closes after this answer: what it still owes was never refused, only not read.
            self.graceful = True
            self.sender._single.add(self.key)
            self.abort()


class CallbackSender:
    """Batches deliveries per loop iteration onto pipelined keep-alive connections (see the module docstring)."""

    def __init__(self, *, concurrency: int = 32, timeout_s: float = 10.0, queue_limit: int = 200_000,
                 on_result: Callable[[Delivery, bool], None] | None = None,
                 gate: Callable[[], asyncio.Future | None] | None = None, batch: int = 256,
                 ssl_context: ssl.SSLContext | None = None) -> None:
        self.concurrency = concurrency
        self.ssl_context = ssl_context
        """Client context for https:// callback URLs (default: system CAs, no client certificate)."""
        self.timeout_s = timeout_s
        self.queue_limit = queue_limit
        self._on_result = on_result
        self._gate = gate
        self.batch = batch
        self._pending: deque[_Msg] = deque()
        self._conns: dict[tuple[str, int, bool], list[_Conn]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._scheduled = False
        self._gated = False
        self._watch: asyncio.Task[None] | None = None
        self._single: set[tuple[str, int, bool]] = set()   # hosts closing after every answer: one message each
        self.dropped = 0

    @property
    def backlog(self) -> int:
        """Messages not yet answered: waiting to be sent, or sent and awaiting the callback's answer."""
        return len(self._pending) + sum(len(c.sent) for cs in self._conns.values() for c in cs)

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._watch = self._loop.create_task(self._watchdog())

    async def stop(self) -> None:
        if self._watch is not None:
            self._watch.cancel()
            await asyncio.gather(self._watch, return_exceptions=True)
            self._watch = None
        for conns in list(self._conns.values()):
            for c in list(conns):
                if c.transport is not None:
                    c.transport.close()
        self._loop = None

    def put(self, item: Delivery) -> bool:
        if self._loop is None or len(self._pending) >= self.queue_limit:
            self.dropped += 1
            self._report(item, False)
            return False
        self._pending.append(_Msg(item))
        self._schedule()
        return True

    def _schedule(self) -> None:
        if not self._scheduled and self._loop is not None:
            self._scheduled = True
            self._loop.call_soon(self._flush)

    def _report(self, item: Delivery, ok: bool) -> None:
        if self._on_result:
            self._on_result(item, ok)

    def _flush(self) -> None:
        self._scheduled = False
        if self._gated or not self._pending:
            return
        if self._gate is not None:
            waiter = self._gate()
            if waiter is not None:      # outage: nothing leaves until it ends
                self._gated = True

                def reopen(_: object) -> None:
                    self._gated = False
                    self._schedule()

                waiter.add_done_callback(reopen)
                return
        groups: dict[tuple[str, int, bool], list[_Msg]] = {}
        for _ in range(min(self.batch, len(self._pending))):
            msg = self._pending.popleft()
            if msg.data is None:
                try:
                    key, prefix = _target(msg.item.url)
                    body = msg.item.build()
                except Exception as exc:  # noqa: BLE001 - one bad delivery must not stop the others
                    log.debug("callback to %s not sent: %s", msg.item.url, exc)
                    self._report(msg.item, False)
                    continue
                msg.data = prefix + b"%d\r\n\r\n" % len(body) + body
            else:
                key = _target(msg.item.url)[0]
            groups.setdefault(key, []).append(msg)
        blocked = False
        for key, msgs in groups.items():
            if key not in self._single:
                self._conn_for(key).send(msgs)
                continue
            conns = self._conns.setdefault(key, [])
            while msgs and len(conns) < self.concurrency:
                self._new_conn(key).send([msgs.pop(0)])
            if msgs:                    # sent when one of those connections ends (``_lost`` reschedules)
                self._pending.extendleft(reversed(msgs))
                blocked = True
        if self._pending and not blocked:
            self._schedule()            # the rest next iteration, so requests are served in between

    def _conn_for(self, key: tuple[str, int, bool]) -> _Conn:
        conns = self._conns.setdefault(key, [])
        best = min(conns, key=lambda c: len(c.sent), default=None)
        if best is not None and (len(best.sent) < _WINDOW or len(conns) >= self.concurrency):
            return best
        return self._new_conn(key)

    def _new_conn(self, key: tuple[str, int, bool]) -> _Conn:
        conn = _Conn(self, key)
        self._conns.setdefault(key, []).append(conn)
        assert self._loop is not None
        self._loop.create_task(self._open(conn))
        return conn

    async def _open(self, conn: _Conn) -> None:
        assert self._loop is not None
        host, port, tls = conn.key
        context: ssl.SSLContext | None = None
        if tls:
            if self.ssl_context is None:
                self.ssl_context = ssl.create_default_context()
            context = self.ssl_context
        try:
            await asyncio.wait_for(self._loop.create_connection(lambda: conn, host, port, ssl=context,
                                                                server_hostname=host if tls else None),
                                   self.timeout_s)
        except (OSError, asyncio.TimeoutError) as exc:
            log.debug("callback connection to %s:%s failed: %s", host, port, exc)
            conn.abort()

    def _lost(self, conn: _Conn) -> None:
        """A connection ended: retry what it still owed once (if it had worked before), fail the rest."""
        conns = self._conns.get(conn.key)
        if conns is not None and conn in conns:
            conns.remove(conn)
        owed = list(conn.sent)
        conn.sent.clear()
        retry = []
        for msg in owed:
            if conn.graceful:
                retry.append(msg)
            elif conn.used and msg.tries == 0:
                msg.tries = 1
                retry.append(msg)
            else:
                self._report(msg.item, False)
        if retry:
            self._pending.extendleft(reversed(retry))
        if self._pending:
            self._schedule()

    async def _watchdog(self) -> None:
        """Abort connections whose callback server stopped answering for ``timeout_s``."""
        while True:
            await asyncio.sleep(min(0.5, self.timeout_s / 4))
            now = time.monotonic()
            for conns in list(self._conns.values()):
                for c in list(conns):
                    if c.sent and now - c.progress > self.timeout_s:
                        c.abort()
