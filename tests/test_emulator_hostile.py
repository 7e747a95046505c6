"""1,000 malformed and hostile bodies: every one gets a DUIS error response, nothing crashes, memory stays flat."""

from __future__ import annotations

import random

import psutil
import pytest

from _emulator_helpers import PKI_DIR, blast, signed_request, unsigned_request
from dcc_capacity.duis.responses import parse_response
from dcc_capacity.emulator import codes as C
from dcc_capacity.emulator import start_emulator

XXE = (b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
       b'<sr:Request xmlns:sr="http://www.dccinterface.co.uk/ServiceUserGateway">&x;</sr:Request>')
XXE_NET = (b'<!DOCTYPE r [<!ENTITY % p SYSTEM "http://127.0.0.1:9/evil.dtd"> %p;]>'
           b'<sr:Request xmlns:sr="http://www.dccinterface.co.uk/ServiceUserGateway"/>')
LAUGHS = (b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
          + b"".join(f'<!ENTITY lol{i} "{("&lol" + (str(i - 1) if i > 1 else "") + ";") * 10}">'.encode()
                     for i in range(1, 10))
          + b']><lolz>&lol9;</lolz>')
DEEP = b"<a>" * 5000 + b"</a>" * 5000
QUADRATIC = b'<a attr="' + b"x" * 200_000 + b'"/>'


def _corpus(rng: random.Random) -> list[bytes]:
    good = signed_request("4.1.1")
    out: list[bytes] = []
    for i in range(1000):
        kind = i % 10
        if kind == 0:
            out.append(good[: rng.randrange(1, len(good) - 1)])                      # truncated
        elif kind == 1:
            out.append(XXE if i % 20 else XXE_NET)
        elif kind == 2:
            out.append(LAUGHS)
        elif kind == 3:
            out.append(unsigned_request("4.1.1").replace(b"dccinterface.co.uk/ServiceUserGateway",
                                                          b"example.com/other"))   # wrong namespace
        elif kind == 4:
            out.append(rng.randbytes(rng.randrange(1, 4000)))                       # noise
        elif kind == 5:
            out.append(DEEP)
        elif kind == 6:
            b = bytearray(good)
            for _ in range(5):
                b[rng.randrange(len(b))] = rng.randrange(256)                           # bit rot
            out.append(bytes(b))
        elif kind == 7:
            out.append(good.replace(b"<sr:Body>", b"<sr:Body><sr:Extra/>", 1))        # structure / signature
        elif kind == 8:
            out.append(QUADRATIC)
        else:
            out.append(b"\xef\xbb\xbf" + good.replace(b'encoding="UTF-8"', b'encoding="UTF-16"'))
    return out


@pytest.mark.slow
def test_hostile_bodies_get_error_responses_and_memory_stays_bounded():
    with start_emulator({"port": 0, "pki_dir": str(PKI_DIR)}, mode="subprocess") as emu:
        proc = psutil.Process(emu.info["pid"])
        warm = blast(emu.path("S"), [unsigned_request("4.1.1") for _ in range(50)], rate=2000, connections=8)
        assert all(s == 200 for _, s, _ in warm)
        rss0 = proc.memory_info().rss
        corpus = _corpus(random.Random(7))
        results = blast(emu.path("S"), corpus, rate=2000, connections=16)
        big = blast(emu.path("S"), [b"<a>" + b"A" * (50 * 1024 * 1024) + b"</a>"], rate=1, connections=1)
        rss1 = proc.memory_info().rss
        statuses = sorted({s for _, s, _ in results})
        assert len(results) == 1000
        assert set(statuses) <= {200, 400, 413}, statuses
        assert big[0][1] == 413
        assert rss1 - rss0 < 40 * 1024 * 1024, (rss0, rss1)
        m = emu.metrics()
        # a flipped byte outside what the signature covers (the XML declaration) can leave a valid request
        assert m["totals"]["received"] >= 1050 and m["totals"]["acked"] <= 5
        assert set(m["by_code"]) - {"I99", "I0"} <= {C.E_MALFORMED, C.E_SCHEMA, C.E_SIGNATURE, C.E_TOO_LARGE,
                                                      C.E_UNKNOWN_CERT, C.E_REPLAY}
        # one real request still works afterwards
        ok = blast(emu.path("S"), [signed_request("4.1.1")], rate=1, connections=1)
        assert ok[0][1] == 200
        assert emu.returncode is None


def test_every_hostile_kind_gets_a_readable_duis_error():
    import httpx

    with start_emulator({"port": 0, "pki_dir": str(PKI_DIR)}) as emu, httpx.Client() as client:
        for body in (XXE, XXE_NET, LAUGHS, DEEP, QUADRATIC, b"", b"\x00\x01"):
            r = client.post(emu.path("S"), content=body)
            parsed = parse_response(r.content)
            assert parsed.response_code in (C.E_MALFORMED, C.E_SCHEMA), (body[:40], parsed)
            assert b"root:" not in r.content
