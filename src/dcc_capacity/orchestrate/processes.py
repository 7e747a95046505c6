"""The run's child processes: Locust (one process, or a master and workers), the callback relay; their command
lines, their start, and the bounded watch until Locust is done.

Locust gets the run spec as one file (``--dcc-spec <run>/spec.json``), plus only what is particular to a process
(its role, its callback listener) or to the target (TLS, paths: ``extra_locust_args`` from the run config).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from dcc_capacity.config.tls import ServerTls
from dcc_capacity.errors import RunError
from dcc_capacity.load.interrupt import request_interrupt
from dcc_capacity.orchestrate.resilience import WorkerWatch, die_with_parent
from dcc_capacity.orchestrate.target import callback_server_tls
from dcc_capacity.spec.options import SPEC_FILE

__all__ = ["LOCUSTFILE", "free_port", "locust_args", "popen_locust", "relay_command", "relay_counts", "say",
           "start_relay", "stop", "tail", "watch_locust"]

LOCUSTFILE = Path(__file__).resolve().parents[1] / "load" / "users" / "locustfile.py"
SRC_DIR = Path(__file__).resolve().parents[2]


def say(opts: Any, msg: str) -> None:
    print(f"dcc-capacity run: {msg}", file=opts.log or sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(SRC_DIR) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


def locust_args(opts: Any, host: str, run_dir: Path) -> list[str]:
    """The command line every Locust process shares: the spec file, the run folder, the target's own options."""
    a = ["-f", str(LOCUSTFILE), "--host", host, "--run-dir", str(run_dir),
         "--dcc-spec", str((run_dir / SPEC_FILE).resolve()), "--exit-code-on-error", "0", "--loglevel", "WARNING"]
    if opts.confirm_non_loopback:
        a.append("--confirm-non-loopback")  # the Locust process checks the host again (spec/safety.py)
    if opts.nfr is not None:  # the live progress line judges the same catalogue as the report
        a += ["--nfr", str(Path(opts.nfr).resolve())]
    return a + list(opts.extra_locust_args)


def popen_locust(args: list[str], log: Path) -> subprocess.Popen:
    fh = open(log, "ab")  # noqa: SIM115 - lives as long as the process
    return subprocess.Popen([sys.executable, "-m", "locust", *args], stdout=fh, stderr=subprocess.STDOUT,
                            env=_env(), start_new_session=True, preexec_fn=die_with_parent)


def relay_command(host: str, port: int, registry: Path, stats: Path, tls: ServerTls | None) -> list[str]:
    """The relay's command line: with callback TLS it, not the workers, terminates it (orchestrate/relay.py).

    Public so benchmarks/bench_relay.py starts the relay exactly as a run does."""
    a = [sys.executable, "-m", "dcc_capacity.orchestrate.relay", "--host", host, "--port", str(port),
         "--registry", str(registry), "--stats", str(stats)]
    if tls is not None:
        a += ["--tls-cert", tls.cert]
        for flag, value in (("--tls-key", tls.key), ("--tls-client-ca", tls.client_ca),
                            ("--tls-key-password-env", tls.password_env)):
            if value:
                a += [flag, value]
    return a


def start_relay(opts: Any, port: int, registry: Path, stats: Path, log: Path) -> subprocess.Popen:
    """The callback relay in front of the workers, listening before anything could call back."""
    cmd = relay_command(opts.callback_host, port, registry, stats, callback_server_tls(opts.extra_locust_args))
    relay = subprocess.Popen(cmd, env=_env(), preexec_fn=die_with_parent,
                             stdout=open(log, "ab"), stderr=subprocess.STDOUT)  # noqa: SIM115
    _wait_listening(relay, port, log)
    return relay


def _wait_listening(proc: subprocess.Popen, port: int, log: Path, timeout: float = 20.0) -> None:
    """Until the relay accepts connections on ``port`` (bounded): a callback must never find nobody there."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RunError(f"the callback relay exited with status {proc.returncode}: {tail(log, 600).strip()}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RunError(f"the callback relay did not listen on port {port} within {timeout:g} s (see {log})")


def relay_counts(stats: Path) -> dict[str, Any] | None:
    """What the relay forwarded, refused (TLS handshakes), could not route or deliver; None if it wrote nothing."""
    try:
        return json.loads(stats.read_text())
    except (OSError, ValueError):
        return None


def stop(proc: subprocess.Popen | None, sig: int = signal.SIGTERM, timeout: float = 15.0) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(sig)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


def tail(path: Path, n: int = 1500) -> str:
    try:
        return path.read_text(errors="replace")[-n:]
    except OSError:
        return ""


class _Follow:
    """New complete lines of a growing log file (bounded reads)."""

    def __init__(self, path: Path) -> None:
        self.path, self.pos, self.rest = path, 0, b""

    def new_lines(self) -> list[str]:
        try:
            with self.path.open("rb") as fh:
                fh.seek(self.pos)
                data = fh.read(1 << 20)
        except OSError:
            return []
        self.pos += len(data)
        *lines, self.rest = (self.rest + data).split(b"\n")
        return [ln.decode("utf-8", "replace") for ln in lines]


def watch_locust(opts: Any, master: subprocess.Popen, emulator: Any, watch: WorkerWatch | None = None) -> str:
    """Wait for Locust to finish (bounded); return why the run failed ('' when it did not)."""
    limit = (opts.spec.duration_s + opts.drain_limit_s + 120 + (opts.workers * 10)
             + (opts.web_linger_s if opts.web else 0))
    t0 = time.monotonic()
    log = opts.out / "logs" / ("master.log" if opts.workers else "locust.log")
    follow = _Follow(log)
    while True:
        running = master.poll() is None  # then read the log once more: the last line comes as Locust quits
        for line in follow.new_lines():  # Locust's own table stays in the log; the progress line comes here
            if line.startswith("[dcc-capacity]"):
                print(line, file=opts.log or sys.stderr, flush=True)
        if not running:
            break
        if emulator is not None and emulator.returncode is not None:
            say(opts, "the system under test (embedded emulator) died mid-run")
            request_interrupt(opts.out, "the system under test died mid-run")  # no drain: nothing will answer
            stop(master, signal.SIGINT)
            return "the system under test died mid-run"
        if watch is not None:
            watch.check()  # a dead worker: Locust's master carries on with the others; we report it
        if time.monotonic() - t0 > limit:
            stop(master, signal.SIGINT)
            return f"Locust did not finish within {limit:g} s"
        time.sleep(0.25)
    if master.returncode not in (0, None):
        return f"Locust exited with status {master.returncode}: {tail(log, 600)}"
    return ""
