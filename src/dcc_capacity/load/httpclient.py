"""The open model's HTTP/1.1 client: keep-alive gevent sockets, the head built once, httptools parsing.

Why not geventhttpclient's ``HTTPClient`` for every request: one Locust
process must render, sign, send and record thousands of SRVs per second, and
the stock client spent ~70 us of CPU per POST here (merging and validating
headers twice per request in Python, a cooperative ``select()`` before reusing
each keep-alive socket, Python callbacks per response header). A load
generator sends the same shape of request every time (a ``bytes`` body with
the same headers to one of three paths), so :class:`LeanHTTPClient`:

- builds and validates the request head once per (method, path, headers) and
  per request adds only ``Content-Length`` and the body: one ``sendall``;
- parses the response with ``httptools`` (llhttp, the parser uvicorn uses)
  with no per-header callback: status, body, keep-alive; Content-Length,
  chunked and close-delimited bodies, 1xx interim answers skipped;
- reuses an idle connection only when a non-blocking ``MSG_PEEK`` finds
  nothing on it (no FIN, no stray bytes), like the stock pool's check, for
  one syscall instead of a cooperative select.

Measured in docs/performance.md (about 40 instead of 70 us of CPU per
request). Semantics kept from the stock client: at most ``concurrency``
connections (callers wait for one), ``connection_timeout`` / ``network_timeout``,
no automatic retry of a request that may have reached the server (POST).
``https://`` URLs, TLS options, ``HEAD`` and non-``bytes`` bodies go to the
stock :class:`geventhttpclient.HTTPClient` unchanged (see :meth:`LeanHTTPClient.from_url`).
"""

from __future__ import annotations

import contextlib
import re
import socket
from typing import Any
from urllib.parse import urlsplit

import gevent.socket
import httptools
from gevent.lock import BoundedSemaphore
from geventhttpclient import HTTPClient

from dcc_capacity import __version__

__all__ = ["ConnectionClosed", "LeanHTTPClient", "LeanResponse"]

_PEEK = socket.MSG_PEEK | getattr(socket, "MSG_DONTWAIT", 0)
_TOKEN = re.compile(r"\A[!#$%&'*+\-.^_`|~0-9A-Za-z]+\Z")
_VALUE = re.compile(r"\A[\t\x20-\x7e\x80-\xff]*\Z")
_TARGET = re.compile(r"\A/[^\x00-\x20\x7f]*\Z")
_SET_BY_CLIENT = frozenset({"content-length", "transfer-encoding", "expect", "host", "connection"})
_MAX_HEADS = 256
_TLS_KEYS = ("ssl", "ssl_options", "ssl_context_factory", "insecure")


class ConnectionClosed(ConnectionError):
    """The server closed the connection before the response was complete."""


class LeanResponse:
    """A complete response: ``status_code``, the body by :meth:`read`, and whether the connection stays open."""

    __slots__ = ("status_code", "_body", "keep_alive")

    def __init__(self, status_code: int, body: bytes, keep_alive: bool) -> None:
        self.status_code = status_code
        self._body = body
        self.keep_alive = keep_alive

    def read(self) -> bytes:
        return self._body


class _Conn:
    """One keep-alive connection and its response parser (llhttp parses message after message)."""

    __slots__ = ("sock", "parser", "body", "done", "begun", "keep_alive", "headers_done")

    def __init__(self, sock: Any) -> None:
        self.sock = sock
        self.parser = httptools.HttpResponseParser(self)
        self.body: list[bytes] = []
        self.done = False
        self.begun = 0
        self.keep_alive = False
        self.headers_done = False

    # llhttp callbacks (only these: a callback per header would cost more than the rest of the parse)
    def on_message_begin(self) -> None:
        self.begun += 1

    def on_headers_complete(self) -> None:
        self.headers_done = True

    def on_body(self, data: bytes) -> None:
        self.body.append(data)

    def on_message_complete(self) -> None:
        status = self.parser.get_status_code()
        if 100 <= status < 200 and status != 101:  # an interim answer (100 Continue, 103): the real one follows
            self.begun, self.headers_done, self.body = 0, False, []
            return
        self.keep_alive = self.parser.should_keep_alive()
        self.done = True

    def idle_alive(self) -> bool:
        """May this idle connection be reused: open, and nothing (not even a FIN) waiting to be read."""
        raw = getattr(self.sock, "_sock", self.sock)  # the real non-blocking socket: peeking never blocks
        try:
            if raw.fileno() < 0:
                return False
            raw.recv(1, _PEEK)
        except (BlockingIOError, InterruptedError):
            return True
        except (OSError, ValueError):
            return False
        return False

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()


