"""The wire schema: what decodes, and the code and field of every kind of bad message."""

import json

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from pilotage.core import protocol as wire
from pilotage.core.errors import (
    InvalidInputError,
    MalformedMessageError,
    MessageTooLargeError,
    PilotageError,
    UnknownTypeError,
    UnsupportedVersionError,
)

BUS = {"vehicle": "bus-12", "intersection": -29436, "group": "from--15874", "eta_s": 25.0, "class": "bus"}


def frame(message_type: str = "ping", body: object = None, **envelope: object) -> bytes:
    request = {"v": 1, "id": "r-1", "type": message_type, **envelope}
    if body is not None:
        request["body"] = body
    return json.dumps(request).encode()


def test_a_priority_request_decodes_with_its_defaults() -> None:
    request, message, body = wire.decode_request(frame("priority.request", BUS))
    assert (request.id, message.type, message.permission) == ("r-1", "priority.request", "priority")
    assert body == wire.PriorityRequest("bus-12", -29436, "from--15874", 25.0, "bus")
    assert body.lateness_s == 0.0
    assert body.eta_window_s is None


def test_the_body_may_be_left_out_when_the_type_has_no_fields() -> None:
    _, message, body = wire.decode_request(frame("ping"))
    assert (message.type, body) == ("ping", wire.Empty())


def test_sumo_intersection_ids_are_strings() -> None:
    _, _, body = wire.decode_request(frame("signals.state", {"intersection": "cluster_12_34"}))
    assert isinstance(body, wire.SignalsStateRequest)
    assert body.intersection == "cluster_12_34"


@pytest.mark.parametrize(("raw", "error", "field"), [
    (b"\xff\xfe garbage", MalformedMessageError, None),
    (b'{"v": 1, "id": "r-1", "type": "ping"', MalformedMessageError, None),
    (b"[1, 2]", InvalidInputError, None),
    (b"0\x00", MalformedMessageError, None),
    (frame(v="1"), InvalidInputError, "v"),
    (frame(v=2), UnsupportedVersionError, "v"),
    (frame(v=2, extra="a v2 envelope"), UnsupportedVersionError, "v"),
    (frame(id=""), InvalidInputError, "id"),
    (frame(id="x" * 65), InvalidInputError, "id"),
    (frame(extra=1), InvalidInputError, "extra"),
    (frame("corridor.teleport"), UnknownTypeError, "type"),
    (frame("priority.request", {**BUS, "eta_s": "soon"}), InvalidInputError, "body.eta_s"),
    (frame("priority.request", {**BUS, "eta_s": -1}), InvalidInputError, "body.eta_s"),
    (frame("priority.request", {**BUS, "eta_s": 9e99}).replace(b"9e+99", b"1e400"), InvalidInputError, "body.eta_s"),
    (frame("priority.request", {**BUS, "class": "car"}), InvalidInputError, "body.class"),
    (frame("priority.request", {**BUS, "lateness": 60}), InvalidInputError, "body.lateness"),
    (frame("priority.request", {**BUS, "a`b` - at `$.x`": 60}), InvalidInputError, "body.a`b` - at `$.x`"),
    (frame("priority.request", {k: v for k, v in BUS.items() if k != "group"}), InvalidInputError, "body.group"),
    (frame("priority.request", {**BUS, "intersection": 1.5}), InvalidInputError, "body.intersection"),
    (frame("priority.request", {**BUS, "intersection": True}), InvalidInputError, "body.intersection"),
    (frame("priority.request", {**BUS, "intersection": 10**400}), InvalidInputError, "body.intersection"),
    (frame("corridor.open", {"incident": "f", "origin": 1, "destination": -(2**63) - 1}), InvalidInputError,
     "body.destination"),
    (frame("signals.state", []), InvalidInputError, "body"),
])
def test_bad_messages_raise_their_code_and_name_the_field(raw: bytes, error: type[PilotageError],
                                                          field: str | None) -> None:
    with pytest.raises(error) as caught:
        wire.decode_request(raw)
    assert type(caught.value) is error
    assert caught.value.field == field
    assert "expected" in str(caught.value).lower()


def test_a_message_over_the_limit_is_not_read() -> None:
    with pytest.raises(MessageTooLargeError, match="at most 100 bytes"):
        wire.decode_request(frame("ping", pad="x" * 200), max_bytes=100)
    assert wire.request_id(frame("ping", pad="x" * 200), max_bytes=100) is None


