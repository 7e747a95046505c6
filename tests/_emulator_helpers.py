"""Test helpers for the emulator: DUIS requests signed with signxml, and a real callback listener.

The requests are built and signed here, independently of the project's own
signer, with signxml (a general XML-DSig implementation nobody here wrote):
enveloped, exclusive c14n, ECDSA-SHA256, KeyInfo with X509IssuerSerial only.
If the emulator accepts these, it interoperates with a foreign signer.
"""

from __future__ import annotations

import http.server
import threading
import time
from pathlib import Path

import httpx
from lxml import etree
from signxml import XMLSigner, methods
from signxml.algorithms import CanonicalizationMethod, DigestAlgorithm, SignatureMethod

from dcc_capacity.duis import NS_DS, NS_SR
from dcc_capacity.duis.pki import Credential, TestPKI
from dcc_capacity.model.catalogue import DCC_EUI, get_srv

SUPPLIER = "90-B3-D5-1F-30-01-00-00"
NETWORK_OP = "90-B3-D5-1F-30-02-00-00"
OTHER_USER = "90-B3-D5-1F-30-03-00-00"
ESME = "00-DB-12-34-56-78-90-A0"          # SMETS2 by the default prefix rule
S1_ESME = "00-DB-51-00-00-00-00-01"       # SMETS1 by the default prefix rule (00-DB-51)
PKI_DIR = Path(__file__).resolve().parents[1] / ".peers" / "test-pki-emulator"

BODIES = {
    "4.1.1": "<sr:ReadInstantaneousImportRegisters/>",
    "4.3": "<sr:ReadInstantaneousPrepayValues/>",
    "11.2": "<sr:ReadFirmwareVersion/>",
    "7.1": "<sr:EnableSupply/>",
    "7.2": "<sr:DisableSupply/>",
    "12.2": ("<sr:DevicePrenotification><sr:DeviceID>00-DB-12-34-56-78-90-A9</sr:DeviceID>"
             "<sr:DeviceManufacturer>AB01</sr:DeviceManufacturer><sr:DeviceModel>0001A2B3</sr:DeviceModel>"
             "<sr:DeviceType>ESME</sr:DeviceType><sr:SMETSCHTSVersion>SMETS V1.58</sr:SMETSCHTSVersion>"
             "<sr:FirmwareVersion>01020304</sr:FirmwareVersion><sr:ESMEVariant>A</sr:ESMEVariant>"
             "</sr:DevicePrenotification>"),
}

_last = [0]
_lock = threading.Lock()


def next_counter() -> int:
    """Epoch milliseconds, strictly increasing: DCC Boxed's Sign tool rewrites counters to epoch ms,
    so requests from both signers to one emulator stay in increasing order."""
    with _lock:
        _last[0] = max(_last[0] + 1, int(time.time() * 1000))
        return _last[0]


def pki() -> TestPKI:
    return TestPKI.load_or_create(PKI_DIR)


def schedule_body(variant: str, device: str) -> str:
    ref = variant.rsplit(".", 1)[0] if variant.count(".") == 2 else variant
    return ("<sr:CreateSchedule><sr:ScheduleFrequency>Daily</sr:ScheduleFrequency>"
            "<sr:ScheduleStartDate>2030-01-01</sr:ScheduleStartDate>"
            f"<sr:DSPScheduledServiceReference>{ref}</sr:DSPScheduledServiceReference>"
            f"<sr:DSPScheduledServiceReferenceVariant>{variant}</sr:DSPScheduledServiceReferenceVariant>"
            f"<sr:DeviceID>{device}</sr:DeviceID>"
            "<sr:DSPReadInstantaneousPrepayValues/></sr:CreateSchedule>")


def join_body(device: str, join_s: int) -> str:
    return (f"<sr:UpdateHANDeviceLog><sr:DeviceID>{device}</sr:DeviceID><sr:RequestType>Add</sr:RequestType>"
            f"<sr:AddDeviceToCHFWhitelist><sr:JoinTimePeriod>{join_s}</sr:JoinTimePeriod>"
            "<sr:InstallCode>00112233445566778899AABBCCDDEEFF</sr:InstallCode></sr:AddDeviceToCHFWhitelist>"
            "</sr:UpdateHANDeviceLog>")


def unsigned_request(variant: str, *, originator: str = SUPPLIER, target: str | None = None,
                     counter: int | None = None, cv: int | None = None, body: str | None = None,
                     schema_version: str = "5.4") -> bytes:
    srv = get_srv(variant)
    assert srv is not None, variant
    target = target or (DCC_EUI if srv.non_device else ESME)
    counter = next_counter() if counter is None else counter
    cv = srv.command_variant if cv is None else cv
    body = body if body is not None else BODIES[variant]
    return (f'<?xml version="1.0" encoding="UTF-8"?>\n<sr:Request xmlns:sr="{NS_SR}" '
            f'xmlns:ds="{NS_DS}" schemaVersion="{schema_version}"><sr:Header>'
            f"<sr:RequestID>{originator}:{target}:{counter}</sr:RequestID>"
            f"<sr:CommandVariant>{cv}</sr:CommandVariant><sr:ServiceReference>{srv.reference}</sr:ServiceReference>"
            f"<sr:ServiceReferenceVariant>{srv.variant}</sr:ServiceReferenceVariant></sr:Header>"
            f"<sr:Body>{body}</sr:Body></sr:Request>").encode()


