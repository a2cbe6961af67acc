"""A field adapter against an engine in this process (the SUMO loop runs the same against a server
process, tests/adapters/sumo/test_engine_loss.py): commands followed, their expiry, the lights' own
programs, a new engine's takeover, and the errors of ``signals.command``."""

import dataclasses
from collections.abc import Callable
from typing import Any

import msgspec
import numpy as np
import pytest

from pilotage.adapters.field import SHOWN_PER_REQUEST, FieldSignals
from pilotage.adapters.service import LOCAL_CALLER, Caller, FieldClock, Service
from pilotage.core import RoadNetwork
from pilotage.core.protocol import COMMAND_TTL_S
from pilotage.core.safety import check_schedule
from pilotage.core.signals import SignalPlans
from pilotage.signal_priority import Hold, PriorityEngine

START_S = 1000.0


class Field:
    """A field adapter on a clock of its own, and the engine service it talks to."""

    def __init__(self, city: RoadNetwork, plans: SignalPlans) -> None:
        self.city, self.plans = city, plans
        self.now_s = START_S
        self.signals = FieldSignals(plans, clock=lambda: self.now_s)
        self.service = self.new_engine()

    def new_engine(self) -> Service:
        clock = FieldClock()
        return Service(self.city, PriorityEngine(self.plans, clock), field_clock=clock)

    def turn(self, caller: Caller = LOCAL_CALLER) -> list[dict]:
        replies = []
        for body in self.signals.requests():
            frame = msgspec.json.encode({"v": 1, "id": "f", "type": "signals.command", "body": body})
            replies.append(msgspec.json.decode(self.service.handle([frame], [caller])[0]))
        if all(reply["ok"] for reply in replies):
            self.signals.command([reply["body"] for reply in replies])
        return replies


@pytest.fixture
def field(city: RoadNetwork, city_plans: SignalPlans) -> Field:
    return Field(city, city_plans)


def test_the_lights_run_the_engines_plans_while_commands_come(field: Field) -> None:
    for _ in range(20):
        field.turn()
        assert (field.signals.green_groups() == field.service.priority.green_groups()).all()
        field.now_s += 1.0
    assert field.signals.commanded.all() and field.signals.counts.commands == 20


def test_past_the_expiry_the_lights_run_their_own_programs_from_what_they_show(field: Field) -> None:
    field.turn()
    intersection = field.plans.ids[3]
    # A corridor's hold makes this light's plan differ from its own program's.
    engine = field.service.priority
    stage_groups = field.plans.plans[3].stage_groups
    held = tuple(field.plans.plans[3].group_names[g] for g in np.flatnonzero(stage_groups[1]))
    assert not engine.preempt(intersection, [Hold(held, START_S + 20.0, START_S + 60.0)]).refused
    field.now_s += 1.0
    field.turn()
    shown = field.signals.plan_ahead(intersection)[:2]
    field.now_s += COMMAND_TTL_S
    green = field.signals.green_groups()
    counts = field.signals.counts
    assert counts.fallbacks == 1 and counts.fallback_delay_s == 0.0 and not field.signals.commanded.any()
    own = field.signals.own
    assert (green == own.green_groups()).all()
    # The light kept the stage it showed, and goes back to its program by a checked transition.
    stage, start_s, _ = own.plan_ahead(intersection)[0]
    assert stage == shown[0][0] and start_s == pytest.approx(shown[0][1])
    assert check_schedule(field.plans.plans[3], own.schedule(intersection)) == []


def test_a_new_engine_takes_over_from_the_lights_before_they_run_its_plans(field: Field) -> None:
    field.turn()
    intersection = field.plans.ids[3]
    engine = field.service.priority
    held = tuple(field.plans.plans[3].group_names[g] for g in np.flatnonzero(field.plans.plans[3].stage_groups[1]))
    engine.preempt(intersection, [Hold(held, START_S + 10.0, START_S + 60.0)])
    field.now_s += 1.0
    field.turn()
    field.now_s += 15.0
    before = field.signals.green_groups()
    field.service = field.new_engine()
    replies = field.turn()
    assert intersection in replies[-1]["body"]["taken_over"]
    assert field.signals.commanded.all() and field.signals.counts.taken_over >= 1
    # At the moment of the takeover the lights show what they showed.
    assert (field.signals.green_groups() == before).all()
    assert check_schedule(field.plans.plans[3], field.service.priority.schedule(intersection)) == []


