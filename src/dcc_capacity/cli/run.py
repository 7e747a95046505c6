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

from dcc_capacity.model.cpmigration import cp_nfr_path

__all__ = ["add_parser", "run"]


def add_parser(subparsers: argparse._SubParsersAction, help_text: str) -> argparse.ArgumentParser:
    """``run``: the run spec's flags (generated from spec/model.py and the test types), then how to run it."""
    from dcc_capacity.spec.surfaces import add_flags

    p = subparsers.add_parser("run", help=help_text, description=help_text)
    add_flags(p)  # --test, --profile, --rate, --duration, --step, --max-factor, --s1sp, --cp-batch ... (one each)
    p.add_argument("--host", default=None, help="URL of the SUT; default: start the embedded emulator")
    p.add_argument("--workers", type=int, default=0, help="Locust workers on loopback (0: one process)")
    p.add_argument("--web", action="store_true", help="open Locust's web UI instead of running headless")
    p.add_argument("--web-port", type=int, default=8089, help="web UI port (with --web)")
    p.add_argument("--web-linger", type=float, default=10.0,
                   help="with --web: seconds the UI stays up after the test ends, to look at it (default 10)")
    p.add_argument("--baseline", type=Path, default=None, help="baseline run folder for 'no degradation'")
    p.add_argument("--nfr", type=Path, default=None, help="NFR file (copied into the run folder as nfr.yaml)")
    p.add_argument("--emulator-tps", type=float, default=None, help="embedded emulator capacity (TPS)")
    p.add_argument("--device-latency", choices=["dcc-test", "fast"], default=None,
                   help="embedded emulator's device latency preset: dcc-test (realistic; the default) or fast "
                        "(sub-second, for demos); docs/emulator.md")
    p.add_argument("--users-file", type=Path, default=None, metavar="CSV",
                   help="embedded emulator's user-role model: who holds which SEC role (eui,roles,certificate,name; "
                        "over the DCC Boxed preset; docs/emulator.md)")
    p.add_argument("--tolerance", type=float, default=5.0, metavar="PCT",
                   help="with --baseline: allowed worsening in percent (default 5)")
    p.add_argument("--sftp-known-hosts", type=Path, default=None, metavar="FILE",
                   help="--sp CP: known_hosts file with the CP's SFTP server key (needed for a non-loopback --host)")
    p.add_argument("--out", required=True, type=Path, help="run folder to write (must be new or empty)")
    from dcc_capacity.orchestrate.configmap import add_options

    add_options(p)  # --config FILE (flags override it), --yes
    p.set_defaults(handler=run)
    return p


def run(args: argparse.Namespace) -> int:
    from dcc_capacity.errors import InputError
    from dcc_capacity.orchestrate.configmap import from_environment

    try:
        return _run(args)
    except InputError as exc:  # a setting from DCC_CAPACITY_RUN_*: said of the variable the user set
        raise from_environment(exc, args) from None


def _run(args: argparse.Namespace) -> int:
    from dcc_capacity.errors import InputError
    from dcc_capacity.orchestrate import cpmode
    from dcc_capacity.orchestrate.configmap import map_config, resolve_args
    from dcc_capacity.orchestrate.run import RunOptions, run_test
    from dcc_capacity.spec.surfaces import spec_from_args

    cfg, src = resolve_args(args)
    from dcc_capacity.testtypes.registry import get

    get(args.test)  # an unknown --test is one line naming the choices
    cp_mode = cpmode.active(args.sp, args.test)  # CP mode: migration files over SFTP (load/users/cp.py)
    if args.host is not None and not args.host.startswith(("sftp://",) if cp_mode else ("http://", "https://")):
        raise InputError(f"must be an {'sftp' if cp_mode else 'http(s)'} URL (got {args.host!r})", key="--host")
    if args.sftp_known_hosts is not None and not args.sftp_known_hosts.is_file():
        raise InputError("no such file", file=args.sftp_known_hosts, key="--sftp-known-hosts")
    spec = spec_from_args(args, interactive=args.web)  # --web: a stress test is steered from the Capacity tab
    if args.tolerance < 0:
        raise InputError(f"must be >= 0 (got {args.tolerance})", key="--tolerance")
    opts = RunOptions(spec=spec, out=args.out, host=args.host, workers=args.workers, web=args.web,
                      web_port=args.web_port, web_linger_s=args.web_linger, baseline=args.baseline,
                      nfr=args.nfr if args.nfr is not None or not cp_mode else cp_nfr_path(),
                      emulator_tps=args.emulator_tps, device_latency=args.device_latency,
                      command_line=[*(f"{k}={v}" for k, v in args.env_settings.items()), "dcc-capacity",
                                    *sys.argv[1:]], tolerance_pct=args.tolerance)
    m = map_config(cfg, src, args, args.out)
    opts.extra_locust_args += m.locust_args + (
        ["--sftp-known-hosts", str(args.sftp_known_hosts.resolve())] if cp_mode and args.sftp_known_hosts else [])
    opts.confirm_non_loopback = m.confirmed
    opts.callback_host, opts.callback_port = m.callback_host, m.callback_port
    opts.callback_url = m.emulator_callback_url
    opts.emulator_config.update(m.emulator)  # trust the user's own certificates, their roles, paths, users file
    opts.run_files, opts.audit = m.files, m.audit
    opts.telemetry, opts.config_file = m.telemetry, m.config_file  # the SUT's resource telemetry (telemetry/)
    return run_test(opts)
