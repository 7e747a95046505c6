"""Callback TLS with ``--workers N``: the relay terminates (mutual) TLS, the workers behind it stay plain HTTP.

Keys and certificates come from a throw-away CA made here (tests/_tls_helpers.py), the relay's key encrypted
with its password in an environment variable, as a user's usually is. Real TLS on 127.0.0.1, no mocks:

- the relay alone (about 3 s): a client without a certificate, and one speaking plain HTTP, are refused at
  the handshake, counted and logged, and the relay goes on forwarding for a client with a certificate;
- ``dcc-capacity run --workers 2`` (about 20 s, ``slow``): the embedded emulator calls back over mutual TLS,
  through the relay, to both workers; every expected async response is correlated.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import threading
from collections.abc import Generator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from _lanes import Cli, Ran, background, cli
from _load_helpers import free_port, wait_for_port
from _tls_helpers import TestCA
from dcc_capacity.load.records import load_records

ROOT = Path(__file__).resolve().parents[1]
KEY_PW = "relay-Pa55-41c9e2"
SLOT = 5


def _env(**extra: str) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT / "src"), **extra}


class _Sink(BaseHTTPRequestHandler):
    """A worker's listener stand-in: keeps every body it is posted (plain HTTP, as behind the relay)."""

    protocol_version = "HTTP/1.1"
    bodies: list[bytes] = []

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        self.bodies.append(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *_: object) -> None:
        pass


def _read_until(sock: ssl.SSLSocket, n: int) -> list[bytes]:
    """The next ``n`` bodiless HTTP answers (heads) from ``sock`` (bounded by its timeout)."""
    data = b""
    while data.count(b"\r\n\r\n") < n:
        chunk = sock.recv(4096)
        assert chunk, data
        data += chunk
    return [a + b"\r\n\r\n" for a in data.split(b"\r\n\r\n")[:n]]


def _post(port: int, ctx: ssl.SSLContext, body: bytes) -> int:
    conn = http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=5)
    try:
        conn.request("POST", "/", body=body, headers={"Content-Type": "application/xml"})
        return conn.getresponse().status
    finally:
        conn.close()


