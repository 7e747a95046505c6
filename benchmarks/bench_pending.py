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
- generator RSS: peak resident memory of the load processes (summed), sampled every second;
- host CPU: busy and steal (CPU the hypervisor took) each second of the load, from the run's drain files. A
  send lag over the limit with ``steal_seconds`` > 0 is the host's, not the suite's: re-run on a quiet host.

``journeys``: the install & commission and migration classes only, at the same
delays, against the embedded emulator (it answers the critical SRVs' CV 4 with a
real Pre-Command, so journeys go on step by step) with its device latency set to
a uniform 5-90 s table: the journey start rate (from the send timestamps of
step 0) against the plan, how many journeys were parked at once, and whether
every journey's steps went out in order, each after the previous one's response.

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


def _rate_for(target: float, exclude: tuple[str, ...], slot: str | None = None) -> tuple[float, float]:
    """(--rate giving ``target`` SRV/s once ``exclude`` is left out, the kept classes' planned SRV/s at it)."""
    sys.path.insert(0, str(ROOT / "src"))
    from dcc_capacity.spec.resolve import TestSpec, resolve

    full = sum(resolve(TestSpec(test="load", profile=str(PROFILE), slot=slot)).rates.values())
    kept = sum(resolve(TestSpec(test="load", profile=str(PROFILE), slot=slot, exclude=exclude)).rates.values())
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


def _emulator_latency(lo_s: float, hi_s: float) -> str:
    """Run-config YAML giving the embedded emulator a uniform lo..hi s device latency for every SRV class."""
    table = f"{{table: [[0, {lo_s * 1000:g}], [1, {hi_s * 1000:g}]]}}"
    per_class = "".join(f"        {c}: {table}\n" for c in ("device", "critical"))
    return ("emulator:\n  capacity:\n    device_latency:\n"
            + "".join(f"      {gen}:\n{per_class}" for gen in ("smets1", "smets2")))


def run_config(name: str, a: argparse.Namespace, tmp: Path) -> dict:
    workers = 2 if name == "workers2" else 0
    journeys = name == "journeys"
    if journeys:  # installations and migrations happen in the day slot (FOC: none at night)
        exclude = SINGLE
        rate, planned = _rate_for(a.journey_rate, exclude, "day")
    else:
        exclude = JOURNEYS
        rate, planned = _rate_for(a.rate, exclude)
    cb_port, sut_port = _free_port(), _free_port()
    stats_file = tmp / f"{name}-sut.json"
    out = tmp / name
    cfg = tmp / f"{name}.yaml"
    missing = a.max_delay + 30
    sut = None
    if journeys:  # the embedded emulator plays the SUT (real Pre-Commands), slowed to the same delays
        cfg.write_text(_emulator_latency(a.min_delay, a.max_delay))
        target = ["--drain", f"{a.journey_drain}s", "--slot", "day"]
    else:
        cfg.write_text(f"callback:\n  listen_host: 127.0.0.1\n  listen_port: {cb_port}\n")
        sut = subprocess.Popen([sys.executable, str(SUT), "--port", str(sut_port), "--callback-url",
                                f"http://127.0.0.1:{cb_port}/", "--delay-min", str(a.min_delay), "--delay-max",
                                str(a.max_delay), "--stats", str(stats_file), "--connections", "32",
                                "--max-life", str(a.seconds + a.max_delay + 600)])
        _wait_port(sut_port)
        target = ["--host", f"http://127.0.0.1:{sut_port}"]
    cmd = [sys.executable, "-m", "dcc_capacity", "run", "--test", "load", "--profile", str(PROFILE),
           "--rate", f"{rate:.4f}", "--duration", f"{a.seconds}s", *target,
           "--exclude", ",".join(exclude), "--trt-late", f"{missing}s", "--trt-missing", f"{missing}s",
           "--max-send-lag", "50", "--config", str(cfg), "--workers", str(workers), "--out", str(out)]
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
    if sut is not None:
        sut.terminate()
        sut.wait(30)
    st = json.loads(stats_file.read_text()) if sut is not None else {}
    summary = json.loads((out / "summary.json").read_text())
    outcomes = summary["outcomes"]
    arrivals_planned = planned * a.seconds
    result = {
        "exit": code, "workers": workers, "rate_planned": planned, "seconds": a.seconds, "wall_s": round(wall, 1),
        "arrivals_planned": round(arrivals_planned), "sut_received": st.get("requests"),
        "sent_ratio": st["requests"] / arrivals_planned if st else None,
        "send_lag_ms": {k: summary["send_lag_ms"].get(k) for k in ("p50", "p99", "max")},
        "peak_outstanding": st.get("max_due"), "callbacks_delivered": st.get("callbacks_sent"),
        "callbacks_failed": st.get("callbacks_failed"),
        "responses_recorded": int(outcomes.get("ok", 0) + outcomes.get("late", 0) + outcomes.get("error", 0)),
        "missing": outcomes.get("missing", 0), "pending": outcomes.get("pending", 0),
        "dropped": outcomes.get("dropped", 0), "valid": summary.get("valid"),
        "unknown_request_ids": (summary.get("drain") or {}).get("unknown"),
        "drain_s": (summary.get("drain") or {}).get("took_s"),
        "awaited_at_stop": (summary.get("drain") or {}).get("awaited_at_stop"),
        "parked_at_stop": (summary.get("drain") or {}).get("parked_at_stop"),
        "generator_rss_mib": round(sampler.peak / 2**20, 1),
        "generator_rss_mib_per_process": round(sampler.peak_per_process / 2**20, 1),
    }
    result["gc_pauses"] = _gc_figures(out)
    # The host's CPU each second of the load (load/hostcpu.py): on a VM, steal makes the generator late whatever
    # the suite does; a run with steal_seconds > 0 measured the host as much as the suite.
    result["host_cpu"] = (summary.get("drain") or {}).get("host_cpu")
    if journeys:
        result.update(_journey_figures(out, rate, exclude, a.seconds))
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


