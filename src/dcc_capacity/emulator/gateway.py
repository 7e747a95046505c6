"""The DCC User Gateway's checks on one request: each failure is a distinct DUIS error, never a crash.

Order (cheap before expensive, identity before authority): well-formed XML
(hardened) -> DUIS namespace and structure (or the official XSD when
configured) -> SECMP0067 admission for the claimed originator (so a burst is
refused before it costs a signature check) -> signature and certificate ->
originator matches the signer -> role eligible for the SRV -> Command Variant
right for the SRV -> URL right for the Command Variant -> RequestID counter
increasing (or a CV 4 Pre-Command awaiting its signed CV 5) -> SECMP0192.
"""

from __future__ import annotations

import base64
import binascii
import csv
import hashlib
import re
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from lxml import etree

from ..catalogue import DCC_EUI, Srv, get_srv
from ..duis import NS_SR
from ..duis.schema import load_schema, schema_errors
from ..duis.verify import (
    SignatureError,
    Signer,
    TrustStore,
    UnknownSignerError,
    XmlError,
    parse_hardened,
    verify_enveloped,
)
from ..errors import InputError
from . import codes as C
from .config import EmulatorConfig

__all__ = ["Accepted", "DeviceRule", "Gateway", "Rejected", "SECMP0192_VARIANTS"]

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
    body: etree._Element
    signer: Signer
    smets1: bool
    precommand: bytes | None = None
    extras: dict = field(default_factory=dict)

    @property
    def srv_class(self) -> str:
        return self.srv.srv_class()


class DeviceRule:
    """Which devices are SMETS1: a registry CSV, explicit EUIs, EUI prefixes, the project's Fleet, or all (S1SP).

    Order: registry and ``devices.smets1`` EUIs, then ``all_smets1``/S1SP, then the
    prefix rule, then (when ``fleet_seed``/``fleet_size`` are set) the Fleet's own
    record of the installation's generation; anything else is SMETS2. Fleet
    look-ups regenerate an installation, so answers are cached per EUI.
    """

    _CACHE_LIMIT = 200_000

    def __init__(self, cfg: EmulatorConfig) -> None:
        d = cfg.devices
        self.all = d.all_smets1 or cfg.sp == "S1SP"
        self.prefixes = tuple(p.upper() for p in d.smets1_prefixes)
        self.known: dict[str, bool] = {e.upper(): True for e in d.smets1}
        if d.registry:
            self.known.update(_load_registry(Path(d.registry)))
        self.fleet = None
        if cfg.fleet_seed is not None and cfg.fleet_size is not None:
            from ..fleet import Fleet

            self.fleet = Fleet(cfg.fleet_seed, cfg.fleet_size)
        self._cache: dict[str, bool] = {}

    def is_smets1(self, eui: str) -> bool:
        eui = eui.upper()
        hit = self.known.get(eui)
        if hit is not None:
            return hit
        if self.all or eui.startswith(self.prefixes):
            return True
        if self.fleet is None:
            return False
        hit = self._cache.get(eui)
        if hit is None:
            found = self.fleet.find(eui)
            hit = found is not None and found[0].smets == 1
            if len(self._cache) >= self._CACHE_LIMIT:
                self._cache.clear()
            self._cache[eui] = hit
        return hit


def _load_registry(path: Path) -> dict[str, bool]:
    try:
        with path.open(newline="", encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh))
    except OSError as exc:
        raise InputError(f"cannot read device registry: {exc.strerror}", file=path, key="devices.registry") from None
    out: dict[str, bool] = {}
    for i, row in enumerate(rows, start=2):
        dev, gen = (row.get("device_id") or "").strip().upper(), (row.get("smets") or "").strip().upper()
        if not dev or gen not in ("SMETS1", "SMETS2"):
            raise InputError("need device_id and smets (SMETS1 or SMETS2)", file=path, line=i)
        out[dev] = gen == "SMETS1"
    return out


class _Counters:
    """Per-originator RequestID counters: increasing, tolerating reordering of up to ``window`` below the top.

    Concurrent senders sharing one originator's counter deliver slightly out
    of order; a counter is accepted if it is above the highest seen, or within
    ``window`` below it and never seen before. Replays and old counters are refused.
    """

    def __init__(self, window: int) -> None:
        self.window = window
        self._state: dict[str, tuple[list[int], set[int]]] = {}

    def accept(self, originator: str, counter: int) -> bool:
        st = self._state.get(originator)
        if st is None:
            self._state[originator] = ([counter], {counter})
            return True
        top, seen = st
        high = top[0]
        if counter > high:
            top[0] = counter
            seen.add(counter)
            if len(seen) > 2 * self.window + 16:
                floor = counter - self.window
                seen.intersection_update({c for c in seen if c >= floor})
            return True
        if counter in seen or high - counter > self.window:
            return False
        seen.add(counter)
        return True


