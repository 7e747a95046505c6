"""A test SUT on Starlette + uvicorn (not our code), run in a subprocess, plus small helpers.

The server answers every request with a tiny ack, except that it *holds*
every response that arrives during the first ``stall`` s of each ``period``
s (counted from ``t0``) until that window ends - the coordinated-omission
experiment of the baselines. When a request carries ``X-Callback-URL`` and
``X-Request-ID`` it also POSTs a DUIS-like async response there after
``X-Callback-Delay`` s (default 0.1), unless ``X-No-Callback`` is set.

With ``--capacity C`` it is also a FIFO server of C req/s that answers 503
when a request would queue for more than 0.2 s (a knee for stress tests).

Run: ``python tests/_load_helpers.py --port P [--period 10 --stall 2 --t0 EPOCH --capacity C]``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable


def wait_for_port(port: int, proc: subprocess.Popen, what: str, timeout: float) -> None:
    """Until ``proc`` listens on 127.0.0.1:``port``; RuntimeError with its output if it dies or is too slow."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return
        if proc.poll() is not None:
            out = proc.stdout if proc.stdout is not None else proc.stderr
            text = out.read() if out is not None else ""
            text = text.decode(errors="replace") if isinstance(text, bytes) else text
            raise RuntimeError(f"{what} died: {text[-3000:]}")
        time.sleep(0.1)
    raise RuntimeError(f"{what} did not listen on port {port} within {timeout:g} s")


def wait_until(cond: Callable[[], object], timeout: float, what: str, every: float = 0.05) -> None:
    """Poll ``cond`` until it is true; AssertionError naming ``what`` after ``timeout`` s (no fixed sleeps)."""
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout:g} s: {what}")
        time.sleep(every)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_app(period: float, stall: float, t0: float, capacity: float = 0.0, max_wait: float = 0.2):  # noqa: ANN201
    import httpx
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    client: dict[str, httpx.AsyncClient] = {}
    queue = {"busy_until": 0.0}  # capacity model: one FIFO server, service time 1/capacity
    tasks: set[asyncio.Task] = set()

    async def post_back(url: str, rid: str, delay: float) -> None:
        await asyncio.sleep(delay)
        body = (f"<sr:Response xmlns:sr='x'><sr:Header><sr:RequestID>{rid}</sr:RequestID>"
                f"<sr:ResponseCode>I0</sr:ResponseCode></sr:Header></sr:Response>").encode()
        with contextlib.suppress(Exception):
            await client["c"].post(url, content=body)

    async def handle(request: Request) -> Response:
        await request.body()
        if capacity > 0:
            now = time.time()
            start = max(now, queue["busy_until"])
            if start - now > max_wait:
                return Response(b"<busy/>", status_code=503)
            queue["busy_until"] = start + 1 / capacity
            await asyncio.sleep(queue["busy_until"] - now)
        if stall > 0:
            phase = (time.time() - t0) % period
            if phase < stall:
                await asyncio.sleep(stall - phase)
        cb, rid = request.headers.get("x-callback-url"), request.headers.get("x-request-id")
        if cb and rid and not request.headers.get("x-no-callback"):
            if "c" not in client:
                client["c"] = httpx.AsyncClient(timeout=10)
            task = asyncio.create_task(post_back(cb, rid, float(request.headers.get("x-callback-delay", "0.1"))))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        return Response(b"<ack>I99</ack>", media_type="application/xml")

    return Starlette(routes=[Route("/{path:path}", handle, methods=["GET", "POST"])])


@contextlib.contextmanager
def stall_server(*, period: float = 10.0, stall: float = 0.0, t0: float | None = None,
                 cpu: int | None = None, capacity: float = 0.0) -> Iterator[str]:
    """Run the test SUT in a subprocess; yields its base URL. ``cpu`` pins it to one core (Linux).

    ``capacity`` > 0: a FIFO server doing that many req/s, answering 503 when a request would wait > 0.2 s.
    """
    port = free_port()
    t0 = time.time() if t0 is None else t0
    cmd = [PY, str(Path(__file__)), "--port", str(port), "--period", str(period), "--stall", str(stall),
           "--t0", repr(t0), "--capacity", str(capacity)]
    if cpu is not None and hasattr(os, "sched_setaffinity"):
        cmd = ["taskset", "-c", str(cpu), *cmd]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_for_port(port, proc, "test server", 15)
        yield f"http://127.0.0.1:{port}"
    finally:
        terminate(proc, 5)


