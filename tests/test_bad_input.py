"""Bad input everywhere a user types or edits (issue #9): one clear line naming file and field, exit 2, no traceback.

One list, :data:`CASES`, of distinct mistakes across volume profiles, NFR
files, SRV templates, the options of every sub-command (plan, render,
emulator, run, report), run folders given to ``report`` and emulator config
files; each with the message fragment a user must see. The CLI runs in this
process (``dcc_capacity.cli.main``): every case fails before anything starts,
so the whole list takes a few seconds. SUT answers that are not XML / not DUIS
are at the end: what a run records for them.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from dcc_capacity.cli import main
from dcc_capacity.load.users.base import classify_duis_ack  # imports Locust: gevent patches at collection, not mid-run

ROOT = Path(__file__).resolve().parents[1]
FOC = (ROOT / "volume_profiles" / "foc.yaml").read_text()


class Work:
    """Bad files, written on demand into one folder per test."""

    def __init__(self, root: Path, good_run: Path) -> None:
        self.root, self.good_run = root, good_run

    def file(self, name: str, content: str | bytes) -> str:
        path = self.root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)
        return str(path)

    def profile(self, old: str, new: str) -> str:
        assert old in FOC, old
        return self.file("profile.yaml", FOC.replace(old, new, 1))

    def run_folder(self, change: Callable[[Path], object]) -> str:
        folder = self.root / "run"
        shutil.copytree(self.good_run, folder)
        change(folder)
        return str(folder)

    def run_json(self, **fields: object) -> str:
        def change(folder: Path) -> None:
            doc = json.loads((folder / "run.json").read_text())
            for k, v in fields.items():
                if v is None:
                    doc.pop(k, None)
                else:
                    doc[k] = v
            (folder / "run.json").write_text(json.dumps(doc))
        return self.run_folder(change)

    def nfr(self, text: str) -> str:
        return self.run_folder(lambda f: (f / "nfr.yaml").write_text(text))

    def out(self) -> str:
        return str(self.root / "out")


def _nfr_doc(**nfr_fields: object) -> str:
    import yaml

    from _report_helpers import NFR_DOC

    doc = json.loads(json.dumps(NFR_DOC))
    doc["nfrs"][0].update(nfr_fields)
    return yaml.safe_dump(doc, sort_keys=False)


def _run(*extra: str) -> Callable[[Work], list[str]]:
    return lambda w: ["run", "--test", "load", *extra, "--out", w.out()]


CASES: list[tuple[str, Callable[[Work], list[str]], str]] = [
    # --- volume profiles (plan, run --profile) -------------------------------------------------
    ("profile-missing", lambda w: ["plan", str(w.root / "nope.yaml")], "nope.yaml: no such file"),
    ("profile-yaml-syntax", lambda w: ["plan", w.file("p.yaml", "a: [1, 2\nb: c")], "p.yaml:2: YAML syntax error"),
    ("profile-a-list", lambda w: ["plan", w.file("p.yaml", "- 1\n- 2\n")], "a profile is a YAML mapping, not a list"),
    ("profile-empty", lambda w: ["plan", w.file("p.yaml", "")], "empty profile"),
    ("profile-not-utf8", lambda w: ["plan", w.file("p.yaml", b"\xff\xfe\x00x")], "p.yaml: not UTF-8 text"),
    ("profile-a-folder", lambda w: ["plan", str(w.root)], "is a directory, not a YAML file"),
    ("profile-capability", lambda w: ["plan", w.profile("capability: FOC", "capability: XOC")],
     "capability: must be one of 'IOC', 'MOC' or 'FOC' (got 'XOC')"),
    ("profile-negative", lambda w: ["plan", w.profile("s2_installs: 15_000", "s2_installs: -5")],
     "profile.yaml:25: predicted.per_day.s2_installs: must be >= 0 (got -5)"),
    ("profile-not-a-number", lambda w: ["plan", w.profile("s2_installs: 15_000", "s2_installs: lots")],
     "predicted.per_day.s2_installs: expected a number, got 'lots'"),
    ("profile-schema-version", lambda w: ["plan", w.profile("schema_version: 1", "schema_version: 9")],
     "schema_version: unsupported schema version 9"),
    ("profile-unknown-key", lambda w: ["plan", w.file("p.yaml", FOC + "\nbogus_key: 1\n")], "bogus_key: unknown key"),
    # a misspelt key (nite: for night:) leads with the typo and what was meant, not with the missing key it causes
    ("profile-typo-missing", lambda w: ["plan", w.file("p.yaml", FOC.replace("reads: {night:", "reads: {nite:"))],
     "p.yaml:21: current.srvs_per_day.meter_reads.nite: unknown key; did you mean 'night'? (and 1 more problem)"),
    ("profile-typo-block", lambda w: ["plan", w.file("p.yaml", FOC.replace(
        "    meter_reads: {night: 3_251_613, day: 0, evening: 0}",
        "    meter_reads:\n      day: 0\n      evening: 0\n      nite: 3_251_613"))],
     "p.yaml:24: current.srvs_per_day.meter_reads.nite: unknown key; did you mean 'night'?"),
    ("profile-via-run", _run("--profile", "nope.yaml"), "nope.yaml: --profile: no such file"),
    # --- plan options -------------------------------------------------------------------------
    ("plan-format", lambda w: ["plan", "foc", "--format", "xml"], "argument --format: invalid choice: 'xml'"),
    ("plan-sp", lambda w: ["plan", "foc", "--sp", "XYZ"], "argument --sp: invalid choice: 'XYZ'"),
    # --- render options -----------------------------------------------------------------------
    ("render-variant", lambda w: ["render", "9.99", "--out", w.out()], "VARIANT: '9.99' is not a DUIS SRV variant"),
    ("render-count", lambda w: ["render", "4.6.1", "--count", "0", "--out", w.out()], "--count: must be at least 1"),
    ("render-count-text", lambda w: ["render", "4.6.1", "--count", "many", "--out", w.out()],
     "argument --count: invalid int value: 'many'"),
    ("render-key-alone", lambda w: ["render", "4.6.1", "--signing-key", w.file("k.pem", "x"), "--out", w.out()],
     "give both --signing-key and --signing-cert"),
    ("render-key-junk", lambda w: ["render", "4.6.1", "--signing-key", w.file("k.pem", "junk"), "--signing-cert",
                                   w.file("c.pem", "junk"), "--out", w.out()], "k.pem: not a PEM or DER private key"),
    ("render-datetime", lambda w: ["render", "4.6.1", "--execution-datetime", "tomorrow", "--out", w.out()],
     "execution-datetime: not an xs:dateTime"),
    ("render-command-variant", lambda w: ["render", "4.6.1", "--command-variant", "99", "--out", w.out()],
     "CommandVariant 99 is not valid for SRV 4.6.1"),
    ("render-out-a-file", lambda w: ["render", "4.6.1", "--out", w.file("afile", "x")],
     "afile: --out: exists and is not a folder"),
    # --- emulator options and config files ----------------------------------------------------
    ("emulator-config-missing", lambda w: ["emulator", "--config", str(w.root / "nope.yaml")],
     "nope.yaml: no such file"),
    ("emulator-config-yaml", lambda w: ["emulator", "--config", w.file("e.yaml", "capacity: [1\n")],
     "e.yaml:2: YAML syntax error: while parsing a flow sequence; expected ',' or ']'"),
    ("emulator-config-json", lambda w: ["emulator", "--config", w.file("e.json", "{bad")],
     "e.json:1: JSON syntax error: Expecting property name"),
    ("emulator-config-toml", lambda w: ["emulator", "--config", w.file("e.toml", "x = = 1")],
     "e.toml: TOML syntax error: Invalid value (at line 1, column 5)"),
    ("emulator-config-binary", lambda w: ["emulator", "--config", w.file("e.yaml", b"\xff\xfe\x00")],
     "e.yaml: not UTF-8 text"),
    ("emulator-config-type", lambda w: ["emulator", "--config", w.file("e.yaml", "capacity: {tps: fast}\n")],
     "e.yaml:1: capacity.tps: expected a number, got 'fast'"),
    ("emulator-config-typo", lambda w: ["emulator", "--config", w.file("e.yaml", "capacty: {tps: 5}\n")],
     "e.yaml:1: capacty: unknown key; did you mean 'capacity'?"),
    ("emulator-config-in-run-config", lambda w: ["run", "--config", w.file("rc.toml", "[emulator]\ncapacty = 5\n"),
                                                 "--test", "load", "--out", w.out()],
     "rc.toml:2: emulator.capacty: unknown key; did you mean 'capacity'?"),
    ("emulator-config-list", lambda w: ["emulator", "--config", w.file("e.yaml", "- 1\n")],
     "e.yaml: the config must be a mapping of settings, not a list"),
    ("emulator-share", lambda w: ["emulator", "--error-burst", "2"], "a share is between 0 and 1 (got 2.0)"),
    ("emulator-outage", lambda w: ["emulator", "--outage", "abc"], "expected START_S:DURATION_S, got 'abc'"),
    ("emulator-schema", lambda w: ["emulator", "--port", "0", "--schema", str(w.root / "no.xsd")],
     "no.xsd: schema: cannot read the DUIS schema"),
    ("emulator-trust-cert", lambda w: ["emulator", "--port", "0", "--trust-cert", w.file("t.pem", "junk")],
     "t.pem: not a PEM or DER certificate"),
    ("emulator-port", lambda w: ["emulator", "--port", "99999"], "port: must be <= 65535 (got 99999)"),
    ("emulator-host", lambda w: ["emulator", "--host", "0.0.0.0"], "only listens on the loopback interface"),
    ("emulator-tps", lambda w: ["emulator", "--tps", "-5"], "capacity.tps: must be > 0 (got -5"),
    ("emulator-registry", lambda w: ["emulator", "--port", "0", "--device-registry", w.file("r.csv", "a,b\nz,q\n")],
     "r.csv:2: need device_id and smets"),
    # --- run options --------------------------------------------------------------------------
    ("run-test", lambda w: ["run", "--test", "smoke", "--out", w.out()], "--test: unknown test 'smoke'"),
    ("run-sp", _run("--sp", "XYZ"), "--sp: unknown Service Provider 'XYZ'"),
    ("run-slot", _run("--slot", "noon"), "--slot: unknown slot 'noon'"),
    ("run-duration", _run("--duration", "soon"), "--duration: not a duration"),
    ("run-duration-zero", _run("--duration", "0s"), "--duration: must be > 0"),
    ("run-rate", _run("--rate", "-1"), "--rate: must be > 0 (got -1.0)"),
    ("run-rate-inf", _run("--rate", "inf"), "--rate: must be a finite number"),
    ("run-workers", _run("--workers", "99"), "--workers: must be 0..64 (got 99)"),
    ("run-host", _run("--host", "ftp://x"), "--host: must be an http(s) URL"),
    ("run-baseline", lambda w: [*_run("--baseline", str(w.root))(w)], "--baseline: not a run folder (no run.json)"),
    ("run-nfr-missing", _run("--nfr", "nope.yaml"), "nope.yaml: --nfr: no such file"),
    ("run-nfr-yaml", lambda w: _run("--nfr", w.file("n.yaml", "nfrs: [1, 2"))(w), "n.yaml:1: YAML syntax error"),
    ("run-out-not-empty", lambda w: ["run", "--test", "load", "--out", str(w.good_run)],
     "--out: the output folder exists and is not empty"),
    ("run-step", lambda w: ["run", "--test", "stress", "--step", "0", "--out", w.out()], "--step: must be > 0"),
    ("run-step-duration", _run("--step-duration", "xyz"), "--step-duration: not a duration"),
    ("run-max-factor", lambda w: ["run", "--test", "stress", "--start-factor", "2", "--max-factor", "1", "--out",
                                  w.out()], "--max-factor: must be >= --start-factor 2 (got 1)"),
    ("run-error-rate", _run("--max-error-rate", "5"), "--max-error-rate: must be >= 0 and <= 1 (got 5.0)"),
    ("run-spike", lambda w: ["run", "--test", "spike", "--spike-factor", "-1", "--out", w.out()],
     "--spike-factor: must be > 0"),
    ("run-retries", _run("--retries", "-1"), "--retries: must be >= 0 and <= 100 (got -1)"),
    ("run-emulator-tps", _run("--emulator-tps", "-1"), "--emulator-tps: must be > 0 (got -1.0)"),
    ("run-web-port", _run("--web", "--web-port", "70000"), "--web-port: must be >= 1 and <= 65535"),
    ("run-fleet-size", _run("--fleet-size", "0"), "--fleet-size: must be >= 1"),
    # --- run folders given to report ----------------------------------------------------------
    ("report-missing", lambda w: ["report", str(w.root / "nodir")], "nodir: run folder not found"),
    ("report-a-file", lambda w: ["report", w.file("x.txt", "x")], "x.txt: run folder not found"),
    ("report-no-run-json", lambda w: ["report", w.run_folder(lambda f: (f / "run.json").unlink())],
     "run.json: missing (every run folder has one)"),
    ("report-run-json-syntax", lambda w: ["report", w.run_folder(lambda f: (f / "run.json").write_text("{oops"))],
     "run.json:1: not valid JSON"),
    ("report-run-json-list", lambda w: ["report", w.run_folder(lambda f: (f / "run.json").write_text("[1]"))],
     "run.json: must be a JSON object"),
    ("report-status", lambda w: ["report", w.run_json(status="weird")], "run.json: status: must be one of"),
    ("report-start", lambda w: ["report", w.run_json(start="yesterday")], "start: must be an ISO 8601 time"),
    ("report-test-id", lambda w: ["report", w.run_json(test_id=None)], "run.json: test_id: required field is missing"),
    ("report-duration", lambda w: ["report", w.run_json(duration_s="long")], "duration_s: must be int or float"),
    ("report-stress-step", lambda w: ["report", w.run_json(stress={"steps": [{"step": 0}]})],
     "stress.steps.0.target_rate: required field is missing"),
    ("report-lost-workers", lambda w: ["report", w.run_json(lost_workers=["w1"])], "lost_workers.0: must be dict"),
    ("report-no-records", lambda w: ["report", w.run_folder(lambda f: shutil.rmtree(f / "records"))],
     "records: no record files"),
    ("report-metrics-csv", lambda w: ["report", w.run_folder(lambda f: (f / "metrics.csv").write_text("a,b\n1,2\n"))],
     "metrics.csv: ts: required column is missing"),
    ("report-plan-json", lambda w: ["report", w.run_folder(lambda f: (f / "plan.json").write_text("[1,"))],
     "plan.json:1: not valid JSON"),
    ("report-issues", lambda w: ["report", w.run_folder(lambda f: (f / "issues.yaml").write_text("- {severity: 9}\n"))],
     "issues.yaml: 0.id: required field is missing"),
    ("report-nfr-results", lambda w: ["report", w.run_folder(lambda f: (f / "nfr_results.json").write_text("[1]"))],
     "nfr_results.json: 0: must be dict"),
    ("report-tolerance", lambda w: ["report", str(w.good_run), "--tolerance", "-1"], "--tolerance: must be >= 0"),
    ("report-baseline", lambda w: ["report", str(w.good_run), "--baseline", str(w.root / "nodir")],
     "baseline run folder not found"),
    # --- NFR files (a run folder's nfr.yaml) ----------------------------------------------------
    ("nfr-yaml-syntax", lambda w: ["report", w.nfr("nfrs: [1, 2")], "nfr.yaml:1: YAML syntax error"),
    ("nfr-a-list", lambda w: ["report", w.nfr("- 1\n")], "nfr.yaml: must be a mapping"),
    ("nfr-threshold", lambda w: ["report", w.nfr(_nfr_doc(max="lots"))],
     "nfr.yaml:8: nfrs[0].max: expected a number, got 'lots'"),
    ("nfr-metric", lambda w: ["report", w.nfr(_nfr_doc(metric="speed"))],
     "nfr.yaml:6: nfrs[0].metric: must be one of 'ack_ms'"),
]


@pytest.fixture(scope="module")
def good_run(tmp_path_factory) -> Path:
    from _report_helpers import make_records, make_run

    return make_run(tmp_path_factory.mktemp("good") / "run", make_records(n=2000, duration_s=60.0), duration_s=60.0)


def test_the_list_is_long_and_distinct():
    ids = [c[0] for c in CASES]
    assert len(ids) >= 30 and len(set(ids)) == len(ids)
    assert len({c[2] for c in CASES}) >= 30
    assert {i.split("-")[0] for i in ids} >= {"profile", "plan", "render", "emulator", "run", "report", "nfr"}


@pytest.mark.timeout(60)
@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_one_line_exit_2_and_no_traceback(case, tmp_path, good_run, capsys, monkeypatch):
    name, argv, needle = case

    def started(*_a: object, **_k: object) -> None:
        raise AssertionError(f"{name}: the bad input was not caught before starting")

    # A case that slips through fails at once instead of running a load test or serving forever.
    monkeypatch.setattr("dcc_capacity.orchestrate.run.write_run_json_early", started)
    monkeypatch.setattr("dcc_capacity.emulator.server._server", started)  # after the config, registry, bind
    args = argv(Work(tmp_path, good_run))
    try:
        code = main(args)
    except SystemExit as exc:  # argparse
        code = exc.code
    err = capsys.readouterr().err
    assert code == 2, (name, err)
    assert "Traceback" not in err
    errors = [ln for ln in err.splitlines() if ": error: " in ln]
    assert len(errors) == 1 and err.strip().splitlines()[-1] == errors[0], err
    assert needle in errors[0], errors[0]
    if args[0] == "run":  # nothing was started: no run folder left behind
        assert not (tmp_path / "out").exists()


def test_a_broken_user_template_names_its_file(tmp_path):
    """SRV templates are files a user may edit: a syntax error or a missing index is one InputError, not Jinja's."""
    from dcc_capacity.duis.templates import _index
    from dcc_capacity.errors import InputError

    folder = tmp_path / "tpl"
    shutil.copytree(ROOT / "srv_templates", folder)
    (folder / "4.6.1.xml.j2").write_text("{% if x %}<broken")
    with pytest.raises(InputError, match=r"4\.6\.1\.xml\.j2: template syntax error: Unexpected end of template"):
        _index(str(folder))
    (folder / "4.6.1.xml.j2").unlink()
    (folder / "templates.csv").unlink()
    with pytest.raises(InputError, match=r"templates\.csv: missing"):
        _index(str(folder))
    shutil.copy(ROOT / "srv_templates" / "templates.csv", folder)
    (folder / "99.9.xml.j2").write_text("<x/>")
    with pytest.raises(InputError, match=r"99\.9\.xml\.j2: template for unknown variant '99\.9'"):
        _index(str(folder))


