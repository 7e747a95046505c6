"""Import the DCC's Reference Test Data Set (RTDS) as extra request templates, with our RequestIDs and signing.

The RTDS (npm ``@smartdcc/duis-templates``, GPL-3.0) is the DCC's own set of
DUIS requests, one or more per SRV and GBCS use case. Its licence is not this
project's, so the suite ships none of it: a user installs it themselves
(``npm pack @smartdcc/duis-templates`` and unpack, or ``npm install``) and
points ``dcc-capacity render VARIANT --from-rtds DIR`` (or :func:`load_rtds`)
at the folder.

What is taken from a template: its SRV variant, CommandVariant, target device
and the Body's SRV element, values and all. What is ours: the originator (one
of our Service Users whose roles may send the SRV), the RequestID counter (the
RTDS's are placeholders, the same 1000-1200 in many files, which a gateway
refuses as replays) and the signature. The body is brought into the suite's
canonical form (exclusive C14N, no whitespace between elements, ``xmlns:sr``
declared once on the root), so the result is signed by the same fast signer
as every rendered request and takes the emulator's fast path.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from lxml import etree

from dcc_capacity.duis import NS_SR
from dcc_capacity.duis.factory import RequestFactory, SignedRequest
from dcc_capacity.duis.signing import ROOT_CLOSE, ROOT_OPEN
from dcc_capacity.duis.xmlsafe import XmlError, parse_hardened
from dcc_capacity.errors import InputError
from dcc_capacity.model.catalogue import DCC_EUI, Srv, get_srv

__all__ = ["RtdsTemplate", "build_from_rtds", "load_rtds"]

_SR = "{" + NS_SR + "}"
_EUI = r"[0-9A-Fa-f]{2}(?:-[0-9A-Fa-f]{2}){7}"
_RID = re.compile(rf"^({_EUI}):({_EUI}):[0-9]+$")
_DECL_SR = f' xmlns:sr="{NS_SR}"'


@dataclass(frozen=True, slots=True)
class RtdsTemplate:
    """One RTDS request, reduced to what a new request needs."""

    name: str
    """File name without its folder (e.g. ``GCS16a_4.6.1_SUCCESS_REQUEST_DUIS.XML``)."""
    srv: Srv
    command_variant: int
    target: str
    """The template's RequestID target (a device, or the DCC for non-device SRVs)."""
    body: str
    """The Body's SRV element in canonical form, without the ``xmlns:sr`` declaration (the root has it)."""

    @property
    def variant(self) -> str:
        return self.srv.variant


def _strip_whitespace(el: etree._Element) -> None:
    """Drop comments and whitespace-only text between elements (DUIS bodies have no mixed content)."""
    for node in list(el.iter(etree.Comment, etree.ProcessingInstruction)):
        parent = node.getparent()
        if parent is not None:
            tail = node.tail
            prev = node.getprevious()
            if tail and tail.strip():
                if prev is not None:
                    prev.tail = (prev.tail or "") + tail
                else:
                    parent.text = (parent.text or "") + tail
            parent.remove(node)
    for node in el.iter():
        if len(node) and node.text is not None and not node.text.strip():
            node.text = None
        if node.tail is not None and not node.tail.strip():
            node.tail = None


def _canonical_body(srv_el: etree._Element, where: Path) -> str:
    """The SRV element as canonical text in the suite's form (its namespace declared by the root)."""
    if any(el.prefix not in (None, "sr") or el.nsmap.get(el.prefix) != NS_SR
           for el in srv_el.iter() if isinstance(el.tag, str)):
        raise InputError("body elements must all be in the DUIS namespace with the sr prefix", file=where)
    _strip_whitespace(srv_el)
    text = etree.tostring(srv_el, method="c14n", exclusive=True).decode("utf-8")
    head_end = text.index(">")
    if _DECL_SR not in text[:head_end]:
        raise InputError("unexpected namespace layout in the body", file=where)
    return text.replace(_DECL_SR, "", 1)