class Gateway:
    """Runs the checks; stateful for counters and Pre-Commands awaiting their signed CV 5."""

    def __init__(self, cfg: EmulatorConfig, trust: TrustStore) -> None:
        self.cfg = cfg
        self.trust = trust
        self.schema = load_schema(cfg.schema_path) if cfg.schema_path else None
        self.devices = DeviceRule(cfg)
        self._counters = _Counters(cfg.counter_window)
        self._pending: OrderedDict[str, tuple[str, bytes]] = OrderedDict()
        self._pending_limit = 200_000
        self._roles = {eui: frozenset(u.roles) for eui, u in cfg.users.items() if u.roles is not None}

    # -- helpers ---------------------------------------------------------------------------
    def precommand_for(self, request_id: str, variant: str) -> bytes:
        """The opaque GBCS bytes the Transform returns; remembered until the signed CV 5 arrives."""
        payload = b"\xdd\x00PRECMD" + hashlib.sha256(request_id.encode()).digest()[:24]
        self._pending[request_id] = (variant, payload)
        self._pending.move_to_end(request_id)
        while len(self._pending) > self._pending_limit:
            self._pending.popitem(last=False)
        return payload

    def _roles_of(self, signer: Signer, eui: str) -> frozenset[str]:
        return self._roles.get(eui, signer.roles)

    # -- the checks ------------------------------------------------------------------------
    def check(self, service: str, data: bytes, admit: Callable[[str], bool] | None = None) -> Accepted | Rejected:
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
        srv = get_srv(variant) if variant else None

        def base() -> dict:
            return dict(request_id=rid if m else None, srv=fields.get("ServiceReference"), srv_variant=variant,
                        srv_class=srv.srv_class() if srv else "unknown",
                        originator=m.group(1).upper() if m else None)

        if self.schema is not None:
            errors = schema_errors(self.schema, root)
            if errors:
                return Rejected(C.E_SCHEMA, "schema: " + errors[0], **base())
        problem = self._structure(root, header, body_el, names, fields, m, srv)
        if problem:
            return Rejected(C.E_SCHEMA, problem, **base())
        assert m is not None and srv is not None
        originator, target, counter = m.group(1).upper(), m.group(2).upper(), int(m.group(3))
        try:
            cv = int(fields["CommandVariant"])
        except ValueError:
            return Rejected(C.E_SCHEMA, "CommandVariant is not an integer", **base())
        if admit is not None and not admit(originator):
            return Rejected(C.E_THROTTLED, f"SECMP0067: {originator} is over its fair share", **base())
        try:
            signer = verify_enveloped(root, self.trust, raw=data).signer
        except UnknownSignerError as exc:
            return Rejected(C.E_UNKNOWN_CERT, str(exc), **base())
        except SignatureError as exc:
            return Rejected(C.E_SIGNATURE, str(exc), **base())
        if signer.eui != originator:
            return Rejected(C.E_ROLE_USER, f"signed by {signer.eui}, but the RequestID originator is {originator}",
                            **base())
        roles = self._roles_of(signer, originator)
        if not roles:
            return Rejected(C.E_ROLE_USER, f"{originator} holds no Service User role", **base())
        if not roles & srv.eligible_roles:
            return Rejected(C.E_ROLE_SRV, f"roles {sorted(roles)} may not send {srv.variant} "
                            f"(eligible: {sorted(srv.eligible_roles) or 'none'})", **base())
        allowed = (8,) if srv.non_device else (4, 5, 6) if srv.critical else (1, 2)
        if cv not in allowed:
            return Rejected(C.E_CV, f"CV {cv} is not applicable to {srv.variant} (expected {allowed})", **base())
        if _CV_SERVICE[cv] != service:
            return Rejected(C.E_URL, f"CV {cv} belongs to {self.cfg.paths[_CV_SERVICE[cv]]}, not this URL", **base())
        req = Accepted(request_id=rid, originator=originator, target=target, counter=counter, cv=cv, srv=srv,  # type: ignore[arg-type]
                       body=body_el[0], signer=signer, smets1=self.devices.is_smets1(target))  # type: ignore[index]
        if cv in (5, 6):
            problem = self._signed_precommand(req)
            if problem:
                return Rejected(C.E_PRECOMMAND, problem, **base())
        elif not self._counters.accept(originator, counter):
            return Rejected(C.E_REPLAY, f"RequestID counter {counter} is not increasing for {originator}", **base())
        if srv.variant == "5.1" and self.cfg.secmp0192.enabled:
            problem = self._secmp0192(req)
            if problem:
                return Rejected(C.E_SECMP0192, problem, **base())
        return req

    def _structure(self, root: etree._Element, header: etree._Element | None, body: etree._Element | None,
                   names: list[str], fields: dict[str, str], m: re.Match[str] | None, srv: Srv | None) -> str | None:
        if header is None:
            return "sr:Header is missing"
        missing = [n for n in _HEADER_REQUIRED if n not in names]
        if missing:
            return f"sr:Header lacks {', '.join(missing)}"
        extra = [n for n in names if n not in _HEADER_ALLOWED]
        if extra:
            return f"unexpected sr:Header element {extra[0]}"
        if m is None:
            return "RequestID is not 'originator-EUI:target-EUI:counter'"
        if srv is None:
            return f"ServiceReferenceVariant {fields.get('ServiceReferenceVariant')!r} is not a DUIS SRV variant"
        if fields.get("ServiceReference") != srv.reference:
            return f"ServiceReference {fields.get('ServiceReference')!r} does not match variant {srv.variant}"
        if not root.get("schemaVersion"):
            return "sr:Request lacks schemaVersion"
        kids = [el for el in body if isinstance(el.tag, str)] if body is not None else []
        if len(kids) != 1 or not kids[0].tag.startswith(_SR):
            return "sr:Body must hold exactly one SRV element"
        if srv.non_device and m.group(2).upper() != DCC_EUI:
            return f"non-device SRV {srv.variant} must target the DCC ({DCC_EUI})"
        return None

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
