"""`dcc-capacity run --test ... --out DIR`: one capacity test from the volume model, then its evidence report.

Without ``--host`` the embedded emulator is started (a subprocess) with a
capacity suited to the test. ``--workers N`` runs a Locust master and N
workers on loopback; ``--web`` opens Locust's web UI instead of running
headless. ``--config FILE`` adds a real environment (orchestrate/configmap.py,
docs/real-environment.md); a non-loopback ``--host`` needs ``--yes``. Exit
status: 0 all NFRs met, 1 an NFR failed (or the run is incomplete), 2 bad
input, 3 the run itself failed or was interrupted (a report is still written).
See docs/running.md.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

__all__ = ["add_parser", "run"]

TESTS = ("load", "stress", "soak", "spike", "catchup", "noisy-neighbour", "negative")


def add_parser(subparsers: argparse._SubParsersAction, help_text: str) -> argparse.ArgumentParser:
    p = subparsers.add_parser("run", help=help_text, description=help_text)
    p.add_argument("--test", required=True, metavar="|".join(TESTS), help="the test to run")
    p.add_argument("--test-id", default=None, metavar="ID",
                   help="catalogue test id this run is evidence for (default: the shipped catalogue's id of the "
                        "test type: LOAD, STRESS, SOAK, SPIKE, CATCHUP, NOISY, NEGATIVE)")
    p.add_argument("--profile", default="volume_profiles/foc.yaml", help="volume profile YAML (default foc)")
    p.add_argument("--sp", default="DSP", help="Service Provider: DSP, S1SP, DCO or CP (default DSP)")
    p.add_argument("--slot", default=None, help="night, day or evening (default: the SP's busiest slot)")
    p.add_argument("--rate", type=float, default=None, help="total SRV/s, overriding the profile (mix kept)")
    p.add_argument("--normal", action="store_true", help="load: the slot's average rate instead of its peak")
    p.add_argument("--duration", default="60s", help="test duration, e.g. 30s, 5m (stress: upper bound)")
    p.add_argument("--host", default=None, help="URL of the SUT; default: start the embedded emulator")
    p.add_argument("--workers", type=int, default=0, help="Locust workers on loopback (0: one process)")
    p.add_argument("--web", action="store_true", help="open Locust's web UI instead of running headless")
    p.add_argument("--web-port", type=int, default=8089, help="web UI port (with --web)")
    p.add_argument("--web-linger", type=float, default=10.0,
                   help="with --web: seconds the UI stays up after the test ends, to look at it (default 10)")
    p.add_argument("--baseline", type=Path, default=None, help="baseline run folder for 'no degradation'")
    p.add_argument("--nfr", type=Path, default=None, help="NFR file (copied into the run folder as nfr.yaml)")
    p.add_argument("--seed", type=int, default=20240601, help="fleet seed (same seed, same devices)")
    p.add_argument("--fleet-size", type=int, default=1_000_000, help="installations in the fleet")
    p.add_argument("--retries", type=int, default=0, help="extra attempts of a failed SRV before a journey ends")
    p.add_argument("--emulator-tps", type=float, default=None, help="embedded emulator capacity (TPS)")
    p.add_argument("--device-latency", choices=["dcc-test", "fast"], default=None,
                   help="embedded emulator's device latency preset: dcc-test (realistic; the default) or fast "
                        "(sub-second, for demos); docs/emulator.md")
    p.add_argument("--users-file", type=Path, default=None, metavar="CSV",
                   help="embedded emulator's user-role model: who holds which SEC role (eui,roles,certificate,name; "
                        "over the DCC Boxed preset; docs/emulator.md)")
    g = p.add_argument_group("stress / spike / catch-up / noisy neighbour")
    g.add_argument("--step", type=float, default=0.1, help="stress step, as a fraction of the peak (default 0.1)")
    g.add_argument("--step-duration", default="60s", help="stress: length of each step (default 60s)")
    g.add_argument("--start-factor", type=float, default=1.0, help="stress: first step as a multiple of the peak")
    g.add_argument("--max-factor", type=float, default=3.0, help="stress: ceiling as a multiple of the peak")
    g.add_argument("--max-error-rate", type=float, default=0.01, help="stress: stop when a step's errors exceed this")
    g.add_argument("--max-p95-ms", type=float, default=1000.0, help="stress: stop when a step's ack p95 exceeds this")
    g.add_argument("--spike-factor", type=float, default=3.0, help="spike: multiple of the base rate")
    g.add_argument("--burst-factor", type=float, default=2.0, help="noisy-neighbour: burst as a multiple of the rest")
    g.add_argument("--client-hold", action="store_true",
                   help="catchup against --host: Service Users hold traffic in the outage, then send the backlog")
    g.add_argument("--exclude", default="", metavar="CLASSES",
                   help="user classes not sent, comma separated; 'smets1': the SMETS2-only baseline (others keep "
                        "their rates)")
    m = p.add_argument_group("response times and run validity (docs/measurement.md)")
    m.add_argument("--trt-late", default="30s", metavar="DURATION",
                   help="an async response later than this (from the planned send) is 'late' (default 30s)")
    m.add_argument("--trt-missing", default="120s", metavar="DURATION",
                   help="no async response after this is 'missing' (default 120s)")
    m.add_argument("--drain", default=None, metavar="DURATION",
                   help="after the load, wait at most this for awaited responses, then record them missing "
                        "(default: --trt-missing)")
    m.add_argument("--max-in-flight", type=int, default=1000,
                   help="open HTTP exchanges per user class and load process; an arrival past it is dropped and "
                        "the run is INVALID (default 1000)")
    m.add_argument("--max-parked-journeys", type=int, default=100_000,
                   help="journeys per load process waiting for a response their next step needs (default 100000)")
    m.add_argument("--max-send-lag", type=float, default=None, metavar="MS",
                   help="the run is INVALID when the generator's send lag p99 exceeds this (default 50 ms, a project "
                        "default)")
    j = p.add_argument_group("scenario verdicts (docs/report.md)")
    j.add_argument("--tolerance", type=float, default=5.0, metavar="PCT",
                   help="with --baseline: allowed worsening in percent (default 5)")
    j.add_argument("--drift-limit", type=float, default=None, metavar="MS_PER_H",
                   help="soak: largest ack/TRT p95 trend, ms per hour (default 100)")
    j.add_argument("--memory-growth-limit", type=float, default=None, metavar="MIB_PER_H",
                   help="soak: largest SUT RSS growth, MiB per hour (default 50)")
    j.add_argument("--fair-share-min", type=float, default=None, metavar="FRACTION",
                   help="noisy-neighbour: share of its offered load a quiet user must keep (default 0.9)")
    j.add_argument("--recovery-target", default=None, metavar="DURATION",
                   help="catchup: longest acceptable time to recover (default: the outage's length)")
    p.add_argument("--out", required=True, type=Path, help="run folder to write (must be new or empty)")
    from dcc_capacity.orchestrate.configmap import add_options

    add_options(p)  # --config FILE (flags override it), --yes
    p.set_defaults(handler=run)
    return p


def run(args: argparse.Namespace) -> int:
    from dcc_capacity.errors import InputError
    from dcc_capacity.orchestrate.configmap import map_config, resolve_args
    from dcc_capacity.orchestrate.run import RunOptions, run_test
    from dcc_capacity.spec.resolve import TestSpec, parse_duration

    cfg, src = resolve_args(args)
    if args.test not in TESTS:
        raise InputError(f"unknown test {args.test!r} (one of {', '.join(TESTS)})", key="--test")
    if args.host is not None and not args.host.startswith(("http://", "https://")):
        raise InputError(f"must be an http(s) URL (got {args.host!r})", key="--host")
    spec = TestSpec(test=args.test, profile=_profile(args.profile), sp=args.sp, slot=args.slot, rate=args.rate,
                    duration_s=parse_duration(args.duration), normal=args.normal, step_fraction=args.step,
                    step_s=parse_duration(args.step_duration, "--step-duration"), start_factor=args.start_factor,
                    max_factor=args.max_factor, max_error_rate=args.max_error_rate,
                    max_p95_ms=args.max_p95_ms if args.max_p95_ms > 0 else None, spike_factor=args.spike_factor,
                    burst_factor=args.burst_factor, client_hold=args.client_hold,
                    interactive=args.web and args.test == "stress", test_id=_test_id(args.test_id),
                    exclude=tuple(n.strip() for n in args.exclude.split(",") if n.strip()))
    from dcc_capacity.orchestrate.scenario_facts import limits_from_args

    if args.tolerance < 0:
        raise InputError(f"must be >= 0 (got {args.tolerance})", key="--tolerance")
    opts = RunOptions(spec=spec, out=args.out, host=args.host, workers=args.workers, web=args.web,
                      web_port=args.web_port, web_linger_s=args.web_linger, baseline=args.baseline, nfr=args.nfr,
                      seed=args.seed,
                      fleet_size=args.fleet_size, emulator_tps=args.emulator_tps, device_latency=args.device_latency,
                      retries=args.retries,
                      command_line=["dcc-capacity", *sys.argv[1:]], tolerance_pct=args.tolerance,
                      limits=limits_from_args(args), trt_late_s=parse_duration(args.trt_late, "--trt-late"),
                      trt_missing_s=parse_duration(args.trt_missing, "--trt-missing"),
                      drain_s=parse_duration(args.drain, "--drain") if args.drain is not None else None,
                      max_in_flight=args.max_in_flight, max_parked=args.max_parked_journeys,
                      max_send_lag_ms=args.max_send_lag)
    m = map_config(cfg, src, args, args.out)
    opts.extra_locust_args += m.locust_args
    opts.confirm_non_loopback, opts.max_rate, opts.max_duration_s = m.confirmed, m.max_rate, m.max_duration_s
    opts.callback_host, opts.callback_port = m.callback_host, m.callback_port
    opts.callback_url = m.emulator_callback_url
    opts.emulator_config.update(m.emulator)  # trust the user's own signing certificates, their roles, paths
    _users_file(args, opts.emulator_config)
    opts.run_files, opts.audit = m.files, m.audit
    opts.telemetry, opts.config_file = m.telemetry, m.config_file  # the SUT's resource telemetry (telemetry/)
    return run_test(opts)


def _users_file(args: argparse.Namespace, emulator: dict) -> None:
    """``--users-file``: the embedded emulator's role model (read now, so a bad row is exit 2 before any start)."""
    from dcc_capacity.duis.userroles import load_users_file
    from dcc_capacity.errors import InputError

    if args.users_file is None:
        return
    if args.host is not None:
        raise InputError("a users file sets the embedded emulator's roles: drop it, or drop --host",
                         key="--users-file")
    load_users_file(args.users_file)
    emulator.setdefault("user_roles", {})["file"] = str(Path(args.users_file).resolve())


def _test_id(value: str | None) -> str | None:
    """``--test-id``: an id the report can anchor (letters, digits, '.', '_', '-')."""
    import re

    from dcc_capacity.errors import InputError

    if value is not None and not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", value):
        raise InputError(f"letters, digits, '.', '_' or '-' only (got {value!r})", key="--test-id")
    return value


def _profile(value: str) -> str:
    """A path, or a bare ioc/moc/foc naming the shipped example (as `plan` accepts)."""
    p = Path(value)
    if not p.exists() and value.lower() in ("ioc", "moc", "foc"):
        from dcc_capacity.paths import data_dir

        return str(data_dir("volume_profiles") / f"{value.lower()}.yaml")
    return str(p)
