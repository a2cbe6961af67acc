"""Bus priority and emergency corridors at the signalised intersections (numba kernels and engines)."""

from pilotage.signal_priority.engine import (
    PriorityConfig,
    PriorityDecision,
    PriorityEngine,
    PriorityRequest,
)

__all__ = ["PriorityConfig", "PriorityDecision", "PriorityEngine", "PriorityRequest"]