def test_a_document_nested_too_deep_is_refused_before_it_is_parsed() -> None:
    """Deep enough to exhaust a recursive parser (20,000 levels); the limit counts arrays and objects
    alike, from the root, and brackets inside strings do not nest."""
    for depth in (wire.MAX_NESTING_DEPTH, 20_000):
        deep = frame("ping", body={"x": 1}).replace(b"1}", b"[" * depth + b"]" * depth + b"}")
        with pytest.raises(MalformedMessageError, match=f"at most {wire.MAX_NESTING_DEPTH} levels deep"):
            wire.decode_request(deep)
        assert wire.request_id(deep) is None
        with pytest.raises(MalformedMessageError, match="levels deep"):
            wire.decode_job(b'{"stops": ' + b"[" * depth + b"]" * depth + b"}")
    allowed = frame("ping", body={"x": 1}).replace(b"1}", b"[" * (wire.MAX_NESTING_DEPTH - 2)
                                                   + b"]" * (wire.MAX_NESTING_DEPTH - 2) + b"}")
    with pytest.raises(InvalidInputError, match="unknown field"):
        wire.decode_request(allowed)
    with pytest.raises(InvalidInputError, match="unknown field"):
        wire.decode_request(frame("ping", body={"x": '[{"\\"' * 5000}))


def test_the_id_of_a_bad_request_is_found_when_it_is_valid() -> None:
    assert wire.request_id(frame("nope")) == "r-1"
    assert wire.request_id(frame(id=7)) is None
    assert wire.request_id(b"not json") is None
    assert wire.request_id(b'"a string"') is None


def test_replies_follow_the_envelope() -> None:
    ok = json.loads(wire.encode_reply("r-1", wire.Ping(time=12.5)))
    assert ok == {"v": 1, "id": "r-1", "ok": True, "body": {"time": 12.5}}
    error = json.loads(wire.encode_error(None, UnknownTypeError("expected ...", field="type")))
    assert error == {"v": 1, "id": None, "ok": False,
                     "error": {"code": "UNKNOWN_TYPE", "message": "expected ...", "field": "type"}}


def test_every_message_type_names_a_declared_permission() -> None:
    assert {message.permission for message in wire.MESSAGES.values()} <= set(wire.PERMISSIONS)


def test_every_schema_has_a_json_schema_for_the_documentation() -> None:
    types = [t for message in wire.MESSAGES.values() for t in (message.body, message.reply)]
    _, components = msgspec.json.schema_components([*types, *wire.EVENTS.values()])
    assert {"PriorityRequest", "PriorityDecision", "SignalsState", "PriorityEvent"} <= set(components)


@given(st.binary(max_size=300))
def test_any_bytes_decode_or_raise_an_error_of_the_protocol(raw: bytes) -> None:
    try:
        msgspec.json.decode(raw)
        is_json = True
    except msgspec.DecodeError:
        is_json = False
    try:
        wire.decode_request(raw)
    except PilotageError as exc:
        assert exc.code in {"BAD_JSON", "BAD_SCHEMA", "UNSUPPORTED_VERSION", "UNKNOWN_TYPE", "TOO_LARGE"}
        assert (exc.code == "BAD_JSON") is not is_json


scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text()
json_values = st.recursive(scalars,
                           lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
                           max_leaves=8)


@given(st.sampled_from(sorted(wire.MESSAGES)), st.dictionaries(st.sampled_from(
    ["vehicle", "intersection", "group", "eta_s", "class", "lateness_s", "occupancy", "eta_window_s", "horizon_s",
     "unknown"]), json_values, max_size=6))
def test_any_body_decodes_or_names_the_field_at_fault(message_type: str, body: dict) -> None:
    try:
        wire.decode_request(frame(message_type, body))
    except InvalidInputError as exc:
        assert exc.code == "BAD_SCHEMA"
        assert exc.field is not None and exc.field.startswith("body")


def test_an_unknown_field_is_told_with_the_fields_of_its_own_object_and_the_nearest() -> None:
    job = {"name": "x", "depots": [{"id": "d", "location": {"lon": 6.1, "lat": 49.6}}],
           "vehicles": [{"id": "v", "depot": "d", "capacity": 1, "shift": ["08:00", "16:00"]}],
           "stops": [{"id": "s", "location": {"lon": 6.1, "lat": 49.6}, "time_window": ["09:00", "10:00"]}]}
    frame = json.dumps({"v": 1, "id": "r", "type": "route.submit", "body": job}).encode()
    with pytest.raises(InvalidInputError) as caught:
        wire.decode_request(frame)
    assert caught.value.field == "body.stops[0].time_window"
    assert "expected only the fields of a job stop, id, location, demand" in str(caught.value)
    assert "did you mean 'windows'?" in str(caught.value)
    assert "depots" not in str(caught.value)
