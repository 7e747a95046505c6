"""How many callbacks a second the ``--workers N`` relay forwards on one core, over mutual TLS and plain HTTP.

Setup, all on 127.0.0.1: the relay (``python -m dcc_capacity.orchestrate.relay``) runs in a subprocess pinned to
CPU 0, in front of two "workers", each the suite's real callback listener (``CallbackListener``, plain HTTP,
as behind the relay in a run) in its own subprocess. The SUT side is the emulator's own callback client
(``emulator/delivery.py``: pipelined keep-alive connections, up to 32 per host) in this process, posting
DUIS-sized responses (about 2.3 KB) whose RequestID counters alternate between the two workers' slots,
keeping a few thousand in flight, as fast as the relay takes them. The workers and this driver share CPU 1.
Three phases of ``--seconds`` each: mutual TLS (a throw-away CA made here, the SUT presents a client
certificate, the relay requires one), plain HTTP, and mutual TLS again from 64 kept-alive connections that
each wait for every answer before the next POST (a SUT that does not pipeline: one request per relay read).
The figure that matters is callbacks per relay CPU-second (``per_cpu_s``), which other processes sharing
the core do not skew; ``per_s`` is the wall rate (here the driver and workers on CPU 1 limit it).
The last line is one JSON object.

Usage: ``python benchmarks/bench_relay.py [--seconds 6]``  (about 28 s in all)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "tests"))  # the throw-away test CA (tests/_tls_helpers.py)

import psutil  # noqa: E402

from _tls_helpers import TestCA  # noqa: E402
from dcc_capacity.config.tls import ServerTls  # noqa: E402
from dcc_capacity.emulator.delivery import CallbackSender, Delivery  # noqa: E402
from dcc_capacity.orchestrate.processes import relay_command  # noqa: E402

IN_FLIGHT = 4000
SINK = """
import signal, sys
from gevent import monkey; monkey.patch_all()
import gevent
from dcc_capacity.load.callbacks import CallbackListener
lst = CallbackListener(host="127.0.0.1", port=int(sys.argv[1]), missing_after_s=600, late_after_s=600).start()
print("ready", flush=True)
gevent.signal_handler(signal.SIGTERM, lambda: lst._server.stop(timeout=0))
lst._server._stop_event.wait()
print(lst.counts["received"], flush=True)
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_port(port: int, proc: subprocess.Popen, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"a benchmark process exited early ({proc.returncode})")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port}")


def _body(i: int) -> bytes:
    """A DUIS-sized response for slot ``i % 2`` (the counter's low 10 bits are the slot, duis/requestid.py)."""
    counter = (1_700_000_000_000_000 + i) << 10 | (i % 2)
    return (b"<sr:Response xmlns:sr='http://www.dccinterface.co.uk/ServiceUserGateway'><sr:Header>"
            b"<sr:RequestID>90-B3-D5-1F-30-01-00-00:00-DB-12-34-56-78-90-A0:%d</sr:RequestID>"
            b"<sr:ResponseCode>I0</sr:ResponseCode></sr:Header><sr:Body>%s</sr:Body></sr:Response>"
            % (counter, b"x" * 2100))


async def _one_at_a_time(url: str, ctx: ssl.SSLContext | None, seconds: float,
                         conns: int = 64) -> tuple[int, int, float]:
    """Like ``_drive``, but each of ``conns`` kept-alive connections waits for every answer before the next
    POST (no pipelining, as many HTTP clients send): the relay gets one request per read."""
    from urllib.parse import urlsplit

    u = urlsplit(url)
    done = {"ok": 0, "bad": 0}
    t_end = time.monotonic() + 1.0 + seconds

    async def client(k: int) -> None:
        reader, writer = await asyncio.open_connection(u.hostname, u.port, ssl=ctx,
                                                       server_hostname=u.hostname if ctx else None)
        i = k
        while time.monotonic() < t_end:
            body = _body(i)
            i += conns
            writer.write(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/xml\r\nContent-Length: %d"
                         b"\r\n\r\n%s" % (len(body), body))
            head = await reader.readuntil(b"\r\n\r\n")
            done["ok" if head.startswith(b"HTTP/1.1 200") else "bad"] += 1
        writer.close()

    tasks = [asyncio.create_task(client(k)) for k in range(conns)]
    await asyncio.sleep(1.0)
    start = (time.monotonic(), done["ok"], done["bad"])
    await asyncio.gather(*tasks)
    return done["ok"] - start[1], done["bad"] - start[2], time.monotonic() - start[0]


