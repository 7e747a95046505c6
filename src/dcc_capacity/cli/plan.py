"""``dcc-capacity plan PROFILE``: show the load a profile asks for before running it.

Three audiences: ``table`` for the test manager reading Tables A5-A7 (with
thousands separators, units and clock times), ``json`` for tools (exactly the
contract's object, numbers unrounded) and ``csv`` for spreadsheets and pandas
(one tidy table: table,row,slot,hours,value,unit).
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import sys

from ..volume import ROWS, SLOT_HOURS_LABEL, SLOTS, SPS, VolumePlan, load_plan

__all__ = ["add_parser", "run", "render_table", "render_csv", "render_json"]

_UNITS = {"A5": "SRVs/day", "A6": "SRVs/day", "A7": "SRV/s"}
_TITLES = {
    "A5": "Table A5 - predicted SRVs per day by SRV type and timeslot (SRVs/day)",
    "A6": "Table A6 - predicted SRVs per day by Service Provider and timeslot (SRVs/day)",
    "A7": "Table A7 - peak test-environment rate by Service Provider and timeslot (SRV/s)",
}


def add_parser(subparsers: argparse._SubParsersAction, help_text: str) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "plan", help=help_text, description="Compute Tables A5, A6 and A7 (SCTAD Appendix A) from a volume profile.")
    parser.add_argument("profile", metavar="PROFILE",
                        help="volume profile YAML (e.g. volume_profiles/foc.yaml); a bare ioc, moc or foc names a "
                             "shipped example")
    parser.add_argument("--format", choices=("table", "json", "csv"), default="table",
                        help="table for people (default), json as the contract defines, csv as one tidy table")
    parser.add_argument("--sp", choices=SPS, default="DSP",
                        help="Service Provider whose per-row target rates the table shows (default DSP)")
    parser.add_argument("--slot", choices=SLOTS, default=None,
                        help="timeslot of the per-row target rates (default: the SP's busiest slot)")
    parser.set_defaults(handler=run)
    return parser


def run(args: argparse.Namespace) -> int:
    plan = load_plan(args.profile)
    if args.format == "json":
        out = render_json(plan)
    elif args.format == "csv":
        out = render_csv(plan)
    else:
        out = render_table(plan, sp=args.sp, slot=args.slot)
    sys.stdout.write(out)
    return 0


def render_json(plan: VolumePlan) -> str:
    return json.dumps(plan.to_dict(), indent=1) + "\n"


def render_csv(plan: VolumePlan) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["table", "row", "slot", "hours", "value", "unit"])
    for name, frame in (("A5", plan.a5), ("A6", plan.a6), ("A7", plan.a7)):
        for row in frame.index:
            for slot in SLOTS:
                writer.writerow([name, row, slot, SLOT_HOURS_LABEL[slot], repr(float(frame.loc[row, slot])),
                                 _UNITS[name]])
    return buffer.getvalue()


def _per_day(value: float) -> str:
    return f"{value:,.0f}"


def _per_second(value: float) -> str:
    if value == 0:
        return "0"
    if abs(value) < 0.01:
        return f"{value:.2g}"
    return f"{value:,.2f}"


def _grid(title: str, first: str, rows: list[tuple[str, list[str]]], columns: list[tuple[str, str]]) -> list[str]:
    """A text grid with two heading lines per column (what, unit); labels left, numbers right."""
    widths = [max(len(first), *(len(label) for label, _ in rows))]
    for i, (top, unit) in enumerate(columns):
        widths.append(max(len(top), len(unit), *(len(cells[i]) for _, cells in rows)))

    def line(label: str, cells: list[str]) -> str:
        text = label.ljust(widths[0]) + "".join("  " + c.rjust(w) for c, w in zip(cells, widths[1:], strict=True))
        return text.rstrip()

    head = [line("", [top for top, _ in columns]), line(first, [unit for _, unit in columns])]
    rule = "-" * max(len(h) for h in head)
    return [title, "", *head, rule, *(line(label, cells) for label, cells in rows), ""]


def render_table(plan: VolumePlan, *, sp: str = "DSP", slot: str | None = None) -> str:
    profile = plan.profile
    slot = slot or plan.busiest_slot(sp)
    per_day_heads = [*((f"{SLOT_HOURS_LABEL[s]} {s}", "SRVs/day") for s in SLOTS), ("whole day", "SRVs/day")]
    lines = [
        f"Profile: {profile.name}  [{profile.capability}]  ({profile.path})",
        f"Measurement day: {profile.measurement_day or 'not given'}   enrolment growth g = {plan.growth:,.4g}   "
        f"SMETS1 fraction f1 = {plan.smets1_fraction:.4g}",
        "",
    ]
    a5_rows = [(row, [_per_day(plan.a5.loc[row, s]) for s in SLOTS] + [_per_day(plan.a5.loc[row].sum())])
               for row in ROWS]
    a5_rows.append(("total (= DSP)", [_per_day(plan.a5[s].sum()) for s in SLOTS] + [_per_day(plan.a5.values.sum())]))
    lines += _grid(_TITLES["A5"], "SRV type", a5_rows, per_day_heads)
    a6_rows = [(name, [_per_day(plan.a6.loc[name, s]) for s in SLOTS] + [_per_day(plan.a6.loc[name].sum())])
               for name in SPS]
    lines += _grid(_TITLES["A6"], "Service Provider", a6_rows, per_day_heads)
    a7_rows = [(name, [_per_second(plan.a7.loc[name, s]) for s in SLOTS]) for name in SPS]
    lines += _grid(_TITLES["A7"], "Service Provider", a7_rows, [(f"{SLOT_HOURS_LABEL[s]} {s}", "peak SRV/s")
                                                                for s in SLOTS])
    lines += _rates(plan, sp, slot)
    return "\n".join(lines) + "\n"


def _rates(plan: VolumePlan, sp: str, slot: str) -> list[str]:
    profile = plan.profile
    rates = plan.row_rates(sp, slot)
    total = sum(rates.values())
    weights = plan.row_weights(sp)
    rows = []
    for row in ROWS:
        if weights[row] == 0:
            continue
        share = f"{rates[row] / total:.1%}" if total else "-"
        srvs = f"{len(plan.journeys[row])} SRVs" if row in plan.journeys else "-"
        carried = "all" if weights[row] == 1 else f"f1 = {weights[row]:.4g}"
        rows.append((row, [_per_second(rates[row]), share, carried, srvs]))
    rows.append(("total (= A7)", [_per_second(total), "100.0%" if total else "-", "", ""]))
    title = (f"Target rates per SRV type for {sp} in {SLOT_HOURS_LABEL[slot]} ({slot}): A6 row share / "
             f"{slot} seconds x peak-to-average {profile.peak_to_average(sp, slot):g} x test_scale "
             f"{profile.test_scale(sp):g}")
    return _grid(title, "SRV type", rows, [("target", "SRV/s"), ("share", "of A7"), ("part of row", f"carried by {sp}"),
                                           ("journey", "length")])
