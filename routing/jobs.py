"""Routing jobs on the road network: validated once, turned into a :class:`Problem`, solved, and
written back in the job's own ids.

A job (``pilotage.core.protocol.Job``, docs/routing.md) names depots, a fleet and the work: stops
(bulky-waste pickups) and streets (cleaning). Locations are snapped to the network; travel times
are the fastest paths under the urban speed model (:mod:`pilotage.routing.speeds`) and distances
the shortest, both from :meth:`RoadNetwork.matrix`. Streets become arc tasks
(:mod:`pilotage.routing.arcs`).

Before any search, a job is refused with the reason when it cannot be done: a visit no vehicle
can serve alone (skills, capacity, windows, shift), more demand or more hours of work than the
vehicles able to do it have, a break that does not fit its shift.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from pilotage.core.errors import InvalidInputError, OutsideNetworkError, PilotageError, UnknownEntityError
from pilotage.core.network import MAX_SNAP_DISTANCE_M, RoadNetwork
from pilotage.core.protocol.fields import Place, Point
from pilotage.core.protocol.jobs import Job, JobStreet, TimeOfDay
from pilotage.routing.arcs import ArcTask, NodeLayout, layout, per_node
from pilotage.routing.problem import MAX_SKILLS, Fleet, Problem
from pilotage.routing.speeds import urban_network

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class NodeInfo:
    """What a node of a job's problem stands for.

    Attributes:
        id: the depot, stop or street id in the job.
        kind: ``depot``, ``stop`` or ``street``.
        segment: for a street, the segment's (from, to) OSM node ids as served; else None.
    """

    id: str
    kind: str
    segment: tuple[int, int] | None = None


@dataclass(frozen=True, eq=False)
class JobProblem:
    """A job, its problem and the way back to the job's ids and the map.

    Attributes:
        job: the job as given.
        problem: its nodes, fleet and costs.
        network: the road network it was built on.
        vertices: (v,) network node index of each vertex of the matrices.
        nodes: where each node's service starts and ends, as vertex positions.
        info: (n,) what each node stands for.
    """

    job: Job
    problem: Problem
    network: RoadNetwork
    vertices: np.ndarray
    nodes: NodeLayout
    info: tuple[NodeInfo, ...]

    def leg(self, tail: int, head: int) -> list[tuple[float, float]]:
        """The fastest road path (lon, lat) from the end of node ``tail`` to the start of ``head``."""
        origin = int(self.vertices[self.nodes.leave[tail]])
        destination = int(self.vertices[self.nodes.enter[head]])
        path = self.network.shortest_path(origin, destination).nodes if origin != destination else [origin]
        return [(float(self.network.node_lon[v]), float(self.network.node_lat[v])) for v in path]

    def service(self, node: int) -> list[tuple[float, float]]:
        """The segment a street node sweeps (lon, lat), or the stop's point."""
        ends = (self.vertices[self.nodes.enter[node]], self.vertices[self.nodes.leave[node]])
        return [(float(self.network.node_lon[v]), float(self.network.node_lat[v])) for v in ends]

    def initial_routes(self) -> list[list[int]] | None:
        """The job's earlier plan as node sequences, one per vehicle, for a warm start; ids the job
        no longer has are dropped (logged); a street is taken in the direction first listed."""
        if self.job.initial is None:
            return None
        p = self.problem
        vehicle_of = {label: v for v, label in enumerate(p.vehicle_labels)}
        first_node: dict[str, list[int]] = {}
        for node in range(p.n_depots, p.n_nodes):
            first_node.setdefault(self.info[node].id, [])
            if node == p.alternatives(p.visit_of[node])[0]:
                first_node[self.info[node].id].append(node)
        routes: list[list[int]] = [[] for _ in range(p.n_vehicles)]
        placed: set[str] = set()
        for position, route in enumerate(self.job.initial):
            if route.vehicle not in vehicle_of:
                raise UnknownEntityError(f"initial route {position} is for vehicle {route.vehicle!r}, which the "
                                         f"fleet does not have; expected one of {sorted(vehicle_of)}",
                                         field=f"initial[{position}].vehicle")
            for visit in route.visits:
                if visit in placed:
                    continue  # a street's later segments: all of them went in at its first mention
                if visit not in first_node:
                    logger.info("%s: the earlier plan's %r is no longer in the job; dropped", self.job.name, visit)
                    continue
                routes[vehicle_of[route.vehicle]].extend(first_node.pop(visit))
                placed.add(visit)
        return routes