async def _drive(url: str, ctx: ssl.SSLContext | None, seconds: float) -> tuple[int, int, float]:
    """Deliveries answered 2xx, and not, in ``seconds`` of sending (after a 1 s warm-up)."""
    done = {"ok": 0, "bad": 0}

    def result(_: Delivery, ok: bool) -> None:
        done["ok" if ok else "bad"] += 1

    sender = CallbackSender(concurrency=32, timeout_s=10.0, on_result=result, ssl_context=ctx)
    sender.start()
    i = 0
    t_end = time.monotonic() + 1.0 + seconds
    start: tuple[float, int, int] | None = None
    while time.monotonic() < t_end:
        if start is None and time.monotonic() > t_end - seconds:
            start = (time.monotonic(), done["ok"], done["bad"])
        while sender.backlog < IN_FLIGHT:
            body = _body(i)
            i += 1
            sender.put(Delivery(url, lambda b=body: b, "device"))
        await asyncio.sleep(0.005)
    assert start is not None
    elapsed = time.monotonic() - start[0]
    ok, bad = done["ok"] - start[1], done["bad"] - start[2]
    await sender.stop()
    return ok, bad, elapsed


def phase(tls: dict[str, str] | None, seconds: float, tmp: Path, pipelined: bool = True) -> dict[str, float]:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "BENCH_RELAY_KEY_PW": "bench-relay-pw"}
    registry = tmp / f"callbacks-{'tls' if tls else 'plain'}-{'pipelined' if pipelined else 'one'}"
    registry.mkdir()
    sinks = []
    for slot in (0, 1):
        port = _free_port()
        proc = subprocess.Popen([sys.executable, "-c", SINK, str(port)], env=env, stdout=subprocess.PIPE, text=True,
                                preexec_fn=lambda: os.sched_setaffinity(0, {1}))
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        (registry / f"{slot}.url").write_text(f"http://127.0.0.1:{port}/")
        sinks.append(proc)
    port = _free_port()
    server = ServerTls(tls["cert"], tls["key"], tls["ca"], "BENCH_RELAY_KEY_PW") if tls else None
    cmd = relay_command("127.0.0.1", port, registry, registry / "stats.json", server)  # as a run starts it
    relay = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                             preexec_fn=lambda: os.sched_setaffinity(0, {0}))
    try:
        _wait_port(port, relay)
        ctx = None
        if tls:
            ctx = ssl.create_default_context(cafile=tls["ca"])
            ctx.load_cert_chain(tls["client_cert"], tls["client_key"])
        proc = psutil.Process(relay.pid)
        c0 = sum(proc.cpu_times()[:2])
        drive = _drive if pipelined else _one_at_a_time
        ok, bad, elapsed = asyncio.run(drive(f"{'https' if tls else 'http'}://127.0.0.1:{port}/", ctx, seconds))
        cpu = sum(proc.cpu_times()[:2]) - c0  # includes the 1 s warm-up: per_cpu_s is a floor
    finally:
        relay.send_signal(signal.SIGTERM)
        relay.wait(10)
        received = 0
        for s in sinks:
            s.send_signal(signal.SIGTERM)
            out, _ = s.communicate(timeout=10)
            received += int((out.strip().splitlines() or ["0"])[-1])
    stats = json.loads((registry / "stats.json").read_text())
    return {"per_s": round(ok / elapsed), "per_cpu_s": round(stats["forwarded"] / cpu) if cpu else 0.0,
            "relay_cpu_share": round(cpu / (elapsed + 1.0), 2), "answered_ok": ok, "not_ok": bad,
            "forwarded": stats["forwarded"], "received_by_workers": received, "refused": stats["refused"]}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=6.0, help="of each of the three phases (after 1 s warm-up)")
    a = ap.parse_args()
    os.sched_setaffinity(0, {1})
    with tempfile.TemporaryDirectory(prefix="bench-relay-") as tmp:
        ca = TestCA(Path(tmp) / "tls")
        server = ca.issue("relay", server=True, password=b"bench-relay-pw")
        client = ca.issue("sut")
        tls = {"cert": str(server.cert), "key": str(server.key), "ca": str(ca.ca), "client_cert": str(client.cert),
               "client_key": str(client.key)}
        result = {"mutual_tls": phase(tls, a.seconds, Path(tmp)), "plain": phase(None, a.seconds, Path(tmp)),
                  "mutual_tls_unpipelined": phase(tls, a.seconds, Path(tmp), pipelined=False)}
    for name, r in result.items():
        print(f"{name}: {r['per_s']}/s wall, {r['per_cpu_s']}/relay CPU-s (relay busy {r['relay_cpu_share']:.0%})",
              file=sys.stderr)
    m, p = result["mutual_tls"], result["plain"]
    result["tls_vs_plain_per_cpu_s"] = round(m["per_cpu_s"] / p["per_cpu_s"], 2) if p["per_cpu_s"] else None
    result["cpus"] = os.cpu_count()
    result["loadavg_1m"] = round(os.getloadavg()[0], 2)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
