"""Fast verification of DUIS enveloped XML signatures.

Every DUIS message carries one enveloped XML-DSig: exclusive c14n of SignedInfo,
ECDSA P-256 over SHA-256 with the raw ``r || s`` signature value, one
``Reference URI=""`` (enveloped-signature transform; the document digest is over
inclusive C14N 1.0 unless an exc-c14n transform is listed, as the XML-DSig spec
says and DCC Boxed's signer relies on) and a key named only by ``X509IssuerSerial``
(:mod:`dcc_capacity.duis.dsig` spells that shape). Knowing that exact shape lets us
skip a general XML-DSig engine (signxml verifies ~1,300 docs/s on one core)
and do only the work that matters: two canonicalisations, one SHA-256 and one
ECDSA verification (~9,600/s). Anything outside that shape is refused rather
than interpreted, which is also the safer reading of untrusted input.

The hardened parser (:mod:`.xmlsafe`) and the trust store (:mod:`.truststore`)
live in their own modules; their names are re-exported here, where the
verifier's callers have always found them.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from lxml import etree

from dcc_capacity.duis import NS_DS
from dcc_capacity.duis.dsig import (
    C14N_EXC,
    C14N_INC,
    DIGEST_SHA256,
    ECDSA_SHA256,
    ENVELOPED,
    SI_CLOSE,
    SIG_ECDSA_SHA256,
    SIGNATURE_OPEN,
    SIGNED_INFO_OPEN,
    SIGNED_INFO_OPEN_C14N,
    SIGNED_INFO_PATTERN,
    raw_to_der,
)
from dcc_capacity.duis.truststore import Signer, TrustStore, cert_eui, normalise_dn
from dcc_capacity.duis.xmlsafe import XmlError, parse_hardened
from dcc_capacity.errors import ProtocolError

__all__ = [
    "C14N_EXC",
    "DIGEST_SHA256",
    "SIG_ECDSA_SHA256",
    "SignatureError",
    "Signer",
    "TrustStore",
    "UnknownSignerError",
    "Verified",
    "XmlError",
    "canonical_signer",
    "cert_eui",
    "match_canonical_signature",
    "normalise_dn",
    "parse_hardened",
    "verify_enveloped",
]

_DS = "{" + NS_DS + "}"
_EC_NS = "{" + C14N_EXC + "}InclusiveNamespaces"


class SignatureError(ProtocolError):
    """The enveloped signature is missing, malformed or does not verify."""


class UnknownSignerError(SignatureError):
    """The signature names (issuer, serial) of a certificate the trust store does not hold."""


# --- verification -------------------------------------------------------------------------


@dataclass(slots=True)
class Verified:
    """A verified document: its root (Signature still in place) and who signed it."""

    root: etree._Element
    signer: Signer


_SIGNATURE, _SIGNED_INFO, _REFERENCE, _TRANSFORM = (_DS + n for n in ("Signature", "SignedInfo", "Reference",
                                                                      "Transform"))


def _need(els: dict[str, etree._Element], tag: str) -> etree._Element:
    el = els.get(_DS + tag)
    if el is None:
        raise SignatureError(f"Signature: missing ds:{tag}")
    return el


def _b64(text: str | None, what: str) -> bytes:
    try:
        return base64.b64decode("".join((text or "").split()), validate=True)
    except (binascii.Error, ValueError):
        raise SignatureError(f"{what} is not base64") from None


def _algorithm(els: dict[str, etree._Element], tag: str, expected: str) -> etree._Element:
    el = _need(els, tag)
    if el.get("Algorithm") != expected:
        raise SignatureError(f"unsupported {tag} {el.get('Algorithm')!r} (DUIS uses {expected})")
    return el


def _c14n(node: etree._Element, prefixes: list[str] | None) -> bytes:
    return etree.tostring(node, method="c14n", exclusive=True, with_comments=False,
                          inclusive_ns_prefixes=prefixes or None)


def _prefixes(method: etree._Element) -> list[str] | None:
    inc = method.find(_EC_NS)
    return inc.get("PrefixList", "").split() if inc is not None else None


# --- the canonical fast path ------------------------------------------------------------
# A Signature exactly as this project's signers (and any signer writing canonical XML) produce it. Matching
# this pattern *proves* the SignedInfo bytes are already in exclusive-c14n form (every element, attribute and
# algorithm is fixed; DigestValue and SignatureValue are plain base64), so c14n(SignedInfo) is these bytes with
# the ds namespace declared on it.
_SIG_OPEN_FAST = SIGNATURE_OPEN.encode()
_FAST = re.compile((
    re.escape(SIGNATURE_OPEN + SIGNED_INFO_OPEN) + f"(?P<si>{SIGNED_INFO_PATTERN}){re.escape(SI_CLOSE)}"
    r"<ds:SignatureValue>(?P<sv>[A-Za-z0-9+/]{86}==)</ds:SignatureValue>"
    r"<ds:KeyInfo><ds:X509Data><ds:X509IssuerSerial><ds:X509IssuerName>(?P<iss>[^<&\r]{1,1024})</ds:X509IssuerName>"
    r"<ds:X509SerialNumber>(?P<ser>[0-9]{1,60})</ds:X509SerialNumber></ds:X509IssuerSerial></ds:X509Data>"
    r"</ds:KeyInfo></ds:Signature>(?P<tail>[ \t\n]*)"
    r"</(?P<close>[A-Za-z_][A-Za-z0-9_.-]*(?::[A-Za-z_][A-Za-z0-9_.-]*)?)>[ \t\n]*\Z").encode())
_SI_OPEN_C14N = SIGNED_INFO_OPEN_C14N.encode()
_SI_CLOSE = SI_CLOSE.encode()
_DECL_UTF8 = b'<?xml version="1.0" encoding="UTF-8"?>'


def _verify_canonical(raw: bytes, root: etree._Element, trust: TrustStore) -> Verified | None:
    """Verify without re-serialising, for documents already in canonical form; None means "use the slow path".

    The enveloped-signature transform leaves "the document without its
    Signature", canonicalised. When the raw bytes of the root element with
    the Signature's byte span cut out hash to the signed DigestValue, those
    bytes *are* the canonical form the signer digested (SHA-256 second-preimage
    resistance), so re-canonicalising them would only reproduce them. That
    needs the bytes outside the root to carry no meaning: nothing before it but
    a UTF-8 XML declaration and whitespace, only whitespace after it. A
    mismatch proves nothing (the document may just not be canonical, like
    DCC Boxed's), so the caller falls back to lxml c14n.
    """
    start = raw.rfind(_SIG_OPEN_FAST)
    if start < 0:
        return None
    m = _FAST.match(raw, start)
    if m is None or root.tag.rpartition("}")[2] != m["close"].rpartition(b":")[2].decode():
        return None
    head = raw[:raw.index(b"<")] if raw[:1] != b"<" else b""
    begin = len(head)
    if head.strip():
        return None
    if raw.startswith(_DECL_UTF8, begin):
        begin += len(_DECL_UTF8)
        begin += len(raw[begin:begin + 64]) - len(raw[begin:begin + 64].lstrip(b" \t\r\n"))
    if raw[begin:begin + 2] in (b"<?", b"<!"):
        return None
    sig = root[-1] if len(root) else None
    if sig is None or sig.tag != _SIGNATURE:
        return None
    signer = canonical_signer(raw, m, begin, trust)
    return None if signer is None else Verified(root=root, signer=signer)


def match_canonical_signature(raw: bytes, start: int) -> re.Match[bytes] | None:
    """The canonical-shape ``ds:Signature`` starting at ``start`` and closing the root element, or None."""
    return _FAST.match(raw, start)


def canonical_signer(raw: bytes, m: re.Match[bytes], begin: int, trust: TrustStore) -> Signer | None:
    """Verify a canonical-shape Signature (``m``, from :func:`match_canonical_signature`) over ``raw[begin:]``.

    ``begin`` is where the root element starts; the caller has proved that
    nothing before it but an XML declaration and whitespace, and nothing
    after it but whitespace, carries meaning. Returns the Signer; None when
    the raw-byte digest does not match (the document may simply not be
    canonical: use the full check); raises on an unknown signer or a
    signature value that does not verify.
    """
    start = m.start()
    end = m.end("close") + 1
    doc = hashlib.sha256(raw[begin:start])
    doc.update(raw[m.start("tail"):end])
    if not hmac.compare_digest(base64.b64encode(doc.digest()), m["dv"]):
        return None
    signer = trust.lookup(m["iss"].decode("utf-8", "replace").strip(), int(m["ser"]))
    if signer is None:
        raise UnknownSignerError(f"no trusted certificate for issuer {m['iss'].decode(errors='replace')!r} "
                                 f"serial {m['ser'].decode()}")
    der = raw_to_der(binascii.a2b_base64(m["sv"]))
    try:
        signer.public_key.verify(der, _SI_OPEN_C14N + m["si"] + _SI_CLOSE, ECDSA_SHA256)
    except InvalidSignature:
        raise SignatureError("signature value does not verify with the named certificate") from None
    return signer


def verify_enveloped(data: bytes | etree._Element, trust: TrustStore, *, raw: bytes | None = None) -> Verified:
    """Check the enveloped ECDSA-SHA256 signature of a DUIS message against ``trust``.

    ``data`` is the raw bytes (parsed with :func:`parse_hardened`) or an already
    parsed root; pass the bytes it was parsed from as ``raw`` to allow the
    canonical fast path. Raises :class:`XmlError`, :class:`SignatureError` or
    :class:`UnknownSignerError`; returns the root and the :class:`Signer`.
    """
    if not isinstance(data, etree._Element):
        raw = bytes(data)
    root = data if isinstance(data, etree._Element) else parse_hardened(data)
    if raw is not None:
        fast = _verify_canonical(raw, root, trust)
        if fast is not None:
            return fast
    sig = root[-1] if len(root) else None
    if sig is None or sig.tag != _SIGNATURE:
        raise SignatureError("no enveloped ds:Signature as the last child of the root")
    # One pass over the Signature subtree instead of a dozen find() calls (this is the hot path).
    els: dict[str, etree._Element] = {}
    transforms: list[etree._Element] = []
    references = 0
    for el in sig.iter():
        tag = el.tag
        if tag == _TRANSFORM:
            transforms.append(el)
        elif tag == _REFERENCE:
            references += 1
            els.setdefault(tag, el)
        elif isinstance(tag, str):
            els.setdefault(tag, el)
    signed_info = els.get(_SIGNED_INFO)
    ref = els.get(_REFERENCE)
    if signed_info is None or signed_info.getparent() is not sig:
        raise SignatureError("Signature: missing ds:SignedInfo")
    c14n_method = _algorithm(els, "CanonicalizationMethod", C14N_EXC)
    _algorithm(els, "SignatureMethod", SIG_ECDSA_SHA256)
    if references != 1 or ref is None or ref.get("URI") != "" or ref.getparent() is not signed_info:
        raise SignatureError('expected exactly one ds:Reference with URI=""')
    algs = [t.get("Algorithm") for t in transforms]
    if ENVELOPED not in algs or any(a not in (ENVELOPED, C14N_EXC, C14N_INC) for a in algs):
        raise SignatureError(f"unsupported transforms {algs} (DUIS uses enveloped-signature)")
    # XML-DSig: a node-set left by the transforms is turned into octets with *inclusive* C14N 1.0
    # unless an explicit exc-c14n transform says otherwise (DCC Boxed's signer relies on this).
    exclusive = C14N_EXC in algs
    ref_prefixes: list[str] | None = None
    for t in transforms:
        if t.get("Algorithm") == C14N_EXC:
            ref_prefixes = _prefixes(t)
    _algorithm(els, "DigestMethod", DIGEST_SHA256)
    digest = _b64(_need(els, "DigestValue").text, "DigestValue")
    sig_value = _b64(_need(els, "SignatureValue").text, "SignatureValue")
    if _DS + "X509IssuerSerial" not in els:
        raise SignatureError("KeyInfo: no ds:X509Data/ds:X509IssuerSerial")
    issuer = (_need(els, "X509IssuerName").text or "").strip()
    serial_text = (_need(els, "X509SerialNumber").text or "").strip()
    if not serial_text.isdigit() or len(serial_text) > 60:
        raise SignatureError("X509SerialNumber is not a decimal integer")
    signer = trust.lookup(issuer, int(serial_text))
    if signer is None:
        raise UnknownSignerError(f"no trusted certificate for issuer {issuer!r} serial {serial_text}")

    si_bytes = _c14n(signed_info, _prefixes(c14n_method))
    # Enveloped-signature transform: the document without the Signature element (its tail stays).
    index = root.index(sig)
    tail = sig.tail
    prev = sig.getprevious()
    root.remove(sig)
    if tail:
        if prev is not None:
            prev.tail = (prev.tail or "") + tail
        else:
            root.text = (root.text or "") + tail
    try:
        doc_bytes = etree.tostring(root.getroottree(), method="c14n", exclusive=exclusive, with_comments=False,
                                   inclusive_ns_prefixes=(ref_prefixes or None) if exclusive else None)
    finally:
        if tail:
            if prev is not None:
                prev.tail = prev.tail[: len(prev.tail) - len(tail)] or None
            else:
                root.text = root.text[: len(root.text) - len(tail)] or None
        root.insert(index, sig)
        sig.tail = tail
    if not hmac.compare_digest(hashlib.sha256(doc_bytes).digest(), digest):
        raise SignatureError("digest mismatch: the document was changed after signing")
    # Raw r || s as XML-DSig says; tolerate DER-encoded values from non-conforming signers.
    der = raw_to_der(sig_value) if len(sig_value) == 64 else sig_value
    try:
        signer.public_key.verify(der, si_bytes, ECDSA_SHA256)
    except InvalidSignature:
        raise SignatureError("signature value does not verify with the named certificate") from None
    except ValueError as exc:
        raise SignatureError(f"malformed signature value ({exc})") from None
    return Verified(root=root, signer=signer)
