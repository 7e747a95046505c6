"""How many signed requests a second the emulator sustains on one core, every check on.

Setup: the emulator runs in a subprocess pinned to CPU 0 in its default
configuration (structural checks, no XSD; ``--schema PATH`` validates every
request against the official XSD as well) with signature verification, role,
RequestID-counter, SECMP0067 admission and structure checks on, and every
device request's asynchronous response signed and POSTed to a callback sink.
The load generator (keep-alive connections with one request in flight each,
like Locust users; requests signed and built before the clock starts; all
connections open before it starts) and the callback sink share CPU 1, both
lean asyncio Protocols so the client side limits the figure as little as it
can, and the emulator's core does only emulator work. Beside it, in the
same run and on the same core, we time the physical floor of that work: raw ECDSA P-256 verifications per second with
``cryptography``, timed right before and right after the load (the mean is
used, so a noisy neighbour on a shared machine skews both sides alike). The
last line is one JSON object:
``{"acks_per_s": x, "ecdsa_verify_per_s": y, "ratio": x / y, ...}``; the extra
``ratio_per_cpu_second`` compares acks per emulator CPU-second with
verifications per CPU-second, which other processes sharing the core do not
skew (they still slow both through caches).

Usage: ``python benchmarks/bench_emulator.py [--seconds 10] [--connections 64]``
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from cryptography.hazmat.primitives import hashes  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec  # noqa: E402

from dcc_capacity.duis import NS_DS, NS_SR  # noqa: E402
from dcc_capacity.duis.pki import TestPKI  # noqa: E402
from dcc_capacity.duis.responses import ResponseSigner  # noqa: E402
from dcc_capacity.emulator import start_emulator  # noqa: E402

USER = "90-B3-D5-1F-30-01-00-00"
DEFAULT_XSD = ROOT / ".peers" / "tool-jar" / "DUIS Schema V5.1.xsd"  # fetched by the test suite (tests/peers.py)
DEVICE = "00-DB-12-34-56-78-90-A0"


def ecdsa_verifies_per_s(seconds: float = 2.0) -> tuple[float, float]:
    """Verifications per wall second and per CPU second (the latter ignores time other processes took the core)."""
    key = ec.generate_private_key(ec.SECP256R1())
    pub, data = key.public_key(), b"x" * 700
    sig = key.sign(data, ec.ECDSA(hashes.SHA256()))
    n, t0, c0 = 0, time.perf_counter(), time.process_time()
    while time.perf_counter() - t0 < seconds:
        for _ in range(200):
            pub.verify(sig, data, ec.ECDSA(hashes.SHA256()))
        n += 200
    return n / (time.perf_counter() - t0), n / (time.process_time() - c0)


def signed_requests(pki: TestPKI, count: int) -> list[bytes]:
    """Canonical-form DUIS requests signed with the user's key (fast path: one ECDSA sign each)."""
    cred = pki.credential(USER)
    signer = ResponseSigner(cred.key, cred.issuer_name, cred.serial)
    base = int(time.time() * 1000) * 1000
    out = []
    for i in range(count):
        doc = (f'<sr:Request xmlns:sr="{NS_SR}" schemaVersion="5.4"><sr:Header>'
               f"<sr:RequestID>{USER}:{DEVICE}:{base + i}</sr:RequestID><sr:CommandVariant>1</sr:CommandVariant>"
               "<sr:ServiceReference>4.1</sr:ServiceReference>"
               "<sr:ServiceReferenceVariant>4.1.1</sr:ServiceReferenceVariant></sr:Header>"
               "<sr:Body><sr:ReadInstantaneousImportRegisters></sr:ReadInstantaneousImportRegisters></sr:Body>")
        out.append(signer.sign_document(doc, "</sr:Request>"))
    assert NS_DS.encode() in out[0]
    return out


