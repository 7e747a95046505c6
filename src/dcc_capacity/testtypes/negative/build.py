"""Signed requests for the negative cases: each one wrong in exactly the way its case is about.

Free of Locust, so tests can build the same bytes the load sends. Everything
else about a request stays valid (schema, signature, role, counter), so the
SUT's answer can only be about the one fault the case injects.
"""

from __future__ import annotations

import random
import re

from dcc_capacity.duis.factory import RequestFactory, SignedRequest
from dcc_capacity.model.catalogue import get_srv
from dcc_capacity.model.fleet import Installation

__all__ = ["NO_CODE_VARIANT", "S1_COMBO_VARIANT", "S1SP_CV9_VARIANTS", "bad_signature", "ineligible_role",
           "join_time", "no_code", "replay_original", "s1_combo", "smets2_0192"]

NO_CODE_VARIANT = "4.8.1"
"""The SRV whose async responses the negative run's emulator sends without a ResponseCode (and no other case uses)."""
S1_COMBO_VARIANT = "4.14"
"""Scheduled by 5.1 for a SMETS1 device in NEG-S1-COMBO: the negative run's S1SP has no CV 9 standing data for it."""
S1SP_CV9_VARIANTS = ("14.1", "4.10", "4.12.1", "4.12.2", "4.15", "4.16", "4.17", "4.6.1", "4.6.2", "4.8.1", "4.8.2",
                     "4.8.3", "4.3", "4.4.3")
"""The negative run's S1SP CV 9 list: the DSP-schedulable SRVs and SECMP0192's 4.3 / 4.4.3, without 4.14."""
_SIGVAL = re.compile(rb"(<(?:[\w.-]+:)?SignatureValue>)\s*([A-Za-z0-9+/=\s]+?)\s*</")


def bad_signature(factory: RequestFactory, inst: Installation) -> SignedRequest:
    """A 4.6.1 whose SignatureValue has one character changed: it no longer verifies (E42).

    The RequestID is left alone, so a SUT that wrongly accepts the request
    answers a RequestID this process expects (and a relay routes it here).
    """
    req = factory.build("4.6.1", inst)
    m = _SIGVAL.search(req.body)
    assert m is not None
    i = (m.start(2) + m.end(2)) // 2
    flipped = b"B" if req.body[i:i + 1] == b"A" else b"A"
    return req._replace(body=req.body[:i] + flipped + req.body[i + 1:])


def ineligible_role(factory: RequestFactory, inst: Installation, variant: str = "4.6.1") -> SignedRequest:
    """``variant`` signed and sent by a Service User none of whose roles may send it (E2)."""
    srv = get_srv(variant)
    assert srv is not None
    sender = next(eui for eui, roles in factory.roles.items() if roles and not roles & srv.eligible_roles)
    rid, orig, cv, target, unsigned = factory.build_unsigned(variant, inst)
    new_rid = sender + rid[len(orig):]
    unsigned = unsigned.replace(f"<sr:RequestID>{rid}<".encode(), f"<sr:RequestID>{new_rid}<".encode(), 1)
    return SignedRequest(new_rid, variant, cv, sender, target, factory.signers[sender].sign(unsigned))


def replay_original(factory: RequestFactory, inst: Installation) -> SignedRequest:
    """A valid 8.2 (non-device, answered at once); the case sends these same bytes twice."""
    return factory.build("8.2", inst)


def join_time(factory: RequestFactory, inst: Installation, seconds: int) -> SignedRequest:
    """SR 8.11 adding the PPMID with ``JoinTimePeriod`` = ``seconds``."""
    return factory.build("8.11", inst, extra={"join_time": seconds})


def no_code(factory: RequestFactory, inst: Installation) -> SignedRequest:
    return factory.build(NO_CODE_VARIANT, inst)


def s1_combo(factory: RequestFactory, inst: Installation) -> SignedRequest:
    """5.1 scheduling :data:`S1_COMBO_VARIANT` for a SMETS1 device."""
    return factory.build("5.1", inst, scheduled_variant=S1_COMBO_VARIANT)


def smets2_0192(factory: RequestFactory, inst: Installation, rng: random.Random) -> SignedRequest:
    """5.1 scheduling 4.3 or 4.4.3 for a SMETS2 device (SECMP0192 allows these for SMETS1 only)."""
    return factory.build("5.1", inst, scheduled_variant="4.3" if rng.random() < 0.5 else "4.4.3")
