"""Pytest fixtures for the DUIS tests, loaded with ``pytest_plugins = ("_duis_fixtures",)``.

Kept apart from ``_duis_helpers`` (plain functions the tests import) so pytest can register this
module as a plugin before anything imports it.
"""

from __future__ import annotations

import pytest

from dcc_capacity.duis.factory import RequestFactory
from dcc_capacity.duis.pki import TestPKI
from dcc_capacity.duis.requestid import RequestIdAllocator
from dcc_capacity.model.fleet import Fleet


@pytest.fixture(scope="session")
def test_pki(tmp_path_factory) -> TestPKI:
    return TestPKI.load_or_create(tmp_path_factory.mktemp("pki") / "test-pki")


@pytest.fixture(scope="session")
def fleet() -> Fleet:
    return Fleet(seed=42, size=2_000, prepay_share=0.5, dual_fuel_share=0.6)


@pytest.fixture(scope="session")
def factory(test_pki, fleet) -> RequestFactory:
    return RequestFactory.from_pki(test_pki, fleet, allocator=RequestIdAllocator(slot=7))