class LeanHTTPClient:
    """HTTP/1.1 keep-alive client for one ``http://`` host; ``request()`` returns a :class:`LeanResponse`."""

    block_size = 65536

    def __init__(self, host: str, port: int = 80, *, concurrency: int = 1, connection_timeout: float = 10.0,
                 network_timeout: float = 60.0, headers: dict[str, str] | None = None) -> None:
        self.host = host
        self.port = port
        self.concurrency = concurrency
        self.connection_timeout = connection_timeout
        self.network_timeout = network_timeout
        host_header = f"[{host}]" if ":" in host and not host.startswith("[") else host
        if port != 80:
            host_header += f":{port}"
        self.default_headers = {"Host": host_header, "User-Agent": f"dcc-capacity/{__version__}", **(headers or {})}
        self._idle: list[_Conn] = []
        self._slots = BoundedSemaphore(concurrency)
        self._heads: dict[tuple, bytes | None] = {}
        self._stock: HTTPClient | None = None
        self._closed = False

    @classmethod
    def from_url(cls, url: str, **kwargs: Any) -> LeanHTTPClient | HTTPClient:
        """A lean client for an ``http://`` URL; the stock geventhttpclient client for https or TLS options."""
        parts = urlsplit(url)
        if parts.scheme != "http" or any(kwargs.get(k) for k in _TLS_KEYS):
            return HTTPClient.from_url(url, **kwargs)
        allowed = ("concurrency", "connection_timeout", "network_timeout", "headers")
        extra = sorted(k for k in kwargs if k not in allowed and kwargs[k] is not None)
        if extra:  # an option only the stock client knows (proxy, version ...): let it handle everything
            return HTTPClient.from_url(url, **kwargs)
        return cls(parts.hostname or "127.0.0.1", parts.port or 80,
                   **{k: v for k, v in kwargs.items() if k in allowed and v is not None})

    # -- the request head, built and validated once per (method, path, headers) ----------------------
    def _head(self, method: str, path: str, headers: Any) -> bytes | None:
        if not _TOKEN.match(method) or not _TARGET.match(path):
            raise ValueError(f"invalid request line {method!r} {path!r}")
        fields = {**self.default_headers, **dict(headers or {})}
        if any(k.lower() in _SET_BY_CLIENT - {"host"} for k in fields):
            return None  # framing the caller chose itself: the stock client does exactly what was asked
        lines = [f"{method} {path} HTTP/1.1"]
        for k, v in fields.items():
            v = str(v)
            if not _TOKEN.match(k) or not _VALUE.match(v):
                raise ValueError(f"invalid header {k!r}: {v!r}")
            lines.append(f"{k}: {v}")
        return ("\r\n".join(lines) + "\r\n").encode("latin-1")

    def _fallback(self) -> HTTPClient:
        if self._stock is None:
            self._stock = HTTPClient(self.host, self.port, concurrency=self.concurrency,
                                     connection_timeout=self.connection_timeout,
                                     network_timeout=self.network_timeout, headers=self.default_headers)
        return self._stock

    # -- connections ---------------------------------------------------------------------------------
    def _connect(self) -> _Conn:
        sock = gevent.socket.create_connection((self.host, self.port), timeout=self.connection_timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.settimeout(self.network_timeout)
        return _Conn(sock)

    def _checkout(self) -> _Conn:
        idle = self._idle
        while idle:
            conn = idle.pop()
            if conn.idle_alive():
                return conn
            conn.close()
        return self._connect()

    def close(self) -> None:
        self._closed = True
        while self._idle:
            self._idle.pop().close()
        if self._stock is not None:
            self._stock.close()

    # -- one exchange --------------------------------------------------------------------------------
    def request(self, method: str, request_uri: str, body: Any = b"", headers: Any = None) -> Any:
        """Send one request and read the whole response (``LeanResponse``; the stock response on fallback)."""
        if body is None:
            body = b""
        method = method.upper()
        head = None
        if type(body) is bytes and method != "HEAD":  # HEAD: a response body length without a body
            try:
                key = (method, request_uri, tuple(headers.items()) if headers else ())
                head = self._heads[key]
            except KeyError:
                head = self._head(method, request_uri, headers)
                if len(self._heads) < _MAX_HEADS:
                    self._heads[key] = head
            except (TypeError, AttributeError):  # unhashable or not a mapping: let the stock client judge it
                head = None
        if head is None:
            return self._fallback().request(method, request_uri, body=body, headers=headers)
        data = b"%sContent-Length: %d\r\n\r\n%s" % (head, len(body), body)
        self._slots.acquire()
        conn: _Conn | None = None
        try:
            conn = self._checkout()
            conn.body, conn.done, conn.begun, conn.headers_done = [], False, 0, False
            sock = conn.sock
            sock.sendall(data)
            parser = conn.parser
            head_bytes: list[bytes] = []  # the response head as received, read only if the server closes early
            while not conn.done:
                chunk = sock.recv(self.block_size)
                if not chunk:
                    return _at_eof(conn, b"".join(head_bytes))
                if not conn.headers_done:
                    head_bytes.append(chunk)
                parser.feed_data(chunk)
            resp = LeanResponse(parser.get_status_code(), b"".join(conn.body), conn.keep_alive)
            if conn.keep_alive and conn.begun == 1 and not self._closed:
                self._idle.append(conn)
                conn = None
            return resp
        finally:
            if conn is not None:
                conn.close()
            self._slots.release()


def _at_eof(conn: _Conn, head: bytes) -> LeanResponse:
    """The server closed the connection: a body with neither length nor chunking ends here (RFC 9112 6.3);
    any other response was cut short."""
    block = head.split(b"\r\n\r\n", 1)[0].lower()
    framed = b"\ncontent-length:" in block or b"\ntransfer-encoding:" in block
    if conn.headers_done and not framed:
        return LeanResponse(conn.parser.get_status_code(), b"".join(conn.body), False)
    raise ConnectionClosed("the server closed the connection before the response was complete")
