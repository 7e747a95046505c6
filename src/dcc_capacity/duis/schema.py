"""Load the official DUIS XML schema (the user's copy; the project ships none).

The DCC's "DUIS Schema V5.1.xsd" imports "MMC Schema V5.1.xsd" by a file name
with spaces, which libxml2 will not resolve; we escape it as a URL and load
the schema with network access off. The schema is heavy to compile (about a
second) and safe to share, so it is cached per path.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from lxml import etree

from dcc_capacity.errors import InputError

__all__ = ["load_schema", "schema_errors"]


@lru_cache(maxsize=4)
def _compile(path: str) -> etree.XMLSchema:
    p = Path(path)
    try:
        src = p.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read the DUIS schema: {exc.strerror}", file=p, key="schema") from None
    src = src.replace(b'schemaLocation="MMC Schema V5.1.xsd"', b'schemaLocation="MMC%20Schema%20V5.1.xsd"')
    parser = etree.XMLParser(no_network=True, resolve_entities=False)
    try:
        doc = etree.fromstring(src, parser=parser, base_url=p.resolve().as_uri())
        return etree.XMLSchema(etree.ElementTree(doc))
    except (etree.XMLSyntaxError, etree.XMLSchemaParseError) as exc:
        raise InputError(f"not a usable XML schema ({exc})", file=p, key="schema") from None


def load_schema(path: str | Path) -> etree.XMLSchema:
    """The compiled schema at ``path`` (e.g. ``.../DUIS Schema V5.1.xsd``)."""
    return _compile(str(Path(path).resolve()))


def schema_errors(schema: etree.XMLSchema, doc: etree._Element | etree._ElementTree) -> list[str]:
    """Validation errors as ``line N: message`` strings; empty when valid."""
    if schema.validate(doc):
        return []
    return [f"line {e.line}: {e.message}" for e in schema.error_log]
