"""One test run end to end: run folder, embedded emulator, Locust (single or master + workers), report.

The CLI process stays free of Locust and gevent: Locust runs as subprocesses
(``python -m locust -f load/users/locustfile.py``), the emulator as another, and
this process only starts them, runs the one resource collector of the run
(:mod:`dcc_capacity.telemetry`: the SUT's exporters, Prometheus, the
emulator's ``/metrics``), watches for a dead SUT, and at the end writes ``run.json``
and calls :func:`dcc_capacity.report.build.build_report`. Every wait is
bounded.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from dcc_capacity import __version__
from dcc_capacity.config.redact import redact_argv
from dcc_capacity.errors import InputError, RunError
from dcc_capacity.model.provenance import plan_provenance
from dcc_capacity.orchestrate import cpmode
from dcc_capacity.orchestrate.checks import check_run_numbers
from dcc_capacity.orchestrate.finish import rates_from_records
from dcc_capacity.orchestrate.resilience import WorkerWatch, die_with_parent, lost_workers_failure, write_run_json_early
from dcc_capacity.orchestrate.target import callback_scheme, callback_server_tls, client_context, without_callback_tls
from dcc_capacity.spec.resolve import Resolved, TestSpec, default_test_id, resolve
from dcc_capacity.spec.safety import interrupt_on_signals

__all__ = ["RunOptions", "run_test"]

LOCUSTFILE = Path(__file__).resolve().parents[1] / "load" / "users" / "locustfile.py"
SRC_DIR = Path(__file__).resolve().parents[2]


@dataclass
class RunOptions:
    """Everything ``dcc-capacity run`` was asked for."""

    spec: TestSpec
    out: Path
    host: str | None = None
    workers: int = 0
    web: bool = False
    web_port: int = 8089
    web_linger_s: float = 10.0
    """With --web: Locust quits this long after the test ends (the operator's last look), then the report."""
    baseline: Path | None = None
    nfr: Path | None = None
    seed: int = 20240601
    fleet_size: int = 1_000_000
    pool_size: int = 1024
    emulator_tps: float | None = None
    device_latency: str | None = None
    """--device-latency: the embedded emulator's preset (``dcc-test``, ``fast``); None: the run config's, else
    ``$DCC_CAPACITY_DEVICE_LATENCY``, else ``dcc-test`` (emulator/latency.py)."""
    retries: int = 0
    progress_interval: float | None = None
    """Seconds between progress lines; default: every 5 s, or 1/60 of a longer run (about 60 lines at most)."""
    command_line: list[str] = field(default_factory=list)
    tolerance_pct: float = 5.0
    """--baseline: allowed worsening in percent."""
    limits: dict[str, float] = field(default_factory=dict)
    """Scenario verdict limits given on the command line (report/scenarios.py); run.json ``limits``."""
    trt_late_s: float = 30.0
    """An async response later than this (from the planned send) is ``late``."""
    trt_missing_s: float = 120.0
    """No async response after this: ``missing``."""
    drain_s: float | None = None
    """After the load, how long awaited responses are waited for (None: ``trt_missing_s``)."""

    @property
    def drain_limit_s(self) -> float:
        """The drain actually allowed: ``drain_s``, or the missing deadline (as the load processes decide it)."""
        return self.drain_s if self.drain_s is not None else self.trt_missing_s
    max_in_flight: int = 1000
    """Open HTTP exchanges per user class and load process."""
    max_parked: int = 100_000
    """Journeys per load process parked on a response their next step needs."""
    max_send_lag_ms: float | None = None
    """Send lag p99 above this makes the run INVALID (the generator, not the SUT, was late); None: the project
    default (report/validity.py)."""
    extra_locust_args: list[str] = field(default_factory=list)
    emulator_config: dict[str, Any] = field(default_factory=dict)
    """Merged over the embedded emulator's generated config (e.g. ``tls``, ``callback_tls``, ``faults``)."""
    log: Any = None
    # A real environment (run --config, orchestrate/configmap.py; docs/real-environment.md):
    confirm_non_loopback: bool = False
    """--yes / safety.confirm_non_loopback: a --host that is not loopback may be loaded (spec/safety.py)."""
    max_rate: float | None = None
    max_duration_s: float | None = None
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


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


def _say(opts: RunOptions, msg: str) -> None:
    print(f"dcc-capacity run: {msg}", file=opts.log or sys.stderr, flush=True)


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(SRC_DIR) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


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
    check_ceilings(opts.spec.rate or sum(resolved.rates.values()), opts.spec.duration_s, opts.max_rate,
                   opts.max_duration_s)
    return resolved


def _emulator_config(opts: RunOptions, r: Resolved, callback_url: str, registry: Path) -> dict[str, Any]:
    spec = opts.spec
    peak = sum(r.rates.values())
    if spec.test == "stress":
        peak *= spec.max_factor
    elif spec.test == "spike":
        peak *= spec.spike_factor
    elif spec.test == "noisy-neighbour":
        peak *= 1 + spec.burst_factor
    tps = opts.emulator_tps or max(1350.0, 2.0 * peak)
    cfg: dict[str, Any] = {
        "port": 0, "sp": "CP" if spec.sp == "CP" else spec.sp, "callback_url": callback_url,
        "capacity": {"tps": tps}, "devices": {"registry": str(registry)},
        "alerts": {"enabled": r.alerts_per_s > 0, "rate_per_s": min(r.alerts_per_s, 100_000.0)},
    }
    # Concurrent senders (greenlets, workers) signing as one Service User reach the SUT slightly out of counter
    # order (a greenlet that signed first may send later); counters are µs << 10 | slot: accept 2 s of reordering.
    cfg["counter_window_s"] = 2.0
    if cpmode.active(spec.sp, spec.test):  # CP mode: the emulator plays the CP, migration files over SFTP
        cfg.update(cpmode.emulator_settings(opts.out / "logs" / "cp"))
    if spec.test == "stress":
        cfg["capacity"]["queue_limit"] = max(10, int(tps * 0.2))  # a short queue: overload shows as E48 quickly
    if spec.test == "noisy-neighbour" and opts.emulator_tps is None:
        cfg["capacity"]["tps"] = max(10.0, 1.5 * sum(r.rates.values()))  # the burst exceeds it: SECMP0067 decides
    if spec.test == "negative":  # faults and SFTP the negative cases need (testtypes/negative)
        from dcc_capacity.testtypes.negative.migrations import emulator_settings

        cfg.update(emulator_settings(opts.out / "logs" / "cp"))
    if spec.test == "catchup" and opts.emulator_tps is None:
        # 3x the base rate: the backlog drains at the spare 2x, in about half the outage's length, so the
        # catch-up and its peak rate show; the queue holds the whole backlog (nothing refused).
        base = sum(r.rates.values())
        cfg["capacity"]["tps"] = max(10.0, 3.0 * base)
        cfg["capacity"]["queue_limit"] = max(5000, int(2 * base * (spec.outage_s or spec.duration_s / 6)))
    if opts.emulator_config:
        from dcc_capacity.emulator.config import merge_settings

        cfg = merge_settings(cfg, opts.emulator_config)
    _set_device_latency(cfg, opts.device_latency)
    return cfg


def _set_device_latency(cfg: dict[str, Any], flag: str | None) -> None:
    """The preset written out in full (flag, else the run config's, else the environment's or the default), so
    logs/emulator-config.json records which latency the run was measured against."""
    from dcc_capacity.emulator.latency import default_preset

    latency = cfg.setdefault("capacity", {}).setdefault("device_latency", {})
    if flag is not None:
        latency["preset"] = flag
    elif not latency.get("preset"):
        latency["preset"] = default_preset()


def _locust_args(opts: RunOptions, host: str, run_dir: Path) -> list[str]:
    s = opts.spec
    a = ["-f", str(LOCUSTFILE), "--host", host, "--run-dir", str(run_dir), "--volume-profile", s.profile,
         "--sp", s.sp, "--dcc-test", s.test, "--dcc-duration", f"{s.duration_s}s",
         "--secmp0192-share", str(s.secmp0192_share), "--stress-step", str(s.step_fraction),
         "--step-duration", f"{s.step_s}s", "--stress-start", str(s.start_factor), "--stress-max", str(s.max_factor),
         "--stress-max-error-rate", str(s.max_error_rate), "--stress-max-p95-ms", str(s.max_p95_ms or 0),
         "--spike-factor", str(s.spike_factor), "--burst-factor", str(s.burst_factor),
         "--fleet-seed", str(opts.seed), "--fleet-size", str(opts.fleet_size), "--pool-size", str(opts.pool_size),
         "--step-retries", str(opts.retries), "--exit-code-on-error", "0", "--loglevel", "WARNING",
         "--trt-late", str(opts.trt_late_s), "--trt-missing", str(opts.trt_missing_s),
         "--max-in-flight", str(opts.max_in_flight), "--max-parked-journeys", str(opts.max_parked)]
    if opts.drain_s is not None:
        a += ["--drain", str(opts.drain_s)]
    if s.slot:
        a += ["--slot", s.slot]
    if s.s1sp:
        a += ["--s1sp", s.s1sp]
    if s.rate:
        a += ["--dcc-rate", str(s.rate)]
    if s.normal:
        a.append("--normal")
    if s.client_hold:
        a.append("--client-hold")
    if opts.confirm_non_loopback:
        a.append("--confirm-non-loopback")  # the Locust process checks the host again (spec/safety.py)
    if s.exclude:
        a += ["--dcc-exclude", ",".join(s.exclude)]
    if s.interactive:
        a.append("--dcc-interactive")
    if opts.nfr is not None:  # the live progress line judges the same catalogue as the report
        a += ["--nfr", str(Path(opts.nfr).resolve())]
    return a + list(opts.extra_locust_args)


def _popen(args: list[str], log: Path) -> subprocess.Popen:
    fh = open(log, "ab")  # noqa: SIM115 - lives as long as the process
    return subprocess.Popen([sys.executable, "-m", "locust", *args], stdout=fh, stderr=subprocess.STDOUT,
                            env=_env(), start_new_session=True, preexec_fn=die_with_parent)


def _relay_args(opts: RunOptions, port: int, registry: Path, stats: Path) -> list[str]:
    """The relay's command line: with callback TLS it, not the workers, terminates it (orchestrate/relay.py)."""
    a = [sys.executable, "-m", "dcc_capacity.orchestrate.relay", "--host", opts.callback_host, "--port", str(port),
         "--registry", str(registry), "--stats", str(stats)]
    tls = callback_server_tls(opts.extra_locust_args)
    if tls is not None:
        a += ["--tls-cert", tls.cert]
        for flag, value in (("--tls-key", tls.key), ("--tls-client-ca", tls.client_ca),
                            ("--tls-key-password-env", tls.password_env)):
            if value:
                a += [flag, value]
    return a


def _wait_listening(proc: subprocess.Popen, port: int, log: Path, timeout: float = 20.0) -> None:
    """Until the relay accepts connections on ``port`` (bounded): a callback must never find nobody there."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RunError(f"the callback relay exited with status {proc.returncode}: {_tail(log, 600).strip()}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RunError(f"the callback relay did not listen on port {port} within {timeout:g} s (see {log})")


def _relay_counts(stats: Path) -> dict[str, Any] | None:
    """What the relay forwarded, refused (TLS handshakes), could not route or deliver; None if it wrote nothing."""
    try:
        return json.loads(stats.read_text())
    except (OSError, ValueError):
        return None


def _stop(proc: subprocess.Popen | None, sig: int = signal.SIGTERM, timeout: float = 15.0) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(sig)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


def run_test(opts: RunOptions) -> int:
    """Run the test of ``opts`` and return the exit status (0/1 NFRs, 2 bad input, 3 run failed)."""
    resolved = _check_inputs(opts)
    spec = opts.spec
    out = opts.out
    if out.exists() and any(out.iterdir()):
        raise InputError("the output folder exists and is not empty", file=out, key="--out")
    records = out / "records"
    records.mkdir(parents=True, exist_ok=True)
    logs = out / "logs"
    logs.mkdir(exist_ok=True)
    for name, content in opts.run_files.items():
        (out / name).parent.mkdir(parents=True, exist_ok=True)
        (out / name).write_bytes(content)
    from dcc_capacity.duis.pki import TestPKI
    from dcc_capacity.load.users.kit import fleet_pools, write_device_registry

    TestPKI.load_or_create()  # once, before several processes could race to create it
    emulator = relay = master = migrations = None
    emulator_t0: float | None = None
    workers: list[subprocess.Popen] = []
    collector: Any = None
    failure = ""
    started = time.time()
    target = opts.host or "embedded emulator"
    callback_port = opts.callback_port or _free_port()
    registry_dir = out / "logs" / "callbacks"
    relay_stats = logs / "relay.json"
    write_run_json_early(out, spec=spec, slot=resolved.slot, started=started, target=target,
                         command_line=opts.command_line, seed=opts.seed, workers=opts.workers)
    watch = WorkerWatch([], say=lambda m: _say(opts, m))
    stop_signals = interrupt_on_signals()
    try:
        if opts.workers:
            relay = subprocess.Popen(_relay_args(opts, callback_port, registry_dir, relay_stats), env=_env(),
                                     preexec_fn=die_with_parent,
                                     stdout=open(logs / "relay.log", "ab"), stderr=subprocess.STDOUT)  # noqa: SIM115
            _wait_listening(relay, callback_port, logs / "relay.log")
        host = opts.host
        if host is None:
            from dcc_capacity.emulator import start_emulator

            fleet = _fleet(opts, resolved)  # the profile's shares, as every Locust process builds it (srvmix.py)
            registry = write_device_registry(fleet, fleet_pools(fleet, opts.pool_size), logs / "devices.csv")
            scheme = callback_scheme(opts.extra_locust_args)
            cfg = _emulator_config(opts, resolved, opts.callback_url or f"{scheme}://127.0.0.1:{callback_port}/",
                                   registry)
            if spec.test == "catchup" and not spec.client_hold:
                lead = 3.0 if not opts.workers else 5.0  # emulator start -> test start, roughly
                cfg.setdefault("faults", {})["outage"] = {
                    "enabled": True, "windows": [{"start_s": lead + spec.duration_s / 3,
                                                  "duration_s": spec.outage_s or spec.duration_s / 6}]}
            (logs / "emulator-config.json").write_text(json.dumps(cfg, indent=2))
            emulator = start_emulator(cfg, mode="subprocess")
            emulator_t0 = time.time()  # its fault windows count from here (it answers within ~20 ms of starting)
            host = emulator.url
            _say(opts, f"embedded emulator on {host} (capacity {cfg['capacity']['tps']:g} TPS, device latency "
                       f"{cfg['capacity']['device_latency']['preset']})")
        assert host is not None
        collector = _start_telemetry(opts, host if emulator is not None else None)
        base = _locust_args(opts, cpmode.locust_host(emulator.info) if emulator is not None and cpmode.active(
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
            mport = _free_port()
            # The master forwards its custom options to the workers (overriding theirs): give it the registry too.
            master = _popen([*base, "--master", "--master-bind-host", "127.0.0.1", "--master-bind-port", str(mport),
                             "--expect-workers", str(opts.workers), "--callback-registry", str(registry_dir), *ui],
                            logs / "master.log")
            for i in range(opts.workers):
                workers.append(_popen([*base, "--worker", "--master-host", "127.0.0.1", "--master-port", str(mport),
                                       "--callback-registry", str(registry_dir)], logs / f"worker-{i}.log"))
            watch.workers, watch.started = workers, started
        else:
            master = _popen([*base, "--callback-host", opts.callback_host, "--callback-port", str(callback_port),
                             *ui], logs / "locust.log")
        if opts.web:
            _say(opts, f"web UI on http://127.0.0.1:{opts.web_port} (it quits {linger} s after the test ends)")
        _say(opts, f"{spec.test} test, {spec.sp} {resolved.slot}, {sum(resolved.rates.values()):.1f} SRV/s, "
                   f"{spec.duration_s:g} s, {opts.workers or 1} load process(es); logs in {logs}")
        if spec.test == "negative" and emulator is not None:
            migrations = _start_migrations(opts, emulator)
        failure = _watch(opts, master, workers, emulator, watch)
    except KeyboardInterrupt as exc:
        stop_signals.defer()
        failure = f"interrupted ({exc.args[0] if exc.args else 'Ctrl-C'}): the load was stopped early"
        _say(opts, f"{failure}; writing the report from what was recorded")
        _stop(master, signal.SIGINT)
    finally:
        stop_signals.defer()  # a second signal must not cut the report short (it is bounded)
        if migrations is not None:
            migrations.stop()
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
    relay_counts = _relay_counts(relay_stats) if relay is not None else None
    if relay_counts and any(relay_counts.get(k) for k in ("refused", "unroutable", "failed")):
        _say(opts, "callback relay: {forwarded} forwarded, {refused} refused (TLS handshake), {unroutable} "
                   "unroutable, {failed} not delivered to a worker (logs/relay.log)".format(**{
                       k: relay_counts.get(k, 0) for k in ("forwarded", "refused", "unroutable", "failed")}))
    try:
        return _finish(opts, resolved, started, ended, failure, target, emulator_t0, watch, relay_counts)
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
            _say(opts, f"resource telemetry every {collector.interval:g} s from {len(collector.sources)} source(s)")
    return collector


def _fleet(opts: RunOptions, r: Resolved) -> Any:
    """The run's fleet: its seed and size, the shares the profile gives for the SP and slot (srvmix.py)."""
    from dcc_capacity.model.fleet import Fleet

    if r.mix is None:
        return Fleet(seed=opts.seed, size=opts.fleet_size)
    return r.mix.fleet.fleet(opts.seed, opts.fleet_size)


def _start_migrations(opts: RunOptions, emulator: Any) -> Any:
    """The negative run's SFTP migration cases (NEG-FALLOUT, NEG-REPROCESS), on SMETS1 installations of the fleet."""
    from dcc_capacity.load.users.kit import fleet_pools
    from dcc_capacity.testtypes.negative.migrations import MigrationCases

    fleet = _fleet(opts, resolve(opts.spec))
    pools = fleet_pools(fleet, opts.pool_size)
    smets1 = sorted(i for (gen, _), idx in pools.by_kind.items() if gen == 1 for i in idx)
    thread = MigrationCases(int(emulator.info["sftp_port"]), opts.out, [fleet[i] for i in smets1],
                            opts.spec.duration_s)
    thread.start()
    return thread


def _tail(path: Path, n: int = 1500) -> str:
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


def _iso(epoch: float) -> str:
    """run.json times for people (the report reads ISO and epoch alike): UTC, milliseconds."""
    return dt.datetime.fromtimestamp(epoch, dt.timezone.utc).isoformat(timespec="milliseconds")


def _watch(opts: RunOptions, master: subprocess.Popen, workers: list[subprocess.Popen], emulator: Any,
           watch: WorkerWatch | None = None) -> str:
    """Wait for Locust to finish (bounded); return why the run failed ('' when it did not)."""
    spec = opts.spec
    limit = spec.duration_s + opts.drain_limit_s + 120 + (opts.workers * 10) + (opts.web_linger_s if opts.web else 0)
    t0 = time.monotonic()
    follow = _Follow(opts.out / "logs" / ("master.log" if opts.workers else "locust.log"))
    while True:
        running = master.poll() is None  # then read the log once more: the last line comes as Locust quits
        for line in follow.new_lines():  # Locust's own table stays in the log; the progress line comes here
            if line.startswith("[dcc-capacity]"):
                print(line, file=opts.log or sys.stderr, flush=True)
        if not running:
            break
        if emulator is not None and emulator.returncode is not None:
            _say(opts, "the system under test (embedded emulator) died mid-run")
            _stop(master, signal.SIGINT)
            return "the system under test died mid-run"
        if watch is not None:
            watch.check()  # a dead worker: Locust's master carries on with the others; we report it
        if limit is not None and time.monotonic() - t0 > limit:
            _stop(master, signal.SIGINT)
            return f"Locust did not finish within {limit:g} s"
        time.sleep(0.25)
    if master.returncode not in (0, None):
        log = opts.out / "logs" / ("master.log" if opts.workers else "locust.log")
        return f"Locust exited with status {master.returncode}: {_tail(log, 600)}"
    return ""


def _finish(opts: RunOptions, r: Resolved, started: float, ended: float, failure: str, target: str,
            emulator_t0: float | None = None, watch: WorkerWatch | None = None,
            relay_counts: dict[str, Any] | None = None) -> int:
    from dcc_capacity.load.operator_log import load_operator_actions, stress_section
    from dcc_capacity.report.build import build_report

    out, spec = opts.out, opts.spec
    shape_file = out / "shape.json"  # written by the shape (on the master) into --run-dir
    shape = json.loads(shape_file.read_text()) if shape_file.exists() else None
    first, last, counts = rates_from_records(out)
    start = first if first is not None else started
    duration = spec.duration_s
    if spec.interactive and shape and shape.get("steps"):
        duration = max(s["ended_t"] for s in shape["steps"])  # the operator ended it (or --duration did)
    elif spec.test == "stress" and shape and shape.get("steps"):
        duration = len(shape["steps"]) * spec.step_s
    if failure and last is not None:
        duration = min(duration, max(last - start, 1e-3))
    rates = {cls: {"offered": c["requests"] / duration, "achieved": c["ok"] / duration} for cls, c in counts.items()}
    if opts.nfr is not None:
        shutil.copyfile(opts.nfr, out / "nfr.yaml")
    plan_doc = r.plan.to_dict()
    plan_doc["test_scale"] = {sp: r.plan.profile.test_scale(sp) for sp in ("DSP", "S1SP", "DCO", "CP")}
    plan_doc.update(plan_provenance(r.plan, spec.profile))  # inputs with sources; A7 split by row (alerts)
    if r.mix is not None:  # what the run was to send inside the rates: the records' srv_variant/smets/prepay check it
        plan_doc["mix"] = r.mix.to_dict()
    (out / "plan.json").write_text(json.dumps(plan_doc, indent=2) + "\n")
    import locust

    targets = {cls: rate for cls, rate in r.rates.items()}
    run = {
        "schema_version": 1,
        "test_id": spec.test_id or default_test_id(spec.test),
        "test_name": f"{spec.test.capitalize()}, {spec.sp}, {r.slot}",
        "test_type": spec.test, "sp": spec.sp, "slot": r.slot,
        "status": "incomplete" if failure else "complete",
        "start": _iso(start), "duration_s": duration,
        "profile": {"path": spec.profile, "sha256": _sha256(Path(spec.profile))},
        "command_line": redact_argv(opts.command_line or ["dcc-capacity", "run"]),
        "seed": opts.seed, "target": target,
        "versions": {"dcc_capacity": __version__, "locust": locust.__version__,
                     "python": platform.python_version()},
        "rates": {cls: {"target": targets.get(cls, 0.0), "offered": rates.get(cls, {}).get("offered", 0.0),
                        "achieved": rates.get(cls, {}).get("achieved", 0.0)}
                  for cls in sorted(set(targets) | set(rates))},
        "spec": spec.to_dict(), "workers": opts.workers, "alerts_per_s": r.alerts_per_s,
        "measurement": {"trt_late_s": opts.trt_late_s, "trt_missing_s": opts.trt_missing_s,
                        "drain_s": opts.drain_limit_s,
                        "max_in_flight": opts.max_in_flight, "max_parked_journeys": opts.max_parked},
    }
    if opts.max_send_lag_ms is not None:
        run["validity"] = {"max_send_lag_ms": opts.max_send_lag_ms, "max_send_lag_source": "the user's setting "
                           "(--max-send-lag / run.max_send_lag_ms)"}
    if not failure:
        run["end"] = _iso(ended)
    else:
        run["failure"] = failure
    if opts.audit:
        run["real_environment"] = opts.audit
    if relay_counts is not None:  # --workers: what the callback relay forwarded and refused
        run["callback_relay"] = relay_counts
    if opts.nfr is not None:
        run["nfr_file"] = {"path": str(opts.nfr), "sha256": _sha256(opts.nfr)}
    if shape is not None:
        run["shape"] = shape
        if spec.interactive:
            run["stress"] = stress_section(shape)
        elif spec.test == "stress":
            run["stress"] = {"steps": [{"step": s["step"], "target_rate": s["total_rate"], "start_s": s["step"] *
                                        spec.step_s, "end_s": (s["step"] + 1) * spec.step_s, "passed": s["passed"]}
                                       for s in shape.get("steps", [])],
                             "knee": shape.get("knee_rate")}
    if watch is not None and watch.lost:  # the run finished, without all its load: incomplete, not hidden
        run["status"], run["lost_workers"] = "incomplete", [w.to_dict() for w in watch.lost]
        run["failure"] = "; ".join(x for x in (failure, lost_workers_failure(watch.lost)) if x)
        _say(opts, f"run INCOMPLETE: {lost_workers_failure(watch.lost)}")
    actions = load_operator_actions(out)  # who steered the load from the web UI, and when
    if actions:
        run["operator_actions"] = actions
    if spec.test == "noisy-neighbour":
        from dcc_capacity.orchestrate.finish import shares_by_user

        run["user_shares"] = shares_by_user(out)
    if spec.test == "negative":
        from dcc_capacity.testtypes.negative.report import write_results

        write_results(out, run, {"rate": sum(r.rates.values()), "target": target, "sftp": opts.host is None})
    from dcc_capacity.orchestrate.scenario_facts import scenario_facts

    run.update(scenario_facts(spec, r, out, start, emulator_t0, opts.limits))
    from dcc_capacity.load.records import record_files

    if not record_files(out):  # nothing was measured: a failed run (see logs/), not a report to build
        run["status"], run["failure"] = "failed", failure or f"the run wrote no records (see {out / 'logs'})"
        run.pop("end", None)
    (out / "run.json").write_text(json.dumps(run, indent=2, default=float) + "\n")
    if run["status"] == "failed":
        raise RunError(run["failure"].splitlines()[0])
    _say(opts, "building the report")
    outcome = build_report(out, baseline_dir=opts.baseline, tolerance_pct=opts.tolerance_pct, progress=lambda m: None)
    _say(opts, f"report: {outcome.html}")
    if spec.test == "stress":
        knee = (shape or {}).get("knee_rate")
        none = "not marked (steered from the web UI)" if spec.interactive else "none (the first step failed)"
        _say(opts, f"stress knee: {knee:.1f} SRV/s" if knee else f"stress knee: {none}")
    for user, share in (run.get("user_shares") or {}).items():
        _say(opts, f"Service User {user}: {share['requests']} requests, {share['throttled']} throttled, "
                   f"{share['achieved_share']:.1%} of all achieved")
    for case in (run.get("negative") or {}).get("cases", []):
        _say(opts, f"{case['id']}: {'PASS' if case['passed'] else 'FAIL'} - {case['as_required']} of "
                   f"{case['sent']} answered as required{'; ' + case['reason'] if case['reason'] else ''}")
    for line in (outcome.summary_doc.get("scenarios") or {}).get("lines", []):
        _say(opts, line)
    if failure:
        _say(opts, f"run FAILED: {failure}")
        raise RunError(failure.splitlines()[0])
    if not outcome.summary_doc.get("valid", True):
        _say(opts, "run INVALID (not evidence): " + "; ".join(outcome.summary_doc.get("invalid_reasons", [])))
    if not (run.get("negative") or {}).get("passed", True):
        return max(outcome.exit_code, 1)  # a negative case not answered as required fails the run
    return outcome.exit_code
