"""The run configuration (`run --config`): validation, precedence, mapping onto Locust options, own signing keys."""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import pytest

from _realenv_helpers import ALL_ROLES, OWN_EUI, make_own_keys
from dcc_capacity.cli import _build_parser, main
from dcc_capacity.config.runconfig import load_run_config
from dcc_capacity.duis.pki import load_credential, load_pkcs12
from dcc_capacity.errors import InputError
from dcc_capacity.orchestrate.configmap import locust_args_for, map_config, resolve_args
from dcc_capacity.spec.surfaces import spec_from_args

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "real-env.toml"
pytestmark = pytest.mark.timeout(60)


def _args(*argv: str) -> argparse.Namespace:
    return _build_parser(["run"]).parse_args(["run", *argv])


def _write(tmp_path: Path, text: str, name: str = "cfg.toml") -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def test_the_shipped_example_loads_validates_and_maps_with_real_keys(tmp_path, monkeypatch):
    """examples/real-env.toml, with every file it names made here: keys open, options map, nothing secret leaks."""
    cfg_path = tmp_path / "real-env.toml"
    shutil.copy(EXAMPLE, cfg_path)
    sup = make_own_keys(tmp_path / "mk1", password="sup-pw-123", eui="90-B3-D5-1F-30-01-00-00")
    net = make_own_keys(tmp_path / "mk2", password="net-pw-456", eui="90-B3-D5-1F-30-02-00-00")
    for d in ("certs", "keys"):
        (tmp_path / d).mkdir()
    shutil.copy(sup.key_pem, tmp_path / "keys/supplier.key")
    shutil.copy(sup.cert_pem, tmp_path / "keys/supplier.pem")
    shutil.copy(net.p12, tmp_path / "keys/network-operator.p12")
    for name in ("client.pem", "client.key", "dsp-ca.pem", "callback.pem", "callback.key",
                 "dcc-access-control-broker.pem"):
        shutil.copy(sup.cert_pem if name.endswith(".pem") else sup.key_pem, tmp_path / "certs" / name)
    monkeypatch.setenv("DCC_SUPPLIER_KEY_PASSWORD", sup.password)
    monkeypatch.setenv("DCC_NETWORK_P12_PASSWORD", net.password)
    monkeypatch.setenv("DCC_TLS_PASSWORD", sup.password)  # the TLS client key is opened once too

    cfg, src = load_run_config(cfg_path)
    assert cfg.target.host == "https://dsp-test.example.net:8443" and cfg.safety.max_rate == 60.0
    assert [u.eui for u in cfg.signing] == ["90-B3-D5-1F-30-01-00-00", "90-B3-D5-1F-30-02-00-00"]
    assert cfg.tls.client_cert == str(tmp_path / "certs/client.pem")  # relative to the configuration's folder

    args = _args("--config", str(cfg_path), "--out", str(tmp_path / "out"))
    resolve_args(args)
    assert (args.test, args.profile, args.duration, args.rate, args.host) == (
        "soak", "foc", "1h", 20.0, "https://dsp-test.example.net:8443")
    assert (args.trt_late, args.trt_missing, args.drain, args.max_in_flight) == ("60s", "300s", None, 1000)
    m = map_config(cfg, src, args, tmp_path / "out")
    spec = spec_from_args(args)  # the safety ceilings are spec fields, filled from safety.* like run.*
    assert m.confirmed is False and spec.max_rate == 60.0 and spec.max_duration_s == 7200.0
    assert (m.callback_host, m.callback_port) == ("0.0.0.0", 9443)
    assert m.emulator_callback_url is None  # not loopback: only recorded, never given to an embedded emulator
    assert m.audit["callback"]["public_url"] == "https://loadgen.example.net:9443/"
    a = m.locust_args
    assert a[a.index("--tls-key-password-env") + 1] == "DCC_TLS_PASSWORD"
    assert a[a.index("--signing-keys") + 1] == str((tmp_path / "out" / "signing-keys.json").resolve())
    assert "--max-rate" not in a and "--dcc-max-rate" not in a  # they travel in spec.json, not as strings
    fps = {s["eui"]: s["cert_sha256"] for s in m.audit["signing"]}
    assert fps["90-B3-D5-1F-30-02-00-00"] == load_pkcs12(net.p12, net.password.encode()).fingerprint()
    everything = json.dumps(m.audit).encode() + b"".join(m.files.values()) + " ".join(a).encode()
    for secret in (sup.password.encode(), net.password.encode(), sup.pem_body[:40], net.pem_body[:40]):
        assert secret not in everything


