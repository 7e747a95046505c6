"""The canonical fast path (duis/canonical.py) reads requests exactly as lxml does, or hands them to lxml.

It may only ever decline: every document it accepts must be one the full
path parses, with the same header texts and Body element, and the gateway's
verdict on it must be the full path's verdict.
"""

from __future__ import annotations

import random

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dcc_capacity.duis import NS_DS, NS_SR
from dcc_capacity.duis.canonical import recognise_request
from dcc_capacity.duis.verify import TrustStore, XmlError, canonical_signer, parse_hardened
from dcc_capacity.emulator import codes as C
from dcc_capacity.emulator.config import EmulatorConfig
from dcc_capacity.emulator.gateway import Accepted, Gateway

pytest_plugins = ("_duis_fixtures",)

SR, DS = "{" + NS_SR + "}", "{" + NS_DS + "}"
VARIANTS = ["4.1.1", "1.1.1", "12.2", "8.11", "5.1", "6.15.1", "2.2", "3.1", "4.6.1"]
SPECIALS = [b"<", b">", b"&", b"]]>", b"\r", b"\x01", b"\xff", b"\xef\xbf\xbe", b" ", b'"', b"/", b"=", b"sr:",
            b"<!--x-->", b"&amp;", b"&#xD;", b"&foo;", b"<sr:X>", b"</sr:X>", b"<sr:X/>", b" a=\"1\"", b"\t", b"\n",
            b"<!DOCTYPE d>", b"<?pi?>", b"xmlns:sr=\"urn:x\" ", b"\xc3\xa9", b"\xed\xa0\x80"]


def _lxml_view(raw: bytes) -> dict | None:
    """What the full path reads, or None when it is not a request it would read at all."""
    root = parse_hardened(raw)
    if root.tag != SR + "Request" or len(root) != 3:
        return None
    header, body, sig = root
    if header.tag != SR + "Header" or body.tag != SR + "Body" or sig.tag != DS + "Signature":
        return None
    kids = [el for el in body if isinstance(el.tag, str)]
    fields = {el.tag.rpartition("}")[2]: (el.text or "").strip() for el in header}
    return {"request_id": fields.get("RequestID"), "command_variant": fields.get("CommandVariant"),
            "service_reference": fields.get("ServiceReference"), "variant": fields.get("ServiceReferenceVariant"),
            "schema_version": root.get("schemaVersion"), "header": [el.tag for el in header],
            "body_element": kids[0].tag.rpartition("}")[2] if len(kids) == 1 else None}


def _fast_view(fast) -> dict:  # noqa: ANN001 - CanonicalRequest
    return {"request_id": fast.request_id, "command_variant": fast.command_variant,
            "service_reference": fast.service_reference, "variant": fast.variant,
            "schema_version": fast.schema_version,
            "header": [SR + n for n in ("RequestID", "CommandVariant", "ServiceReference", "ServiceReferenceVariant")],
            "body_element": fast.body_element}


def test_the_suites_own_requests_take_the_fast_path_and_verify(factory, test_pki):
    trust = TrustStore.from_pki(test_pki)
    for i, variant in enumerate(VARIANTS):
        req = factory.build(variant, i)
        fast = recognise_request(req.body)
        assert fast is not None, variant
        assert _fast_view(fast) == _lxml_view(req.body)
        signer = canonical_signer(req.body, fast.signature, fast.begin, trust)
        assert signer is not None and signer.eui == req.originator


