"""The emulator's own HTTP/1.1 server (httptools on an asyncio Protocol): the semantics clients rely on.

Raw sockets, so every byte on the wire is what the test says: keep-alive,
pipelining in order, Connection: close, HTTP/1.0, Expect: 100-continue,
chunked request bodies, oversized heads and bodies, and malformed requests.
"""

from __future__ import annotations

import socket

import pytest

from _emulator_helpers import PKI_DIR, CallbackListener, signed_request
from dcc_capacity.duis.responses import parse_response
from dcc_capacity.emulator import start_emulator

FAST = {"critical": {"dist": "fixed", "mean_ms": 5}, "device": {"dist": "fixed", "mean_ms": 5},
        "non_device": {"dist": "fixed", "mean_ms": 0}}


@pytest.fixture(scope="module")
def listener():
    cb = CallbackListener()
    yield cb
    cb.close()


@pytest.fixture(scope="module")
def emu(listener):
    with start_emulator({"port": 0, "pki_dir": str(PKI_DIR), "callback_url": listener.url, "max_body_bytes": 4096,
                         "capacity": {"device_delay": FAST}}) as h:
        yield h


def _connect(emu) -> socket.socket:  # noqa: ANN001
    s = socket.create_connection((emu.host, emu.port), timeout=10)
    return s


def _read_response(s: socket.socket, buf: bytearray) -> tuple[int, dict[str, str], bytes]:
    while b"\r\n\r\n" not in buf:
        chunk = s.recv(65536)
        if not chunk:
            raise ConnectionError("closed before a full head")
        buf += chunk
    head, _, rest = bytes(buf).partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1])
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    n = int(headers.get("content-length", "0"))
    while len(rest) < n:
        chunk = s.recv(65536)
        if not chunk:
            raise ConnectionError("closed inside a body")
        rest += chunk
    buf[:] = rest[n:]
    return status, headers, rest[:n]


def _post(path: str, body: bytes, extra: str = "", version: str = "1.1") -> bytes:
    return (f"POST {path} HTTP/{version}\r\nHost: x\r\nContent-Type: application/xml\r\n{extra}"
            f"Content-Length: {len(body)}\r\n\r\n").encode() + body


def _closed(s: socket.socket) -> bool:
    try:
        return s.recv(1) == b""
    except ConnectionResetError:
        return True


def test_pipelined_requests_are_answered_in_order_on_one_connection(emu):
    path = "/api/v1/serviceS"
    reqs = [signed_request("4.1.1") for _ in range(5)]
    with _connect(emu) as s:
        s.sendall(b"".join(_post(path, r) for r in reqs) + b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        buf = bytearray()
        ids = []
        for _ in reqs:
            status, headers, body = _read_response(s, buf)
            assert status == 200 and headers["content-type"] == "application/xml"
            parsed = parse_response(body)
            assert parsed.response_code == "I99"
            ids.append(parsed.request_id)
        status, _, body = _read_response(s, buf)
        assert (status, body) == (200, b'{"status": "ok"}')
        # still open: keep-alive
        s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        assert _read_response(s, buf)[0] == 200
    assert ids == [parse_response_id(r) for r in reqs]


def parse_response_id(req: bytes) -> str:
    return req.split(b"<sr:RequestID>")[1].split(b"</sr:RequestID>")[0].decode()


def test_connection_close_and_http_1_0_close_after_the_answer(emu):
    for raw in (b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", b"GET /health HTTP/1.0\r\n\r\n"):
        with _connect(emu) as s:
            s.sendall(raw)
            status, headers, _ = _read_response(s, bytearray())
            assert status == 200 and headers.get("connection") == "close"
            assert _closed(s)


def test_expect_100_continue_and_chunked_bodies(emu):
    body = signed_request("4.1.1")
    with _connect(emu) as s:
        s.sendall(f"POST /api/v1/serviceS HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n"
                  "Expect: 100-continue\r\n\r\n".encode())
        buf = bytearray()
        while b"\r\n\r\n" not in buf:
            buf += s.recv(1024)
        assert bytes(buf).startswith(b"HTTP/1.1 100 Continue\r\n\r\n")
        del buf[:len(b"HTTP/1.1 100 Continue\r\n\r\n")]
        s.sendall(body)
        status, _, out = _read_response(s, buf)
        assert status == 200 and parse_response(out).response_code == "I99"
        chunked = signed_request("4.1.1")
        half = len(chunked) // 2
        s.sendall(b"POST /api/v1/serviceS HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                  + b"%x\r\n%s\r\n%x\r\n%s\r\n0\r\n\r\n" % (half, chunked[:half], len(chunked) - half, chunked[half:]))
        status, _, out = _read_response(s, buf)
        assert status == 200 and parse_response(out).response_code == "I99"


def test_oversized_body_is_drained_and_answered_e45(emu):
    big = b"<a>" + b"x" * 100_000 + b"</a>"
    with _connect(emu) as s:
        s.sendall(_post("/api/v1/serviceS", big) + b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        buf = bytearray()
        status, _, out = _read_response(s, buf)
        assert status == 413 and parse_response(out).response_code == "E45"
        assert _read_response(s, buf)[0] == 200          # the connection survived the drained body


@pytest.mark.parametrize("raw", [
    b"NOT HTTP AT ALL\r\n\r\n",
    b"POST /api/v1/serviceS HTTP/1.1\r\nContent-Length: abc\r\n\r\n",
    b"GET /health HTTP/1.1\r\nX-Big: " + b"a" * 70_000 + b"\r\n\r\n",
])
def test_malformed_http_gets_400_and_a_closed_connection(emu, raw):
    with _connect(emu) as s:
        s.sendall(raw)
        status, headers, _ = _read_response(s, bytearray())
        assert status == 400 and headers.get("connection") == "close"
        assert _closed(s)
    with _connect(emu) as s:                              # and the server is still up
        s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        assert _read_response(s, bytearray())[0] == 200


def test_unknown_paths_and_methods(emu):
    with _connect(emu) as s:
        buf = bytearray()
        s.sendall(b"GET /nope HTTP/1.1\r\nHost: x\r\n\r\nGET /api/v1/serviceS HTTP/1.1\r\nHost: x\r\n\r\n")
        assert _read_response(s, buf)[0] == 404
        assert _read_response(s, buf)[0] == 405
