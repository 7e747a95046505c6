"""Per-process DUIS kit for the user classes: PKI, fleet, request factory, installation pools and the SRV mix.

Built once per Locust process (lazily, from the parsed options) and shared by
every user class, so setup cost is paid once and the hot path only renders,
signs and sends. The fleet's shares, the journeys and the BAU make-up come
from the profile, SP and slot of the options (:func:`dcc_capacity.spec.resolve.mix_for`),
so what is sent is what the plan models. Installation pools are a pure
function of (fleet seed, fleet size, fleet shares, pool size): the run command
computes the same pools to tell the embedded emulator which devices are
SMETS1 (a device registry CSV), so the emulator's SMETS1/SMETS2 decisions
(SECMP0192, SR 8.11) match the fleet.
"""

from __future__ import annotations

import bisect
import csv
import itertools
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dcc_capacity.duis.factory import RequestFactory
from dcc_capacity.duis.mix import BauMix
from dcc_capacity.duis.pki import TestPKI
from dcc_capacity.model.fleet import Fleet, Installation
from dcc_capacity.model.volume import DEFAULT_JOURNEYS
from dcc_capacity.spec.model import SpecBase

if TYPE_CHECKING:
    from dcc_capacity.model.srvmix import SrvMix

__all__ = ["Kit", "Pools", "fleet_pools", "get_kit", "reset_kit", "write_device_registry"]

DEFAULT_FLEET_SEED: int = SpecBase.model_fields["seed"].default
DEFAULT_FLEET_SIZE: int = SpecBase.model_fields["fleet_size"].default
DEFAULT_POOL_SIZE: int = SpecBase.model_fields["pool_size"].default
POOL_CAP_FACTOR = 16
"""A pool keeps at most this many times ``pool_size`` installations (see :func:`fleet_pools`)."""
_KIND_STEP = 0.41421356237309515
"""sqrt(2) - 1: irrational, and independent of the BAU picker's golden-ratio step (duis/mix.py), so the
SRV variant and the installation's kind do not move in lock step."""


@dataclass
class Pools:
    """Fleet indices by (SMETS generation, prepayment), and each kind's share of the fleet.

    A pick chooses the kind by ``shares`` (the fleet's exact proportions, among the kinds that the pick's
    ``smets`` / ``prepay`` allow), then an installation of that kind: so what is sent keeps the fleet's (the
    profile's) SMETS1 and prepayment shares whatever the pool sizes, and the S1SP's SMETS1 installations are
    prepayment at ``prepay_share.smets1``. ``scanned``: the fleet indices 0..scanned-1 were classified.
    """

    by_kind: dict[tuple[int, bool], list[int]]
    scanned: int
    shares: dict[tuple[int, bool], float] = field(default_factory=dict)
    _choices: dict[tuple[int | None, bool | None], list[Any]] = field(default_factory=dict, repr=False)

    def pick(self, rng: random.Random, smets: int | None = None, prepay: bool | None = None) -> int:
        """An index of the pool(s) matching ``smets`` / ``prepay`` (None: any), the kind weighted by the fleet.

        The kind follows a low-discrepancy sequence (steps of sqrt(2) - 1 from a random start, one sequence
        per ``smets``/``prepay`` query), so any stretch of picks has the fleet's SMETS1 and prepayment shares
        to within a pick or two; the installation within the kind's pool is drawn from ``rng``.
        """
        choice = self._choices.get((smets, prepay))
        if choice is None:
            pools, cumulative = self._choice(smets, prepay)
            choice = self._choices[(smets, prepay)] = [pools, cumulative, rng.random(), cumulative[-1], len(pools) - 1]
        pools = choice[0]
        if len(pools) == 1:
            pool = pools[0]
        else:
            u = choice[2] = (choice[2] + _KIND_STEP) % 1.0
            pool = pools[min(bisect.bisect_right(choice[1], u * choice[3]), choice[4])]
        return pool[int(rng.random() * len(pool))]

    def _choice(self, smets: int | None, prepay: bool | None) -> tuple[list[list[int]], list[float]]:
        keys = [k for k in self.by_kind if (smets is None or k[0] == smets) and (prepay is None or k[1] == prepay)]
        if not keys:
            raise LookupError(f"the fleet has no installation with smets={smets}, prepay={prepay}")
        weights = [self.shares.get(k, 0.0) for k in keys]
        if not sum(weights) > 0:
            weights = [float(len(self.by_kind[k])) for k in keys]
        return [self.by_kind[k] for k in keys], list(itertools.accumulate(weights))

    def indices(self) -> list[int]:
        """Every pooled index, in fleet order (the installations a run can send to)."""
        return sorted(i for pool in self.by_kind.values() for i in pool)


