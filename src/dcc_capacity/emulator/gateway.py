"""The DCC User Gateway's checks on one request: each failure is a distinct DUIS error, never a crash.

Order (cheap before expensive, identity before authority): well-formed XML
(hardened) -> DUIS namespace and structure (or the official XSD when
configured) -> SECMP0067 admission for the claimed originator (so a burst is
refused before it costs a signature check) -> signature and certificate ->
originator matches the signer -> role eligible for the SRV -> Command Variant
right for the SRV -> URL right for the Command Variant -> RequestID counter
increasing (or a CV 4 Pre-Command awaiting its signed CV 5) -> SECMP0192.

Two ways to the same verdicts: requests already in the suite's canonical form
are proved well-formed by a byte grammar (``duis/canonical.py``) and never
become a tree (the emulator's hottest path, issue #5); everything else, and
every request when an XSD is configured, is parsed with lxml.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

from lxml import etree

from dcc_capacity.duis import NS_SR
from dcc_capacity.duis.canonical import CanonicalRequest, recognise_request
from dcc_capacity.duis.schema import load_schema, schema_errors
from dcc_capacity.duis.userroles import role_model
from dcc_capacity.duis.verify import (
    SignatureError,
    Signer,
    TrustStore,
    UnknownSignerError,
    XmlError,
    canonical_signer,
    parse_hardened,
    verify_enveloped,
)
from dcc_capacity.emulator import codes as C
from dcc_capacity.emulator.config import EmulatorConfig
from dcc_capacity.emulator.counters import CounterWindow
from dcc_capacity.emulator.devices import DeviceRule
from dcc_capacity.model.catalogue import DCC_EUI, Srv, get_srv

__all__ = ["Accepted", "Gateway", "Rejected", "SECMP0192_VARIANTS"]

_SR = "{" + NS_SR + "}"
_HEADER, _BODY = _SR + "Header", _SR + "Body"
_EUI = r"([0-9A-Fa-f]{2}(?:-[0-9A-Fa-f]{2}){7})"
_RID = re.compile(rf"^{_EUI}:{_EUI}:(0|[1-9][0-9]{{0,19}})$")
_HEADER_REQUIRED = ("RequestID", "CommandVariant", "ServiceReference", "ServiceReferenceVariant")
_HEADER_ALLOWED = {"RequestID", "FirstInSequence", "PrecedingServiceRequestID", "CommandVariant",
                   "ServiceReference", "ServiceReferenceVariant"}
SECMP0192_VARIANTS = frozenset({"4.3", "4.4.3"})
"""SRVs SECMP0192 makes DCC-schedulable (5.1) for SMETS1 devices only."""
_CV_SERVICE = {1: "S", 3: "S", 5: "S", 7: "S", 4: "T", 2: "D", 6: "D", 8: "D"}


@dataclass(slots=True)
class Rejected:
    """A request the gateway refuses, with the DUIS code, HTTP status and a reason for logs/metrics."""

    code: str
    reason: str
    request_id: str | None = None
    srv: str | None = None
    srv_variant: str | None = None
    srv_class: str = "unknown"
    originator: str | None = None
    schema_version: str | None = None
    """The request's schemaVersion when it could be read (answers echo it)."""

    @property
    def http(self) -> int:
        return C.CODES[self.code].http


@dataclass(slots=True)
class Accepted:
    """A request that passed every check; what the capacity model and the responder need."""

    request_id: str
    originator: str
    target: str
    counter: int
    cv: int
    srv: Srv
    signer: Signer
    smets1: bool
    raw: bytes = b""
    body_el: etree._Element | None = None
    precommand: bytes | None = None
    extras: dict = field(default_factory=dict)
    schema_version: str | None = None
    """The request's schemaVersion; answers echo it (DUIS answers in the version it was asked in)."""

    @property
    def srv_class(self) -> str:
        return self.srv.srv_class()

    @property
    def body(self) -> etree._Element:
        """The SRV element inside ``sr:Body``. Requests that took the canonical fast path have no tree: the few
        checks that read the body (8.11, CV 5/6, 5.1) parse it here, once, from the bytes already checked."""
        if self.body_el is None:
            self.body_el = parse_hardened(self.raw).find(_BODY)[0]  # type: ignore[index]
        return self.body_el


