"""Checking the DCC's signature on what comes back (``--response-cert``): async responses, alerts, sync answers.

A Service User must not act on a response the DCC did not sign, so a run
against a real environment checks every one: a response whose signature is
missing, malformed, from an unknown certificate or broken by a change after
signing is a failure whose reason starts with ``bad response signature:``
(the report counts failures by reason). The check is the fast verifier of
:mod:`dcc_capacity.duis.verify` (~100 us a response on one core).
"""

from __future__ import annotations

from collections.abc import Iterable

from dcc_capacity.duis.verify import SignatureError, TrustStore, XmlError, verify_enveloped
from dcc_capacity.errors import InputError, RequestFailure

__all__ = ["BAD_SIGNATURE", "BadResponseSignature", "check_signature", "response_trust"]

BAD_SIGNATURE = "bad response signature"


class BadResponseSignature(RequestFailure):
    """A response or alert whose DCC signature does not verify (Locust shows it as the failure's exception)."""


def response_trust(paths: Iterable[str]) -> TrustStore | None:
    """A trust store of the DCC's signing certificates (PEM or DER files); None when no path is given."""
    from dcc_capacity.duis.pki import load_certificate

    paths = [p for p in paths if p]
    if not paths:
        return None
    store = TrustStore()
    for path in paths:
        cert = load_certificate(path)  # InputError naming the file
        try:
            store.add(cert)
        except ValueError as exc:
            raise InputError(str(exc), file=path, key="--response-cert") from None
    return store


def check_signature(body: bytes, trust: TrustStore) -> str:
    """'' when ``body`` carries a valid DCC signature, else the failure reason (``bad response signature: ...``)."""
    try:
        verify_enveloped(body, trust)
    except (SignatureError, XmlError) as exc:
        return f"{BAD_SIGNATURE}: {exc}"
    return ""
