"""Signatures from the fast path verify with signxml and with DCC Boxed's own Validate tool."""

from __future__ import annotations

import base64
import hashlib

import pytest
from lxml import etree
from signxml.exceptions import InvalidSignature, SignXMLException

from _duis_helpers import (
    DCC_BOXED_USER,
    dcc_boxed_factory,
    installations_for,
    signxml_verify,
    strip_signature,
    validate_many,
)
from dcc_capacity.duis.factory import RequestFactory
from dcc_capacity.duis.pki import Credential
from dcc_capacity.duis.signing import Signer, signed_info_c14n
from dcc_capacity.duis.structure import check_request
from dcc_capacity.duis.templates import available_variants
from dcc_capacity.errors import InputError

pytest_plugins = ("_duis_fixtures",)  # its fixtures: test_pki, fleet, factory


def _cert(factory, req) -> bytes:
    return factory.signers[req.originator].credential.cert_pem()


def test_every_variant_verifies_with_signxml(factory, fleet):
    for variant in available_variants():
        for index in installations_for(fleet, 1):
            req = factory.build(variant, index)
            signxml_verify(req.body, _cert(factory, req))


def test_signature_fields_match_the_shape_and_the_signer(factory):
    req = factory.build("4.6.1", 5)
    doc = etree.fromstring(req.body)
    ns = {"ds": "http://www.w3.org/2000/09/xmldsig#"}
    sig = doc[-1]
    cred = factory.signers[req.originator].credential
    assert sig.tag == "{http://www.w3.org/2000/09/xmldsig#}Signature"
    assert sig.find("ds:SignedInfo/ds:CanonicalizationMethod", ns).get("Algorithm").endswith("xml-exc-c14n#")
    assert sig.find("ds:SignedInfo/ds:SignatureMethod", ns).get("Algorithm").endswith("ecdsa-sha256")
    assert sig.findtext(".//ds:X509IssuerName", namespaces=ns) == cred.issuer_name
    assert sig.findtext(".//ds:X509SerialNumber", namespaces=ns) == str(cred.serial)
    assert sig.find(".//ds:X509Certificate", ns) is None
    digest = base64.b64encode(hashlib.sha256(strip_signature(req.body)).digest()).decode()
    assert sig.findtext(".//ds:DigestValue", namespaces=ns) == digest
    assert len(base64.b64decode(sig.findtext("ds:SignatureValue", namespaces=ns))) == 64  # raw r || s
    signed_info = etree.tostring(sig.find("ds:SignedInfo", ns), method="c14n", exclusive=True)
    assert signed_info == signed_info_c14n(digest)


@pytest.mark.parametrize("where", ["header", "body", "signed_info", "signature_value"])
def test_a_changed_byte_fails_verification(factory, where):
    req = factory.build("8.11", 9)
    body = req.body
    anchor = {"header": b"<sr:ServiceReference>", "body": b"<sr:InstallCode>",
              "signed_info": b"<ds:DigestValue>", "signature_value": b"<ds:SignatureValue>"}[where]
    pos = body.index(anchor) + len(anchor) + 2
    flipped = body[:pos] + (b"A" if body[pos:pos + 1] != b"A" else b"B") + body[pos + 1:]
    signxml_verify(body, _cert(factory, req))
    with pytest.raises(SignXMLException):  # InvalidSignature, InvalidDigest or InvalidInput, by where the flip landed
        signxml_verify(flipped, _cert(factory, req))


def test_the_wrong_certificate_fails_verification(factory, test_pki):
    req = factory.build("4.6.1", 2)
    other = next(c for c in test_pki.users() if c.eui != req.originator)
    with pytest.raises(InvalidSignature):
        signxml_verify(req.body, other.cert_pem())


def test_signed_precommand_keeps_the_request_id_and_verifies(factory):
    first = factory.build("6.15.1", 4)
    assert first.command_variant == 4 and first.path == "/api/v1/serviceT"
    second = factory.signed_precommand(first.request_id, "6.15.1", b"\xdd\x00\x01gbcs-precommand")
    assert second.request_id == first.request_id and second.command_variant == 5
    assert second.path == "/api/v1/serviceS"
    doc = etree.fromstring(second.body)
    assert doc.find(".//{*}Body/{*}SignedPreCommand/{*}GBCSPayload") is not None
    assert check_request(doc) == []
    signxml_verify(second.body, _cert(factory, second))
    with pytest.raises(InputError, match="CommandVariant 5, 6 or 7"):
        factory.signed_precommand(first.request_id, "6.15.1", b"x", command_variant=1)


def test_signer_refuses_non_p256_keys_and_unrendered_input(test_pki):
    from cryptography.hazmat.primitives.asymmetric import ec

    cred = test_pki.users()[0]
    with pytest.raises(InputError, match="P-256"):
        Signer(Credential(key=ec.generate_private_key(ec.SECP384R1()), cert=cred.cert, eui=cred.eui))
    with pytest.raises(ValueError, match="must end with"):
        Signer(cred).sign(b"<x/>")


def test_request_factory_is_reexported_from_signing():
    from dcc_capacity.duis.factory import RequestFactory as Direct

    assert RequestFactory is Direct


@pytest.mark.peer
def test_dcc_boxed_validate_accepts_every_variant_signed_with_its_test_key(sign_wrap, duis_xsd, fleet, tmp_path):
    """Every variant as DCC Boxed's supplier 90-B3-D5-1F-30-01-00-00 (its tool's published key, roles widened),
    7.16 too: its sender, the Load Controller, has no key in DCC Boxed's tool (test_rtds_parity.py says why)."""
    boxed = dcc_boxed_factory(sign_wrap, fleet)
    paths = []
    for variant in available_variants():
        req = boxed.build(variant, 11, originator=DCC_BOXED_USER)
        assert duis_xsd.validate(etree.fromstring(req.body)), variant
        path = tmp_path / f"{variant}.xml"
        path.write_bytes(req.body)
        paths.append(path)
    crit = boxed.build("1.6", 12, originator=DCC_BOXED_USER)
    cv5 = boxed.signed_precommand(crit.request_id, "1.6", b"\xdd\x00\x00\x00\x00\x00\x00\x01precommand")
    (tmp_path / "cv5.xml").write_bytes(cv5.body)
    tampered = req.body.replace(b"90-B3", b"90-B4", 1)  # the RequestID originator: digest no longer matches
    (tmp_path / "tampered.xml").write_bytes(tampered)
    results = validate_many(sign_wrap, [*paths, tmp_path / "cv5.xml", tmp_path / "tampered.xml"])
    assert results.pop(str(tmp_path / "tampered.xml")) != "SUCCESS"
    assert set(results.values()) == {"SUCCESS"}, {p: r for p, r in results.items() if r != "SUCCESS"}
    # ...and the plain one-document tool, as a user would run it.
    assert sign_wrap.validate(paths[0].read_bytes()).returncode == 0
    assert sign_wrap.validate(tampered).returncode != 0
