"""Property and fuzz tests (hypothesis): the profile loader and DUIS response parsing never fail any other way.

Why: both read what others write - a test manager's edited YAML, a SUT's
bytes under load. The contract is narrow: a profile gives a plan or an
:class:`InputError` naming the file (and the key or line); response bytes
give a :class:`ParsedResponse` or a :class:`ResponseParseError`, and the ack
classifier always an (outcome, reason) pair. Anything else would be a
traceback for a user or a crashed Locust greenlet mid-run. ``max_examples``
is bounded so the module takes seconds.
"""

from __future__ import annotations

import copy
import math
import tempfile
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from dcc_capacity.duis.responses import (
    ParsedResponse,
    ResponseParseError,
    build_dcc_alert,
    build_response,
    parse_response,
    payload_gbcs,
    payload_pre_command,
)
from dcc_capacity.errors import InputError
from dcc_capacity.load.records import OUTCOMES
from dcc_capacity.load.users.base import classify_duis_ack
from dcc_capacity.model.volume import SLOTS, SPS, VolumePlan, load_plan

ROOT = Path(__file__).resolve().parents[1]
FOC: dict[str, Any] = yaml.safe_load((ROOT / "volume_profiles" / "foc.yaml").read_text())
FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _paths(node: Any, prefix: tuple = ()) -> list[tuple]:
    out = [prefix] if prefix else []
    if isinstance(node, dict):
        for k, v in node.items():
            if k != "sources":
                out += _paths(v, (*prefix, k))
    return out


PATHS = _paths(FOC)
VALUES = st.one_of(
    st.none(), st.booleans(), st.integers(-10**15, 10**15),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=8),
    st.lists(st.integers(-5, 5), max_size=3), st.dictionaries(st.text(max_size=4), st.integers(), max_size=2),
)
MUTATION = st.tuples(st.sampled_from(["set", "delete", "add"]), st.sampled_from(PATHS), VALUES, st.text(max_size=6))


def _mutate(doc: dict, op: str, path: tuple, value: Any, new_key: str) -> None:
    *parents, last = path
    node = doc
    for k in parents:
        if not isinstance(node, dict) or k not in node:
            return
        node = node[k]
    if not isinstance(node, dict):
        return
    if op == "set":
        node[last] = value
    elif op == "delete":
        node.pop(last, None)
    else:
        node[new_key or "x"] = value


def _load(text: str) -> tuple[VolumePlan | None, InputError | None, Path]:
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False, encoding="utf-8") as fh:
        fh.write(text)
    path = Path(fh.name)
    try:
        return load_plan(path), None, path
    except InputError as exc:
        return None, exc, path
    finally:
        path.unlink()


def _check_plan_or_named_error(plan: VolumePlan | None, err: InputError | None, path: Path) -> None:
    if err is not None:
        assert err.file == str(path), str(err)
        assert err.key or err.line, str(err)  # which field (or line): never a bare "invalid"
        assert "\n" not in str(err) and "Traceback" not in str(err)
        return
    assert plan is not None
    for sp in SPS:  # a plan that loads can be used: the rates `run` needs are finite numbers
        for slot in SLOTS:
            assert all(math.isfinite(v) and v >= 0 for v in plan.row_rates(sp, slot).values()), (sp, slot)


@FAST
@given(st.lists(MUTATION, min_size=1, max_size=4))
@example([("add", ("schema_version",), None, "]")])  # an unknown key "]" (once a ValueError, not an InputError)
def test_a_mutated_profile_gives_a_plan_or_an_error_naming_file_and_key(mutations):
    doc = copy.deepcopy(FOC)
    for m in mutations:
        _mutate(doc, *m)
    text = yaml.safe_dump(doc, sort_keys=False, allow_unicode=True)
    _check_plan_or_named_error(*_load(text))


@settings(max_examples=60, deadline=None)
@given(st.one_of(st.text(max_size=200), st.recursive(
    st.one_of(st.none(), st.integers(), st.floats(), st.text(max_size=5)),
    lambda kids: st.lists(kids, max_size=3) | st.dictionaries(st.text(max_size=5), kids, max_size=3), max_leaves=12)))
def test_arbitrary_yaml_gives_an_error_naming_the_file(data):
    text = data if isinstance(data, str) else yaml.safe_dump(data)
    plan, err, path = _load(text)
    assert plan is None and err is not None  # nothing arbitrary is a whole profile
    assert err.file == str(path) and "\n" not in str(err), str(err)


