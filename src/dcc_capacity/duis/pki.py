"""The throw-away test PKI, and loading a user's own keys and certificates.

SMKI is the real trust root of DUIS; for testing, the suite generates its own
CA, one ECDSA P-256 key and certificate per Service User and one for the DCC
(which signs responses). It is generated on first use into a cache folder
(never into the repository), so ``render``, ``emulator`` and ``run`` started
separately all share it and the emulator accepts what ``render`` wrote.

Certificates follow the SMKI organisation-certificate shape that DCC Boxed
uses: the subject carries the Service User's EUI-64 as x500UniqueIdentifier,
and requests reference the certificate by X509IssuerSerial.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from dcc_capacity.errors import InputError

__all__ = [
    "Credential",
    "DCC_USER",
    "DEFAULT_USERS",
    "ServiceUser",
    "TestPKI",
    "default_pki_dir",
    "eui_from_cert",
    "load_certificate",
    "load_credential",
    "load_pkcs12",
    "load_private_key",
]


@dataclass(frozen=True, slots=True)
class ServiceUser:
    """A DCC Service User: an EUI-64 and the SEC roles it holds."""

    eui: str
    roles: frozenset[str]
    name: str


DEFAULT_USERS: tuple[ServiceUser, ...] = (
    # EUIs match DCC Boxed's test users so that its published keys can be swapped in.
    ServiceUser("90-B3-D5-1F-30-01-00-00", frozenset({"IS", "GS"}), "Supplier A (import and gas)"),
    ServiceUser("90-B3-D5-1F-30-02-00-00", frozenset({"ED", "GT"}), "Network Operator"),
    ServiceUser("90-B3-D5-1F-30-03-00-00", frozenset({"OU", "RSA"}), "Other User"),
    ServiceUser("90-B3-D5-1F-30-04-00-00", frozenset({"IS", "GS"}), "Supplier B (import and gas)"),
    ServiceUser("90-B3-D5-1F-30-05-00-00", frozenset({"ES"}), "Export Supplier"),
    # DCC Boxed's Load Controller (the RTDS's 7.16 originator): the only sender of 7.16 Limit APC Level.
    ServiceUser("90-B3-D5-1F-30-01-00-08", frozenset({"LC"}), "Load Controller"),
)
"""The fleet's Service Users. Supplier A is the default originator; the Load Controller sends only 7.16 (it holds
no installation: a request picks it because no installation user may send 7.16)."""

DCC_USER = ServiceUser("90-B3-D5-1F-30-00-00-02", frozenset({"DCC"}), "DCC (signs responses)")

_UID_OID = NameOID.X500_UNIQUE_IDENTIFIER


def _eui_bytes(eui: str) -> bytes:
    return bytes.fromhex(eui.replace("-", ""))


def eui_from_cert(cert: x509.Certificate) -> str | None:
    """The EUI-64 in the subject's x500UniqueIdentifier, as ``XX-XX-..``, or None."""
    attrs = cert.subject.get_attributes_for_oid(_UID_OID)
    if not attrs:
        return None
    value = attrs[0].value
    raw = value if isinstance(value, bytes) else str(value).encode()
    # DCC Boxed encodes it as a BIT STRING (03 09 00 <8 bytes>); ours as the hex text.
    if len(raw) >= 8 and raw[:2] == b"\x03\x09":
        raw = raw[3:11]
    elif len(raw) == 9 and raw[0] == 0:  # BIT STRING contents: unused-bits byte, then the 8 octets
        raw = raw[1:]
    elif len(raw) == 16:
        try:
            raw = bytes.fromhex(raw.decode())
        except ValueError:
            return None
    if len(raw) != 8:
        return None
    return "-".join(f"{b:02X}" for b in raw)


@dataclass(slots=True)
class Credential:
    """A signing key with its certificate, as a request or response signer uses it."""

    key: ec.EllipticCurvePrivateKey | None
    cert: x509.Certificate
    eui: str | None = None
    roles: frozenset[str] = field(default_factory=frozenset)

    @property
    def issuer_name(self) -> str:
        """Issuer DN as written in ``ds:X509IssuerName`` (RFC 4514)."""
        return self.cert.issuer.rfc4514_string()

    @property
    def serial(self) -> int:
        return self.cert.serial_number

    def cert_pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    def fingerprint(self) -> str:
        """SHA-256 fingerprint of the certificate: what audit trails show instead of keys."""
        return self.cert.fingerprint(hashes.SHA256()).hex(":")


