"""Structural rules for a DUIS request, for when no official schema is configured.

The project ships no copy of the DCC's XSD (it is theirs). Without one, a
receiver still has to reject what a real User Gateway would: wrong root or
namespace, Header children out of order, a malformed RequestID, a
CommandVariant the SRV does not allow, a Body that is not exactly one element
of the right name, a missing or misplaced Signature. ``check_request`` lists
every such problem (empty list = structurally fine); the emulator calls it on
the parsed root, and the schema, when configured, checks the rest.
"""

from __future__ import annotations

import csv
import re
from functools import lru_cache

from lxml import etree

from dcc_capacity.duis import NS_DS, NS_SR
from dcc_capacity.model.catalogue import DCC_EUI, get_srv
from dcc_capacity.paths import data_dir

__all__ = ["HEADER_ORDER", "MAX_REQUEST_BYTES", "body_element", "check_request", "check_request_bytes", "parse_request"]

_SR = f"{{{NS_SR}}}"
_DS = f"{{{NS_DS}}}"
_EUI = r"[0-9A-Fa-f]{2}(?:-[0-9A-Fa-f]{2}){7}"
_REQUEST_ID = re.compile(rf"^({_EUI}):({_EUI}):(0|[1-9][0-9]{{0,19}})$")
_DECIMAL = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)$")
HEADER_ORDER = ("RequestID", "FirstInSequence", "PrecedingServiceRequestID", "CommandVariant",
                "ServiceReference", "ServiceReferenceVariant")
_REQUIRED_HEADER = ("RequestID", "CommandVariant", "ServiceReference", "ServiceReferenceVariant")
MAX_REQUEST_BYTES = 1 << 20
"""Larger bodies are refused before parsing (the largest DUIS request, a full tariff, is ~60 KB)."""


@lru_cache(maxsize=1)
def _body_elements() -> dict[str, str]:
    path = data_dir("srv_templates") / "body_elements.csv"
    with path.open(newline="", encoding="utf-8") as fh:
        return {r["service_reference_variant"]: r["body_element"] for r in csv.DictReader(fh)}


def body_element(variant: str) -> str | None:
    """The ``sr:Body`` child element name of ``variant`` (e.g. 4.6.1 -> RetrieveImportDailyReadLog)."""
    return _body_elements().get(variant)


def _local(el: etree._Element) -> str:
    return etree.QName(el).localname


def _elements(parent: etree._Element) -> list[etree._Element]:
    return [c for c in parent if isinstance(c.tag, str)]


def _header_problems(header: etree._Element) -> tuple[list[str], dict[str, str]]:
    problems: list[str] = []
    values: dict[str, str] = {}
    children = _elements(header)
    names = [_local(c) for c in children]
    for c in children:
        if c.tag != _SR + _local(c):
            problems.append(f"Header: {c.tag} is not in the ServiceUserGateway namespace")
        elif _local(c) not in HEADER_ORDER:
            problems.append(f"Header: unexpected element {_local(c)}")
        values.setdefault(_local(c), (c.text or "").strip())
    for name in _REQUIRED_HEADER:
        if names.count(name) != 1:
            problems.append(f"Header: needs exactly one {name} (found {names.count(name)})")
    known = [n for n in names if n in HEADER_ORDER]
    if known != sorted(known, key=HEADER_ORDER.index):
        problems.append(f"Header: children out of order ({', '.join(names)}; expected {', '.join(HEADER_ORDER)})")
    return problems, values


