"""The open model's lean HTTP client against a scripted server (subprocess): framing, keep-alive, failures."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from geventhttpclient import HTTPClient

from dcc_capacity.load.httpclient import ConnectionClosed, LeanHTTPClient

pytestmark = [pytest.mark.timeout(60), pytest.mark.quiet]
SERVER = Path(__file__).with_name("_raw_http_server.py")


@pytest.fixture(scope="module")
def url() -> Iterator[str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, str(SERVER), str(port)])
    try:
        deadline = time.time() + 10
        while time.time() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), 0.2).close()
                break
            except OSError:
                time.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.kill()
        proc.wait(5)


def _client(url: str, **kw) -> LeanHTTPClient:  # noqa: ANN003
    c = LeanHTTPClient.from_url(url, concurrency=4, connection_timeout=5, network_timeout=5, **kw)
    assert isinstance(c, LeanHTTPClient)
    return c


def _conn(body: bytes) -> int:
    return int(body.split()[0].split(b"=")[1])


def test_keep_alive_reuses_one_connection_and_reports_status_and_body(url: str) -> None:
    c = _client(url)
    seen = set()
    for i in range(20):
        r = c.request("POST", "/len", body=b"x" * i, headers={"Content-Type": "application/xml"})
        body = r.read()
        assert r.status_code == 200
        assert body.endswith(f"got={i}".encode())
        seen.add(_conn(body))
    assert len(seen) == 1  # 20 sequential requests, one connection


def test_request_head_is_built_once_and_carries_host_length_and_headers(url: str) -> None:
    c = _client(url)
    head = c.request("POST", "/headers", body=b"abc", headers={"Content-Type": "application/xml"}).read()
    port = url.rsplit(":", 1)[1]
    assert head.startswith(b"POST /headers HTTP/1.1\r\n")
    assert f"Host: 127.0.0.1:{port}\r\n".encode() in head
    assert b"Content-Type: application/xml\r\n" in head and b"Content-Length: 3\r\n" in head
    c.request("POST", "/headers", body=b"abcdef", headers={"Content-Type": "application/xml"})
    assert len(c._heads) == 1  # same (method, path, headers): the cached head


def test_chunked_and_interim_100_responses_are_decoded(url: str) -> None:
    c = _client(url)
    r = c.request("POST", "/chunked", body=b"12345")
    assert (r.status_code, r.read().split()[1]) == (200, b"got=5")
    r = c.request("POST", "/continue", body=b"12")
    assert (r.status_code, r.read().split()[1]) == (201, b"got=2")


def test_close_delimited_body_ends_at_eof_and_a_cut_body_is_an_error(url: str) -> None:
    c = _client(url)
    r = c.request("POST", "/eof", body=b"1234")
    assert r.status_code == 200 and r.read().endswith(b"got=4") and not r.keep_alive
    with pytest.raises(ConnectionClosed):
        c.request("POST", "/cut", body=b"1")
    assert c.request("POST", "/len", body=b"").read().endswith(b"got=0")  # the client is still usable


def test_a_connection_the_server_closed_while_idle_is_not_reused(url: str) -> None:
    c = _client(url)
    first = _conn(c.request("POST", "/close-idle", body=b"a").read())
    time.sleep(1.0)  # the server closes it after 0.1 s: the FIN waits in our socket
    second = c.request("POST", "/len", body=b"b")
    assert second.status_code == 200 and _conn(second.read()) != first


def test_bad_header_is_refused_before_sending(url: str) -> None:
    c = _client(url)
    with pytest.raises(ValueError, match="invalid header"):
        c.request("POST", "/len", body=b"", headers={"X-Bad": "a\r\nInjected: 1"})


def test_https_tls_options_and_caller_framing_use_the_stock_client(url: str) -> None:
    assert type(LeanHTTPClient.from_url("https://127.0.0.1:1/", concurrency=2)) is HTTPClient
    assert type(LeanHTTPClient.from_url(url, concurrency=2, insecure=True)) is HTTPClient
    c = _client(url)
    r = c.request("POST", "/len", body=b"xyz", headers={"Content-Length": "3"})  # explicit framing: stock path
    assert r.status_code == 200 and r.read().endswith(b"got=3") and c._stock is not None
