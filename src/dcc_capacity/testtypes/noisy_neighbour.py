"""The noisy-neighbour test (SECMP0067 fair share): the base rates all along; in the middle third one Service
User (``NoisyNeighbour``) bursts ``--burst-factor`` x the rest. The report judges what the quiet users kept."""

from __future__ import annotations

from typing import Any, Literal

from dcc_capacity.spec.model import SpecBase, knob
from dcc_capacity.testtypes.base import EmulatorContext, FinishContext, TestType, fmt

__all__ = ["NoisyNeighbour", "NoisySpec"]


class NoisySpec(SpecBase):
    test: Literal["noisy-neighbour"] = "noisy-neighbour"
    burst_factor: float = knob(2.0, "noisy-neighbour: burst as a multiple of the rest", lo=0, group="type")
    fair_share_min: float | None = knob(None, "noisy-neighbour: share of its offered load a quiet user must keep "
                                              "(default 0.9)", locust=None, lo=0, lo_open=True, hi=1,
                                        metavar="FRACTION", group="verdict")


class NoisyNeighbour(TestType):
    name, spec, test_id, title = "noisy-neighbour", NoisySpec, "NOISY", "Noisy neighbour"
    section, template = "fairness", "_fairness.html.j2"
    risk_text, risk_href = "Noisy neighbour: a quiet Service User lost part of its share.", "fairness"

    def shape(self, spec: Any, r: Any, shapes: Any) -> Any:
        return shapes.NoisyShape(rates=r.rates, burst_factor=spec.burst_factor, duration_s=spec.duration_s)

    def peak_factor(self, spec: Any) -> float:
        return 1 + float(spec.burst_factor)

    def emulator(self, spec: Any, r: Any, cfg: dict[str, Any], ctx: EmulatorContext) -> None:
        if ctx.emulator_tps is None:
            cfg["capacity"]["tps"] = max(10.0, 1.5 * sum(r.rates.values()))  # the burst exceeds it: SECMP0067 decides

    def finish(self, spec: Any, run: dict[str, Any], ctx: FinishContext) -> None:
        run["user_shares"] = ctx.user_shares()
        for user, share in run["user_shares"].items():
            ctx.messages.append(f"Service User {user}: {share['requests']} requests, {share['throttled']} throttled, "
                                f"{share['achieved_share']:.1%} of all achieved")

    def line(self, f: dict[str, Any]) -> str | None:
        quiet = [u for u in f["users"] if u["role"] == "quiet" and u["kept"] is not None]
        kept = min((u["kept"] for u in quiet), default=None)
        return (f"noisy neighbour: burst by {', '.join(f['burst_users']) or 'nobody'}; quiet users kept "
                f">= {fmt(None if kept is None else kept * 100, '.1f')} % of their offered load in the burst: "
                f"{f['verdict'].upper()}")
