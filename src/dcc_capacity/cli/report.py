"""`dcc-capacity report DIR [--baseline DIR] [--tolerance PCT]`: the evidence report of a run folder.

Prints its steps as it goes (a 100 M-record soak takes minutes) and exits
with the design.md contract: 0 all NFRs met, 1 an NFR failed (or the run is
incomplete, or degraded against the baseline), 2 bad input, 3 the run failed.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

__all__ = ["add_parser", "run"]


def add_parser(subparsers: argparse._SubParsersAction, help_text: str) -> argparse.ArgumentParser:
    p = subparsers.add_parser("report", help=help_text, description=help_text)
    p.add_argument("dir", type=Path, metavar="DIR", help="run folder (run.json, records/, ...)")
    p.add_argument("--baseline", type=Path, metavar="DIR", help="baseline run folder to show 'no degradation'")
    p.add_argument("--tolerance", type=float, default=5.0, metavar="PCT",
                   help="allowed worsening against the baseline, in percent (default 5)")
    p.add_argument("--batch-rows", type=int, default=250_000, metavar="N", help="raw record rows per batch (memory)")
    p.set_defaults(handler=run)
    return p


def run(args: argparse.Namespace) -> int:
    from dcc_capacity.errors import InputError
    from dcc_capacity.report.build import build_report

    if args.tolerance < 0:
        raise InputError(f"must be >= 0 (got {args.tolerance})", key="--tolerance")
    if args.batch_rows < 1:
        raise InputError(f"must be >= 1 (got {args.batch_rows})", key="--batch-rows")
    t0 = time.monotonic()

    def progress(message: str) -> None:
        print(f"[{time.monotonic() - t0:7.1f}s] {message}", file=sys.stderr, flush=True)

    outcome = build_report(args.dir, baseline_dir=args.baseline, tolerance_pct=args.tolerance, progress=progress,
                           batch_rows=args.batch_rows)
    verdict = {0: "all NFRs met", 1: "NFRs not met (see the report)", 3: "the run itself failed"}[outcome.exit_code]
    if not outcome.summary_doc.get("valid", True):
        verdict = "run INVALID, not evidence: " + "; ".join(outcome.summary_doc.get("invalid_reasons", []))
    if not outcome.summary_doc.get("complete", True):
        verdict += "; run INCOMPLETE"
    print(f"{outcome.html}\n{outcome.summary}\n{outcome.junit}")
    progress(f"done: {verdict}")
    return outcome.exit_code
