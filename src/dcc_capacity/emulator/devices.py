"""Which devices the emulated DCC treats as SMETS1 (their answers, latency and SECMP0192 rules differ).

The sources, in order: a device registry CSV (``devices.registry``:
``device_id,smets``) and explicit EUIs, then "all SMETS1" (or an S1SP
emulator), then EUI prefixes, then the project's own Fleet when
``fleet_seed``/``fleet_size`` are set; anything else is SMETS2.
"""

from __future__ import annotations

import csv
from pathlib import Path

from dcc_capacity.emulator.config import EmulatorConfig
from dcc_capacity.errors import InputError

__all__ = ["DeviceRule"]


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
            from dcc_capacity.model.fleet import Fleet

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
