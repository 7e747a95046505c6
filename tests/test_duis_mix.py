"""The BAU mix file: every row templated, weights positive, sources stated, picks follow weights."""

from __future__ import annotations

import random

import pytest

from _duis_helpers import without_template
from dcc_capacity.duis.mix import BauMix
from dcc_capacity.errors import InputError

METER_READS = {"4.6.1", "4.8.1", "4.14"}


def test_default_mix_is_bau_only_and_documented():
    mix = BauMix.load()
    assert len(mix.variants) >= 20
    assert not METER_READS & set(mix.variants)  # meter reads are their own Table A2 row
    assert all(mix.sources)
    assert abs(sum(mix.shares().values()) - 1) < 1e-12
    assert any("SECMP0192" in s for s in mix.sources) and any("assumption" in s for s in mix.sources)


def test_picks_follow_the_weights():
    mix = BauMix.load()
    pick = mix.picker(random.Random(4))
    n = 40_000
    counts: dict[str, int] = {}
    for _ in range(n):
        v = pick()
        counts[v] = counts.get(v, 0) + 1
    for variant, share in mix.shares().items():
        assert abs(counts.get(variant, 0) / n - share) < 0.01, variant


@pytest.mark.parametrize(("row", "message"), [
    ("7.16,5,x", "bau.csv:2: variant: '7.16' has no SRV template"),
    ("4.1.1,0,x", "bau.csv:2: weight: must be a number > 0"),
    ("4.1.1,abc,x", "bau.csv:2: weight: must be a number > 0"),
])
def test_bad_rows_name_file_line_and_field(monkeypatch, tmp_path, row, message):
    without_template(monkeypatch, tmp_path, "7.16")  # a user deleted its template
    path = tmp_path / "bau.csv"
    path.write_text("variant,weight,source\n" + row + "\n")
    with pytest.raises(InputError) as err:
        BauMix.load(path)
    assert message in str(err.value)
