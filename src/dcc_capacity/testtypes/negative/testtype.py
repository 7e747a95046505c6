"""The negative test as a test type: DUIS case instances instead of the profile's mix, the emulator's faults and
SFTP the cases need, the SFTP migration cases beside Locust, per-case verdicts into run.json."""

from __future__ import annotations

from typing import Any, Literal

from dcc_capacity.spec.model import SpecBase
from dcc_capacity.testtypes.base import EmulatorContext, FinishContext, SideContext, TestType

__all__ = ["NEGATIVE_RATE", "Negative", "NegativeSpec"]

NEGATIVE_RATE = 4.0
"""DUIS case instances per second unless --rate says otherwise (modest: the error paths, not load)."""


class NegativeSpec(SpecBase):
    """The negative cases (the profile still names SP and slot); ``--rate``: case instances per second."""

    test: Literal["negative"] = "negative"


class Negative(TestType):
    name, spec, test_id, title = "negative", NegativeSpec, "NEGATIVE", "Negative paths"
    template = "_negative.html.j2"
    live_nfr_test = "NEGATIVE"
    cp_files = False  # with --sp CP it runs its own SFTP migration cases (migrations.py)
    not_a_capacity_test = "Not a capacity test: the negative cases run at a modest rate; Table A7 does not apply."

    def rates(self, spec: Any, resolved_rates: dict[str, float]) -> dict[str, float] | None:
        return {"NegativeCases": spec.rate or NEGATIVE_RATE}

    def emulator(self, spec: Any, r: Any, cfg: dict[str, Any], ctx: EmulatorContext) -> None:
        from dcc_capacity.testtypes.negative.migrations import emulator_settings

        cfg.update(emulator_settings(ctx.out / "logs" / "cp"))

    def start_side_tasks(self, spec: Any, ctx: SideContext) -> Any:
        """The SFTP migration cases (NEG-FALLOUT, NEG-REPROCESS), on SMETS1 installations of the fleet."""
        if ctx.emulator is None:
            return None
        from dcc_capacity.testtypes.negative.migrations import MigrationCases

        thread = MigrationCases(int(ctx.emulator.info["sftp_port"]), ctx.out, ctx.smets1_installations(),
                                spec.duration_s)
        thread.start()
        return thread

    def finish(self, spec: Any, run: dict[str, Any], ctx: FinishContext) -> None:
        from dcc_capacity.testtypes.negative.report import write_results

        write_results(ctx.out, run, {"rate": ctx.rate, "target": ctx.target, "sftp": ctx.embedded})
        for case in (run.get("negative") or {}).get("cases", []):
            ctx.messages.append(f"{case['id']}: {'PASS' if case['passed'] else 'FAIL'} - {case['as_required']} of "
                                f"{case['sent']} answered as required{'; ' + case['reason'] if case['reason'] else ''}")

    def exit_code(self, run: dict[str, Any], code: int) -> int:
        if not (run.get("negative") or {}).get("passed", True):
            return max(code, 1)  # a negative case not answered as required fails the run
        return code
