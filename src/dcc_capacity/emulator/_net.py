"""Socket settings the emulator's server and its callback client share."""

from __future__ import annotations

import asyncio
import contextlib
import socket

__all__ = ["no_delay"]


def no_delay(transport: asyncio.BaseTransport) -> None:
    """TCP_NODELAY: small DUIS answers and callbacks go out at once instead of waiting for Nagle's timer."""
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
