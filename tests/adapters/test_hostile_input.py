"""A hostile client against `pilotage serve` in another process: JSON trees deep and wide, envelopes
with any body, raw bytes, frames past the size limit. Every frame gets exactly one reply (or, past
the transport's cap, its connection is cut), and the server answers the next client as if nothing
happened; at the end the process still runs."""

import contextlib
import json
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import zmq
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from pilotage.core import protocol as wire

from .conftest import Served

CODES = {"BAD_JSON", "BAD_SCHEMA", "UNSUPPORTED_VERSION", "UNKNOWN_TYPE", "UNKNOWN_ENTITY", "TOO_LARGE", "CONFLICT",
         "FORBIDDEN", "NO_ROUTE", "OFF_NETWORK", "UNSAFE", "NO_SOLUTION", "OVERLOADED", "INTERNAL"}
CASES = 400

scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30)
# Trees a few levels deep and a few dozen wide, as a fuzzer's grammar makes them.
trees = st.recursive(scalars, lambda children: st.lists(children, max_size=30)
                     | st.dictionaries(st.text(max_size=10), children, max_size=30), max_leaves=200)


def nested(depth: int, kind: str) -> bytes:
    """A document nesting arrays or objects ``depth`` levels deep."""
    return b"[" * depth + b"]" * depth if kind == "array" else b'{"a":' * depth + b"1" + b"}" * depth


def envelope(message_type: str, body: object) -> bytes:
    return json.dumps({"v": 1, "id": "hostile", "type": message_type, "body": body}).encode()


frames = st.one_of(
    trees.map(lambda tree: json.dumps(tree).encode()),
    st.tuples(st.sampled_from(sorted(wire.MESSAGES)), trees).map(lambda case: envelope(*case)),
    st.tuples(st.integers(33, 20_000), st.sampled_from(["array", "object"])).map(lambda case: nested(*case)),
    st.tuples(st.sampled_from(sorted(wire.MESSAGES)), st.integers(33, 5_000)).map(
        lambda case: envelope(case[0], None).replace(b"null", nested(case[1], "array"))),
    # Wide: thousands of keys, or one long string, up to and past the size limit.
    st.integers(1, 8_000).map(lambda n: json.dumps({f"k{i}": i for i in range(n)}).encode()),
    st.integers(1, 2 * wire.MAX_MESSAGE_BYTES).map(lambda n: envelope("ping", {"pad": "x" * n})),
    st.binary(max_size=300),
    st.just(b""),
)


def test_no_frame_stops_the_server_and_each_gets_one_reply(
        serving: Callable[..., contextlib.AbstractContextManager[Served]], tmp_path: Path) -> None:
    seen: Counter[str] = Counter()
    with serving(tmp_path / "state", tmp_path / "serve.log") as served:
        context = zmq.Context()
        try:
            @settings(max_examples=CASES, deadline=None, database=None, phases=[Phase.generate],
                      suppress_health_check=list(HealthCheck))
            @given(frame=frames)
            def one_frame(frame: bytes) -> None:
                socket = context.socket(zmq.DEALER)
                socket.setsockopt(zmq.LINGER, 0)
                socket.connect(served.endpoint)
                try:
                    socket.send(frame)
                    socket.send(envelope("ping", {}).replace(b"hostile", b"after"))
                    assert socket.poll(30_000), f"no reply to a frame of {len(frame)} bytes"
                    reply = json.loads(socket.recv_multipart()[-1])
                    code = "OK" if reply["ok"] else reply["error"]["code"]
                    assert code in CODES | {"OK"}, reply
                    seen[code] += 1
                    # The next reply is the ping's: one reply came for the frame, and the server goes on.
                    assert socket.poll(30_000), "no reply to the ping after the frame"
                    after = json.loads(socket.recv_multipart()[-1])
                    assert (after["id"], after["ok"]) == ("after", True)
                finally:
                    socket.close()

            one_frame()
        finally:
            context.term()
        assert served.process.poll() is None
    assert sum(seen.values()) == CASES
    assert {"BAD_JSON", "BAD_SCHEMA", "TOO_LARGE"} <= set(seen), seen
