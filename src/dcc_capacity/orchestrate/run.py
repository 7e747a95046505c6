"""One test run end to end: run folder, embedded emulator, Locust (single or master + workers), report.

The CLI process stays free of Locust and gevent: Locust runs as subprocesses
(``python -m locust -f load/users/locustfile.py``, orchestrate/processes.py), the
emulator as another (orchestrate/emulator.py), and this process only starts them,
runs the one resource collector of the run (:mod:`dcc_capacity.telemetry`: the
SUT's exporters, Prometheus, the emulator's ``/metrics``), watches for a dead SUT,
and at the end writes ``run.json`` and the report (orchestrate/finish.py). The run
spec goes to every Locust process as one file, ``<run>/spec.json``. Every wait is
bounded.
"""

from __future__ import annotations

import contextlib
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dcc_capacity.errors import InputError
from dcc_capacity.load.interrupt import request_interrupt
from dcc_capacity.orchestrate import cpmode
from dcc_capacity.orchestrate.checks import check_run_numbers
from dcc_capacity.orchestrate.emulator import smets1_installations
from dcc_capacity.orchestrate.finish import finish_run
from dcc_capacity.orchestrate.processes import (
    free_port,
    locust_args,
    popen_locust,
    relay_counts,
    say,
    start_relay,
    watch_locust,
)
from dcc_capacity.orchestrate.processes import stop as _stop
from dcc_capacity.orchestrate.resilience import WorkerWatch, write_run_json_early
from dcc_capacity.orchestrate.target import callback_scheme, callback_server_tls, client_context, without_callback_tls
from dcc_capacity.spec.model import SpecBase
from dcc_capacity.spec.options import write_spec
from dcc_capacity.spec.resolve import Resolved, resolve
from dcc_capacity.spec.safety import interrupt_on_signals
from dcc_capacity.testtypes.base import SideContext

__all__ = ["RunOptions", "run_test"]


@dataclass
class RunOptions:
    """How ``dcc-capacity run`` runs its spec: where, with how many processes, against what, judged how."""

    spec: SpecBase
    """Every setting that decides the load (spec/model.py): the same object every Locust process loads."""
    out: Path
    host: str | None = None
    workers: int = 0
    web: bool = False
    web_port: int = 8089
    web_linger_s: float = 10.0
    """With --web: Locust quits this long after the test ends (the operator's last look), then the report."""
    baseline: Path | None = None
    nfr: Path | None = None
    emulator_tps: float | None = None
    device_latency: str | None = None
    """--device-latency: the embedded emulator's preset (``dcc-test``, ``fast``); None: the run config's, else
    ``$DCC_CAPACITY_DEVICE_LATENCY``, else ``dcc-test`` (emulator/latency.py)."""
    progress_interval: float | None = None
    """Seconds between progress lines; default: every 5 s, or 1/60 of a longer run (about 60 lines at most)."""
    command_line: list[str] = field(default_factory=list)
    tolerance_pct: float = 5.0
    """--baseline: allowed worsening in percent."""
    extra_locust_args: list[str] = field(default_factory=list)
    emulator_config: dict[str, Any] = field(default_factory=dict)
    """Merged over the embedded emulator's generated config (e.g. ``tls``, ``callback_tls``, ``faults``)."""
    log: Any = None
    # A real environment (run --config, orchestrate/configmap.py; docs/real-environment.md):
    confirm_non_loopback: bool = False
    """--yes / safety.confirm_non_loopback: a --host that is not loopback may be loaded (spec/safety.py)."""
    callback_host: str = "127.0.0.1"
    callback_port: int = 0
    callback_url: str | None = None
    """The URL the SUT posts async responses to (the embedded emulator's callback_url); default: loopback."""
    run_files: dict[str, bytes] = field(default_factory=dict)
    """Run-folder relative path -> content, written before Locust starts (signing-keys.json, run-config.json)."""
    audit: dict[str, Any] = field(default_factory=dict)
    """run.json ``real_environment``: target, certificates by fingerprint, key paths (no secret)."""
    telemetry: Any = None
    """The run configuration's ``[telemetry]`` (a TelemetryConfig): where the SUT's resource figures come from."""
    config_file: str | None = None
    """The run configuration's path (provenance of the telemetry settings in the report)."""

    @property
    def drain_limit_s(self) -> float:
        """The drain actually allowed: ``--drain``, or the missing deadline (as the load processes decide it)."""
        return self.spec.drain_s if self.spec.drain_s is not None else self.spec.trt_missing_s


