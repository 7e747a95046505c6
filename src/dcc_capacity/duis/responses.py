"""DUIS responses and alerts: build them (DCC-signed) and parse them (client side).

Building: the emulator answers every request at least once and every device
request twice, so response signing sits on the hot path. Rather than build a
tree and run a general signer, we write the document directly in its
canonical form (namespace declarations, attribute order and empty elements
exactly as C14N writes them), so the bytes we hash *are* the canonical bytes:
one SHA-256, one ECDSA signature and some string joins per response. The
result is an ordinary enveloped XML-DSig that signxml, DCC Boxed and
:func:`dcc_capacity.duis.verify.verify_enveloped` all accept, and it validates
against the official DUIS schema.

Parsing: :func:`parse_response` reads what a DCC (or this emulator) sends
back, synchronously or to the callback URL, into a :class:`ParsedResponse`.
Malformed or hostile input raises :class:`ResponseParseError`, never anything else.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import time
from dataclasses import dataclass
from functools import lru_cache

from cryptography.hazmat.primitives.asymmetric import ec
from lxml import etree

from dcc_capacity.duis import NS_DS, NS_SR
from dcc_capacity.duis.c14n import c14n_text
from dcc_capacity.duis.dsig import (
    ECDSA_SHA256,
    SI_AFTER_DIGEST,
    SI_BEFORE_DIGEST,
    SI_CLOSE,
    SIGNATURE_OPEN,
    SIGNED_INFO_OPEN,
    SIGNED_INFO_OPEN_C14N,
    der_to_raw,
    key_info,
)
from dcc_capacity.duis.xmlsafe import XmlError, parse_hardened
from dcc_capacity.errors import ProtocolError

__all__ = [
    "RESPONSE_SCHEMA_VERSION",
    "ParsedResponse",
    "ResponseParseError",
    "ResponseSigner",
    "build_dcc_alert",
    "build_device_alert",
    "build_response",
    "is_success",
    "parse_response",
    "payload_dsp_schedule_id",
    "payload_dsp_scheduled_message",
    "payload_gbcs",
    "payload_local_command",
    "payload_pre_command",
    "response_id_for",
    "s1sp_alert",
]

RESPONSE_SCHEMA_VERSION = "5.1"
"""The schemaVersion of answers to requests whose version is unknown (unreadable requests, alerts)."""

_DECL = b'<?xml version="1.0" encoding="UTF-8"?>\n'
_SIG_HEAD = SIGNATURE_OPEN + SIGNED_INFO_OPEN
_ROOT_OPEN = f'<sr:Response xmlns:sr="{NS_SR}" schemaVersion="{RESPONSE_SCHEMA_VERSION}">'



def _el(name: str, value: object) -> str:
    return f"<sr:{name}>{c14n_text(value)}</sr:{name}>"


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


_second: list = [-1, "", -1, ""]


def _now() -> str:
    """UTC now as ``2022-08-17T15:45:42.790Z``; formatted once a second, and reused within a millisecond (hot path:
    twice per request)."""
    now = time.time()
    ms = int(now * 1000)
    if ms == _second[2]:
        return _second[3]
    sec = ms // 1000
    if sec != _second[0]:
        _second[0] = sec
        _second[1] = dt.datetime.fromtimestamp(sec, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.")
    _second[2], _second[3] = ms, f"{_second[1]}{ms - sec * 1000:03d}Z"
    return _second[3]


def is_success(code: str | None) -> bool:
    """DUIS convention: codes starting with ``I`` are success, anything else (or none) is failure."""
    return code is not None and code.startswith("I")


def response_id_for(request_id: str) -> str:
    """The ResponseID of a request: originator and target swapped, same counter."""
    parts = request_id.split(":")
    if len(parts) != 3:
        return request_id
    return f"{parts[1]}:{parts[0]}:{parts[2]}"


# --- payloads (canonical fragments inside ResponseMessage) --------------------------------

def payload_gbcs(gbcs: bytes) -> str:
    """A plain ``GBCSPayload`` (the device's answer)."""
    return _el("GBCSPayload", _b64(gbcs))


def payload_pre_command(gbcs: bytes, gbcs_version: str = "3.0") -> str:
    """The ``PreCommand`` a Transform (CV 4) returns for the User to sign."""
    return f"<sr:PreCommand>{_el('GBCSVersion', gbcs_version)}{_el('GBCSPayload', _b64(gbcs))}</sr:PreCommand>"


def payload_local_command(gbcs: bytes) -> str:
    return f"<sr:LocalCommand>{_el('GBCSPayload', _b64(gbcs))}</sr:LocalCommand>"


def payload_dsp_schedule_id(schedule_id: int) -> str:
    """The ``DSPScheduleID`` a successful 5.1 Create Schedule returns."""
    return _el("DSPScheduleID", int(schedule_id))


def payload_dsp_scheduled_message(gbcs: bytes, schedule_id: int) -> str:
    """The ``DSPScheduledMessage`` of one execution of a DCC-scheduled SRV: the device's answer and its schedule."""
    return (f"<sr:DSPScheduledMessage>{_el('GBCSPayload', _b64(gbcs))}{_el('DSPScheduleID', int(schedule_id))}"
            "</sr:DSPScheduledMessage>")


# --- signing --------------------------------------------------------------------------------


class ResponseSigner:
    """Signs canonical response bytes with the DCC's credential (one ECDSA signature each)."""

    def __init__(self, key: ec.EllipticCurvePrivateKey, issuer_name: str, serial: int) -> None:
        self._key = key
        self._key_info = key_info(issuer_name, serial)

    @classmethod
    def from_credential(cls, cred) -> ResponseSigner:  # noqa: ANN001 - dcc_capacity.duis.pki.Credential
        if cred.key is None:
            raise ValueError("the response signer needs a private key")
        return cls(cred.key, cred.issuer_name, cred.serial)

    def signature(self, canonical: bytes) -> str:
        """The ``ds:Signature`` element (as text) for a document whose canonical form is ``canonical``."""
        digest = _b64(hashlib.sha256(canonical).digest())
        si_inner = SI_BEFORE_DIGEST + digest + SI_AFTER_DIGEST
        value = _b64(der_to_raw(self._key.sign((SIGNED_INFO_OPEN_C14N + si_inner + SI_CLOSE).encode("ascii"),
                                               ECDSA_SHA256)))
        return (f"{_SIG_HEAD}{si_inner}{SI_CLOSE}"
                f"<ds:SignatureValue>{value}</ds:SignatureValue>{self._key_info}</ds:Signature>")

    def sign_document(self, canonical_without_close: str, close: str) -> bytes:
        """Sign ``canonical_without_close + close`` and insert the Signature before ``close``."""
        canonical = (canonical_without_close + close).encode("utf-8")
        return _DECL + (canonical_without_close + self.signature(canonical) + close).encode("utf-8")


@lru_cache(maxsize=16)
def _root_open(version: str | None) -> str:
    if version is None or version == RESPONSE_SCHEMA_VERSION:
        return _ROOT_OPEN
    return f'<sr:Response xmlns:sr="{NS_SR}" schemaVersion="{c14n_text(version)}">'


def _finish(header: str, body: str, signer: ResponseSigner | None, version: str | None = None) -> bytes:
    open_part = f"{_root_open(version)}<sr:Header>{header}</sr:Header><sr:Body>{body}</sr:Body>"
    if signer is None:
        return _DECL + (open_part + "</sr:Response>").encode("utf-8")
    return signer.sign_document(open_part, "</sr:Response>")


def _header(request_id: str | None, response_id: str | None, code: str | None, when: str | None) -> str:
    h = f"<sr:RequestID>{c14n_text(request_id)}</sr:RequestID>" if request_id else ""
    if response_id:
        h += f"<sr:ResponseID>{c14n_text(response_id)}</sr:ResponseID>"
    if code is not None:  # None models the "missing response code" failure mode of the seeds
        h += f"<sr:ResponseCode>{c14n_text(code)}</sr:ResponseCode>"
    return h + f"<sr:ResponseDateTime>{c14n_text(when or _now())}</sr:ResponseDateTime>"


@lru_cache(maxsize=512)
def _message_head(srv: str, srv_variant: str) -> str:
    """``ResponseMessage`` up to its payload: one per SRV variant, so formatted once."""
    return (f"<sr:ResponseMessage><sr:ServiceReference>{c14n_text(srv)}</sr:ServiceReference>"
            f"<sr:ServiceReferenceVariant>{c14n_text(srv_variant)}</sr:ServiceReferenceVariant>")


def build_response(*, signer: ResponseSigner | None, response_code: str | None, srv: str, srv_variant: str,
                   request_id: str | None = None, response_id: str | None = None, payload: str = "",
                   when: str | None = None, schema_version: str | None = None) -> bytes:
    """A ``sr:Response`` with a ``ResponseMessage`` (status only, or one payload fragment).

    ``payload`` is one of the ``payload_*`` fragments. ``response_id`` defaults
    to the swapped RequestID. ``response_code=None`` leaves the code out (a
    failure mode; such a document is deliberately not schema-valid). ``schema_version`` is the request's
    (an answer is in the version it was asked in); None gives :data:`RESPONSE_SCHEMA_VERSION`.
    """
    if response_id is None and request_id:
        response_id = response_id_for(request_id)
    body = f"{_message_head(srv, srv_variant)}{payload}</sr:ResponseMessage>"
    return _finish(_header(request_id, response_id, response_code, when), body, signer, schema_version)


def build_device_alert(*, signer: ResponseSigner | None, response_id: str, alert_code: str, gbcs: bytes,
                       response_code: str = "I0", when: str | None = None) -> bytes:
    """A ``DeviceAlertMessage``: ``alert_code`` is 4 hex digits (e.g. ``"8F3E"``)."""
    body = (f"<sr:DeviceAlertMessage>{_el('AlertCode', alert_code.upper())}{_el('GBCSPayload', _b64(gbcs))}"
            "</sr:DeviceAlertMessage>")
    return _finish(_header(None, response_id, response_code, when), body, signer)


def s1sp_alert(signer: ResponseSigner | None, *, code: str, request_id: str | None = None,
               device_id: str | None = None, info: str | None = None, schedule_id: int | None = None) -> str:
    """An ``S1SPAlertDSP`` DCC alert body (e.g. S1VE12), with the S1SP's own signature inside."""
    parts = [f'<sr:S1SPAlert schemaVersion="{RESPONSE_SCHEMA_VERSION}">']
    if request_id:
        parts.append(_el("RequestID", request_id))
    if device_id:
        parts.append(_el("DeviceID", device_id))
    parts.append(_el("S1SPAlertCode", code))
    if info:
        parts.append(_el("AdditionalInformation", info))
    parts.append(_el("DateTime", _now()))
    inner = "".join(parts)
    sig = ""
    if signer is not None:
        alone = inner.replace("<sr:S1SPAlert ", f'<sr:S1SPAlert xmlns:sr="{NS_SR}" ', 1) + "</sr:S1SPAlert>"
        sig = signer.signature(alone.encode("utf-8"))
    else:  # the schema requires a Signature element; keep an empty-valued placeholder shape
        sig = f'<ds:Signature xmlns:ds="{NS_DS}"></ds:Signature>'
    out = f"<sr:S1SPAlertDSP>{inner}{sig}</sr:S1SPAlert>"
    if schedule_id is not None:
        out += _el("DSPScheduleID", int(schedule_id))
    return out + "</sr:S1SPAlertDSP>"


def build_dcc_alert(*, signer: ResponseSigner | None, response_id: str, dcc_alert_code: str, alert: str,
                    response_code: str = "I0", when: str | None = None) -> bytes:
    """A ``DCCAlertMessage``; ``alert`` is the canonical ``DCCAlert`` choice (e.g. :func:`s1sp_alert`)."""
    body = (f"<sr:DCCAlertMessage>{_el('DCCAlertCode', dcc_alert_code)}<sr:DCCAlert>{alert}</sr:DCCAlert>"
            "</sr:DCCAlertMessage>")
    return _finish(_header(None, response_id, response_code, when), body, signer)


# --- parsing ------------------------------------------------------------------------------


class ResponseParseError(ProtocolError):
    """The bytes are not a DUIS response this suite can read."""


@dataclass(frozen=True, slots=True)
class ParsedResponse:
    """What a client needs from a DUIS response or alert."""

    kind: str
    """``response``, ``device_alert`` or ``dcc_alert``."""
    request_id: str | None
    response_id: str | None
    response_code: str | None
    """None when the response has no ResponseCode (a failure the seeds report)."""
    response_datetime: str | None
    srv: str | None = None
    srv_variant: str | None = None
    payload_kind: str | None = None
    """Local name of the ResponseMessage payload element (``PreCommand``, ``GBCSPayload``, ...)."""
    gbcs_payload: bytes | None = None
    gbcs_version: str | None = None
    schedule_id: int | None = None
    alert_code: str | None = None
    """Device AlertCode (hex) or DCCAlertCode."""
    s1sp_alert_code: str | None = None
    signed: bool = False

    @property
    def success(self) -> bool:
        return is_success(self.response_code)

    @property
    def correlation_id(self) -> str | None:
        """The RequestID this answers (from RequestID, else derived from ResponseID)."""
        if self.request_id:
            return self.request_id
        return response_id_for(self.response_id) if self.response_id else None


_SR = "{" + NS_SR + "}"


def _child_text(parent: etree._Element | None, name: str) -> str | None:
    if parent is None:
        return None
    el = parent.find(_SR + name)
    return el.text.strip() if el is not None and el.text else None


def _gbcs(text: str | None) -> bytes | None:
    if text is None:
        return None
    try:
        return base64.b64decode("".join(text.split()), validate=True)
    except (binascii.Error, ValueError):
        raise ResponseParseError("GBCSPayload is not base64") from None


def parse_response(data: bytes) -> ParsedResponse:
    """Read a DUIS ``sr:Response`` (response or alert). Does not check the signature."""
    try:
        root = parse_hardened(data)
    except XmlError as exc:
        raise ResponseParseError(str(exc)) from None
    if root.tag != _SR + "Response":
        raise ResponseParseError(f"root is {root.tag!r}, expected sr:Response")
    header = root.find(_SR + "Header")
    body = root.find(_SR + "Body")
    if header is None or body is None or len(body) == 0:
        raise ResponseParseError("sr:Response needs sr:Header and a non-empty sr:Body")
    common = dict(request_id=_child_text(header, "RequestID"), response_id=_child_text(header, "ResponseID"),
                  response_code=_child_text(header, "ResponseCode"),
                  response_datetime=_child_text(header, "ResponseDateTime"),
                  signed=root[-1].tag == "{" + NS_DS + "}Signature")
    msg = body[0]
    if not isinstance(msg.tag, str):
        raise ResponseParseError("unexpected content in sr:Body")
    name = etree.QName(msg).localname
    if name == "ResponseMessage":
        payload = msg[2] if len(msg) > 2 and isinstance(msg[2].tag, str) else None
        kind = etree.QName(payload).localname if payload is not None else None
        gbcs = gbcs_version = None
        schedule = None
        if payload is not None:
            if kind == "GBCSPayload":
                gbcs = _gbcs(payload.text)
            elif kind in ("PreCommand", "LocalCommand", "CINMessage", "DSPScheduledMessage",
                          "FutureDatedDeviceAlertMessage"):
                gbcs = _gbcs(_child_text(payload, "GBCSPayload"))
                gbcs_version = _child_text(payload, "GBCSVersion")
            if kind == "DSPScheduleID" or kind == "DSPScheduledMessage":
                text = payload.text if kind == "DSPScheduleID" else _child_text(payload, "DSPScheduleID")
                if text and text.strip().isdigit():
                    schedule = int(text.strip())
        return ParsedResponse(kind="response", srv=_child_text(msg, "ServiceReference"),
                              srv_variant=_child_text(msg, "ServiceReferenceVariant"), payload_kind=kind,
                              gbcs_payload=gbcs, gbcs_version=gbcs_version, schedule_id=schedule, **common)
    if name == "DeviceAlertMessage":
        return ParsedResponse(kind="device_alert", alert_code=_child_text(msg, "AlertCode"),
                              gbcs_payload=_gbcs(_child_text(msg, "GBCSPayload")), **common)
    if name == "DCCAlertMessage":
        s1 = msg.find(f"{_SR}DCCAlert/{_SR}S1SPAlertDSP/{_SR}S1SPAlert")
        return ParsedResponse(kind="dcc_alert", alert_code=_child_text(msg, "DCCAlertCode"),
                              s1sp_alert_code=_child_text(s1, "S1SPAlertCode"), **common)
    raise ResponseParseError(f"unsupported response body {name!r}")
