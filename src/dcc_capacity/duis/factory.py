"""Render and sign one DUIS request: the load generator calls this for every request it sends.

``RequestFactory.build(variant, installation)`` picks the target device and
the originating Service User the way a real user would (the installation's
supplier, network operator, export supplier or other user: the first whose
roles the SRV allows), renders the body template, writes the Header by string
formatting and signs the canonical bytes. No XML parsing happens here; the
per-request cost is one template render, one SHA-256 and one ECDSA signature.

For the critical round trip (CommandVariant 4 returns a Pre-Command), the
user signs the GBCS payload and sends it back with the same RequestID:
:meth:`RequestFactory.signed_precommand` builds that CommandVariant 5 request.
"""

from __future__ import annotations

import base64
import datetime as dt
import re
import time
from collections.abc import Iterable, Mapping
from typing import Any, NamedTuple

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509 import Certificate

from dcc_capacity.duis.dsig import ECDSA_SHA256, der_to_raw
from dcc_capacity.duis.pki import DEFAULT_USERS, Credential, TestPKI
from dcc_capacity.duis.requestid import RequestIdAllocator
from dcc_capacity.duis.signing import ROOT_CLOSE, ROOT_OPEN, Signer
from dcc_capacity.duis.templates import TemplateInfo, precompile, render_over, template_globals, template_info
from dcc_capacity.errors import InputError
from dcc_capacity.model.catalogue import DCC_EUI
from dcc_capacity.model.fleet import Fleet, Installation

__all__ = ["SCHEDULABLE", "SERVICE_PATHS", "RequestFactory", "SignedRequest", "allowed_command_variants",
           "single_user_factory"]

SCHEDULABLE = ("4.6.1", "4.8.1", "4.14", "4.3", "4.4.3")
"""What the 5.1 template can schedule: DUIS V5.1's 4.6.1, 4.8.1, 4.14; SECMP0192's 4.3 and 4.4.3 (SMETS1)."""

SERVICE_PATHS: dict[int, str] = {
    1: "/api/v1/serviceS", 3: "/api/v1/serviceS", 5: "/api/v1/serviceS", 7: "/api/v1/serviceS",
    4: "/api/v1/serviceT",
    2: "/api/v1/serviceD", 6: "/api/v1/serviceD", 8: "/api/v1/serviceD",
}
"""DCC Boxed's web service for each CommandVariant (send command, transform, non-device)."""

_KNOWN_ROLES = {u.eui: u.roles for u in DEFAULT_USERS}
_XS_DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")


def allowed_command_variants(info: TemplateInfo) -> frozenset[int]:
    """CommandVariants a Service User may send for this SRV (as a Service Request, not a Pre-Command)."""
    if info.srv.non_device:
        return frozenset({8})
    if info.srv.critical:
        return frozenset({4})
    return frozenset({1, 2, 3})


class SignedRequest(NamedTuple):
    """One signed request ready to POST, with what the records and the correlator need.

    A NamedTuple rather than a frozen dataclass: one is made per request, and a tuple is cheaper to create.
    """

    request_id: str
    variant: str
    command_variant: int
    originator: str
    target: str
    body: bytes

    @property
    def path(self) -> str:
        """The web service path this request goes to (DCC Boxed layout)."""
        return SERVICE_PATHS[self.command_variant]


_FIELD_PRODUCERS: dict[str, Any] = {
    # Per-request values: computed only for the templates that use them (see TemplateInfo.fields).
    "utrn": lambda f, inst, seq, _o: f"{(inst.index * 7_919 + seq * 104_729) % 10**20:020d}",
    "balance_adjustment": lambda f, inst, seq, _o: 1000 + inst.index % 4000,
    "debt": lambda f, inst, seq, _o: inst.index % 10_000,
    "join_time": lambda f, inst, seq, _o: 90,
    "message": lambda f, inst, seq, _o: "Your meter is working normally",
    "standing_charge": lambda f, inst, seq, _o: 5000,
    "unit_price": lambda f, inst, seq, _o: 2800,
    "night_price": lambda f, inst, seq, _o: 1500,
    "user_cert_b64": lambda f, inst, seq, o: f._cert_b64.get(o, ""),
    "ca_cert_b64": lambda f, inst, seq, o: f._ca_b64 or f._cert_b64.get(o, ""),
}