class Gateway:
    """Runs the checks; stateful for counters and Pre-Commands awaiting their signed CV 5."""

    def __init__(self, cfg: EmulatorConfig, trust: TrustStore) -> None:
        self.cfg = cfg
        self.trust = trust
        self.schema = load_schema(cfg.schema_path) if cfg.schema_path else None
        self.devices = DeviceRule(cfg)
        self.counters = CounterWindow(cfg.counter_window_s)
        self._pending: OrderedDict[str, tuple[str, bytes]] = OrderedDict()
        self._pending_limit = 200_000
        self.role_model = role_model(cfg.user_roles.preset, cfg.user_roles.file)
        # The role model (preset, then users file), then per-user ``users.<EUI>.roles`` overrides; an EUI known to
        # none of them falls back to the roles its trusted certificate was added with.
        self._roles: dict[str, frozenset[str]] = {eui: u.roles for eui, u in self.role_model.users.items()}
        self._roles.update({eui: frozenset(u.roles) for eui, u in cfg.users.items() if u.roles is not None})

    # -- helpers ---------------------------------------------------------------------------
    def precommand_for(self, request_id: str, variant: str) -> bytes:
        """The opaque GBCS bytes the Transform returns; remembered until the signed CV 5 arrives."""
        payload = b"\xdd\x00PRECMD" + hashlib.sha256(request_id.encode()).digest()[:24]
        self._pending[request_id] = (variant, payload)
        self._pending.move_to_end(request_id)
        while len(self._pending) > self._pending_limit:
            self._pending.popitem(last=False)
        return payload

    # -- the checks ------------------------------------------------------------------------
    def check(self, service: str, data: bytes, admit: Callable[[str], bool] | None = None) -> Accepted | Rejected:
        """Every check in order; the first failure is the answer (module docstring)."""
        fast = recognise_request(data) if self.schema is None else None
        if fast is None:
            return self._check_tree(service, data, admit)
        out = self._check_fast(service, data, admit, fast)
        out.schema_version = _version(fast.schema_version)
        return out

    def _check_fast(self, service: str, data: bytes, admit: Callable[[str], bool] | None,
                    fast: CanonicalRequest) -> Accepted | Rejected:
        """The checks of a request the canonical byte grammar recognised (no tree)."""
        # Canonical fast path: the grammar proved the document well-formed with exactly the four header
        # elements and one SRV element in the Body; the remaining structural checks are the tree path's.
        rid, variant = fast.request_id, fast.variant
        m = _RID.match(rid)
        srv = get_srv(variant)
        problem = _header_problem(m, srv, variant, fast.service_reference)
        if problem is None:
            problem = _target_problem(m, srv)  # type: ignore[arg-type]
        if problem:
            return _rejected(C.E_SCHEMA, problem, rid, m, fast.service_reference, variant, srv)
        originator = m.group(1).upper()  # type: ignore[union-attr]
        if admit is not None and not admit(originator):
            return _rejected(C.E_THROTTLED, f"SECMP0067: {originator} is over its fair share", rid, m,
                             fast.service_reference, variant, srv)
        try:
            signer = canonical_signer(data, fast.signature, fast.begin, self.trust)
        except UnknownSignerError as exc:
            return _rejected(C.E_UNKNOWN_CERT, str(exc), rid, m, fast.service_reference, variant, srv)
        except SignatureError as exc:
            return _rejected(C.E_SIGNATURE, str(exc), rid, m, fast.service_reference, variant, srv)
        if signer is None:  # the raw bytes do not digest to the signed value: let the full check decide
            return self._check_tree(service, data, admit=None)
        return self._authorise(service, signer, rid, m, srv, int(fast.command_variant),  # type: ignore[arg-type]
                               fast.service_reference, data, None)

    def _check_tree(self, service: str, data: bytes, admit: Callable[[str], bool] | None) -> Accepted | Rejected:
        """The general path: hardened lxml parse, schema or structure, signature with c14n when needed."""
        try:
            root = parse_hardened(data)
        except XmlError as exc:
            return Rejected(C.E_MALFORMED, str(exc))
        if root.tag != _SR + "Request":
            return Rejected(C.E_MALFORMED, f"root element is {root.tag!r}, expected sr:Request in {NS_SR}")
        # One pass over the root's and the Header's children (lxml element access is the cost here).
        header = body_el = None
        for child in root:
            tag = child.tag
            if tag == _HEADER:
                if header is None:
                    header = child
            elif tag == _BODY and body_el is None:
                body_el = child
        fields: dict[str, str] = {}
        names: list[str] = []
        if header is not None:
            for el in header:
                tag = el.tag
                if isinstance(tag, str):
                    local = tag.rpartition("}")[2]
                    names.append(local)
                    if tag.startswith(_SR):
                        text = el.text
                        fields[local] = text.strip() if text else ""
        rid = fields.get("RequestID")
        m = _RID.match(rid or "")
        variant = fields.get("ServiceReferenceVariant")
        ref = fields.get("ServiceReference")
        srv = get_srv(variant) if variant else None
        out = self._check_parsed(service, data, admit, root, header, body_el, names, fields, rid, m, variant, ref, srv)
        out.schema_version = _version(root.get("schemaVersion"))
        return out

    def _check_parsed(self, service: str, data: bytes, admit: Callable[[str], bool] | None, root: etree._Element,
                      header: etree._Element | None, body_el: etree._Element | None, names: list[str],
                      fields: dict[str, str], rid: str | None, m: re.Match[str] | None, variant: str | None,
                      ref: str | None, srv: Srv | None) -> Accepted | Rejected:
        """The tree path's checks once the header fields are read (split out so both verdicts get the version)."""
        if self.schema is not None:
            errors = schema_errors(self.schema, root)
            if errors:
                return _rejected(C.E_SCHEMA, "schema: " + errors[0], rid, m, ref, variant, srv)
        problem = _structure(root, header, body_el, names, fields, m, srv)
        if problem:
            return _rejected(C.E_SCHEMA, problem, rid, m, ref, variant, srv)
        assert m is not None and srv is not None
        originator = m.group(1).upper()
        try:
            cv = int(fields["CommandVariant"])
        except ValueError:
            return _rejected(C.E_SCHEMA, "CommandVariant is not an integer", rid, m, ref, variant, srv)
        if admit is not None and not admit(originator):
            return _rejected(C.E_THROTTLED, f"SECMP0067: {originator} is over its fair share", rid, m, ref, variant,
                             srv)
        try:
            signer = verify_enveloped(root, self.trust, raw=data).signer
        except UnknownSignerError as exc:
            return _rejected(C.E_UNKNOWN_CERT, str(exc), rid, m, ref, variant, srv)
        except SignatureError as exc:
            return _rejected(C.E_SIGNATURE, str(exc), rid, m, ref, variant, srv)
        return self._authorise(service, signer, rid, m, srv, cv, ref, data, body_el[0])  # type: ignore[index,arg-type]

    def _authorise(self, service: str, signer: Signer, rid: str, m: re.Match[str], srv: Srv, cv: int,
                   ref: str | None, data: bytes, body: etree._Element | None) -> Accepted | Rejected:
        """The checks after the signature, shared by both paths: authority, CV and URL, counter, SECMP0192."""
        originator = m.group(1).upper()
        if signer.eui != originator:
            return _rejected(C.E_ROLE_USER, f"signed by {signer.eui}, but the RequestID originator is {originator}",
                             rid, m, ref, srv.variant, srv)
        if originator == DCC_EUI:
            return _rejected(C.E_ROLE_USER, f"{originator} is the DCC, not a Service User: the DCC answers Service "
                             "Requests, it does not send them through the User Gateway", rid, m, ref, srv.variant, srv)
        roles = self._roles.get(originator, signer.roles)
        if not roles:
            return _rejected(C.E_ROLE_USER, f"{originator} holds no Service User role", rid, m, ref, srv.variant,
                             srv)
        if not roles & srv.eligible_roles:
            return _rejected(C.E_ROLE_SRV, f"roles {sorted(roles)} may not send {srv.variant} "
                             f"(eligible: {sorted(srv.eligible_roles) or 'none'})", rid, m, ref, srv.variant, srv)
        allowed = (8,) if srv.non_device else (4, 5, 6) if srv.critical else (1, 2)
        if cv not in allowed:
            return _rejected(C.E_CV, f"CV {cv} is not applicable to {srv.variant} (expected {allowed})", rid, m, ref,
                             srv.variant, srv)
        if _CV_SERVICE[cv] != service:
            return _rejected(C.E_URL, f"CV {cv} belongs to {self.cfg.paths[_CV_SERVICE[cv]]}, not this URL", rid, m,
                             ref, srv.variant, srv)
        target, counter = m.group(2).upper(), int(m.group(3))
        req = Accepted(request_id=rid, originator=originator, target=target, counter=counter, cv=cv, srv=srv,
                       signer=signer, smets1=self.devices.is_smets1(target), raw=data, body_el=body)
        if cv in (5, 6):
            problem = self._signed_precommand(req)
            if problem:
                return _rejected(C.E_PRECOMMAND, problem, rid, m, ref, srv.variant, srv)
        elif not self.counters.accept(originator, counter):
            return _rejected(C.E_REPLAY, f"RequestID counter {counter} is not increasing for {originator} "
                             f"(replayed, or more than {self.cfg.counter_window_s:g} s behind newer ones)",
                             rid, m, ref, srv.variant, srv)
        if srv.variant == "5.1" and self.cfg.secmp0192.enabled:
            problem = self._secmp0192(req)
            if problem:
                return _rejected(C.E_SECMP0192, problem, rid, m, ref, srv.variant, srv)
        return req

    def _signed_precommand(self, req: Accepted) -> str | None:
        pending = self._pending.get(req.request_id)
        if pending is None:
            return f"no Pre-Command was issued for {req.request_id} (send CV 4 to the Transform service first)"
        variant, payload = pending
        if variant != req.srv.variant:
            return f"Pre-Command {req.request_id} was for {variant}, not {req.srv.variant}"
        if etree.QName(req.body).localname != "SignedPreCommand":
            return "CV 5/6 needs a SignedPreCommand body"
        text = req.body.findtext(_SR + "GBCSPayload")
        try:
            signed = base64.b64decode("".join((text or "").split()), validate=True)
        except (binascii.Error, ValueError):
            return "SignedPreCommand GBCSPayload is not base64"
        if self.cfg.strict_precommand and not signed.startswith(payload):
            return "SignedPreCommand GBCSPayload does not carry the issued Pre-Command"
        del self._pending[req.request_id]
        req.precommand = payload
        return None

    def _secmp0192(self, req: Accepted) -> str | None:
        scheduled = (req.body.findtext(_SR + "DSPScheduledServiceReferenceVariant") or "").strip()
        device = (req.body.findtext(_SR + "DeviceID") or "").strip().upper()
        req.extras["scheduled_variant"] = scheduled
        req.extras["device"] = device
        smets1 = self.devices.is_smets1(device) if device else False
        req.extras["device_smets1"] = smets1
        if scheduled in SECMP0192_VARIANTS and not smets1:
            return (f"SECMP0192: DSP scheduling of SRV {scheduled} is available for SMETS1 devices only; "
                    f"{device or 'the device'} is SMETS2")
        return None