def test_a_yaml_configuration_is_read_the_same_way(tmp_path):
    p = _write(tmp_path, "seed: 5\nrun:\n  test: stress\n  rate: 12.5\nsafety:\n  max_rate: 100\n", "cfg.yaml")
    cfg, _ = load_run_config(p)
    assert (cfg.seed, cfg.run.test, cfg.run.rate, cfg.safety.max_rate) == (5, "stress", 12.5, 100.0)


@pytest.mark.parametrize(("text", "needles"), [
    ('[tls]\nclient_cert = "a.pem"\nkey_password = "hunter2"\n',
     ["cfg.toml:3: tls.key_password: inline secrets are not accepted", "key_password_env"]),
    ('[[signing]]\nkey = "k"\ncert = "c"\npassword = "hunter2"\n', ["signing[0].password: inline secrets"]),
    ('[tls]\nkey_password_env = "hunter2 with spaces!"\n', ["tls.key_password_env: must be the NAME of an "
                                                            "environment variable"]),
    ('[safety]\nmax_rate = -5\n', ["cfg.toml:2: safety.max_rate: must be > 0"]),
    ('[safty]\nmax_rate = 5\n', ["cfg.toml:1: safty: unknown key; did you mean 'safety'?"]),
    ('[target]\nhost = "ftp://x"\n', ["target.host: must be an http(s) URL"]),
    ('[target.endpoints]\nS = "serviceS"\n', ["target.endpoints.S: must be a path starting with /"]),
    ('[[signing]]\neui = "90-B3"\npkcs12 = "x.p12"\n', ["signing[0].eui: must be an EUI-64"]),
    ('[[signing]]\nroles = ["XX"]\n', ["signing[0].roles: unknown role(s) XX"]),
    ('[tls]\nclient_cert = "missing.pem"\nclient_key = "missing.key"\n', ["tls.client_cert: no such file"]),
    ('[run]\ntest = "lod"\n', ["run.test: must be one of"]),
    ('[safety]\nmax_duration = "soon"\n', ["safety.max_duration: not a duration"]),
    ('seed = \n', ["TOML syntax error"]),
])
def test_bad_configuration_is_one_line_naming_file_and_key_exit_2(tmp_path, capsys, text, needles):
    cfg = _write(tmp_path, text)
    rc = main(["run", "--config", str(cfg), "--test", "load", "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert rc == 2, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    for needle in needles:
        assert needle in err, err
    assert "hunter2" not in err
    assert not (tmp_path / "out").exists()


def test_flags_override_the_file_even_when_equal_to_the_default(tmp_path):
    cfg = _write(tmp_path, 'seed = 9\n[run]\ntest = "spike"\nsp = "S1SP"\nrate = 40\nworkers = 2\nduration = "5m"\n')
    args = _args("--config", str(cfg), "--sp", "DSP", "--rate", "10", "--out", "x")
    resolve_args(args)
    assert (args.test, args.sp, args.rate, args.workers, args.duration, args.seed) == ("spike", "DSP", 10.0, 2,
                                                                                         "5m", 9)
    plain = _args("--test", "load", "--out", "x")
    resolve_args(plain)
    assert (plain.sp, plain.duration, plain.workers, plain.seed, plain.host) == ("DSP", "60s", 0, 20240601, None)
    with pytest.raises(InputError, match="--test: the test to run is missing"):
        resolve_args(_args("--out", "x"))


def test_the_mapping_produces_exactly_the_tls_response_and_adapter_options(tmp_path):
    f = tmp_path / "f.pem"
    f.write_text("x")
    cfg = _write(tmp_path, f'''
[target]
adapter = "mypkg.adapters:S1spAdapter"
[target.endpoints]
T = "/dcc/transform"
[tls]
pkcs12 = "{f}"
key_password_env = "TLS_PW"
ca_bundle = "{f}"
verify = false
callback_cert = "{f}"
callback_key = "{f}"
callback_client_ca = "{f}"
[responses]
dcc_certs = ["{f}", "{f}"]
''')
    model, _ = load_run_config(cfg)
    a = locust_args_for(model, None)
    assert a == ["--tls-pkcs12", str(f), "--tls-key-password-env", "TLS_PW", "--tls-ca", str(f),
                 "--callback-tls-cert", str(f), "--callback-tls-key", str(f), "--callback-tls-client-ca", str(f),
                 "--tls-no-verify", "--response-cert", str(f), "--response-cert", str(f),
                 "--adapter", "mypkg.adapters:S1spAdapter", "--path-t", "/dcc/transform"]
    cert_key = _write(tmp_path, f'[tls]\nclient_cert = "{f}"\nclient_key = "{f}"\n', "ck.toml")
    assert locust_args_for(load_run_config(cert_key)[0], None) == ["--tls-client-cert", str(f),
                                                                   "--tls-client-key", str(f)]
    assert locust_args_for(load_run_config(_write(tmp_path, "", "empty.toml"))[0], None) == []


def test_encrypted_pem_and_pkcs12_open_only_with_their_password(tmp_path, monkeypatch):
    k = make_own_keys(tmp_path)
    pem = load_credential(k.key_pem, k.cert_pem, password=k.password.encode())
    p12 = load_pkcs12(k.p12, k.password.encode())
    assert pem.eui == p12.eui == OWN_EUI and pem.fingerprint() == p12.fingerprint()
    with pytest.raises(InputError, match="the key is encrypted: name the environment variable"):
        load_credential(k.key_pem, k.cert_pem)
    with pytest.raises(InputError, match="wrong password") as e1:
        load_credential(k.key_pem, k.cert_pem, password=b"nope")
    with pytest.raises(InputError, match="wrong password") as e2:
        load_pkcs12(k.p12, b"nope")
    assert "nope" not in str(e1.value) + str(e2.value)
    cfg = _write(tmp_path, f'[[signing]]\nkey = "{k.key_pem}"\ncert = "{k.cert_pem}"\npassword_env = "OWN_PW"\n')
    model, src = load_run_config(cfg)
    monkeypatch.delenv("OWN_PW", raising=False)
    with pytest.raises(InputError, match="environment variable OWN_PW .* is not set"):
        map_config(model, src, _args("--test", "load", "--out", "x"), tmp_path / "out")
    wrong = _write(tmp_path, f'[[signing]]\neui = "90-B3-D5-1F-30-01-00-00"\npkcs12 = "{k.p12}"\n'
                             'password_env = "OWN_PW"\n', "wrong.toml")
    monkeypatch.setenv("OWN_PW", k.password)
    model, src = load_run_config(wrong)
    with pytest.raises(InputError, match=f"signing\\[0\\].eui: eui 90-B3-D5-1F-30-01-00-00 differs from the "
                                         f"certificate's {OWN_EUI}"):
        map_config(model, src, _args("--test", "load", "--out", "x"), tmp_path / "out")
    tls = _write(tmp_path, f'[tls]\npkcs12 = "{k.p12}"\nkey_password_env = "TLS_PW"\n', "tls.toml")
    model, src = load_run_config(tls)
    monkeypatch.setenv("TLS_PW", "not-it")
    with pytest.raises(InputError, match="tls.pkcs12: cannot open own.p12 .wrong password") as e3:
        map_config(model, src, _args("--test", "load", "--out", "x"), tmp_path / "out")
    assert "not-it" not in str(e3.value)
    monkeypatch.setenv("TLS_PW", k.password)
    m = map_config(model, src, _args("--test", "load", "--out", "x"), tmp_path / "out")
    assert m.audit["tls"]["client_cert_sha256"] == pem.fingerprint()


def test_the_kit_signs_with_the_users_own_keys(tmp_path, monkeypatch):
    from dcc_capacity.duis.pki import load_certificate
    from dcc_capacity.duis.signingkeys import SigningKey, write_signing_keys
    from dcc_capacity.duis.verify import TrustStore, verify_enveloped
    from dcc_capacity.load.users import kit

    k = make_own_keys(tmp_path)
    monkeypatch.setenv("OWN_PW", k.password)
    keys = write_signing_keys([SigningKey(roles=tuple(ALL_ROLES), key=str(k.key_pem), cert=str(k.cert_pem),
                                          password_env="OWN_PW")], tmp_path / "signing-keys.json")
    assert k.password.encode() not in keys.read_bytes() and b"PRIVATE" not in keys.read_bytes()
    kit.reset_kit()
    try:
        built = kit.get_kit(argparse.Namespace(signing_keys=str(keys), dcc_test="load", dcc_fleet_size=1000,
                                               dcc_pool_size=8))
        assert list(built.factory.signers) == [OWN_EUI]
        req = built.factory.build("4.6.1", 0)
        assert req.originator == OWN_EUI
        trust = TrustStore()
        trust.add(load_certificate(k.cert_pem), roles=ALL_ROLES)
        assert verify_enveloped(req.body, trust).signer.eui == OWN_EUI
    finally:
        kit.reset_kit()


def test_the_emulator_section_is_only_for_a_loopback_rehearsal(tmp_path):
    cfg = _write(tmp_path, '[emulator]\ntrust_certs = ["extra.pem"]\n[emulator.tls]\ncert = "certs/s.pem"\n'
                           'key = "certs/s.key"\n[emulator.capacity]\ntps = 500\n')
    model, src = load_run_config(cfg)
    assert model.emulator["tls"] == {"cert": str(tmp_path / "certs/s.pem"), "key": str(tmp_path / "certs/s.key")}
    local = _args("--config", str(cfg), "--test", "load", "--out", "x")
    resolve_args(local)
    m = map_config(model, src, local, tmp_path / "out")
    assert m.emulator == {"trust_certs": [str(tmp_path / "extra.pem")], "tls": model.emulator["tls"],
                          "capacity": {"tps": 500}}
    real = _args("--config", str(cfg), "--test", "load", "--host", "https://dsp.example", "--out", "x")
    resolve_args(real)
    assert map_config(model, src, real, tmp_path / "out").emulator == {}
    bad = _write(tmp_path, '[emulator.cp]\npassword = "cp"\n', "bad.toml")
    with pytest.raises(InputError, match="bad.toml:2: emulator.cp.password: inline secrets are not accepted"):
        load_run_config(bad)


def test_the_environment_sets_a_run_setting_below_a_flag_and_above_the_file(tmp_path, monkeypatch):
    """DCC_CAPACITY_RUN_<FLAG>: a flag wins, then the environment, then the file; run.json records the variable."""
    cfg = _write(tmp_path, '[run]\ntest = "spike"\nrate = 40\nmax_send_lag_ms = 5000\nduration = "5m"\n')
    monkeypatch.setenv("DCC_CAPACITY_RUN_MAX_SEND_LAG", "1000")
    monkeypatch.setenv("DCC_CAPACITY_RUN_RATE", "25.5")
    monkeypatch.setenv("DCC_CAPACITY_RUN_CLIENT_HOLD", "yes")
    args = _args("--config", str(cfg), "--rate", "10", "--out", "x")
    resolve_args(args)
    got = (args.test, args.rate, args.max_send_lag, args.client_hold, args.duration)
    assert got == ("spike", 10.0, 1000.0, True, "5m")
    assert args.env_settings == {"DCC_CAPACITY_RUN_MAX_SEND_LAG": "1000", "DCC_CAPACITY_RUN_CLIENT_HOLD": "yes"}
    assert spec_from_args(args).max_send_lag_ms == 1000.0


@pytest.mark.parametrize(("name", "value", "needle"), [
    ("DCC_CAPACITY_RUN_MAX_SEND_LAG", "soon", "DCC_CAPACITY_RUN_MAX_SEND_LAG: not a valid float for --max-send-lag"),
    ("DCC_CAPACITY_RUN_MAX_SEND_LAG", "-5", "DCC_CAPACITY_RUN_MAX_SEND_LAG: must be > 0 (got -5.0)"),
    ("DCC_CAPACITY_RUN_DURATION", "a while", "DCC_CAPACITY_RUN_DURATION: not a duration"),
    ("DCC_CAPACITY_RUN_SP", "XSP", "DCC_CAPACITY_RUN_SP (--sp): unknown Service Provider"),
    ("DCC_CAPACITY_RUN_NORMAL", "maybe", "DCC_CAPACITY_RUN_NORMAL: must be true or false"),
])
def test_a_bad_environment_setting_is_one_line_naming_the_variable_exit_2(tmp_path, capsys, monkeypatch, name, value,
                                                                         needle):
    monkeypatch.setenv(name, value)
    rc = main(["run", "--test", "load", "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert rc == 2, err
    assert len(err.strip().splitlines()) == 1 and needle in err and "Traceback" not in err, err
    assert not (tmp_path / "out").exists()
