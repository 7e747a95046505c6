"""Recognise a DUIS request that is already in canonical form, without building a tree.

Why: the emulator's request path is measured against raw ECDSA verification
(issue #5), and for the requests this suite's own signer writes, an lxml
parse plus the element walk the checks need cost ~25 us of ~250 us. Those
requests are written in canonical form with a fixed shape (docs/duis.md), so
a strict byte-level grammar can prove them well-formed and hand over the
header fields directly.

The grammar is a small subset of XML, chosen so that every document it
accepts is well-formed XML that lxml parses to the same element names and
texts:

* an optional ``<?xml version="1.0" encoding="UTF-8"?>`` at offset 0, then
  spaces, tabs or newlines;
* ``<sr:Request xmlns:sr="..." schemaVersion="N[.N]">`` (nothing else on the root);
* ``sr:Header`` with exactly ``RequestID``, ``CommandVariant``,
  ``ServiceReference``, ``ServiceReferenceVariant`` in that order, each with
  text from a narrow character class (hex digits, ``-``, ``:``, ``.``);
* ``sr:Body`` holding exactly one element tree of ``sr:``-prefixed elements
  with at most one plain attribute each, text without markup other than the ``&amp;``, ``&lt;``,
  ``&gt;``, ``&#xD;`` references C14N writes, nesting at most 64 deep,
  every start tag closed in order;
* the canonical-shape ``ds:Signature`` of :mod:`dcc_capacity.duis.verify`,
  then ``</sr:Request>`` and trailing whitespace;
* anywhere: valid UTF-8, no control characters (CR included, which a parser
  would normalise), no ``U+FFFE``/``U+FFFF``, no ``]]>``.

Anything else - a comment, a second attribute, a DTD, a self-closing tag, a
namespace declared elsewhere, whitespace in the header - is not refused here
but handed back (``None``) to the full lxml path, which decides. So this is a
fast path, never a second opinion: it accepts only documents the full path
accepts and reads them the same way (tests compare both on mutated documents).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from dcc_capacity.duis import NS_SR
from dcc_capacity.duis.verify import match_canonical_signature

__all__ = ["CanonicalRequest", "recognise_request"]

_NAME = rb"[A-Za-z_][A-Za-z0-9_.\-]{0,200}"
_ATTR = rb'(?: (?!xml)[A-Za-z_][A-Za-z0-9_.\-]{0,200}="[^<&"\t\n]{0,1000}")?'
"""At most one plain attribute (templates write ``index="1"``): one cannot be a duplicate; ``xml*`` names excluded."""
_HEAD = re.compile(
    rb'(?:<\?xml version="1\.0" encoding="UTF-8"\?>)?[ \t\n]*'
    rb'(?P<root><sr:Request xmlns:sr="' + re.escape(NS_SR.encode()) + rb'" '
    rb'schemaVersion="(?P<ver>[0-9]{1,6}(?:\.[0-9]{1,6})?)">)'
    rb"<sr:Header><sr:RequestID>(?P<rid>[0-9A-Fa-f:\-]{1,120})</sr:RequestID>"
    rb"<sr:CommandVariant>(?P<cv>[0-9]{1,3})</sr:CommandVariant>"
    rb"<sr:ServiceReference>(?P<ref>[0-9.]{1,16})</sr:ServiceReference>"
    rb"<sr:ServiceReferenceVariant>(?P<var>[0-9.]{1,16})</sr:ServiceReferenceVariant></sr:Header>"
    rb"<sr:Body><sr:(?P<top>" + _NAME + rb")" + _ATTR + rb">"
)
_BODY_END = b"</sr:Body><ds:Signature "
_LEXICAL = re.compile(rb"(?:<sr:" + _NAME + _ATTR + rb">|</sr:" + _NAME + rb">|[^<&]++|&(?:amp|lt|gt|#xD);)*+")
_TAG = re.compile(rb"<(/?)sr:(" + _NAME + rb")" + _ATTR + rb">")
_CONTROL = bytes([*range(0x00, 0x09), 0x0B, 0x0C, 0x0D, *range(0x0E, 0x20)])
"""C0 controls XML forbids, and CR (a parser normalises it, so the raw bytes would not be the canonical ones)."""
_CLOSE_ROOT = b"sr:Request"
_MAX_DEPTH = 64


@dataclass(slots=True)
class CanonicalRequest:
    """What the gateway needs from a recognised request: header texts, the body's element, the Signature match."""

    request_id: str
    command_variant: str
    service_reference: str
    variant: str
    schema_version: str
    body_element: str
    """Local name of the one element in ``sr:Body``."""
    begin: int
    """Offset of ``<sr:Request``: the canonical document starts here."""
    signature: re.Match[bytes]


def recognise_request(raw: bytes) -> CanonicalRequest | None:
    """The request's fields when ``raw`` is in the canonical grammar (module docstring); None means "parse it"."""
    h = _HEAD.match(raw)
    if h is None:
        return None
    body_start = h.start("top") - 4
    body_end = raw.find(_BODY_END, body_start)
    if body_end < 0:
        return None
    sig = match_canonical_signature(raw, body_end + 10)
    if sig is None or sig["close"] != _CLOSE_ROOT:
        return None
    # Only the body's text and the issuer name are free text; the two patterns pin down every other byte.
    body = raw[body_start:body_end]
    if not (_chars_ok(body) and _chars_ok(sig["iss"])):
        return None
    if _LEXICAL.fullmatch(body) is None or not _balanced(body):
        return None
    return CanonicalRequest(
        request_id=h["rid"].decode("ascii"), command_variant=h["cv"].decode("ascii"),
        service_reference=h["ref"].decode("ascii"), variant=h["var"].decode("ascii"),
        schema_version=h["ver"].decode("ascii"), body_element=h["top"].decode("ascii"),
        begin=h.start("root"), signature=sig)


def _chars_ok(text: bytes) -> bool:
    """XML 1.0 characters only (valid UTF-8, no C0 controls but tab and LF, no U+FFFE/U+FFFF), no CR, no ``]]>``."""
    if len(text.translate(None, _CONTROL)) != len(text) or b"]]>" in text:
        return False
    if text.isascii():
        return True
    try:
        decoded = text.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return "\ufffe" not in decoded and "\uffff" not in decoded


def _balanced(body: bytes) -> bool:
    """Every start tag closed in order, one top element spanning the whole body, bounded depth."""
    tags = _TAG.findall(body)
    if len(tags) == 2:  # the common empty SRV element: <sr:X></sr:X> (or text inside)
        (s0, n0), (s1, n1) = tags
        return not s0 and s1 == b"/" and n0 == n1 and body.endswith(b"</sr:%s>" % n1)
    stack: list[bytes] = []
    last = len(tags) - 1
    for i, (slash, name) in enumerate(tags):
        if not slash:
            if len(stack) >= _MAX_DEPTH:
                return False
            stack.append(name)
        elif not stack or stack.pop() != name:
            return False
        elif not stack and i != last:
            return False  # a second top-level element
    return not stack and body.endswith(b"</sr:%s>" % tags[last][1])
