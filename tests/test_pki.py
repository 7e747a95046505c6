from pathlib import Path

import pytest

from dcc_capacity.duis.pki import DEFAULT_USERS, TestPKI, eui_from_cert, load_credential
from dcc_capacity.errors import InputError


def test_generated_pki_is_reused_and_names_each_user(tmp_path: Path):
    a = TestPKI.load_or_create(tmp_path / "pki")
    b = TestPKI.load_or_create(tmp_path / "pki")
    for user in DEFAULT_USERS:
        cred = a.credential(user.eui)
        assert eui_from_cert(cred.cert) == user.eui
        assert cred.serial == b.credential(user.eui).serial
        assert cred.roles == user.roles
    assert a.dcc.eui == "90-B3-D5-1F-30-00-00-02"
    assert "dcc-capacity test CA" in a.dcc.issuer_name


def test_a_pki_of_an_older_version_without_the_load_controller_is_regenerated(tmp_path: Path):
    """A cached PKI made before the Load Controller (LC) user existed lacks its files; its CA key was never kept, so
    the throw-away PKI is made anew, complete, in the same folder."""
    old = TestPKI.load_or_create(tmp_path / "pki")
    for ext in (".key", ".pem"):
        (tmp_path / "pki" / f"90B3D51F30010008{ext}").unlink()
    new = TestPKI.load_or_create(tmp_path / "pki")
    assert new.credential("90-B3-D5-1F-30-01-00-08").roles == {"LC"}
    assert new.ca_cert != old.ca_cert
    assert sorted(p.name for p in tmp_path.iterdir()) == [".pki.lock", "pki"]  # the old folder is gone


def test_processes_that_start_together_on_an_older_pki_all_get_the_same_new_one(tmp_path: Path):
    """An emulator and a load generator started together on an upgraded machine must not each make their own.

    Separate interpreters, not a fork pool: a forked child of a test process that imported Locust (gevent
    patched) can hang.
    """
    import subprocess
    import sys

    TestPKI.load_or_create(tmp_path / "pki")
    (tmp_path / "pki" / "90B3D51F30010008.key").unlink()
    code = ("import sys; from dcc_capacity.duis.pki import TestPKI; "
            "print(TestPKI.load_or_create(sys.argv[1]).ca_cert.serial_number)")
    procs = [subprocess.Popen([sys.executable, "-c", code, str(tmp_path / "pki")], stdout=subprocess.PIPE,
                              text=True) for _ in range(4)]
    serials = {int(p.communicate(timeout=60)[0]) for p in procs}
    assert serials == {TestPKI.load_or_create(tmp_path / "pki").ca_cert.serial_number}


def test_mismatched_key_is_an_input_error(tmp_path: Path):
    pki = TestPKI.load_or_create(tmp_path / "pki")
    d = pki.directory
    with pytest.raises(InputError, match="does not match"):
        load_credential(d / "90B3D51F30010000.key", d / "90B3D51F30020000.pem")
    with pytest.raises(InputError, match="cannot read key"):
        load_credential(d / "missing.key", d / "90B3D51F30020000.pem")
