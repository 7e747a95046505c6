"""The catch-up test (SECMP0067's outage backlog): an outage from a third of the run, a sixth long (``--outage``),
then the backlog. With the embedded emulator the SUT has the outage; with ``--client-hold`` the Service Users hold
their traffic instead and resend it (a SUT without an outage). The report measures the time to recover."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

from dcc_capacity.spec.model import SpecBase, knob
from dcc_capacity.testtypes.base import EmulatorContext, TestType, fmt

__all__ = ["Catchup", "CatchupSpec"]


class CatchupSpec(SpecBase):
    test: Literal["catchup"] = "catchup"
    client_hold: bool = knob(False, "catchup against --host: Service Users hold traffic in the outage, then send "
                                    "the backlog", group="type")
    outage_s: float | None = knob(None, "catchup: length of the outage (default: a sixth of --duration)",
                                  flag="--outage", duration=True, group="type")
    recovery_target_s: float | None = knob(None, "catchup: longest acceptable time to recover (default: the "
                                                 "outage's length)", flag="--recovery-target", locust=None,
                                           duration=True, metavar="DURATION", group="verdict")

    def outage(self) -> float:
        return self.outage_s or self.duration_s / 6


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, timezone.utc).isoformat(timespec="milliseconds")


class Catchup(TestType):
    name, spec, test_id, title = "catchup", CatchupSpec, "CATCHUP", "Outage catch-up"
    section, template = "catchup", "_catchup.html.j2"
    risk_text, risk_href = "Outage catch-up: the SUT did not recover within the target.", "catchup"

    def shape(self, spec: Any, r: Any, shapes: Any) -> Any:
        d = spec.duration_s
        if spec.client_hold:
            return shapes.CatchupShape(rates=r.rates, outage_at_s=d / 3, outage_s=spec.outage(), hold_factor=0.0,
                                catchup_factor=2.0, duration_s=d)
        # the SUT has the outage (embedded emulator): clients keep sending, the SUT's backlog drains after
        return shapes.CatchupShape(rates=r.rates, outage_at_s=d / 3, outage_s=spec.outage(), hold_factor=1.0,
                            catchup_factor=1.0, duration_s=d)

    def emulator(self, spec: Any, r: Any, cfg: dict[str, Any], ctx: EmulatorContext) -> None:
        if ctx.emulator_tps is None:
            # 3x the base rate: the backlog drains at the spare 2x, in about half the outage's length, so the
            # catch-up and its peak rate show; the queue holds the whole backlog (nothing refused).
            base = sum(r.rates.values())
            cfg["capacity"]["tps"] = max(10.0, 3.0 * base)
            cfg["capacity"]["queue_limit"] = max(5000, int(2 * base * spec.outage()))
        if spec.client_hold:
            return
        # The outage window counts from the emulator's start; the test starts a few seconds later.
        lead = 3.0 if not ctx.workers else 5.0  # emulator start -> test start, roughly
        cfg.setdefault("faults", {})["outage"] = {
            "enabled": True, "windows": [{"start_s": lead + spec.duration_s / 3, "duration_s": spec.outage()}]}

    def facts(self, spec: Any, r: Any, run_dir: Path, test_start: float, emulator_t0: float | None) -> dict[str, Any]:
        outage = _outage(spec, run_dir, test_start, emulator_t0)
        if outage is None:
            return {}
        outage["start"], outage["end"] = _iso(outage["start_epoch"]), _iso(outage["end_epoch"])
        outage["duration_s"] = outage["end_epoch"] - outage["start_epoch"]
        return {"catchup": {"outage": outage, "client_hold": spec.client_hold}}

    def line(self, c: dict[str, Any]) -> str | None:
        ttr = fmt(c["time_to_recover_s"], ".2f")
        return (f"catch-up: backlog {c['backlog']} requests, time to recover {ttr} s "
                f"(target {fmt(c['recovery_target_s'], '.1f')} s), rate needed {fmt(c['rate_needed'])}/s, "
                f"peak achieved {fmt(c['peak_rate_achieved'])}/s: {c['verdict'].upper()}")


def _outage(spec: Any, run_dir: Path, test_start: float, emulator_t0: float | None) -> dict[str, Any] | None:
    if spec.client_hold:
        # The Service Users hold their traffic for the shape's window (CatchupShape: 1/3 of the run, 1/6 long).
        start = test_start + spec.duration_s / 3
        return {"start_epoch": start, "end_epoch": start + spec.outage(),
                "source": "client hold window of the catch-up shape (from the test start)"}
    if emulator_t0 is None:
        return None  # --host without --client-hold: the SUT's own outage, if any, is not ours to know
    try:
        cfg = json.loads((run_dir / "logs" / "emulator-config.json").read_text())
        window = cfg["faults"]["outage"]["windows"][0]
    except (OSError, ValueError, KeyError, IndexError):
        return None
    start = emulator_t0 + float(window["start_s"])
    return {"start_epoch": start, "end_epoch": start + float(window["duration_s"]),
            "source": "embedded emulator outage window (logs/emulator-config.json), from the emulator's start"}
