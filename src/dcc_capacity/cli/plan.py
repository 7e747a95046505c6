"""``dcc-capacity plan PROFILE``: show the load a profile asks for before running it.

Three audiences: ``table`` for the test manager reading Tables A5-A7 (with
thousands separators, units and clock times), ``json`` for tools (exactly the
contract's object, numbers unrounded) and ``csv`` for spreadsheets and pandas
(one tidy table: table,row,slot,hours,value,unit).

``--mix`` shows instead what a run sends inside those rates for one SP and
slot (:mod:`dcc_capacity.model.srvmix`): the fleet's shares, the top-up share, and
the per-class and per-SRV shares with the SMETS1 share of each, every figure
with its source. It is a separate output so the contract's JSON and CSV stay
exactly as they are; the table shows the mix after the target rates.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import sys

from dcc_capacity.cli.textgrid import grid, per_day, per_second
from dcc_capacity.model.srvmix import SrvMix
from dcc_capacity.model.volume import ROWS, SLOT_HOURS_LABEL, SLOTS, SPS, VolumePlan, load_plan

__all__ = ["add_parser", "run", "render_table", "render_csv", "render_json", "render_mix_csv", "render_mix_json",
           "render_mix_table"]

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
    parser.add_argument("--s1sp", default=None, metavar="N",
                        help="with --sp S1SP: the rates and mix of one S1SP of the profile's s1sp_shares "
                             "(name or 1..N)")
    parser.add_argument("--slot", choices=SLOTS, default=None,
                        help="timeslot of the per-row target rates (default: the SP's busiest slot)")
    parser.add_argument("--mix", action="store_true",
                        help="show the SRV mix a run sends for --sp and --slot (fleet shares, top-ups, per class "
                             "and per SRV, SMETS1 shares) instead of Tables A5-A7")
    parser.add_argument("--secmp0192-share", type=float, default=None, metavar="F",
                        help="share of BAU sent as SECMP0192 5.1 schedules, as in dcc-capacity run (default 0.02)")
    parser.set_defaults(handler=run)
    return parser


def _mix(plan: VolumePlan, args: argparse.Namespace) -> SrvMix:
    from dcc_capacity.errors import InputError
    from dcc_capacity.spec.resolve import TestSpec, mix_for

    share = getattr(args, "secmp0192_share", None)
    spec = TestSpec(profile=str(plan.profile.path), sp=args.sp, slot=args.slot, s1sp=getattr(args, "s1sp", None))
    spec.check()
    if share is not None:
        if not 0 <= share < 1:
            raise InputError(f"must be 0..1, below 1 (got {share})", key="--secmp0192-share")
        spec.secmp0192_share = share
    return mix_for(spec, plan)


def run(args: argparse.Namespace) -> int:
    plan = load_plan(args.profile)
    if getattr(args, "mix", False):
        mix = _mix(plan, args)
        render = {"json": render_mix_json, "csv": render_mix_csv}.get(args.format, render_mix_table)
        sys.stdout.write(render(mix))
        return 0
    if args.format == "json":
        out = render_json(plan)
    elif args.format == "csv":
        out = render_csv(plan)
    else:
        mix = _mix(plan, args)
        out = render_table(plan, sp=args.sp, slot=args.slot, s1sp=_mix_s1sp(plan, args)) + "\n" + render_mix_table(mix)
        if args.sp == "CP":  # CP mode's own unit: installations (migrations) per day, not SRV/s
            from dcc_capacity.cli.plan_cp import render_cp_table

            out += "\n" + render_cp_table(plan)
    sys.stdout.write(out)
    return 0


def _mix_s1sp(plan: VolumePlan, args: argparse.Namespace) -> str | None:
    """The profile's name of ``--s1sp`` (a name or 1..N), or None."""
    s1sp = getattr(args, "s1sp", None)
    return None if s1sp is None else plan.s1sp_name(s1sp)


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
    if plan.secmp0192 is not None:  # only with the profile's secmp0192: existing profiles' CSV is unchanged
        for slot in SLOTS:
            writer.writerow(["SECMP0192", "scheduled_executions", slot, SLOT_HOURS_LABEL[slot],
                             repr(plan.secmp0192.per_slot[slot]), "SRVs/day"])
    return buffer.getvalue()


