"""The SRV catalogue: one source of truth for what each Service Request Variant is.

Read once from ``srv_templates/catalogue.csv`` (129 variants, from the DCC's
duis-parser request matrix). Templates, the fleet, the emulator's access
control and the volume model's journey validation all ask this module.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from functools import lru_cache

from dcc_capacity.paths import data_dir

__all__ = ["ROLES", "Srv", "catalogue", "get_srv", "DCC_EUI"]

ROLES: dict[str, str] = {
    "IS": "Import Supplier",
    "ES": "Export Supplier",
    "GS": "Gas Supplier",
    "ED": "Electricity Distributor",
    "GT": "Gas Transporter",
    "RSA": "Registered Supplier Agent",
    "OU": "Other User",
    "LC": "Load Controller",
}
"""Service User role codes used in ``eligible_roles``.

``LC`` is not a User Role of the DUIS matrix: it is the sender of 7.16 Limit APC Level, the party DCC Boxed
knows as its Load Controller (RTDS ECS47e's originator; SMKI certificates ``Z1-loadController-ds``/``-ka`` of
GBCS remote-party role 8 in the DCC's ``@smartdcc/dccboxed-keystore``). See
``srv_templates/catalogue_corrections.csv`` and docs/emulator.md ("The RTDS")."""

DCC_EUI = "90-B3-D5-1F-30-00-00-02"
"""The DCC's own EUI-64: the RequestID target of non-device SRVs."""


@dataclass(frozen=True, slots=True)
class Srv:
    """Facts about one Service Request Variant."""

    variant: str
    reference: str
    name: str
    critical: bool
    on_demand: bool
    future_dated: str
    """``No``, ``DSP``, ``Device`` or ``DSP & Device`` (the source's pattern value)."""
    dcc_scheduled: bool
    non_device: bool
    eligible_roles: frozenset[str]

    @property
    def command_variant(self) -> int:
        """The CommandVariant a Service User first sends: 8 non-device, 4 critical, else 1."""
        if self.non_device:
            return 8
        return 4 if self.critical else 1

    def srv_class(self) -> str:
        """Coarse class used for service times and NFR grouping."""
        if self.non_device:
            return "non_device"
        return "critical" if self.critical else "device"


def _flag(value: str) -> bool:
    return value.strip().lower() == "true"


@lru_cache(maxsize=1)
def catalogue() -> dict[str, Srv]:
    """All variants keyed by variant string (``"4.6.1"``), in catalogue order."""
    path = data_dir("srv_templates") / "catalogue.csv"
    out: dict[str, Srv] = {}
    with path.open(newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            roles = frozenset(r for r in row["eligible_roles"].split(";") if r)
            srv = Srv(
                variant=row["service_reference_variant"],
                reference=row["service_reference"],
                name=row["name"],
                critical=_flag(row["critical"]),
                on_demand=_flag(row["on_demand"]),
                future_dated=row["future_dated"],
                dcc_scheduled=_flag(row["dcc_scheduled"]),
                non_device=_flag(row["non_device"]),
                eligible_roles=roles,
            )
            out[srv.variant] = srv
    return out


def get_srv(variant: str) -> Srv | None:
    """The catalogue entry for ``variant``, or None when it is not a DUIS SRV variant."""
    return catalogue().get(variant)
