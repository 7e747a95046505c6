"""Delivering asynchronous responses and alerts to Service Users' callback URLs.

A fixed set of sender coroutines drains one queue; each keeps one keep-alive
HTTP/1.1 connection per callback host, so thousands of responses a second
cost a write and a read each, not a TCP handshake. The client is deliberately
tiny (POST with Content-Length, read a Content-Length or chunked answer):
it is the emulator's hottest path after signature checks, and it has no
dependency beyond asyncio. Failed deliveries are counted, retried once on a
fresh connection, and then dropped - never allowed to back up the gateway.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

__all__ = ["CallbackSender", "Delivery"]

log = logging.getLogger("dcc_capacity.emulator")


@dataclass(slots=True)
class Delivery:
    """One message to POST: ``build()`` makes (and signs) the bytes at send time."""

    url: str
    build: Callable[[], bytes]
    srv_class: str
    kind: str = "response"


class _Conn:
    __slots__ = ("reader", "writer")

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    def close(self) -> None:
        with contextlib.suppress(Exception):  # closing a broken socket must not raise
            self.writer.close()


class CallbackSender:
    """Bounded queue + ``concurrency`` senders with per-host keep-alive connections."""

    def __init__(self, *, concurrency: int = 32, timeout_s: float = 10.0, queue_limit: int = 200_000,
                 on_result: Callable[[Delivery, bool], None] | None = None,
                 gate: Callable[[], asyncio.Future | None] | None = None) -> None:
        self.concurrency = concurrency
        self.timeout_s = timeout_s
        self.queue_limit = queue_limit
        self._on_result = on_result
        self._gate = gate
        self._queue: asyncio.Queue[Delivery] | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self.dropped = 0

    @property
    def backlog(self) -> int:
        return self._queue.qsize() if self._queue is not None else 0

    def start(self) -> None:
        self._queue = asyncio.Queue()
        self._tasks = [asyncio.create_task(self._run()) for _ in range(self.concurrency)]

    async def stop(self) -> None:
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []

    def put(self, item: Delivery) -> bool:
        if self._queue is None or self._queue.qsize() >= self.queue_limit:
            self.dropped += 1
            if self._on_result:
                self._on_result(item, False)
            return False
        self._queue.put_nowait(item)
        return True

    async def _run(self) -> None:
        assert self._queue is not None
        conns: dict[tuple[str, int], _Conn] = {}
        try:
            while True:
                item = await self._queue.get()
                if self._gate is not None:
                    waiter = self._gate()
                    if waiter is not None:
                        await waiter
                ok = False
                try:
                    body = item.build()
                    ok = await self._post(conns, item.url, body)
                except Exception as exc:  # noqa: BLE001 - one bad delivery must not kill the sender
                    log.debug("callback to %s failed: %s", item.url, exc)
                if self._on_result:
                    self._on_result(item, ok)
        finally:
            for c in conns.values():
                c.close()

    async def _post(self, conns: dict[tuple[str, int], _Conn], url: str, body: bytes) -> bool:
        parts = urlsplit(url)
        if parts.scheme != "http" or not parts.hostname:
            return False
        key = (parts.hostname, parts.port or 80)
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        head = (f"POST {path} HTTP/1.1\r\nHost: {parts.netloc}\r\nContent-Type: application/xml\r\n"
                f"Content-Length: {len(body)}\r\n\r\n").encode("latin-1")
        for attempt in (0, 1):
            conn = conns.get(key)
            fresh = conn is None
            try:
                if conn is None:
                    reader, writer = await asyncio.wait_for(asyncio.open_connection(*key), self.timeout_s)
                    conn = conns[key] = _Conn(reader, writer)
                conn.writer.write(head + body)
                status, keep = await asyncio.wait_for(self._read_response(conn.reader), self.timeout_s)
                if not keep:
                    conns.pop(key, None)
                    conn.close()
                return 200 <= status < 300
            except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError, ValueError):
                conns.pop(key, None)
                if conn is not None:
                    conn.close()
                if fresh or attempt:
                    return False
        return False

    @staticmethod
    async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bool]:
        head = await reader.readuntil(b"\r\n\r\n")
        if len(head) > 65536:
            raise ValueError("response head too large")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        length, chunked, keep = 0, False, not lines[0].startswith("HTTP/1.0")
        for line in lines[1:]:
            name, _, value = line.partition(":")
            name = name.strip().lower()
            value = value.strip().lower()
            if name == "content-length":
                length = int(value)
            elif name == "transfer-encoding" and "chunked" in value:
                chunked = True
            elif name == "connection":
                keep = value != "close"
        if chunked:
            for _ in range(100_000):
                size = int((await reader.readuntil(b"\r\n")).split(b";")[0].strip(), 16)
                await reader.readexactly(size + 2)
                if size == 0:
                    break
        elif length:
            if length > 16 * 1024 * 1024:
                raise ValueError("response body too large")
            await reader.readexactly(length)
        return status, keep
