"""The run spec is declared once (issue 19): its ``run`` flags, run-configuration keys and Locust options are
generated from the model and agree; every registered test type is reachable from the CLI, the run configuration,
the Locust web UI and the report; every Locust process reads the same spec.json. All in-process and quick.
"""

from __future__ import annotations

import json
from argparse import Namespace
from pathlib import Path

import pytest
import yaml
from locust import events
from locust.argument_parser import get_empty_argument_parser, setup_parser_arguments

import dcc_capacity.load.users.locustfile  # noqa: F401 - registers the locustfile's options (imports Locust)
from dcc_capacity.cli import _build_parser
from dcc_capacity.config.runconfig import RunConfig
from dcc_capacity.errors import InputError
from dcc_capacity.model.nfr import TEST_TYPES
from dcc_capacity.orchestrate.configmap import resolve_args
from dcc_capacity.report.scenarios import ANALYSERS
from dcc_capacity.spec.model import knobs_of
from dcc_capacity.spec.options import apply_to_options, load_spec, spec_from_options, write_spec
from dcc_capacity.spec.surfaces import all_knobs, spec_from_args
from dcc_capacity.testtypes.registry import NAMES, TYPES, validate_spec
from dcc_capacity.testtypes.scale import schedule

ROOT = Path(__file__).resolve().parents[1]


def _spec(*argv: str):  # noqa: ANN202
    """The spec ``run ARGV --out x`` makes (flags, then a --config where no flag was given)."""
    args = _build_parser(["run"]).parse_args(["run", *argv, "--out", "x"])
    resolve_args(args)
    return spec_from_args(args)


def _run_parser() -> dict[str, object]:
    sub = _build_parser(["run"])._subparsers._group_actions[0].choices["run"]  # type: ignore[union-attr]
    return {a.option_strings[0]: a for a in sub._actions if a.option_strings}


def _locust_parser() -> dict[str, object]:
    parser = get_empty_argument_parser(add_help=False, default_config_files=[])
    setup_parser_arguments(parser)
    events.init_command_line_parser.fire(parser=parser)
    return {s: a for a in parser._actions for s in a.option_strings}


def _config_field(dotted: str) -> object:
    model, *parents, leaf = [RunConfig, *dotted.split(".")]
    for part in parents:
        model = model.model_fields[part].annotation  # type: ignore[union-attr]
    return model.model_fields[leaf]  # type: ignore[union-attr]


def test_every_setting_has_one_flag_one_config_key_one_locust_option_and_one_default():
    flags, locust = _run_parser(), _locust_parser()
    for k in all_knobs().values():
        if k.cli:
            action = flags[k.flag]
            assert action.dest == k.dest, k.name
            if k.name != "test":
                default = getattr(action.default, "value", action.default)  # configmap: overridable by --config
                assert default == k.text(k.default), k.name  # "60s", 3.0, None ... as the model says
                assert k.doc.split(" (")[0] in action.help, k.name
        if k.config is not None:
            field = _config_field(k.config)
            assert field.default is None and field.description == k.doc, k.name  # None: the flag's default stands
        if k.locust is not None:
            assert k.locust in locust, k.name
            if k.owned and k.name != "test":  # a library's own option (--trt-late) keeps its library default
                assert locust[k.locust].default == k.text(k.default), k.name
    names = [k.flag for k in all_knobs().values() if k.cli]
    assert len(names) == len(set(names))
    assert all_knobs()["max_factor"].default == 3.0 and flags["--max-factor"].default.value == 3.0
    assert locust["--dcc-max-factor"].default == 3.0 and _config_field("run.max_factor") is not None


def test_the_defaults_of_the_flags_make_the_models_defaults(monkeypatch):
    monkeypatch.delenv("DCC_CAPACITY_RUN_MAX_SEND_LAG")  # the suite's own setting (tests/conftest.py)
    for name, t in TYPES.items():
        spec = _spec("--test", name)
        assert spec == t.spec(), name  # every flag's default string parses back to the field's default


def test_existing_flag_names_still_work():
    spec = _spec("--test", "stress", "--rate", "12", "--duration", "2m", "--step", "0.2", "--step-duration", "5s",
                 "--max-factor", "2", "--exclude", "smets1", "--trt-missing", "300s")
    assert (spec.rate, spec.duration_s, spec.step_fraction, spec.step_s, spec.max_factor, spec.trt_missing_s) == (
        12.0, 120.0, 0.2, 5.0, 2.0, 300.0)
    assert spec.exclude == ("smets1",)


def test_every_test_type_is_reachable_from_the_cli_the_config_the_web_ui_and_the_report():
    flags, locust = _run_parser(), _locust_parser()
    catalogue = yaml.safe_load((ROOT / "volume_profiles" / "nfr-default.yaml").read_text())
    catalogue_types = {t["id"]: t["type"] for t in catalogue["tests"]}
    for name, t in TYPES.items():
        assert name in flags["--test"].metavar.split("|")
        assert _spec("--test", name).test == name
        assert RunConfig.model_validate({"run": {"test": name}}).run.test == name  # negative too
        assert name in locust["--dcc-test"].choices and locust["--dcc-test"].include_in_web_ui  # Locust's form
        assert name in TEST_TYPES  # run.json test_type the report accepts, catalogue type
        assert catalogue_types.get(t.test_id) == name, name  # the shipped catalogue's entry for it
        if t.template:
            assert (ROOT / "reports" / t.template).is_file(), t.template
        if t.section:
            assert t.template and t.section in ANALYSERS, t.section  # the report computes and draws its section
    assert tuple(TYPES) == NAMES and "scale" in NAMES and "negative" in NAMES
    assert "{% include template %}" in (ROOT / "reports" / "_scenarios.html.j2").read_text()


