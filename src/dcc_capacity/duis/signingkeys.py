"""Signing with the user's own Service User keys instead of the generated test PKI.

A real DSP test environment trusts only the Service Users' SMKI organisation
certificates, so the load must be signed with the user's own keys. ``run``
writes a *signing-keys file* into the run folder (JSON: a list of entries with
the EUI, roles, certificate and key paths and the NAME of the environment
variable holding a password) and passes it to every Locust process with
``--signing-keys FILE``; each process opens the keys itself with the
password read from its environment. The file therefore holds no secret, and
the password never crosses a command line, a log or a run-folder file.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from dcc_capacity.duis.pki import Credential, eui_from_cert, load_credential, load_pkcs12
from dcc_capacity.errors import InputError

__all__ = ["SigningKey", "audit_entry", "load_credentials", "password_from_env", "read_signing_keys",
           "signing_keys_json", "write_signing_keys"]


def password_from_env(name: str | None, *, file: str | Path | None = None, key: str | None = None) -> bytes | None:
    """The password in environment variable ``name`` (None when no name is given); InputError when unset.

    The message names the variable, never its value.
    """
    if not name:
        return None
    value = os.environ.get(name)
    if value is None:
        raise InputError(f"environment variable {name} (the password) is not set", file=file, key=key)
    return value.encode()


@dataclass(frozen=True)
class SigningKey:
    """One Service User's signing credential, by reference: paths and an environment variable name only."""

    eui: str | None = None
    roles: tuple[str, ...] = ()
    cert: str | None = None
    key: str | None = None
    pkcs12: str | None = None
    password_env: str | None = None
    where: str = field(default="signing", compare=False)
    """Dotted key for error messages (``signing.users[0]``)."""

    def load(self, file: str | Path | None = None) -> Credential:
        """Open the key (decrypting it with the password from the environment) and check it matches the cert."""
        password = password_from_env(self.password_env, file=file, key=f"{self.where}.password_env")
        if self.pkcs12:
            cred = load_pkcs12(self.pkcs12, password, self.eui)
        elif self.key and self.cert:
            cred = load_credential(self.key, self.cert, self.eui, password)
        else:
            raise InputError("give key and cert, or pkcs12", file=file, key=self.where)
        in_cert = eui_from_cert(cred.cert)
        if self.eui and in_cert and in_cert.upper() != self.eui.upper():
            raise InputError(f"eui {self.eui} differs from the certificate's {in_cert}", file=file,
                             key=f"{self.where}.eui")
        if cred.eui is None:
            raise InputError("the certificate carries no EUI-64 (x500UniqueIdentifier): give eui", file=file,
                             key=f"{self.where}.eui")
        cred.eui = cred.eui.upper()
        if self.roles:
            cred.roles = frozenset(r.upper() for r in self.roles)
        return cred

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("where")
        d["roles"] = list(self.roles)
        return {k: v for k, v in d.items() if v not in (None, [], "")}

    @classmethod
    def from_dict(cls, d: dict[str, Any], where: str) -> SigningKey:
        return cls(eui=d.get("eui"), roles=tuple(d.get("roles") or ()), cert=d.get("cert"), key=d.get("key"),
                   pkcs12=d.get("pkcs12"), password_env=d.get("password_env"), where=where)


def signing_keys_json(entries: Iterable[SigningKey]) -> bytes:
    """The ``--signing-keys`` file's content: references only (absolute paths, EUIs, roles, variable names)."""
    docs = []
    for e in entries:
        d = e.to_dict()
        for k in ("cert", "key", "pkcs12"):
            if k in d:
                d[k] = str(Path(d[k]).resolve())
        docs.append(d)
    return (json.dumps({"signing_keys": docs}, indent=2) + "\n").encode()


def write_signing_keys(entries: Iterable[SigningKey], path: str | Path) -> Path:
    """Write :func:`signing_keys_json` to ``path``."""
    path = Path(path)
    path.write_bytes(signing_keys_json(entries))
    return path


def read_signing_keys(path: str | Path) -> list[SigningKey]:
    """Entries of a ``--signing-keys`` file (InputError naming the file when it is unreadable or empty)."""
    p = Path(path)
    try:
        doc = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InputError(f"cannot read the signing-keys file ({type(exc).__name__})", file=p) from None
    items = doc.get("signing_keys") if isinstance(doc, dict) else None
    if not isinstance(items, list) or not items or not all(isinstance(i, dict) for i in items):
        raise InputError("expected {\"signing_keys\": [ {eui, roles, cert, key | pkcs12, password_env}, ... ]}",
                         file=p, key="signing_keys")
    return [SigningKey.from_dict(d, f"signing_keys[{i}]") for i, d in enumerate(items)]


def load_credentials(entries: Iterable[SigningKey], file: str | Path | None = None) -> list[Credential]:
    """Every entry opened; two keys for one EUI is an error (which one would sign?)."""
    creds: list[Credential] = []
    seen: dict[str, str] = {}
    for e in entries:
        cred = e.load(file)
        assert cred.eui is not None
        if cred.eui in seen:
            raise InputError(f"Service User {cred.eui} is configured twice (also {seen[cred.eui]})", file=file,
                             key=e.where)
        seen[cred.eui] = e.where
        creds.append(cred)
    return creds


def audit_entry(entry: SigningKey, cred: Credential) -> dict[str, Any]:
    """What run.json and the report show of a signing credential: paths, EUI, roles, certificate fingerprint."""
    out: dict[str, Any] = {"eui": cred.eui, "roles": sorted(cred.roles), "cert_sha256": cred.fingerprint(),
                           "cert_subject": cred.cert.subject.rfc4514_string(), "cert_serial": str(cred.serial)}
    for k in ("cert", "key", "pkcs12", "password_env"):
        v = getattr(entry, k)
        if v:
            out[k] = v
    return out
