"""Delivering asynchronous responses and alerts to Service Users' callback URLs.

A fixed set of sender coroutines drains one queue; each keeps one keep-alive
HTTP/1.1 connection per callback host and pipelines whatever is waiting (up to
``batch`` messages in one write, answers read in order), so thousands of
responses a second cost a few writes, not a TCP handshake each. The client is deliberately
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
from functools import lru_cache
from urllib.parse import urlsplit

__all__ = ["CallbackSender", "Delivery"]

_timeout = getattr(asyncio, "timeout", None)
if _timeout is None:  # Python 3.10: a minimal stand-in for asyncio.timeout()
    @contextlib.asynccontextmanager
    async def _timeout(delay: float):  # type: ignore[no-redef]  # noqa: ANN202
        task = asyncio.current_task()
        handle = asyncio.get_running_loop().call_later(delay, task.cancel)  # type: ignore[union-attr]
        try:
            yield
        except asyncio.CancelledError:
            raise asyncio.TimeoutError from None
        finally:
            handle.cancel()

log = logging.getLogger("dcc_capacity.emulator")


@dataclass(slots=True)
class Delivery:
    """One message to POST: ``build()`` makes (and signs) the bytes at send time."""

    url: str
    build: Callable[[], bytes]
    srv_class: str
    kind: str = "response"


@lru_cache(maxsize=1024)
def _target(url: str) -> tuple[tuple[str, int], bytes]:
    """(host, port) and the request head up to the Content-Length value, once per callback URL."""
    parts = urlsplit(url)
    if parts.scheme != "http" or not parts.hostname:
        raise ValueError(f"not an http:// URL: {url}")
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    head = f"POST {path} HTTP/1.1\r\nHost: {parts.netloc}\r\nContent-Type: application/xml\r\nContent-Length: "
    return (parts.hostname, parts.port or 80), head.encode("latin-1")


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
                 gate: Callable[[], asyncio.Future | None] | None = None, batch: int = 16) -> None:
        self.concurrency = concurrency
        self.timeout_s = timeout_s
        self.queue_limit = queue_limit
        self._on_result = on_result
        self._gate = gate
        self.batch = batch
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
                batch = [await self._queue.get()]
                while len(batch) < self.batch and not self._queue.empty():
                    batch.append(self._queue.get_nowait())
                if self._gate is not None:
                    waiter = self._gate()
                    if waiter is not None:
                        await waiter
                groups: dict[tuple[str, int], list[tuple[Delivery, bytes, bytes]]] = {}
                for item in batch:
                    try:
                        key, prefix = _target(item.url)
                        body = item.build()
                    except Exception as exc:  # noqa: BLE001 - one bad delivery must not kill the sender
                        log.debug("callback to %s not sent: %s", item.url, exc)
                        self._report(item, False)
                        continue
                    groups.setdefault(key, []).append((item, prefix + b"%d\r\n\r\n" % len(body), body))
                for (host, port), entries in groups.items():
                    done = await self._post_many(conns, (host, port), entries)
                    for (item, _, _), ok in zip(entries, done, strict=True):
                        self._report(item, ok)
        finally:
            for c in conns.values():
                c.close()

    def _report(self, item: Delivery, ok: bool) -> None:
        if self._on_result:
            self._on_result(item, ok)

    async def _post_many(self, conns: dict[tuple[str, int], _Conn], key: tuple[str, int],
                         entries: list[tuple[Delivery, bytes, bytes]]) -> list[bool]:
        """POST ``entries`` pipelined on one keep-alive connection: one write, then the answers in order.

        A failure part-way retries the unanswered rest once on a fresh connection (at-least-once delivery).
        """
        results: list[bool] = []
        for attempt in (0, 1):
            pending = entries[len(results):]
            if not pending:
                break
            conn = conns.get(key)
            fresh = conn is None
            try:
                async with _timeout(self.timeout_s):
                    if conn is None:
                        reader, writer = await asyncio.open_connection(*key)
                        conn = conns[key] = _Conn(reader, writer)
                    conn.writer.write(b"".join(h + b for _, h, b in pending))
                    for _ in pending:
                        status, keep = await self._read_response(conn.reader)
                        results.append(200 <= status < 300)
                        if not keep:
                            conns.pop(key, None)
                            conn.close()
                            if len(results) < len(entries):
                                raise ConnectionResetError("server closed the connection")
                return results
            except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError, ValueError, IndexError):
                conns.pop(key, None)
                if conn is not None:
                    conn.close()
                if fresh or attempt:
                    break
        return results + [False] * (len(entries) - len(results))

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
