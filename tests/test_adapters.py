"""Target adapters against the emulator's own sides: DUIS over HTTP(S) and CP migration over SFTP.

Real parts throughout: the emulator in a subprocess, the project's signed
requests, the real callback listener (gevent) correlating the answers, a
real SFTP session (paramiko) against the emulator's asyncssh server, and a
user's own adapter loaded from a module in tmp_path by Locust.
"""

from __future__ import annotations

import argparse
import csv
import http.client
import io
import json
import time

import pytest
from cryptography.hazmat.primitives import serialization

from _emulator_helpers import PKI_DIR
from _load_helpers import ROOT, run_locust
from _tls_helpers import TestCA
from dcc_capacity.duis.factory import RequestFactory
from dcc_capacity.duis.pki import TestPKI
from dcc_capacity.emulator import start_emulator
from dcc_capacity.errors import InputError
from dcc_capacity.load.adapters import AdapterSettings, TargetAdapter, adapter_class, make_adapter
from dcc_capacity.load.adapters.http import DuisHttpAdapter
from dcc_capacity.load.adapters.options import check_options
from dcc_capacity.load.adapters.sftp import CpSftpAdapter, migration_steps
from dcc_capacity.load.callbacks import CallbackListener
from dcc_capacity.load.openmodel import Step
from dcc_capacity.load.records import load_records
from dcc_capacity.load.response_check import response_trust
from dcc_capacity.model.fleet import Fleet

pytestmark = pytest.mark.quiet  # its figures depend on the CPU it gets (tests/_lanes.py)

HEADERS = {"Content-Type": "application/xml"}


def _opts(**kw: object) -> argparse.Namespace:
    base = {"adapter": "duis-http", "tls_client_cert": "", "tls_client_key": "", "tls_key_password_env": "",
            "tls_pkcs12": "", "tls_ca": "", "tls_no_verify": False, "callback_tls_cert": "", "callback_tls_key": "",
            "callback_tls_client_ca": "", "response_cert": [], "sftp_password_env": "DCC_CAPACITY_SFTP_PASSWORD",
            "sftp_known_hosts": ""}
    return argparse.Namespace(**{**base, **kw})


@pytest.fixture(scope="module")
def factory():
    return RequestFactory.from_pki(TestPKI.load_or_create(PKI_DIR), Fleet(seed=7, size=1000))


@pytest.mark.timeout(60)
def test_duis_http_adapter_over_mutual_tls_sends_and_its_async_response_is_correlated(tmp_path, factory,
                                                                                       monkeypatch):
    ca = TestCA(tmp_path / "tls")
    server, client = ca.issue("sut", server=True), ca.issue("client", password=b"pw-123")
    dcc = tmp_path / "dcc.pem"
    dcc.write_bytes(TestPKI.load_or_create(PKI_DIR).dcc.cert.public_bytes(serialization.Encoding.PEM))
    listener = CallbackListener(late_after_s=5, missing_after_s=10, trust=response_trust([str(dcc)])).start()
    cfg = {"port": 0, "pki_dir": str(PKI_DIR), "callback_url": listener.url,
           "tls": {"cert": str(server.cert), "key": str(server.key), "client_ca": str(ca.ca)}}
    try:
        with start_emulator(cfg, mode="subprocess") as emu:
            opts = _opts(tls_client_cert=str(client.cert), tls_client_key=str(client.key),
                         tls_key_password_env="DCC_TEST_PW", tls_ca=str(ca.ca))
            monkeypatch.setenv("DCC_TEST_PW", "pw-123")
            adapter = make_adapter("duis-http", AdapterSettings(emu.url, opts, concurrency=4))
            assert isinstance(adapter, DuisHttpAdapter)
            req = factory.build("4.6.1", 3)
            pending = listener.expect(req.request_id, label="4.6.1", intended_ts=time.time())
            status, body = adapter.send(Step("4.6.1", emu.config.paths["S"], body=req.body, headers=HEADERS,
                                             request_id=req.request_id, expect_callback=True))
            assert status == 200 and b"<sr:ResponseCode>I99</sr:ResponseCode>" in body
            res = pending.wait(timeout=10)
            assert res.outcome == "ok" and res.response_code == "I0" and 0 < res.trt_ms < 5000
            assert listener.counts["bad_signature"] == 0  # the DCC's signature on the response was checked
            assert req.request_id.encode() in res.body
            # Without a client certificate the same adapter cannot reach the SUT.
            bare = make_adapter("duis-http", AdapterSettings(emu.url, _opts(tls_ca=str(ca.ca)), concurrency=1,
                                                             network_timeout=5))
            # ssl.SSLError, a reset or the server closing the connection, whichever the OS reports first
            with pytest.raises((OSError, http.client.HTTPException)):
                bare.send(Step("4.6.1", emu.config.paths["S"], body=factory.build("4.6.1", 4).body))
            adapter.close()
            bare.close()
    finally:
        listener.stop()


def _mcf(mid: str, devices: list[str]) -> bytes:
    rows = ["migration_id,device_id,device_type,mpxn,smets_version"]
    return ("\n".join(rows + [f"{mid},{d},ESME,1234567890123,SMETS1" for d in devices]) + "\n").encode()


