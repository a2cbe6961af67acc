"""Bus priority and emergency corridors at the signalised intersections (numba kernels and engines)."""

from pilotage.signal_priority.corridors import (
    EMERGENCY_SPEED_KPH,
    Corridor,
    CorridorConfig,
    CorridorEngine,
    Crossing,
    ExitTransition,
)
from pilotage.signal_priority.engine import (
    EXIT_TRANSITIONS,
    Hold,
    MonitorCounts,
    Preemption,
    PriorityConfig,
    PriorityDecision,
    PriorityEngine,
    PriorityRequest,
)

__all__ = ["EMERGENCY_SPEED_KPH", "EXIT_TRANSITIONS", "Corridor", "CorridorConfig", "CorridorEngine", "Crossing",
           "ExitTransition", "Hold", "MonitorCounts", "Preemption", "PriorityConfig", "PriorityDecision",
           "PriorityEngine", "PriorityRequest"]
