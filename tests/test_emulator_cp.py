"""The CP over real SFTP: Migration Common File + S1SP Commissioning File in, Commissioning Outcome File out."""

from __future__ import annotations

import asyncio
import csv
import io

import asyncssh
import pytest

from _emulator_helpers import PKI_DIR
from dcc_capacity.emulator import start_emulator
from dcc_capacity.emulator.config import FaultsConfig
from dcc_capacity.emulator.cp import FileRejected, process_migration
from dcc_capacity.emulator.faults import Faults


def _mcf(mid: str, devices: list[str]) -> bytes:
    rows = ["migration_id,device_id,device_type,mpxn,smets_version"]
    rows += [f"{mid},{d},ESME,1234567890123,SMETS1" for d in devices]
    return ("\n".join(rows) + "\n").encode()


def _s1cf(mid: str, devices: list[str], status: str = "READY") -> bytes:
    return ("\n".join(["migration_id,device_id,s1sp_status", *(f"{mid},{d},{status}" for d in devices)])
            + "\n").encode()


DEVICES = [f"00-DB-51-00-00-00-{i // 256:02X}-{i % 256:02X}" for i in range(40)]


async def _sftp_round_trip(port: int, files: dict[str, bytes], expect: str, timeout: float = 10.0) -> bytes:
    async with asyncssh.connect("127.0.0.1", port, username="cp", password="cp", known_hosts=None) as conn, \
            conn.start_sftp_client() as sftp:
        for name, data in files.items():
            async with sftp.open(f"/in/{name}", "wb") as f:
                await f.write(data)
        for _ in range(int(timeout / 0.05)):
            if await sftp.exists(f"/out/{expect}"):
                async with sftp.open(f"/out/{expect}", "rb") as f:
                    return await f.read()
            await asyncio.sleep(0.05)
    raise AssertionError(f"no /out/{expect} after {timeout} s")


def _outcomes(data: bytes) -> dict[str, tuple[str, str]]:
    return {r["device_id"]: (r["outcome"], r["reason"]) for r in csv.DictReader(io.StringIO(data.decode()))}


@pytest.fixture(scope="module")
def cp():
    cfg = {"port": 0, "pki_dir": str(PKI_DIR), "sp": "CP",
           "faults": {"migration_fallout": {"enabled": True, "share": 0.25}}}
    # A subprocess: Locust tests in the same pytest run gevent-patch this process (threads become greenlets).
    with start_emulator(cfg, mode="subprocess") as h:
        yield h


def test_cp_round_trip_over_sftp_with_fallout_and_reprocessing(cp):
    port = cp.info["sftp_port"]
    out = asyncio.run(_sftp_round_trip(port, {"MCF_M1.csv": _mcf("M1", DEVICES),
                                              "S1CF_M1.csv": _s1cf("M1", DEVICES)}, "COF_M1.csv"))
    outcomes = _outcomes(out)
    assert set(outcomes) == set(DEVICES)
    failed = [d for d, (o, r) in outcomes.items() if o == "FAILED"]
    assert all(outcomes[d][1] == "MIGRATION_FALLOUT" for d in failed)
    assert 2 <= len(failed) <= 20                                   # ~25% of 40
    # reprocess the fallout as a new migration: now they commission
    out2 = asyncio.run(_sftp_round_trip(port, {"MCF_M1R.csv": _mcf("M1R", failed),
                                               "S1CF_M1R.csv": _s1cf("M1R", failed)}, "COF_M1R.csv"))
    assert {o for o, _ in _outcomes(out2).values()} == {"COMMISSIONED"}
    assert cp.metrics()["sftp_port"] == port


def test_cp_rejects_an_invalid_file_with_an_error_file(cp):
    bad = _mcf("M2", DEVICES[:3]).replace(b"SMETS1", b"SMETS2", 1)
    out = asyncio.run(_sftp_round_trip(cp.info["sftp_port"], {"MCF_M2.csv": bad, "S1CF_M2.csv": _s1cf("M2", [])},
                                       "ERR_M2.txt"))
    assert b"only SMETS1 devices migrate" in out
    out = asyncio.run(_sftp_round_trip(cp.info["sftp_port"], {"notes.txt": b"hello"}, "ERR_notes.txt.txt"))
    assert b"file name must be" in out


