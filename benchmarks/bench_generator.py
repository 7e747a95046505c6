"""How many signed DUIS SRVs/s one Locust process sustains, beside a plain FastHttpUser, and with 2 workers.

    PYTHONPATH=src python benchmarks/bench_generator.py [--seconds 10]

A fast sink (raw asyncio + uvloop, HTTP/1.1 keep-alive, answers every POST
with a DUIS I99 acknowledgement, never calls back) runs in a subprocess
pinned to core 1. Then, in one invocation:

1. plain: one Locust process pinned to core 0, a FastHttpUser posting a
   static 1.5 KB body in a closed loop (Locust's ceiling on this box);
2. signed: the same, with the open-model DUIS user rendering, signing,
   sending and recording a 4.6.1 per arrival at a target above capacity;
   the sustained rate is the completed acknowledgements per second;
   1 and 2 alternate in ``--rounds`` rounds (plain, signed, signed, plain):
   other jobs on the box then weigh on both alike;
3. two workers: a master and 2 workers (not pinned) doing 2.

The last line is one JSON object:
{"signed_srv_per_s": x, "plain_locust_per_s": y, "ratio": x/y, "two_worker_srv_per_s": z, ...}, plus the
same two rates per CPU-second of the load process during the test (``signed_per_cpu_s``,
``plain_per_cpu_s``, ``ratio_per_cpu_second``): steadier than wall-clock rates when other jobs share the
cores, so a reader can tell a slow generator from a busy machine.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LOCUSTFILE = ROOT / "benchmarks" / "_bench_generator_locustfile.py"
ACK = (b'<?xml version="1.0" encoding="UTF-8"?>\n<sr:Response xmlns:sr="http://www.dccinterface.co.uk/'
       b'ServiceUserGateway"><sr:Header><sr:ResponseCode>I99</sr:ResponseCode></sr:Header></sr:Response>')
RESPONSE = (b"HTTP/1.1 200 OK\r\nContent-Type: application/xml\r\nContent-Length: " + str(len(ACK)).encode()
            + b"\r\n\r\n" + ACK)


class _Sink(asyncio.Protocol):
    """Minimal HTTP/1.1: read headers, skip Content-Length bytes, answer; pipelining-safe."""

    def connection_made(self, transport) -> None:  # noqa: ANN001
        self.t = transport
        self.buf = b""

    def data_received(self, data: bytes) -> None:
        buf = self.buf + data
        out = []
        while True:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                break
            head = buf[:end].lower()
            i = head.find(b"content-length:")
            n = int(head[i + 15:head.find(b"\r\n", i) if head.find(b"\r\n", i) > 0 else None]) if i >= 0 else 0
            if len(buf) < end + 4 + n:
                break
            buf = buf[end + 4 + n:]
            out.append(RESPONSE)
        self.buf = buf
        if out:
            self.t.write(b"".join(out))


def serve_sink(port: int) -> None:
    import uvloop

    async def main() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(_Sink, "127.0.0.1", port, backlog=1024)
        async with server:
            await server.serve_forever()

    uvloop.run(main())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT / "src") + os.pathsep + env.get("PYTHONPATH", "")
    env.update(extra)
    return env


def _count(stats: list[dict], rtype: str) -> tuple[int, float]:
    """(completed requests of one type, their first..last span in s) from Locust's --json."""
    n = sum(e["num_requests"] - e["num_failures"] for e in stats if e["method"] == rtype)
    start = min(e["start_time"] for e in stats if e["method"] == rtype)
    last = max(e["last_request_timestamp"] for e in stats if e["method"] == rtype)
    return n, max(last - start, 1e-9)


