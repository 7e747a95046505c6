import pytest

from dcc_capacity.duis.schema import load_schema
from dcc_capacity.errors import InputError


@pytest.mark.peer
def test_official_schema_compiles_and_rejects_junk(duis_xsd):
    from lxml import etree

    doc = etree.fromstring(b'<sr:Request xmlns:sr="http://www.dccinterface.co.uk/ServiceUserGateway"/>')
    assert not duis_xsd.validate(doc)


def test_missing_schema_names_the_file(tmp_path):
    with pytest.raises(InputError, match="nope.xsd: schema: cannot read"):
        load_schema(tmp_path / "nope.xsd")
