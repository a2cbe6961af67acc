"""The SUMO closed loop on Bologna (7 traffic lights, 300 simulated seconds), against SUMO running
the same scenario alone in the same process: what driving every light, checking every state change
and answering the buses' requests add to a simulation step."""

from collections.abc import Callable
from pathlib import Path

import pytest

from pilotage.adapters.sumo.closed_loop import LoopOptions, simulate

libsumo = pytest.importorskip("libsumo", reason="the closed loop needs the sim extra: pip install 'pilotage[sim]'")

GROUP = "closed loop, Bologna, 300 s"
DURATION_S = 300


@pytest.fixture(scope="module")
def bologna(shared_data: Callable[..., Path]) -> Path:
    """The Bologna scenario's SUMO configuration."""
    return shared_data("sumo", "bologna-acosta", "run.sumocfg")


def sumo_alone(sumocfg: Path) -> None:
    libsumo.start(["sumo", "-c", str(sumocfg), "--no-step-log", "true", "--no-warnings", "true"])
    try:
        for _ in range(DURATION_S):
            libsumo.simulationStep()
    finally:
        libsumo.close()


def test_sumo_alone(benchmark, bologna: Path) -> None:
    benchmark.group = GROUP
    benchmark.extra_info["reference"] = True
    benchmark.pedantic(sumo_alone, args=(bologna,), rounds=3, iterations=1)


@pytest.mark.parametrize(("priority", "corridors"), [(False, False), (True, True)])
def test_closed_loop(benchmark, bologna: Path, priority: bool, corridors: bool) -> None:
    benchmark.group = GROUP
    benchmark.name = f"closed loop, priority {'on' if priority else 'off'}, corridors {'on' if corridors else 'off'}"
    options = LoopOptions(priority=priority, corridors=corridors, duration_s=float(DURATION_S),
                          emergency_every_s=120.0 if corridors else None, time_space=False)
    run = benchmark.pedantic(simulate, args=(bologna, options), rounds=3, iterations=1)
    assert run["safety"]["violations"] == 0