#: What each object of the job format is, in the errors.
def seconds_of(value: TimeOfDay) -> int:
    """Seconds since midnight of a job's time: a number, or ``HH:MM[:SS]``."""
    if isinstance(value, str):
        parts = [int(part) for part in value.split(":")]
        return parts[0] * 3600 + parts[1] * 60 + (parts[2] if len(parts) > 2 else 0)
    return round(value)


def clock_of(seconds: float) -> str:
    """``HH:MM:SS`` of seconds since midnight (hours pass 24 after midnight)."""
    total = round(seconds)
    return f"{total // 3600:02d}:{total % 3600 // 60:02d}:{total % 60:02d}"


def job_problem(job: Job, network: RoadNetwork) -> JobProblem:
    """Validate ``job`` against ``network`` and build its problem, with the travel times of the urban
    speed model (:func:`pilotage.routing.speeds.urban_network`).

    Raises:
        InvalidInputError: an inconsistent job: duplicate ids, a shift or window that ends before it
            starts, a break that does not fit its shift, a stop heavier than every vehicle that
            could serve it, a stop whose windows close before any vehicle can reach it, work no
            vehicle has the skills for, more demand or more hours of work than the vehicles able
            to do it have, a street given both by way and by nodes (or by neither); ``field`` names
            the part at fault and the message its id and the reason.
        OutsideNetworkError: a location too far from the network; the message gives the nearest
            node of the network, or the point with lon and lat swapped when that one fits.
        UnknownEntityError: a depot, node or way the network or the job does not have.
    """
    return _Builder(job, urban_network(network)).build()


