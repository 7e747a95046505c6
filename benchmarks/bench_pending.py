"""Tens of thousands of responses outstanding: does one load process hold 1,500 SRV/s against a slow SUT?

    python benchmarks/bench_pending.py [--rate 1500] [--seconds 120] [--min-delay 5] [--max-delay 90]
                                       [--configs single,workers2,journeys]

A real DSP or S1SP acknowledges at once and answers seconds to minutes
later. tests/_slow_sut.py plays that SUT: it acks every request, counts
where and when each one lands, and posts each response back after a delay
drawn uniformly from 5-90 s (mean 47.5 s), over keep-alive connections. For
each configuration, ``dcc-capacity run --test load`` offers ``--rate`` SRV/s
of the single-SRV classes (meter reads, BAU; the journey classes excluded so
every arrival is one request) for ``--seconds``, then drains until the last
response is in. Measured:

- sent ratio: requests the SUT received / arrivals the plan asked for;
- send lag p50/p99/max (actual - planned send, from the records via summary.json);
- peak outstanding: the most responses the SUT held due at once (it cannot
  over-count: each is a request it received and has not yet answered);
- correlated: callbacks the SUT delivered vs. records that got their response;
  missing, pending and dropped (all must be 0);
- generator RSS: peak resident memory of the load processes (summed), sampled every second.

``journeys``: the install & commission and migration classes only, at the same
delays: the journey start rate (measured from send timestamps of step 0) against
the plan, and whether every journey's steps went out in order.

The last line is one JSON object with every configuration's figures.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
SUT = ROOT / "tests" / "_slow_sut.py"
JOURNEYS = ("S2IcCredit", "S2IcPrepay", "S1MigrationCredit", "S1MigrationPrepay")
SINGLE = ("MeterReads", "Bau", "Secmp0192Schedules")
PROFILE = ROOT / "volume_profiles" / "foc.yaml"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_port(port: int, timeout: float = 15.0) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return
        time.sleep(0.1)
    raise RuntimeError(f"nothing listens on {port}")


def _rate_for(target: float, exclude: tuple[str, ...]) -> tuple[float, float]:
    """(--rate giving ``target`` SRV/s once ``exclude`` is left out, the kept classes' planned SRV/s at it)."""
    sys.path.insert(0, str(ROOT / "src"))
    from dcc_capacity.runner.spec import TestSpec, resolve

    full = sum(resolve(TestSpec(test="load", profile=str(PROFILE))).rates.values())
    kept = sum(resolve(TestSpec(test="load", profile=str(PROFILE), exclude=exclude)).rates.values())
    return target * full / kept, target


class RssSampler(threading.Thread):
    """Peak summed RSS of the run's Locust processes (the generator; not the SUT, not this script)."""

    def __init__(self, root_pid: int) -> None:
        super().__init__(daemon=True)
        self.root, self.peak, self.peak_per_process = root_pid, 0, 0
        self._done = threading.Event()

    def run(self) -> None:
        while not self._done.wait(1.0):
            try:
                kids = psutil.Process(self.root).children(recursive=True)
            except psutil.Error:
                continue
            total = 0
            for k in kids:
                try:
                    if "locust" in " ".join(k.cmdline()):
                        rss = k.memory_info().rss
                        total += rss
                        self.peak_per_process = max(self.peak_per_process, rss)
                except psutil.Error:
                    pass
            self.peak = max(self.peak, total)

    def stop(self) -> None:
        self._done.set()
        self.join(3)


def run_config(name: str, a: argparse.Namespace, tmp: Path) -> dict:
    workers = 2 if name == "workers2" else 0
    if name == "journeys":
        exclude = SINGLE
        rate, planned = _rate_for(a.journey_rate, exclude)
    else:
        exclude = JOURNEYS
        rate, planned = _rate_for(a.rate, exclude)
    cb_port, sut_port = _free_port(), _free_port()
    stats_file = tmp / f"{name}-sut.json"
    out = tmp / name
    cfg = tmp / f"{name}.yaml"
    cfg.write_text(f"callback:\n  listen_host: 127.0.0.1\n  listen_port: {cb_port}\n")
    sut = subprocess.Popen([sys.executable, str(SUT), "--port", str(sut_port), "--callback-url",
                            f"http://127.0.0.1:{cb_port}/", "--delay-min", str(a.min_delay), "--delay-max",
                            str(a.max_delay), "--stats", str(stats_file), "--connections", "32",
                            "--max-life", str(a.seconds + a.max_delay + 600)])
    _wait_port(sut_port)
    missing = a.max_delay + 30
    cmd = [sys.executable, "-m", "dcc_capacity", "run", "--test", "load", "--profile", str(PROFILE),
           "--rate", f"{rate:.4f}", "--duration", f"{a.seconds}s", "--host", f"http://127.0.0.1:{sut_port}",
           "--exclude", ",".join(exclude), "--trt-late", f"{missing}s", "--trt-missing", f"{missing}s",
           "--config", str(cfg), "--workers", str(workers), "--out", str(out)]
    t0 = time.time()
    proc = subprocess.Popen(cmd, cwd=ROOT, stderr=subprocess.PIPE, text=True)
    sampler = RssSampler(proc.pid)
    sampler.start()
    lines = []
    assert proc.stderr is not None
    for line in proc.stderr:
        lines.append(line.rstrip())
        if "[dcc-capacity]" in line or "dcc-capacity run:" in line:
            print(f"  {name}: {line.rstrip()}", file=sys.stderr, flush=True)
    code = proc.wait()
    wall = time.time() - t0
    sampler.stop()
    sut.terminate()
    sut.wait(30)
    st = json.loads(stats_file.read_text())
    summary = json.loads((out / "summary.json").read_text())
    outcomes = summary["outcomes"]
    arrivals_planned = planned * a.seconds
    result = {
        "exit": code, "workers": workers, "rate_planned": planned, "seconds": a.seconds, "wall_s": round(wall, 1),
        "arrivals_planned": round(arrivals_planned), "sut_received": st["requests"],
        "sent_ratio": st["requests"] / arrivals_planned if name != "journeys" else None,
        "send_lag_ms": {k: summary["send_lag_ms"].get(k) for k in ("p50", "p99", "max")},
        "peak_outstanding": st["max_due"], "callbacks_delivered": st["callbacks_sent"],
        "callbacks_failed": st["callbacks_failed"],
        "responses_recorded": int(outcomes.get("ok", 0) + outcomes.get("late", 0) + outcomes.get("error", 0)),
        "missing": outcomes.get("missing", 0), "pending": outcomes.get("pending", 0),
        "dropped": outcomes.get("dropped", 0), "valid": summary.get("valid"),
        "unknown_request_ids": (summary.get("drain") or {}).get("unknown"),
        "drain_s": (summary.get("drain") or {}).get("took_s"),
        "generator_rss_mib": round(sampler.peak / 2**20, 1),
        "generator_rss_mib_per_process": round(sampler.peak_per_process / 2**20, 1),
    }
    result["gc_pauses"] = _gc_figures(out)
    if name == "journeys":
        result.update(_journey_figures(out, planned))
    if code not in (0, 1):
        result["stderr_tail"] = lines[-15:]
    return result


def _gc_figures(out: Path) -> dict:
    """The load processes' garbage-collector pauses (drain files): full collections are the send-lag risk."""
    merged: dict = {}
    for f in out.glob("drain-*.json"):
        for gen, g in (json.loads(f.read_text()).get("gc") or {}).items():
            m = merged.setdefault(gen, {"count": 0, "total_ms": 0.0, "max_ms": 0.0})
            m["count"] += g["count"]
            m["total_ms"] = round(m["total_ms"] + g["total_ms"], 1)
            m["max_ms"] = max(m["max_ms"], g["max_ms"])
    return merged


def _journey_figures(out: Path, planned_srv_rate: float) -> dict:
    sys.path.insert(0, str(ROOT / "src"))
    import pandas as pd

    from dcc_capacity.records import load_records
    from dcc_capacity.volume import DEFAULT_JOURNEYS

    df = load_records(out)
    req = df[df["kind"] == "request"]
    starts = req[req["step"] == 0].dropna(subset=["sent_ts"])
    s = starts["sent_ts"].sort_values()
    start_rate = (len(s) - 1) / (s.iloc[-1] - s.iloc[0]) if len(s) > 1 else 0.0
    mean_len = sum(len(DEFAULT_JOURNEYS[r]) for r in ("s2_ic_credit", "s2_ic_prepay", "s1_migration_credit",
                                                        "s1_migration_prepay")) / 4
    ordered = True
    by = req.dropna(subset=["sent_ts"]).sort_values("step").groupby(["process", "arrival"])
    for _, g in by:
        steps = g["step"].to_numpy()
        if list(steps) != list(range(len(steps))):
            ordered = False
            break
        sent, done = g["sent_ts"].to_numpy(), g["callback_ts"].to_numpy()
        if len(steps) > 1 and not (sent[1:] >= pd.Series(done[:-1]).fillna(0).to_numpy() - 1e-6).all():
            ordered = False
            break
    return {"journey_start_rate": start_rate, "journey_start_rate_approx_planned": planned_srv_rate / mean_len,
            "journeys": int(len(starts)), "steps_in_order": ordered}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rate", type=float, default=1500.0)
    ap.add_argument("--journey-rate", type=float, default=300.0, help="SRV/s of the journey-only run")
    ap.add_argument("--seconds", type=int, default=120)
    ap.add_argument("--min-delay", type=float, default=5.0)
    ap.add_argument("--max-delay", type=float, default=90.0)
    ap.add_argument("--configs", default="single,workers2,journeys")
    a = ap.parse_args()
    results = {}
    with tempfile.TemporaryDirectory(prefix="bench-pending-") as tmp:
        for name in a.configs.split(","):
            print(f"{name}: {a.rate if name != 'journeys' else a.journey_rate:g} SRV/s for {a.seconds} s, "
                  f"responses after {a.min_delay:g}-{a.max_delay:g} s", file=sys.stderr, flush=True)
            results[name] = run_config(name, a, Path(tmp))
            print(json.dumps({name: results[name]}), flush=True)
    print(json.dumps(results))


if __name__ == "__main__":
    main()
