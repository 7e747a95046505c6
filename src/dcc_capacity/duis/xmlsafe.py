"""Hardened XML parsing for untrusted DUIS bytes: no DTDs, no entities, no network, libxml2's size limits on.

Every DUIS message that reaches the suite (requests at the emulator, responses
and alerts at the load side) comes from outside; this parser refuses DTDs
outright (DUIS never has one), never resolves entities and never touches the
network, so XXE and "billion laughs" bodies fail fast instead of expanding.
"""

from __future__ import annotations

import threading

from lxml import etree

from dcc_capacity.errors import ProtocolError

__all__ = ["XmlError", "parse_hardened"]


class XmlError(ProtocolError):
    """The bytes are not a well-formed, DTD-free XML document."""


_local = threading.local()


def _parser() -> etree.XMLParser:
    # lxml parsers must not be shared between threads; one per thread is cheap.
    p = getattr(_local, "parser", None)
    if p is None:
        p = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, dtd_validation=False,
                            huge_tree=False, collect_ids=False, remove_comments=False)
        _local.parser = p
    return p


def parse_hardened(data: bytes) -> etree._Element:
    """The root element of ``data``; :class:`XmlError` for anything not plain, DTD-free XML."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise XmlError("expected bytes")
    data = bytes(data)
    if not data.strip():
        raise XmlError("empty document")
    # DUIS has no DTDs: refuse them before libxml2 sees internal subsets or entity declarations.
    if b"<!DOCTYPE" in data or b"<!ENTITY" in data:
        raise XmlError("DTDs and entity declarations are not allowed")
    try:
        root = etree.fromstring(data, parser=_parser())
    except etree.XMLSyntaxError as exc:
        raise XmlError(f"not well-formed XML: {exc}") from None
    except ValueError as exc:  # e.g. unicode strings with an encoding declaration
        raise XmlError(f"not well-formed XML: {exc}") from None
    if root is None:
        raise XmlError("no root element")
    if root.getroottree().docinfo.doctype:
        raise XmlError("DTDs are not allowed")
    return root