@pytest.mark.timeout(30)
def test_relay_refuses_a_client_without_certificate_counts_it_and_still_forwards(tmp_path):
    ca = TestCA(tmp_path / "tls")
    server = ca.issue("relay", server=True, password=KEY_PW.encode())
    client = ca.issue("sut-deliveries")
    sink = ThreadingHTTPServer(("127.0.0.1", 0), _Sink)
    threading.Thread(target=sink.serve_forever, daemon=True).start()
    registry = tmp_path / "callbacks"
    registry.mkdir()
    (registry / f"{SLOT}.url").write_text(f"http://127.0.0.1:{sink.server_port}/")
    port, stats, log = free_port(), tmp_path / "relay.json", tmp_path / "relay.log"
    with log.open("wb") as fh:
        relay = subprocess.Popen([sys.executable, "-m", "dcc_capacity.orchestrate.relay", "--port", str(port),
                                  "--registry", str(registry), "--tls-cert", str(server.cert), "--tls-key",
                                  str(server.key), "--tls-client-ca", str(ca.ca), "--tls-key-password-env",
                                  "RELAY_KEY_PW", "--stats", str(stats)], env=_env(RELAY_KEY_PW=KEY_PW),
                                 stdout=fh, stderr=subprocess.STDOUT, cwd=ROOT)
    try:
        wait_for_port(port, relay, "relay", 15)
        body = b"<sr:Response><sr:Header><sr:RequestID>90-B3-D5-1F-30-01-00-00:00-DB-12-34-56-78-90-A0:%d" \
               b"</sr:RequestID><sr:ResponseCode>I0</sr:ResponseCode></sr:Header></sr:Response>" % (1 << 20 | SLOT)
        bare = ssl.create_default_context(cafile=str(ca.ca))  # trusts the relay, presents no certificate
        for _ in range(2):
            with pytest.raises((ssl.SSLError, ConnectionError, http.client.HTTPException, OSError)):
                _post(port, bare, body)
        plain = http.client.HTTPConnection("127.0.0.1", port, timeout=5)  # not TLS at all
        with pytest.raises((ConnectionError, http.client.HTTPException, OSError)):
            plain.request("POST", "/", body=body)
            plain.getresponse()
        plain.close()
        assert _Sink.bodies == []  # nothing got through
        good = ssl.create_default_context(cafile=str(ca.ca))
        good.load_cert_chain(str(client.cert), str(client.key))
        assert _post(port, good, body) == 200  # the relay carried on after the refusals
        assert _Sink.bodies == [body]  # forwarded, byte for byte, to the slot's worker over plain HTTP
        # HTTP as a SUT may speak it: two pipelined POSTs and a GET in one write, answered in order (the GET,
        # a probe, is no alert and goes nowhere); then a POST that waits for "100 Continue" and closes.
        post = b"POST / HTTP/1.1\r\nHost: r\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
        with socket.create_connection(("127.0.0.1", port), timeout=5) as raw, \
                good.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
            tls.sendall(post + post + b"GET /health HTTP/1.1\r\nHost: r\r\n\r\n")
            answers = _read_until(tls, 3)
            assert [a.split(b" ")[1] for a in answers] == [b"200", b"200", b"405"], answers
            tls.sendall(b"POST / HTTP/1.1\r\nHost: r\r\nExpect: 100-continue\r\nConnection: close\r\n"
                        b"Content-Length: %d\r\n\r\n" % len(body))
            assert _read_until(tls, 1) == [b"HTTP/1.1 100 Continue\r\n\r\n"]
            tls.sendall(body)
            last = _read_until(tls, 1)[0]
            assert last.startswith(b"HTTP/1.1 200") and b"Connection: close" in last
            assert tls.recv(100) == b""  # closed, as asked
        assert _Sink.bodies == [body] * 4
        assert relay.poll() is None
    finally:
        relay.send_signal(signal.SIGTERM)
        relay.wait(10)
        sink.shutdown()
    counts = json.loads(stats.read_text())
    assert counts["refused"] == 3 and counts["forwarded"] == 4, counts  # the port probe is "abandoned"
    assert counts["mutual_tls"] is True and counts["unroutable"] == counts["failed"] == 0
    text = log.read_text()
    assert text.count("refused a callback connection from 127.0.0.1") == 3, text
    assert "Traceback" not in text and KEY_PW not in text


def _two_workers_over_mtls(tmp: Path) -> Generator[Cli, Ran, Ran]:
    """``dcc-capacity run --config ... --workers 2``: the callback TLS options of the run configuration go to
    the relay, the emulator posts to the relay's https URL with its client certificate, and every response
    reaches the worker that sent its request."""
    ca = TestCA(tmp / "tls")
    listener = ca.issue("callback-relay", server=True, password=KEY_PW.encode())
    deliveries = ca.issue("emulator-deliveries")
    cfg = tmp / "rehearsal.toml"
    cfg.write_text(f'''[tls]
callback_cert = "{listener.cert}"
callback_key = "{listener.key}"
callback_client_ca = "{ca.ca}"
key_password_env = "CALLBACK_KEY_PW"

[emulator.callback_tls]  # the rehearsal SUT presents a client certificate and checks the relay's
client_cert = "{deliveries.cert}"
client_key = "{deliveries.key}"
ca = "{ca.ca}"

[run]
test = "load"
rate = 40
duration = "6s"
workers = 2
max_send_lag_ms = 5000  # judged here: the callbacks; a busy test box may send late, which is not the point
drain = "10s"           # the emulator's fast preset (tests/conftest.py) answers well within it
''')
    return (yield cli(["run", "--config", str(cfg)], tmp / "run", env={"CALLBACK_KEY_PW": KEY_PW}))


