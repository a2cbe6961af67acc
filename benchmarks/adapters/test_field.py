"""A field adapter's turn for the embedded city's 200 signalised intersections, through the service
in this process, against ``signals.state`` of every intersection in the same run (the same plans
read out, without the field's clock, report and takeover).

``field turn, commanded`` is the turn of every step while the engine answers: the clock moves one
second, every light runs the engine's commands, nothing is shown. ``field turn, takeover`` is the
turn after the engine restarted (its clock already on the field's): every light shows its stages,
the engine compares them with its own plans and takes over where they differ (one light in ten
here), then answers. Both include
encoding the request and decoding the reply on the field's side.
"""

from __future__ import annotations

import itertools

import msgspec
import numpy as np

from pilotage.adapters.field import FieldSignals
from pilotage.adapters.service import FieldClock, Service
from pilotage.core import RoadNetwork
from pilotage.core.default_plans import default_plans
from pilotage.core.signals import SignalPlans
from pilotage.signal_priority import PriorityEngine

GROUP = "field adapter turn, embedded city"
START_S = 3600.0


def frame(message_type: str, body: dict[str, object]) -> bytes:
    return msgspec.json.encode({"v": 1, "id": "b", "type": message_type, "body": body})


def field_service(city: RoadNetwork, plans: SignalPlans) -> Service:
    clock = FieldClock()
    return Service(city, PriorityEngine(plans, clock), field_clock=clock)


def test_signals_state_of_every_intersection(benchmark, city: RoadNetwork) -> None:
    benchmark.group = GROUP
    benchmark.extra_info["reference"] = True
    plans = SignalPlans(default_plans(city))
    service = Service(city, PriorityEngine(plans, lambda: START_S))
    request = frame("signals.state", {"horizon_s": 30.0})
    benchmark(lambda: msgspec.json.decode(service.handle([request])[0]))


def test_field_turn_commanded(benchmark, city: RoadNetwork) -> None:
    benchmark.group = GROUP
    benchmark.name = "field turn, commanded (1 s of clock)"
    plans = SignalPlans(default_plans(city))
    service = field_service(city, plans)
    seconds = itertools.count(START_S)
    now = [next(seconds)]
    field = FieldSignals(plans, clock=lambda: now[0])

    def turn() -> None:
        now[0] = next(seconds)
        replies = [msgspec.json.decode(service.handle([frame("signals.command", body)])[0])["body"]
                   for body in field.requests()]
        field.command(replies)
        field.green_groups()

    turn()
    assert field.commanded.all()
    benchmark(turn)


def test_field_turn_takeover(benchmark, city: RoadNetwork) -> None:
    benchmark.group = GROUP
    benchmark.name = "field turn, takeover (every light shown, one in ten differs)"
    plans = SignalPlans(default_plans(city))
    own = PriorityEngine(plans, lambda: START_S)
    shown = []
    for k, intersection in enumerate(plans.ids):
        ahead = own.plan_ahead(intersection)[:2]
        if k % 10 == 0:
            # The lights started their stage 3 s before the plan did.
            ahead = [(ahead[0][0], ahead[0][1] - 3.0, ahead[0][2] - 3.0)]
        shown.append({"intersection": intersection,
                      "plan": [{"stage": s, "green_from": a, "green_until": b} for s, a, b in ahead]})
    bodies = [{"time": START_S, "shown": shown[i:i + 200], "horizon_s": 30.0} for i in range(0, len(shown), 200)]

    def fresh_service() -> tuple[tuple[Service], dict[str, object]]:
        # A new engine whose clock has reached the field's (its first turn showed nothing).
        service = field_service(city, plans)
        service.handle([frame("signals.command", {"time": START_S, "intersections": []})])
        return (service,), {}

    def turn(service: Service) -> int:
        replies = [msgspec.json.decode(service.handle([frame("signals.command", body)])[0]) for body in bodies]
        return sum(len(reply["body"]["taken_over"]) for reply in replies)

    taken = turn(fresh_service()[0][0])
    benchmark.extra_info["taken_over"] = taken
    assert 0 < taken <= int(np.ceil(len(plans) / 10))
    benchmark.pedantic(turn, setup=fresh_service, rounds=20, iterations=1)
