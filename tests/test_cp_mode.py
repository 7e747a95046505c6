"""CP mode (run --sp CP): migration files over SFTP at Table A7's CP row, measured and reported (SCTAD 3.4(b))."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Generator
from pathlib import Path

import pytest

from _lanes import Cli, Ran, background, cli
from dcc_capacity.model.cpmigration import CP_CLASS, cp_rates
from dcc_capacity.report.cp import planned_per_s, required_row, section
from dcc_capacity.spec.resolve import TestSpec as Spec
from dcc_capacity.spec.resolve import resolve

ROOT = Path(__file__).resolve().parents[1]
FOC = str(ROOT / "volume_profiles" / "foc.yaml")
# foc.yaml: 50,000 migrations a day (predicted.per_day.s1_migrations), 12 of their 17 hours in the day slot,
# CP peak-to-average 1 and test_scale 1: installations/s in the day slot.
FOC_DAY_PER_S = 50_000 * 12 / 17 / 43_200


def test_cp_mode_rate_is_table_a7_cp_row_in_installations_per_second():
    r = resolve(Spec(sp="CP", slot="day", profile=FOC))
    assert r.rates == {CP_CLASS: pytest.approx(FOC_DAY_PER_S, rel=1e-9)}
    # ... the same as the A7 row in SRV/s over the journeys' lengths (9 credit, 13 prepay SRVs)
    rows = r.plan.row_rates("CP", "day")
    assert rows["s1_migration_credit"] / 9 + rows["s1_migration_prepay"] / 13 == pytest.approx(FOC_DAY_PER_S)
    assert cp_rates(r.plan, {"S1MigrationCredit": 9.0, "S1MigrationPrepay": 13.0}) == {CP_CLASS: 2.0}
    assert CP_CLASS not in resolve(Spec(sp="DSP", profile=FOC)).rates  # other SPs keep their DUIS classes
    assert resolve(Spec(sp="CP", slot="day", profile=FOC, rate=2.0)).rates == {CP_CLASS: pytest.approx(2.0)}


def test_plan_sp_cp_shows_installations_per_slot_and_the_test_rate():
    from dcc_capacity.cli.plan_cp import render_cp_table

    text = render_cp_table(resolve(Spec(sp="CP", slot="day", profile=FOC)).plan, batch=10)
    day = next(line for line in text.splitlines() if line.startswith("07:00-19:00 day"))
    assert day.split()[2:] == ["35,294", "0.82", "70,588", "294.1", "12"]  # 50,000 x 12/17; 0.817/s; 3600 x 0.817/10


def test_cp_sftp_adapter_awaits_the_answer_to_the_uploaded_file():
    from dcc_capacity.load.adapters.sftp import answer_files

    assert answer_files("/in/CR_P1-000001.csv", "P1-000001.CR") == [
        ("/out/ACK_P1-000001.csv", ""), ("/out/ERR_CR_P1-000001.csv.txt", "rejected")]
    assert answer_files("/in/S1CF_P1-000001-R.csv", "P1-000001-R")[:2] == [
        ("/out/COF_P1-000001-R.csv", ""), ("/out/ERR_P1-000001-R.txt", "rejected")]


@pytest.mark.parametrize(("args", "message"), [
    (("--host", "http://127.0.0.1:1"), "--host: must be an sftp URL"),
    (("--cp-batch", "0"), "--cp-batch: must be >= 1 and <= 100000 (got 0)"),
    (("--sftp-known-hosts", "no-such-file"), "no-such-file: --sftp-known-hosts: no such file"),
])
def test_bad_cp_mode_input_is_one_line_and_exit_2(run_cli, tmp_path, args, message):
    p = run_cli("run", "--test", "load", "--sp", "CP", *args, "--out", str(tmp_path / "o"))
    assert p.returncode == 2 and message in p.stderr and "Traceback" not in p.stderr
    assert not (tmp_path / "o").exists()


def test_the_run_config_names_the_known_hosts_file(run_cli, tmp_path):
    """``run.sftp_known_hosts`` is ``--sftp-known-hosts`` from a run configuration, relative to that file: a
    missing one is exit 2 naming the key; a present one reaches the run as the flag's would."""
    import argparse

    from dcc_capacity.cli.run import add_parser
    from dcc_capacity.orchestrate.configmap import resolve_args

    cfg = tmp_path / "cp.toml"
    cfg.write_text('[run]\ntest = "load"\nsftp_known_hosts = "cp_known_hosts"\n')
    p = run_cli("run", "--sp", "CP", "--config", str(cfg), "--out", str(tmp_path / "o"))
    assert p.returncode == 2 and "run.sftp_known_hosts" in p.stderr and "Traceback" not in p.stderr, p.stderr
    (tmp_path / "cp_known_hosts").write_text("[cp-test.example]:22 ssh-ed25519 AAAA\n")
    parser = argparse.ArgumentParser()
    add_parser(parser.add_subparsers(), "run")
    args = parser.parse_args(["run", "--sp", "CP", "--config", str(cfg), "--out", str(tmp_path / "o")])
    resolve_args(args)
    assert args.sftp_known_hosts == (tmp_path / "cp_known_hosts").resolve()
    flag = parser.parse_args(["run", "--sp", "CP", "--config", str(cfg), "--sftp-known-hosts", "other",
                              "--out", str(tmp_path / "o")])
    resolve_args(flag)
    assert flag.sftp_known_hosts == Path("other")  # the flag wins over the file


