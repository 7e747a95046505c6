"""Service User keys made in the test (not the suite's test PKI): a CA, an SMKI-shaped cert, encrypted key files."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import NameOID

OWN_EUI = "90-B3-D5-1F-30-AA-00-01"
"""Not one of the suite's DEFAULT_USERS: only the user's own certificate can sign for it."""
ALL_ROLES = ["IS", "GS", "ED", "GT", "OU", "RSA", "ES"]


@dataclass
class OwnKeys:
    key_pem: Path
    """PEM PKCS#8, encrypted with ``password``."""
    cert_pem: Path
    p12: Path
    password: str
    pem_body: bytes
    """The base64 body lines of the unencrypted PEM key (what must never appear in an output)."""
    der: bytes
    """The DER (PKCS#8) private key."""
    raw_scalar: bytes
    """The 32-byte private scalar."""


def make_own_keys(folder: Path, password: str = "s3cret-Pa55word-for-the-test", eui: str = OWN_EUI) -> OwnKeys:
    folder.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=1)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Own test CA"),
                         x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "07")])
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "IS,GS"),
                         x509.NameAttribute(NameOID.X500_UNIQUE_IDENTIFIER, eui.replace("-", ""))])
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(ca_name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now)
            .not_valid_after(now + dt.timedelta(days=30))
            .add_extension(x509.KeyUsage(True, False, False, False, False, False, False, False, False), True)
            .sign(ca_key, hashes.SHA256()))
    enc = serialization.BestAvailableEncryption(password.encode())
    key_pem = folder / "own.key"
    key_pem.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, enc))
    cert_pem = folder / "own.pem"
    cert_pem.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    p12 = folder / "own.p12"
    p12.write_bytes(pkcs12.serialize_key_and_certificates(b"own", key, cert, None, enc))
    plain = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption())
    body = b"".join(plain.splitlines()[1:-1])
    der = key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    scalar = key.private_numbers().private_value.to_bytes(32, "big")
    return OwnKeys(key_pem, cert_pem, p12, password, body, der, scalar)
