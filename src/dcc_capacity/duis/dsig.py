"""XML-DSig as DUIS uses it: the algorithm URIs, the SignedInfo and KeyInfo bytes, ECDSA DER <-> raw.

Every DUIS message carries one enveloped signature of one fixed shape:
exclusive c14n of SignedInfo, ECDSA P-256 over SHA-256, one ``Reference
URI=""`` with the enveloped-signature transform, SHA-256 digest, and a key
named by ``X509IssuerSerial``. The request signer (:mod:`.signing`), the
response signer (:mod:`.responses`) and the verifier's fast path
(:mod:`.verify`) all write or match exactly these bytes, so they are spelled
once, here: a signer and the verifier that recognises its output cannot
drift apart.

The byte strings are module constants (built once at import), not functions:
signing and verifying sit on the hot path of both the load generator and the
emulator, and a constant costs nothing per message.
"""

from __future__ import annotations

import re

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from dcc_capacity.duis import NS_DS
from dcc_capacity.duis.c14n import c14n_text

__all__ = [
    "C14N_EXC",
    "C14N_INC",
    "DIGEST_SHA256",
    "ECDSA_SHA256",
    "ENVELOPED",
    "SIGNATURE_OPEN",
    "SIGNED_INFO_OPEN",
    "SIGNED_INFO_OPEN_C14N",
    "SIGNED_INFO_PATTERN",
    "SIG_ECDSA_SHA256",
    "SI_AFTER_DIGEST",
    "SI_BEFORE_DIGEST",
    "SI_CLOSE",
    "der_to_raw",
    "key_info",
    "raw_to_der",
    "signed_info_c14n",
]

C14N_EXC = "http://www.w3.org/2001/10/xml-exc-c14n#"
C14N_INC = "http://www.w3.org/TR/2001/REC-xml-c14n-20010315"
SIG_ECDSA_SHA256 = "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256"
DIGEST_SHA256 = "http://www.w3.org/2001/04/xmlenc#sha256"
ENVELOPED = "http://www.w3.org/2000/09/xmldsig#enveloped-signature"

ECDSA_SHA256 = ec.ECDSA(hashes.SHA256())
"""The ``cryptography`` algorithm object for SIG_ECDSA_SHA256 (one instance, shared: hot path)."""

SIGNATURE_OPEN = f'<ds:Signature xmlns:ds="{NS_DS}">'
"""The Signature start tag as our signers write it (the ds namespace declared on it, nowhere above)."""
SIGNED_INFO_OPEN = "<ds:SignedInfo>"
"""SignedInfo's start tag inside the document (it inherits the ds namespace from the Signature)."""
SIGNED_INFO_OPEN_C14N = f'<ds:SignedInfo xmlns:ds="{NS_DS}">'
"""SignedInfo's start tag in its exclusive-c14n form (the apex declares the visibly used ds namespace)."""
SI_CLOSE = "</ds:SignedInfo>"

_CANON_METHOD = f'<ds:CanonicalizationMethod Algorithm="{C14N_EXC}"></ds:CanonicalizationMethod>'
_SIG_METHOD = f'<ds:SignatureMethod Algorithm="{SIG_ECDSA_SHA256}"></ds:SignatureMethod>'
_REF_OPEN = '<ds:Reference URI=""><ds:Transforms>'
_TRANSFORM_ENVELOPED = f'<ds:Transform Algorithm="{ENVELOPED}"></ds:Transform>'
_TRANSFORM_EXC = f'<ds:Transform Algorithm="{C14N_EXC}"></ds:Transform>'
_DIGEST_HEAD = f'</ds:Transforms><ds:DigestMethod Algorithm="{DIGEST_SHA256}"></ds:DigestMethod><ds:DigestValue>'