def _device_rows() -> list[dict[str, object]]:
    """Three migrations 10 s apart of 2 installations (4 devices each); one device falls out and is reprocessed."""
    rows: list[dict[str, object]] = []
    for m in range(3):
        t0 = 1_000.0 + 10 * m
        for d in range(4):
            fallout = m == 0 and d == 1
            rows.append({"migration_id": f"M{m}", "attempt": 0, "device_id": f"D{m}{d}", "device_type": "ESME",
                         "installation": f"{d // 2}/{d // 2}", "cr_sent_ts": t0, "ack_ts": t0 + 0.1,
                         "upload_ts": t0 + 0.2, "cof_ts": t0 + 0.2 + (m + 1),
                         "outcome": "FAILED" if fallout else "COMMISSIONED",
                         "reason": "MIGRATION_FALLOUT" if fallout else ""})
    rows.append({**rows[1], "migration_id": "M0-R", "attempt": 1, "upload_ts": 1_001.5, "cof_ts": 1_002.0,
                 "outcome": "COMMISSIONED", "reason": ""})
    return rows


def test_section_measures_rates_timings_and_outcomes_from_the_device_records(tmp_path):
    (tmp_path / "cp").mkdir()
    with (tmp_path / "cp" / "devices-h-1.csv").open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(_device_rows()[0]))
        w.writeheader()
        w.writerows(_device_rows())
    plan = {"A7_rows": {"CP": {"day": {"s1_migration_credit": 0.9, "s1_migration_prepay": 0.13}}},
            "mix": {"journeys": {"s1_migration_credit": {"srvs": ["x"] * 9},
                                 "s1_migration_prepay": {"srvs": ["x"] * 13}}}}
    run = {"sp": "CP", "test_type": "load", "slot": "day", "start": "1970-01-01T00:16:40Z", "duration_s": 30,
           "rates": {CP_CLASS: {"target": 0.2}}}
    sec = section(run, plan, tmp_path)
    assert planned_per_s(plan, "day") == pytest.approx(0.11)
    # 2 installations per migration, sends 10 s apart: the first two migrations over the 20 s span
    assert sec["rate"]["installations_per_s"] == pytest.approx(0.2)
    assert sec["devices_per_day"] == pytest.approx(8 / 20 * 86_400)
    assert sec["achieved_ratio"] == pytest.approx(1.0)
    # upload -> COF: 1, 2, 3 s; the reprocessing 0.5 s; CR -> ACK 100 ms
    assert sec["timings"]["upload_to_cof_ms"]["p50"] == pytest.approx(2000)
    assert sec["timings"]["upload_to_cof_ms"]["max"] == pytest.approx(3000)
    assert sec["timings"]["reprocess_upload_to_cof_ms"]["n"] == 1
    assert sec["timings"]["cr_to_ack_ms"]["p95"] == pytest.approx(100)
    assert sec["outcomes"] == {"devices": 12, "commissioned_first": 11, "fallout": 1, "failed_other": 0,
                               "no_outcome": 0, "pending": 0, "reprocessed": 1, "reprocessed_commissioned": 1,
                               "reprocessed_failed": 0, "not_reprocessed": 0, "fallout_after_end": 0,
                               "commissioned_final": 12}
    req = required_row(sec, run)
    assert req["met"] is True and req["unit"] == "installations/s" and "Table A7's CP row" in req["note"]
    assert section({**run, "sp": "DSP"}, plan, tmp_path) is None


