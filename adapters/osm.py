"""OpenStreetMap: local extracts read with osmnx into a :class:`~pilotage.core.RoadNetwork`.

This is the only module that imports osmnx and networkx. No step touches the network: osmnx
reads the file given, nothing else.

The rules, applied in :func:`network_from_graph`:

- **Drivable ways** (:func:`is_drivable`, open to cars): ``highway`` one of the car classes of
  :data:`ROAD_CLASS_SPEED_KPH` (motorways down to living streets, links, ``road`` and ``service``);
  not ``area=yes``; cars allowed by the most specific of ``motorcar``, ``motor_vehicle``,
  ``vehicle``, ``access`` that is tagged (:data:`ACCESS_TAGS`: ``access=no`` with
  ``motorcar=yes`` is open, no tag at all is open), that is, its value is not one of
  :data:`CLOSED_ACCESS` (``destination``, ``delivery``, ``customers`` stay open: a car may drive
  there to reach a place on it); a ``service`` way whose ``service`` tag is one of
  :data:`EXCLUDED_SERVICE` (parking aisles, driveways...) is left out.
- **Restricted ways** (:func:`is_restricted`, closed to cars, kept for buses, trams and emergency
  vehicles): ``highway=busway`` and ``bus_guideway`` always; a way of a car class that cars may
  not use, whatever its ``bus``/``psv``/``tram`` tags say, unless ``bus`` (or else ``psv``) closes
  it too; ``highway=pedestrian`` and the service ways of :data:`EXCLUDED_SERVICE` only where
  ``bus``, ``psv`` or ``tram`` is ``yes``, ``designated`` or ``permissive``. Their edges are marked
  :attr:`~pilotage.core.RoadNetwork.restricted`: cars never route on them. Footways, paths,
  cycleways, steps, tracks, raceways, construction and the like are neither, so they are left out.
- **One-way streets** as osmnx reads them (``oneway=yes/true/1/-1/reverse``, roundabouts).
- **Free-flow speed**: the ``maxspeed`` tag (:func:`parse_maxspeed`: km/h, mph, implicit values
  such as ``FR:urban``; the mean where several are given); where it gives nothing, the default of
  the road class in :data:`ROAD_CLASS_SPEED_KPH`.
- **Length**: osmnx's ``length``; where a segment has none, the straight line between its nodes
  (before simplification, so a merged edge follows the street).
- **Simplification**: chains of degree-two nodes are merged into one edge (osmnx), except at
  traffic-signal nodes and where ``highway``, ``maxspeed`` or being restricted changes.
- **Signalised intersections**: ``highway=traffic_signals`` nodes, grouped as
  :data:`~pilotage.core.SIGNAL_GROUPING_RADIUS_M` says.

Networks built from a file are cached as ``.npz`` under :func:`cache_directory`, keyed by the
file's content and :data:`BUILD_VERSION`, so the next start loads in milliseconds.
"""

from __future__ import annotations

import bz2
import gzip
import hashlib
import logging
import lzma
import math
import os
import re
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from pilotage.core import SIGNAL_GROUPING_RADIUS_M, DataFileError, RoadNetwork

if TYPE_CHECKING:
    import networkx as nx

logger = logging.getLogger(__name__)

#: The OSM extract shipped with pilotage: Luxembourg City, from the LuST scenario
#: (see ``data/ATTRIBUTION.md``).
EMBEDDED_CITY = Path(__file__).with_name("data") / "luxembourg-lust.osm.xz"

