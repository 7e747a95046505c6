"""`dcc-capacity plan` as a user runs it: a subprocess, in each output format."""

from __future__ import annotations

import json

import pytest

from _volume_helpers import DATA

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