# --- SUT answers that are not XML / not DUIS: what a run records --------------------------------
NOT_DUIS = [
    (200, b"Hello from a proxy", "error", "the answer is not XML (not a DUIS response): b'Hello from a proxy'"),
    (200, b'{"status": "ok"}', "error", "the answer is not XML"),
    (200, b"\xff\xfe\x00\x01", "error", "the answer is not XML"),
    (502, b"<html><body>Bad gateway</body></html>", "error", "HTTP 502"),
    (200, b"<ResponseCode>X9</ResponseCode>", "error", "unexpected ResponseCode X9"),
    (429, b"slow down", "throttled", "HTTP 429"),
    (0, b"", "error", "HTTP 0"),
]


@pytest.mark.parametrize("status, body, outcome, error", NOT_DUIS)
def test_an_answer_that_is_not_duis_is_recorded_as_an_error_that_says_so(status, body, outcome, error):
    got_outcome, got_error = classify_duis_ack(status, body)
    assert got_outcome == outcome and got_error.startswith(error), (got_outcome, got_error)


@pytest.mark.parametrize("body, reason", [
    (b"Hello", "not well-formed XML"),
    (b"", "empty document"),
    (b"<a/>", "root is 'a', expected sr:Response"),
    (b'<!DOCTYPE x [<!ENTITY e "x">]><x>&e;</x>', "DTDs and entity declarations are not allowed"),
    (b"<sr:Response xmlns:sr='http://www.dccinterface.co.uk/ServiceUserGateway'/>", "needs sr:Header"),
])
def test_a_pre_command_that_is_not_duis_gives_a_one_line_reason(body, reason):
    """What the CV 4 step records ('unreadable PreCommand: <reason>') when the SUT's answer is not DUIS."""
    from dcc_capacity.duis.responses import ResponseParseError, parse_response

    with pytest.raises(ResponseParseError) as exc:
        parse_response(body)
    assert reason in str(exc.value) and "\n" not in str(exc.value)
