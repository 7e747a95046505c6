"""Device latency per SMETS generation and SRV class: the sampler's quantiles, the presets, the old config form,
bad configs, and a real emulator answering a SMETS1 and a SMETS2 device after their own generation's latency."""

from __future__ import annotations

import random
import statistics
import time

import httpx
import pytest

from _emulator_helpers import ESME, PKI_DIR, S1_ESME, CallbackListener, post, signed_request
from dcc_capacity.duis.responses import parse_response
from dcc_capacity.emulator import start_emulator
from dcc_capacity.emulator.capacity import ServiceSampler, delay_samplers
from dcc_capacity.emulator.config import load_config
from dcc_capacity.emulator.latency import ENV_PRESET, PRESETS, Latency, LatencySampler
from dcc_capacity.errors import InputError

pytestmark = pytest.mark.quiet  # its figures depend on the CPU it gets (tests/_lanes.py)

N = 20_000


def _quantile(xs: list[float], q: float) -> float:
    return sorted(xs)[int(q * len(xs))]


def test_lognormal_from_p50_and_p99_draws_those_quantiles():
    s = LatencySampler(Latency(p50_ms=2_000, p99_ms=10_000), random.Random(7))
    xs = [s.sample() for _ in range(N)]
    assert _quantile(xs, 0.50) == pytest.approx(2.0, rel=0.03)
    assert _quantile(xs, 0.99) == pytest.approx(10.0, rel=0.06)   # the tail: fewer draws, a wider band


def test_quantile_table_draws_its_points_and_interpolates_between():
    table = ((0.0, 1_000), (0.5, 3_000), (0.9, 10_000), (1.0, 20_000))
    s = LatencySampler(Latency(table=table), random.Random(7))
    xs = [s.sample() for _ in range(N)]
    assert min(xs) >= 1.0 and max(xs) <= 20.0
    assert _quantile(xs, 0.25) == pytest.approx(2.0, rel=0.03)    # halfway from 1 s to 3 s
    assert _quantile(xs, 0.50) == pytest.approx(3.0, rel=0.03)
    assert _quantile(xs, 0.90) == pytest.approx(10.0, rel=0.03)
    assert LatencySampler(Latency(fixed_ms=250), random.Random(1)).sample() == 0.25


def test_dcc_test_is_the_default_and_gives_seconds_smets1_slower_scheduled_within_24h(monkeypatch):
    monkeypatch.delenv(ENV_PRESET, raising=False)
    cfg = load_config()
    assert cfg.capacity.device_latency.preset == "dcc-test"
    d = delay_samplers(cfg.capacity, random.Random(3))
    med = {(g, c): statistics.median(d[g][c].sample() for _ in range(4001))
           for g in (True, False) for c in ("device", "critical", "scheduled")}
    assert 1.5 < med[(False, "device")] < 2.5 and 2.5 < med[(False, "critical")] < 3.5     # SMETS2: seconds
    assert med[(True, "device")] > 2 * med[(False, "device")]                               # SMETS1: longer
    assert med[(True, "critical")] > 2 * med[(False, "critical")]
    assert PRESETS["dcc-test"]["smets1"]["scheduled"].table[-1] == (1.0, 24 * 3_600_000)  # SECMP0192: 24 h TRT
    assert max(d[True]["scheduled"].sample() for _ in range(2000)) <= 86_400
    assert d[False]["non_device"].sample() == 0.0


def test_environment_and_config_choose_the_preset(monkeypatch, tmp_path):
    monkeypatch.setenv(ENV_PRESET, "fast")
    assert load_config().capacity.device_latency.preset == "fast"
    f = tmp_path / "emu.yaml"
    f.write_text("capacity:\n  device_latency: {preset: dcc-test}\n")
    assert load_config(f).capacity.device_latency.preset == "dcc-test"                   # the file wins
    d = delay_samplers(load_config().capacity, random.Random(3))
    assert statistics.median(d[False]["device"].sample() for _ in range(2001)) < 0.2    # fast: sub-second


def test_old_device_delay_form_applies_to_both_generations_and_explicit_entries_win(tmp_path):
    f = tmp_path / "emu.yaml"
    f.write_text("capacity:\n"
                 "  device_delay:\n"
                 "    device: {dist: fixed, mean_ms: 40}\n"
                 "    critical: {dist: lognormal, mean_ms: 300, sigma: 0.5}\n"
                 "  device_latency:\n"
                 "    preset: dcc-test\n"
                 "    smets1: {critical: {fixed_ms: 900}}\n")
    d = delay_samplers(load_config(f).capacity, random.Random(3))
    assert d[True]["device"].sample() == d[False]["device"].sample() == 0.040
    assert isinstance(d[False]["critical"], ServiceSampler)                      # the old form, unchanged ...
    assert statistics.fmean(d[False]["critical"].sample() for _ in range(N)) == pytest.approx(0.3, rel=0.05)
    assert d[True]["critical"].sample() == 0.9                                   # ... unless smets1 names it
    assert d[True]["scheduled"].spec == PRESETS["dcc-test"]["smets1"]["scheduled"]   # the rest: the preset


