"""The registry of test types: one entry per plugin module, and the run spec as their discriminated union.

Adding a test type is one module here (its spec class and :class:`~dcc_capacity.testtypes.base.TestType`), one
report template (reports/) and one catalogue entry (volume_profiles/nfr-default.yaml); the CLI's ``--test``
choices, the run configuration's ``run.test``, the Locust option ``--dcc-test`` and the report follow from
:data:`TYPES` (tests/test_spec.py checks each is reachable).
"""

from __future__ import annotations

from typing import Annotated, Any, Union

from pydantic import Field, TypeAdapter

from dcc_capacity.errors import InputError
from dcc_capacity.spec.model import SpecBase
from dcc_capacity.testtypes.base import TestType
from dcc_capacity.testtypes.catchup import Catchup
from dcc_capacity.testtypes.load import Load
from dcc_capacity.testtypes.negative.testtype import Negative
from dcc_capacity.testtypes.noisy_neighbour import NoisyNeighbour
from dcc_capacity.testtypes.scale import Scale
from dcc_capacity.testtypes.soak import Soak
from dcc_capacity.testtypes.spike import Spike
from dcc_capacity.testtypes.stress import Stress

__all__ = ["NAMES", "RunSpec", "TYPES", "get", "is_capacity_test", "spec_class", "validate_spec"]

TYPES: dict[str, TestType] = {t.name: t for t in (Load(), Stress(), Soak(), Spike(), Catchup(), NoisyNeighbour(),
                                                  Negative(), Scale())}
"""``--test`` value -> its plugin, in the order the help and the catalogue list them."""
NAMES: tuple[str, ...] = tuple(TYPES)

RunSpec = Annotated[Union[tuple(t.spec for t in TYPES.values())], Field(discriminator="test")]  # type: ignore[valid-type]  # noqa: UP007, E501
"""The run spec: one of the types' spec classes, chosen by ``test``."""
_ADAPTER: TypeAdapter[Any] = TypeAdapter(RunSpec)  # type: ignore[arg-type]


def get(test: str) -> TestType:
    """The plugin of ``test``; InputError naming ``--test`` for an unknown one."""
    try:
        return TYPES[test]
    except KeyError:
        raise InputError(f"unknown test {test!r} (one of {', '.join(NAMES)})", key="--test") from None


def is_capacity_test(test: str) -> bool:
    """A run of ``test`` is held to Table A7 (a catalogue type no plugin has, such as ``baseline``, is)."""
    t = TYPES.get(test)
    return t is None or t.not_a_capacity_test is None


def spec_class(test: str) -> type[SpecBase]:
    return get(test).spec


def validate_spec(data: dict[str, Any], where: str | None = None) -> SpecBase:
    """A spec from plain values (a spec.json, the flags, Locust's options); InputError for a bad one.

    Values the user typed wrongly are InputErrors from the fields' own checks (naming the flag); what pydantic
    itself refuses (a wrong type in a hand-edited spec.json) is one line naming the field.
    """
    from pydantic import ValidationError

    data = {"test": "load", **data}
    get(str(data["test"]))
    try:
        return _ADAPTER.validate_python(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = ".".join(str(p) for p in err["loc"][1:] or err["loc"])
        raise InputError(err["msg"], file=where, key=loc) from None
