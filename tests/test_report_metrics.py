"""The report's numbers against an independent computation from the same records."""

from __future__ import annotations

import numpy as np
import pytest

from _report_helpers import START, make_records, make_run
from dcc_capacity.report.inputs import iter_record_batches, load_run
from dcc_capacity.report.metrics import NEEDED_COLUMNS, compute_metrics
from dcc_capacity.report.quantiles import GroupedQuantiles


def _metrics(run_dir, batch_rows=1_000_000):
    folder = load_run(run_dir)
    return compute_metrics(lambda: iter_record_batches(run_dir, NEEDED_COLUMNS, batch_rows), folder.start_epoch,
                           folder.run.get("slot"), folder.duration_s)


def test_percentiles_of_a_hand_worked_example():
    gq = GroupedQuantiles()
    codes, values = np.array([0, 0, 0, 0, 1]), np.array([4.0, 1.0, 3.0, 2.0, np.nan])
    gq.add(codes, values)
    gq.plan()
    gq.collect(codes, values)
    r = gq.result()[0]
    # numpy "linear": position q*(n-1) over 1,2,3,4
    assert (r["p50"], r["max"], r["n"]) == (2.5, 4.0, 4)
    assert (r["p95"], r["p99"]) == pytest.approx((3.85, 3.97), abs=1e-12)
    assert [r["p95"], r["p99"]] == [np.percentile([1, 2, 3, 4], 95), np.percentile([1, 2, 3, 4], 99)]
    assert 1 not in gq.result()  # all-NaN group has no percentiles


@pytest.mark.parametrize("batch_rows", [1_000, 1_000_000])
def test_percentiles_match_numpy_per_srv_class_and_overall(tmp_path, batch_rows):
    recs = make_records(n=30_000, seed=3)
    m = _metrics(make_run(tmp_path / "run", recs), batch_rows)
    for dim, col in (("srv", "srv_variant"), ("class", "user_class")):
        table = m.groups[dim]
        for label, grp in recs.groupby(col):
            for short in ("ack", "trt"):
                x = grp[f"{short}_ms"].dropna().to_numpy()
                expect = [np.percentile(x, q) for q in (50, 95, 99, 100)]
                got = [table.loc[label, f"{short}_{q}"] for q in ("p50", "p95", "p99", "max")]
                assert got == pytest.approx(expect, rel=1e-12, abs=1e-9)
    overall = m.groups["all"].loc["all"]
    assert overall["ack_p99"] == pytest.approx(recs["ack_ms"].quantile(0.99), rel=1e-12)
    assert overall["trt_n"] == recs["trt_ms"].notna().sum()
    assert m.groups["slot"].loc["night", "ack_p95"] == pytest.approx(recs["ack_ms"].quantile(0.95), rel=1e-12)


def test_counts_by_outcome_and_code(tmp_path):
    recs = make_records(n=10_000, error_share=0.05)
    m = _metrics(make_run(tmp_path / "run", recs), 1_500)
    overall = m.groups["all"].loc["all"]
    for outcome, n in recs["outcome"].value_counts().items():
        assert overall[outcome] == n
    assert overall["failures"] == (recs["outcome"] != "ok").sum()  # no pending rows here: every non-ok fails
    codes = m.codes.set_index(["outcome", "ack_code", "response_code"])["count"]
    expect = recs.astype({"ack_code": str}).groupby(["outcome", "ack_code", "response_code"]).size()
    assert codes.sort_index().to_dict() == expect.sort_index().to_dict()
    srv = m.groups["srv"]
    assert srv["requests"].to_dict() == recs["srv_variant"].value_counts().to_dict()


def test_offered_and_achieved_rates_per_class(tmp_path):
    recs = make_records(n=12_000, duration_s=600)
    m = _metrics(make_run(tmp_path / "run", recs, duration_s=600))
    assert m.bucket_s == 3  # 600 s / 240 buckets, rounded up
    reads = m.rates[m.rates.user_class == "reads"].set_index("t_s")
    sub = recs[recs.user_class == "reads"]
    bucket = ((sub["intended_ts"] - START) // 3 * 3).astype(int)
    expect = bucket.value_counts() / 3
    assert reads["offered_rate"].loc[expect.index].to_numpy() == pytest.approx(expect.to_numpy())
    ok = sub[sub.outcome == "ok"]
    done = ((ok["callback_ts"].fillna(ok["ack_ts"]) - START) // 3 * 3).astype(int).value_counts() / 3
    assert reads["achieved_rate"].loc[done.index].to_numpy() == pytest.approx(done.to_numpy())
    assert reads["offered_rate"].sum() * 3 == pytest.approx(len(sub))


def test_a_run_longer_than_declared_merges_time_buckets(tmp_path):
    recs = make_records(n=6_000, duration_s=3_000)  # 5x the declared 600 s
    m = _metrics(make_run(tmp_path / "run", recs, duration_s=600))
    assert m.bucket_s == 6  # 3 s buckets merged two by two: at most 600 buckets
    assert m.rates["t_s"].nunique() <= 600
    assert m.rates["offered_rate"].sum() * m.bucket_s == len(recs)
    assert len(m.latency_time) == m.rates["t_s"].nunique()
