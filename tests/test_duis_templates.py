"""Every templated SRV renders a request the official DUIS schema accepts, in canonical form."""

from __future__ import annotations

import pytest
from lxml import etree

from _duis_helpers import (
    SECMP0192_SCHEDULED,
    installations_for,
    secmp0192_schema,
    strip_signature,
    without_template,
)
from dcc_capacity.duis.structure import check_request
from dcc_capacity.duis.templates import available_variants, render_body, template_info
from dcc_capacity.errors import InputError
from dcc_capacity.model.catalogue import get_srv

pytest_plugins = ("_duis_fixtures",)  # its fixtures: test_pki, fleet, factory

# Table A2 journeys and meter reads (volume-model.md), SECMP0192's 5.1 with 4.3 / 4.4.3.
JOURNEY_AND_READS = {
    "12.2", "8.11", "6.4.1", "6.20.1", "6.8", "3.4", "8.7.1", "8.7.2", "8.1.1", "1.1.1", "6.21", "6.15.1",
    "1.6", "1.5", "2.1", "2.2", "4.6.1", "4.8.1", "4.14", "5.1", "4.3", "4.4.3",
}


def _requests(factory, fleet):
    """(label, SignedRequest) for every variant x installation kind x target device x future-dating."""
    for variant in available_variants():
        info = template_info(variant)
        for index in installations_for(fleet):
            inst = fleet[index]
            if inst.first_device(info.subject if info.targets == ("DCC",) else info.targets) is None:
                continue  # a gas-only SRV and an electricity-only installation
            kinds = [None] + [k for k in ("GSME", "GPF", "CHF") if inst.device(k) and k in info.targets + info.subject]
            for kind in kinds:
                yield (variant, index, kind, None), factory.build(variant, inst, target_type=kind)
            if "_future_dated.j2" in info.path.read_text():
                yield (variant, index, "fd"), factory.build(variant, inst, execution_datetime="2030-01-15T09:00:00.00Z")


def test_templates_cover_journeys_reads_and_a_bau_mix():
    variants = set(available_variants())
    assert variants >= JOURNEY_AND_READS
    assert len(variants - JOURNEY_AND_READS) >= 20
    for v in variants:
        assert get_srv(v) is not None


@pytest.mark.peer
def test_every_template_validates_against_the_official_schema(duis_xsd, factory, fleet):
    checked = 0
    for label, req in _requests(factory, fleet):
        doc = etree.fromstring(req.body)
        assert duis_xsd.validate(doc), (label, str(duis_xsd.error_log.last_error))
        assert check_request(doc) == [], label
        checked += 1
    assert checked > 300


def test_rendered_bytes_are_already_canonical(factory, fleet):
    """The signer hashes the rendered bytes: they must equal both c14n forms of the parsed document."""
    for label, req in _requests(factory, fleet):
        doc = etree.fromstring(req.body)
        doc.remove(doc[-1])
        raw = strip_signature(req.body)
        assert etree.tostring(doc, method="c14n", exclusive=True) == raw, label
        assert etree.tostring(doc, method="c14n") == raw, label


@pytest.mark.peer
def test_secmp0192_schedules_need_the_uplifted_schema(duis_xsd, sign_wrap, factory, fleet, tmp_path):
    uplifted = secmp0192_schema(sign_wrap, tmp_path)
    for scheduled in ("4.6.1", "4.8.1", "4.14", *SECMP0192_SCHEDULED):
        req = factory.build("5.1", 3, scheduled_variant=scheduled)
        doc = etree.fromstring(req.body)
        assert doc.findtext(".//{*}DSPScheduledServiceReferenceVariant") == scheduled
        assert uplifted.validate(doc), (scheduled, str(uplifted.error_log.last_error))
        # DUIS V5.1 itself only lists the pre-SECMP0192 schedulable SRVs.
        assert duis_xsd.validate(doc) == (scheduled not in SECMP0192_SCHEDULED)


def test_body_values_come_from_the_fleet(factory, fleet):
    inst = next(i for i in fleet if i.dual_fuel and i.prepay)
    req = factory.build("8.11", inst)
    doc = etree.fromstring(req.body)
    assert req.target == inst.chf.eui
    assert doc.findtext(".//{*}DeviceID") == inst.esme.eui
    assert doc.findtext(".//{*}InstallCode") == inst.esme.install_code
    assert doc.findtext(".//{*}ImportMPxN") == inst.mpan
    gas = etree.fromstring(factory.build("6.20.1", inst, target_type="GSME").body)
    assert gas.findtext(".//{*}ImportMPRN") == inst.mprn
    assert etree.fromstring(factory.build("1.6", inst).body).find(".//{*}Prepayment") is not None
    pre = etree.fromstring(factory.build("12.2", inst).body)
    assert pre.findtext(".//{*}RequestID").split(":")[1] == "90-B3-D5-1F-30-00-00-02"
    assert pre.findtext(".//{*}DeviceType") == "ESME"


def test_text_is_escaped_as_canonical_xml_escapes_it():
    body = render_body("3.1", {"execution_datetime": None, "message": 'Tom & "Jerry" <3'})
    assert "<sr:SupplierMessage>Tom &amp; \"Jerry\" &lt;3</sr:SupplierMessage>" in body


def test_missing_template_field_is_a_clear_input_error():
    with pytest.raises(InputError, match=r"3\.1\.xml\.j2: template field missing: 'message' is undefined"):
        render_body("3.1", {"execution_datetime": None})


def test_unknown_or_untemplated_variant_is_an_input_error(monkeypatch, tmp_path):
    with pytest.raises(InputError, match="'9.99' is not a DUIS SRV variant"):
        template_info("9.99")
    assert template_info("7.16").srv.eligible_roles == {"LC"}  # every catalogue SRV has a template
    without_template(monkeypatch, tmp_path, "7.16")
    with pytest.raises(InputError, match="no template for SRV 7.16"):
        template_info("7.16")


def test_template_fields_are_listed():
    info = template_info("8.11")
    assert {"inst", "join_time", "execution_datetime"} <= info.fields
    assert info.targets == ("CHF",)
