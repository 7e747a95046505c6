"""Running the emulator: in the foreground (CLI), in a background thread, or in a subprocess.

Tests and ``dcc-capacity run`` need an emulator they can start and stop
around a test. A thread is the cheapest; a subprocess keeps the emulator out
of Locust's gevent-patched process and gives it its own core and GIL, which
is what a capacity measurement wants. Both bind the socket first (port 0 picks
a free one) so the caller learns the URL before any request is sent.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from dcc_capacity.emulator._http import LeanServer
from dcc_capacity.emulator.app import EmulatorApp
from dcc_capacity.emulator.config import EmulatorConfig
from dcc_capacity.errors import InputError, RunError

__all__ = ["EmulatorHandle", "serve", "start_emulator", "server_tls"]


def _bind(host: str, port: int) -> socket.socket:
    if host not in ("127.0.0.1", "localhost", "::1"):
        raise InputError(f"the emulator only listens on the loopback interface (got {host})", key="host")
    sock = socket.socket(socket.AF_INET6 if host == "::1" else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(("127.0.0.1" if host == "localhost" else host, port))
    except OSError as exc:
        sock.close()
        raise InputError(f"cannot listen on {host}:{port} ({exc.strerror})", key="port") from None
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def _server(app: EmulatorApp, cfg: EmulatorConfig) -> LeanServer:
    return LeanServer(app, max_body=cfg.max_body_bytes, log_level=cfg.log_level, ssl_context=server_tls(cfg))


def server_tls(cfg: EmulatorConfig) -> Any:
    """The emulator's server ``ssl.SSLContext`` from ``cfg.tls`` (None: plain HTTP)."""
    tls = cfg.tls.server_tls(option="tls.cert")
    return tls.context() if tls is not None else None


def _scheme(cfg: EmulatorConfig) -> str:
    return "https" if cfg.tls.cert else "http"


@dataclass
class EmulatorHandle:
    """A running emulator: ``url``, ``metrics()``, ``stop()``; also a context manager."""

    url: str
    host: str
    port: int
    config: EmulatorConfig
    mode: str
    app: EmulatorApp | None = None
    _server: LeanServer | None = field(default=None, repr=False)
    _thread: threading.Thread | None = field(default=None, repr=False)
    _proc: subprocess.Popen | None = field(default=None, repr=False)
    _tmp: tempfile.TemporaryDirectory | None = field(default=None, repr=False)
    info: dict[str, Any] = field(default_factory=dict)

    def path(self, service: str) -> str:
        """Full URL of service ``S``, ``T`` or ``D``."""
        return self.url + self.config.paths[service]

    def metrics(self, timeout: float = 5.0, context: Any = None) -> dict[str, Any]:
        """``/metrics.json``; over mutual TLS pass an ``ssl.SSLContext`` holding a client certificate."""
        with urllib.request.urlopen(self.url + "/metrics.json", timeout=timeout,  # noqa: S310 - loopback
                                    context=context) as resp:
            return json.loads(resp.read())

    def stop(self, timeout: float = 10.0) -> None:
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(timeout)
            self._thread = None
        if self._proc is not None and self._proc.poll() is None:
            self._proc.send_signal(signal.SIGTERM)
            try:
                self._proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(5)
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    @property
    def returncode(self) -> int | None:
        return self._proc.poll() if self._proc is not None else None

    def __enter__(self) -> EmulatorHandle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _gevent_patched() -> bool:
    monkey = sys.modules.get("gevent.monkey")
    return monkey is not None and monkey.is_module_patched("threading")