def render_table(plan: VolumePlan, *, sp: str = "DSP", slot: str | None = None, s1sp: str | None = None) -> str:
    profile = plan.profile
    slot = slot or plan.busiest_slot(sp if s1sp is None else f"S1SP/{s1sp}")
    per_day_heads = [*((f"{SLOT_HOURS_LABEL[s]} {s}", "SRVs/day") for s in SLOTS), ("whole day", "SRVs/day")]
    lines = [
        f"Profile: {profile.name}  [{profile.capability}]  ({profile.path})",
        f"Measurement day: {profile.measurement_day or 'not given'}   enrolment growth g = {plan.growth:,.4g}   "
        f"SMETS1 fraction f1 = {plan.smets1_fraction:.4g}",
        "",
    ]
    a5_rows = [(row, [per_day(plan.a5.loc[row, s]) for s in SLOTS] + [per_day(plan.a5.loc[row].sum())])
               for row in ROWS]
    a5_rows.append(("total (= DSP)", [per_day(plan.a5[s].sum()) for s in SLOTS] + [per_day(plan.a5.values.sum())]))
    lines += grid(_TITLES["A5"], "SRV type", a5_rows, per_day_heads)
    a6_rows = [(_sp_label(name), [per_day(plan.a6.loc[name, s]) for s in SLOTS] + [per_day(plan.a6.loc[name].sum())])
               for name in plan.a6.index]
    lines += grid(_TITLES["A6"], "Service Provider", a6_rows, per_day_heads)
    a7_rows = [(_sp_label(name), [per_second(plan.a7.loc[name, s]) for s in SLOTS]) for name in plan.a7.index]
    lines += grid(_TITLES["A7"], "Service Provider", a7_rows, [(f"{SLOT_HOURS_LABEL[s]} {s}", "peak SRV/s")
                                                                for s in SLOTS])
    if plan.s1sp_shares:
        lines += _s1sp_shares(plan)
    if plan.secmp0192 is not None:
        from dcc_capacity.cli.plan_secmp0192 import secmp0192_lines

        lines += secmp0192_lines(plan)
    lines += _rates(plan, sp, slot, s1sp)
    return "\n".join(lines) + "\n"


def _sp_label(row: str) -> str:
    """A named S1SP's row, indented under the S1SP total (``  S1SP/<name>``)."""
    return f"  {row}" if row.startswith("S1SP/") else row


def _s1sp_shares(plan: VolumePlan) -> list[str]:
    profile = plan.profile
    rows = [(name, [_pct(fleet), _pct(mig)]) for name, (fleet, mig) in plan.s1sp_shares.items()]
    lines = grid("S1SP shares (profile s1sp_shares; SCTAD 8.5: volumes for each of the three S1SP)", "S1SP", rows,
                  [("fleet", "share of f1 rows"), ("migrations", "share")])
    sources = {name: profile.source_of(f"s1sp_shares.{name}") or "no source given" for name in plan.s1sp_shares}
    if len(set(sources.values())) == 1:
        return [*lines[:-1], f"source: {next(iter(sources.values()))}", ""]
    return [*lines[:-1], *(f"source of {name}: {text}" for name, text in sources.items()), ""]


def _rates(plan: VolumePlan, sp: str, slot: str, s1sp: str | None = None) -> list[str]:
    profile = plan.profile
    rates = plan.row_rates(sp, slot, s1sp)
    total = sum(rates.values())
    weights = plan.row_weights(sp, s1sp)
    rows = []
    for row in ROWS:
        if weights[row] == 0:
            continue
        share = f"{rates[row] / total:.1%}" if total else "-"
        srvs = f"{len(plan.journeys[row])} SRVs" if row in plan.journeys else "-"
        carried = "all" if weights[row] == 1 else f"f1 = {weights[row]:.4g}" if s1sp is None else f"{weights[row]:.4g}"
        rows.append((row, [per_second(rates[row]), share, carried, srvs]))
    rows.append(("total (= A7)", [per_second(total), "100.0%" if total else "-", "", ""]))
    who = sp if s1sp is None else f"S1SP/{s1sp}"
    title = (f"Target rates per SRV type for {who} in {SLOT_HOURS_LABEL[slot]} ({slot}): A6 row share / "
             f"{slot} seconds x peak-to-average {profile.peak_to_average(sp, slot):g} x test_scale "
             f"{profile.test_scale(sp):g}")
    return grid(title, "SRV type", rows, [("target", "SRV/s"), ("share", "of A7"),
                                           ("part of row", f"carried by {who}"),
                                           ("journey", "length")])


