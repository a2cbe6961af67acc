"""The configuration file of ``pilotage serve``: TOML, with every option of the command line and the
engines' parameters, checked whole before anything starts (docs/operations.md, "Configuration").

Its keys are the command line's options with ``_`` for ``-`` (``queue_limit`` for
``--queue-limit``), and two tables: ``[priority]``, the fields of
:class:`~pilotage.signal_priority.PriorityConfig`, and ``[corridors]``, those of
:class:`~pilotage.signal_priority.CorridorConfig`. A flag given on the command line overrides the
file's value. Relative paths in the file are relative to the file's folder, so that a file and the
files it names can move together.
"""

from __future__ import annotations

import difflib
import json
import os
import sys
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

import msgspec
from msgspec import Meta, Struct, field

from pilotage.adapters.zeromq import DEFAULT_ENDPOINT, DEFAULT_EVENTS_ENDPOINT
from pilotage.core.errors import DataFileError, InvalidInputError, PilotageError
from pilotage.core.protocol import COMMAND_TTL_S, DEFAULT_QUEUE_LIMIT, MAX_MESSAGE_BYTES
from pilotage.signal_priority import CorridorConfig, PriorityConfig

_Config = TypeVar("_Config", PriorityConfig, CorridorConfig)


class ServeConfig(Struct, kw_only=True, frozen=True):
    """What ``pilotage serve`` runs with: the schema of the configuration file.

    Attributes:
        bind: the request endpoint (ROUTER).
        pub: the event endpoint (PUB).
        keys: the CurveZMQ keys directory; None: CurveZMQ off.
        insecure: serve without CurveZMQ on an endpoint beyond loopback.
        audit: the audit log; None: ``audit.jsonl`` in the state directory.
        max_message_bytes: larger requests get ``TOO_LARGE``.
        queue_limit: requests taken at once; more get ``OVERLOADED``.
        carparks: the car parks (BNLS, CSV or GeoJSON); None: the embedded city's sample.
        parking_db, routing_db, state_db: the SQLite files of reservations, routing jobs and the
            signals' state; None: in the state directory.
        counts: CSV files of counts of free spaces, for the forecasts.
        metrics: ``HOST:PORT`` of the Prometheus metrics and health check; None: not served.
        osm: the city's OSM extract; None: the embedded city.
        sumocfg: a SUMO scenario whose road network and traffic lights' programs are the city's
            (instead of ``osm``), as ``pilotage simulate`` reads them.
        clock: ``wall``: the engines run on the host's clock; ``field``: on the clock a field
            adapter sends (``signals.command``), as a simulator or controllers keeping their own
            time do.
        command_ttl_s: how long a field adapter runs a command without a newer one (s).
        gtfs: a GTFS feed (zip or folder): its bus and tram trips, matched onto the city's network,
            are those ``vehicle.position`` names (docs/positions.md); None: no trip is known.
        gtfs_date: the service day of the feed's trips (ISO date, ``YYYY-MM-DD``); None: today, in
            the feed's timezone.
        vehicle_positions: a GTFS-Realtime VehiclePositions source read as the buses' positions:
            a file, an ``http(s)://`` URL, or ``zmq+tcp://HOST:PORT/TOPIC``; None: none.
        trip_updates: the GTFS-Realtime TripUpdates file written every second with the delays of
            the trips followed; None: none.
        priority: the parameters of bus and tram priority.
        corridors: the parameters of emergency corridors.
    """

    bind: str = DEFAULT_ENDPOINT
    pub: str = DEFAULT_EVENTS_ENDPOINT
    keys: str | None = None
    insecure: bool = False
    audit: str | None = None
    max_message_bytes: Annotated[int, Meta(ge=1)] = MAX_MESSAGE_BYTES
    queue_limit: Annotated[int, Meta(ge=1)] = DEFAULT_QUEUE_LIMIT
    carparks: str | None = None
    parking_db: str | None = None
    routing_db: str | None = None
    state_db: str | None = None
    counts: list[str] = field(default_factory=list)
    metrics: str | None = None
    osm: str | None = None
    sumocfg: str | None = None
    clock: Literal["wall", "field"] = "wall"
    command_ttl_s: Annotated[float, Meta(gt=0.0, le=60.0)] = COMMAND_TTL_S
    gtfs: str | None = None
    gtfs_date: Annotated[str, Meta(pattern=r"^\d{4}-\d{2}-\d{2}$")] | None = None
    vehicle_positions: str | None = None
    trip_updates: str | None = None
    priority: PriorityConfig = field(default_factory=PriorityConfig)
    corridors: CorridorConfig = field(default_factory=CorridorConfig)


#: The options of ``pilotage serve``, with their types; the two engine tables are read apart.
_OPTIONS = typing.get_type_hints(ServeConfig, include_extras=True)
_TABLES = {"priority": PriorityConfig, "corridors": CorridorConfig}
#: The options that name a file or a folder: relative ones in the file are relative to its folder.
_PATHS = frozenset({"keys", "audit", "carparks", "parking_db", "routing_db", "state_db", "osm", "sumocfg", "gtfs",
                    "trip_updates"})