_VERSION = re.compile(r"^[0-9]{1,2}\.[0-9]{1,2}$")


def _version(text: str | None) -> str | None:
    """A request's schemaVersion if it is one an answer can carry (``5.4``), else None (answers say 5.1)."""
    if not text:
        return None
    found = _VERSIONS.get(text)
    if found is None:
        found = text.strip() if _VERSION.match(text.strip()) else ""
        if len(_VERSIONS) < 64:  # a handful of versions exist; hostile input must not grow this
            _VERSIONS[text] = found
    return found or None


_VERSIONS: dict[str, str] = {}


def _rejected(code: str, reason: str, rid: str | None, m: re.Match[str] | None, ref: str | None,
              variant: str | None, srv: Srv | None) -> Rejected:
    """A rejection with as much context as the request gave (built only when rejecting: off the hot path)."""
    return Rejected(code, reason, request_id=rid if m else None, srv=ref, srv_variant=variant,
                    srv_class=srv.srv_class() if srv else "unknown", originator=m.group(1).upper() if m else None)


def _header_problem(m: re.Match[str] | None, srv: Srv | None, variant: str | None, ref: str | None) -> str | None:
    if m is None:
        return "RequestID is not 'originator-EUI:target-EUI:counter'"
    if srv is None:
        return f"ServiceReferenceVariant {variant!r} is not a DUIS SRV variant"
    if ref != srv.reference:
        return f"ServiceReference {ref!r} does not match variant {srv.variant}"
    return None