def load_private_key(path: str | Path, password: bytes | None = None) -> ec.EllipticCurvePrivateKey:
    """An EC private key from PEM or DER (PKCS#8 or SEC1) at ``path``; ``password`` opens an encrypted one.

    Error messages never carry the password or key bytes: they end up on a terminal and in CI logs.
    """
    p = Path(path)
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read key: {exc.strerror}", file=p) from None
    loader = serialization.load_pem_private_key if b"-----BEGIN" in data else serialization.load_der_private_key
    try:
        key = loader(data, password=password)
    except TypeError as exc:
        if password is None:
            raise InputError("the key is encrypted: name the environment variable holding its password "
                             "(password_env)", file=p) from None
        raise InputError(f"the key is not encrypted but a password was given ({_reason(exc)})", file=p) from None
    except ValueError as exc:
        if password is not None:
            raise InputError("cannot decrypt the key (wrong password?) or not a PEM/DER private key", file=p) from None
        raise InputError(f"not a PEM or DER private key ({_reason(exc)})", file=p) from None
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != "secp256r1":
        raise InputError("DUIS signing needs an ECDSA P-256 key", file=p)
    return key


def _reason(exc: Exception) -> str:
    """cryptography's message, first line only (no key material is ever in it; keep it short anyway)."""
    return str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__


def load_pkcs12(path: str | Path, password: bytes | None, eui: str | None = None) -> Credential:
    """A signing credential from a PKCS#12 bundle (key + certificate), opened with ``password``."""
    from cryptography.hazmat.primitives.serialization import pkcs12

    p = Path(path)
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read PKCS#12 file: {exc.strerror}", file=p) from None
    try:
        key, cert, _extra = pkcs12.load_key_and_certificates(data, password)
    except (ValueError, TypeError):
        raise InputError("cannot open the PKCS#12 file (wrong password, or not PKCS#12)", file=p) from None
    if key is None or cert is None:
        raise InputError("the PKCS#12 file must hold a private key and its certificate", file=p)
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != "secp256r1":
        raise InputError("DUIS signing needs an ECDSA P-256 key", file=p)
    if cert.public_key().public_numbers() != key.public_key().public_numbers():  # type: ignore[union-attr]
        raise InputError("the key in this PKCS#12 file does not match its certificate", file=p)
    return Credential(key=key, cert=cert, eui=eui or eui_from_cert(cert))


def load_certificate(path: str | Path) -> x509.Certificate:
    """An X.509 certificate from PEM or DER at ``path``."""
    p = Path(path)
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read certificate: {exc.strerror}", file=p) from None
    try:
        if b"-----BEGIN" in data:
            return x509.load_pem_x509_certificate(data)
        return x509.load_der_x509_certificate(data)
    except ValueError as exc:
        raise InputError(f"not a PEM or DER certificate ({exc})", file=p) from None


def load_credential(key_path: str | Path, cert_path: str | Path, eui: str | None = None,
                    password: bytes | None = None) -> Credential:
    """A user's own key (encrypted with ``password``, or not) and certificate; the EUI defaults to the cert's."""
    key = load_private_key(key_path, password)
    cert = load_certificate(cert_path)
    pub = cert.public_key()
    if not isinstance(pub, ec.EllipticCurvePublicKey) or pub.public_numbers() != key.public_key().public_numbers():
        raise InputError(f"the key {key_path} does not match this certificate", file=cert_path)
    return Credential(key=key, cert=cert, eui=eui or eui_from_cert(cert))


def default_pki_dir() -> Path:
    """``$DCC_CAPACITY_PKI``, else ``~/.cache/dcc-capacity/test-pki``."""
    env = os.environ.get("DCC_CAPACITY_PKI")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "dcc-capacity" / "test-pki"


def _name(*parts: tuple[x509.ObjectIdentifier, str | bytes]) -> x509.Name:
    return x509.Name([x509.NameAttribute(oid, value) for oid, value in parts])  # type: ignore[arg-type]


def _issue(ca_key, ca_name: x509.Name, subject: x509.Name, key, serial: int) -> x509.Certificate:  # noqa: ANN001
    now = dt.datetime(2020, 1, 1, tzinfo=dt.timezone.utc)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(serial)
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=365 * 100))
        .add_extension(x509.KeyUsage(True, False, False, False, False, False, False, False, False), True)
        .sign(ca_key, hashes.SHA256())
    )


