"""TLS contexts for both ends of the suite: the load side's client (and its callback listener) and the emulator.

A real DCC test environment needs mutual TLS: the Service User presents a
client certificate on every request, the DCC presents one on every callback.
This module turns the documented options (PEM files, or a PKCS#12 bundle, a
CA bundle, a key password read from an environment variable) into
:class:`ssl.SSLContext` objects, so the HTTP client, the callback listener
and the emulator share one set of rules:

- verification is ON by default (``verify=False`` is an explicit choice);
- a password never travels in an option value or a file: it is read from the
  environment variable the user names, so it is in no log, record or report;
- a PKCS#12 bundle is unpacked in memory; the key reaches :mod:`ssl` through a
  private temporary file encrypted with a one-time random password (``ssl``
  only loads keys from files) which is deleted at once.
"""

from __future__ import annotations

import os
import re
import secrets
import ssl
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict

from dcc_capacity.errors import InputError

__all__ = ["ClientTls", "ClientTlsSettings", "EnvName", "ServerTls", "ServerTlsSettings", "read_password"]

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _env_name(v: str | None) -> str | None:
    if v is not None and not _ENV_NAME.match(v):
        raise ValueError("must be the NAME of an environment variable (e.g. DCC_TLS_PASSWORD), not a password")
    return v


EnvName = Annotated[str | None, AfterValidator(_env_name)]
"""The name of an environment variable holding a secret (checked to be a name, so a pasted password fails)."""


def read_password(env_name: str | None, key: str = "--tls-key-password-env") -> bytes | None:
    """The password held by environment variable ``env_name`` (None when no name is given)."""
    if not env_name:
        return None
    value = os.environ.get(env_name)
    if value is None:
        raise InputError(f"environment variable {env_name} is not set", key=key)
    return value.encode()


def _need(path: str | None, key: str) -> str | None:
    if path and not Path(path).is_file():
        raise InputError("no such file", file=path, key=key)
    return path or None


def _load_pkcs12(ctx: ssl.SSLContext, path: str, password: bytes | None, key: str) -> None:
    from cryptography.hazmat.primitives.serialization import (
        BestAvailableEncryption,
        Encoding,
        PrivateFormat,
        pkcs12,
    )

    try:
        pkey, cert, extra = pkcs12.load_key_and_certificates(Path(path).read_bytes(), password)
    except (ValueError, TypeError) as exc:
        raise InputError(f"cannot read the PKCS#12 bundle ({exc})", file=path, key=key) from None
    if pkey is None or cert is None:
        raise InputError("the PKCS#12 bundle holds no key and certificate", file=path, key=key)
    one_time = secrets.token_bytes(24)
    pem = pkey.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, BestAvailableEncryption(one_time))
    chain = cert.public_bytes(Encoding.PEM) + b"".join(c.public_bytes(Encoding.PEM) for c in extra or ())
    with tempfile.TemporaryDirectory(prefix="dcc-tls-") as tmp:
        kf, cf = Path(tmp) / "k.pem", Path(tmp) / "c.pem"
        kf.touch(mode=0o600)
        kf.write_bytes(pem)
        cf.write_bytes(chain)
        ctx.load_cert_chain(str(cf), str(kf), password=one_time)


def _load_chain(ctx: ssl.SSLContext, cert: str, keyfile: str | None, password: bytes | None, key: str) -> None:
    try:
        ctx.load_cert_chain(cert, keyfile, password=password)
    except (ssl.SSLError, OSError) as exc:
        raise InputError(f"cannot load the certificate and key ({exc})", file=cert, key=key) from None