def run_locust(host: str, cls: str, seconds: float, cpu: int | None, workers: int = 0) -> tuple[int, float, float]:
    """(completed, their wall span in s, CPU seconds of the load process(es) during the test)."""
    run_dir = tempfile.mkdtemp(prefix="bench-gen-")
    base = [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--host", host, "--headless", "--json",
            "--run-dir", run_dir, "--loglevel", "ERROR", "--progress-interval", "0", "--exit-code-on-error", "0"]
    cpu_file = Path(run_dir) / "cpu.txt"
    env = _env(BENCH_CLASS=cls, BENCH_CPU_FILE=str(cpu_file))
    pre = (lambda: os.sched_setaffinity(0, {cpu})) if cpu is not None else None  # noqa: E731
    # Plain: 32 concurrent closed-loop users (one user is latency-bound); Signed: one scheduler per process.
    users = ["-u", "32" if cls == "Plain" else str(max(1, workers)), "-r", "1000", "-t", f"{int(seconds)}s"]
    procs = []
    try:
        if workers:
            mport = free_port()
            master = subprocess.Popen([*base, *users, "--master", "--master-bind-port", str(mport),
                                       "--expect-workers", str(workers)], env=env, stdout=subprocess.PIPE,
                                      stderr=open(Path(run_dir) / "master.log", "wb"))  # noqa: SIM115
            for _ in range(workers):
                procs.append(subprocess.Popen([*base, "--worker", "--master-port", str(mport)], env=env,
                                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        else:
            master = subprocess.Popen([*base, *users], env=env, stdout=subprocess.PIPE,
                                      stderr=open(Path(run_dir) / "master.log", "wb"), preexec_fn=pre)  # noqa: SIM115
        out, _ = master.communicate(timeout=seconds + 120)
        for p in procs:
            p.wait(30)
        text = out.decode()
        if "[" not in text:
            raise SystemExit(f"{cls}: Locust printed no stats:\n{(Path(run_dir) / 'master.log').read_text()[-3000:]}")
        cpu_s = sum(float(x) for x in cpu_file.read_text().split()) if cpu_file.exists() else float("nan")
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)
    stats = json.loads(text[text.index("\n[") + 1:] if not text.startswith("[") else text)
    done, span = _count(stats, "POST" if cls == "Plain" else "ACK")
    return done, span, cpu_s


def interleaved(host: str, seconds: float, rounds: int) -> dict[str, tuple[float, float]]:
    """Plain and Signed in alternating rounds (P S S P P S ...), each class ``seconds`` in all.

    Why: other jobs come and go on a shared box; two back-to-back phases can meet different
    contention and swing the ratio by +-50 %. Alternating rounds (ABBA) give both classes the same
    mix of quiet and busy moments. Returns {class: (per wall second, per CPU second)}.
    """
    totals = {c: [0, 0.0, 0.0] for c in ("Plain", "Signed")}
    for r in range(rounds):
        for cls in (("Plain", "Signed") if r % 2 == 0 else ("Signed", "Plain")):
            done, span, cpu_s = run_locust(host, cls, seconds / rounds, cpu=0)
            t = totals[cls]
            t[0], t[1], t[2] = t[0] + done, t[1] + span, t[2] + cpu_s
    return {c: (t[0] / t[1], t[0] / t[2] if t[2] > 0 else float("nan")) for c, t in totals.items()}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=10.0, help="per measurement (each class, and the 2 workers)")
    ap.add_argument("--rounds", type=int, default=2, help="plain/signed alternations (ABBA) sharing --seconds")
    ap.add_argument("--sink", type=int, default=0, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.sink:
        serve_sink(args.sink)
        return 0
    port = free_port()
    sink = subprocess.Popen([sys.executable, __file__, "--sink", str(port)], env=_env(),
                            preexec_fn=lambda: os.sched_setaffinity(0, {1}))
    try:
        deadline = time.time() + 10
        while time.time() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), 0.2).close()
                break
            except OSError:
                time.sleep(0.05)
        host = f"http://127.0.0.1:{port}"
        rates = interleaved(host, args.seconds, args.rounds)
        (plain, plain_cpu), (signed, signed_cpu) = rates["Plain"], rates["Signed"]
        print(f"plain FastHttpUser, 1 process (core 0): {plain:,.0f} req/s ({plain_cpu:,.0f} per CPU-s)",
              file=sys.stderr)
        print(f"signed DUIS SRVs, 1 process (core 0): {signed:,.0f} SRV/s ({signed_cpu:,.0f} per CPU-s)",
              file=sys.stderr)
        done, span, _ = run_locust(host, "Signed", args.seconds, cpu=None, workers=2)
        two = done / span
        print(f"signed DUIS SRVs, master + 2 workers: {two:,.0f} SRV/s", file=sys.stderr)
    finally:
        sink.terminate()
        sink.wait(10)
    print(json.dumps({"signed_srv_per_s": round(signed, 1), "plain_locust_per_s": round(plain, 1),
                      "ratio": round(signed / plain, 3), "two_worker_srv_per_s": round(two, 1),
                      "signed_per_cpu_s": round(signed_cpu, 1), "plain_per_cpu_s": round(plain_cpu, 1),
                      "ratio_per_cpu_second": round(signed_cpu / plain_cpu, 3)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
