"""Does a run send the mix the plan models? 60 s load runs for IOC and FOC, records against ``plan --mix``.

    PYTHONPATH=src python benchmarks/check_mix.py [--seconds 60] [--rate 150] [--cases ioc:night,foc:day]

Each case is one ``dcc-capacity run --test load`` against the embedded
emulator (loopback), one after another (so they do not slow each other),
at ``--rate`` SRV/s (the profile's mix, scaled: enough SRVs for a
percentage-point comparison). From the run folder's records it counts SRV
attempts (a critical SRV's CV 5 is its CV 4's attempt) per user class (the
Table A2 rows), per SRV, to SMETS1 installations and to prepayment ones,
and the top-ups (2.2) in BAU; ``plan.json``'s ``mix`` (the same object as
``dcc-capacity plan --mix --format json``) is what the run was to send.

Prints one line per case, then the last line: one JSON object
``{"cases": {"ioc:night": {"srvs": N, "max_row_pp": x, "smets1_plan": x, "smets1_measured": x, ...}}, "pass": bool}``;
``pass``: every row, the SMETS1 share and the top-up share within 2 percentage points of the plan.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

LIMIT_PP = 2.0


def run_case(profile: str, slot: str, seconds: float, rate: float, out: Path) -> dict:
    from dcc_capacity.orchestrate.finish import compare_mix, mix_from_records

    t0 = time.time()
    proc = subprocess.run([sys.executable, "-m", "dcc_capacity", "run", "--test", "load", "--profile", profile,
                           "--slot", slot, "--rate", f"{rate:g}", "--duration", f"{seconds:g}s", "--out", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=seconds + 300)
    if proc.returncode not in (0, 1):
        raise SystemExit(f"{profile} {slot}: run failed ({proc.returncode}): {proc.stderr[-2000:]}")
    plan = json.loads((out / "plan.json").read_text())["mix"]
    got = compare_mix(plan, mix_from_records(out))
    got["wall_s"] = round(time.time() - t0, 1)
    got["pass"] = (got["max_row_pp"] < LIMIT_PP and abs(got["smets1_pp"]) < LIMIT_PP
                   and abs(got["topup_pp"]) < LIMIT_PP)
    return got


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=60.0, help="duration of each run")
    ap.add_argument("--rate", type=float, default=150.0, help="total SRV/s of each run (the profile's mix)")
    ap.add_argument("--cases", default="ioc:night,ioc:day,foc:night,foc:day",
                    help="profile:slot pairs (a bare ioc/moc/foc is the shipped example)")
    ap.add_argument("--keep", type=Path, default=None, help="write the run folders here (default: a temp folder)")
    args = ap.parse_args()
    base = args.keep or Path(tempfile.mkdtemp(prefix="check-mix-"))
    results: dict[str, dict] = {}
    for case in args.cases.split(","):
        name, _, slot = case.partition(":")
        profile = str(ROOT / "volume_profiles" / f"{name}.yaml") if "/" not in name else name
        got = run_case(profile, slot or "night", args.seconds, args.rate, base / case.replace(":", "-"))
        results[case] = got
        rows = ", ".join(f"{r} {v:+.2f}" for r, v in got["rows_pp"].items())
        print(f"{case}: {got['srvs']} SRVs; rows vs plan (pp): {rows}; SMETS1 {got['smets1_measured']:.2%} "
              f"(plan {got['smets1_plan']:.2%}); prepay {got['prepay_measured']:.2%} (plan {got['prepay_plan']:.2%}); "
              f"top-ups {got['topup_measured']:.2%} of {got['bau_srvs']} BAU (plan {got['topup_plan']:.2%}); "
              f"largest SRV difference {got['max_srv_pp']:.2f} pp; {'PASS' if got['pass'] else 'FAIL'}",
              flush=True)
    rounded = {case: {k: (round(v, 5) if isinstance(v, float) else v) for k, v in got.items() if k != "rows_pp"}
               | {"rows_pp": {r: round(v, 3) for r, v in got["rows_pp"].items()}} for case, got in results.items()}
    print(json.dumps({"cases": rounded, "pass": all(g["pass"] for g in results.values()),
                      "seconds": args.seconds, "rate": args.rate}))
    return 0 if all(g["pass"] for g in results.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