def test_two_load_processes_rates_add_up_per_stream(tmp_path):
    """Two workers each send every 10 s at the same moments: merged, the span method would count 3 of 4 sends
    over 10 s; per stream it is 2 x (1 installation / 10 s)."""
    (tmp_path / "cp").mkdir()
    for proc in ("a", "b"):
        rows = [{**_device_rows()[0], "migration_id": f"{proc}{m}", "device_id": f"{proc}{m}", "cr_sent_ts": 10.0 * m,
                 "reason": "", "outcome": "COMMISSIONED"} for m in range(2)]
        with (tmp_path / "cp" / f"devices-{proc}.csv").open("w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(rows)
    sec = section({"sp": "CP", "test_type": "load", "slot": "day", "rates": {CP_CLASS: {"target": 0.2}}}, None,
                  tmp_path)
    assert sec["rate"]["installations_per_s"] == pytest.approx(0.2) and sec["achieved_ratio"] == pytest.approx(1.0)


def test_a_device_counts_by_its_last_row_and_an_unanswered_one_is_pending(tmp_path):
    base = {**_device_rows()[0], "outcome": "PENDING", "reason": "", "cof_ts": "nan"}
    rows = [{**base, "migration_id": "M0", "device_id": "D0"}, {**base, "migration_id": "M1", "device_id": "D1"},
            {**base, "migration_id": "M0", "device_id": "D0", "outcome": "COMMISSIONED", "cof_ts": 1_001.0}]
    (tmp_path / "cp").mkdir()
    with (tmp_path / "cp" / "devices-h-1.csv").open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    o = section({"sp": "CP", "test_type": "load", "slot": "day"}, None, tmp_path)["outcomes"]
    assert (o["devices"], o["commissioned_first"], o["pending"], o["commissioned_final"]) == (2, 1, 1, 1)


def _landed(cp_in: Path) -> tuple[float, float, int]:
    """From the SFTP server's side, the first-attempt MCFs in landing (mtime) order: (installations/s, devices/s,
    devices), each over the span of the landing times with all but the last file (one ESME per installation)."""
    files = sorted((f for f in cp_in.glob("MCF_*.csv") if not f.stem.endswith("-R")), key=lambda f: f.stat().st_mtime)
    kinds = [[r["device_type"] for r in csv.DictReader(io.StringIO(f.read_text()))] for f in files]
    span = files[-1].stat().st_mtime - files[0].stat().st_mtime
    return (sum(k.count("ESME") for k in kinds[:-1]) / span, sum(len(k) for k in kinds[:-1]) / span,
            sum(len(k) for k in kinds))


def _cp_run(tmp: Path) -> Generator[Cli, Ran, Ran]:
    """``run --sp CP`` as a user types it, with more fallout than CP mode's 7 % so a 15 s run surely reprocesses
    some (the run configuration's emulator section)."""
    cfg = tmp / "run.yaml"
    cfg.write_text("emulator:\n  faults:\n    migration_fallout:\n      share: 0.25\n")
    return (yield cli(["run", "--test", "load", "--sp", "CP", "--slot", "day", "--profile", FOC, "--duration", "15s",
                "--fleet-size", "20000", "--pool-size", "64", "--cp-batch", "2", "--trt-late", "10s",
                "--trt-missing", "20s", "--drain", "5s", "--device-latency", "fast", "--config", str(cfg)],
               tmp / "run"))


@pytest.mark.slow
@pytest.mark.timeout(300)
@background(_cp_run)
def test_run_sp_cp_moves_migration_files_at_the_planned_rate_and_reports_them(background_run):
    ran = background_run
    assert ran.returncode == 0, ran.stderr[-3000:]
    out = ran.out
    # Where the files land: the CP's SFTP folder in the run folder; devices/day at the plan (scaled: test_scale 1)
    per_s, devices_per_s, devices = _landed(out / "logs" / "cp" / "in")
    assert per_s == pytest.approx(FOC_DAY_PER_S, rel=0.05)
    assert list((out / "logs" / "cp" / "in").glob("CR_*.csv")) and list((out / "logs" / "cp" / "in").glob(
        "AUDIT_*.csv"))
    doc = json.loads((out / "summary.json").read_text())
    cp = doc["cp_migration"]
    assert cp["rate"]["migrations"] >= 6  # 0.817/s for 15 s in batches of 2
    assert cp["rate"]["installations_per_s"] == pytest.approx(per_s, rel=0.05)  # the client's measure agrees
    assert cp["devices_per_day"] == pytest.approx(devices_per_s * 86_400, rel=0.05)  # ... in devices/day too
    assert cp["planned_installations_per_day"] == pytest.approx(FOC_DAY_PER_S * 86_400)
    o = cp["outcomes"]
    assert o["devices"] == devices and o["fallout"] > 0
    assert o["reprocessed"] == o["reprocessed_commissioned"] == o["fallout"] - o["fallout_after_end"]
    assert o["commissioned_final"] == devices - o["fallout_after_end"]
    assert cp["timings"]["upload_to_cof_ms"]["n"] >= 6 and cp["timings"]["cr_to_ack_ms"]["p95"] < 5_000
    assert {n["id"]: n["pass"] for n in cp["nfrs"]} == {"NFR-CP-RATE": True, "NFR-CP-FILE-P95": True,
                                                       "NFR-CP-REPROCESS": True}
    judged = {n["id"]: n["status"] for n in doc["nfr"] if n["test_id"] == "LOAD"}  # the CP catalogue's LOAD test
    assert judged["NFR-CP-RATE"] == judged["NFR-CP-REPROCESS"] == judged["NFR-LOST"] == "pass"
    assert doc["required_vs_tested"]["met"] is True
    x = doc["extrapolation"]  # 6.3.6 in the CP's unit too
    assert x["unit"] == "installations/s" and x["required_test"] == pytest.approx(FOC_DAY_PER_S) and x["met"]
    html = (out / "report.html").read_text()
    assert "Commissioning Party: migrations per day over SFTP" in html and "NFR-CP-REPROCESS" in html
