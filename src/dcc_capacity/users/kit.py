"""Per-process DUIS kit for the user classes: PKI, fleet, request factory and installation pools.

Built once per Locust process (lazily, from the parsed options) and shared by
every user class, so setup cost is paid once and the hot path only renders,
signs and sends. Installation pools are a pure function of (fleet seed, fleet
size, pool size): the run command computes the same pools to tell the
embedded emulator which devices are SMETS1 (a device registry CSV), so the
emulator's SMETS1/SMETS2 decisions (SECMP0192, SR 8.11) match the fleet.
"""

from __future__ import annotations

import csv
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..duis.factory import RequestFactory
from ..fleet import Fleet, Installation
from ..pki import TestPKI

__all__ = ["Kit", "Pools", "fleet_pools", "get_kit", "write_device_registry"]

DEFAULT_FLEET_SEED = 20240601
DEFAULT_FLEET_SIZE = 1_000_000
DEFAULT_POOL_SIZE = 1024


@dataclass
class Pools:
    """Fleet indices by (SMETS generation, prepayment); ``scanned`` = indices 0..scanned-1 all classified."""

    by_kind: dict[tuple[int, bool], list[int]]
    scanned: int

    def pick(self, rng: random.Random, smets: int | None = None, prepay: bool | None = None) -> int:
        """A random index of the pool(s) matching ``smets`` / ``prepay`` (None: any)."""
        if smets is None and prepay is None:
            return rng.randrange(self.scanned)
        keys = [k for k in self.by_kind if (smets is None or k[0] == smets) and (prepay is None or k[1] == prepay)]
        key = keys[0] if len(keys) == 1 else rng.choice(keys)
        pool = self.by_kind[key]
        return pool[rng.randrange(len(pool))]


def fleet_pools(fleet: Fleet, pool_size: int = DEFAULT_POOL_SIZE, max_scan: int = 2_000_000) -> Pools:
    """Scan the fleet from index 0 until every (smets, prepay) pool has ``pool_size`` members (bounded)."""
    by_kind: dict[tuple[int, bool], list[int]] = {(1, False): [], (1, True): [], (2, False): [], (2, True): []}
    limit = min(fleet.size, max_scan)
    i = 0
    while i < limit and any(len(v) < pool_size for v in by_kind.values()):
        inst = fleet[i]
        pool = by_kind[(inst.smets, inst.prepay)]
        if len(pool) < pool_size:
            pool.append(i)
        i += 1
    by_kind = {k: v for k, v in by_kind.items() if v}
    return Pools(by_kind, max(1, i))


def write_device_registry(fleet: Fleet, pools: Pools, path: str | Path) -> Path:
    """The emulator's ``devices.registry`` CSV: every device of the scanned installations, SMETS1 or SMETS2."""
    path = Path(path)
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["device_id", "smets"])
        for i in range(pools.scanned):
            inst = fleet[i]
            gen = "SMETS1" if inst.smets == 1 else "SMETS2"
            for d in inst.devices():
                w.writerow([d.eui, gen])
    return path


@dataclass
class Kit:
    """What every DUIS user class of one process shares."""

    fleet: Fleet
    factory: RequestFactory
    pools: Pools
    paths: dict[str, str]
    retries: int = 0
    secmp0192_share: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)
    default_smets: int | None = None
    """SMETS generation of installations picked without one (S1SP / DCO tests: SMETS1 only)."""

    def installation(self, rng: random.Random, smets: int | None = None, prepay: bool | None = None) -> Installation:
        return self.fleet[self.pools.pick(rng, smets if smets is not None else self.default_smets, prepay)]

    def noisy_originator(self) -> str:
        """The Service User that bursts in the noisy-neighbour test: the first supplier (role IS) with a key."""
        for eui, roles in self.factory.roles.items():
            if "IS" in roles:
                return eui
        return next(iter(self.factory.signers))


_kit: Kit | None = None


def get_kit(opts: Any = None) -> Kit:
    """The process's kit, built on first use from Locust's parsed options (defaults when absent)."""
    global _kit
    if _kit is None:
        def opt(name: str, default: Any) -> Any:
            v = getattr(opts, name, None) if opts is not None else None
            return default if v in (None, "") else v

        seed = int(opt("fleet_seed", DEFAULT_FLEET_SEED))
        size = int(opt("fleet_size", DEFAULT_FLEET_SIZE))
        fleet = Fleet(seed=seed, size=size)
        factory = _factory(opt("signing_keys", None), opt("pki_dir", None), fleet)
        pools = fleet_pools(fleet, int(opt("pool_size", DEFAULT_POOL_SIZE)))
        paths = {"S": opt("path_s", "/api/v1/serviceS"), "T": opt("path_t", "/api/v1/serviceT"),
                 "D": opt("path_d", "/api/v1/serviceD")}
        sp = str(opt("sp", "DSP")).upper()
        _kit = Kit(fleet, factory, pools, paths, retries=int(opt("step_retries", 0)),
                   default_smets=1 if sp in ("S1SP", "DCO") else None)
    return _kit


def _factory(signing_keys: str | None, pki_dir: str | None, fleet: Fleet) -> RequestFactory:
    """Sign with the user's own keys (``--signing-keys FILE``) when given, else as the generated test PKI."""
    if signing_keys:
        from ..duis.signing import Signer
        from ..signingkeys import load_credentials, read_signing_keys

        creds = load_credentials(read_signing_keys(signing_keys), signing_keys)
        return RequestFactory([Signer(c) for c in creds], fleet, roles={c.eui: c.roles for c in creds if c.eui})
    return RequestFactory.from_pki(TestPKI.load_or_create(pki_dir), fleet)


def reset_kit() -> None:
    """Forget the process's kit (tests that change options)."""
    global _kit
    _kit = None