def sign(unsigned: bytes, cred: Credential) -> bytes:
    """Sign like DUIS requires, with signxml: enveloped, exc-c14n, ECDSA-SHA256, X509IssuerSerial only."""
    root = etree.fromstring(unsigned)
    ki = etree.Element(f"{{{NS_DS}}}KeyInfo", nsmap={"ds": NS_DS})
    x509 = etree.SubElement(etree.SubElement(ki, f"{{{NS_DS}}}X509Data"), f"{{{NS_DS}}}X509IssuerSerial")
    etree.SubElement(x509, f"{{{NS_DS}}}X509IssuerName").text = cred.issuer_name
    etree.SubElement(x509, f"{{{NS_DS}}}X509SerialNumber").text = str(cred.serial)
    signer = XMLSigner(method=methods.enveloped, signature_algorithm=SignatureMethod.ECDSA_SHA256,
                       digest_algorithm=DigestAlgorithm.SHA256,
                       c14n_algorithm=CanonicalizationMethod.EXCLUSIVE_XML_CANONICALIZATION_1_0)
    signed = signer.sign(root, key=cred.key, key_info=ki)
    return etree.tostring(signed, xml_declaration=True, encoding="UTF-8")


def signed_request(variant: str, *, originator: str = SUPPLIER, p: TestPKI | None = None, **kw) -> bytes:
    p = p or pki()
    return sign(unsigned_request(variant, originator=originator, **kw), p.credential(originator))


def service_for(cv: int) -> str:
    return {1: "S", 3: "S", 5: "S", 7: "S", 4: "T", 2: "D", 6: "D", 8: "D"}[cv]


class CallbackListener:
    """A real HTTP server on 127.0.0.1 that records every POSTed body (the Service User's endpoint).

    ``status`` is what it answers; ``protocol="HTTP/1.0"`` closes the connection after every answer, so a
    pipelining sender must reconnect and resend.
    """

    def __init__(self, status: int = 200, protocol: str = "HTTP/1.1") -> None:
        self.bodies: list[bytes] = []
        self.times: list[float] = []
        self._cond = threading.Condition()
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = protocol

            def do_POST(self) -> None:  # noqa: N802 - http.server naming
                n = int(self.headers.get("Content-Length", "0"))
                data = self.rfile.read(n)
                with outer._cond:
                    outer.bodies.append(data)
                    outer.times.append(time.monotonic())
                    outer._cond.notify_all()
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *a: object) -> None:
                pass

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/callback"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def wait_for(self, n: int, timeout: float = 10.0) -> list[bytes]:
        deadline = time.monotonic() + timeout
        with self._cond:
            while len(self.bodies) < n:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(left)
            return list(self.bodies)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def post(client: httpx.Client, handle, service: str, body: bytes) -> httpx.Response:  # noqa: ANN001
    return client.post(handle.path(service), content=body, headers={"Content-Type": "application/xml"})


async def _read_http(reader) -> tuple[int, bytes]:  # noqa: ANN001
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    length = 0
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            length = int(value)
    return status, await reader.readexactly(length) if length else b""


def blast(url: str, bodies: list[bytes], rate: float | None = None, connections: int = 64,
          due: list[float] | None = None) -> list[tuple[float, int, float]]:
    """Open-model sender: body i is due at ``due[i]`` (default i/rate); returns (due_s, status, latency_s).

    A raw asyncio keep-alive client (httpx's async client is too slow to offer a few hundred requests a
    second from a test), so the emulator, not the client, is what saturates.
    """
    import asyncio
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    out: list[tuple[float, int, float]] = []
    due_at = due

    async def main() -> None:
        idx = iter(range(len(bodies)))
        conns = await asyncio.gather(*(asyncio.open_connection(parts.hostname, parts.port)
                                       for _ in range(connections)))
        t0 = time.monotonic() + 0.05

        async def worker(reader, writer) -> None:  # noqa: ANN001
            try:
                for i in idx:
                    due = t0 + (due_at[i] if due_at is not None else i / rate)
                    await asyncio.sleep(max(0.0, due - time.monotonic()))
                    b = bodies[i]
                    writer.write((f"POST {parts.path} HTTP/1.1\r\nHost: {parts.netloc}\r\nContent-Type: "
                                  f"application/xml\r\nContent-Length: {len(b)}\r\n\r\n").encode() + b)
                    status, _ = await _read_http(reader)
                    out.append((due - t0, status, time.monotonic() - due))  # noqa: B023
            finally:
                writer.close()

        await asyncio.gather(*(worker(r, w) for r, w in conns))

    asyncio.run(main())
    return out