def test_mutants_are_declined_or_read_exactly_as_lxml_reads_them(factory, test_pki):
    rng = random.Random(20261125)
    docs = [factory.build(v, i).body for i, v in enumerate(VARIANTS)]
    cfg = EmulatorConfig.model_validate({"counter_window_s": 60})
    fast_gw, tree_gw = Gateway(cfg, TrustStore.from_pki(test_pki)), Gateway(cfg, TrustStore.from_pki(test_pki))
    recognised = verified = 0
    for n in range(3000):
        doc = docs[n % len(docs)]
        i, j = sorted(rng.randrange(len(doc)) for _ in range(2))
        j = min(j, i + rng.choice((0, 1, 3, 20)))
        kind = rng.randrange(5)
        if kind == 0:
            mutant = doc[:i] + rng.choice(SPECIALS) + doc[j:]
        elif kind == 1:
            mutant = doc[:i] + doc[j:]
        elif kind == 2:
            mutant = doc[:j] + doc[i:j] + doc[j:]
        else:   # mutate inside the Body only, where free text lives
            a = doc.index(b"<sr:Body>") + 9
            b = doc.index(b"</sr:Body>")
            k = rng.randrange(a, b)
            mutant = doc[:k] + rng.choice(SPECIALS) + doc[k:]
        if kind == 4:   # outside the root: the signature still holds, so the later checks are compared too
            bare = doc.split(b"\n", 1)[1]
            mutant = rng.choice((bare, b" \n" + bare, doc + b"\n\t ", doc.replace(b"?>\n", b"?>", 1), b"\n" + doc))
        fast = recognise_request(mutant)
        if fast is None:
            continue
        recognised += 1
        try:
            view = _lxml_view(mutant)
        except XmlError as exc:
            raise AssertionError(f"fast path accepted what lxml refuses ({exc}): {mutant!r}") from None
        assert view == _fast_view(fast), mutant
        a_fast, a_tree = fast_gw.check("S", mutant), tree_gw._check_tree("S", mutant, None)
        assert type(a_fast) is type(a_tree) and getattr(a_fast, "code", None) == getattr(a_tree, "code", None)
        if isinstance(a_tree, Accepted) or a_tree.code not in (C.E_MALFORMED, C.E_SCHEMA, C.E_SIGNATURE,
                                                              C.E_UNKNOWN_CERT):
            verified += 1   # decided after the signature verified: replay, URL, CV, or accepted
    # the mutations reach the fast path (and some keep a valid signature), so the comparison means something
    assert recognised >= 300 and verified >= 50, (recognised, verified)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(message=st.text(min_size=1, max_size=40))
def test_any_body_text_is_read_as_lxml_reads_it(factory, test_pki, message):
    """Whatever text the Body carries (markup characters, CR, non-ASCII, even characters XML forbids)."""
    try:
        req = factory.build("3.1", 5, extra={"message": message})
    except ValueError:
        return  # the renderer refuses characters XML cannot carry
    fast = recognise_request(req.body)
    if fast is not None:
        assert _fast_view(fast) == _lxml_view(req.body)
        assert canonical_signer(req.body, fast.signature, fast.begin, TrustStore.from_pki(test_pki)) is not None
    xml_chars = all(c in "\t\n\r" or " " <= c < "\ufffe" or c > "\uffff" for c in message)
    assert fast is not None or not xml_chars or "]]>" in message, "declined a request it should read"


def test_checks_that_read_the_body_work_on_fast_path_requests(factory, test_pki):
    """5.1 (SECMP0192), CV 4 -> CV 5 (the Pre-Command) and 8.11 (join time) parse the body on demand."""
    gw = Gateway(EmulatorConfig.model_validate({"counter_window_s": 60}), TrustStore.from_pki(test_pki))
    schedule = factory.build("5.1", 1, scheduled_variant="4.3")  # the fleet's devices are SMETS2
    assert recognise_request(schedule.body) is not None
    refused = gw.check("D", schedule.body)
    assert getattr(refused, "code", None) == C.E_SECMP0192, refused

    cv4 = factory.build("7.1", 2)
    first = gw.check("T", cv4.body)
    assert isinstance(first, Accepted) and first.cv == 4 and first.body_el is None  # no tree was built
    payload = gw.precommand_for(first.request_id, "7.1")
    cv5 = factory.signed_precommand(first.request_id, "7.1", payload)
    assert recognise_request(cv5.body) is not None
    second = gw.check("S", cv5.body)
    assert isinstance(second, Accepted) and second.precommand == payload
    assert getattr(gw.check("S", cv5.body), "code", None) == C.E_PRECOMMAND  # a Pre-Command is used once

    join = factory.build("8.11", 3, extra={"join_time": 300})
    accepted = gw.check("S", join.body)
    assert isinstance(accepted, Accepted) and accepted.body_el is None
    assert accepted.body.findtext(f"{SR}AddDeviceToCHFWhitelist/{SR}JoinTimePeriod") == "300"
