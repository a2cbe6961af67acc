"""The routing job file format: depots, vehicles, stops, streets to serve and options, as
``pilotage route`` reads a job file and ``route.submit`` carries one (docs/routing.md)."""

from __future__ import annotations

from typing import Annotated, Literal

from msgspec import Meta, Struct, field

from pilotage.core.protocol.fields import Name, OsmId, Place

#: A time of day: seconds since midnight, or "HH:MM" / "HH:MM:SS" (hours may pass 24 for a night).
TimeOfDay = Annotated[float, Meta(ge=0.0, le=7 * 86400.0)] | Annotated[
    str, Meta(pattern=r"^\d{1,3}:[0-5]\d(:[0-5]\d)?$")]
Cost = Annotated[float, Meta(ge=0.0, le=1e9)]


class JobDepot(Struct, forbid_unknown_fields=True):
    """Where vehicles leave from and come back to: a node id or a point snapped to the network."""

    id: Name
    location: Place


class JobBreak(Struct, forbid_unknown_fields=True):
    """A break that starts between ``earliest`` and ``latest`` and lasts ``duration_s``."""

    earliest: TimeOfDay
    latest: TimeOfDay
    duration_s: Annotated[float, Meta(ge=0.0, le=86400.0)]


class JobVehicle(Struct, forbid_unknown_fields=True):
    """``count`` identical vehicles (ids ``<id>-1``, ``<id>-2``… when more than one). Costs: per
    vehicle used, per hour out (leaving to return) and per km; by default the objective is the
    hours out."""

    id: Name
    depot: Name
    capacity: Annotated[int, Meta(ge=0, le=10**9)]
    shift: Annotated[list[TimeOfDay], Meta(min_length=2, max_length=2)]
    count: Annotated[int, Meta(ge=1, le=1000)] = 1
    end_depot: Name | None = None
    breaks: list[JobBreak] = []
    fixed_cost: Cost = 0.0
    cost_per_hour: Cost = 1.0
    cost_per_km: Cost = 0.0
    skills: list[Name] = []


class JobStop(Struct, forbid_unknown_fields=True):
    """A pickup: ``demand`` units, ``service_s`` on site, starting inside one of ``windows`` (none:
    any time). ``penalty``: the cost of leaving it out; without one the stop must be served."""

    id: Name
    location: Place
    demand: Annotated[int, Meta(ge=0, le=10**9)] = 1
    service_s: Annotated[float, Meta(ge=0.0, le=86400.0)] = 0.0
    windows: list[Annotated[list[TimeOfDay], Meta(min_length=2, max_length=2)]] = []
    skills: list[Name] = []
    penalty: Cost | None = None


class JobStreet(Struct, forbid_unknown_fields=True):
    """A street to sweep: every segment of OSM way ``way``, or the one segment ``from`` -> ``to``
    (OSM node ids). ``sides``: ``both`` (each side once: on a two-way street one pass each way) or
    ``one`` (one pass, either way if two-way). Sweeping takes ``service_s_per_m`` and fills the
    hopper by ``demand_per_m`` (rounded up per segment)."""

    id: Name
    way: OsmId | None = None
    from_: OsmId | None = field(name="from", default=None)
    to: OsmId | None = None
    sides: Literal["both", "one"] = "both"
    service_s_per_m: Annotated[float, Meta(ge=0.0, le=60.0)] = 0.5
    demand_per_m: Annotated[float, Meta(ge=0.0, le=1e6)] = 0.0
    skills: list[Name] = []
    penalty: Cost | None = None


class JobOptions(Struct, forbid_unknown_fields=True):
    """The search: a time limit always; the first-solution heuristic and metaheuristic by name
    (``pilotage.routing.solver``); a seed."""

    time_limit_s: Annotated[float, Meta(gt=0.0, le=86400.0)] = 10.0
    first_solution: Annotated[str, Meta(max_length=64)] = "auto"
    metaheuristic: Annotated[str, Meta(max_length=64)] = "guided_local_search"
    seed: Annotated[int, Meta(ge=0, le=2**31 - 1)] = 0


class JobRoute(Struct, forbid_unknown_fields=True):
    """A vehicle's route from an earlier plan: stop and street ids in order (warm start)."""

    vehicle: Name
    visits: list[Name]


class Job(Struct, forbid_unknown_fields=True):
    """A routing job: bulky-waste pickups (``stops``), street cleaning (``streets``), or both.

    ``currency`` (an ISO 4217 code such as ``EUR``) is the money unit of every cost of the job;
    reports show it beside the costs. ``initial`` gives an earlier plan to start from, to re-plan
    during the day when a pickup is added: ids it names that the job no longer has are dropped, new
    ones inserted.
    """

    name: Name
    depots: Annotated[list[JobDepot], Meta(min_length=1)]
    vehicles: Annotated[list[JobVehicle], Meta(min_length=1)]
    stops: list[JobStop] = []
    streets: list[JobStreet] = []
    options: JobOptions = field(default_factory=JobOptions)
    initial: list[JobRoute] | None = None
    currency: Annotated[str, Meta(pattern=r"^[A-Z]{3}$")] | None = None