def render_mix_json(mix: SrvMix) -> str:
    return json.dumps(mix.to_dict(), indent=1) + "\n"


def render_mix_csv(mix: SrvMix) -> str:
    """One tidy table: section (fleet, topup, total, class, row, srv), key, share, SRV/s, SMETS1 share, source."""
    doc = mix.to_dict()
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["sp", "slot", "section", "key", "share", "srv_per_s", "smets1_share", "source"])
    base = [mix.sp, mix.slot]
    for key, fig in doc["fleet"].items():
        writer.writerow([*base, "fleet", key, repr(fig["value"]), "", "", fig["source"]])
    writer.writerow([*base, "topup", "2.2 of bau", repr(mix.topup_share.value), "", "", mix.topup_share.source])
    writer.writerow([*base, "total", "all SRVs", "1.0", repr(mix.total_srv_per_s), repr(mix.smets1_share()),
                     "Table A7 (alerts are northbound: not sent)"])
    for name, c in doc["classes"].items():
        writer.writerow([*base, "class", name, repr(c["share"]), repr(c["srv_per_s"]), repr(c["smets1_share"]),
                         c["source"]])
    for row, share in doc["rows"].items():
        writer.writerow([*base, "row", row, repr(share), repr(share * mix.total_srv_per_s), "", "Table A6 row share"])
    for variant, v in doc["srvs"].items():
        writer.writerow([*base, "srv", variant, repr(v["share"]), repr(v["srv_per_s"]), repr(v["smets1_share"]),
                         v["source"]])
    return buffer.getvalue()


def _pct(value: float) -> str:
    return f"{value:.1%}" if value >= 0.001 or value == 0 else f"{value:.2%}"


def render_mix_table(mix: SrvMix) -> str:
    """The mix for people: fleet and top-up figures with their sources, then per class and per SRV."""
    fleet = mix.fleet
    only = "  (the S1SP and DCO carry SMETS1 installations only)" if mix.only_smets == 1 else ""
    lines = [f"SRV mix a run sends for {mix.sp} in {SLOT_HOURS_LABEL[mix.slot]} ({mix.slot}): "
             f"{per_second(mix.total_srv_per_s)} SRV/s at the slot's peak, {_pct(mix.smets1_share())} to SMETS1, "
             f"{_pct(mix.prepay_share())} to prepayment installations{only}",
             ""]
    for label, fig in (("fleet SMETS1 share", fleet.smets1), ("prepayment share of SMETS1", fleet.prepay_smets1),
                       ("prepayment share of SMETS2", fleet.prepay_smets2), ("dual-fuel share", fleet.dual_fuel),
                       ("top-ups (2.2) in BAU", mix.topup_share)):
        lines.append(f"  {label:<27} {_pct(fig.value):>7}  {fig.source}")
    lines.append("")
    shares = mix.class_shares()
    rows = [(name, [c.row, per_second(c.srv_per_s), _pct(shares[name]), _pct(c.smets1), _pct(c.prepay)])
            for name, c in mix.classes.items()]
    lines += grid("Per user class (the records' user_class)", "user class", rows,
                   [("row", "Table A2"), ("target", "SRV/s"), ("share", "of SRVs"), ("SMETS1", "share"),
                    ("prepay", "share")])
    doc = mix.to_dict()["srvs"]
    senders = {v: ", ".join(n for n, c in mix.classes.items() if v in c.variants) for v in doc}
    width = max((len(t) for t in senders.values()), default=0)
    srv_rows = [(variant, [per_second(v["srv_per_s"]), _pct(v["share"]), _pct(v["smets1_share"]),
                           senders[variant].ljust(width)]) for variant, v in doc.items()]
    lines += grid("Per SRV (the records' srv_variant, smets and prepay; each SRV's sources: --mix --format json)",
                   "SRV", srv_rows, [("target", "SRV/s"), ("share", "of SRVs"), ("SMETS1", "share"),
                                     ("sent by", "user class")])
    return "\n".join(lines) + "\n"