def _split_answers(buf: bytearray) -> list[bytes]:
    """Complete HTTP/1.1 messages (heads with a Content-Length) at the front of ``buf``: their bodies, removed."""
    out = []
    while True:
        end = buf.find(b"\r\n\r\n")
        if end < 0:
            return out
        head = bytes(buf[:end]).lower()
        i = head.find(b"content-length:")
        j = head.find(b"\r\n", i)
        length = int(head[i + 15:j if j >= 0 else len(head)]) if i >= 0 else 0
        if len(buf) < end + 4 + length:
            return out
        out.append(bytes(buf[end + 4:end + 4 + length]))
        del buf[:end + 4 + length]


class _SinkConn(asyncio.Protocol):
    """Callback sink connection: 200 OK to every POST, one write per read (the emulator pipelines a batch)."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        self.buf = bytearray()

    def data_received(self, data: bytes) -> None:
        self.buf += data
        n = len(_split_answers(self.buf))
        if n:
            self.transport.write(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n" * n)  # type: ignore[attr-defined]


def _sink(port_q: mp.Queue, cpu: int) -> None:
    """Callback sink on its own core. Lean (a Protocol, no stream reader per message) so that the client side of
    the benchmark is not what limits it on a shared machine."""
    os.sched_setaffinity(0, {cpu})
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass

    async def main() -> None:
        server = await asyncio.get_running_loop().create_server(_SinkConn, "127.0.0.1", 0)
        port_q.put(server.sockets[0].getsockname()[1])
        await server.serve_forever()

    asyncio.run(main())


class _LoadConn(asyncio.Protocol):
    """One keep-alive client connection: one request in flight (like a Locust user), the next sent on the answer."""

    def __init__(self, load: _Load) -> None:
        self.load = load
        self.buf = bytearray()
        self.transport: asyncio.Transport | None = None
        self.done = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def send_next(self) -> None:
        req = self.load.next_request()
        if req is None:
            self.transport.close()  # type: ignore[union-attr]
            if not self.done.done():
                self.done.set_result(None)
        else:
            self.transport.write(req)  # type: ignore[union-attr]

    def data_received(self, data: bytes) -> None:
        self.buf += data
        answers = _split_answers(self.buf)
        for body in answers:
            if b">I99<" in body:
                self.load.ok += 1
            else:
                self.load.bad += 1
        if answers:
            self.send_next()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.done.done():
            self.done.set_result(None)


class _Load:
    """Pre-built request bytes handed out until the deadline."""

    def __init__(self, requests: list[bytes]) -> None:
        self.it = iter(requests)
        self.deadline = 0.0
        self.ok = self.bad = 0

    def next_request(self) -> bytes | None:
        if time.monotonic() > self.deadline:
            return None
        return next(self.it, None)


def http_requests(url: str, bodies: list[bytes]) -> list[bytes]:
    """Whole HTTP/1.1 POSTs, built before the clock starts (client work is not what is measured)."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    head = f"POST {parts.path} HTTP/1.1\r\nHost: {parts.netloc}\r\nContent-Type: application/xml\r\nContent-Length: "
    return [head.encode() + b"%d\r\n\r\n" % len(body) + body for body in bodies]