def check_request(root: etree._Element, *, require_signature: bool = True) -> list[str]:
    """Every structural problem of a parsed DUIS request (``[]`` when there is none)."""
    if root.tag != _SR + "Request":
        return [f"root element is {root.tag}, expected {{{NS_SR}}}Request"]
    problems: list[str] = []
    version = root.get("schemaVersion")
    if version is None or not _DECIMAL.match(version.strip()):
        problems.append(f"Request: schemaVersion must be a decimal (got {version!r})")
    children = _elements(root)
    names = [c.tag for c in children]
    expected = [_SR + "Header", _SR + "Body"] + ([_DS + "Signature"] if require_signature else [])
    if names[:2] != expected[:2] or (require_signature and names[2:] != expected[2:]) \
            or (not require_signature and names[2:] not in ([], [_DS + "Signature"])):
        problems.append("Request: children must be sr:Header, sr:Body, ds:Signature (last), got "
                        + ", ".join(etree.QName(n).localname for n in names))
    header = next((c for c in children if c.tag == _SR + "Header"), None)
    body = next((c for c in children if c.tag == _SR + "Body"), None)
    values: dict[str, str] = {}
    if header is not None:
        header_problems, values = _header_problems(header)
        problems += header_problems

    rid = values.get("RequestID", "")
    match = _REQUEST_ID.match(rid)
    if "RequestID" in values and (match is None or int(match.group(3)) >= 1 << 64):
        problems.append(f"RequestID {rid!r} is not originator-EUI:target-EUI:counter (counter < 2^64)")
    variant = values.get("ServiceReferenceVariant", "")
    srv = get_srv(variant) if variant else None
    if variant and srv is None:
        problems.append(f"ServiceReferenceVariant {variant!r} is not a DUIS SRV variant")
    cv_text = values.get("CommandVariant", "")
    cv = int(cv_text) if cv_text.isdigit() else None
    if cv_text and (cv is None or not 1 <= cv <= 8):
        problems.append(f"CommandVariant {cv_text!r} must be 1..8")
        cv = None
    if srv is not None:
        if values.get("ServiceReference") and values["ServiceReference"] != srv.reference:
            problems.append(f"ServiceReference {values['ServiceReference']} does not match variant {variant} "
                            f"(expected {srv.reference})")
        allowed = {8} if srv.non_device else ({4, 5, 6, 7} if srv.critical else {1, 2, 3})
        if cv is not None and cv not in allowed:
            problems.append(f"CommandVariant {cv} is not valid for SRV {variant} "
                            f"(allowed: {', '.join(map(str, sorted(allowed)))})")
        if srv.non_device and match is not None and match.group(2).upper() != DCC_EUI:
            problems.append(f"non-device SRV {variant} must target the DCC ({DCC_EUI}), not {match.group(2)}")

    if body is not None:
        inner = _elements(body)
        if len(inner) != 1:
            problems.append(f"Body must hold exactly one element (found {len(inner)})")
        else:
            el = inner[0]
            want = "SignedPreCommand" if cv in (5, 6, 7) else (body_element(variant) if srv else None)
            if el.tag != _SR + _local(el):
                problems.append(f"Body: {el.tag} is not in the ServiceUserGateway namespace")
            elif want is not None and _local(el) != want:
                problems.append(f"Body element {_local(el)} does not match SRV {variant} CV {cv} (expected {want})")

    if require_signature and children and children[-1].tag == _DS + "Signature":
        sig_children = [_local(c) for c in _elements(children[-1])]
        if sig_children[:2] != ["SignedInfo", "SignatureValue"]:
            problems.append("Signature: needs ds:SignedInfo then ds:SignatureValue")
    return problems


def parse_request(data: bytes, *, max_bytes: int = MAX_REQUEST_BYTES) -> etree._Element:
    """Parse untrusted request bytes: no DTDs, no entity expansion, no network, bounded size.

    Raises ``ValueError`` with a one-line reason when the bytes are not an acceptable XML document.
    """
    if len(data) > max_bytes:
        raise ValueError(f"request of {len(data)} bytes exceeds the {max_bytes}-byte limit")
    if b"<!DOCTYPE" in data or b"<!ENTITY" in data:
        raise ValueError("DTDs and entity declarations are not allowed in DUIS requests")
    parser = etree.XMLParser(resolve_entities=False, no_network=True, dtd_validation=False, load_dtd=False,
                             huge_tree=False, remove_comments=False)
    try:
        return etree.fromstring(data, parser=parser)
    except etree.XMLSyntaxError as exc:
        raise ValueError(f"not well-formed XML: {exc}") from None


def check_request_bytes(data: bytes, schema: etree.XMLSchema | None = None) -> list[str]:
    """Every problem of a request as received: well-formedness, structure, then the schema when one is given."""
    try:
        root = parse_request(data)
    except ValueError as exc:
        return [str(exc)]
    problems = check_request(root)
    if schema is not None and not schema.validate(root):
        problems += [f"schema: line {e.line}: {e.message}" for e in schema.error_log]
    return problems