# --- response parsing ------------------------------------------------------------------------
RID = "90-B3-D5-1F-30-01-00-00:00-DB-12-34-56-78-90-A0:1000"
VALID = [
    build_response(signer=None, response_code="I0", srv="4.6.1", srv_variant="4.6.1", request_id=RID,
                   payload=payload_gbcs(b"\xde\x01\x02")),
    build_response(signer=None, response_code="I0", srv="6.11", srv_variant="6.11", request_id=RID,
                   payload=payload_pre_command(b"\x01" * 20)),
    build_response(signer=None, response_code="I99", srv="4.6.1", srv_variant="4.6.1", request_id=RID),
    build_response(signer=None, response_code=None, srv="4.6.1", srv_variant="4.6.1", request_id=RID),
    build_dcc_alert(signer=None, response_id=RID, dcc_alert_code="AD1", alert="<sr:X/>"),
]


def _parsed_or_parse_error(data: bytes) -> None:
    try:
        parsed = parse_response(data)
    except ResponseParseError as exc:
        assert "\n" not in str(exc) or "not well-formed" in str(exc)
        return
    assert isinstance(parsed, ParsedResponse)
    parsed.correlation_id  # noqa: B018 - the properties a user reads must not raise either
    parsed.success  # noqa: B018


def _classified(data: bytes, status: int) -> None:
    outcome, reason = classify_duis_ack(status, data)
    assert outcome in OUTCOMES and isinstance(reason, str)
    assert (outcome == "ok") == (reason == "")


def test_the_valid_samples_parse():
    assert [parse_response(v).response_code for v in VALID] == ["I0", "I0", "I99", None, "I0"]
    assert parse_response(VALID[1]).payload_kind == "PreCommand"


MUTATED = st.tuples(st.sampled_from(VALID), st.lists(st.tuples(
    st.sampled_from(["flip", "cut", "insert", "delete"]), st.integers(0, 10**6), st.binary(min_size=1, max_size=8)),
    min_size=1, max_size=5))


def _apply(data: bytes, edits: list[tuple[str, int, bytes]]) -> bytes:
    b = bytearray(data)
    for op, at, blob in edits:
        i = at % (len(b) + 1)
        if op == "flip" and b:
            b[i % len(b)] ^= blob[0] or 1
        elif op == "cut":
            del b[i:]
        elif op == "insert":
            b[i:i] = blob
        elif op == "delete":
            del b[i:i + len(blob)]
    return bytes(b)


@FAST
@given(MUTATED, st.sampled_from([0, 200, 202, 400, 429, 500, 503]))
def test_mutated_responses_parse_or_raise_response_parse_error_only(sample, status):
    data = _apply(*sample)
    _parsed_or_parse_error(data)
    _classified(data, status)


@FAST
@given(st.binary(max_size=300), st.integers(0, 599))
def test_arbitrary_bytes_parse_or_raise_response_parse_error_only(data, status):
    _parsed_or_parse_error(data)
    _classified(data, status)


TAGS = st.sampled_from(["sr:Response", "sr:Header", "sr:Body", "sr:ResponseMessage", "sr:ResponseCode",
                        "sr:RequestID", "sr:GBCSPayload", "sr:PreCommand", "sr:DCCAlertMessage", "x"])
NS = 'xmlns:sr="http://www.dccinterface.co.uk/ServiceUserGateway"'


@st.composite
def _xmlish(draw: st.DrawFn) -> bytes:
    """Well-formed XML of DUIS element names in random shapes: gets past the XML parser into the DUIS checks."""
    def element(depth: int) -> str:
        tag = draw(TAGS)
        kids = "" if depth > 3 else "".join(element(depth + 1) for _ in range(draw(st.integers(0, 3))))
        text = draw(st.sampled_from(["", "I0", "E42", "AAEC", "not base64!", RID]))
        return f"<{tag}>{text}{kids}</{tag}>"
    tag = draw(TAGS)
    return f"<{tag} {NS}>{element(1)}{element(1)}</{tag}>".encode()


@FAST
@given(_xmlish(), st.sampled_from([200, 429, 503]))
def test_xml_of_duis_names_in_any_shape_parses_or_raises_response_parse_error_only(data, status):
    _parsed_or_parse_error(data)
    _classified(data, status)