async def _load(url: str, requests: list[bytes], connections: int, seconds: float) -> tuple[int, int, float]:
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    loop = asyncio.get_running_loop()
    load = _Load(requests)
    conns = []
    for _ in range(connections):
        _, conn = await loop.create_connection(lambda: _LoadConn(load), parts.hostname, parts.port)
        conns.append(conn)
    # Every connection open (and accepted) before the clock starts: a request must not wait in the listen
    # backlog while others overtake it (the counter window would rightly refuse it, and it is not emulator work).
    await asyncio.sleep(0.5)
    t0 = time.monotonic()
    load.deadline = t0 + seconds
    for conn in conns:
        conn.send_next()
    await asyncio.gather(*(c.done for c in conns))
    return load.ok, load.bad, time.monotonic() - t0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--connections", type=int, default=64)
    ap.add_argument("--emulator-cpu", type=int, default=0)
    ap.add_argument("--client-cpu", type=int, default=1)
    ap.add_argument("--schema", default=None,
                    help="official DUIS XSD to validate every request against (default: none, the emulator's default "
                         f"structural checks; the test peers' copy is {DEFAULT_XSD})")
    args = ap.parse_args()
    cpus = os.sched_getaffinity(0)
    emu_cpu = args.emulator_cpu if args.emulator_cpu in cpus else min(cpus)
    client_cpu = args.client_cpu if args.client_cpu in cpus else max(cpus)

    def verify_rate_on_emulator_cpu() -> tuple[float, float]:
        os.sched_setaffinity(0, {emu_cpu})
        rate = ecdsa_verifies_per_s()
        os.sched_setaffinity(0, {client_cpu})
        return rate

    verify_before = verify_rate_on_emulator_cpu()
    print(f"raw ECDSA P-256 verify on CPU {emu_cpu}: {verify_before[0]:,.0f}/s", flush=True)

    with tempfile.TemporaryDirectory() as tmp:
        pki = TestPKI.load_or_create(Path(tmp) / "pki")
        count = int(args.seconds * 6000)
        t0 = time.perf_counter()
        bodies = signed_requests(pki, count)
        print(f"pre-signed {count:,} requests in {time.perf_counter() - t0:.1f} s", flush=True)
        port_q: mp.Queue = mp.get_context("spawn").Queue()
        sink = mp.get_context("spawn").Process(target=_sink, args=(port_q, client_cpu), daemon=True)
        sink.start()
        sink_port = port_q.get(timeout=30)
        zero = {"dist": "fixed", "mean_ms": 0}
        cfg = {"port": 0, "pki_dir": str(Path(tmp) / "pki"), "callback_url": f"http://127.0.0.1:{sink_port}/cb",
               "log_level": "error",
               "capacity": {"tps": 1_000_000, "workers": 256, "queue_limit": 100_000,
                            "service_time": {"device": zero}, "device_delay": {"device": zero}},
               "throttle": {"total_tps": 1_000_000}, "schema_path": args.schema}
        print(f"schema validation: {args.schema or 'off (structural checks only)'}", flush=True)
        with start_emulator(cfg, mode="subprocess", cpu=emu_cpu) as emu:
            try:
                import uvloop

                runner = uvloop.run
            except ImportError:
                runner = asyncio.run
            requests = http_requests(emu.path("S"), bodies)
            runner(_load(emu.path("S"), requests[:2000], 16, 2.0))  # warm-up
            before = emu.metrics()
            ok, bad, took = runner(_load(emu.path("S"), requests[2000:], args.connections, args.seconds))
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                m = emu.metrics()
                if m["in_flight"] == 0 and m["callback_backlog"] == 0:
                    break
                time.sleep(0.1)
            after = emu.metrics()
        sink.terminate()
    verify_after = verify_rate_on_emulator_cpu()
    verify_rate = (verify_before[0] + verify_after[0]) / 2
    verify_cpu_rate = (verify_before[1] + verify_after[1]) / 2
    print(f"raw ECDSA P-256 verify on CPU {emu_cpu} after the load: {verify_after[0]:,.0f}/s "
          f"(mean {verify_rate:,.0f}/s; {verify_cpu_rate:,.0f} per CPU-second)", flush=True)
    delivered = after["totals"]["callbacks_ok"] - before["totals"]["callbacks_ok"]
    cpu = after["cpu_seconds"] - before["cpu_seconds"]
    acks = ok / took
    print(f"emulator on CPU {emu_cpu}: {ok:,} acks ({bad} errors) in {took:.1f} s = {acks:,.0f}/s; "
          f"{delivered:,} async responses delivered; emulator CPU {cpu:.1f} s "
          f"({cpu / took * 100:.0f}% of one core; {ok / cpu:,.0f} acks per emulator CPU-second)", flush=True)
    if delivered < ok or bad:
        print("WARNING: not every request was acknowledged and answered at the callback", flush=True)
    print(json.dumps({"acks_per_s": round(acks, 1), "ecdsa_verify_per_s": round(verify_rate, 1),
                      "ratio": round(acks / verify_rate, 4), "callbacks_delivered": delivered, "errors": bad,
                      "schema": bool(args.schema), "emulator_cpu_share": round(cpu / took, 3),
                      "ratio_per_cpu_second": round((ok / cpu) / verify_cpu_rate, 4)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