def test_a_restarted_engine_is_not_followed_before_it_takes_over(field: Field) -> None:
    field.turn()
    field.now_s += 1.0
    field.service = field.new_engine()
    field.turn()
    assert field.signals.counts.stale == 1 and field.signals.engine is None
    # The next turn shows every light, so the new engine can take over.
    bodies: list[dict[str, Any]] = field.signals.requests()
    assert sum(len(body["shown"]) for body in bodies) == len(field.plans)
    assert all(len(body["shown"]) <= SHOWN_PER_REQUEST for body in bodies)
    field.turn()
    assert field.signals.engine == field.service.engine_name


def command(service: Service, body: dict, caller: Caller = LOCAL_CALLER) -> dict:
    frame = msgspec.json.encode({"v": 1, "id": "c", "type": "signals.command", "body": body})
    return msgspec.json.decode(service.handle([frame], [caller])[0])


def test_a_field_clock_never_goes_back(field: Field) -> None:
    assert command(field.service, {"time": 1000.0})["ok"]
    refused = command(field.service, {"time": 999.0})
    assert refused["error"]["code"] == "BAD_SCHEMA" and refused["error"]["field"] == "body.time"
    assert command(field.service, {"time": 1000.0})["ok"]


def test_on_the_wall_clock_a_field_clock_far_from_it_is_refused(
        make_service: Callable[..., Service], clock: Callable[[], float]) -> None:
    service = make_service()
    assert command(service, {"time": clock() + 1.0})["ok"]
    refused = command(service, {"time": clock() + 30.0})
    assert refused["error"]["code"] == "BAD_SCHEMA" and "NTP" in refused["error"]["message"]


def test_only_a_field_role_may_command_the_signals(field: Field) -> None:
    refused = command(field.service, {"time": 1000.0}, Caller("wall", "reader"))
    assert refused["error"]["code"] == "FORBIDDEN"
    assert command(field.service, {"time": 1000.0}, Caller("adapter", "field"))["ok"]


def test_stages_the_intersection_does_not_have_are_refused(field: Field) -> None:
    refused = command(field.service, {"time": 1000.0, "shown": [
        {"intersection": field.plans.ids[0], "plan": [{"stage": 99, "green_from": 990.0, "green_until": 1010.0}]}]})
    assert (refused["error"]["code"], refused["error"]["field"]) == ("BAD_SCHEMA", "body.shown[0].stage")


def test_the_detectors_of_actuated_lights_retime_both_the_engines_plans_and_their_own(
        city: RoadNetwork, city_plans: SignalPlans) -> None:
    actuated = SignalPlans([dataclasses.replace(plan, passage_s=3.0) for plan in city_plans.plans])
    field = Field(city, actuated)
    first = actuated.ids[0]
    field.turn()
    (stage, start_s, end_s), (following, _, _) = field.service.priority.plan_ahead(first)[:2]
    ending = actuated.stage_groups[0, stage] & ~actuated.stage_groups[0, following]
    field.now_s = max(START_S, start_s + float(actuated.stage_min_s[0, stage])) + 1.0
    quiet = {actuated.plans[0].group_names[g]: 600.0 for g in np.flatnonzero(ending)}
    field.signals.detected({first: quiet})
    assert field.signals.own.plan_ahead(first)[0][2] == pytest.approx(field.now_s)  # its own program gapped out
    field.turn()
    assert field.signals.plan_ahead(first)[0][2] == pytest.approx(field.now_s)  # and so did the engine's
    assert field.signals.plan_ahead(first)[0][2] < end_s


def test_gaps_for_a_fixed_time_light_are_refused(field: Field) -> None:
    refused = command(field.service, {"time": 1000.0, "gaps": [
        {"intersection": field.plans.ids[0], "gaps_s": {field.plans.plans[0].group_names[0]: 1.0}}]})
    assert (refused["error"]["code"], refused["error"]["field"]) == ("BAD_SCHEMA", "body.gaps.intersection")
