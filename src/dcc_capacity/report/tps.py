"""MP192-SA5's TPS from a run's records: (request + response + alert) / s, per time bucket.

Why: SECMP0192's S1SP capacity is stated as "450 TPS (transaction per second), where TPS = (Request +
Response + Alert) / second" (PIA, MP192-SA5), not as SRV/s, so an NFR on it needs that count. From the
report's over-time series (:class:`~.metrics.Metrics` ``rates``): requests are the SRVs offered in each
bucket, responses the SRVs completed in it; the SECMP0192 executions (``Metrics.scheduled``, kept out of the
SRV rates: :mod:`.scheduled`) add a request at each one's due time and a response at each arrival; alerts
(which the records count but do not time) are spread evenly over the run. The busiest bucket is ``tps_max``,
the run's average ``tps_mean``; the bucket is the report's (1 s for runs up to 4 minutes, longer for longer
runs), which the table states.
"""

from __future__ import annotations

import pandas as pd

from dcc_capacity.report.metrics import Metrics

__all__ = ["tps_groups"]


def tps_groups(metrics: Metrics, alerts: int, duration_s: float | None) -> dict[str, pd.DataFrame]:
    """``{"tps": one row "all"}`` with tps_max, tps_mean, tps_n (buckets) and bucket_s; empty without rates."""
    rates = metrics.rates
    sched = getattr(metrics, "scheduled", None)
    parts = []
    if rates is not None and not rates.empty:
        per_bucket = rates.groupby("t_s")[["offered_rate", "achieved_rate"]].sum()
        parts.append(per_bucket["offered_rate"] + per_bucket["achieved_rate"])
    if sched is not None and len(sched.rates):
        s = sched.rates.set_index("t_s")
        parts.append(s["requests_rate"] + s["responses_rate"])
    if not parts:
        return {}
    alerts_per_s = alerts / duration_s if duration_s and alerts else 0.0
    tps = parts[0] if len(parts) == 1 else parts[0].add(parts[1], fill_value=0.0)
    tps = tps + alerts_per_s
    row = {"tps_max": float(tps.max()), "tps_mean": float(tps.mean()), "tps_n": int(len(tps)),
           "bucket_s": float(metrics.bucket_s), "alerts_per_s": alerts_per_s}
    return {"tps": pd.DataFrame([row], index=pd.Index(["all"], name="tps"))}