def test_each_locust_process_loads_the_same_spec_json_and_the_options_follow_it(tmp_path):
    spec = validate_spec({"test": "stress", "rate": 40, "duration_s": "90s", "max_factor": 2, "drain_s": "5s"})
    path = write_spec(spec, tmp_path)
    assert load_spec(path) == spec and json.loads(path.read_text())["max_factor"] == 2.0
    ns = Namespace(dcc_spec=str(path), dcc_test="load", dcc_max_factor=3.0, trt_late=30.0, drain=None)
    assert spec_from_options(ns) == spec  # the file wins over the options' defaults
    apply_to_options(spec, ns)
    assert (ns.dcc_test, ns.dcc_max_factor, ns.dcc_duration, ns.drain, ns.trt_late) == ("stress", 2.0, "90s", 5.0,
                                                                                       30.0)
    plain = Namespace(**{k: v for k, v in vars(ns).items() if k != "dcc_spec"})
    assert spec_from_options(plain) == spec  # a plain locust -f run: the options make the same spec


def test_a_bad_spec_is_one_line_naming_the_field(tmp_path):
    bad = tmp_path / "spec.json"
    bad.write_text(json.dumps({"test": "stress", "max_factor": "lots"}))
    with pytest.raises(InputError, match=r"spec.json: max_factor: .*number"):
        load_spec(bad)
    with pytest.raises(InputError, match="--max-factor: must be >= --start-factor 2"):
        validate_spec({"test": "scale", "start_factor": 2, "max_factor": 1})
    with pytest.raises(InputError, match="--test: unknown test 'smoke'"):
        validate_spec({"test": "smoke"})
    with pytest.raises(InputError, match="--step-duration: not a duration"):  # another type's flag is still checked
        _spec("--test", "load", "--step-duration", "x")


def test_scale_schedule_goes_up_holds_and_comes_back_down():
    spec = validate_spec({"test": "scale", "start_factor": 0.5, "step_fraction": 0.5, "max_factor": 1.5,
                          "step_s": "10s", "hold_s": "30s", "duration_s": "1h"})
    steps = schedule(spec)
    assert [(s["phase"], s["factor"], s["start_s"], s["end_s"]) for s in steps] == [
        ("up", 0.5, 0, 10), ("up", 1.0, 10, 20), ("hold", 1.5, 20, 50), ("down", 1.0, 50, 60),
        ("down", 0.5, 60, 70)]
    cut = schedule(spec.model_copy(update={"duration_s": 25.0}))  # --duration stays an upper bound
    assert [s["end_s"] for s in cut] == [10, 20, 25]
    assert set(knobs_of(type(spec))) >= {"step_fraction", "hold_s", "recovery_tolerance", "max_factor"}


def test_the_rate_a_run_tested_is_its_test_types():
    """report/required.py asks the type: a stress run's knee, a soak's every slot, none for the negative cases."""
    from dcc_capacity.report.required import required_vs_tested, tested_rates

    rates, summary = {"Bau": {"target": 10.0}}, {"offered_rate": 12.0}
    assert tested_rates({"test_type": "load", "slot": "day", "rates": rates}, summary) == {"day": 10.0}  # planned
    assert tested_rates({"test_type": "stress", "slot": "day", "rates": rates},
                        {"shape": {"knee_rate": 25.0}}) == {"day": 25.0}
    assert tested_rates({"test_type": "stress", "slot": "day", "rates": rates, "stress": {"knee": None}},
                        summary) == {"day": 10.0}  # no knee: the steady rule
    soak = {"test_type": "soak", "slot": "day", "rates": rates,
            "soak": {"slots": [{"slot": "night", "total_rate": 3.0}, {"slot": "day", "total_rate": 9.5}]}}
    assert tested_rates(soak, summary) == {"night": 3.0, "day": 9.5}
    assert tested_rates({"test_type": "negative", "slot": "day", "rates": rates}, summary) == {}
    row = required_vs_tested({"A7": {"DSP": {"day": 10.0}}}, "DSP", "day", None, test_type="negative")
    assert row["met"] is None and row["note"] == TYPES["negative"].not_a_capacity_test
    assert required_vs_tested({"A7": {"DSP": {"day": 10.0}}}, "DSP", "day", 9.9)["met"] is True


def test_the_scenario_verdict_limits_are_their_types_knobs():
    """--drift-limit & co. are the soak's, catch-up's and noisy neighbour's knobs; run.json ``limits`` holds what
    the user set, by the field's name (the report's defaults fill the rest)."""
    from dcc_capacity.orchestrate.scenario_facts import limits_of

    assert limits_of(_spec("--test", "soak", "--drift-limit", "500")) == {"drift_ms_per_h": 500.0}
    assert limits_of(_spec("--test", "catchup", "--recovery-target", "2m")) == {"recovery_target_s": 120.0}
    assert limits_of(_spec("--test", "noisy-neighbour")) == {}
    with pytest.raises(InputError, match=r"must be > 0 and <= 1 \(got 1.5\)") as e:
        _spec("--test", "noisy-neighbour", "--fair-share-min", "1.5")
    assert e.value.key == "--fair-share-min"
    with pytest.raises(InputError, match="must be >= 0") as e:
        _spec("--test", "load", "--drift-limit", "-1")  # another type's flag: unused, still refused
    assert e.value.key == "--drift-limit"
    assert RunConfig.model_validate({"run": {"drift_limit": 500}}).run.drift_limit == 500  # a config key too
