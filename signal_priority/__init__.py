"""Bus priority and emergency corridors at the signalised intersections (numba kernels and engines)."""

from pilotage.signal_priority.corridors import (
    EMERGENCY_SPEED_KPH,
    Corridor,
    CorridorConfig,
    CorridorEngine,
    CorridorState,
    Crossing,
    ExitTransition,
)
from pilotage.signal_priority.engine import (
    EXIT_TRANSITIONS,
    Hold,
    IntersectionState,
    MonitorCounts,
    Preemption,
    PriorityConfig,
    PriorityDecision,
    PriorityEngine,
    PriorityRequest,
    TakeOver,
)
from pilotage.signal_priority.state import SignalStateStore

__all__ = ["EMERGENCY_SPEED_KPH", "EXIT_TRANSITIONS", "Corridor", "CorridorConfig", "CorridorEngine",
           "CorridorState", "Crossing", "ExitTransition", "Hold", "IntersectionState", "MonitorCounts", "Preemption",
           "PriorityConfig", "PriorityDecision", "PriorityEngine", "PriorityRequest", "SignalStateStore", "TakeOver"]