def _journey_figures(out: Path, rate: float, exclude: tuple[str, ...], seconds: float) -> dict:
    """Journey starts/s from send timestamps against the plan (class rate / journey length), parked peak, order."""
    sys.path.insert(0, str(ROOT / "src"))
    import numpy as np

    from dcc_capacity.load.records import load_records
    from dcc_capacity.model.srvmix import ROW_CLASSES
    from dcc_capacity.spec.resolve import TestSpec, resolve

    r = resolve(TestSpec(test="load", profile=str(PROFILE), slot="day", rate=rate, exclude=exclude))
    length = {ROW_CLASSES[row]: len(steps) for row, steps in r.mix.journeys.items() if row in ROW_CLASSES}
    planned_starts = sum(v / length[c] for c, v in r.rates.items())
    df = load_records(out)
    req = df[(df["kind"] == "request") & df["sent_ts"].notna()]
    starts = req[req["step"] == 0]
    t = np.sort(starts["sent_ts"].to_numpy())
    start_rate = (len(t) - 1) / (t[-1] - t[0]) if len(t) > 1 else 0.0
    ordered, checked, max_steps = True, 0, 0
    for _, g in req.sort_values("sent_ts").groupby(["process", "arrival"]):
        steps = g["step"].to_numpy()
        max_steps = max(max_steps, len(steps))
        # steps go out in order; a critical SRV's CV 4 and CV 5 share a step number, so never decreasing
        if (np.diff(steps) < 0).any():
            ordered = False
            break
        done = g["callback_ts"].to_numpy()
        sent = g["sent_ts"].to_numpy()
        for i in range(1, len(steps)):
            if steps[i] != steps[i - 1] and not np.isnan(done[i - 1]) and sent[i] < done[i - 1] - 1e-6:
                ordered = False  # a step went out before the previous step's response had come
        checked += 1
    return {"journey_starts_per_s": start_rate, "journey_starts_planned_per_s": planned_starts,
            "journey_start_ratio": start_rate / planned_starts if planned_starts else None,
            "journeys": int(len(starts)), "journeys_checked": checked, "most_steps_sent": int(max_steps),
            "steps_in_order": ordered}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rate", type=float, default=1500.0)
    ap.add_argument("--journey-rate", type=float, default=1500.0, help="SRV/s of the journey-only run")
    ap.add_argument("--journey-drain", type=float, default=60.0,
                    help="journeys: seconds after the load to let parked journeys go on (then recorded missing)")
    ap.add_argument("--seconds", type=int, default=120)
    ap.add_argument("--min-delay", type=float, default=5.0)
    ap.add_argument("--max-delay", type=float, default=90.0)
    ap.add_argument("--configs", default="single,workers2,journeys")
    ap.add_argument("--keep", type=Path, default=None, help="write the run folders here (kept) instead of a temp dir")
    a = ap.parse_args()
    results = {}
    with tempfile.TemporaryDirectory(prefix="bench-pending-") as tmp:
        if a.keep is not None:
            a.keep.mkdir(parents=True, exist_ok=True)
        for name in a.configs.split(","):
            print(f"{name}: {a.rate if name != 'journeys' else a.journey_rate:g} SRV/s for {a.seconds} s, "
                  f"responses after {a.min_delay:g}-{a.max_delay:g} s", file=sys.stderr, flush=True)
            results[name] = run_config(name, a, a.keep if a.keep is not None else Path(tmp))
            print(json.dumps({name: results[name]}), flush=True)
    print(json.dumps(results))


if __name__ == "__main__":
    main()
