"""The payload each SRV's successful answer carries, so a client sees the body type DUIS gives that SRV.

DUIS's ``ResponseMessage`` ends in at most one payload element. Device SRVs
answer with the device's ``GBCSPayload`` (9.1 with a ``CINMessage``: the GBCS
payload plus the Customer Identification Number), a Transform with a
``PreCommand``, a CV 2/6 with a ``LocalCommand``. Non-device SRVs the DCC
answers itself: 5.1 with the ``DSPScheduleID``, 5.2 with ``DSPSchedulesRead``,
8.2 with ``DSPInventory``, 8.6 with ``DSPOptIn`` and 12.1 with
``DSPWANMatrix``; the other non-device SRVs answer with status only. A client
that dispatches on the payload type (the DCC's duis-parser does) then gets what
it expects; the values are plausible test data, built from the request where
it says (device, schedule, address), schema-valid against DUIS V5.1.

Kept apart from the request path and the capacity model: only the answer
builders in ``app.py`` call :func:`non_device_payload` and :func:`device_payload`.
"""

from __future__ import annotations

import base64

from lxml import etree

from dcc_capacity.duis import NS_SR
from dcc_capacity.duis.c14n import c14n_text
from dcc_capacity.duis.responses import payload_dsp_schedule_id, payload_gbcs

__all__ = ["NON_DEVICE_PAYLOADS", "device_payload", "expected_payload", "non_device_payload"]

_SR = "{" + NS_SR + "}"

NON_DEVICE_PAYLOADS: dict[str, str] = {
    "5.1": "DSPScheduleID",
    "5.2": "DSPSchedulesRead",
    "8.2": "DSPInventory",
    "8.6": "DSPOptIn",
    "12.1": "DSPWANMatrix",
}
"""Non-device SRVs whose successful answer carries a payload (the rest answer with status only)."""

_DEVICE_TYPES = {"A0": "ESME", "A1": "GSME", "A2": "CHF", "A3": "GPF", "A4": "PPMID"}
"""Device type by the fifth octet of the suite's and the RTDS's device EUIs (docs/duis.md, "The fleet")."""


def expected_payload(variant: str, cv: int, non_device: bool) -> str | None:
    """The payload element of a successful final answer to ``variant`` sent with ``cv`` (None: status only)."""
    if cv == 4:
        return "PreCommand"
    if cv in (2, 6):
        return "LocalCommand"
    if non_device:
        return NON_DEVICE_PAYLOADS.get(variant)
    return "CINMessage" if variant == "9.1" else "GBCSPayload"


def _el(name: str, value: object) -> str:
    return f"<sr:{name}>{c14n_text(value)}</sr:{name}>"


def _text(body: etree._Element, path: str) -> str | None:
    found = body.findtext(path.replace("sr:", _SR))
    return found.strip() if found and found.strip() else None


def _device_type(eui: str) -> str:
    parts = eui.split("-")
    return _DEVICE_TYPES.get(parts[4].upper(), "ESME") if len(parts) == 8 else "ESME"


def device_payload(variant: str, gbcs: bytes, counter: int) -> str:
    """A device SRV's successful asynchronous payload: the GBCS response (9.1: inside a ``CINMessage``)."""
    if variant == "9.1":
        cin = f"{counter % 10000:04d}"
        return (f"<sr:CINMessage>{_el('GBCSPayload', base64.b64encode(gbcs).decode())}"
                f"{_el('CustomerIdentificationNumber', cin)}</sr:CINMessage>")
    return payload_gbcs(gbcs)


def non_device_payload(variant: str, body: etree._Element, schedule_id: int, dcc_cert_der: bytes) -> str:
    """A non-device SRV's successful payload, built from its request ``body`` (the SRV element)."""
    if variant == "5.1":
        return payload_dsp_schedule_id(schedule_id)
    if variant == "5.2":
        sid = _text(body, "sr:DSPScheduleID") or str(schedule_id)
        device = _text(body, "sr:DeviceID") or "00-DB-12-34-56-78-90-A0"
        return ("<sr:DSPSchedulesRead><sr:DSPSchedules>" + _el("DSPScheduleID", int(sid) if sid.isdigit() else 1)
                + "<sr:DSPScheduleDetails>" + _el("ScheduleFrequency", "Daily")
                + _el("ScheduleStartDate", "2030-01-01") + _el("DSPScheduledServiceReference", "4.6")
                + _el("DSPScheduledServiceReferenceVariant", "4.6.1") + _el("DeviceID", device)
                + "<sr:DSPRetrieveImportDailyReadLog>" + _el("StartDateOffset", -1) + _el("StartTime", "00:00:00")
                + _el("EndDateOffset", 0) + _el("EndTime", "00:00:00") + "</sr:DSPRetrieveImportDailyReadLog>"
                + "</sr:DSPScheduleDetails></sr:DSPSchedules></sr:DSPSchedulesRead>")
    if variant == "8.2":
        device = _text(body, "sr:DeviceID") or _text(body, ".//sr:DeviceID") or "00-DB-12-34-56-78-90-A0"
        return ("<sr:DSPInventory><sr:Device>" + _el("DeviceID", device.upper())
                + _el("DeviceType", _device_type(device)) + _el("DeviceStatus", "Commissioned")
                + _el("DeviceManufacturer", "1234") + _el("DeviceModel", "0001")
                + "</sr:Device></sr:DSPInventory>")
    if variant == "8.6":
        device = _text(body, "sr:DeviceID") or "00-DB-12-34-56-78-90-A0"
        cert = base64.b64encode(dcc_cert_der).decode()
        return ("<sr:DSPOptIn>" + _el("DeviceID", device.upper())
                + _el("DSPBrokerSecurityCredentialsKeyAgreement", cert) + "</sr:DSPOptIn>")
    if variant == "12.1":
        uprn = _text(body, "sr:UPRN")
        if uprn is not None:
            request = _el("UPRN", uprn)
        else:
            request = ("<sr:PartialAddress>" + _el("PostCode", _text(body, "sr:PartialAddress/sr:PostCode") or "M1 1AA")
                       + _el("AddressIdentifier", _text(body, "sr:PartialAddress/sr:AddressIdentifier") or "1")
                       + "</sr:PartialAddress>")
        return (f"<sr:DSPWANMatrix><sr:Request>{request}</sr:Request>" + _el("CSPRegion", "North")
                + _el("CoverageAvailability", "true") + _el("WANTechnology", "Long Range Radio")
                + _el("ConnectivityLikelihood", "High") + "</sr:DSPWANMatrix>")
    return ""