#: Road classes (OSM ``highway`` values) a network may hold and their free-flow speed (km/h) where
#: no ``maxspeed`` is tagged: urban European defaults. Those of :data:`CLOSED_TO_CARS` hold only
#: restricted ways.
ROAD_CLASS_SPEED_KPH: dict[str, float] = {
    "motorway": 110.0,
    "motorway_link": 60.0,
    "trunk": 90.0,
    "trunk_link": 50.0,
    "primary": 50.0,
    "primary_link": 40.0,
    "secondary": 50.0,
    "secondary_link": 40.0,
    "tertiary": 50.0,
    "tertiary_link": 30.0,
    "unclassified": 40.0,
    "residential": 30.0,
    "living_street": 20.0,
    "road": 30.0,
    "busway": 50.0,
    "service": 20.0,
    "bus_guideway": 50.0,
    "pedestrian": 20.0,
}

#: Road classes cars never use: ways built for buses, and pedestrian streets (kept only where
#: buses or trams are let in).
CLOSED_TO_CARS = frozenset({"busway", "bus_guideway", "pedestrian"})

#: ``service=*`` values of ``highway=service`` ways that are not through roads.
EXCLUDED_SERVICE = frozenset({"parking_aisle", "parking", "driveway", "drive-through", "alley",
                              "emergency_access", "private"})

#: The access tags that say whether cars may use a way, the most specific first: the first one
#: tagged decides (OSM's access hierarchy).
ACCESS_TAGS = ("motorcar", "motor_vehicle", "vehicle", "access")

#: The access tags of public transport: ``bus`` is more specific than ``psv``; ``tram`` opens a
#: way to trams.
PUBLIC_TRANSPORT_TAGS = ("bus", "psv", "tram")

#: Access values that close a way to the vehicles the tag is about (the public's cars, or buses).
CLOSED_ACCESS = frozenset({"no", "private", "agricultural", "forestry", "emergency", "military", "permit",
                           "psv", "bus"})

#: Access values of ``bus``, ``psv`` or ``tram`` that let buses or trams onto a way closed to cars.
OPEN_ACCESS = frozenset({"yes", "designated", "permissive"})

#: Implicit ``maxspeed`` values (the part after ``XX:``), km/h.
IMPLICIT_MAXSPEED_KPH: dict[str, float] = {
    "urban": 50.0,
    "rural": 80.0,
    "trunk": 110.0,
    "motorway": 130.0,
    "zone30": 30.0,
    "zone20": 20.0,
    "living_street": 20.0,
    "bicycle_road": 30.0,
    "walk": 6.0,
}

#: Bump when a rule above changes, so cached networks are rebuilt.
BUILD_VERSION = 2

_KPH_PER_MPH = 1.609344
_NUMERIC_SPEED = re.compile(r"(\d+(?:\.\d+)?)\s*(mph|km/h|kmh|kph)?")
_SIGNAL_MARK = "pilotage_signal"
_RESTRICTED_MARK = "pilotage_restricted"


def is_drivable(tags: Mapping[str, object]) -> bool:
    """Whether a way with these OSM tags is open to cars (the rule in the module docstring)."""
    highway = _first(tags.get("highway"))
    if highway not in ROAD_CLASS_SPEED_KPH or highway in CLOSED_TO_CARS or _first(tags.get("area")) == "yes":
        return False
    if _car_access(tags) in CLOSED_ACCESS:
        return False
    return not (highway == "service" and _first(tags.get("service")) in EXCLUDED_SERVICE)


def is_restricted(tags: Mapping[str, object]) -> bool:
    """Whether a way with these OSM tags is kept though closed to cars, for buses, trams and
    emergency vehicles (the rule in the module docstring). False for a drivable way."""
    highway = _first(tags.get("highway"))
    if highway not in ROAD_CLASS_SPEED_KPH or _first(tags.get("area")) == "yes" or is_drivable(tags):
        return False
    if highway in ("busway", "bus_guideway"):
        return True
    # bus is more specific than psv: bus=yes with psv=no lets buses in.
    bus = next((_first(tags[tag]) for tag in ("bus", "psv") if tags.get(tag) is not None), None)
    opened = bus in OPEN_ACCESS or _first(tags.get("tram")) in OPEN_ACCESS
    # A pedestrian street or a parking aisle is no road for a bus unless the map says buses go there.
    if highway == "pedestrian" or (highway == "service" and _first(tags.get("service")) in EXCLUDED_SERVICE):
        return opened
    return opened or bus not in CLOSED_ACCESS


