"""Property: whatever text a template field carries, the rendered request is canonical and its signature verifies.

The signer hashes the rendered bytes instead of canonicalising a parsed tree; that is only right if
escaping in the templates matches canonical XML exactly, for any character XML allows.
"""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import etree

from _duis_helpers import signxml_verify, strip_signature

pytest_plugins = ("_duis_fixtures",)

# XML 1.0 Char, minus the surrogates; includes TAB, LF, CR, markup characters, quotes and non-ASCII.
xml_text = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="".join(
        chr(c) for c in range(0x20) if c not in (0x9, 0xA, 0xD)) + "\ufffe\uffff"),
    min_size=1, max_size=40)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(message=xml_text)
def test_any_text_renders_canonically_and_verifies(factory, message):
    req = factory.build("3.1", 5, extra={"message": message})
    doc = etree.fromstring(req.body)
    assert doc.findtext(".//{*}SupplierMessage") == message
    unsigned = etree.fromstring(req.body)
    unsigned.remove(unsigned[-1])
    assert etree.tostring(unsigned, method="c14n", exclusive=True) == strip_signature(req.body)
    signxml_verify(req.body, factory.signers[req.originator].credential.cert_pem())
