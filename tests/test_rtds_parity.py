"""Rendering parity with the DCC's Reference Test Data Set: our bodies have the RTDS's element structure.

For every SRV that both the RTDS (fetched at test time, never committed) and our templates have, some
rendering of ours - over installation kinds, target devices, immediate or future-dated, and the optional
template fields - has exactly the element paths (values ignored) of one of the RTDS's templates for that
SRV, and every rendering validates against the official XSD. DCC Boxed's Validate is run on every
template by test_duis_signing.py.
"""

from __future__ import annotations

import itertools
from collections import defaultdict

import pytest
from lxml import etree

from _duis_helpers import installations_for
from _emulator_helpers import PKI_DIR
from dcc_capacity.duis import NS_SR
from dcc_capacity.duis.factory import single_user_factory
from dcc_capacity.duis.pki import TestPKI
from dcc_capacity.duis.templates import available_variants, template_info
from dcc_capacity.errors import InputError
from dcc_capacity.model.catalogue import ROLES, catalogue
from dcc_capacity.model.fleet import Fleet
from peers import rtds_templates

pytestmark = [pytest.mark.peer, pytest.mark.quiet]  # Java beside a run would starve it (tests/_lanes.py)

_SR = "{" + NS_SR + "}"
FUTURE = "2030-01-15T09:00:00Z"
EXTRAS: dict[str, list[dict]] = {
    "5.2": [{"schedule_id": 7}],
    "5.3": [{"schedule_id": 7}],
    "8.11": [{"secondary_mpan": "1312345678222"}],
    "8.6": [{"secondary_mpan": "1312345678222", "export_mpan": "1312345678333"}],
    "7.16": [{"apc_input": True}],
}
"""Optional template fields to render with as well (the RTDS's 5.2/5.3 name a schedule; its 8.11 a twin meter;
its 7.16 APC input limits the input from the controlled load)."""


def paths(body: etree._Element) -> frozenset[str]:
    """Every element path under ``sr:Body`` (local names joined by '/'), values and attributes ignored."""
    out: set[str] = set()

    def walk(el: etree._Element, prefix: str) -> None:
        for child in el:
            if isinstance(child.tag, str):
                path = f"{prefix}/{etree.QName(child).localname}"
                out.add(path)
                walk(child, path)

    walk(body, "")
    return frozenset(out)


@pytest.fixture(scope="module")
def rtds() -> dict[str, dict[str, frozenset[str]]]:
    """variant -> {RTDS file name: body element paths}."""
    out: dict[str, dict[str, frozenset[str]]] = defaultdict(dict)
    for path in sorted(rtds_templates().glob("*.XML")):
        root = etree.parse(str(path)).getroot()
        variant = root.findtext(f"{_SR}Header/{_SR}ServiceReferenceVariant")
        out[variant][path.name] = paths(root.find(_SR + "Body"))
    return out


def test_the_rtds_covers_every_catalogue_srv(rtds):
    assert set(rtds) == set(catalogue())


def test_every_catalogue_srv_is_templated(rtds):
    """No catalogue SRV lacks a template, 7.16 Limit APC Level included: its RTDS templates come from DCC Boxed's
    Load Controller (90-B3-D5-1F-30-01-00-08), so the catalogue gives it role LC (catalogue_corrections.csv)."""
    assert sorted(set(catalogue()) - set(available_variants())) == []
    assert len(available_variants()) == 129
    assert catalogue()["7.16"].eligible_roles == frozenset({"LC"})
    originators = set()
    for name in rtds["7.16"]:
        root = etree.parse(str(rtds_templates() / name)).getroot()
        originators.add(root.findtext(f"{_SR}Header/{_SR}RequestID").split(":")[0])
    assert sorted(rtds["7.16"]) == ["ECS47e_7.16_APC_INPUT_SUCCESS_REQUEST_DUIS.XML",
                                    "ECS47e_7.16_APC_OUTPUT_SUCCESS_REQUEST_DUIS.XML"]
    assert originators == {"90-B3-D5-1F-30-01-00-08"}