def _car_access(tags: Mapping[str, object]) -> object:
    # The most specific access tag present decides: access=no with motorcar=yes lets cars in.
    return next((_first(tags[tag]) for tag in ACCESS_TAGS if tags.get(tag) is not None), None)


def parse_maxspeed(value: object) -> float:
    """Speed (km/h) given by an OSM ``maxspeed`` value, NaN when it gives none.

    Understands ``"50"``, ``"30 mph"``, ``"50 km/h"``, implicit values such as ``"FR:urban"`` or
    ``"DE:zone30"``, and several values (``"50;30"`` or a list, as osmnx gives after
    simplification), of which it takes the mean. ``"none"``, ``"signals"``, ``"variable"`` and
    anything else unknown give NaN: the road class's default applies.
    """
    if isinstance(value, list | tuple) or (isinstance(value, str) and ";" in value):
        parts = value.split(";") if isinstance(value, str) else value
        speeds = [s for s in (parse_maxspeed(part) for part in parts) if not math.isnan(s)]
        return float(np.mean(speeds)) if speeds else math.nan
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value) if math.isfinite(value) and value > 0 else math.nan
    if not isinstance(value, str):
        return math.nan
    text = value.strip().lower()
    if ":" in text:
        return IMPLICIT_MAXSPEED_KPH.get(text.split(":", 1)[1].replace(" ", ""), math.nan)
    match = _NUMERIC_SPEED.fullmatch(text)
    if match is None or float(match.group(1)) <= 0:
        return math.nan
    speed = float(match.group(1))
    return speed * _KPH_PER_MPH if match.group(2) == "mph" else speed


def read_osm(path: str | os.PathLike[str]) -> nx.MultiDiGraph:
    """Read a local OSM XML file (``.osm``, ``.osm.xml``, compressed with gzip, bzip2 or xz) with osmnx.

    Returns osmnx's unsimplified graph of every way, with the tags the rules above need, and all
    its components. Compression is recognised from the file's first bytes, not its name.

    Raises:
        DataFileError: the file is missing, unreadable, or not OSM XML with ways.
    """
    import osmnx as ox  # noqa: PLC0415 - costs a second at import; only a build needs it

    path = Path(path)
    if not path.is_file():
        raise DataFileError(f"no OSM file at {path}; give the path of a .osm, .osm.xml, .gz, .bz2 or .xz extract")
    useful_tags = ox.settings.useful_tags_way
    ox.settings.useful_tags_way = sorted({*useful_tags, *ACCESS_TAGS, *PUBLIC_TRANSPORT_TAGS})
    try:
        with tempfile.TemporaryDirectory(prefix="pilotage-osm-") as tmp:
            xml_path = decompressed(path, Path(tmp))
            return ox.graph_from_xml(xml_path, bidirectional=False, simplify=False, retain_all=True)
    except DataFileError:
        raise
    except Exception as exc:
        # osmnx and the XML parser raise many kinds of errors on bad input; all mean the same here.
        raise DataFileError(f"cannot read {path} as an OSM XML extract: {type(exc).__name__}: {exc}") from exc
    finally:
        ox.settings.useful_tags_way = useful_tags