def _read(path: Path) -> RtdsTemplate:
    try:
        root = parse_hardened(path.read_bytes())
    except OSError as exc:
        raise InputError(f"cannot read: {exc.strerror}", file=path) from None
    except XmlError as exc:
        raise InputError(f"not a DUIS request: {exc}", file=path) from None
    if root.tag != _SR + "Request":
        raise InputError("root element is not sr:Request", file=path)
    variant = (root.findtext(f"{_SR}Header/{_SR}ServiceReferenceVariant") or "").strip()
    srv = get_srv(variant)
    if srv is None:
        raise InputError(f"ServiceReferenceVariant {variant!r} is not a DUIS SRV variant", file=path)
    rid = _RID.match((root.findtext(f"{_SR}Header/{_SR}RequestID") or "").strip())
    if rid is None:
        raise InputError("RequestID is not 'originator:target:counter'", file=path)
    try:
        cv = int((root.findtext(f"{_SR}Header/{_SR}CommandVariant") or "").strip())
    except ValueError:
        raise InputError("CommandVariant is not an integer", file=path) from None
    body = root.find(_SR + "Body")
    kids = [el for el in body if isinstance(el.tag, str)] if body is not None else []
    if len(kids) != 1:
        raise InputError("sr:Body must hold exactly one SRV element", file=path)
    target = DCC_EUI if srv.non_device else rid.group(2).upper()
    return RtdsTemplate(path.name, srv, cv, target, _canonical_body(kids[0], path))


def load_rtds(folder: str | Path, variants: Iterable[str] | None = None) -> dict[str, list[RtdsTemplate]]:
    """Every RTDS request template under ``folder`` (``*_REQUEST_DUIS.XML``, searched recursively), by variant.

    ``folder`` may be the unpacked package, its ``templates`` folder, or any folder of such files.
    ``variants`` keeps only those SRVs. A file that is not a DUIS request is an InputError naming it.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError("not a folder", file=folder, key="--from-rtds")
    wanted = set(variants) if variants is not None else None
    out: dict[str, list[RtdsTemplate]] = {}
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.name.upper().endswith("_REQUEST_DUIS.XML"))
    if not files:
        raise InputError("no RTDS request templates (*_REQUEST_DUIS.XML) found", file=folder, key="--from-rtds")
    for path in files:
        tpl = _read(path)
        if wanted is None or tpl.variant in wanted:
            out.setdefault(tpl.variant, []).append(tpl)
    return out


def _sender(factory: RequestFactory, srv: Srv, originator: str | None) -> str:
    if originator is not None:
        eui = originator.upper()
        if eui not in factory.signers:
            raise InputError(f"no signing key for Service User {eui}; have {', '.join(factory.signers)}",
                             key="originator")
        if not factory.roles[eui] & srv.eligible_roles:
            raise InputError(f"Service User {eui} (roles {','.join(sorted(factory.roles[eui])) or 'none'}) may not "
                             f"send SRV {srv.variant}", key="originator")
        return eui
    for eui, held in factory.roles.items():
        if held & srv.eligible_roles:
            return eui
    raise InputError(f"none of the Service Users with keys ({', '.join(factory.signers)}) may send SRV "
                     f"{srv.variant} (eligible roles: {','.join(sorted(srv.eligible_roles)) or 'none'})",
                     key="originator")


def build_from_rtds(factory: RequestFactory, tpl: RtdsTemplate, *, originator: str | None = None,
                    target: str | None = None) -> SignedRequest:
    """A signed request carrying ``tpl``'s body, from one of ``factory``'s Service Users, with our RequestID.

    ``target`` overrides the template's device (non-device SRVs always target the DCC).
    """
    sender = _sender(factory, tpl.srv, originator)
    dest = DCC_EUI if tpl.srv.non_device else (target or tpl.target).upper()
    request_id = factory.allocator.request_id(sender, dest)
    unsigned = (
        f"{ROOT_OPEN}<sr:Header><sr:RequestID>{request_id}</sr:RequestID>"
        f"<sr:CommandVariant>{tpl.command_variant}</sr:CommandVariant>"
        f"<sr:ServiceReference>{tpl.srv.reference}</sr:ServiceReference>"
        f"<sr:ServiceReferenceVariant>{tpl.variant}</sr:ServiceReferenceVariant></sr:Header>"
        f"<sr:Body>{tpl.body}</sr:Body>{ROOT_CLOSE}"
    ).encode()
    return SignedRequest(request_id, tpl.variant, tpl.command_variant, sender, dest,
                         factory.signers[sender].sign(unsigned))