def _s1cf(mid: str, devices: list[str]) -> bytes:
    return ("\n".join(["migration_id,device_id,s1sp_status", *(f"{mid},{d},READY" for d in devices)])
            + "\n").encode()


@pytest.mark.timeout(60)
def test_cp_sftp_adapter_uploads_a_migration_and_correlates_its_outcome_file(monkeypatch):
    devices = [f"00-DB-51-00-00-01-00-{i:02X}" for i in range(12)]
    listener = CallbackListener(late_after_s=5, missing_after_s=10).start()
    try:
        with start_emulator({"port": 0, "pki_dir": str(PKI_DIR), "sp": "CP"}, mode="subprocess") as emu:
            monkeypatch.setenv("DCC_CAPACITY_SFTP_PASSWORD", "cp")
            host = f"sftp://cp@127.0.0.1:{emu.info['sftp_port']}"
            adapter = make_adapter("cp-sftp", AdapterSettings(host, _opts(adapter="cp-sftp"),
                                                              listener=lambda: listener))
            assert isinstance(adapter, CpSftpAdapter)
            mcf, s1cf = migration_steps("M42", _mcf("M42", devices), _s1cf("M42", devices))
            pending = listener.expect("M42", label="migration", intended_ts=time.time())
            assert adapter.send(mcf) == (200, b"") and adapter.send(s1cf) == (200, b"")
            res = pending.wait(timeout=10)
            assert res.outcome == "ok" and res.response_code == "I0"
            rows = list(csv.DictReader(io.StringIO(res.body.decode())))
            assert [r["device_id"] for r in rows] == devices and {r["outcome"] for r in rows} == {"COMMISSIONED"}
            # A file the CP cannot accept resolves the migration as an error with the CP's reason.
            bad_mcf, bad_s1cf = migration_steps("M43", _mcf("M43", devices).replace(b"ESME", b"TOASTER"),
                                                _s1cf("M43", devices))
            pending = listener.expect("M43", label="migration", intended_ts=time.time())
            adapter.send(bad_mcf)
            adapter.send(bad_s1cf)
            res = pending.wait(timeout=10)
            assert res.outcome == "error"
            assert listener.counts["error"] == 1 and listener.counts["ok"] == 1
            adapter.close()
    finally:
        listener.stop()


def test_adapter_names_are_checked_and_bad_tls_files_are_input_errors(tmp_path):
    assert adapter_class(None) is DuisHttpAdapter and adapter_class("cp-sftp") is CpSftpAdapter
    for bad in ("nope", "no_such_module_xyz:Thing", "json:dumps"):
        with pytest.raises(InputError, match="--adapter"):
            adapter_class(bad)
    with pytest.raises(InputError, match=r"missing\.pem: --tls-client-cert: no such file"):
        check_options(_opts(tls_client_cert=str(tmp_path / "missing.pem")))
    with pytest.raises(InputError, match="--tls-key-password-env: environment variable DCC_UNSET_X is not set"):
        ca = TestCA(tmp_path / "tls")
        c = ca.issue("c", password=b"x")
        check_options(_opts(tls_client_cert=str(c.cert), tls_client_key=str(c.key),
                            tls_key_password_env="DCC_UNSET_X"))
    assert issubclass(adapter_class("dcc_capacity.load.adapters.http:DuisHttpAdapter"), TargetAdapter)


CUSTOM = '''
"""A user's own adapter: answers every request itself and notes what it was asked (an SP's internal interface)."""
import json, os
from dcc_capacity.load.adapters import TargetAdapter


class Journal(TargetAdapter):
    name = "journal"

    def start(self):
        self.out = open(os.environ["JOURNAL_FILE"], "a")

    def send(self, step):
        self.out.write(json.dumps({"path": step.path, "bytes": len(step.body), "host": self.settings.host}) + "\\n")
        self.out.flush()
        return 200, b"<ack/>"
'''


@pytest.mark.timeout(60)
def test_a_custom_adapter_from_a_module_in_tmp_path_runs_under_locust(tmp_path):
    (tmp_path / "mods").mkdir()
    (tmp_path / "mods" / "my_sp_adapter.py").write_text(CUSTOM)
    journal = tmp_path / "journal.jsonl"
    import os

    r = run_locust(ROOT / "tests" / "_om_locustfile.py", "internal://s1sp", tmp_path / "run", seconds=3,
                   extra=["-u", "1", "-r", "10", "--adapter", "my_sp_adapter:Journal"],
                   env={"OM_CLASSES": "Steady", "OM_RATE": "20", "JOURNAL_FILE": str(journal),
                        "PYTHONPATH": os.pathsep.join([str(tmp_path / "mods"), str(ROOT / "src"),
                                                       str(ROOT / "tests")])})
    assert r.returncode == 0, r.stderr[-3000:]
    sent = [json.loads(line) for line in journal.read_text().splitlines()]
    df = load_records(tmp_path / "run")
    assert len(sent) == len(df) >= 20  # 20/s for ~2-3 s (less on a loaded box): every arrival used the adapter
    assert {s["path"] for s in sent} == {"/api/v1/serviceS"} and {s["host"] for s in sent} == {"internal://s1sp"}
    assert set(df["outcome"]) == {"ok"} and set(df["ack_code"]) == {200}
