"""Was the load actually offered? The generator's own health, judged before any NFR verdict counts as evidence.

An open-model run proves something about the system only if the suite sent
what the plan said, when it said: an arrival the generator dropped (client
saturated, parked-journey bound), a load process lost mid-run, or a request
sent late hides load from the system, and the latencies then describe the
suite. So a run whose records show dropped arrivals, that lost a load
process, or whose send lag (actual send - planned send) p99 exceeds the
limit, is INVALID: the report says so in a banner, summary.json carries
``"valid": false`` with the reasons, the exit status is 3, and no NFR result
is presented as evidence for it.

The drain (the wait for responses still awaited when the load stopped) is
reported from the ``drain-<process>.json`` files the load processes write.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

__all__ = ["DEFAULT_MAX_SEND_LAG_MS", "judge_validity", "load_drains"]

DEFAULT_MAX_SEND_LAG_MS = 50.0
"""Project default (no seed gives one): a generator that is more than 50 ms late at p99 distorts ack percentiles
of a gateway that answers in tens of ms."""


def load_drains(run_dir: Path) -> dict[str, Any]:
    """The load processes' drain files merged: what was awaited at stop, how long the drain took, what it closed."""
    files = sorted(Path(run_dir).glob("drain-*.json"))
    merged: dict[str, Any] = {"processes": 0, "awaited_at_stop": 0, "parked_at_stop": 0, "in_flight_at_stop": 0,
                              "closed_missing": 0, "took_s": None, "limit_s": None, "received": 0, "unknown": 0,
                              "after_missing": 0}
    hosts: list[dict[str, Any]] = []
    for f in files:
        try:
            d = json.loads(f.read_text())
        except (OSError, ValueError):
            continue  # a process killed while writing it: the records still tell the outcomes
        if isinstance(d.get("host_cpu"), dict) and d["host_cpu"].get("samples"):
            hosts.append(d["host_cpu"])
        at = d.get("at_stop") or {}
        merged["processes"] += 1
        merged["awaited_at_stop"] += int(at.get("awaited", 0))
        merged["parked_at_stop"] += int(at.get("parked", 0))
        merged["in_flight_at_stop"] += int(at.get("in_flight", 0))
        merged["closed_missing"] += int(d.get("closed_missing", 0))
        for key in ("received", "unknown", "after_missing"):
            merged[key] += int((d.get("listener") or {}).get(key, 0))
        merged["took_s"] = max(float(d.get("took_s") or 0.0), merged["took_s"] or 0.0)
        merged["limit_s"] = d.get("limit_s", merged["limit_s"])
    merged["host_cpu"] = _worst_host(hosts)
    return merged


def _worst_host(hosts: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The load processes' host CPU (load/hostcpu.py), the worst figure of any: processes on one host see the same
    counters, and one starved host is enough to make the generator late. None: no process measured it."""
    if not hosts:
        return None
    keys = ("busy_pct_mean", "busy_pct_max", "steal_pct_mean", "steal_pct_max", "steal_seconds")
    worst: dict[str, Any] = {k: max(float(h.get(k) or 0.0) for h in hosts) for k in keys}
    worst["samples"] = max(int(h.get("samples") or 0) for h in hosts)
    worst["steal_warn_pct"] = hosts[0].get("steal_warn_pct")
    return worst


def _starved(host: dict[str, Any] | None) -> str:
    """Why a late generator may not be the suite's fault: its host lost CPU to the hypervisor (steal)."""
    if not host or not host.get("steal_seconds"):
        return ""
    return (f"; its host lost up to {host['steal_pct_max']:.0f} % of its CPU to the hypervisor (steal, "
            f"{host['steal_seconds']:.0f} s of the load at {host.get('steal_warn_pct') or 5:g} % or more): rerun on a "
            "host with dedicated cores")


def judge_validity(run: dict[str, Any], send_lag: dict[str, float], dropped: int,
                   host_cpu: dict[str, Any] | None = None) -> dict[str, Any]:
    """``valid``, ``invalid_reasons`` and the send-lag figures (with the limit and where it came from).

    ``host_cpu``: the load processes' host CPU (:func:`load_drains`), named in a send-lag reason when the host
    was starved of CPU."""
    declared = (run.get("validity") or {}).get("max_send_lag_ms")
    limit = float(declared) if declared is not None else DEFAULT_MAX_SEND_LAG_MS
    source = (run.get("validity") or {}).get("max_send_lag_source") or (
        "--max-send-lag" if declared is not None else "project default")
    reasons: list[str] = []
    lost = run.get("lost_workers") or []
    if lost:
        names = ", ".join(str(w.get("worker", "?")) for w in lost)
        reasons.append(f"{len(lost)} load process(es) lost mid-run ({names}): their share of the load was not sent "
                       "until Locust re-dispatched it")
    if dropped:
        reasons.append(f"the generator dropped {dropped:,} arrivals (client saturated): load the plan asked for was "
                       "never sent")
    p99 = send_lag.get("p99", math.nan)
    if p99 == p99 and p99 > limit:
        reasons.append(f"send lag p99 {p99:.1f} ms exceeds the {limit:g} ms limit: the generator, not the system, "
                       f"was late{_starved(host_cpu)}")
    lag: dict[str, Any] = {k: send_lag.get(k) for k in ("p50", "p95", "p99", "max")}
    lag.update({"count": int(send_lag.get("n", 0) or 0), "limit": limit, "limit_source": source})
    return {"valid": not reasons, "invalid_reasons": reasons, "send_lag_ms": lag, "dropped": int(dropped)}
