"""Coordinated omission, measured: the open model vs a closed-loop Locust user against a stalling server.

The server (tests/_slow_sut.py: asyncio + httptools) holds every response
that arrives in the first 2 s of each 10 s, and counts where and when each
request lands. Both clients target 100 req/s for 30 s, one after the other
against a fresh server; each one's rate is the server's count over the span
of its arrival times (never the clients' planned times):

- open: :class:`dcc_capacity.load.openmodel.OpenModelUser` (tests/_om_locustfile.py
  ``Steady``), latency from the intended send time, numbers from its records;
- closed: a plain FastHttpUser, 10 users x ``constant_throughput(10)``,
  numbers from Locust's own stats CSV.

Theory for the open model: P(latency > x) = (2 - x) / 10, so p95 = 1.5 s and
p99 = 1.9 s. The closed loop sends less (it waits out each stall) and its p99
hides most of the stall. Last line: one JSON object.

    python benchmarks/bench_coordinated_omission.py [--seconds 30] [--rate 100]
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "src"), str(ROOT / "tests")]

from _load_helpers import run_locust, slow_sut  # noqa: E402
from dcc_capacity.load.records import load_records  # noqa: E402

CLOSED = """
from locust import FastHttpUser, constant_throughput, task


class Closed(FastHttpUser):
    wait_time = constant_throughput({per_user})

    @task
    def send(self):
        self.client.post("/api/v1/serviceS", data=b"<x/>" * 50, name="closed")
"""


def landed_rate(stats: dict) -> float:
    """Requests/s where they landed: the server's count over the span of its arrival times."""
    t = sorted(stats["arrivals"])
    return (len(t) - 1) / (t[-1] - t[0]) if len(t) > 1 else 0.0


def run_open(seconds: int, rate: float, out: Path) -> dict[str, float]:
    with slow_sut(out, stall=2, period=10) as sut:
        r = run_locust(ROOT / "tests" / "_om_locustfile.py", sut.url, out, seconds=seconds,
                       extra=["-u", "1", "-r", "100"], env={"OM_CLASSES": "Steady", "OM_RATE": str(rate)},
                       timeout=seconds + 60)
    if r.returncode not in (0, 1):
        raise SystemExit(f"open-model run failed: {r.stderr[-2000:]}")
    df = load_records(out)
    offered = landed_rate(sut.stats)
    return {"requests": int(sut.stats["requests"]), "offered_rate": offered,
            "offered_rate_error": abs(offered - rate) / rate,
            "p50_ms": float(df["ack_ms"].quantile(0.5)), "p95_ms": float(df["ack_ms"].quantile(0.95)),
            "p99_ms": float(df["ack_ms"].quantile(0.99)), "max_ms": float(df["ack_ms"].max())}


def run_closed(seconds: int, rate: float, out: Path) -> dict[str, float]:
    users = 10
    lf = out / "closed_locustfile.py"
    lf.write_text(CLOSED.format(per_user=rate / users))
    with slow_sut(out, stall=2, period=10) as sut:
        r = run_locust(lf, sut.url, out, seconds=seconds, extra=["-u", str(users), "-r", str(users)],
                       timeout=seconds + 60, records=False)
    if r.returncode not in (0, 1):
        raise SystemExit(f"closed-loop run failed: {r.stderr[-2000:]}")
    row = next(row for row in csv.DictReader((out / "locust_stats.csv").open()) if row["Name"] == "closed")
    achieved = landed_rate(sut.stats)
    return {"requests": int(sut.stats["requests"]), "offered_rate": achieved,
            "offered_rate_error": abs(achieved - rate) / rate,
            "p50_ms": float(row["50%"]), "p95_ms": float(row["95%"]), "p99_ms": float(row["99%"]),
            "max_ms": float(row["Max Response Time"])}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=int, default=30)
    ap.add_argument("--rate", type=float, default=100.0)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        o, c = Path(tmp) / "open", Path(tmp) / "closed"
        o.mkdir()
        c.mkdir()
        open_ = run_open(a.seconds, a.rate, o)
        closed = run_closed(a.seconds, a.rate, c)
    for name, res in (("open model", open_), ("closed loop", closed)):
        print(f"{name:12s} requests {res['requests']:6d}  offered {res['offered_rate']:7.2f}/s "
              f"(error {res['offered_rate_error']:.1%})  p95 {res['p95_ms']:7.0f} ms  p99 {res['p99_ms']:7.0f} ms")
    print(json.dumps({"target_rate": a.rate, "seconds": a.seconds,
                      "open_offered_rate_error": open_["offered_rate_error"], "open_p95_ms": open_["p95_ms"],
                      "open_p99_ms": open_["p99_ms"], "open_requests": open_["requests"],
                      "closed_offered_rate_error": closed["offered_rate_error"], "closed_p95_ms": closed["p95_ms"],
                      "closed_p99_ms": closed["p99_ms"], "closed_requests": closed["requests"]}))


if __name__ == "__main__":
    main()