class TestPKI:
    """The generated CA, Service User and DCC credentials in one folder."""

    __test__ = False  # not a pytest test class

    def __init__(self, directory: Path, ca_cert: x509.Certificate, creds: dict[str, Credential]) -> None:
        self.directory = directory
        self.ca_cert = ca_cert
        self._creds = creds

    @property
    def dcc(self) -> Credential:
        """The DCC's credential: signs responses and alerts."""
        return self._creds[DCC_USER.eui]

    def credential(self, eui: str) -> Credential:
        """The credential of Service User ``eui`` (upper-case, dash-separated)."""
        try:
            return self._creds[eui.upper()]
        except KeyError:
            raise InputError(f"no test credential for Service User {eui}; known: "
                             + ", ".join(u.eui for u in DEFAULT_USERS)) from None

    def users(self) -> list[Credential]:
        return [c for e, c in self._creds.items() if e != DCC_USER.eui]

    def certificates(self) -> list[x509.Certificate]:
        """Every end-entity certificate the emulator should trust by default."""
        return [c.cert for c in self._creds.values()]

    @classmethod
    def load_or_create(cls, directory: str | Path | None = None) -> TestPKI:
        """Load the PKI from ``directory``, generating it first if it is not there."""
        d = Path(directory) if directory else default_pki_dir()
        if not (d / "ca.pem").exists():
            cls._generate(d)
        elif not cls._complete(d):
            cls._regenerate(d)
        return cls._load(d)

    @staticmethod
    def _complete(d: Path) -> bool:
        """Whether ``d`` holds a key and certificate for every user (a PKI of an older version may lack one)."""
        return all((d / f"{u.eui.replace('-', '')}{ext}").exists()
                   for u in (*DEFAULT_USERS, DCC_USER) for ext in (".key", ".pem"))

    @classmethod
    def _regenerate(cls, d: Path) -> None:
        """Replace an incomplete PKI with a new one (it is throw-away, and its CA key was never kept).

        Under an exclusive lock beside the folder, checked again once held: processes that start together
        (an emulator and a load generator) all find the one new PKI instead of each replacing the other's.
        """
        import fcntl

        with open(d.parent / f".{d.name}.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if cls._complete(d):
                return  # another process made it while this one waited
            aside = d.with_name(f".{d.name}-old-{os.getpid()}")
            d.rename(aside)
            shutil.rmtree(aside, ignore_errors=True)
            cls._generate(d)

    @classmethod
    def _generate(cls, d: Path) -> None:
        d.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".pki-", dir=d.parent))
        try:
            ca_key = ec.generate_private_key(ec.SECP256R1())
            ca_name = _name((NameOID.COMMON_NAME, "dcc-capacity test CA"), (NameOID.ORGANIZATIONAL_UNIT_NAME, "07"))
            ca_cert = _issue(ca_key, ca_name, ca_name, ca_key, x509.random_serial_number())
            (tmp / "ca.pem").write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
            for user in (*DEFAULT_USERS, DCC_USER):
                key = ec.generate_private_key(ec.SECP256R1())
                subject = _name(
                    (NameOID.ORGANIZATIONAL_UNIT_NAME, ",".join(sorted(user.roles))),
                    (_UID_OID, _eui_bytes(user.eui).hex().upper()),
                )
                cert = _issue(ca_key, ca_name, subject, key, x509.random_serial_number())
                stem = user.eui.replace("-", "")
                (tmp / f"{stem}.key").write_bytes(key.private_bytes(
                    serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
                (tmp / f"{stem}.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
            try:
                tmp.rename(d)  # atomic: concurrent creators race, one wins, all load the winner
            except OSError:
                if not (d / "ca.pem").exists():
                    raise
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)

    @classmethod
    def _load(cls, d: Path) -> TestPKI:
        ca_cert = load_certificate(d / "ca.pem")
        creds: dict[str, Credential] = {}
        for user in (*DEFAULT_USERS, DCC_USER):
            stem = user.eui.replace("-", "")
            cred = load_credential(d / f"{stem}.key", d / f"{stem}.pem", user.eui)
            cred.roles = user.roles
            creds[user.eui] = cred
        return cls(d, ca_cert, creds)
