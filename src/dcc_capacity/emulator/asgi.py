"""The emulator as an ASGI application: the protocol glue any ASGI server needs (lifespan, body, reply).

The bundled lean server (``_http.py``) calls :meth:`EmulatorApp.route`
straight from its parser and never comes here; this mixin is what lets any
other ASGI server (uvicorn, hypercorn, a test client) host the same
application with the same answers.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any

from dcc_capacity.emulator._http import Reply

__all__ = ["AsgiMixin"]

_DRAIN_LIMIT = 64 * 1024 * 1024
"""A body over the size limit is read and discarded so the answer arrives; past this much, the reading stops."""


class AsgiMixin:
    """ASGI ``__call__`` over the host class's ``route``, ``startup``, ``shutdown`` and ``max_body_bytes``."""

    @property
    def max_body_bytes(self) -> int:
        raise NotImplementedError

    def route(self, method: bytes, path: str, query: bytes, accept: bytes,
              body: bytes | None) -> Reply | Awaitable[Reply]:
        raise NotImplementedError

    async def startup(self) -> None:
        raise NotImplementedError

    async def shutdown(self) -> None:
        raise NotImplementedError

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        """ASGI entry point (any ASGI server can host the emulator; the bundled one calls ``route``)."""
        kind = scope["type"]
        if kind == "lifespan":
            await self._lifespan(receive, send)
            return
        if kind != "http":
            return
        body = await self._read_body(scope, receive) if scope["method"] == "POST" else b""
        accept = dict(scope["headers"]).get(b"accept", b"")
        reply = self.route(scope["method"].encode(), scope["path"], scope.get("query_string", b""), accept, body)
        if not isinstance(reply, tuple):
            reply = await reply
        status, out, ctype = reply
        await self._send(send, status, out, [(b"content-type", ctype)])

    async def _lifespan(self, receive: Any, send: Any) -> None:
        while True:
            msg = await receive()
            if msg["type"] == "lifespan.startup":
                try:
                    await self.startup()
                except Exception as exc:  # noqa: BLE001 - reported to the ASGI server, which exits non-zero
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif msg["type"] == "lifespan.shutdown":
                await self.shutdown()
                await send({"type": "lifespan.shutdown.complete"})
                return

    @staticmethod
    async def _send(send: Any, status: int, body: bytes, headers: list[tuple[bytes, bytes]]) -> None:
        await send({"type": "http.response.start", "status": status,
                    "headers": [*headers, (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})

    async def _read_body(self, scope: dict, receive: Any) -> bytes | None:
        """The body, or None when it exceeds the limit (read and discarded, bounded, so the answer arrives)."""
        limit = self.max_body_bytes
        too_large = False
        for name, value in scope["headers"]:
            if name == b"content-length":
                try:
                    too_large = int(value) > limit
                except ValueError:
                    too_large = True
        chunks: list[bytes] = []
        size = 0
        while True:
            msg = await receive()
            if msg["type"] == "http.disconnect":
                return None
            chunk = msg.get("body", b"")
            size += len(chunk)
            if too_large or size > limit:
                too_large = True
                chunks.clear()
                if size > _DRAIN_LIMIT:
                    return None
            else:
                chunks.append(chunk)
            if not msg.get("more_body"):
                break
        return None if too_large else b"".join(chunks)
