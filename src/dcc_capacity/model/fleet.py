"""A reproducible population of smart metering installations (the devices requests go to).

Capacity tests need many distinct devices (the DCC keys its work and its
checks on device IDs) and they need the same ones every run, so a failure can
be replayed. ``Fleet(seed, size)`` is a pure function of its arguments:
installation ``i`` is generated on demand from ``(seed, i)``, so a fleet of
ten million costs nothing until used and every process (Locust workers, the
emulator) sees the same fleet.

Generation is on the load generator's hot path (a large fleet sampled at
random misses any cache), so it is cheap, about 10 us: the per-installation
randomness is one SHAKE-256 output of ``(seed, i)`` cut into fields, devices
and installations are named tuples, and the Faker-made address is only
computed when something reads it. Faker (seeded from the fleet seed) also
names the suppliers and their phone numbers.

Device EUI-64s encode the installation: ``00-DB-<seed byte>-<type>-<index
scrambled to 32 bits>``. The type byte follows the RTDS templates' device
suffixes (A0 ESME, A1 GSME, A2 CHF, A3 GPF, A4 PPMID). The scrambling is an
invertible affine map mod 2**32, so :meth:`Fleet.find` turns any EUI back
into its installation without a lookup table (the emulator uses this).
MPANs carry a valid check digit; MPRNs, UPRNs and postcodes are well-formed
test values.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterator, Mapping
from functools import lru_cache
from operator import mul
from typing import NamedTuple

from faker import Faker

from dcc_capacity.duis.pki import DEFAULT_USERS, ServiceUser
from dcc_capacity.errors import InputError

__all__ = ["DEVICE_TYPES", "Device", "Fleet", "Installation", "mpan_check_digit"]

DEVICE_TYPES: dict[str, int] = {"ESME": 0xA0, "GSME": 0xA1, "CHF": 0xA2, "GPF": 0xA3, "PPMID": 0xA4}
_TYPE_BY_CODE = {v: k for k, v in DEVICE_TYPES.items()}
_MUL = 0x9E3779B1  # odd, so invertible mod 2**32
_MUL_INV = pow(_MUL, -1, 1 << 32)
_MPAN_PRIMES = (3, 5, 7, 13, 17, 19, 23, 29, 31, 37, 41, 43)
_SMETS_VERSION = {1: "SMETS1 V1.2", 2: "SMETS2 V4.1"}
_DEVICE_BYTES = 26  # manufacturer 2, model 4, firmware 4, install code 16


def mpan_check_digit(first12: str) -> int:
    """The MPAN core check digit (MRA): weighted sum with fixed primes, mod 11, mod 10."""
    if len(first12) != 12:
        raise ValueError(f"an MPAN check digit needs 12 digits (got {first12!r})")
    return sum(map(mul, map(int, first12), _MPAN_PRIMES)) % 11 % 10


class Device(NamedTuple):
    """One device: what the RequestID targets and the templates describe."""

    type: str
    eui: str
    manufacturer: str
    model: str
    firmware: str
    install_code: str
    smets_version: str


@lru_cache(maxsize=4096)
def _address(seed: int, index: int) -> tuple[str, str]:
    fk = _address_faker()
    fk.seed_instance(seed * 1_000_003 + index)
    return fk.postcode(), f"{fk.building_number()} {fk.street_name()}"[:30]


@lru_cache(maxsize=1)
def _address_faker() -> Faker:
    return Faker("en_GB")


class Installation(NamedTuple):
    """One premises: its meters, hub and display, MPxNs, and who is responsible for it."""

    index: int  # type: ignore[assignment]  # the field shadows tuple.index on purpose: the fleet's position
    smets: int
    prepay: bool
    dual_fuel: bool
    supplier: ServiceUser
    network_operator: ServiceUser
    export_supplier: ServiceUser
    other_user: ServiceUser
    chf: Device
    esme: Device
    ppmid: Device
    gsme: Device | None
    gpf: Device | None
    mpan: str
    mprn: str | None
    uprn: int
    supplier_name: str
    supplier_phone: str
    seed: int

    @property
    def postcode(self) -> str:
        """A UK postcode (Faker, seeded by fleet seed and index; made on first use)."""
        return _address(self.seed, self.index)[0]

    @property
    def address_id(self) -> str:
        """House number and street, at most 30 characters (DUIS AddressIdentifier)."""
        return _address(self.seed, self.index)[1]

    def device(self, device_type: str) -> Device | None:
        """The installation's device of ``device_type`` (ESME, GSME, GPF, CHF, PPMID), or None."""
        if device_type == "ESME":
            return self.esme
        if device_type == "GSME":
            return self.gsme
        if device_type == "CHF":
            return self.chf
        if device_type == "GPF":
            return self.gpf
        if device_type == "PPMID":
            return self.ppmid
        return None

    def first_device(self, preferences: tuple[str, ...]) -> Device | None:
        """The first of ``preferences`` the installation has (``("ESME", "GSME")`` -> the ESME)."""
        for kind in preferences:
            found = self.device(kind)
            if found is not None:
                return found
        return None

    def devices(self) -> list[Device]:
        return [d for d in (self.chf, self.esme, self.gsme, self.gpf, self.ppmid) if d is not None]

    def users(self) -> tuple[ServiceUser, ...]:
        """Service Users with a role at this installation, the responsible supplier first."""
        return (self.supplier, self.network_operator, self.export_supplier, self.other_user)

    def user_for(self, eligible_roles: frozenset[str]) -> ServiceUser | None:
        """The first of :meth:`users` holding one of ``eligible_roles`` (who would send that SRV here)."""
        for user in self.users():
            if user.roles & eligible_roles:
                return user
        return None