def network_from_graph(graph: nx.MultiDiGraph, *, grouping_radius_m: float = SIGNAL_GROUPING_RADIUS_M,
                       build_report: dict[str, object] | None = None) -> RoadNetwork:
    """Build a :class:`RoadNetwork` from an osmnx graph (simplified or not), with the rules above.

    Raises:
        DataFileError: the graph has no drivable way.
    """
    import osmnx as ox  # noqa: PLC0415 - see read_osm

    report = dict(build_report or {})
    # The edges kept, each closed to cars (restricted) or not.
    closed_to_cars = {(u, v, k): not is_drivable(tags) for u, v, k, tags in graph.edges(keys=True, data=True)
                      if is_drivable(tags) or is_restricted(tags)}
    report["non_drivable_edges_dropped"] = graph.number_of_edges() - len(closed_to_cars)
    if all(closed_to_cars.values()):
        raise DataFileError("the map holds no drivable way (highway=motorway ... service, open to cars); "
                            "give an extract of a street network")
    # types-networkx types edge_subgraph's edges as (u, v) pairs; a multigraph's are (u, v, key).
    graph = graph.edge_subgraph(closed_to_cars).copy()  # type: ignore[arg-type]
    for u, v, k, tags in graph.edges(keys=True, data=True):
        tags[_RESTRICTED_MARK] = closed_to_cars[u, v, k]
    for _, tags in graph.nodes(data=True):
        if _first(tags.get("highway")) == "traffic_signals":
            tags[_SIGNAL_MARK] = True
    lengths_from_straight_line = 0
    if not graph.graph.get("simplified", False):
        # Segments without a length get their straight line before merging, so sums follow the street.
        no_length = [(u, v, k) for u, v, k, d in graph.edges(keys=True, data=True)
                     if math.isnan(_number(d.get("length")))]
        lengths_from_straight_line = len(no_length)
        report["length_from_straight_line"] = lengths_from_straight_line
        if no_length:
            ox.distance.add_edge_lengths(graph, edges=no_length)
        graph = ox.simplify_graph(graph, node_attrs_include=[_SIGNAL_MARK],
                                  edge_attrs_differ=["highway", "maxspeed", _RESTRICTED_MARK])

    nodes = list(graph.nodes)
    position = {node: i for i, node in enumerate(nodes)}
    node_data = [graph.nodes[node] for node in nodes]
    road_classes = tuple(ROAD_CLASS_SPEED_KPH)
    class_index = {name: i for i, name in enumerate(road_classes)}
    edges = list(graph.edges(data=True))
    road_class = np.array([class_index[_first(d.get("highway"))] for _, _, d in edges], dtype=np.int64)
    maxspeed_kph = np.array([parse_maxspeed(d.get("maxspeed")) for _, _, d in edges], dtype=np.float64)
    default_kph = np.array([ROAD_CLASS_SPEED_KPH[road_classes[c]] for c in road_class], dtype=np.float64)
    length_m = np.array([_number(d.get("length")) for _, _, d in edges], dtype=np.float64)
    report["speed_from_class_default"] = int(np.isnan(maxspeed_kph).sum())
    report["length_from_straight_line"] = lengths_from_straight_line + int(np.isnan(length_m).sum())
    return RoadNetwork.from_edges(
        node_osmid=np.array([_osm_id(node) for node in nodes], dtype=np.int64),
        node_lon=np.array([d["x"] for d in node_data], dtype=np.float64),
        node_lat=np.array([d["y"] for d in node_data], dtype=np.float64),
        tail=np.array([position[u] for u, _, _ in edges], dtype=np.int64),
        head=np.array([position[v] for _, v, _ in edges], dtype=np.int64),
        length_m=length_m,
        speed_kph=np.where(np.isnan(maxspeed_kph), default_kph, maxspeed_kph),
        road_class=road_class,
        road_classes=road_classes,
        edge_osmid=np.array([_osm_id(_first(d.get("osmid", -1))) for _, _, d in edges], dtype=np.int64),
        restricted=np.array([bool(_first(d[_RESTRICTED_MARK])) for _, _, d in edges], dtype=np.bool_),
        signal_nodes=np.array([i for i, d in enumerate(node_data) if d.get(_SIGNAL_MARK)], dtype=np.int64),
        grouping_radius_m=grouping_radius_m,
        build_report=report,
    )