def test_cp_refuses_wrong_password(cp):
    async def main() -> None:
        await asyncssh.connect("127.0.0.1", cp.info["sftp_port"], username="cp", password="nope",
                               known_hosts=None)

    with pytest.raises(asyncssh.PermissionDenied):
        asyncio.run(main())


@pytest.mark.parametrize("mcf,s1cf,msg", [
    (b"wrong,header\n", b"", "header must be"),
    (_mcf("X", ["not-an-eui"]), _s1cf("X", []), "not an EUI-64"),
    (_mcf("X", [DEVICES[0], DEVICES[0]]), _s1cf("X", []), "listed twice"),
    (_mcf("X", [DEVICES[0]]), _s1cf("X", [DEVICES[1]]), "not in the Migration Common File"),
    (_mcf("Y", [DEVICES[0]]), _s1cf("X", [DEVICES[0]]), "is not 'X'"),
    (b"\xff\xfe", b"", "UTF-8"),
])
def test_file_validation(mcf, s1cf, msg):
    with pytest.raises(FileRejected, match=msg):
        process_migration("X", mcf, s1cf, Faults(FaultsConfig(), __import__("random").Random(1)))


def test_s1sp_not_ready_devices_fail():
    rows = process_migration("X", _mcf("X", DEVICES[:2]), _s1cf("X", DEVICES[:1], "FAILED"),
                             Faults(FaultsConfig(), __import__("random").Random(1)))
    assert [(r["outcome"], r["reason"]) for r in rows] == [("FAILED", "S1SP_NOT_READY"),
                                                          ("FAILED", "MISSING_FROM_S1SP_FILE")]


def test_commissioning_request_is_acknowledged_and_the_audit_file_checked(cp):
    """SCTAD 3.4(b)'s other files: CR -> ACK per device; an audit file with an end before its start rejects."""
    cr = ("migration_id,device_id,device_type\n" + "".join(f"M3,{d},ESME\n" for d in DEVICES[:3])).encode()
    ack = asyncio.run(_sftp_round_trip(cp.info["sftp_port"], {"CR_M3.csv": cr}, "ACK_M3.csv"))
    rows = list(csv.DictReader(io.StringIO(ack.decode())))
    assert [r["device_id"] for r in rows] == DEVICES[:3] and {r["ack_status"] for r in rows} == {"ACCEPTED"}
    assert rows[0]["acknowledged_at"].endswith("Z")
    audit = ("migration_id,device_id,installation_start,installation_end\n"
             + "".join(f"M4,{d},2026-01-01T10:00:00Z,2026-01-01T10:05:00Z\n" for d in DEVICES[:2])).encode()
    out = asyncio.run(_sftp_round_trip(cp.info["sftp_port"], {"MCF_M4.csv": _mcf("M4", DEVICES[:2]),
                                                              "AUDIT_M4.csv": audit,
                                                              "S1CF_M4.csv": _s1cf("M4", DEVICES[:2])}, "COF_M4.csv"))
    assert set(_outcomes(out)) == set(DEVICES[:2])
    backwards = audit.replace(b"10:05:00Z", b"09:00:00Z").replace(b"M4,", b"M5,")
    out = asyncio.run(_sftp_round_trip(cp.info["sftp_port"], {"MCF_M5.csv": _mcf("M5", DEVICES[:2]),
                                                              "AUDIT_M5.csv": backwards,
                                                              "S1CF_M5.csv": _s1cf("M5", DEVICES[:2])}, "ERR_M5.txt"))
    assert b"installation_end is before installation_start" in out
    counts = cp.metrics()["cp"]  # the CP's own view on /metrics
    assert counts["commissioning_requests"] >= 1 and counts["acknowledged_devices"] >= 3
    assert counts["migrations"] >= 1 and counts["rejected_files"] >= 1
    assert counts["devices"] == counts["commissioned"] + counts["failed"] and counts["fallout"] <= counts["failed"]