def _target_problem(m: re.Match[str], srv: Srv) -> str | None:
    if srv.non_device and m.group(2).upper() != DCC_EUI:
        return f"non-device SRV {srv.variant} must target the DCC ({DCC_EUI})"
    return None


def _structure(root: etree._Element, header: etree._Element | None, body: etree._Element | None,
               names: list[str], fields: dict[str, str], m: re.Match[str] | None, srv: Srv | None) -> str | None:
    if header is None:
        return "sr:Header is missing"
    missing = [n for n in _HEADER_REQUIRED if n not in names]
    if missing:
        return f"sr:Header lacks {', '.join(missing)}"
    extra = [n for n in names if n not in _HEADER_ALLOWED]
    if extra:
        return f"unexpected sr:Header element {extra[0]}"
    problem = _header_problem(m, srv, fields.get("ServiceReferenceVariant"), fields.get("ServiceReference"))
    if problem:
        return problem
    if not root.get("schemaVersion"):
        return "sr:Request lacks schemaVersion"
    kids = [el for el in body if isinstance(el.tag, str)] if body is not None else []
    if len(kids) != 1 or not kids[0].tag.startswith(_SR):
        return "sr:Body must hold exactly one SRV element"
    return _target_problem(m, srv)  # type: ignore[arg-type]