def terminate(proc: subprocess.Popen, timeout: float) -> None:
    """SIGTERM (the server writes what it must), then SIGKILL after ``timeout`` s."""
    proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()


class SlowSut:
    """A running tests/_slow_sut.py: its URL, and what it counted once it has stopped (``stats``)."""

    def __init__(self, url: str, stats_path: Path) -> None:
        self.url, self.stats_path = url, stats_path
        self.stats: dict = {}


@contextlib.contextmanager
def slow_sut(tmp: Path, *, callback_url: str = "", delay: tuple[float, float] = (5.0, 90.0), stall: float = 0.0,
             period: float = 10.0, t0: float | None = None, max_life: float = 600.0) -> Iterator[SlowSut]:
    """A SUT that acks at once (or after a stall) and calls back after ``delay`` s, or never (no callback_url)."""
    import json

    port = free_port()
    stats = tmp / f"slow-sut-{port}.json"
    cmd = [PY, str(Path(__file__).with_name("_slow_sut.py")), "--port", str(port), "--stats", str(stats),
           "--delay-min", str(delay[0]), "--delay-max", str(delay[1]), "--stall", str(stall), "--period", str(period),
           "--max-life", str(max_life), *(["--t0", repr(t0)] if t0 is not None else []),
           *(["--callback-url", callback_url] if callback_url else [])]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    sut = SlowSut(f"http://127.0.0.1:{port}", stats)
    try:
        wait_for_port(port, proc, "slow SUT", 15)
        yield sut
    finally:
        terminate(proc, 10)
        if stats.exists():
            sut.stats = json.loads(stats.read_text())


def run_locust(locustfile: Path, host: str, run_dir: Path, *, seconds: int, extra: list[str] | None = None,
               env: dict[str, str] | None = None, timeout: float = 60,
               records: bool = True) -> subprocess.CompletedProcess[str]:
    """``locust -f FILE --headless`` in a subprocess, with this checkout on PYTHONPATH.

    ``records=False`` for a plain locustfile that does not load dcc_capacity (no ``--run-dir`` option).
    """
    cmd = [PY, "-m", "locust", "-f", str(locustfile), "--headless", "--host", host, "-t", f"{seconds}s",
           "--csv", str(run_dir / "locust"), "--only-summary", "--loglevel", "WARNING",
           *(["--run-dir", str(run_dir)] if records else []), *(extra or [])]
    full_env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT / "tests")]),
                **(env or {})}
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=full_env, cwd=ROOT)


def run_distributed(locustfile: Path, host: str, run_dir: Path, *, workers: int = 2, env: dict[str, str] | None = None,
                    timeout: float = 60) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    """Locust master + ``workers`` workers on loopback (the shape in the locustfile ends the run)."""
    port = free_port()
    full_env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT / "tests")]),
                **(env or {})}
    base = [PY, "-m", "locust", "-f", str(locustfile), "--loglevel", "WARNING"]
    procs = [subprocess.Popen([*base, "--worker", "--master-host", "127.0.0.1", "--master-port", str(port)],
                              env=full_env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for _ in range(workers)]
    try:
        master = subprocess.run([*base, "--master", "--headless", "--expect-workers", str(workers),
                                 "--master-bind-host", "127.0.0.1", "--master-bind-port", str(port), "--host", host,
                                 "--run-dir", str(run_dir), "--only-summary"],
                                capture_output=True, text=True, timeout=timeout, env=full_env, cwd=ROOT)
        outs = []
        for p in procs:
            try:
                outs.append(p.communicate(timeout=15)[0])
            except subprocess.TimeoutExpired:
                p.kill()
                outs.append(p.communicate()[0])
        return master, outs
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--period", type=float, default=10.0)
    ap.add_argument("--stall", type=float, default=0.0)
    ap.add_argument("--t0", type=float, default=None)
    ap.add_argument("--capacity", type=float, default=0.0)
    a = ap.parse_args()
    import uvicorn

    app = make_app(a.period, a.stall, a.t0 if a.t0 is not None else time.time(), a.capacity)
    uvicorn.run(app, host="127.0.0.1", port=a.port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
