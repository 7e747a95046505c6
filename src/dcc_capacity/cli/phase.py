"""`dcc-capacity phase run|report|compare`: a whole System Capacity Test Phase (docs/phase.md).

``phase run PLAN --out DIR`` runs every test of a plan, each into its own run
folder (resumable); ``phase report DIR [--pdf]`` writes the phase's one
completion report; ``phase compare OLD NEW`` says what changed between two
phases and which evidence carries over (SCTAD 3.3). Exit status: 0 fine, 1
NFRs not met / exit criteria not met / a regression, 2 bad input, 3 a test
did not complete.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

__all__ = ["add_parser", "run"]


def add_parser(subparsers: argparse._SubParsersAction, help_text: str) -> argparse.ArgumentParser:
    p = subparsers.add_parser("phase", help=help_text, description=help_text)
    sub = p.add_subparsers(dest="phase_command", metavar="run|report|compare", parser_class=type(p))
    r = sub.add_parser("run", help="run every test of a plan, each into DIR/runs/<run_id> (resumable)")
    r.add_argument("plan", type=Path, metavar="PLAN", help="test plan YAML (docs/phase.md)")
    r.add_argument("--out", required=True, type=Path, help="phase folder (new, or the same one to resume)")
    r.set_defaults(handler=_run)
    rep = sub.add_parser("report", help="the completion report of a phase folder (phase-report.html)")
    rep.add_argument("dir", type=Path, metavar="DIR", help="phase folder written by `phase run`")
    rep.add_argument("--pdf", action="store_true", help="also print phase-report.pdf with the headless chromium")
    rep.add_argument("--chromium", default=None, metavar="PATH",
                     help="chromium to print with (default: $DCC_CAPACITY_CHROMIUM, chromium, chromium-browser, "
                          "google-chrome)")
    rep.set_defaults(handler=_report)
    c = sub.add_parser("compare", help="what changed between two phases; which evidence carries over")
    c.add_argument("old", type=Path, metavar="OLD", help="the earlier phase folder")
    c.add_argument("new", type=Path, metavar="NEW", help="the later phase folder")
    c.add_argument("--tolerance", type=float, default=10.0, metavar="PCT",
                   help="allowed worsening of a headline figure before it is a regression (default 10)")
    c.add_argument("--json", type=Path, default=None, metavar="FILE", help="also write the comparison as JSON")
    c.set_defaults(handler=_compare)
    p.set_defaults(handler=lambda args: (p.print_help(), 2)[1])
    return p


def _run(args: argparse.Namespace) -> int:
    from dcc_capacity.phase.runner import run_phase

    return run_phase(args.plan, args.out)


def _report(args: argparse.Namespace) -> int:
    from dcc_capacity.phase.report import build_phase_report, print_pdf

    outcome = build_phase_report(args.dir, progress=lambda m: print(f"dcc-capacity phase: {m}", file=sys.stderr))
    print(outcome.html)
    print(outcome.summary)
    if args.pdf:
        print(print_pdf(outcome.html, args.chromium))
    return outcome.exit_code


def _compare(args: argparse.Namespace) -> int:
    from dcc_capacity.errors import InputError
    from dcc_capacity.phase.compare import compare_phases, render_text

    if args.tolerance < 0:
        raise InputError(f"must be >= 0 (got {args.tolerance})", key="--tolerance")
    result = compare_phases(args.old, args.new, tolerance_pct=args.tolerance)
    print(render_text(result))
    if args.json is not None:
        import json

        args.json.write_text(json.dumps(result, indent=2, default=str) + "\n", encoding="utf-8")
    return 1 if result["regressions"] else 0


def run(args: argparse.Namespace) -> int:
    return int(args.handler(args))