class _Builder:
    def __init__(self, job: Job, network: RoadNetwork) -> None:
        self.job = job
        self.network = network
        self.vertex_of: dict[int, int] = {}

    def vertex(self, node: int) -> int:
        return self.vertex_of.setdefault(node, len(self.vertex_of))

    def place(self, place: Place, field: str, what: str) -> tuple[int, float, float]:
        try:
            node = self.network.place_node(place, field)
        except OutsideNetworkError as error:
            if not isinstance(place, Point):
                raise
            raise OutsideNetworkError(f"{what}: {self._off_network(place)}", field=error.field) from None
        except PilotageError as error:
            raise error.with_prefix(message=what) from None
        if isinstance(place, Point):
            return node, place.lon, place.lat
        return node, float(self.network.node_lon[node]), float(self.network.node_lat[node])

    def _off_network(self, point: Point) -> str:
        """Why a point is not on the network, and the fix: lon and lat swapped, when the swapped
        point is on it; else the nearest node of the network (every node reaches every other)."""
        network = self.network
        given = f"({point.lon:.6f}, {point.lat:.6f}) as (lon, lat)"
        if -90.0 <= point.lon <= 90.0:
            _, swapped_m = network.nearest_nodes([point.lat], [point.lon])
            if swapped_m[0] <= MAX_SNAP_DISTANCE_M:
                return (f"expected a point on the network, got {given}, which is far from it but on it with lon "
                        f"and lat swapped; give {{\"lon\": {point.lat:.6f}, \"lat\": {point.lon:.6f}}}")
        nodes, distance_m = network.nearest_nodes([point.lon], [point.lat])
        node = int(nodes[0])
        return (f"expected a point within {MAX_SNAP_DISTANCE_M:.0f} m of a node of the network, got {given}, "
                f"{distance_m[0]:,.0f} m from the nearest: {{\"lon\": {network.node_lon[node]:.6f}, \"lat\": "
                f"{network.node_lat[node]:.6f}}} (OSM node {int(network.node_osmid[node])}), which every other node "
                "reaches; check the point, or give that one")

    def build(self) -> JobProblem:
        job = self.job
        self._unique_ids()
        depot_index = {depot.id: d for d, depot in enumerate(job.depots)}
        depots = [self.place(d.location, f"depots[{i}].location", f"depot {d.id!r}") for i, d in enumerate(job.depots)]
        skill_bit = self._skills()
        fleet = self._fleet(depot_index, skill_bit)
        stops = [self.place(s.location, f"stops[{i}].location", f"stop {s.id!r}") for i, s in enumerate(job.stops)]
        tasks, segments = self._street_tasks(skill_bit)
        depot_vertices = [self.vertex(node) for node, _, _ in depots]
        stop_vertices = [self.vertex(node) for node, _, _ in stops]
        nodes = layout(depot_vertices, stop_vertices, tasks)
        vertices = np.fromiter(self.vertex_of, dtype=np.int64, count=len(self.vertex_of))
        duration = np.rint(self.network.matrix(vertices, vertices, weight="travel_time_s")).astype(np.int64)
        distance = np.rint(self.network.matrix(vertices, vertices, weight="length_m")).astype(np.int64)

        n_depots, n_stops = len(job.depots), len(job.stops)
        windows = [self._windows(i) for i in range(n_stops)]
        window_ptr = np.zeros(nodes.enter.size + 1, dtype=np.int64)
        counts = [0] * n_depots + [len(w) for w in windows] + [0] * (nodes.enter.size - n_depots - n_stops)
        np.cumsum(counts, out=window_ptr[1:])
        flat = [pair for w in windows for pair in w]
        info = ([NodeInfo(d.id, "depot") for d in job.depots] + [NodeInfo(s.id, "stop") for s in job.stops]
                + [NodeInfo(task.label, "street", segment)
                   for task, served in zip(tasks, segments, strict=True) for segment in served])
        coordinates = ([(lon, lat) for _, lon, lat in depots] + [(lon, lat) for _, lon, lat in stops]
                       + [self._midpoint(vertices[a], vertices[b])
                          for a, b in zip(nodes.enter[n_depots + n_stops:], nodes.leave[n_depots + n_stops:],
                                          strict=True)])
        stop_skills = [self._mask(s.skills, skill_bit) for s in job.stops]
        problem = Problem(
            name=job.name, labels=tuple(f"{i.id}" if i.segment is None else f"{i.id} {i.segment[0]}>{i.segment[1]}"
                                        for i in info),
            x=np.array([c[0] for c in coordinates]), y=np.array([c[1] for c in coordinates]), geographic=True,
            n_depots=n_depots, duration_s=nodes.between(duration), distance=nodes.between(distance),
            service_s=np.concatenate((np.zeros(n_depots), [round(s.service_s) for s in job.stops],
                                      per_node(tasks, "service_s"))),
            service_distance=np.concatenate((np.zeros(n_depots + n_stops), per_node(tasks, "service_distance"))),
            demand=np.concatenate((np.zeros(n_depots), [s.demand for s in job.stops], per_node(tasks, "demand"))),
            window_ptr=window_ptr, window_open_s=np.array([a for a, _ in flat], dtype=np.int64),
            window_close_s=np.array([b for _, b in flat], dtype=np.int64),
            skills=np.concatenate((np.zeros(n_depots), stop_skills, per_node(tasks, "skills"))),
            visit_ptr=nodes.visit_ptr, visit_nodes=nodes.visit_nodes,
            penalty=np.array([math.inf if s.penalty is None else s.penalty for s in job.stops]
                             + [task.penalty for task in tasks], dtype=np.float64),
            **fleet)
        built = JobProblem(job=job, problem=problem, network=self.network, vertices=vertices, nodes=nodes,
                           info=tuple(info))
        _check_reachable(built)
        _check_fleet_holds(built)
        return built

    def _unique_ids(self) -> None:
        job = self.job
        seen: dict[str, str] = {}
        groups = (("depots", [d.id for d in job.depots]), ("vehicles", [v.id for v in job.vehicles]),
                  ("stops", [s.id for s in job.stops]), ("streets", [s.id for s in job.streets]))
        for group, ids in groups:
            space = "work" if group in ("stops", "streets") else group
            for i, name in enumerate(ids):
                key = f"{space}:{name}"
                if key in seen:
                    raise InvalidInputError(f"expected unique ids, but {name!r} is given twice ({seen[key]} and "
                                            f"{group}[{i}]); rename one", field=f"{group}[{i}].id")
                seen[key] = f"{group}[{i}]"

    def _skills(self) -> dict[str, int]:
        bits = _skill_bits(self.job)
        if len(bits) > MAX_SKILLS:
            raise InvalidInputError(f"expected at most {MAX_SKILLS} distinct skills, got {len(bits)}; use fewer",
                                    field="vehicles")
        return bits

    @staticmethod
    def _mask(skills: Sequence[str], skill_bit: dict[str, int]) -> int:
        mask = 0
        for skill in skills:
            mask |= skill_bit[skill]
        return mask

    def _fleet(self, depot_index: dict[str, int], skill_bit: dict[str, int]) -> Fleet:
        labels: list[str] = []
        columns: dict[str, list[float]] = {name: [] for name in (
            "start_depot", "end_depot", "capacity", "shift_start_s", "shift_end_s", "vehicle_skills", "fixed_cost",
            "distance_cost", "time_cost_per_s")}
        breaks: list[list[tuple[int, int, int]]] = []
        for i, vehicle in enumerate(self.job.vehicles):
            where = f"vehicles[{i}]"
            for key, depot in (("depot", vehicle.depot), ("end_depot", vehicle.end_depot or vehicle.depot)):
                if depot not in depot_index:
                    raise UnknownEntityError(f"vehicle {vehicle.id!r} names depot {depot!r}, which the job does "
                                             f"not have; expected one of {sorted(depot_index)}",
                                             field=f"{where}.{key}")
            start, end = (seconds_of(t) for t in vehicle.shift)
            if end <= start:
                raise InvalidInputError(f"vehicle {vehicle.id!r}: its shift ends ({clock_of(end)}) before it starts "
                                        f"({clock_of(start)}); give [start, end]", field=f"{where}.shift")
            own = []
            for b, pause in enumerate(vehicle.breaks):
                earliest, latest = seconds_of(pause.earliest), seconds_of(pause.latest)
                duration = round(pause.duration_s)
                if latest < earliest or earliest < start or latest > end:
                    raise InvalidInputError(
                        f"vehicle {vehicle.id!r}: break {b} may start {clock_of(earliest)}..{clock_of(latest)}; "
                        f"expected earliest <= latest, inside the shift {clock_of(start)}..{clock_of(end)}",
                        field=f"{where}.breaks[{b}]")
                if earliest + duration > end:
                    raise InvalidInputError(
                        f"vehicle {vehicle.id!r}: break {b} may start {clock_of(earliest)}..{clock_of(latest)} and "
                        f"lasts {_minutes(duration)}, so it ends at {clock_of(earliest + duration)} at the earliest, "
                        f"after the shift ends at {clock_of(end)}; a break is taken during the work: start it "
                        "earlier or shorten it", field=f"{where}.breaks[{b}]")
                own.append((earliest, latest, duration))
            if sum(d for _, _, d in own) > end - start:
                raise InvalidInputError(f"vehicle {vehicle.id!r}: its breaks last {_minutes(sum(d for _, _, d in own))}"
                                        f", longer than its shift of {_minutes(end - start)}; shorten them",
                                        field=f"{where}.breaks")
            for copy in range(vehicle.count):
                labels.append(vehicle.id if vehicle.count == 1 else f"{vehicle.id}-{copy + 1}")
                columns["start_depot"].append(depot_index[vehicle.depot])
                columns["end_depot"].append(depot_index[vehicle.end_depot or vehicle.depot])
                columns["capacity"].append(vehicle.capacity)
                columns["shift_start_s"].append(start)
                columns["shift_end_s"].append(end)
                columns["vehicle_skills"].append(self._mask(vehicle.skills, skill_bit))
                columns["fixed_cost"].append(vehicle.fixed_cost)
                columns["distance_cost"].append(vehicle.cost_per_km / 1000.0)
                columns["time_cost_per_s"].append(vehicle.cost_per_hour / 3600.0)
                breaks.append(own)
        duplicates = {label for label in labels if labels.count(label) > 1}
        if duplicates:
            raise InvalidInputError(f"expected unique vehicle ids once counts are expanded, got {sorted(duplicates)} "
                                    "twice; rename the vehicles", field="vehicles")
        arrays = {name: np.asarray(values) for name, values in columns.items()}
        return Fleet(vehicle_labels=tuple(labels), start_depot=arrays["start_depot"],
                     end_depot=arrays["end_depot"], capacity=arrays["capacity"],
                     shift_start_s=arrays["shift_start_s"], shift_end_s=arrays["shift_end_s"],
                     vehicle_skills=arrays["vehicle_skills"], fixed_cost=arrays["fixed_cost"],
                     distance_cost=arrays["distance_cost"], time_cost_per_s=arrays["time_cost_per_s"],
                     break_ptr=np.cumsum([0, *(len(b) for b in breaks)]),
                     break_earliest_s=np.array([b[0] for own in breaks for b in own], dtype=np.int64),
                     break_latest_s=np.array([b[1] for own in breaks for b in own], dtype=np.int64),
                     break_duration_s=np.array([b[2] for own in breaks for b in own], dtype=np.int64))

    def _windows(self, i: int) -> list[tuple[int, int]]:
        stop = self.job.stops[i]
        windows = []
        for w, (open_at, close_at) in enumerate(stop.windows):
            a, b = seconds_of(open_at), seconds_of(close_at)
            if b < a:
                raise InvalidInputError(f"stop {stop.id!r}: time window {w} closes at {clock_of(b)}, before it opens "
                                        f"at {clock_of(a)}; give [open, close]", field=f"stops[{i}].windows[{w}]")
            windows.append((a, b))
        merged: list[tuple[int, int]] = []
        for a, b in sorted(windows):
            if merged and a <= merged[-1][1]:
                merged[-1] = (merged[-1][0], max(merged[-1][1], b))
            else:
                merged.append((a, b))
        return merged

    def _street_tasks(self, skill_bit: dict[str, int]) -> tuple[list[ArcTask], list[list[tuple[int, int]]]]:
        tasks, segments = [], []
        for i, street in enumerate(self.job.streets):
            for edge in self._segments(i, street):
                u, v = int(self.network.edge_source[edge]), int(self.network.indices[edge])
                reverse = self._edge(v, u)
                length = float(self.network.length_m[edge])
                osm = (int(self.network.node_osmid[u]), int(self.network.node_osmid[v]))
                forward = (self.vertex(u), self.vertex(v))
                backward = (forward[1], forward[0])
                passes: list[tuple[tuple[tuple[int, int], ...], list[tuple[int, int]]]]
                if reverse is not None and street.sides == "one":
                    passes = [((forward, backward), [osm, osm[::-1]])]
                elif reverse is not None:
                    passes = [((forward,), [osm]), ((backward,), [osm[::-1]])]
                else:
                    passes = [((forward,), [osm])] * (2 if street.sides == "both" else 1)
                for directions, served in passes:
                    tasks.append(ArcTask(
                        label=street.id, directions=directions, service_s=round(street.service_s_per_m * length),
                        service_distance=round(length), demand=math.ceil(street.demand_per_m * length - 1e-9),
                        penalty=math.inf if street.penalty is None else street.penalty,
                        skills=self._mask(street.skills, skill_bit)))
                    segments.append(served)
        return tasks, segments

    def _segments(self, i: int, street: JobStreet) -> list[int]:
        network, where = self.network, f"streets[{i}]"
        if street.way is not None and street.from_ is None and street.to is None:
            # Rounds drive on roads open to cars: a bus-only way is no street of theirs.
            edges = np.flatnonzero((network.edge_osmid == street.way) & ~network.restricted)
            if not edges.size:
                raise UnknownEntityError(f"street {street.id!r}: no road of the network open to cars is OSM way "
                                         f"{street.way}; check the way id (only drivable roads are kept, and "
                                         "bus-only ones are closed to rounds)", field=f"{where}.way")
            # One segment per pair of directions: keep u -> v, and v -> u only when u -> v is absent.
            kept, seen = [], set()
            for edge in edges.tolist():
                u, v = int(network.edge_source[edge]), int(network.indices[edge])
                if (v, u) not in seen and (u, v) not in seen:
                    kept.append(edge)
                seen.add((u, v))
            return kept
        if street.way is not None or street.from_ is None or street.to is None:
            raise InvalidInputError(f"street {street.id!r}: expected either way, or both from and to (OSM node ids)",
                                    field=where)
        try:
            u, v = network.node_index(street.from_), network.node_index(street.to)
        except UnknownEntityError:
            raise UnknownEntityError(f"street {street.id!r}: OSM nodes {street.from_} and {street.to} are not both "
                                     "nodes of the network (segments run between junctions); give the way id "
                                     "instead", field=where) from None
        edge = self._edge(u, v)
        if edge is None:
            edge = self._edge(v, u)
        if edge is None:
            raise UnknownEntityError(f"street {street.id!r}: no road open to cars joins OSM nodes {street.from_} and "
                                     f"{street.to} directly; give the nodes of one segment, or the way id", field=where)
        return [edge]

    def _edge(self, u: int, v: int) -> int | None:
        first, last = self.network.indptr[u], self.network.indptr[u + 1]
        heads = self.network.indices[first:last]
        matches = np.flatnonzero((heads == v) & ~self.network.restricted[first:last])
        if not matches.size:
            return None
        lengths = self.network.length_m[first + matches]
        return int(first + matches[np.argmin(lengths)])

    def _midpoint(self, a: int, b: int) -> tuple[float, float]:
        network = self.network
        return (float(network.node_lon[[a, b]].mean()), float(network.node_lat[[a, b]].mean()))