def cache_directory() -> Path:
    """Where built networks are cached: ``$PILOTAGE_CACHE_DIR``, else ``$XDG_CACHE_HOME/pilotage``,
    else ``~/.cache/pilotage``."""
    if os.environ.get("PILOTAGE_CACHE_DIR"):
        return Path(os.environ["PILOTAGE_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "pilotage"


def load_network(path: str | os.PathLike[str] | None = None, *, cache_dir: str | os.PathLike[str] | None = None,
                 rebuild: bool = False, grouping_radius_m: float = SIGNAL_GROUPING_RADIUS_M) -> RoadNetwork:
    """The road network of an OSM extract (default: the embedded city), from the cache when built before.

    The first call for a file builds the network (a few seconds) and writes it to the cache; later
    calls load it. A cache that cannot be written or read only costs a rebuild, with a warning.

    Raises:
        DataFileError: the file is missing, unreadable, or holds no drivable network.
    """
    path, content = osm_content(path)
    digest = hashlib.sha256(content)
    digest.update(f"build {BUILD_VERSION} radius {grouping_radius_m!r}".encode())
    cached = Path(cache_dir) if cache_dir is not None else cache_directory()
    cached = cached / f"network-{digest.hexdigest()[:24]}.npz"
    if cached.is_file() and not rebuild:
        try:
            return RoadNetwork.load(cached)
        except DataFileError as exc:
            logger.warning("rebuilding the network: the cache is unusable (%s)", exc)
    logger.info("building the road network of %s (first use; cached afterwards)", path.name)
    network = network_from_graph(read_osm(path), grouping_radius_m=grouping_radius_m,
                                 build_report={"source": path.name, "sha256": hashlib.sha256(content).hexdigest()})
    try:
        cached.parent.mkdir(parents=True, exist_ok=True)
        network.save(cached)
    except OSError as exc:
        logger.warning("could not cache the network in %s (%s); the next start builds it again", cached.parent, exc)
    return network


def osm_content(path: str | os.PathLike[str] | None) -> tuple[Path, bytes]:
    """The path of an OSM extract (None: the embedded city) and its bytes, as they are (compressed
    or not), for a cache key.

    Raises:
        DataFileError: the file is missing or unreadable.
    """
    path = Path(path) if path is not None else EMBEDDED_CITY
    try:
        return path, path.read_bytes()
    except OSError as exc:
        raise DataFileError(f"cannot read the OSM file {path}: {exc.strerror or exc}; give the path of a .osm, "
                            ".osm.xml, .gz, .bz2 or .xz extract, or none for the embedded city") from exc


def decompressed(path: Path, folder: Path) -> Path:
    """``path`` itself when it is plain OSM XML, else its content decompressed (gzip, bzip2 or xz,
    told by its first bytes) into ``folder``.

    Raises:
        DataFileError: a compressed file that cannot be decompressed.
    """
    with open(path, "rb") as f:
        magic = f.read(6)
    opener: dict[bytes, type[gzip.GzipFile | bz2.BZ2File | lzma.LZMAFile]] = {
        b"\x1f\x8b": gzip.GzipFile, b"BZh": bz2.BZ2File, b"\xfd7zXZ": lzma.LZMAFile}
    for prefix, open_compressed in opener.items():
        if magic.startswith(prefix):
            target = folder / "extract.osm"
            try:
                with open_compressed(path, "rb") as source, open(target, "wb") as out:
                    shutil.copyfileobj(source, out)
            except (OSError, EOFError, lzma.LZMAError) as exc:
                raise DataFileError(f"cannot decompress {path}: {exc}") from exc
            return target
    return path


def _first(value: Any) -> Any:
    # Simplified osmnx edges carry a list where merged ways differed; the first one stands for all.
    return value[0] if isinstance(value, list) and value else value


def _number(value: object) -> float:
    try:
        number = float(_first(value))
    except (TypeError, ValueError):
        return math.nan
    return number if math.isfinite(number) and number >= 0 else math.nan


def _osm_id(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return -1