SI_BEFORE_DIGEST = _CANON_METHOD + _SIG_METHOD + _REF_OPEN + _TRANSFORM_ENVELOPED + _DIGEST_HEAD
"""SignedInfo's children up to the DigestValue text: identical in the document and in the c14n form."""
SI_AFTER_DIGEST = "</ds:DigestValue></ds:Reference>"
"""SignedInfo's children after the DigestValue text (SI_CLOSE follows)."""

SIGNED_INFO_PATTERN = (
    re.escape(_CANON_METHOD + _SIG_METHOD + _REF_OPEN + _TRANSFORM_ENVELOPED)
    + f"(?:{re.escape(_TRANSFORM_EXC)})?"
    + re.escape(_DIGEST_HEAD)
    + r"(?P<dv>[A-Za-z0-9+/]{43}=)"
    + re.escape(SI_AFTER_DIGEST)
)
"""A regular expression for SignedInfo's children as any canonical DUIS signer writes them (ours, and with the
optional explicit exc-c14n transform); group ``dv`` is the DigestValue. Matching it proves the bytes are already in
exclusive-c14n form, so the verifier signs-checks ``SIGNED_INFO_OPEN_C14N + match + SI_CLOSE`` without lxml."""

_SI_BEFORE_B = SI_BEFORE_DIGEST.encode()
_SI_TAIL_B = (SI_AFTER_DIGEST + SI_CLOSE).encode()
_SI_OPEN_C14N_B = SIGNED_INFO_OPEN_C14N.encode()


def signed_info_c14n(digest_b64: str) -> bytes:
    """The exclusive-c14n bytes of our SignedInfo for a given DigestValue (what gets signed)."""
    return _SI_OPEN_C14N_B + _SI_BEFORE_B + digest_b64.encode() + _SI_TAIL_B


def key_info(issuer_name: str, serial: int) -> str:
    """The ``ds:KeyInfo`` naming a certificate by issuer DN and serial (text escaped as c14n writes it)."""
    return ("<ds:KeyInfo><ds:X509Data><ds:X509IssuerSerial>"
            f"<ds:X509IssuerName>{c14n_text(issuer_name)}</ds:X509IssuerName>"
            f"<ds:X509SerialNumber>{int(serial)}</ds:X509SerialNumber>"
            "</ds:X509IssuerSerial></ds:X509Data></ds:KeyInfo>")


def der_to_raw(der: bytes) -> bytes:
    """An ECDSA P-256 DER signature (``SEQUENCE {INTEGER r, INTEGER s}``) as XML-DSig's raw ``r || s`` (RFC 6931).

    Byte slicing instead of ``decode_dss_signature`` and two ``int.to_bytes`` (a third of the time; every request
    and response is signed); anything but the short-form DER OpenSSL writes for P-256 goes through the library.
    """
    if len(der) >= 8 and der[0] == 0x30 and der[1] == len(der) - 2 and der[2] == 0x02:
        lr = der[3]
        r = der[4:4 + lr]
        if len(der) == 6 + lr + der[5 + lr] and der[4 + lr] == 0x02 and lr <= 33:
            s = der[6 + lr:]
            if len(s) <= 33:
                return r[-32:].rjust(32, b"\0") + s[-32:].rjust(32, b"\0")
    r_int, s_int = decode_dss_signature(der)
    return r_int.to_bytes(32, "big") + s_int.to_bytes(32, "big")


def _der_int(value: bytes) -> bytes:
    value = value.lstrip(b"\0") or b"\0"
    if value[0] & 0x80:
        value = b"\0" + value
    return b"\x02" + bytes((len(value),)) + value


def raw_to_der(sig: bytes) -> bytes:
    """XML-DSig's raw ``r || s`` (64 bytes for P-256) as the DER ``cryptography`` verifies.

    Byte operations instead of two big integers and ``encode_dss_signature`` (every message is verified).
    """
    half = len(sig) // 2
    body = _der_int(sig[:half]) + _der_int(sig[half:])
    return b"\x30" + bytes((len(body),)) + body
