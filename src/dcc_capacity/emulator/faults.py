"""The failure modes the seeds report from production, each switchable and rate-configurable.

* outage windows - nothing is processed; requests queue, the backlog drains after;
* error bursts - periodic windows where a share of device requests fail (E20);
* missing response codes - a share of async responses leave ResponseCode out;
* SR 8.11 with a PPMID JoinTimePeriod over 255 s rejected (SMETS1, issue 91342);
* migration fallout - a share of migrated devices fail; resubmitting them succeeds (CP);
* tampered responses - a share of signed answers is changed after signing (a man in the middle), which
  a client checking the DCC's signatures must refuse.

Decisions are drawn from one seeded RNG so a run is reproducible.
"""

from __future__ import annotations

import hashlib
import random
import re

from dcc_capacity.emulator.config import FaultsConfig

__all__ = ["Faults", "tamper"]

_STAMP = re.compile(rb"DateTime(?:Stamp)?>[^<]*?(\d)[^<\d]*<")
_SIGVAL = b"<ds:SignatureValue>"


def tamper(signed: bytes) -> bytes:
    """``signed`` changed after signing: the last digit of its first timestamp (so the digest no longer matches),
    or, without a timestamp, the first character of the signature value. RequestID and ResponseCode are kept,
    so the client can still correlate the answer and must judge it by its signature alone."""
    m = _STAMP.search(signed)
    if m is not None:
        i = m.start(1)
        return signed[:i] + b"%d" % ((signed[i] - 47) % 10) + signed[i + 1:]
    i = signed.find(_SIGVAL)
    if i < 0:
        return signed + b" "  # unsigned: nothing a signature could catch, keep the byte count honest
    i += len(_SIGVAL)
    return signed[:i] + (b"B" if signed[i:i + 1] == b"A" else b"A") + signed[i + 1:]


class Faults:
    def __init__(self, cfg: FaultsConfig, rng: random.Random) -> None:
        self.cfg = cfg
        self._rng = rng
        self._fallout_seen: set[str] = set()

    def in_outage(self, t: float) -> bool:
        """Is ``t`` (seconds since start) inside an outage window?"""
        o = self.cfg.outage
        if not o.enabled:
            return False
        if any(w.start_s <= t < w.start_s + w.duration_s for w in o.windows):
            return True
        every = o.every_s
        if not every:
            return False
        return (t % every) >= every - o.duration_s

    def burst_code(self, t: float) -> str | None:
        """The error code to answer with, when ``t`` falls in an error burst and the draw says so."""
        b = self.cfg.error_bursts
        if not b.enabled or (t % b.every_s) >= b.duration_s:
            return None
        return b.code if self._rng.random() < b.share else None

    def tamper(self) -> bool:
        t = self.cfg.tamper_responses
        return t.enabled and self._rng.random() < t.share

    def drop_response_code(self, variant: str | None = None) -> bool:
        m = self.cfg.missing_response_code
        if not m.enabled or (m.variants is not None and variant not in m.variants):
            return False
        return self._rng.random() < m.share

    def ppmid_join_rejected(self, join_s: int | None, smets1: bool) -> bool:
        p = self.cfg.ppmid_join
        if not p.enabled or join_s is None or join_s <= p.max_join_s:
            return False
        if p.smets1_only and not smets1:
            return False
        return p.share >= 1.0 or self._rng.random() < p.share

    def migration_fails(self, device_id: str) -> bool:
        """Fallout for one device; deterministic per device, and a resubmission succeeds when configured."""
        f = self.cfg.migration_fallout
        if not f.enabled:
            return False
        key = device_id.upper()
        if key in self._fallout_seen and f.reprocess_succeeds:
            return False
        h = int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big") / 2 ** 64
        if h < f.share:
            self._fallout_seen.add(key)
            return True
        return False