def _check_inputs(opts: RunOptions) -> Resolved:
    check_run_numbers(opts)
    from dcc_capacity.spec.safety import check_ceilings, check_target

    check_target(opts.host, opts.confirm_non_loopback, web=opts.web)  # before anything is started or sent
    if opts.host is not None and opts.device_latency is not None:
        raise InputError("sets the embedded emulator's latency; with --host the system under test has its own",
                         key="--device-latency")
    if opts.host is None and opts.device_latency is None:
        from dcc_capacity.emulator.latency import default_preset

        default_preset()  # a bad $DCC_CAPACITY_DEVICE_LATENCY is exit 2 before anything starts
    if opts.workers < 0 or opts.workers > 64:
        raise InputError(f"must be 0..64 (got {opts.workers})", key="--workers")
    relay_tls = callback_server_tls(opts.extra_locust_args) if opts.workers else None
    if relay_tls is not None:  # the relay serves it: a wrong file or password is exit 2 here, before any start
        relay_tls.context()
    if opts.nfr is not None and not opts.nfr.is_file():
        raise InputError("no such file", file=opts.nfr, key="--nfr")
    if opts.nfr is not None:  # a bad catalogue is one line and exit 2 here, not a crash in every Locust process
        from dcc_capacity.model.nfr import load_catalogue

        load_catalogue(opts.nfr)
    if opts.baseline is not None and not (opts.baseline / "run.json").is_file():
        raise InputError("not a run folder (no run.json)", file=opts.baseline, key="--baseline")
    if not Path(opts.spec.profile).is_file():
        raise InputError("no such file", file=opts.spec.profile, key="--profile")
    resolved = resolve(opts.spec)
    check_ceilings(opts.spec.rate or sum(resolved.rates.values()), opts.spec.duration_s, opts.spec.max_rate,
                   opts.spec.max_duration_s)
    return resolved


