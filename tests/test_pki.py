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


def _ca_serial(directory: str) -> int:
    return TestPKI.load_or_create(directory).ca_cert.serial_number


def test_processes_that_start_together_on_an_older_pki_all_get_the_same_new_one(tmp_path: Path):
    """An emulator and a load generator started together on an upgraded machine must not each make their own."""
    import multiprocessing

    TestPKI.load_or_create(tmp_path / "pki")
    (tmp_path / "pki" / "90B3D51F30010008.key").unlink()
    with multiprocessing.get_context("fork").Pool(4) as pool:
        serials = pool.map(_ca_serial, [str(tmp_path / "pki")] * 4)
    assert len(set(serials)) == 1 and serials[0] == _ca_serial(str(tmp_path / "pki"))


def test_mismatched_key_is_an_input_error(tmp_path: Path):
    pki = TestPKI.load_or_create(tmp_path / "pki")
    d = pki.directory
    with pytest.raises(InputError, match="does not match"):
        load_credential(d / "90B3D51F30010000.key", d / "90B3D51F30020000.pem")
    with pytest.raises(InputError, match="cannot read key"):
        load_credential(d / "missing.key", d / "90B3D51F30020000.pem")
