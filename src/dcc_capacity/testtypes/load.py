"""The load test: the slot's peak (or its average with ``--normal``, or ``--rate``) held for ``--duration``."""

from __future__ import annotations

from typing import Literal

from dcc_capacity.spec.model import SpecBase
from dcc_capacity.testtypes.base import TestType

__all__ = ["Load", "LoadSpec"]


class LoadSpec(SpecBase):
    """A steady load: the reference rates for the whole run."""

    test: Literal["load"] = "load"


class Load(TestType):
    name, spec, test_id, title = "load", LoadSpec, "LOAD", "Load"