@pytest.mark.slow
@pytest.mark.timeout(300)
@background(_two_workers_over_mtls)
def test_run_with_two_workers_correlates_every_callback_over_mutual_tls(background_run):
    p = background_run
    out = p.out
    assert p.returncode in (0, 1), p.stderr[-3000:]  # 1 only if an NFR failed on a busy machine
    run_doc = json.loads((out / "run.json").read_text())
    assert run_doc["status"] == "complete" and run_doc["workers"] == 2, p.stderr[-3000:]
    emu = json.loads((out / "logs" / "emulator-config.json").read_text())
    assert emu["callback_url"] == f"https://127.0.0.1:{emu['callback_url'].rsplit(':', 1)[1]}"
    urls = sorted(f.read_text() for f in (out / "logs" / "callbacks").glob("*.url"))
    assert len(urls) == 2 and all(u.startswith("http://127.0.0.1:") for u in urls)  # workers: loopback, plain
    relay = run_doc["callback_relay"]
    assert relay["mutual_tls"] is True and relay["refused"] == relay["unroutable"] == relay["failed"] == 0, relay

    df = load_records(out / "records")
    req = df[df["kind"] == "request"]
    awaited = req[req["callback_ts"].notna() | req["outcome"].isin(["missing", "pending", "late"])]
    # ~40 SRV/s for 6 s; most of them answered asynchronously. Loose floors: on a busy box the generator may
    # fall short of its rate (the run's own tests judge that); what is judged here is the correlation.
    assert len(req) >= 80 and len(awaited) >= 60, (len(req), len(awaited))
    assert set(req["outcome"]) == {"ok"}, req[req["outcome"] != "ok"][["label", "outcome", "error"]].head()
    assert awaited["trt_ms"].notna().all() and (awaited["trt_ms"] > 0).all()
    by_worker = awaited.groupby("process").size()
    assert len(by_worker) == 2 and (by_worker >= 20).all(), by_worker  # both workers got their callbacks
    # Every response the relay forwarded was one a worker expected (no unknown RequestID), and every alert
    # it forwarded was recorded; alerts the emulator posts after the workers stopped are the only ones lost.
    assert relay["forwarded"] == len(awaited), (relay, len(awaited))
    assert relay["alerts"] == (df["kind"] == "alert").sum(), relay

    summary = json.loads((out / "summary.json").read_text())
    assert summary["failures"] == 0 and not summary.get("failure_reasons"), summary.get("failure_reasons")
    # one summary for the two load processes: one request per SRV attempt (a critical SRV's CV 4 + CV 5 once)
    assert len(list((out / "records").glob("records-*.arrows"))) == 2
    assert summary["requests"] == len(req) - req["label"].str.endswith(" CV5").sum()
    answered = awaited.groupby("srv_variant").size().to_dict()
    assert len(answered) >= 5, answered
    for srv, s in summary["by_srv"].items():  # every async response is in its SRV's TRT, none missing
        assert s["trt_ms"]["missing"] == 0 and s["trt_ms"]["count"] == answered.get(srv, 0), (srv, s["trt_ms"])
        if srv in answered:
            assert s["trt_ms"]["p50"] > 0, (srv, s["trt_ms"])
    assert KEY_PW not in p.stderr + p.stdout


def test_run_gives_the_callback_tls_options_to_the_relay_and_none_to_the_workers():
    from dcc_capacity.orchestrate.target import callback_server_tls, without_callback_tls

    args = ["--tls-ca", "ca.pem", "--callback-tls-cert", "l.pem", "--callback-tls-key=l.key",
            "--callback-tls-client-ca", "ca.pem", "--tls-key-password-env", "PW", "--drain", "5"]
    tls = callback_server_tls(args)
    assert tls is not None and (tls.cert, tls.key, tls.client_ca, tls.password_env) == ("l.pem", "l.key", "ca.pem",
                                                                                          "PW")
    assert without_callback_tls(args) == ["--tls-ca", "ca.pem", "--tls-key-password-env", "PW", "--drain", "5"]
    assert callback_server_tls(["--tls-ca", "ca.pem"]) is None