def _users_with(roles: set[str]) -> list[ServiceUser]:
    return [u for u in DEFAULT_USERS if u.roles & roles]


CACHE_SIZE = 1024
"""Installations kept once built. Small on purpose: the load draws from pools of ~100,000 installations at random,
so a big cache hits little, and every installation it keeps (a named tuple and its five devices) is an object the
garbage collector walks in each full collection while no request goes out. Measured at 1,500 SRV/s: a
65,536-entry cache grew to ~120,000 tracked objects in a minute and full collections to 250 ms (send lag p99
236 ms); rebuilding a missed installation costs ~10 us."""


class Fleet:
    """``size`` installations generated lazily and reproducibly from ``seed``.

    Shares (0..1) set the mix: SMETS1 vs SMETS2, prepayment vs credit, dual
    fuel (ESME + GSME + GPF) vs electricity only. ``prepay_share`` is one
    share for both generations or ``{"smets1": p1, "smets2": p2}``: the
    volume model gives each generation its own (``prepay_share`` of the
    profile), and a run's fleet takes them from there (:mod:`dcc_capacity.model.srvmix`).
    Suppliers are the ``pki.DEFAULT_USERS`` holding IS/GS, drawn per installation.
    """

    def __init__(self, seed: int = 1, size: int = 100_000, *, smets1_share: float = 0.3,
                 prepay_share: float | Mapping[str, float] = 0.15, dual_fuel_share: float = 0.6) -> None:
        if not 1 <= size <= 1 << 32:
            raise InputError(f"must be 1..{1 << 32} (got {size})", key="fleet.size")
        if isinstance(prepay_share, Mapping):
            unknown = set(prepay_share) - {"smets1", "smets2"}
            if unknown or len(prepay_share) != 2:
                raise InputError(f"needs exactly the keys smets1 and smets2 (got {sorted(prepay_share)})",
                                 key="fleet.prepay_share")
            p1, p2 = float(prepay_share["smets1"]), float(prepay_share["smets2"])
        else:
            p1 = p2 = float(prepay_share)
        per_gen = isinstance(prepay_share, Mapping)
        for key, share in (("smets1_share", smets1_share), ("prepay_share.smets1" if per_gen else "prepay_share", p1),
                           ("prepay_share.smets2" if per_gen else "prepay_share", p2),
                           ("dual_fuel_share", dual_fuel_share)):
            if not 0.0 <= share <= 1.0:
                raise InputError(f"must be between 0 and 1 (got {share})", key=f"fleet.{key}")
        self.seed = int(seed)
        self.size = int(size)
        self.smets1_share = smets1_share
        self.prepay_share = prepay_share
        self.prepay_shares: dict[int, float] = {1: p1, 2: p2}
        """Prepayment share per SMETS generation."""
        self.dual_fuel_share = dual_fuel_share
        # Shares as thresholds on a 16-bit draw.
        self._t_smets1 = round(smets1_share * 65536)
        self._t_prepay = {1: round(p1 * 65536), 2: round(p2 * 65536)}
        self._t_dual = round(dual_fuel_share * 65536)
        self._salt = hashlib.sha256(f"dcc-capacity fleet {self.seed}".encode()).digest()
        self._tag = self.seed & 0xFF
        self._offset = random.Random(f"fleet-offset-{self.seed}").getrandbits(32)
        self._mpxn_offset = random.Random(f"fleet-mpxn-{self.seed}").randrange(10**9)
        self._suppliers = _users_with({"IS", "GS"})
        self._network = _users_with({"ED", "GT"})[0]
        self._export = _users_with({"ES"})[0]
        self._other = _users_with({"OU"})[0]
        fk = Faker("en_GB")
        fk.seed_instance(self.seed)
        self._supplier_names = {u.eui: self._short_name(fk.company()) for u in self._suppliers}
        self._supplier_phones = {u.eui: f"0800 {fk.random_number(3, fix_len=True)} {fk.random_number(4, fix_len=True)}"
                                 for u in self._suppliers}
        self._eui_prefix = bytes((0x00, 0xDB, self._tag))
        self._eui_text = {k: f"00-DB-{self._tag:02X}-{code:02X}" for k, code in DEVICE_TYPES.items()}
        self.installation = lru_cache(maxsize=CACHE_SIZE)(self._generate)

    @staticmethod
    def _short_name(name: str) -> str:
        """Supplier names shown on meters: printable ASCII, at most 15 characters (DUIS 3.4)."""
        ascii_name = "".join(c for c in name if " " <= c <= "~")
        return ascii_name[:15].rstrip() or "Supplier"

    def kind_share(self, smets: int, prepay: bool) -> float:
        """The exact share of installations of ``smets`` generation and payment mode (from the 16-bit draws)."""
        gen = self._t_smets1 / 65536 if smets == 1 else 1 - self._t_smets1 / 65536
        pay = self._t_prepay[smets] / 65536
        return gen * (pay if prepay else 1 - pay)

    def kind(self, index: int) -> tuple[int, bool]:
        """(SMETS generation, prepayment) of installation ``index`` without building it (~1 us, not ~10 us).

        The same draws as :meth:`installation` (a SHAKE output's prefix is the shorter output), so pools of
        a rare kind (IOC's 0.6 % SMETS1) are found by scanning a long stretch of the fleet cheaply.
        """
        h = hashlib.shake_256(self._salt + index.to_bytes(8, "big")).digest(4)
        smets = 1 if int.from_bytes(h[0:2], "big") < self._t_smets1 else 2
        return smets, int.from_bytes(h[2:4], "big") < self._t_prepay[smets]

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, index: int) -> Installation:
        return self.installation(index)

    def __iter__(self) -> Iterator[Installation]:
        return (self.installation(i) for i in range(self.size))

    def sample(self, rng: random.Random) -> Installation:
        """A uniformly drawn installation (use a seeded ``rng`` for a reproducible sequence)."""
        return self.installation(rng.randrange(self.size))

    # --- EUIs --------------------------------------------------------------------------------

    def eui(self, index: int, device_type: str) -> str:
        scrambled = (index * _MUL + self._offset) & 0xFFFFFFFF
        raw = self._eui_prefix + bytes((DEVICE_TYPES[device_type],)) + scrambled.to_bytes(4, "big")
        return raw.hex("-").upper()

    def find(self, eui: str) -> tuple[Installation, Device] | None:
        """The installation and device with EUI-64 ``eui``, or None when it is not in this fleet."""
        try:
            raw = bytes.fromhex(eui.replace("-", ""))
        except ValueError:
            return None
        if len(raw) != 8 or raw[:3] != self._eui_prefix:
            return None
        kind = _TYPE_BY_CODE.get(raw[3])
        index = ((int.from_bytes(raw[4:], "big") - self._offset) * _MUL_INV) & 0xFFFFFFFF
        if kind is None or index >= self.size:
            return None
        inst = self.installation(index)
        device = inst.device(kind)
        return (inst, device) if device is not None else None

    # --- generation --------------------------------------------------------------------------

    def _generate(self, index: int) -> Installation:
        if not 0 <= index < self.size:
            raise IndexError(f"installation {index} is outside this fleet of {self.size}")
        # 9 bytes of draws, then 26 bytes per device (CHF, ESME, PPMID, GSME, GPF).
        h = hashlib.shake_256(self._salt + index.to_bytes(8, "big")).digest(9 + 5 * _DEVICE_BYTES)
        smets = 1 if int.from_bytes(h[0:2], "big") < self._t_smets1 else 2
        prepay = int.from_bytes(h[2:4], "big") < self._t_prepay[smets]
        dual = int.from_bytes(h[4:6], "big") < self._t_dual
        supplier = self._suppliers[h[6] % len(self._suppliers)]
        core = f"{10 + h[7] % 14}{(index + self._mpxn_offset) % 10**9:09d}{h[8] % 10}"
        tail = "-" + ((index * _MUL + self._offset) & 0xFFFFFFFF).to_bytes(4, "big").hex("-").upper()
        x = h.hex().upper()  # 2 hex digits per byte; device k's fields start at 18 + 52 k
        version = _SMETS_VERSION[smets]
        prefix = self._eui_text
        chf = Device("CHF", prefix["CHF"] + tail, x[18:22], x[22:30], x[30:38], x[38:70], "CHTS V1.1")
        esme = Device("ESME", prefix["ESME"] + tail, x[70:74], x[74:82], x[82:90], x[90:122], version)
        ppmid = Device("PPMID", prefix["PPMID"] + tail, x[122:126], x[126:134], x[134:142], x[142:174], version)
        gsme = gpf = None
        if dual:
            gsme = Device("GSME", prefix["GSME"] + tail, x[174:178], x[178:186], x[186:194], x[194:226], version)
            gpf = Device("GPF", prefix["GPF"] + tail, x[226:230], x[230:238], x[238:246], x[246:278], version)
        return Installation(
            index, smets, prepay, dual, supplier, self._network, self._export, self._other,
            chf, esme, ppmid, gsme, gpf,
            core + str(mpan_check_digit(core)),
            f"{(index + self._mpxn_offset) % 10**9 + 10**9}" if dual else None,
            10**10 + index,
            self._supplier_names[supplier.eui], self._supplier_phones[supplier.eui],
            self.seed,
        )