def start_emulator(config: EmulatorConfig | dict | None = None, *,
                   mode: Literal["thread", "subprocess"] = "thread", timeout: float = 30.0,
                   cpu: int | None = None) -> EmulatorHandle:
    """Start an emulator and return once it accepts requests.

    ``config`` is an :class:`EmulatorConfig` or a dict of its fields (port 0 =
    any free port). ``mode="subprocess"`` runs ``python -m dcc_capacity
    emulator`` (pinned to ``cpu`` when given); ``"thread"`` runs the server in a
    daemon thread of this process (``handle.app`` is then the live app). Either way the HTTP server is
    the lean httptools one in ``_http.py``.
    """
    cfg = config if isinstance(config, EmulatorConfig) else EmulatorConfig.model_validate(config or {})
    if mode == "thread" and _gevent_patched():
        # Under Locust's gevent patching a "thread" is a greenlet, and the server's uvloop would block the
        # whole hub: the emulator must have a process of its own there.
        mode = "subprocess"
    if mode == "subprocess":
        return _start_subprocess(cfg, timeout, cpu)
    sock = _bind(cfg.host, cfg.port)
    port = sock.getsockname()[1]
    app = EmulatorApp(cfg)
    server = _server(app, cfg)
    errors: list[BaseException] = []

    def run() -> None:
        try:
            server.run(sockets=[sock])
        except BaseException as exc:  # noqa: BLE001 - surfaced to the caller below
            errors.append(exc)
        finally:
            sock.close()

    thread = threading.Thread(target=run, name=f"dcc-emulator-{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    while not server.started:
        if errors or not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            raise RunError(f"the emulator did not start: {errors[0] if errors else 'timeout'}")
        time.sleep(0.01)
    url = f"{_scheme(cfg)}://{cfg.host}:{port}"
    handle = EmulatorHandle(url=url, host=cfg.host, port=port, config=cfg, mode="thread", app=app,
                            _server=server, _thread=thread)
    if app.cp is not None:
        handle.info = {"sftp_port": app.cp.port, "cp_root": str(app.cp.root)}
    return handle


def _start_subprocess(cfg: EmulatorConfig, timeout: float, cpu: int | None) -> EmulatorHandle:
    tmp = tempfile.TemporaryDirectory(prefix="dcc-emulator-")
    cfg_file = Path(tmp.name) / "emulator.json"
    ready = Path(tmp.name) / "ready.json"
    cfg_file.write_text(cfg.model_dump_json())
    cmd = [sys.executable, "-m", "dcc_capacity", "emulator", "--config", str(cfg_file), "--ready-file", str(ready)]
    env = dict(os.environ)
    src = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = src + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    preexec = (lambda: os.sched_setaffinity(0, {cpu})) if cpu is not None else None  # noqa: E731
    log = open(Path(tmp.name) / "emulator.log", "wb")  # noqa: SIM115 - lives as long as the process
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, preexec_fn=preexec)
    deadline = time.monotonic() + timeout
    while not ready.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            proc.wait(5)
            text = (Path(tmp.name) / "emulator.log").read_text(errors="replace")[-2000:]
            tmp.cleanup()
            raise RunError(f"the emulator subprocess did not start:\n{text}")
        time.sleep(0.02)
    info = json.loads(ready.read_text())
    return EmulatorHandle(url=info["url"], host=cfg.host, port=info["port"], config=cfg, mode="subprocess",
                          _proc=proc, _tmp=tmp, info=info)


def serve(cfg: EmulatorConfig, ready_file: str | None = None, announce: bool = True) -> int:
    """Run in the foreground until SIGINT/SIGTERM; the server handles the signals and shuts down cleanly."""
    sock = _bind(cfg.host, cfg.port)
    port = sock.getsockname()[1]
    app = EmulatorApp(cfg)
    server = _server(app, cfg)
    url = f"{_scheme(cfg)}://{cfg.host}:{port}"

    async def announce_when_started() -> None:
        import asyncio

        while not server.started:
            await asyncio.sleep(0.01)
        info = {"url": url, "port": port, "pid": os.getpid(), "sp": cfg.sp}
        if app.cp is not None:
            info.update(sftp_port=app.cp.port, cp_root=str(app.cp.root))
        if announce:
            print(f"dcc-capacity emulator ({cfg.sp}) listening on {url}"
                  + (f"; SFTP on 127.0.0.1:{app.cp.port}" if app.cp else "")
                  + f"; device latency {cfg.capacity.device_latency.preset}", flush=True)
        if ready_file:
            tmp = Path(ready_file).with_suffix(".tmp")
            tmp.write_text(json.dumps(info))
            tmp.replace(ready_file)

    original_startup = app.startup

    async def startup() -> None:
        import asyncio

        await original_startup()
        asyncio.get_running_loop().create_task(announce_when_started())

    app.startup = startup  # type: ignore[method-assign]
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()
    return 0 if server.started else 3
