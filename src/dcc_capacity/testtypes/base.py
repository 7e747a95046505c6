"""What a test type plugs in: its knobs (a spec class), its shape, its emulator settings, its run.json facts,
its report section. One subclass of :class:`TestType` per module in this package, listed in ``registry.py``.

Every hook has a neutral default, so a type only writes what is particular to it. The hooks are called from
the layer they belong to (the shape inside Locust, the emulator and run.json facts in the parent, the verdict
line and risk in the report), and that layer hands in what it owns: the load code's shape classes, the
records' per-user shares, the run's fleet. So a plugin imports only the spec model and the volume model (never
load/, orchestrate/ or report/, not even lazily: tests/test_import_graph.py checks it), and the CLI process
imports every plugin and stays free of Locust and gevent. The section's figures are the report's
(report/scenarios.py ``ANALYSERS``, keyed by :attr:`TestType.section`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from dcc_capacity.spec.model import SpecBase

__all__ = ["EmulatorContext", "FinishContext", "SideContext", "TestType", "fmt"]


@dataclass
class EmulatorContext:
    """What a type may need to set the embedded emulator up (orchestrate/emulator.py)."""

    emulator_tps: float | None
    """``--emulator-tps``: the user's capacity, which a type must not override."""
    workers: int
    out: Path


@dataclass
class FinishContext:
    """What a type may add to run.json at the end of a run (orchestrate/finish.py)."""

    out: Path
    shape: dict[str, Any] | None
    """``<run>/shape.json``: what the load shape found (written on the master)."""
    rate: float
    target: str
    embedded: bool
    user_shares: Callable[[], dict[str, dict[str, float]]] = dict
    """Per Service User (the RequestID originator), from the records: requests, ok, throttled, achieved share
    (orchestrate/finish.py ``shares_by_user``; computed when a type asks)."""
    messages: list[str] = field(default_factory=list)
    """Lines the run prints after the report (``dcc-capacity run: ...``)."""


@dataclass
class SideContext:
    """What a type's side task beside Locust may need (orchestrate/run.py)."""

    out: Path
    emulator: Any
    """The embedded emulator (``.info``: its ports), None against ``--host``."""
    smets1_installations: Callable[[], list[Any]]
    """The fleet's SMETS1 installations the load draws from (orchestrate/emulator.py; computed when asked)."""


def fmt(v: Any, spec: str = ".1f") -> str:
    """A figure for a console line (:meth:`TestType.line`): ``–`` for none or not finite."""
    return "–" if v is None or (isinstance(v, float) and not math.isfinite(v)) else format(v, spec)


class TestType:
    """One test type. Class attributes say what it is; methods are the hooks (defaults: nothing special)."""

    __test__ = False  # not a pytest test class

    name: ClassVar[str] = ""
    """``--test`` value, run.json ``test_type``, the catalogue's ``type``."""
    spec: ClassVar[type[SpecBase]] = SpecBase
    test_id: ClassVar[str] = ""
    """The shipped catalogue's id (volume_profiles/nfr-default.yaml): run.json ``test_id`` by default."""
    title: ClassVar[str] = ""
    section: ClassVar[str | None] = None
    """Key of the report's scenario section (summary.json ``scenarios.<section>``), None: no section. The report
    computes its figures (report/scenarios.py ``ANALYSERS[section]``)."""
    template: ClassVar[str | None] = None
    """The report template (reports/) that draws :attr:`section`."""
    quiet_slot_ok: ClassVar[bool] = False
    """A slot where the SP sends nothing is no error (soak: the other slots send)."""
    live_nfr_test: ClassVar[str | None] = None
    """Judge the live progress line against this catalogue test's NFRs instead of all (negative)."""
    cp_files: ClassVar[bool] = True
    """With ``--sp CP`` the run tests the CP on its own interface, migration files over SFTP (CP mode,
    orchestrate/cpmode.py); False: the type brings its own CP cases (negative's SFTP migration cases)."""
    risk_text: ClassVar[str | None] = None
    """The report's 6.3.2 risk (level high) when the section's verdict failed; None: no risk."""
    risk_href: ClassVar[str] = ""
    """The report anchor the risk links to."""
    not_a_capacity_test: ClassVar[str | None] = None
    """Why Table A7 does not apply to this type's rate (the report's required-vs-tested note), and NFRs only such
    types cover are not asked of other runs; None: a capacity test."""

    # --- volume model -> rates ---------------------------------------------------------------------------------
    def rates(self, spec: Any, resolved_rates: dict[str, float]) -> dict[str, float] | None:
        """Replace the profile's class rates (None: keep them)."""
        return None

    # --- inside Locust ---------------------------------------------------------------------------------------
    def shape(self, spec: Any, r: Any, shapes: Any) -> Any:
        """The load shape of ``spec`` with the resolved rates ``r``: steady by default. ``shapes``: the load
        code's shape classes (load/shape.py ``SHAPES``), handed in so the plugin does not import Locust."""
        return shapes.LoadShape(rates=r.rates, duration_s=spec.duration_s)

    # --- the parent: embedded emulator, run.json -------------------------------------------------------------
    def peak_factor(self, spec: Any) -> float:
        """The highest multiple of the reference rate the shape offers (sizes the default emulator capacity)."""
        return 1.0

    def emulator(self, spec: Any, r: Any, cfg: dict[str, Any], ctx: EmulatorContext) -> None:
        """Adjust the embedded emulator's generated config in place."""

    def facts(self, spec: Any, r: Any, run_dir: Path, test_start: float, emulator_t0: float | None) -> dict[str, Any]:
        """run.json keys the report needs to judge this type (only the run knows them)."""
        return {}

    def duration(self, spec: Any, shape: dict[str, Any] | None) -> float:
        """How long the load really ran (a stress ramp may stop early)."""
        return float(spec.duration_s)

    def finish(self, spec: Any, run: dict[str, Any], ctx: FinishContext) -> None:
        """Add to run.json before it is written; append lines to ``ctx.messages``."""

    def exit_code(self, run: dict[str, Any], code: int) -> int:
        """The run's exit status from the report's (a negative case not answered as required fails it)."""
        return code

    def start_side_tasks(self, spec: Any, ctx: SideContext) -> Any:
        """Something the parent runs beside Locust (negative: the SFTP migration cases); ``.stop()`` at the end."""
        return None

    # --- the report (the figures of :attr:`section`: report/scenarios.py) -----------------------------------
    def tested_rates(self, run: dict[str, Any], summary: dict[str, Any]) -> dict[str, float] | None:
        """Slot -> the rate a run of this type tested there, from run.json and summary.json (None: the report's
        rule, the smaller of offered and planned in the run's slot: report/required.py)."""
        return {} if self.not_a_capacity_test else None

    def line(self, figures: dict[str, Any]) -> str | None:
        """One line for the console and summary.json ``scenarios.lines``."""
        return None

    def risk(self, figures: dict[str, Any]) -> dict[str, str] | None:
        """A risk for the report's 6.3.2 when the section's verdict failed (:attr:`risk_text`)."""
        if self.risk_text is None or figures.get("verdict") != "fail":
            return None
        return {"level": "high", "text": self.risk_text, "href": self.risk_href}
