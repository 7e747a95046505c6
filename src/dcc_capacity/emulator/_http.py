"""uvicorn's httptools protocol with one write per event-loop turn instead of two per response.

uvicorn writes a response's head and body with separate ``transport.write``
calls, i.e. two send() system calls per response. In the sandboxed VMs this
suite runs on a system call costs tens of microseconds, which made those
writes a fifth of the emulator's per-request time. This protocol wraps the
transport so that everything written in one loop iteration goes out in one
send(); nothing waits longer than the current iteration. uvicorn accepts a
protocol class for ``http=`` as a documented extension point.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

__all__ = ["CoalescingHttpToolsProtocol"]


class _CoalescingTransport:
    """Buffers ``write`` until the end of the current loop iteration; everything else is the real transport."""

    __slots__ = ("_t", "_buf", "_loop", "_scheduled")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._t = transport
        self._buf: list[bytes] = []
        self._loop = loop
        self._scheduled = False

    def write(self, data: bytes) -> None:
        if not data:
            return
        self._buf.append(data)
        if not self._scheduled:
            self._scheduled = True
            self._loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._scheduled = False
        if self._buf:
            data = b"".join(self._buf)
            self._buf.clear()
            if not self._t.is_closing():
                self._t.write(data)

    def close(self) -> None:
        self._flush()
        self._t.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._t, name)


class CoalescingHttpToolsProtocol(HttpToolsProtocol):
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(_CoalescingTransport(transport, asyncio.get_running_loop()))  # type: ignore[arg-type]
