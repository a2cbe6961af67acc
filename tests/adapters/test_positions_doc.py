"""The integrator's walk-through of docs/positions.md, replayed: each position sent at its own time
on the server's clock gets the reply shown, and publishes the events shown."""

import json
import re
from collections.abc import Callable
from pathlib import Path

import msgspec

from pilotage.adapters.service import Service
from pilotage.core import protocol as wire
from tests.clock import ManualClock

POSITIONS_DOC = Path(__file__).resolve().parents[2] / "docs" / "positions.md"


def test_the_walk_through_comes_back_as_shown(make_service: Callable[..., Service], clock: ManualClock) -> None:
    blocks = re.findall(r"```json (request|reply|event \w+)\n(.*?)```", POSITIONS_DOC.read_text(), re.DOTALL)
    assert blocks[0][0] == "request"
    published: list[tuple[str, dict]] = []
    service = make_service(publish=lambda topic, body: published.append((topic, json.loads(body))))
    for kind, text in blocks:
        shown = json.loads(text)
        if kind == "request":
            published.clear()
            clock.now_s = max(clock.now_s, shown["body"]["time"])
            (answered,) = service.handle([text.encode()])
            service.publish_events()
        elif kind == "reply":
            assert json.loads(answered) == shown
        else:
            topic = kind.split()[1]
            assert (topic, shown) in published
            msgspec.convert(shown, wire.EVENTS[topic])
