"""A solution of a :class:`~pilotage.routing.problem.Problem`: routes as node sequences and times."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True, eq=False)
class Route:
    """What one vehicle does.

    Attributes:
        vehicle: the vehicle's index in the problem.
        nodes: (r,) the nodes served, in order (depots excluded).
        start_s: (r,) when service starts at each node (s), after any wait for its window.
        depart_s: when the vehicle leaves its start depot (s).
        return_s: when it is back at its end depot (s).
        break_start_s: (b,) when each of the vehicle's breaks starts (s), in the problem's order.
    """

    vehicle: int
    nodes: np.ndarray
    start_s: np.ndarray
    depart_s: int
    return_s: int
    break_start_s: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.int64))

    @property
    def used(self) -> bool:
        """Whether the vehicle serves anything."""
        return bool(self.nodes.size)


@dataclass(frozen=True, eq=False)
class Solution:
    """Routes for the whole fleet, one per vehicle (empty for a vehicle left at its depot).

    Attributes:
        routes: one :class:`Route` per vehicle, in the problem's vehicle order.
        unassigned: visit indices left out (each with its penalty paid).
        cost: the objective, in the problem's cost unit.
        runtime_s: wall time of the search (s).
        solutions_found: improving solutions the search went through.
        status: how the search ended, in the solver's words.
    """

    routes: tuple[Route, ...]
    unassigned: np.ndarray
    cost: float
    runtime_s: float = 0.0
    solutions_found: int = 0
    status: str = ""

    @property
    def vehicles_used(self) -> int:
        """Vehicles that leave their depot."""
        return sum(route.used for route in self.routes)