def fleet_pools(fleet: Fleet, pool_size: int = DEFAULT_POOL_SIZE, max_scan: int = 2_000_000) -> Pools:
    """Scan the fleet from index 0 until every possible (smets, prepay) pool has ``pool_size`` members (bounded).

    A kind the fleet's shares rule out (IOC's SMETS1 prepayment: ``prepay_share.smets1`` 0) is not waited for;
    a rare one (IOC's 0.6 % SMETS1: ~160,000 installations for 1,024) is found with :meth:`Fleet.kind`, which
    does not build the installations it passes over. The common kinds keep what the scan passes, up to
    ``POOL_CAP_FACTOR`` x ``pool_size`` each, so a run still spreads its reads over tens of thousands of
    devices (the DCC keys its work on device IDs) while the registry stays bounded.
    """
    by_kind: dict[tuple[int, bool], list[int]] = {(1, False): [], (1, True): [], (2, False): [], (2, True): []}
    wanted = [pool for k, pool in by_kind.items() if fleet.kind_share(*k) > 0]
    limit = min(fleet.size, max_scan)
    cap = POOL_CAP_FACTOR * pool_size
    kind = fleet.kind
    i = 0
    while i < limit and any(len(v) < pool_size for v in wanted):
        pool = by_kind[kind(i)]
        if len(pool) < cap:
            pool.append(i)
        i += 1
    by_kind = {k: v for k, v in by_kind.items() if v}
    return Pools(by_kind, max(1, i), {k: fleet.kind_share(*k) for k in by_kind})


def write_device_registry(fleet: Fleet, pools: Pools, path: str | Path) -> Path:
    """The emulator's ``devices.registry`` CSV: every device of the pooled installations, SMETS1 or SMETS2."""
    path = Path(path)
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["device_id", "smets"])
        for i in pools.indices():
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
    mix: SrvMix | None = None
    """The profile's mix for the run's SP and slot (None without a profile: project defaults)."""
    journeys: dict[str, tuple[str, ...]] = field(default_factory=lambda: dict(DEFAULT_JOURNEYS))
    """Row -> the SRVs one installation's journey sends (the profile's, overrides included)."""
    bau: BauMix | None = None
    """The Bau class's make-up (the profile's top-up share; bau_mix.csv as it stands without a profile)."""

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

        from dcc_capacity.spec.options import has_spec, spec_from_options

        spec = spec_from_options(opts) if has_spec(opts) else None
        seed = spec.seed if spec is not None else DEFAULT_FLEET_SEED
        size = spec.fleet_size if spec is not None else DEFAULT_FLEET_SIZE
        mix = None
        if spec is not None:
            from dcc_capacity.spec.resolve import mix_for

            mix = mix_for(spec)
        fleet = mix.fleet.fleet(seed, size) if mix is not None else Fleet(seed=seed, size=size)
        factory = _factory(opt("signing_keys", None), opt("pki_dir", None), fleet)
        pools = fleet_pools(fleet, spec.pool_size if spec is not None else DEFAULT_POOL_SIZE)
        paths = {"S": opt("path_s", "/api/v1/serviceS"), "T": opt("path_t", "/api/v1/serviceT"),
                 "D": opt("path_d", "/api/v1/serviceD")}
        sp = (spec.sp if spec is not None else "DSP").upper()
        _kit = Kit(fleet, factory, pools, paths, retries=spec.retries if spec is not None else 0,
                   default_smets=1 if sp in ("S1SP", "DCO") else None, mix=mix,
                   journeys=dict(mix.journeys) if mix is not None else dict(DEFAULT_JOURNEYS),
                   bau=mix.bau if mix is not None else BauMix.load())
    return _kit


def _factory(signing_keys: str | None, pki_dir: str | None, fleet: Fleet) -> RequestFactory:
    """Sign with the user's own keys (``--signing-keys FILE``) when given, else as the generated test PKI."""
    if signing_keys:
        from dcc_capacity.duis.signing import Signer
        from dcc_capacity.duis.signingkeys import load_credentials, read_signing_keys

        creds = load_credentials(read_signing_keys(signing_keys), signing_keys)
        return RequestFactory([Signer(c) for c in creds], fleet, roles={c.eui: c.roles for c in creds if c.eui})
    return RequestFactory.from_pki(TestPKI.load_or_create(pki_dir), fleet)


def reset_kit() -> None:
    """Forget the process's kit (tests that change options)."""
    global _kit
    _kit = None
