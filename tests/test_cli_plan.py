"""`dcc-capacity plan` as a user runs it: a subprocess, in each output format."""

from __future__ import annotations

import io
import json
import re

import pandas as pd
import pytest

from _volume_helpers import DATA, SLOTS, SPS
from dcc_capacity.model.volume import ROWS, load_plan

EXAMPLE = str(DATA / "worked-example.yaml")


def test_json_is_the_contract_object(run_cli):
    result = run_cli("plan", EXAMPLE, "--format", "json")
    assert result.returncode == 0, result.stderr
    got = json.loads(result.stdout)
    assert list(got) == ["profile", "capability", "A5", "A6", "A7"]
    expected = json.loads((DATA / "worked-example.expected.json").read_text())
    for table in ("A5", "A6", "A7"):
        for row, cells in expected[table].items():
            for slot, value in cells.items():
                assert got[table][row][slot] == pytest.approx(value, rel=1e-9, abs=1e-12)


def test_csv_is_one_tidy_table(run_cli):
    result = run_cli("plan", EXAMPLE, "--format", "csv")
    assert result.returncode == 0, result.stderr
    frame = pd.read_csv(io.StringIO(result.stdout))
    assert list(frame.columns) == ["table", "row", "slot", "hours", "value", "unit"]
    assert len(frame) == (len(ROWS) + 2 * len(SPS)) * len(SLOTS)
    assert set(frame.loc[frame.table == "A7", "unit"]) == {"SRV/s"}
    assert set(frame.loc[frame.table != "A7", "unit"]) == {"SRVs/day"}
    expected = json.loads((DATA / "worked-example.expected.json").read_text())
    for record in frame.itertuples():
        assert record.value == pytest.approx(expected[record.table][record.row][record.slot], rel=1e-9, abs=1e-12)
    assert frame.set_index(["table", "row", "slot"]).loc[("A5", "bau", "evening"), "hours"] == "19:00-24:00"


def test_table_is_for_people(run_cli):
    result = run_cli("plan", EXAMPLE)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    for heading in ("Table A5", "Table A6", "Table A7", "SRVs/day", "SRV/s", "00:00-07:00", "07:00-19:00",
                    "19:00-24:00"):
        assert heading in out
    assert "36,000,000" in out  # A5 meter_reads night, thousands separators
    assert "1,108.23" in out  # A7 DSP night
    # Default per-row rates: DSP in its busiest A7 slot (night here): meter_reads 36M/25200 * 3 * 0.2.
    rates = out[out.index("Target rates"):]
    assert "for DSP in 00:00-07:00 (night)" in rates
    assert re.search(r"^meter_reads\s+857\.14\s", rates, re.M)
    assert re.search(r"^total \(= A7\)\s+1,108\.23\s", rates, re.M)


def test_table_rates_for_a_chosen_sp_and_slot(run_cli):
    result = run_cli("plan", EXAMPLE, "--sp", "CP", "--slot", "evening")
    assert result.returncode == 0, result.stderr
    rates = result.stdout[result.stdout.index("Target rates"):]
    plan = load_plan(EXAMPLE)
    expected = plan.row_rates("CP", "evening")
    assert f"{expected['s1_migration_credit']:,.2f}" in rates
    assert "meter_reads" not in rates  # the CP carries only migrations
    assert "for CP in 19:00-24:00 (evening)" in rates


@pytest.mark.parametrize("args", [["--format", "xml"], ["--sp", "XSP"], ["--slot", "noon"], []])
def test_bad_options_exit_2(run_cli, args):
    result = run_cli("plan", *(args or ["/nonexistent/profile.yaml"]), *([EXAMPLE] if args else []))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr


def test_a_bare_name_finds_the_shipped_example(run_cli, tmp_path):
    result = run_cli("plan", "foc", "--format", "json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["capability"] == "FOC"
    missing = run_cli("plan", "xoc", cwd=tmp_path)
    assert missing.returncode == 2 and "xoc: no such file" in missing.stderr
