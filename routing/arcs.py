"""Arc routing (street cleaning) as node routing that OR-Tools solves.

The capacitated arc routing problem (CARP) asks for rounds that traverse a set of *required*
streets, serving each once, with deadheading (driving without serving) on shortest paths. It
becomes a node routing problem by the directed-arc transformation:

- each way a required street may be served becomes one node: serving ``u -> v`` starts at ``u``
  and ends at ``v``, takes the street's service time and drives its length;
- the nodes of one street form a *visit* whose alternatives are its directions, exactly one of
  which is served (an OR-Tools disjunction): a two-way street swept on one side is served in the
  direction the round finds best;
- the travel from node ``i`` to node ``j`` is the shortest path from the end of ``i`` to the start
  of ``j``: the deadheading.

A solution of the node problem is a solution of the arc problem with the same cost, and the
reverse, so nothing is lost; the route is expanded back to streets by reading each node's arc and
the shortest paths between them. Compared with the classic transformations to the CVRP that
triple the nodes (Pearn, Assad & Golden 1987) or double them with a forced pairing (Longo, Poggi
de Aragão & Uchoa 2006), this one needs a disjunction, which OR-Tools has, and no extra nodes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from pilotage.core.errors import InvalidInputError


@dataclass(frozen=True)
class ArcTask:
    """A street side to serve once.

    Attributes:
        label: the street's name in reports.
        directions: the ways it may be served, as (start vertex, end vertex) pairs.
        service_s: time to serve it (s, or the instance's time unit).
        service_distance: distance driven while serving it.
        demand: load it adds (hopper volume, or the instance's demand).
        penalty: cost of leaving it out; ``inf`` when it must be served.
        skills: bit mask of the skills a vehicle needs to serve it.
    """

    label: str
    directions: tuple[tuple[int, int], ...]
    service_s: int
    service_distance: int
    demand: int
    penalty: float = float("inf")
    skills: int = 0


@dataclass(frozen=True)
class NodeLayout:
    """Where each node of a problem starts and ends, as vertices of a distance matrix.

    Attributes:
        enter: (n,) the vertex where service at each node starts.
        leave: (n,) the vertex where it ends (the same as ``enter`` for a stop).
        visit_ptr, visit_nodes: each visit's alternative nodes, as :class:`Problem` wants them.
    """

    enter: np.ndarray
    leave: np.ndarray
    visit_ptr: np.ndarray
    visit_nodes: np.ndarray

    def between(self, vertex_matrix: np.ndarray) -> np.ndarray:
        """The node matrix of ``vertex_matrix``: from the end of node i to the start of node j."""
        return np.ascontiguousarray(vertex_matrix[np.ix_(self.leave, self.enter)])


def layout(depot_vertices: Sequence[int], stop_vertices: Sequence[int], tasks: Sequence[ArcTask]) -> NodeLayout:
    """The nodes of a problem with depots, stops (one node each) and arc tasks (one node per direction),
    numbered in that order.

    Raises:
        InvalidInputError: a task without a direction.
    """
    enter = [*depot_vertices, *stop_vertices]
    leave = list(enter)
    visit_ptr = [0]
    visit_nodes = []
    for position in range(len(depot_vertices), len(enter)):
        visit_nodes.append(position)
        visit_ptr.append(len(visit_nodes))
    for task in tasks:
        if not task.directions:
            raise InvalidInputError(f"expected at least one direction for street {task.label!r}, got none",
                                    field="directions")
        for start, end in task.directions:
            visit_nodes.append(len(enter))
            enter.append(start)
            leave.append(end)
        visit_ptr.append(len(visit_nodes))
    return NodeLayout(enter=np.asarray(enter, dtype=np.int64), leave=np.asarray(leave, dtype=np.int64),
                      visit_ptr=np.asarray(visit_ptr, dtype=np.int64),
                      visit_nodes=np.asarray(visit_nodes, dtype=np.int64))


def per_node(tasks: Sequence[ArcTask], attribute: str) -> np.ndarray:
    """A task attribute repeated for each of its directions, in :func:`layout`'s node order."""
    return np.asarray([getattr(task, attribute) for task in tasks for _ in task.directions])