def run_test(opts: RunOptions) -> int:
    """Run the test of ``opts`` and return the exit status (0/1 NFRs, 2 bad input, 3 run failed)."""
    from dcc_capacity.testtypes.registry import get

    resolved = _check_inputs(opts)
    spec, out = opts.spec, opts.out
    if out.exists() and any(out.iterdir()):
        raise InputError("the output folder exists and is not empty", file=out, key="--out")
    logs = out / "logs"
    for folder in (out / "records", logs):
        folder.mkdir(parents=True, exist_ok=True)
    for name, content in opts.run_files.items():
        (out / name).parent.mkdir(parents=True, exist_ok=True)
        (out / name).write_bytes(content)
    write_spec(spec, out)  # the one spec every Locust process loads (--dcc-spec)
    from dcc_capacity.duis.pki import TestPKI

    TestPKI.load_or_create()  # once, before several processes could race to create it
    emulator = relay = master = side = None
    emulator_t0: float | None = None
    workers: list[subprocess.Popen] = []
    collector: Any = None
    failure = ""
    started = time.time()
    target = opts.host or "embedded emulator"
    callback_port = opts.callback_port or free_port()
    registry_dir = logs / "callbacks"
    relay_stats = logs / "relay.json"
    write_run_json_early(out, spec=spec, slot=resolved.slot, started=started, target=target,
                         command_line=opts.command_line, seed=spec.seed, workers=opts.workers)
    watch = WorkerWatch([], say=lambda m: say(opts, m))
    stop_signals = interrupt_on_signals()
    try:
        if opts.workers:
            relay = start_relay(opts, callback_port, registry_dir, relay_stats, logs / "relay.log")
        host = opts.host
        if host is None:
            from dcc_capacity.orchestrate.emulator import start_embedded

            scheme = callback_scheme(opts.extra_locust_args)
            emulator, emulator_t0, cfg = start_embedded(
                opts, resolved, opts.callback_url or f"{scheme}://127.0.0.1:{callback_port}/", logs)
            host = emulator.url
            say(opts, f"embedded emulator on {host} (capacity {cfg['capacity']['tps']:g} TPS, device latency "
                      f"{cfg['capacity']['device_latency']['preset']})")
        assert host is not None
        collector = _start_telemetry(opts, host if emulator is not None else None)
        base = locust_args(opts, cpmode.locust_host(emulator.info) if emulator is not None and cpmode.active(
            spec.sp, spec.test) else host, out)
        if opts.workers:  # the relay terminates the callback TLS; the workers listen on 127.0.0.1, plain HTTP
            base = without_callback_tls(base)
        linger = str(max(0, int(round(opts.web_linger_s))))
        ui = (["--web-host", "127.0.0.1", "--web-port", str(opts.web_port), "--autostart", "--autoquit", linger,
               *(["--ui-metrics-url", f"{host}/metrics"] if emulator is not None else [])]
              if opts.web
              else ["--headless", "--progress-interval",
                    str(opts.progress_interval or max(5.0, round(spec.duration_s / 60)))])
        started = time.time()
        if opts.workers:
            mport = free_port()
            # The master forwards its custom options to the workers (overriding theirs): give it the registry too.
            master = popen_locust([*base, "--master", "--master-bind-host", "127.0.0.1", "--master-bind-port",
                                   str(mport), "--expect-workers", str(opts.workers), "--callback-registry",
                                   str(registry_dir), *ui], logs / "master.log")
            for i in range(opts.workers):
                workers.append(popen_locust([*base, "--worker", "--master-host", "127.0.0.1", "--master-port",
                                             str(mport), "--callback-registry", str(registry_dir)],
                                            logs / f"worker-{i}.log"))
            watch.workers, watch.started = workers, started
        else:
            master = popen_locust([*base, "--callback-host", opts.callback_host, "--callback-port",
                                   str(callback_port), *ui], logs / "locust.log")
        if opts.web:
            say(opts, f"web UI on http://127.0.0.1:{opts.web_port} (it quits {linger} s after the test ends)")
        say(opts, f"{spec.test} test, {spec.sp} {resolved.slot}, {sum(resolved.rates.values()):.1f} SRV/s, "
                  f"{spec.duration_s:g} s, {opts.workers or 1} load process(es); logs in {logs}")
        side = get(spec.test).start_side_tasks(spec, SideContext(  # negative: the SFTP migration cases
            out, emulator, lambda: smets1_installations(spec, resolved)))
        failure = watch_locust(opts, master, emulator, watch)
    except KeyboardInterrupt as exc:
        stop_signals.defer()
        failure = f"interrupted ({exc.args[0] if exc.args else 'Ctrl-C'}): the load was stopped early"
        say(opts, f"{failure}; writing the report from what was recorded")
        request_interrupt(out, failure)  # the load processes end their drain at once (load/interrupt.py)
        _stop(master, signal.SIGINT)
    finally:
        stop_signals.defer()  # a second signal must not cut the report short (it is bounded)
        if side is not None:
            side.stop()
        # A finished master has told its workers to quit; each quits after its drain (awaited responses, then
        # its drain file). Give them that long before SIGTERM, which would cut the drain and lose its books.
        settle_until = time.monotonic() + (opts.drain_limit_s + 15.0 if not failure and master is not None
                                           and master.poll() is not None else 0.0)
        for w in workers:
            with contextlib.suppress(subprocess.TimeoutExpired):
                w.wait(max(0.0, settle_until - time.monotonic()))
            _stop(w)
        _stop(master)
        if collector is not None:
            collector.stop()
        if emulator is not None:
            emulator.stop()
        _stop(relay)
    ended = time.time()
    counts = relay_counts(relay_stats) if relay is not None else None
    if counts and any(counts.get(k) for k in ("refused", "unroutable", "failed")):
        say(opts, "callback relay: {forwarded} forwarded, {refused} refused (TLS handshake), {unroutable} "
                  "unroutable, {failed} not delivered to a worker (logs/relay.log)".format(**{
                      k: counts.get(k, 0) for k in ("forwarded", "refused", "unroutable", "failed")}))
    try:
        return finish_run(opts, resolved, started, ended, failure, target, emulator_t0, watch, counts)
    finally:
        stop_signals.restore()


def _start_telemetry(opts: RunOptions, emulator_url: str | None) -> Any:
    """The run's one resource collector (telemetry/collector.py), started before any load; None: nothing to collect."""
    from dcc_capacity.telemetry import build_collector

    collector = build_collector(opts.telemetry, opts.out, config_file=opts.config_file, emulator_url=emulator_url,
                                emulator_context=client_context(opts.extra_locust_args))
    if collector is not None:
        collector.start()
        if collector.sources:
            say(opts, f"resource telemetry every {collector.interval:g} s from {len(collector.sources)} source(s)")
    return collector