def _dt(value: dt.datetime) -> str:
    """DUIS date-time text: UTC, two fractional digits, ``Z`` (as in the RTDS templates)."""
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 10000:02d}Z"


def _b64_der(cert: Certificate) -> str:
    return base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode()


class RequestFactory:
    """Builds signed requests for a fleet, signing as whichever Service User sends each one.

    ``signers`` are the Service Users this generator holds keys for (by EUI).
    ``roles`` gives each one's SEC roles; by default they come from
    ``pki.DEFAULT_USERS`` (whose EUIs match DCC Boxed's test users) or the
    credential. ``clock`` (seconds since the epoch) is injectable so a test
    can render byte-identical bodies.
    """

    def __init__(self, signers: Iterable[Signer], fleet: Fleet | None = None, *,
                 allocator: RequestIdAllocator | None = None, ca_cert: Certificate | None = None,
                 roles: Mapping[str, frozenset[str]] | None = None, clock=time.time) -> None:  # noqa: ANN001
        self.signers: dict[str, Signer] = {}
        self.roles: dict[str, frozenset[str]] = {}
        for signer in signers:
            eui = (signer.eui or "").upper()
            if not eui:
                raise InputError("the signing certificate carries no EUI-64; give the originator", key="originator")
            self.signers[eui] = signer
            self.roles[eui] = frozenset((roles or {}).get(eui) or signer.credential.roles or _KNOWN_ROLES.get(eui)
                                        or frozenset())
        if not self.signers:
            raise InputError("no signing credential", key="signing-key")
        self.fleet = fleet if fleet is not None else Fleet()
        self.allocator = allocator if allocator is not None else RequestIdAllocator()
        self._clock = clock
        self._ca_b64 = _b64_der(ca_cert) if ca_cert is not None else None
        self._cert_b64 = {eui: _b64_der(s.credential.cert) for eui, s in self.signers.items()}
        self._times_second = -1
        self._times: dict[str, str] = {}
        self._seq = 0
        self._producer_cache: dict[str, list[tuple[str, Any]]] = {}
        precompile()

    @classmethod
    def from_pki(cls, pki: TestPKI, fleet: Fleet | None = None, **kwargs: Any) -> RequestFactory:
        """A factory signing as every Service User of the generated test PKI."""
        return cls([Signer(c) for c in pki.users()], fleet, ca_cert=pki.ca_cert, **kwargs)

    # --- time-dependent template fields, recomputed once a second -------------------------------

    def _time_fields(self) -> dict[str, str]:
        now = self._clock()
        second = int(now)
        if second != self._times_second:
            t = dt.datetime.fromtimestamp(second, dt.timezone.utc)
            midnight = t.replace(hour=0, minute=0, second=0)
            self._times = {
                **template_globals(),
                "now": _dt(t),
                "today": t.date().isoformat(),
                "log_start": _dt(midnight - dt.timedelta(days=1)),
                "log_end": _dt(midnight),
                "month_start": _dt(midnight.replace(day=1)),
                "schedule_start": (t.date() + dt.timedelta(days=1)).isoformat(),
                "year_end": t.date().replace(month=12, day=31).isoformat(),
            }
            self._times_second = second
        return self._times

    def _producers(self, info: TemplateInfo) -> list[tuple[str, Any]]:
        found = self._producer_cache.get(info.variant)
        if found is None:
            found = [(name, _FIELD_PRODUCERS[name]) for name in sorted(info.fields) if name in _FIELD_PRODUCERS]
            self._producer_cache[info.variant] = found
        return found

    # --- choosing who sends what to which device -----------------------------------------------

    def originator_for(self, info: TemplateInfo, inst: Installation, originator: str | None = None) -> str:
        """The EUI of the Service User that sends ``info``'s SRV for ``inst``; InputError when none may."""
        eligible = info.srv.eligible_roles
        if originator is not None:
            eui = originator.upper()
            if eui not in self.signers:
                raise InputError(f"no signing key for Service User {eui}; have {', '.join(self.signers)}",
                                 key="originator")
            if not self.roles[eui] & eligible:
                held = ",".join(sorted(self.roles[eui])) or "none known"
                raise InputError(f"Service User {eui} (roles {held}) may not send SRV {info.variant} "
                                 f"(eligible roles: {','.join(sorted(eligible)) or 'none'})", key="originator")
            return eui
        for user in inst.users():
            if user.eui in self.signers and self.roles[user.eui] & eligible:
                return user.eui
        for eui, roles in self.roles.items():
            if roles & eligible:
                return eui
        raise InputError(f"none of the Service Users with keys ({', '.join(self.signers)}) may send SRV "
                         f"{info.variant} (eligible roles: {','.join(sorted(eligible)) or 'none'})", key="originator")

    def context(self, info: TemplateInfo, inst: Installation, *, target_type: str | None = None,
                execution_datetime: str | None = None, scheduled_variant: str = "4.6.1",
                originator: str = "", extra: Mapping[str, Any] | None = None) -> tuple[str, dict[str, Any]]:
        """(target EUI, template context) for one request."""
        target, fields = self._fields(info, inst, target_type=target_type, execution_datetime=execution_datetime,
                                      scheduled_variant=scheduled_variant, originator=originator, extra=extra)
        return target, {**self._time_fields(), **fields}

    def _fields(self, info: TemplateInfo, inst: Installation, *, target_type: str | None,
                execution_datetime: str | None, scheduled_variant: str, originator: str,
                extra: Mapping[str, Any] | None) -> tuple[str, dict[str, Any]]:
        """(target EUI, the request's own template fields); the per-second ones are in :meth:`_time_fields`."""
        prefs = (target_type,) if target_type else None
        if info.targets == ("DCC",):
            target = DCC_EUI
            subject = inst.first_device(prefs or info.subject)
            device = None
            if subject is None:
                raise InputError(f"installation {inst.index} has no {'/'.join(prefs or info.subject)} "
                                 f"for SRV {info.variant}", key="target")
        else:
            device = inst.first_device(prefs or info.targets)
            if device is None:
                raise InputError(f"installation {inst.index} has no {'/'.join(prefs or info.targets)} "
                                 f"for SRV {info.variant}", key="target")
            target = device.eui
            subject = device
        self._seq += 1
        seq = self._seq
        ctx: dict[str, Any] = {"inst": inst, "subject": subject, "device": device, "target_type": subject.type,
                               "execution_datetime": execution_datetime, "scheduled_variant": scheduled_variant}
        for name, produce in self._producers(info):
            ctx[name] = produce(self, inst, seq, originator)
        if extra:
            ctx.update(extra)
        return target, ctx

    # --- building requests ------------------------------------------------------------------------

    def build_unsigned(self, variant: str, installation: Installation | int | None = None, *,
                       originator: str | None = None, command_variant: int | None = None,
                       target_type: str | None = None, execution_datetime: str | None = None,
                       scheduled_variant: str = "4.6.1",
                       extra: Mapping[str, Any] | None = None) -> tuple[str, str, int, str, bytes]:
        """(request_id, originator, CV, target, canonical unsigned bytes) for one request."""
        info = template_info(variant)
        if installation is None:
            installation = 0
        inst = self.fleet[installation] if isinstance(installation, int) else installation
        cv = command_variant if command_variant is not None else info.srv.command_variant
        if cv not in allowed_command_variants(info):
            raise InputError(f"CommandVariant {cv} is not valid for SRV {variant} "
                             f"(allowed: {', '.join(map(str, sorted(allowed_command_variants(info))))})",
                             key="command-variant")
        if execution_datetime is not None:
            if info.srv.future_dated == "No":
                raise InputError(f"SRV {variant} cannot be future-dated", key="execution-datetime")
            if not _XS_DATETIME.match(execution_datetime):
                raise InputError(f"not an xs:dateTime such as 2030-01-15T09:00:00Z (got {execution_datetime!r})",
                                 key="execution-datetime")
        if variant == "5.1" and scheduled_variant not in SCHEDULABLE:
            raise InputError(f"5.1 Create Schedule here can schedule {', '.join(SCHEDULABLE)} "
                             f"(got {scheduled_variant!r})", key="scheduled-variant")
        sender = self.originator_for(info, inst, originator)
        target, fields = self._fields(info, inst, target_type=target_type, execution_datetime=execution_datetime,
                                      scheduled_variant=scheduled_variant, originator=sender, extra=extra)
        body = render_over(variant, self._time_fields(), fields)
        request_id = self.allocator.request_id(sender, target)
        unsigned = (
            f"{ROOT_OPEN}<sr:Header><sr:RequestID>{request_id}</sr:RequestID>"
            f"<sr:CommandVariant>{cv}</sr:CommandVariant>"
            f"<sr:ServiceReference>{info.srv.reference}</sr:ServiceReference>"
            f"<sr:ServiceReferenceVariant>{variant}</sr:ServiceReferenceVariant></sr:Header>"
            f"<sr:Body>{body}</sr:Body>{ROOT_CLOSE}"
        ).encode()
        return request_id, sender, cv, target, unsigned

    def build(self, variant: str, installation: Installation | int | None = None, *, originator: str | None = None,
              command_variant: int | None = None, target_type: str | None = None,
              execution_datetime: str | None = None, scheduled_variant: str = "4.6.1",
              extra: Mapping[str, Any] | None = None) -> SignedRequest:
        """One signed request of ``variant`` for ``installation`` (an Installation or a fleet index).

        ``originator`` (EUI; default: who would send it), ``command_variant`` (default: the catalogue's),
        ``target_type`` (e.g. ``"GSME"``), ``execution_datetime`` (future-dated), ``scheduled_variant``
        (for 5.1), ``extra`` (more template fields).
        """
        request_id, sender, cv, target, unsigned = self.build_unsigned(
            variant, installation, originator=originator, command_variant=command_variant, target_type=target_type,
            execution_datetime=execution_datetime, scheduled_variant=scheduled_variant, extra=extra)
        return SignedRequest(request_id, variant, cv, sender, target, self.signers[sender].sign(unsigned))

    def signed_precommand(self, request_id: str, variant: str, gbcs_payload: bytes, *,
                          command_variant: int = 5, execution_datetime: str | None = None) -> SignedRequest:
        """The CommandVariant 5 (6, 7) request carrying the Pre-Command the DCC returned for ``request_id``.

        The Service User signs the GBCS payload with its key and sends it under the same RequestID.
        The GBCS signature is appended as ``0x40 || r || s`` (ECDSA P-256 over SHA-256 of the
        payload): the structure of a GBCS signed command, though the emulator is not a GBCS parser.
        """
        if command_variant not in (5, 6, 7):
            raise InputError(f"a signed Pre-Command goes as CommandVariant 5, 6 or 7 (got {command_variant})",
                             key="command-variant")
        info = template_info(variant)
        originator, target, _ = request_id.split(":")
        signer = self.signers.get(originator.upper())
        if signer is None:
            raise InputError(f"no signing key for Service User {originator}", key="originator")
        key = signer.credential.key
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        signed_payload = gbcs_payload + b"\x40" + der_to_raw(key.sign(gbcs_payload, ECDSA_SHA256))
        fd = f"<sr:ExecutionDateTime>{execution_datetime}</sr:ExecutionDateTime>" if execution_datetime else ""
        unsigned = (
            f"{ROOT_OPEN}<sr:Header><sr:RequestID>{request_id}</sr:RequestID>"
            f"<sr:CommandVariant>{command_variant}</sr:CommandVariant>"
            f"<sr:ServiceReference>{info.srv.reference}</sr:ServiceReference>"
            f"<sr:ServiceReferenceVariant>{variant}</sr:ServiceReferenceVariant></sr:Header>"
            f"<sr:Body><sr:SignedPreCommand>{fd}<sr:GBCSPayload>{base64.b64encode(signed_payload).decode()}"
            f"</sr:GBCSPayload></sr:SignedPreCommand></sr:Body>{ROOT_CLOSE}"
        ).encode()
        return SignedRequest(request_id, variant, command_variant, originator.upper(), target.upper(),
                             signer.sign(unsigned))


def single_user_factory(credential: Credential, fleet: Fleet | None = None, *,
                        roles: frozenset[str] | None = None, **kwargs: Any) -> RequestFactory:
    """A factory that signs everything as one Service User (``render --signing-key``)."""
    signer = Signer(credential)
    role_map = {credential.eui.upper(): roles} if roles and credential.eui else None
    return RequestFactory([signer], fleet, roles=role_map, **kwargs)
