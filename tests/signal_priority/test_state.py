"""The signals' state across a restart: plans, grants and corridors kept in SQLite and taken back."""

import dataclasses
from pathlib import Path
from typing import Any

import pytest

from pilotage.core import RoadNetwork
from pilotage.core.signals import SignalPlans
from pilotage.signal_priority import CorridorEngine, PriorityConfig, PriorityEngine, PriorityRequest
from pilotage.signal_priority.state import SignalStateStore
from tests.signal_plans import crossroads

from .corridor_cases import ACROSS, at, violations

LATE_BUS = PriorityConfig(bus_lateness_s=0.0)


def engines(city: RoadNetwork, plans: SignalPlans, clock: Any) -> tuple[PriorityEngine, CorridorEngine]:
    priority = PriorityEngine(plans, clock, LATE_BUS)
    return priority, CorridorEngine(city, priority)


def test_a_grant_and_its_plan_survive_a_restart(tmp_path: Path, manual_clock: type) -> None:
    """Crossroads at 880 s: a bus gets main lengthened to 900 s; the server stops at 885 s and starts
    again at 886 s: the plan is the one it left, and the bus can still check out (main then ends
    at 890 s, its end without the grant)."""
    clock = manual_clock(880.0)
    plans = SignalPlans([crossroads()])
    engine = PriorityEngine(plans, clock, LATE_BUS)
    store = SignalStateStore(tmp_path / "signals.sqlite", engine)
    (decision,) = engine.decide([PriorityRequest("bus-1", "x", "main", 15.0, lateness_s=120.0)])
    assert (decision.strategy, decision.green_until) == ("extension", 900.0)
    clock.now_s = 885.0
    store.save()
    ahead = engine.plan_ahead("x")
    store.close()
    clock.now_s = 886.0
    again = PriorityEngine(plans, clock, LATE_BUS)
    assert SignalStateStore(tmp_path / "signals.sqlite", again).restore() == (1, 0)
    assert again.plan_ahead("x")[:4] == ahead[:4]
    assert again.checkout("bus-1", "x")
    assert again.plan_ahead("x")[0][2] == 890.0


def test_a_state_kept_for_another_plan_or_too_old_is_not_taken_back(
        tmp_path: Path, manual_clock: type, caplog: pytest.LogCaptureFixture) -> None:
    clock = manual_clock(880.0)
    engine = PriorityEngine(SignalPlans([crossroads()]), clock, LATE_BUS)
    store = SignalStateStore(tmp_path / "signals.sqlite", engine)
    engine.decide([PriorityRequest("bus-1", "x", "main", 15.0, lateness_s=120.0)])
    store.save()
    store.close()
    other = SignalPlans([dataclasses.replace(crossroads(), offset_s=10.0)])
    assert SignalStateStore(tmp_path / "signals.sqlite", PriorityEngine(other, clock)).restore() == (0, 0)
    assert "kept state was for another signal plan" in caplog.text
    clock.now_s = 880.0 + 3600.0
    later = PriorityEngine(SignalPlans([crossroads()]), clock)
    assert SignalStateStore(tmp_path / "signals.sqlite", later).restore() == (0, 0)
    assert "its plan does not cover now" in caplog.text
    assert later.plan_ahead("x")[0][1] % 85.0 in (0.0, 45.0)


def test_an_open_corridor_survives_a_restart(tmp_path: Path, city: RoadNetwork, city_plans: SignalPlans,
                                             manual_clock: type) -> None:
    """A corridor across the city, its vehicle a few hundred metres along: after a restart the
    update is answered from the restored corridor (same route, same position), its intersections
    still pre-empted, every plan safe; it closes as any corridor does."""
    clock = manual_clock(1000.0)
    priority, corridors = engines(city, city_plans, clock)
    store = SignalStateStore(tmp_path / "signals.sqlite", priority, corridors)
    opened = corridors.open("fire-1", *ACROSS)
    clock.now_s = 1010.0
    node = int(opened.nodes[6])
    moved = corridors.update("fire-1", *at(city, node))
    store.save()
    store.close()
    clock.now_s = 1012.0
    priority, corridors = engines(city, city_plans, clock)
    intersections, restored_corridors = SignalStateStore(tmp_path / "signals.sqlite", priority, corridors).restore()
    assert restored_corridors == 1
    assert intersections >= len(set(opened.replanned) | set(moved.replanned)) > 10
    restored = corridors.corridor("fire-1")
    assert restored.nodes.tolist() == moved.nodes.tolist()
    assert restored.position_m == pytest.approx(moved.position_m)
    assert set(corridors.preempted) >= {c.intersection for c in restored.crossings if c.state == "planned"}
    assert [c.state for c in restored.crossings] == [c.state for c in moved.crossings]
    update = corridors.update("fire-1", *at(city, node))
    assert update.reroutes == 0
    assert violations(corridors) == []
    assert corridors.close("fire-1")