def _check_reachable(built: JobProblem) -> None:
    """Each mandatory visit must be possible for some vehicle alone: skills, capacity, and a window
    it can reach from its depot and come back from within its shift."""
    p = built.problem
    # Vehicles of one fleet entry are alike: one of each kind is enough.
    kinds = np.stack([p.start_depot, p.end_depot, p.capacity, p.shift_start_s, p.shift_end_s, p.vehicle_skills])
    _, distinct = np.unique(kinds, axis=1, return_index=True)
    for visit in range(p.n_visits):
        if math.isfinite(p.penalty[visit]):
            continue
        nodes = p.alternatives(visit).tolist()
        able = [(node, v) for node in nodes for v in sorted(distinct.tolist())
                if int(p.vehicle_skills[v]) & int(p.skills[node]) == int(p.skills[node])]
        fitting = [(node, v) for node, v in able if p.demand[node] <= p.capacity[v]]
        if not able:
            why = "no vehicle has the skills it needs"
        elif not fitting:
            why = (f"its demand {p.demand[nodes[0]]} is more than any vehicle that could serve it holds "
                   f"({max(int(p.capacity[v]) for _, v in able)} at most)")
        elif any(_reachable(p, node, v) for node, v in fitting):
            continue
        else:
            why = _too_late(built, fitting)
        info = built.info[nodes[0]]
        raise InvalidInputError(f"{info.kind} {info.id!r} cannot be served: {why}; fix the {info.kind}, the fleet, "
                                "or give it a penalty so it may be left out", field=_field_of(built, nodes[0]))