def test_every_templated_srv_renders_the_rtds_body_structure(rtds, duis_xsd):
    fleet = Fleet(seed=1, size=10_000)
    cred = TestPKI.load_or_create(PKI_DIR).credential("90-B3-D5-1F-30-01-00-00")
    factory = single_user_factory(cred, fleet, roles=frozenset(ROLES))
    installations = installations_for(fleet, 3)
    unmatched, invalid = {}, []
    both_716: set[frozenset[str]] = set()
    for variant in available_variants():
        info = template_info(variant)
        future = (None, FUTURE) if info.srv.future_dated != "No" else (None,)
        targets = (None, *info.targets)
        ours: set[frozenset[str]] = set()
        for inst, when, target, extra in itertools.product(installations, future, targets,
                                                           [None, *EXTRAS.get(variant, [])]):
            try:
                req = factory.build(variant, inst, execution_datetime=when, target_type=target, extra=extra)
            except InputError:
                continue  # e.g. a target type this installation does not have
            root = etree.fromstring(req.body)
            if not duis_xsd.validate(root):
                invalid.append((variant, str(duis_xsd.error_log.last_error)))
            ours.add(paths(root.find(_SR + "Body")))
        theirs = rtds[variant]
        if variant == "7.16":
            both_716 = ours & set(theirs.values())
        if not ours & set(theirs.values()):
            best = min(((len(o ^ t), name, o, t) for o in ours for name, t in theirs.items()), key=lambda x: x[0])
            _, name, o, t = best
            unmatched[variant] = {"closest": name, "ours only": sorted(o - t), "RTDS only": sorted(t - o)}
    assert not invalid, invalid
    assert not unmatched, unmatched
    assert len(available_variants()) == 129  # every one matches an RTDS body structure
    assert len(both_716) == 2  # 7.16's APC output and (field apc_input) APC input: both RTDS structures


def test_dcc_boxed_validate_accepts_our_7_16_signed_with_a_key_it_has(sign_wrap, tmp_path):
    """Our 7.16 (APC output, and APC input with field apc_input) passes DCC Boxed's Validate (schema + signature).

    7.16 is the Load Controller's (LC) SRV, but DCC Boxed's tool holds no LC certificate: Validate looks the
    certificate up by the RequestID's originator, and for the keystore's LC key it answers MISSING_KEY (asserted
    below). So the request is rendered and signed here as DCC Boxed's supplier, 90-B3-D5-1F-30-01-00-00, with the
    published key of its tool (``xml-sign-90B3D51F30010000-ds``), roles widened: Validate checks the body against
    the official schema and the signature against that originator's certificate, not who may send the SRV (the
    emulator's role check is test_rtds_conformance's). The emulator accepting 7.16 from the LC's own keystore key
    is test_rtds_conformance.py too.
    """
    from _duis_helpers import DCC_BOXED_USER, dcc_boxed_factory, validate_many
    from peers import keystore_credential

    fleet = Fleet(seed=1, size=1_000)
    boxed = dcc_boxed_factory(sign_wrap, fleet)
    lc = single_user_factory(keystore_credential(), fleet, roles=frozenset({"LC"}))
    files = {}
    for name, factory, extra in (("output", boxed, None), ("input", boxed, {"apc_input": True}),
                                 ("lc", lc, None)):
        req = factory.build("7.16", 11, extra=extra,
                            originator=DCC_BOXED_USER if factory is boxed else None)
        files[name] = tmp_path / f"7.16-{name}.xml"
        files[name].write_bytes(req.body)
    assert b"InputFromControlledLoad" in files["input"].read_bytes()
    assert b"InputFromControlledLoad" not in files["output"].read_bytes()
    results = validate_many(sign_wrap, list(files.values()))
    assert results == {str(files["output"]): "SUCCESS", str(files["input"]): "SUCCESS",
                       str(files["lc"]): "MISSING_KEY"}
