"""Property: the two-pass grouped percentiles equal numpy's on any data, in any batching."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from dcc_capacity.report.quantiles import GroupedQuantiles, bin_index

values = st.lists(st.one_of(st.floats(-5, 1e8, allow_nan=False), st.just(float("nan"))), min_size=1, max_size=300)


@settings(max_examples=150, deadline=None)
@given(vals=values, seed=st.integers(0, 2**16), batch=st.integers(1, 50))
def test_grouped_quantiles_equal_numpy(vals, seed, batch):
    v = np.array(vals, dtype=float)
    codes = np.random.default_rng(seed).integers(0, 3, len(v))
    gq = GroupedQuantiles()
    for s in range(0, len(v), batch):
        gq.add(codes[s:s + batch], v[s:s + batch])
    gq.plan()
    for s in range(0, len(v), batch):
        gq.collect(codes[s:s + batch], v[s:s + batch])
    got = gq.result()
    for g in range(3):
        x = v[(codes == g) & ~np.isnan(v)]
        if not len(x):
            assert g not in got
            continue
        assert got[g]["n"] == len(x)
        for name, q in (("p50", 50), ("p95", 95), ("p99", 99), ("max", 100)):
            assert got[g][name] == np.percentile(x, q)


def test_bins_are_monotonic():
    v = np.concatenate([[-1.0, 0.0], np.geomspace(1e-3, 1e9, 10_000)])
    assert (np.diff(bin_index(v)) >= 0).all()