def _field_of(built: JobProblem, node: int) -> str:
    """The job's field of the stop or street a node stands for: ``stops[3]``."""
    info = built.info[node]
    kind = "stops" if info.kind == "stop" else "streets"
    return f"{kind}[{next(i for i, w in enumerate(getattr(built.job, kind)) if w.id == info.id)}]"


def _earliest_and_latest(p: Problem, node: int, vehicle: int) -> tuple[int, int]:
    """When ``vehicle``, out from its depot at its shift's start, can be at ``node`` at the earliest,
    and when it must start serving it at the latest to be back within its shift."""
    earliest = int(p.shift_start_s[vehicle] + p.duration_s[p.start_depot[vehicle], node])
    latest = int(p.shift_end_s[vehicle] - p.duration_s[node, p.end_depot[vehicle]] - p.service_s[node])
    return earliest, latest


def _reachable(p: Problem, node: int, vehicle: int) -> bool:
    """Whether ``vehicle`` alone can serve ``node`` inside one of its windows within its shift."""
    earliest, latest = _earliest_and_latest(p, node, vehicle)
    return any(max(a, earliest) <= min(b, latest) for a, b in p.windows(node) or [(earliest, latest)])


def _too_late(built: JobProblem, pairs: list[tuple[int, int]]) -> str:
    """Why no (node, vehicle) of ``pairs`` fits the node's windows and the vehicle's shift."""
    p = built.problem
    times = {(node, v): _earliest_and_latest(p, node, v) for node, v in pairs}
    first_node, first = min(times, key=lambda pair: times[pair][0])
    arrive = times[first_node, first][0]
    last_node, last = max(times, key=lambda pair: times[pair][1])
    start_by = times[last_node, last][1]
    windows = sorted(w for node, _ in pairs for w in p.windows(node))
    leaving = (f"{p.vehicle_labels[first]} leaving {p.labels[p.start_depot[first]]} at "
               f"{clock_of(p.shift_start_s[first])}, {_minutes(p.duration_s[p.start_depot[first], first_node])} "
               "away")
    if windows and windows[-1][1] < arrive:
        which = "its window closes" if len(windows) == 1 else "its last window closes"
        return (f"{which} at {clock_of(windows[-1][1])}, but the earliest a vehicle that can serve it gets there is "
                f"{clock_of(arrive)} ({leaving})")
    back = (f"to be back at {p.labels[p.end_depot[last]]} by the end of its shift at {clock_of(p.shift_end_s[last])},"
            f" {p.vehicle_labels[last]} must start it by {clock_of(start_by)}")
    if windows and windows[0][0] > start_by:
        which = "its window opens" if len(windows) == 1 else "its first window opens"
        return f"{which} at {clock_of(windows[0][0])}, too late: {back}"
    if not windows:
        return (f"no vehicle can go there, serve it and come back within its shift: the earliest one gets there "
                f"at {clock_of(arrive)} ({leaving}); {back}")
    return (f"none of its windows ({', '.join(f'{clock_of(a)}-{clock_of(b)}' for a, b in windows)}) leaves time "
            f"between arriving and coming back: the earliest a vehicle that can serve it gets there is "
            f"{clock_of(arrive)} ({leaving}); {back}")


