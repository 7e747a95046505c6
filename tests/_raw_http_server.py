"""A scripted HTTP/1.1 server for the lean client's tests: each path answers with one framing or failure.

Run in a subprocess (the test process may be gevent-patched):
``python tests/_raw_http_server.py PORT``. Paths:

- ``/len``: ``200``, Content-Length body ``conn=<n> got=<request body length>`` (keep-alive);
- ``/chunked``: the same body, chunked in three pieces (keep-alive);
- ``/eof``: ``Connection: close``, no length: the body ends when the server closes;
- ``/cut``: Content-Length 100, sends 5 bytes, closes (a truncated response);
- ``/close-idle``: like ``/len``, then closes the connection 0.1 s later (an idle keep-alive timeout);
- ``/continue``: ``100 Continue`` first, then like ``/len``;
- ``/headers``: the request head echoed as the body.

``<n>`` numbers connections in accept order, so a test can see reuse.
"""

from __future__ import annotations

import itertools
import socket
import sys
import threading
import time

_conn_ids = itertools.count(1)


def _read_request(f) -> tuple[str, bytes, bytes] | None:  # noqa: ANN001
    line = f.readline()
    if not line:
        return None
    head = [line]
    length = 0
    while True:
        h = f.readline()
        head.append(h)
        if h in (b"\r\n", b"\n", b""):
            break
        name, _, value = h.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    body = f.read(length) if length else b""
    return line.split()[1].decode(), b"".join(head), body


def _serve(conn: socket.socket) -> None:
    n = next(_conn_ids)
    f = conn.makefile("rb")
    try:
        while True:
            req = _read_request(f)
            if req is None:
                return
            path, head, body = req
            text = f"conn={n} got={len(body)}".encode()
            if path == "/len":
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(text), text))
            elif path == "/continue":
                conn.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
                conn.sendall(b"HTTP/1.1 201 Created\r\nContent-Length: %d\r\n\r\n%s" % (len(text), text))
            elif path == "/headers":
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(head), head))
            elif path == "/chunked":
                parts = [text[:3], text[3:7], text[7:]]
                chunks = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in parts)
                conn.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + chunks + b"0\r\n\r\n")
            elif path == "/eof":
                conn.sendall(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n" + text)
                return
            elif path == "/cut":
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nshort")
                return
            elif path == "/close-idle":
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(text), text))
                time.sleep(0.1)
                return
            else:
                conn.sendall(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
    finally:
        f.close()
        conn.close()


def main() -> None:
    srv = socket.create_server(("127.0.0.1", int(sys.argv[1])))
    deadline = time.time() + 120  # bounded: the test kills it long before
    srv.settimeout(1.0)
    while time.time() < deadline:
        try:
            conn, _ = srv.accept()
        except TimeoutError:
            continue
        conn.settimeout(30)
        threading.Thread(target=_serve, args=(conn,), daemon=True).start()


if __name__ == "__main__":
    main()
