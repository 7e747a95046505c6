"""The canonical fast path of verify_enveloped: raw-byte digest for canonical documents, lxml c14n otherwise.

The fast path must give the same verdict as the full verifier on every
input: it may only *accept* when the raw bytes are provably what the signer
digested, and everything else must fall through to canonicalisation.
"""

from __future__ import annotations

import pytest

from _emulator_helpers import SUPPLIER, pki
from dcc_capacity.duis import verify as V
from dcc_capacity.duis.responses import ResponseSigner, build_response
from dcc_capacity.duis.verify import SignatureError, TrustStore, UnknownSignerError, parse_hardened, verify_enveloped

RID = f"{SUPPLIER}:00-DB-12-34-56-78-90-A0:1"


@pytest.fixture(scope="module")
def trust():
    return TrustStore.from_pki(pki())


@pytest.fixture(scope="module")
def doc() -> bytes:
    signer = ResponseSigner.from_credential(pki().dcc)
    return build_response(signer=signer, response_code="I0", srv="4.1", srv_variant="4.1.1", request_id=RID)


@pytest.fixture
def c14n_calls(monkeypatch):
    """Counts lxml canonicalisations: zero means the fast path decided."""
    calls = []
    real = V.etree.tostring

    def counting(node, *a, **kw):  # noqa: ANN001, ANN202
        if kw.get("method") == "c14n":
            calls.append(1)
        return real(node, *a, **kw)

    monkeypatch.setattr(V.etree, "tostring", counting)
    return calls


def _verify(data: bytes, trust: TrustStore):  # noqa: ANN202 - as the gateway calls it
    return verify_enveloped(parse_hardened(data), trust, raw=data)


def test_canonical_document_verifies_without_canonicalising(doc, trust, c14n_calls):
    assert _verify(doc, trust).signer.eui == "90-B3-D5-1F-30-00-00-02"
    assert c14n_calls == []


@pytest.mark.parametrize("edit", [
    lambda d: d.replace(b">I0<", b">I99<", 1),                                    # content changed
    lambda d: d.replace(b"<sr:Header>", b"<sr:Header> ", 1),                      # whitespace added
    lambda d: d.replace(b'schemaVersion="5.1"', b'schemaVersion="5.2"', 1),       # attribute changed
])
def test_changed_canonical_document_is_refused_after_the_full_check(doc, trust, c14n_calls, edit):
    with pytest.raises(SignatureError, match="digest"):
        _verify(edit(doc), trust)
    assert c14n_calls  # the fast path did not decide: the full verifier did, and refused


def test_bad_signature_value_is_refused_on_the_fast_path(doc, trust):
    i = doc.index(b"<ds:SignatureValue>") + len(b"<ds:SignatureValue>")
    flipped = doc[:i] + (b"B" if doc[i:i + 1] == b"A" else b"A") + doc[i + 1:]
    with pytest.raises(SignatureError, match="does not verify"):
        _verify(flipped, trust)
    with pytest.raises(UnknownSignerError):
        _verify(doc, TrustStore())


@pytest.mark.parametrize("edit", [
    lambda d: b"\xef\xbb\xbf" + d,                                                # BOM before the declaration
    lambda d: d.replace(b"?>\n", b"?>\n<!-- note -->", 1),                        # comment before the root
    lambda d: d.replace(b"</sr:Header>", b"<!-- c --></sr:Header>", 1),           # comment (c14n drops it)
    lambda d: d.replace(b"<sr:ResponseCode>", b"<sr:ResponseCode >", 1),          # non-canonical tag spacing
    lambda d: d.replace(b"</sr:Response>", b"</sr:Response >", 1),                # non-canonical close tag
    lambda d: d.replace(b"?>\n", b"?>\n\n\n", 1) + b"\n\n",                        # whitespace outside the root
])
def test_equivalent_non_canonical_forms_still_verify(doc, trust, edit):
    assert _verify(edit(doc), trust).signer.eui == "90-B3-D5-1F-30-00-00-02"


def test_declared_non_utf8_encoding_never_takes_the_fast_path(doc, trust, c14n_calls):
    latin = doc.replace(b'encoding="UTF-8"', b'encoding="ISO-8859-1"', 1)
    _verify(latin, trust)  # ASCII-only content: same meaning, but only the full check may say so
    assert c14n_calls
