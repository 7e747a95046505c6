"""The fleet is reproducible, cheap, realistic enough, and maps EUIs back to installations."""

from __future__ import annotations

import random
import time

import pytest

from dcc_capacity.duis.factory import RequestFactory
from dcc_capacity.duis.mix import BauMix
from dcc_capacity.duis.pki import DEFAULT_USERS, TestPKI
from dcc_capacity.duis.requestid import RequestIdAllocator
from dcc_capacity.model.fleet import Fleet, mpan_check_digit

pytest_plugins = ("_duis_fixtures",)


def test_same_seed_same_fleet_other_seed_other_fleet():
    a, b, c = Fleet(seed=9, size=5000), Fleet(seed=9, size=5000), Fleet(seed=10, size=5000)
    for i in (0, 1, 77, 4999):
        assert a[i] == b[i]
    assert a[77].esme.eui != c[77].esme.eui
    assert a[77].mpan != c[77].mpan


def test_mix_of_meter_types_follows_the_shares():
    fleet = Fleet(seed=1, size=4000, smets1_share=0.3, prepay_share=0.2, dual_fuel_share=0.6)
    insts = list(fleet)
    assert abs(sum(i.smets == 1 for i in insts) / 4000 - 0.3) < 0.03
    assert abs(sum(i.prepay for i in insts) / 4000 - 0.2) < 0.03
    assert abs(sum(i.dual_fuel for i in insts) / 4000 - 0.6) < 0.03
    dual = next(i for i in insts if i.dual_fuel)
    assert {d.type for d in dual.devices()} == {"CHF", "ESME", "GSME", "GPF", "PPMID"}
    single = next(i for i in insts if not i.dual_fuel)
    assert single.gsme is None and single.mprn is None and single.first_device(("GSME", "ESME")) is single.esme


def test_identifiers_are_well_formed_and_unique():
    fleet = Fleet(seed=5, size=3000)
    euis = [d.eui for i in fleet for d in i.devices()]
    assert len(euis) == len(set(euis))
    mpans = [i.mpan for i in fleet]
    assert len(set(mpans)) == 3000
    for inst in list(fleet)[:200]:
        assert len(inst.mpan) == 13 and inst.mpan.isdigit()
        assert int(inst.mpan[-1]) == mpan_check_digit(inst.mpan[:12])
        assert 6 <= len(inst.postcode) <= 8
        assert len(inst.supplier_name) <= 15 and all(" " <= c <= "~" for c in inst.supplier_name)
        assert len(inst.esme.install_code) == 32
        assert inst.supplier.roles & {"IS", "GS"}


def test_mpan_check_digit_known_value():
    # Worked example of the MRA algorithm: 12 digits 1 0 0 0 ... weighted by 3, 5, 7, 13, ...
    assert mpan_check_digit("100000000000") == 3
    assert mpan_check_digit("000000000001") == 43 % 11 % 10


def test_find_maps_an_eui_back_to_its_installation():
    fleet = Fleet(seed=12, size=10_000)
    inst = fleet[8123]
    for dev in inst.devices():
        assert fleet.find(dev.eui) == (inst, dev)
    assert fleet.find("90-B3-D5-1F-30-01-00-00") is None
    assert Fleet(seed=13, size=10_000).find(inst.esme.eui) is None
    assert fleet.find("not-an-eui") is None


def test_owners_are_the_default_service_users():
    inst = Fleet(seed=1, size=10)[3]
    users = {u.eui for u in DEFAULT_USERS}
    assert {u.eui for u in inst.users()} <= users
    assert inst.user_for(frozenset({"ED"})) == inst.network_operator
    assert inst.user_for(frozenset({"OU"})) == inst.other_user


def test_a_ten_million_fleet_is_cheap():
    t0 = time.perf_counter()
    fleet = Fleet(seed=1, size=10_000_000)
    rng = random.Random(1)
    for _ in range(2000):
        fleet.sample(rng)
    assert time.perf_counter() - t0 < 2.0


def test_bad_fleet_settings_are_input_errors():
    from dcc_capacity.errors import InputError

    with pytest.raises(InputError, match="fleet.prepay_share: must be between 0 and 1"):
        Fleet(prepay_share=1.5)
    with pytest.raises(InputError, match="fleet.size"):
        Fleet(size=0)


def _sequence(pki: TestPKI, seed: int) -> list[tuple[str, str, str, str]]:
    fleet = Fleet(seed=seed, size=1000)
    factory = RequestFactory.from_pki(pki, fleet, allocator=RequestIdAllocator(slot=3, clock=lambda: 10**18),
                                      clock=lambda: 1_790_000_000.0)
    rng = random.Random(seed)
    pick = BauMix.load().picker(rng)
    out = []
    for _ in range(300):
        req = factory.build(pick(), fleet.sample(rng))
        digest = req.body.split(b"<ds:DigestValue>")[1].split(b"<")[0].decode()
        out.append((req.request_id, req.originator, req.target, digest))
    return out


def test_same_seed_same_request_sequence(test_pki):
    first = _sequence(test_pki, 21)
    assert first == _sequence(test_pki, 21)  # same IDs, targets, senders and signed content
    assert first != _sequence(test_pki, 22)
