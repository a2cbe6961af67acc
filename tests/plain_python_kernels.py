"""Every kernel of pilotage run once as plain Python, through the layer above it.

Run from the repository's root as ``NUMBA_DISABLE_JIT=1 python -m tests.plain_python_kernels``
(numba reads the variable once, at import, so test_kernels_without_jit.py starts a process of its
own): numba then leaves each function of the ``_kernels.py`` modules as written, and this run goes
through the very lines the JIT compiles. The road network, the priority engine and the safety
monitor each call their kernels on a small case; the script exits with status 1 naming every
kernel still compiled, or not reached.
"""

import importlib
import math
import sys
from collections.abc import Callable
from pathlib import Path
from types import FrameType, FunctionType, ModuleType

import numpy as np

import pilotage
from pilotage.core import RoadNetwork
from pilotage.core.matching import match_polyline
from pilotage.core.safety import check_schedule
from pilotage.core.signals import SignalPlans
from pilotage.core.transit import TransitPath, Trip
from pilotage.signal_priority import Hold, PriorityConfig, PriorityEngine, PriorityRequest
from pilotage.signal_priority.tracking import PositionReport, VehicleTracker
from tests.signal_plans import crossroads

# One degree of latitude on the sphere the kernels use (m).
M_PER_DEG_LAT = 6_371_009.0 * math.pi / 180.0


def kernel_modules() -> list[ModuleType]:
    """Every ``_kernels.py`` module of the package's subpackages."""
    root = Path(pilotage.__file__).resolve().parent
    paths = [path for folder in sorted(root.iterdir()) if (folder / "__init__.py").is_file()
             for path in sorted(folder.rglob("_kernels.py"))]
    return [importlib.import_module(".".join(["pilotage", *path.relative_to(root).with_suffix("").parts]))
            for path in paths]


def kernels(module: ModuleType) -> dict[str, Callable]:
    """The kernels a ``_kernels.py`` module gives the layer above it: its public functions, by name."""
    return {f"{module.__name__}.{name}": value for name, value in vars(module).items()
            if not name.startswith("_") and callable(value) and getattr(value, "__module__", "") == module.__name__}


def run_each_layer() -> None:
    """A street of three signal nodes 100 m apart: a position snapped, a route by A*, a matrix, a
    polyline matched, two buses followed along a line (one by its trip, one by its route). The
    crossroads at 880 s: a late bus's green extension, its check-out, a pre-emption, and the plan
    through the safety monitor."""
    tail, head = np.array([0, 1, 1, 2]), np.array([1, 0, 2, 1])
    street = RoadNetwork.from_edges(
        node_osmid=np.arange(100, 103), node_lon=np.zeros(3), node_lat=np.array([0.0, 100.0, 200.0]) / M_PER_DEG_LAT,
        tail=tail, head=head, length_m=np.full(4, np.nan), speed_kph=np.full(4, 36.0),
        road_class=np.zeros(4, dtype=np.int64), road_classes=("residential",), edge_osmid=np.full(4, 7),
        signal_nodes=np.arange(3))
    origin, _ = street.snap(0.0, 10.0 / M_PER_DEG_LAT)
    street.shortest_path(origin, 2)
    street.matrix([0, 1], [1, 2], workers=1)
    match_polyline(street, np.zeros(3), np.array([10.0, 100.0, 190.0]) / M_PER_DEG_LAT)
    plan = crossroads()
    line = Trip("t-1", "line", "bus", TransitPath.on(street, np.array([0, 2]), stop_ids=("s",),
                                                      stop_at_m=np.array([150.0])), np.array([900.0]))
    tracker = VehicleTracker(street, SignalPlans([plan]), [line])
    tracker.observe([PositionReport("bus-1", 0.0, 50.0 / M_PER_DEG_LAT, 880.0, trip="t-1"),
                     PositionReport("bus-2", 0.0, 60.0 / M_PER_DEG_LAT, 880.0, route="line")])
    engine = PriorityEngine(SignalPlans([plan]), lambda: 880.0, PriorityConfig(bus_lateness_s=0.0))
    engine.decide([PriorityRequest("bus-1", "x", "main", 15.0, lateness_s=120.0)])
    engine.checkout("bus-1", "x")
    engine.preempt("x", [Hold(("side",), 900.0, 930.0)])
    check_schedule(plan, engine.schedule("x"))


def main() -> None:
    """Checks that the JIT is off, runs each layer with every kernel call recorded, and exits with
    status 1 naming the kernels compiled or not reached."""
    offered = {name: kernel for module in kernel_modules() for name, kernel in kernels(module).items()}
    compiled = sorted(name for name, kernel in offered.items() if not isinstance(kernel, FunctionType))
    if compiled:
        sys.exit(f"compiled by numba, though NUMBA_DISABLE_JIT=1 was expected: {', '.join(compiled)}")
    names = {kernel.__code__: name for name, kernel in offered.items()}
    reached: set[str] = set()

    def record(frame: FrameType, event: str, _: object) -> None:
        if event == "call" and frame.f_code in names:
            reached.add(names[frame.f_code])

    sys.setprofile(record)
    try:
        run_each_layer()
    finally:
        sys.setprofile(None)
    missed = sorted(set(offered) - reached)
    if missed:
        sys.exit(f"kernels not reached through the layer above them: {', '.join(missed)}; call each in "
                 f"run_each_layer")


if __name__ == "__main__":
    main()
