"""A lean HTTP/1.1 server for POSTed async messages: the callback listener's and the relay's.

Why not a WSGI stack: every async DUIS response of a run arrives here, at the
same rate as the requests go out, in the same process as the load
generator. gevent's pywsgi spent about 190 us of CPU per callback (a
third of a core at 1,500/s, and the send lag of a 1,500 SRV/s run with
60,000 responses outstanding went past 100 ms at p99); this server parses
with ``httptools`` (the parser the emulator uses), reads every request a
client has pipelined in one go, hands them over as one batch and answers
them in order in one write (measured in docs/performance.md, bench_relay
and bench_pending). It speaks only what a callback needs: POST with a
Content-Length or chunked body, ``Expect: 100-continue``, keep-alive and
``Connection: close``; anything else gets a status, never a crash.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
from collections.abc import Callable
from typing import Any

import httptools
from gevent.server import StreamServer

__all__ = ["HANDSHAKE_TIMEOUT_S", "MAX_BODY", "PostServer"]

HANDSHAKE_TIMEOUT_S = 10.0
"""A client that connects and never completes the TLS handshake is dropped after this long (not held forever)."""
MAX_BODY = 1 << 20
"""Largest body accepted; a bigger one is answered 413 and the connection closed."""

_ANSWER = {status: f"HTTP/1.1 {status} {reason}\r\nContent-Length: 0\r\n\r\n".encode()
           for status, reason in ((200, "OK"), (404, "Not Found"), (413, "Payload Too Large"),
                                  (400, "Bad Request"), (405, "Method Not Allowed"), (502, "Bad Gateway"))}
_CLOSE = {status: a.replace(b"Content-Length: 0", b"Content-Length: 0\r\nConnection: close")
          for status, a in _ANSWER.items()}


class _Requests:
    """httptools callbacks for one client connection: the complete requests read so far."""

    __slots__ = ("parser", "done", "body", "size", "expect", "keep_alive", "too_big", "_header", "max_body")

    def __init__(self, max_body: int = 1 << 20) -> None:
        self.max_body = max_body
        self.parser = httptools.HttpRequestParser(self)
        self.done: list[bytes | None] = []
        self.body: list[bytes] = []
        self.size = 0
        self.expect = self.too_big = False
        self.keep_alive = True
        self._header = b""

    def on_message_begin(self) -> None:
        self.body, self.size, self.expect = [], 0, False

    def on_header(self, name: bytes, value: bytes) -> None:
        if name.lower() == b"expect" and value.lower() == b"100-continue":
            self.expect = True

    def on_body(self, chunk: bytes) -> None:
        self.size += len(chunk)
        if self.size > self.max_body:
            self.too_big = True
        else:
            self.body.append(chunk)

    def on_message_complete(self) -> None:
        self.done.append(b"".join(self.body) if self.parser.get_method() == b"POST" else None)
        self.keep_alive = self.parser.should_keep_alive()


class PostServer(StreamServer):
    """HTTP/1.1 for POSTed async messages: ``on_posts(bodies)`` gets every complete request a client has sent
    (None for a non-POST) and returns one status each; TLS when given an ``ssl_context``.

    A failed TLS handshake goes to ``on_refused(address, exc)``, never raised: gevent wraps an accepted
    socket in TLS inside the connection's greenlet, and an exception there (a client without a
    certificate under mutual TLS) would only reach gevent's hub, which prints a traceback per
    connection. A refusal is an expected event at a public callback URL.
    """

    def __init__(self, listener: Any, on_posts: Callable[[list[bytes | None]], list[int]], *,
                 on_refused: Callable[[Any, BaseException], None] | None = None, max_body: int = MAX_BODY,
                 ssl_context: ssl.SSLContext | None = None, **kwargs: Any) -> None:
        if ssl_context is not None:  # gevent takes the key's presence, even with None, to mean TLS
            kwargs["ssl_context"] = ssl_context
        super().__init__(listener, **kwargs)
        self.on_posts, self.on_refused, self.max_body = on_posts, on_refused, max_body

    def handle(self, sock: socket.socket, address: Any) -> None:
        with contextlib.suppress(OSError):  # small answers go out at once (no Nagle + delayed ACK wait)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        reqs = _Requests(self.max_body)
        with contextlib.suppress(OSError):  # the client went away: nothing to answer
            while True:
                data = sock.recv(65536)
                if not data:
                    return
                try:
                    reqs.parser.feed_data(data)
                except httptools.HttpParserError:
                    sock.sendall(_CLOSE[400])
                    return
                if reqs.too_big:
                    sock.sendall(_CLOSE[413])
                    return
                if reqs.expect and not reqs.done:  # curl and others wait for this before a larger body
                    reqs.expect = False
                    sock.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
                if not reqs.done:
                    continue
                bodies, reqs.done = reqs.done, []
                statuses = self.on_posts(bodies)
                if not reqs.keep_alive:
                    sock.sendall(b"".join(_ANSWER[s] for s in statuses[:-1]) + _CLOSE[statuses[-1]])
                    return
                sock.sendall(b"".join(_ANSWER[s] for s in statuses))

    def wrap_socket_and_handle(self, client_socket: Any, address: Any) -> Any:
        client_socket.settimeout(HANDSHAKE_TIMEOUT_S)
        try:
            tls_socket = self.wrap_socket(client_socket, **self.ssl_args)
        except (ssl.SSLError, OSError) as exc:  # OSError covers a reset, a timeout and a peer that just left
            if self.on_refused is not None:
                self.on_refused(address, exc)
            with contextlib.suppress(OSError):
                client_socket.close()
            return None
        tls_socket.settimeout(None)
        try:
            return self.handle(tls_socket, address)
        finally:
            with contextlib.suppress(OSError):
                tls_socket.close()


