"""Structural request rules used when no official schema is configured."""

from __future__ import annotations

import pytest
from lxml import etree

from dcc_capacity.duis.structure import body_element, check_request

pytest_plugins = ("_duis_fixtures",)


def _doc(factory, variant="4.6.1", index=1, **kw) -> etree._Element:
    return etree.fromstring(factory.build(variant, index, **kw).body)


def test_good_requests_have_no_problems(factory):
    for variant in ("4.6.1", "12.2", "6.15.1", "5.1", "2.2"):
        assert check_request(_doc(factory, variant)) == []


def test_body_element_names_cover_the_catalogue():
    assert body_element("4.6.1") == "RetrieveImportDailyReadLog"
    assert body_element("8.1.1") == "CommissionDeviceSynchroniseClock"
    assert body_element("9.9.9") is None


def _mutate(factory, fn):
    doc = _doc(factory)
    fn(doc)
    return check_request(doc)


def _h(doc, name):
    return doc.find(f"{{*}}Header/{{*}}{name}")


@pytest.mark.parametrize(("mutation", "expected"), [
    (lambda d: _h(d, "RequestID").__setattr__("text", "90-B3:00-DB:1"), "is not originator-EUI:target-EUI:counter"),
    (lambda d: _h(d, "RequestID").__setattr__("text", _h(d, "RequestID").text.rsplit(":", 1)[0] + ":" + str(2**64)),
     "counter < 2^64"),
    (lambda d: _h(d, "CommandVariant").__setattr__("text", "4"), "CommandVariant 4 is not valid for SRV 4.6.1"),
    (lambda d: _h(d, "CommandVariant").__setattr__("text", "9"), "CommandVariant '9' must be 1..8"),
    (lambda d: _h(d, "ServiceReference").__setattr__("text", "4.8"), "ServiceReference 4.8 does not match"),
    (lambda d: _h(d, "ServiceReferenceVariant").__setattr__("text", "4.6.9"), "'4.6.9' is not a DUIS SRV variant"),
    (lambda d: d[0].insert(0, d[0][3]), "Header: children out of order"),
    (lambda d: d[0].remove(d[0][1]), "needs exactly one CommandVariant"),
    (lambda d: d[1].append(etree.Element("{http://www.dccinterface.co.uk/ServiceUserGateway}Extra")),
     "Body must hold exactly one element (found 2)"),
    (lambda d: d.remove(d[2]), "children must be sr:Header, sr:Body, ds:Signature"),
    (lambda d: d.insert(1, d[2]), "children must be sr:Header, sr:Body, ds:Signature"),
    (lambda d: d[1][0].__setattr__("tag", "{http://www.dccinterface.co.uk/ServiceUserGateway}ReadInventory"),
     "Body element ReadInventory does not match SRV 4.6.1"),
    (lambda d: d.attrib.pop("schemaVersion"), "schemaVersion must be a decimal"),
])
def test_each_broken_rule_is_reported(factory, mutation, expected):
    problems = _mutate(factory, mutation)
    assert any(expected in p for p in problems), problems


def test_non_device_requests_must_target_the_dcc(factory):
    doc = _doc(factory, "12.2")
    rid = _h(doc, "RequestID")
    rid.text = rid.text.replace("90-B3-D5-1F-30-00-00-02", "00-DB-00-A0-00-00-00-01")
    assert any("must target the DCC" in p for p in check_request(doc))


def test_wrong_root_is_one_problem():
    assert check_request(etree.fromstring(b"<Request/>")) == [
        "root element is Request, expected {http://www.dccinterface.co.uk/ServiceUserGateway}Request"]


def test_signed_precommand_body_is_accepted_only_for_cv_5_to_7(factory):
    first = factory.build("1.6", 2)
    cv5 = etree.fromstring(factory.signed_precommand(first.request_id, "1.6", b"payload").body)
    assert check_request(cv5) == []
    _h(cv5, "CommandVariant").text = "4"
    assert any("Body element SignedPreCommand does not match" in p for p in check_request(cv5))


def test_unsigned_requests_pass_when_the_signature_is_not_required(factory):
    doc = _doc(factory)
    doc.remove(doc[2])
    assert check_request(doc, require_signature=False) == []
    assert check_request(doc) != []


def test_bytes_as_received_are_parsed_safely(factory):
    from dcc_capacity.duis.structure import check_request_bytes

    good = factory.build("4.6.1", 1).body
    assert check_request_bytes(good) == []
    assert check_request_bytes(b"<sr:Request")[0].startswith("not well-formed XML")
    bomb = b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa">]><x>&a;</x>'
    assert check_request_bytes(bomb) == ["DTDs and entity declarations are not allowed in DUIS requests"]
    assert "exceeds" in check_request_bytes(b" " * (2 << 20))[0]


@pytest.mark.peer
def test_schema_problems_are_added_when_a_schema_is_given(factory, duis_xsd):
    from dcc_capacity.duis.structure import check_request_bytes

    good = factory.build("8.11", 1).body
    assert check_request_bytes(good, duis_xsd) == []
    bad = good.replace(b"<sr:JoinTimePeriod>90<", b"<sr:JoinTimePeriod>9000<")
    problems = check_request_bytes(bad, duis_xsd)
    assert problems and all(p.startswith("schema: line") for p in problems)
