"""Every DUIS response code the emulator sends, what it means here, and its HTTP status.

All codes are members of the official DUIS V5.1 ``ResponseCode`` enumeration,
so every response the emulator sends validates against the schema. Codes
marked *emulator-assigned* are enumeration members whose DUIS text we do not
have (the public list stops at E65, see shared reference notes); we give them
one fixed meaning here so tests and clients can key on them. Clients should
import the names from this module instead of repeating the strings.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["CODES", "Code"]


@dataclass(frozen=True, slots=True)
class Code:
    code: str
    http: int
    meaning: str
    source: str


_ALL = [
    Code("I0", 200, "Success (final response, with payload where the SRV has one)", "DUIS"),
    Code("I99", 200, "Acknowledged: passed access control, the device response follows asynchronously", "DUIS"),
    Code("E1", 200, "Invalid User / Role: the signer's EUI is not the RequestID originator, or it holds no role",
         "DUIS"),
    Code("E2", 200, "User Role not permitted to send this SRV (catalogue eligible roles)", "DUIS"),
    Code("E12", 200, "Command Variant not applicable to this SRV (or CV 3/7/9, which DCC Boxed refuses)", "DUIS"),
    Code("E13", 200, "Request type not valid for this URL (e.g. CV 8 sent to the Transform service)", "DUIS"),
    Code("E20", 200, "Could not communicate with the device (error-burst failure mode, async)", "DUIS"),
    Code("E21", 200, "No response from the device (error-burst failure mode when configured, async)", "DUIS"),
    Code("E40", 400, "Not well-formed XML, a DTD/entity declaration, or not an sr:Request in the DUIS namespace",
         "emulator-assigned"),
    Code("E41", 200, "Schema (or, without an XSD, structural) validation failed; unknown SRV variant",
         "emulator-assigned"),
    Code("E42", 200, "Signature invalid: missing, unsupported algorithms, digest or ECDSA value does not verify",
         "emulator-assigned"),
    Code("E43", 200, "Signing certificate unknown: X509IssuerSerial names no trusted certificate",
         "emulator-assigned"),
    Code("E44", 200, "RequestID counter not increasing for this originator (replay)", "emulator-assigned"),
    Code("E45", 413, "Request body larger than max_body_bytes", "emulator-assigned"),
    Code("E46", 200, "CV 5/6 signed Pre-Command without a matching CV 4 Pre-Command (RequestID, SRV or payload)",
         "emulator-assigned"),
    Code("E47", 429, "Throttled by SECMP0067 traffic management (the user's fair share is used up)",
         "emulator-assigned"),
    Code("E48", 503, "Capacity exhausted: the request queue is full", "emulator-assigned"),
    Code("E050110", 200, "SECMP0192: 5.1 cannot schedule SRV 4.3 / 4.4.3 for a SMETS2 device", "emulator-assigned"),
    Code("E081101", 200, "SR 8.11 rejected: PPMID JoinTimePeriod greater than 255 s (SMETS1, async)",
         "emulator-assigned"),
]

CODES: dict[str, Code] = {c.code: c for c in _ALL}

I0, I99 = "I0", "I99"
E_ROLE_USER, E_ROLE_SRV, E_CV, E_URL = "E1", "E2", "E12", "E13"
E_COMMS, E_NO_RESPONSE = "E20", "E21"
E_MALFORMED, E_SCHEMA, E_SIGNATURE, E_UNKNOWN_CERT = "E40", "E41", "E42", "E43"
E_REPLAY, E_TOO_LARGE, E_PRECOMMAND, E_THROTTLED, E_QUEUE_FULL = "E44", "E45", "E46", "E47", "E48"
E_SECMP0192, E_PPMID_JOIN = "E050110", "E081101"
S1SP_ALERT_CV9 = "S1VE12"
"""S1SP alert (inside a DCC alert, DCCAlertCode N999) for an SRV not applicable to Command Variant 9."""
DCC_ALERT_S1SP = "N999"