@pytest.mark.parametrize("text,key,words", [
    ("capacity: {device_latency: {preset: slow}}", "capacity.device_latency.preset", "'dcc-test' or 'fast'"),
    ("capacity: {device_latency: {smets3: {}}}", "capacity.device_latency.smets3", "did you mean 'smets2'?"),
    ("capacity: {device_latency: {smets1: {gold: {fixed_ms: 1}}}}", "capacity.device_latency.smets1", "'gold'"),
    ("capacity: {device_latency: {smets2: {device: {p50_ms: 900, p99_ms: 100}}}}",
     "capacity.device_latency.smets2.device", "below p50_ms"),
    ("capacity: {device_latency: {smets2: {device: {p50_ms: 900}}}}", "capacity.device_latency.smets2.device",
     "both p50_ms and p99_ms"),
    ("capacity: {device_latency: {smets2: {device: {fixed_ms: 1, p50_ms: 2, p99_ms: 3}}}}",
     "capacity.device_latency.smets2.device", "exactly one"),
    ("capacity: {device_latency: {smets2: {device: {table: [[0, 5], [0.5, 1], [1, 9]]}}}}",
     "capacity.device_latency.smets2.device.table", "must not decrease"),
    ("capacity: {device_delay: {gold: {mean_ms: 1}}}", "capacity.device_delay", "'gold'"),
])
def test_bad_latency_config_names_file_and_key(tmp_path, text, key, words):
    f = tmp_path / "emu.yaml"
    f.write_text(text)
    with pytest.raises(InputError) as err:
        load_config(f)
    assert err.value.key == key and str(f) in str(err.value) and words in str(err.value)


def test_cli_bad_latency_is_one_line_and_exit_2(run_cli, tmp_path):
    f = tmp_path / "emu.yaml"
    f.write_text("capacity:\n  device_latency:\n    smets1:\n      device: {p50_ms: 5000, p99_ms: 100}\n")
    r = run_cli("emulator", "--port", "0", "--config", str(f))
    assert r.returncode == 2 and "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert f"{f}:4: capacity.device_latency.smets1.device: " in r.stderr and "below p50_ms" in r.stderr
    r = run_cli("emulator", "--port", "0", "--device-latency", "slow")
    assert r.returncode == 2 and "--device-latency" in r.stderr


def test_run_device_latency_needs_the_embedded_emulator(run_cli, tmp_path):
    r = run_cli("run", "--test", "load", "--host", "http://127.0.0.1:9", "--device-latency", "fast",
                "--duration", "1s", "--out", str(tmp_path / "out"))
    assert r.returncode == 2 and "--device-latency" in r.stderr and "Traceback" not in r.stderr


def test_run_writes_the_preset_into_the_emulator_config(monkeypatch):
    from dcc_capacity.orchestrate.emulator import set_device_latency

    monkeypatch.delenv(ENV_PRESET, raising=False)
    cfg: dict = {"capacity": {"tps": 10}}
    set_device_latency(cfg, None)
    assert cfg["capacity"]["device_latency"] == {"preset": "dcc-test"}
    from_file = {"capacity": {"device_latency": {"preset": "fast"}}}
    set_device_latency(from_file, None)                       # the run config's emulator section ...
    assert from_file["capacity"]["device_latency"]["preset"] == "fast"
    set_device_latency(from_file, "dcc-test")                 # ... and the flag over it
    assert from_file["capacity"]["device_latency"]["preset"] == "dcc-test"


def test_emulator_answers_each_device_after_its_generations_latency():
    """Signed requests to a SMETS2 and a SMETS1 meter (the default prefix rule tells them apart): each async
    response arrives after its own generation's latency, measured from the I99 to the callback."""
    cb = CallbackListener()
    cfg = {"port": 0, "pki_dir": str(PKI_DIR), "callback_url": cb.url,
           "capacity": {"device_latency": {"preset": "fast",
                                           "smets2": {"device": {"fixed_ms": 50}},
                                           "smets1": {"device": {"p50_ms": 700, "p99_ms": 700}}}}}
    try:
        with start_emulator(cfg) as emu, httpx.Client() as c:
            sent: dict[str, tuple[str, float]] = {}
            for target, gen in ((ESME, "smets2"), (S1_ESME, "smets1"), (ESME, "smets2"), (S1_ESME, "smets1")):
                ack = parse_response(post(c, emu, "S", signed_request("4.1.1", target=target)).content)
                assert ack.response_code == "I99"
                sent[ack.request_id] = (gen, time.monotonic())
            cb.wait_for(4, timeout=5)
        took: dict[str, list[float]] = {"smets1": [], "smets2": []}
        for body, at in zip(cb.bodies, cb.times, strict=True):
            gen, t0 = sent[parse_response(body).request_id]
            took[gen].append(at - t0)
    finally:
        cb.close()
    assert len(took["smets1"]) == len(took["smets2"]) == 2
    assert all(0.04 < t < 0.4 for t in took["smets2"])
    assert all(0.69 < t < 1.2 for t in took["smets1"])
