"""``dcc-capacity plan``'s SECMP0192 section: the DCC-scheduled executions of a profile's ``secmp0192``.

Kept apart from plan.py so the contract's tables stay in one small module; shown only when the profile gives
``secmp0192`` (existing profiles print exactly what they did). Every figure names where it comes from.
"""

from __future__ import annotations

from dcc_capacity.model.secmp0192 import plan_section
from dcc_capacity.model.volume import SLOT_HOURS_LABEL, SLOTS, VolumePlan

__all__ = ["secmp0192_lines"]


def _n(value: float) -> str:
    return f"{value:,.0f}"


def secmp0192_lines(plan: VolumePlan) -> list[str]:
    """The section for people: executions per slot, the window's rate, DLMS commands, TPS against 450."""
    doc = plan_section(plan)
    src = doc["sources"]
    low, high = doc["dlms_commands_per_day"]
    lines = [
        "SECMP0192 - DCC-scheduled SRV 4.3 / 4.4.3 for SMETS1 (profile secmp0192; not part of Tables A5-A7)",
        "",
        f"  scheduled SRVs a day        {_n(doc['scheduled_srvs_per_day'])}  ({src['scheduled_srvs_per_day']})",
        f"  DLMS commands per SRV       {doc['dlms_commands_per_srv'][0]} to {doc['dlms_commands_per_srv'][1]}  "
        f"({src['dlms_commands_per_srv']})",
        f"  DLMS commands a day         {_n(low)} to {_n(high)}",
        f"  execution window            {doc['window']['start']} to {doc['window']['end']} "
        f"({doc['window']['seconds']:,} s)  ({src['execution_window']})",
        f"  in the window               {doc['window_srv_per_s']:,.1f} SRV/s in production; test environment: "
        + ", ".join(f"{sp} {v:,.2f} SRV/s" for sp, v in doc["test_env_window_srv_per_s"].items()),
        "  per slot (SRVs/day)         " + ", ".join(f"{s} {SLOT_HOURS_LABEL[s]} {_n(doc['per_slot'][s])}"
                                                    for s in SLOTS),
        f"  target response time        {doc['trt_s'] // 3600} h  ({src['trt_s']})",
        "",
        f"  S1SP load in the window, {src['tps']}:",
    ]
    for row, t in doc["tps"].items():
        verdict = "within" if t["within"] else "ABOVE"
        lines.append(f"    {row:<22} {t['tps']:>10,.1f} TPS in {t['slot']} ({t['srv_per_s']:,.1f} SRV/s + "
                     f"{t['scheduled_srv_per_s']:,.1f} scheduled SRV/s, x2, + {t['alerts_per_s']:,.1f} alerts/s): "
                     f"{verdict} the {t['limit']:g} TPS ({src['limit']})")
    return [*lines, ""]
