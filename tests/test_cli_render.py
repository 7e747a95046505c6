"""`dcc-capacity render`: signed requests and the signer certificate; bad input exits 2 with one line."""

from __future__ import annotations

import csv
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from lxml import etree

from _duis_helpers import signxml_verify
from dcc_capacity.duis.structure import check_request

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def pki_dir(tmp_path_factory):
    return str(tmp_path_factory.mktemp("cli-pki") / "pki")


def _manifest(out: Path) -> list[dict[str, str]]:
    with (out / "requests.csv").open(newline="") as fh:
        return list(csv.DictReader(fh))


def test_render_writes_signed_requests_and_certificates(run_cli, tmp_path, pki_dir):
    out = tmp_path / "out"
    res = run_cli("render", "4.6.1", "--count", "5", "--out", str(out), "--pki", pki_dir, "--seed", "3")
    assert res.returncode == 0, res.stderr
    rows = _manifest(out)
    assert len(rows) == 5 and len({r["request_id"] for r in rows}) == 5
    for row in rows:
        body = (out / row["file"]).read_bytes()
        cert = (out / f"signer-{row['originator'].replace('-', '')}.pem").read_bytes()
        signxml_verify(body, cert)
        doc = etree.fromstring(body)
        assert check_request(doc) == []
        assert doc.findtext("{*}Header/{*}RequestID") == row["request_id"]
        assert row["path"] == "/api/v1/serviceS"
    # same seed, same devices and senders
    again = tmp_path / "again"
    assert run_cli("render", "4.6.1", "--count", "5", "--out", str(again), "--pki", pki_dir, "--seed", "3"
                   ).returncode == 0
    assert [(r["target"], r["originator"]) for r in _manifest(again)] == [(r["target"], r["originator"]) for r in rows]


def test_render_as_a_given_originator_writes_signer_pem(run_cli, tmp_path, pki_dir):
    out = tmp_path / "o"
    res = run_cli("render", "12.2", "--count", "2", "--out", str(out), "--pki", pki_dir,
                  "--originator", "90-B3-D5-1F-30-03-00-00")
    assert res.returncode == 0, res.stderr
    for row in _manifest(out):
        assert row["originator"] == "90-B3-D5-1F-30-03-00-00" and row["command_variant"] == "8"
        signxml_verify((out / row["file"]).read_bytes(), (out / "signer.pem").read_bytes())


@pytest.mark.peer
def test_render_with_dcc_boxed_keys_passes_dcc_validate(run_cli, tmp_path, sign_wrap):
    out = tmp_path / "boxed"
    res = run_cli("render", "8.11", "--out", str(out), "--signing-key", str(sign_wrap.user_key()),
                  "--signing-cert", str(sign_wrap.user_cert()))
    assert res.returncode == 0, res.stderr
    (row,) = _manifest(out)
    assert row["originator"] == "90-B3-D5-1F-30-01-00-00"
    assert sign_wrap.validate((out / row["file"]).read_bytes()).returncode == 0


@pytest.mark.parametrize(("args", "message"), [
    (["9.9.9"], "VARIANT: '9.9.9' is not a DUIS SRV variant"),
    (["7.16", "--originator", "90-B3-D5-1F-30-01-00-00"],
     "(roles GS,IS) may not send SRV 7.16 (eligible roles: LC)"),
    (["9.1", "--originator", "90-B3-D5-1F-30-01-00-00"], "(roles GS,IS) may not send SRV 9.1 (eligible roles: OU)"),
    (["4.6.1", "--originator", "00-00-00-00-00-00-00-01"], "no signing key for Service User 00-00-00-00-00-00-00-01"),
    (["4.6.1", "--count", "0"], "--count: must be at least 1"),
    (["4.6.1", "--signing-key", "/nonexistent/key.pem"], "give both --signing-key and --signing-cert"),
    (["4.6.1", "--signing-key", "/nonexistent/key.pem", "--signing-cert", "/nonexistent/c.pem"],
     "/nonexistent/key.pem: cannot read key"),
    (["6.15.1", "--command-variant", "1"], "CommandVariant 1 is not valid for SRV 6.15.1 (allowed: 4)"),
])
def test_bad_input_exits_2_with_one_clear_line(run_cli, tmp_path, pki_dir, args, message):
    res = run_cli("render", *args, "--out", str(tmp_path / "x"), "--pki", pki_dir)
    assert res.returncode == 2
    assert message in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1 and "Traceback" not in res.stderr


