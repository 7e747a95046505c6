"""The emulator classifies SMETS1/SMETS2 devices of the project's Fleet (fleet_seed/fleet_size)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from dcc_capacity.emulator.config import EmulatorConfig
from dcc_capacity.emulator.devices import DeviceRule
from dcc_capacity.model.fleet import Fleet


def test_fleet_devices_classified_by_their_installation() -> None:
    fleet = Fleet(7, 500)
    rule = DeviceRule(EmulatorConfig(fleet_seed=7, fleet_size=500, devices={"smets1_prefixes": []}))
    gens = {1: 0, 2: 0}
    for inst in fleet:
        for dev in inst.devices():
            assert rule.is_smets1(dev.eui) == (inst.smets == 1), (dev.eui, inst.smets)
            assert rule.is_smets1(dev.eui.lower()) == (inst.smets == 1)   # cached, case-insensitive
        gens[inst.smets] += 1
    assert gens[1] > 50 and gens[2] > 200                                # both generations were exercised
    assert rule.is_smets1("00-DB-12-34-56-78-90-A0") is False            # not in the fleet: SMETS2
    assert rule.is_smets1("not-an-eui") is False


def test_registry_and_prefix_rules_win_over_the_fleet() -> None:
    fleet = Fleet(7, 200)
    s2 = next(d.eui for inst in fleet if inst.smets == 2 for d in inst.devices())
    rule = DeviceRule(EmulatorConfig(fleet_seed=7, fleet_size=200, devices={"smets1": [s2]}))
    assert rule.is_smets1(s2) is True
    without = DeviceRule(EmulatorConfig(devices={"smets1_prefixes": []}))
    assert without.fleet is None and without.is_smets1(s2) is False


def test_fleet_fields_go_together() -> None:
    with pytest.raises(ValidationError, match="fleet_seed and fleet_size"):
        EmulatorConfig(fleet_seed=1)
    with pytest.raises(ValidationError):
        EmulatorConfig(fleet_seed=1, fleet_size=0)
