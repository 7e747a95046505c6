"""The certificates DUIS signatures are checked against, keyed as ``ds:X509IssuerSerial`` names them.

A signature names its key only by issuer DN and serial number, and signers
spell DNs differently (RDN order, spaces, OID names), so lookups go through a
spelling-independent DN key (:func:`normalise_dn`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import lru_cache

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from dcc_capacity.duis.pki import eui_from_cert

__all__ = ["Signer", "TrustStore", "cert_eui", "normalise_dn"]


# --- distinguished names -----------------------------------------------------------------

_DN_ALIASES = {
    "2.5.4.3": "CN", "2.5.4.11": "OU", "2.5.4.10": "O", "2.5.4.6": "C", "2.5.4.7": "L", "2.5.4.8": "ST",
    "S": "ST", "EMAILADDRESS": "E", "1.2.840.113549.1.9.1": "E", "2.5.4.45": "X500UNIQUEIDENTIFIER",
    "UID": "UID", "0.9.2342.19200300.100.1.1": "UID", "SERIALNUMBER": "SERIALNUMBER", "2.5.4.5": "SERIALNUMBER",
}


def _split_unescaped(text: str, seps: str) -> list[str]:
    parts: list[str] = []
    buf: list[str] = []
    i, quoted = 0, False
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text):
            buf.append(text[i:i + 2])
            i += 2
            continue
        if ch == '"':
            quoted = not quoted
        elif ch in seps and not quoted:
            parts.append("".join(buf))
            buf = []
            i += 1
            continue
        buf.append(ch)
        i += 1
    parts.append("".join(buf))
    return parts


def _unescape(value: str) -> str:
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] == '"':
        value = value[1:-1]
    out, i = [], 0
    while i < len(value):
        if value[i] == "\\" and i + 1 < len(value):
            nxt = value[i + 1:i + 3]
            if len(nxt) == 2 and all(c in "0123456789abcdefABCDEF" for c in nxt):
                out.append(chr(int(nxt, 16)))
                i += 3
                continue
            out.append(value[i + 1])
            i += 2
            continue
        out.append(value[i])
        i += 1
    return "".join(out).strip()


@lru_cache(maxsize=1024)
def normalise_dn(dn: str) -> tuple[tuple[str, str], ...]:
    """A spelling-independent key for a DN: ``"CN=Z1, OU=07"`` == ``"OU=07,CN=Z1"``.

    Signers disagree on RDN order (RFC 4514 reverses it, Java's RFC 2253 output
    and hand-written templates do not), on spaces after commas and on OID
    spellings, so the key is the sorted set of (TYPE, value) pairs. The serial
    number is matched exactly beside it, so the looser order costs nothing.
    """
    pairs: list[tuple[str, str]] = []
    for rdn in _split_unescaped(dn, ",;"):
        for ava in _split_unescaped(rdn, "+"):
            if not ava.strip():
                continue
            if "=" not in ava:
                pairs.append(("?", ava.strip()))
                continue
            typ, _, value = ava.partition("=")
            typ = typ.strip().upper()
            if typ.startswith("OID."):
                typ = typ[4:]
            typ = _DN_ALIASES.get(typ, typ)
            value = _unescape(value)
            pairs.append((typ, value.lower() if value.startswith("#") else value))
    return tuple(sorted(pairs))


# --- trust store --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Signer:
    """A trusted signing certificate and the Service User it belongs to."""

    eui: str | None
    roles: frozenset[str]
    cert: x509.Certificate = field(repr=False)
    public_key: ec.EllipticCurvePublicKey = field(repr=False)
    issuer: str = ""
    serial: int = 0


def cert_eui(cert: x509.Certificate) -> str | None:
    """The Service User EUI-64 in a certificate subject, in any encoding the signers use."""
    eui = eui_from_cert(cert)
    if eui:
        return eui
    for attr in cert.subject.get_attributes_for_oid(x509.NameOID.X500_UNIQUE_IDENTIFIER):
        raw = attr.value if isinstance(attr.value, bytes) else str(attr.value).encode()
        if len(raw) == 9 and raw[0] == 0:  # BIT STRING content: unused-bits octet, then 8 bytes
            return "-".join(f"{b:02X}" for b in raw[1:])
    return None


class TrustStore:
    """Certificates keyed by (normalised issuer DN, serial): what ``X509IssuerSerial`` names."""

    def __init__(self) -> None:
        self._by_key: dict[tuple[tuple[tuple[str, str], ...], int], Signer] = {}

    def add(self, cert: x509.Certificate, *, eui: str | None = None,
            roles: Iterable[str] = ()) -> Signer:
        """Trust ``cert``; ``eui`` defaults to the subject's x500UniqueIdentifier."""
        pub = cert.public_key()
        if not isinstance(pub, ec.EllipticCurvePublicKey):
            raise ValueError("DUIS signing certificates carry an EC public key")
        issuer = cert.issuer.rfc4514_string()
        signer = Signer(eui=(eui or cert_eui(cert)), roles=frozenset(roles), cert=cert,
                        public_key=pub, issuer=issuer, serial=cert.serial_number)
        self._by_key[(normalise_dn(issuer), cert.serial_number)] = signer
        return signer

    def lookup(self, issuer_name: str, serial: int) -> Signer | None:
        return self._by_key.get((normalise_dn(issuer_name), serial))

    def signers(self) -> list[Signer]:
        return list(self._by_key.values())

    def __len__(self) -> int:
        return len(self._by_key)

    @classmethod
    def from_pki(cls, pki) -> TrustStore:  # noqa: ANN001 - dcc_capacity.duis.pki.TestPKI
        """Every Service User and the DCC of a :class:`~dcc_capacity.duis.pki.TestPKI`, with their roles."""
        store = cls()
        for cred in (*pki.users(), pki.dcc):
            store.add(cred.cert, eui=cred.eui, roles=cred.roles)
        return store