def read_serve_config(path: str | os.PathLike[str] | None, flags: Mapping[str, object]) -> ServeConfig:
    """The options ``pilotage serve`` runs with: the file's (without one, the defaults), each
    replaced by the flag of the same name given on the command line (``flags``; None: not given).

    Raises:
        DataFileError: the file cannot be read, or is not TOML.
        InvalidInputError: an unknown key, or a value of the wrong type or out of range; the message
            begins with the key (``priority.max_extension_s: expected ...``), which ``field`` gives.
    """
    settings = _read_toml(Path(path)) if path is not None else {}
    tables = {name: settings.pop(name) for name in _TABLES if name in settings}
    given = {name: value for name, value in flags.items() if value is not None}
    options = _checked({**settings, **given}, _OPTIONS, "")
    if path is not None:
        folder = Path(path).parent
        for name in (_PATHS & settings.keys()) - given.keys():
            options[name] = str(folder / options[name])
        if "counts" in settings and "counts" not in given:
            options["counts"] = [str(folder / counts) for counts in options["counts"]]
    if options.get("osm") and options.get("sumocfg"):
        raise InvalidInputError("sumocfg: expected the city from an OSM extract or from a SUMO scenario, got both; "
                                "give osm or sumocfg", field="sumocfg")
    # Each table's engine config, by ServeConfig's field of the same name.
    engines: dict[str, Any] = {name: _engine_config(kind, tables.get(name, {}), name) for name, kind in _TABLES.items()}
    return ServeConfig(**options, **engines)


def _read_toml(path: Path) -> dict[str, Any]:
    # tomllib is in the standard library from Python 3.11 on; pilotage itself runs on 3.10 as well.
    # (The version check, not a try around the import, is what tells mypy where tomllib exists.)
    if sys.version_info < (3, 11):
        raise PilotageError("a configuration file needs Python 3.11 or later (tomllib); on Python 3.10, give "
                            "the options as flags")
    else:
        import tomllib  # noqa: PLC0415

        try:
            with path.open("rb") as file:
                return tomllib.load(file)
        except OSError as exc:
            raise DataFileError(f"cannot read the configuration file {path}: {exc.strerror}; give an existing "
                                "TOML file (docs/operations.md, \"Configuration\")") from None
        except tomllib.TOMLDecodeError as exc:
            raise DataFileError(f"cannot read the configuration file {path} as TOML: {exc}; fix it there "
                                "(docs/operations.md, \"Configuration\")") from None


def _engine_config(kind: type[_Config], table: object, name: str) -> _Config:
    """An engine's parameters from its table: each value of its field's type, then the engine's own
    checks of their ranges."""
    if not isinstance(table, dict):
        raise InvalidInputError(f"{name}: expected a table ([{name}]), got {_shown(table)}", field=name)
    values = _checked(table, typing.get_type_hints(kind), f"{name}.")
    try:
        return kind(**values)
    except InvalidInputError as exc:
        where = f"{name}.{exc.field}"
        raise InvalidInputError(f"{where}: {exc}", field=where) from None


def _checked(table: Mapping[str, object], types: Mapping[str, Any], prefix: str) -> dict[str, Any]:
    """The table's values, each converted to its key's type (an integer to a float, say).

    Raises:
        InvalidInputError: a key not in ``types``, or a value not of its key's type.
    """
    checked = {}
    for key, value in table.items():
        where = prefix + key
        if key not in types:
            close = difflib.get_close_matches(key, types, n=1)
            hint = f"did you mean {prefix}{close[0]}? " if close else ""
            raise InvalidInputError(f"{where}: unknown key; {hint}expected one of {', '.join(types)}", field=where)
        try:
            checked[key] = msgspec.convert(value, types[key])
        except msgspec.ValidationError:
            expected = _describe(msgspec.inspect.type_info(types[key]))
            raise InvalidInputError(f"{where}: expected {expected}, got {_shown(value)}", field=where) from None
    return checked


def _describe(kind: msgspec.inspect.Type) -> str:
    """A type in words, as TOML holds it: ``a whole number >= 1``, ``a list, each a string``."""
    inspect = msgspec.inspect
    if isinstance(kind, inspect.UnionType):
        # TOML has no null: an optional value is left out, or given as its other type.
        return " or ".join(_describe(member) for member in kind.types if not isinstance(member, inspect.NoneType))
    if isinstance(kind, inspect.ListType):
        return f"a list, each {_describe(kind.item_type)}"
    if isinstance(kind, inspect.LiteralType):
        return "one of " + ", ".join(json.dumps(value) for value in kind.values)
    if isinstance(kind, inspect.DictType):
        return f"a table, each value {_describe(kind.value_type)}"
    words = {inspect.StrType: "a string", inspect.BoolType: "true or false", inspect.IntType: "a whole number",
             inspect.FloatType: "a number"}[type(kind)]
    bounds = [f"{sign} {getattr(kind, bound)}" for bound, sign in (("ge", ">="), ("gt", ">"), ("le", "<="))
              if getattr(kind, bound, None) is not None]
    return " ".join([words, *bounds])


def _shown(value: object) -> str:
    """A value as the file wrote it, near enough: strings quoted, tables and lists as JSON."""
    return json.dumps(value, default=str)