def test_unreadable_key_exits_2(run_cli, tmp_path, pki_dir):
    bad = tmp_path / "bad.key"
    bad.write_text("not a key")
    cert = next(Path(pki_dir).glob("*.pem")) if Path(pki_dir).exists() else tmp_path / "c.pem"
    res = run_cli("render", "4.6.1", "--out", str(tmp_path / "x"), "--signing-key", str(bad),
                  "--signing-cert", str(cert))
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert str(bad) in res.stderr or str(cert) in res.stderr


def test_missing_template_field_exits_2_naming_template_and_field(tmp_path, pki_dir):
    """A copy of the project with one template asking for a field nobody provides."""
    copy = tmp_path / "proj"
    shutil.copytree(ROOT / "src", copy / "src", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(ROOT / "srv_templates", copy / "srv_templates")
    shutil.copy(ROOT / "pyproject.toml", copy / "pyproject.toml")
    tpl = copy / "srv_templates" / "3.1.xml.j2"
    tpl.write_text(tpl.read_text().replace("{{ message }}", "{{ customer_message }}"))
    env = {**os.environ, "PYTHONPATH": str(copy / "src")}
    res = subprocess.run([sys.executable, "-m", "dcc_capacity", "render", "3.1", "--out", str(tmp_path / "x"),
                          "--pki", pki_dir], capture_output=True, text=True, env=env, cwd=copy, timeout=60)
    assert res.returncode == 2
    assert "3.1.xml.j2: template field missing: 'customer_message' is undefined" in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1


@pytest.mark.peer
def test_every_variant_rendered_by_the_cli_validates_and_verifies_with_the_written_cert(tmp_path, pki_dir, duis_xsd,
                                                                                       capsys):
    from dcc_capacity.cli import main
    from dcc_capacity.duis.templates import available_variants

    for variant in available_variants():
        out = tmp_path / variant
        assert main(["render", variant, "--count", "2", "--out", str(out), "--pki", pki_dir]) == 0
        for row in _manifest(out):
            body = (out / row["file"]).read_bytes()
            assert duis_xsd.validate(etree.fromstring(body)), (variant, str(duis_xsd.error_log.last_error))
            signxml_verify(body, (out / f"signer-{row['originator'].replace('-', '')}.pem").read_bytes())
    capsys.readouterr()


@pytest.mark.parametrize(("args", "message"), [
    (["8.1.1", "--execution-datetime", "2030-01-15T09:00:00Z"], "SRV 8.1.1 cannot be future-dated"),
    (["4.6.1", "--execution-datetime", "tomorrow"], "not an xs:dateTime"),
    (["5.1", "--scheduled-variant", "4.2"], "scheduled-variant: 5.1 Create Schedule here can schedule 4.6.1"),
])
def test_future_dating_is_checked(tmp_path, pki_dir, capsys, args, message):
    from dcc_capacity.cli import main

    assert main(["render", *args, "--out", str(tmp_path / "x"), "--pki", pki_dir]) == 2
    assert message in capsys.readouterr().err


def test_future_dated_render(tmp_path, pki_dir, capsys):
    from dcc_capacity.cli import main

    out = tmp_path / "fd"
    assert main(["render", "4.6.1", "--out", str(out), "--pki", pki_dir,
                 "--execution-datetime", "2030-01-15T09:00:00Z"]) == 0
    (row,) = _manifest(out)
    doc = etree.fromstring((out / row["file"]).read_bytes())
    assert doc.findtext(".//{*}RetrieveImportDailyReadLog/{*}ExecutionDateTime") == "2030-01-15T09:00:00Z"
