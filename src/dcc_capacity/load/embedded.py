"""``locust -f locustfiles/dcc.py`` with no ``--host``: start the embedded emulator, wired to this process.

Why: tried as a Locust user would try it, a run needs a system under test
that knows where to post its async responses. ``dcc-capacity run`` starts
the emulator for its runs (orchestrate/run.py); this gives plain Locust the
same: with no ``--host`` (and one Locust process) the emulator starts as a
subprocess, its ``callback_url`` this process's callback listener, its
device registry this process's fleet, and it stops when Locust quits. With
``--host`` nothing happens here: the user brought their own system.

The callback listener starts at test start on ``--callback-port``; with the
default 0 (ephemeral) a free port is chosen now and written back to the
option, so the emulator knows it before the listener exists.
"""

from __future__ import annotations

import logging
import socket
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from locust.runners import LocalRunner

if TYPE_CHECKING:
    from locust.env import Environment

    from dcc_capacity.emulator.server import EmulatorHandle

__all__ = ["emulator_config", "start_if_no_host"]

log = logging.getLogger(__name__)


def _free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def emulator_config(opts: Any, registry: Path) -> dict[str, Any]:
    """The emulator's settings for this process: callbacks to its listener, its fleet's devices, its SP."""
    scheme = "https" if getattr(opts, "callback_tls_cert", None) else "http"
    host = getattr(opts, "callback_host", None) or "127.0.0.1"
    sp = getattr(opts, "dcc_sp", None) or "DSP"
    return {"port": 0, "sp": "DSP" if sp == "CP" else sp,
            "callback_url": f"{scheme}://{host}:{opts.callback_port}/",
            "devices": {"registry": str(registry)},
            # concurrent greenlets signing as one Service User arrive slightly out of counter order (as run.py)
            "counter_window_s": 2.0}


def start_if_no_host(environment: Environment) -> EmulatorHandle | None:
    """On a one-process Locust run without a host: start the emulator, point Locust at it, stop it at quit."""
    opts = environment.parsed_options
    if opts is None or environment.host or not isinstance(environment.runner, LocalRunner):
        return None
    from dcc_capacity.emulator import start_emulator
    from dcc_capacity.load.users.kit import get_kit, write_device_registry

    if not getattr(opts, "callback_port", 0):
        opts.callback_port = _free_port(getattr(opts, "callback_host", None) or "127.0.0.1")
    run_dir = getattr(opts, "run_dir", "") or ""
    tmp = None if run_dir else tempfile.TemporaryDirectory(prefix="dcc-emulator-")
    folder = Path(run_dir) / "logs" if run_dir else Path(tmp.name)  # type: ignore[union-attr]
    folder.mkdir(parents=True, exist_ok=True)
    kit = get_kit(opts)
    registry = write_device_registry(kit.fleet, kit.pools, folder / "devices.csv")
    handle = start_emulator(emulator_config(opts, registry), mode="subprocess")
    environment.host = opts.host = handle.url

    def _stop(**_: Any) -> None:
        handle.stop()
        if tmp is not None:
            tmp.cleanup()

    environment.events.quitting.add_listener(_stop)
    log.warning("no --host: started the embedded emulator on %s (callbacks to %s)", handle.url,
                handle.config.callback_url)
    return handle