def _minutes(seconds: float) -> str:
    """A duration as people read it: ``12 min``, ``1 h 05 min``."""
    hours, minutes = divmod(round(seconds / 60), 60)
    return f"{hours} h {minutes:02d} min" if hours else f"{minutes} min"


def _check_fleet_holds(built: JobProblem) -> None:
    """The mandatory work needing each set of skills must fit the vehicles that have those skills,
    together: their capacity, and their hours (shift less breaks) against a lower bound of the
    work's hours, each visit's service plus the shortest drive to it."""
    p = built.problem
    mandatory = [visit for visit in range(p.n_visits) if not math.isfinite(p.penalty[visit])]
    if not mandatory:
        return
    first = [int(p.alternatives(visit)[0]) for visit in mandatory]
    needs = np.array([int(p.skills[node]) for node in first], dtype=np.int64)
    demand = np.array([int(p.demand[node]) for node in first], dtype=np.int64)
    # Each served node is reached by one arc: its shortest way in, from anywhere, is a lower bound.
    arriving = p.duration_s + np.where(np.eye(p.n_nodes, dtype=bool), np.iinfo(np.int64).max // 2, 0)
    work_s = np.array([min(int(p.service_s[node]) + int(arriving[:, node].min()) for node in p.alternatives(visit))
                       for visit in mandatory], dtype=np.int64)
    breaks_s = np.array([sum(d for _, _, d in p.breaks(v)) for v in range(p.n_vehicles)], dtype=np.int64)
    hours_s = p.shift_end_s - p.shift_start_s - breaks_s
    skill_names = {bit: name for name, bit in _skill_bits(built.job).items()}
    # Most skills first: the tightest groups are named before the whole fleet.
    for mask in sorted({int(m) for m in needs} | {0}, key=lambda m: -bin(m).count("1")):
        work = (needs & mask) == mask
        able = (p.vehicle_skills & mask) == mask
        skills = ", ".join(repr(skill_names[1 << b]) for b in range(MAX_SKILLS) if mask >> b & 1)
        work_named = f"needs {skills}" if mask else "must be served"
        with_skills = f" with {skills}" if mask else ""
        fix = "or give some stops or streets a penalty so they may be left out"
        total, held = int(demand[work].sum()), int(p.capacity[able].sum())
        if total > held:
            raise InvalidInputError(
                f"a total demand {total} {work_named}, but the vehicles{with_skills} hold {held} in all "
                f"({_some(np.array(p.vehicle_labels)[able].tolist())}); add vehicles{with_skills} or capacity, {fix}",
                field="vehicles")
        needed_s, available_s = int(work_s[work].sum()), int(hours_s[able].sum())
        if needed_s > available_s:
            raise InvalidInputError(
                f"the stops and streets that {'need ' + skills if mask else 'must be served'} take at least "
                f"{needed_s / 3600:.1f} h of work (each one's service and the shortest drive to it), more than the "
                f"{available_s / 3600:.1f} h the vehicles{with_skills} have in their shifts, breaks deducted; add "
                f"vehicles{with_skills} or lengthen shifts, {fix}", field="vehicles")


def _some(labels: list[str], shown: int = 4) -> str:
    """A few of ``labels`` and how many more: ``truck-1, truck-2, truck-3, truck-4 and 6 more``."""
    more = f" and {len(labels) - shown} more" if len(labels) > shown else ""
    return ", ".join(labels[:shown]) + more


def _skill_bits(job: Job) -> dict[str, int]:
    """The bit of each skill the job names, as :meth:`_Builder._skills` numbers them."""
    names = sorted({s for v in job.vehicles for s in v.skills} | {s for stop in job.stops for s in stop.skills}
                   | {s for street in job.streets for s in street.skills})
    return {name: 1 << bit for bit, name in enumerate(names)}
