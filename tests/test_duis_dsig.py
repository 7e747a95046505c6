"""The one home of the XML-DSig bytes and the ECDSA DER <-> raw conversions (duis/dsig.py)."""

from __future__ import annotations

import re

from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature, encode_dss_signature

from dcc_capacity.duis.dsig import (
    ECDSA_SHA256,
    SI_CLOSE,
    SIGNED_INFO_OPEN_C14N,
    SIGNED_INFO_PATTERN,
    der_to_raw,
    raw_to_der,
    signed_info_c14n,
)


def test_der_raw_round_trip_matches_the_library_including_short_integers() -> None:
    """Byte slicing gives what decode/encode_dss_signature give, also for r or s with leading zero bytes."""
    key = ec.generate_private_key(ec.SECP256R1())
    for i in range(300):
        der = key.sign(i.to_bytes(4, "big"), ECDSA_SHA256)
        r, s = decode_dss_signature(der)
        raw = der_to_raw(der)
        assert raw == r.to_bytes(32, "big") + s.to_bytes(32, "big")
        assert raw_to_der(raw) == encode_dss_signature(r, s) == der
    for r, s in ((1, 2), (2**255, 1), (0x7F, 2**256 - 1), (2**248 - 1, 0x80)):  # short and high-bit integers
        der = encode_dss_signature(r, s)
        raw = der_to_raw(der)
        assert raw == r.to_bytes(32, "big") + s.to_bytes(32, "big")
        assert raw_to_der(raw) == der


def test_the_signed_info_we_sign_is_the_one_the_verifier_fast_path_recognises() -> None:
    digest = "q" * 43 + "="
    signed = signed_info_c14n(digest).decode()
    open_tag, close_tag = SIGNED_INFO_OPEN_C14N, SI_CLOSE
    assert signed.startswith(open_tag) and signed.endswith(close_tag)
    m = re.fullmatch(SIGNED_INFO_PATTERN, signed[len(open_tag):-len(close_tag)])
    assert m is not None and m["dv"] == digest
