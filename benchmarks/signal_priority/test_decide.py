"""The priority decision for every signalised intersection of the embedded city, against an empty
numba call in the same run.

``kernel, N requests`` times what one decision call costs the engine for N pending requests spread
over the city: copying the plans into the proposal and the kernel call that decides them all.
``engine, 1 request`` is the whole path of one request: validation, the kernel, the safety monitor
on the changed plan, and the commit (on a fresh engine each round, so that it always grants).
``engine, 1 s of clock`` is what the signals cost the engine each second with no request: the
clock moves, the base stages laid ahead pass the safety monitor (about one intersection in 50
lays a cycle's stages each second), and the greens of every intersection are read out.
"""

import dataclasses

import numpy as np
import pytest

from pilotage.core import RoadNetwork
from pilotage.core._jit import kernel
from pilotage.core.default_plans import default_plans
from pilotage.core.signals import SignalPlans
from pilotage.signal_priority import PriorityConfig, PriorityEngine, _kernels

from .city_requests import NOW_S, city_requests

GROUP = "priority decision, embedded city"


@kernel
def empty_kernel(values):
    """The reference: a numba call that does nothing with its array."""
    return values.size


@pytest.fixture(scope="module")
def plans(city: RoadNetwork) -> SignalPlans:
    return SignalPlans(default_plans(city))


def test_empty_numba_call(benchmark) -> None:
    benchmark.group = GROUP
    benchmark.extra_info["reference"] = True
    values = np.zeros(1)
    empty_kernel(values)
    benchmark(empty_kernel, values)


@pytest.mark.parametrize("count", [1, 10, 180])
def test_kernel(benchmark, plans: SignalPlans, rng: np.random.Generator, count: int) -> None:
    benchmark.group = GROUP
    benchmark.name = f"kernel, {count} requests"
    engine = PriorityEngine(plans, lambda: NOW_S, PriorityConfig(bus_lateness_s=0.0))
    batch = engine._encode(city_requests(plans, count, rng), NOW_S)
    out = engine._decide(NOW_S, batch)
    benchmark.extra_info["granted"] = int(out[:, _kernels.O_DECISION].sum())
    benchmark(engine._decide, NOW_S, batch)


def test_engine_one_request(benchmark, plans: SignalPlans, rng: np.random.Generator) -> None:
    benchmark.group = GROUP
    benchmark.name = "engine, 1 request (validation, kernel, monitor, commit)"
    request = city_requests(plans, 1, rng)

    def fresh_engine() -> tuple[tuple, dict]:
        return (PriorityEngine(plans, lambda: NOW_S, PriorityConfig(bus_lateness_s=0.0)),), {}

    benchmark.pedantic(lambda engine: engine.decide(request), setup=fresh_engine, rounds=200, iterations=1)


def test_engine_one_second_of_clock(benchmark, plans: SignalPlans) -> None:
    benchmark.group = GROUP
    benchmark.name = "engine, 1 s of clock (lays checked, greens read)"
    clock = [NOW_S]
    engine = PriorityEngine(plans, lambda: clock[0])

    def second() -> None:
        clock[0] += 1.0
        engine.green_groups()

    benchmark.pedantic(second, rounds=3600, iterations=1)
    benchmark.extra_info["plans checked an hour"] = engine.monitor.checks - len(plans)


def test_engine_one_second_of_actuation(benchmark, plans: SignalPlans, rng: np.random.Generator) -> None:
    benchmark.group = GROUP
    benchmark.name = "engine, 1 s of actuation (every intersection actuated, gaps of every group)"
    actuated = SignalPlans([dataclasses.replace(plan, passage_s=3.0) for plan in plans.plans])
    clock = [NOW_S]
    engine = PriorityEngine(actuated, lambda: clock[0])
    gaps = [{plan.id: {name: 0.0 for name in plan.group_names} for plan in actuated.plans}]

    def second() -> None:
        clock[0] += 1.0
        # A vehicle over each group's detectors one second in three: stages extend, then gap out.
        gaps[0] = {plan.id: {name: float(rng.integers(0, 3)) for name in plan.group_names}
                   for plan in actuated.plans}
        engine.actuate(gaps[0])

    benchmark.pedantic(second, rounds=600, iterations=1)
    benchmark.extra_info["plans re-timed"] = engine.actuations