@dataclass(frozen=True)
class ClientTls:
    """Client side: the certificate we present and what we trust (``--tls-*`` options)."""

    cert: str | None = None
    key: str | None = None
    password_env: str | None = None
    pkcs12: str | None = None
    ca: str | None = None
    verify: bool = True

    @classmethod
    def from_options(cls, opts: Any) -> ClientTls:
        def get(name: str) -> Any:
            return getattr(opts, name, None) if opts is not None else None

        return cls(cert=get("tls_client_cert") or None, key=get("tls_client_key") or None,
                   password_env=get("tls_key_password_env") or None, pkcs12=get("tls_pkcs12") or None,
                   ca=get("tls_ca") or None, verify=not get("tls_no_verify"))

    @property
    def has_identity(self) -> bool:
        return bool(self.cert or self.pkcs12)

    def context(self, context_class: type[ssl.SSLContext] | None = None) -> ssl.SSLContext:
        """A client context; ``context_class`` lets gevent users pass ``gevent.ssl.SSLContext``.

        The default is looked up at call time, never bound at import: gevent may patch ``ssl.SSLContext`` after
        this module loads, and an instance of the unpatched class then recurses in its ``minimum_version``
        setter."""
        ctx = (context_class or ssl.SSLContext)(ssl.PROTOCOL_TLS_CLIENT)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        if self.verify:
            ca = _need(self.ca, "--tls-ca")
            if ca:
                ctx.load_verify_locations(cafile=ca)
            else:
                ctx.load_default_certs(ssl.Purpose.SERVER_AUTH)
        else:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        password = read_password(self.password_env)
        if self.pkcs12:
            _load_pkcs12(ctx, _need(self.pkcs12, "--tls-pkcs12") or "", password, "--tls-pkcs12")
        elif self.cert:
            _load_chain(ctx, _need(self.cert, "--tls-client-cert") or "", _need(self.key, "--tls-client-key"),
                        password, "--tls-client-cert")
        elif self.key:
            raise InputError("a key needs its certificate (--tls-client-cert)", key="--tls-client-key")
        return ctx


@dataclass(frozen=True)
class ServerTls:
    """Server side: our certificate, and the CA whose client certificates we require (None: no client certs)."""

    cert: str
    key: str | None = None
    client_ca: str | None = None
    password_env: str | None = None
    option: str = "--tls-cert"
    """The option (or config key) named in error messages."""

    def context(self, context_class: type[ssl.SSLContext] | None = None) -> ssl.SSLContext:
        """A server context (the default class looked up at call time, as for the client's)."""
        ctx = (context_class or ssl.SSLContext)(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        _load_chain(ctx, _need(self.cert, self.option) or "", _need(self.key, self.option),
                    read_password(self.password_env), self.option)
        if self.client_ca:
            ctx.load_verify_locations(cafile=_need(self.client_ca, self.option))
            ctx.verify_mode = ssl.CERT_REQUIRED
        return ctx


class _Settings(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class ServerTlsSettings(_Settings):
    """HTTPS for a server's endpoints, as a settings file gives it; with ``client_ca``, every client must present a
    certificate. The emulator's ``tls`` section; :meth:`server_tls` is the runtime :class:`ServerTls`."""

    cert: str | None = None
    key: str | None = None
    client_ca: str | None = None
    key_password_env: EnvName = None
    """Environment variable holding the key's password (never the password itself)."""

    def server_tls(self, option: str) -> ServerTls | None:
        """The runtime settings (None: plain HTTP); ``option`` names this section in error messages."""
        if not self.cert:
            return None
        return ServerTls(self.cert, self.key, self.client_ca, self.key_password_env, option=option)


class ClientTlsSettings(_Settings):
    """How a client calls over https, as a settings file gives it: its certificate and the CA it trusts.
    The emulator's ``callback_tls`` section; :meth:`client_tls` is the runtime :class:`ClientTls`."""

    client_cert: str | None = None
    client_key: str | None = None
    ca: str | None = None
    verify: bool = True
    key_password_env: EnvName = None

    def client_tls(self) -> ClientTls | None:
        """The runtime settings, or None when nothing differs from a default client (no context needed)."""
        if not (self.client_cert or self.ca or not self.verify):
            return None
        return ClientTls(cert=self.client_cert, key=self.client_key, password_env=self.key_password_env, ca=self.ca,
                         verify=self.verify)
