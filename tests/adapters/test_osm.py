"""The OSM adapter on real extracts: drivable rule, speeds, compression, signals, the cache."""

import bz2
import gzip
import logging
import lzma
import math
from pathlib import Path

import numpy as np
import pytest

from pilotage.adapters import osm
from pilotage.core import DataFileError, InvalidInputError, NoRouteError, RoadNetwork

TEST_DATA = Path(__file__).resolve().parents[1] / "data"
HELSINKI = TEST_DATA / "helsinki-highways.osm.xz"


def reported(network: RoadNetwork, count: str) -> int:
    """One count of the network's build report."""
    value = network.build_report[count]
    assert isinstance(value, int)
    return value


@pytest.mark.parametrize(("value", "expected_kph"), [
    ("50", 50.0), (" 30 ", 30.0), ("50 km/h", 50.0), ("30 mph", 30 * 1.609344), ("FR:urban", 50.0),
    ("DE:zone30", 30.0), ("50;70", 60.0), (["30", "50"], 40.0), (90, 90.0), ("none", math.nan),
    ("signals", math.nan), ("0", math.nan), (None, math.nan), (math.nan, math.nan), ("XX:moon", math.nan),
])
def test_parse_maxspeed(value: object, expected_kph: float) -> None:
    got = osm.parse_maxspeed(value)
    assert (math.isnan(got) and math.isnan(expected_kph)) or got == pytest.approx(expected_kph)


@pytest.mark.parametrize(("tags", "drivable"), [
    ({"highway": "residential"}, True),
    ({"highway": "primary", "access": "destination"}, True),
    ({"highway": "service"}, True),
    ({"highway": "service", "service": "parking_aisle"}, False),
    ({"highway": "service", "service": "driveway"}, False),
    ({"highway": "footway"}, False),
    ({"highway": "track"}, False),
    ({"highway": "raceway"}, False),
    ({"highway": "pedestrian", "area": "yes"}, False),
    ({"highway": "residential", "motor_vehicle": "no"}, False),
    ({"highway": "tertiary", "access": "private"}, False),
    ({"highway": ["secondary", "tertiary"]}, True),
    ({}, False),
    # The most specific access tag decides.
    ({"highway": "primary", "access": "no", "motorcar": "yes"}, True),
    ({"highway": "residential", "access": "yes", "motor_vehicle": "no"}, False),
    ({"highway": "busway"}, False),
    ({"highway": "pedestrian", "psv": "yes"}, False),
])
def test_drivable_rule(tags: dict, drivable: bool) -> None:
    assert osm.is_drivable(tags) is drivable


@pytest.mark.parametrize(("tags", "restricted"), [
    ({"highway": "busway"}, True),
    ({"highway": "bus_guideway"}, True),
    ({"highway": "tertiary", "access": "no"}, True),  # a bus-only street, tagged as closed only
    ({"highway": "residential", "access": "no", "psv": "yes", "tram": "yes"}, True),
    ({"highway": "service", "access": "no", "psv": "yes"}, True),  # a bus station
    ({"highway": "unclassified", "motor_vehicle": "no", "bus": "designated"}, True),
    ({"highway": "residential", "access": "private"}, True),
    ({"highway": "residential", "access": "no", "bus": "yes", "psv": "no"}, True),  # bus is more specific
    ({"highway": "residential", "access": "no", "bus": "no"}, False),
    ({"highway": "residential", "access": "no", "psv": "no"}, False),
    ({"highway": "pedestrian"}, False),
    ({"highway": "pedestrian", "access": "no"}, False),
    ({"highway": "pedestrian", "psv": "yes"}, True),
    ({"highway": "pedestrian", "motor_vehicle": "no", "tram": "yes"}, True),
    ({"highway": "pedestrian", "area": "yes", "bus": "yes"}, False),
    ({"highway": "service", "service": "parking_aisle", "access": "no"}, False),
    ({"highway": "service", "service": "driveway", "access": "no", "psv": "yes"}, True),
    ({"highway": "footway", "bus": "yes"}, False),
    ({"highway": "cycleway", "access": "no"}, False),
    ({"highway": "residential"}, False),  # drivable: open to cars, so not restricted
    ({}, False),
])
def test_restricted_rule(tags: dict, restricted: bool) -> None:
    assert osm.is_restricted(tags) is restricted
    assert not (restricted and osm.is_drivable(tags))


def write_osm(path: Path, nodes: dict[int, tuple[float, float]],
              ways: list[tuple[int, list[int], dict[str, str]]]) -> Path:
    """An OSM XML file of these nodes (id: lon, lat in degrees) and ways (id, node ids, tags)."""
    lines = ["<?xml version='1.0' encoding='UTF-8'?>", "<osm version='0.6'>"]
    lines += [f"<node id='{i}' lat='{lat}' lon='{lon}'/>" for i, (lon, lat) in nodes.items()]
    lines += [f"<way id='{i}'>" + "".join(f"<nd ref='{r}'/>" for r in refs)
              + "".join(f"<tag k='{k}' v='{v}'/>" for k, v in tags.items()) + "</way>" for i, refs, tags in ways]
    path.write_text("\n".join([*lines, "</osm>"]))
    return path


def test_bus_only_roads_are_kept_restricted_and_cars_go_around(tmp_path: Path) -> None:
    # Cars drive 1 -> 4 -> 5 -> 3 (600 m); the bus-only street 1 -> 2 -> 3 is 200 m. Off the car
    # road 4 -> 5 hangs a bus station (junction 6, bus bay 7), a car-legal street 7 -> 9 that cars
    # reach only through it, and a one-way busway 7 -> 8 to a dead end.
    step = 0.0009  # about 100 m
    nodes = {1: (0.0, 2 * step), 2: (step, 2 * step), 3: (2 * step, 2 * step), 4: (0.0, 0.0), 5: (2 * step, 0.0),
             6: (step, -step / 2), 7: (step, -step), 8: (step, -2 * step), 9: (2 * step, -step)}
    path = write_osm(tmp_path / "bus.osm", nodes, [
        (10, [1, 4, 5, 3], {"highway": "residential"}),
        (11, [1, 2, 3], {"highway": "tertiary", "access": "no", "psv": "yes"}),
        (12, [4, 6, 5], {"highway": "service", "access": "no", "psv": "designated"}),
        (13, [6, 7], {"highway": "busway"}),
        (14, [7, 8], {"highway": "busway", "oneway": "yes"}),
        (15, [7, 9], {"highway": "residential"}),
        (16, [1, 5], {"highway": "footway"}),
    ])
    network = osm.load_network(path, cache_dir=tmp_path)
    node = {int(osmid): i for i, osmid in enumerate(network.node_osmid)}
    assert sorted(node) == [1, 3, 4, 5, 6, 7, 9]  # 2 merged into its street, 8 a dead end
    assert network.summary()["restricted_edges"] == int(network.restricted.sum()) == 10
    assert set(network.edge_osmid[network.restricted].tolist()) == {11, 12, 13, 15}
    assert not network.restricted[network.edge_osmid == 10].any()
    assert network.build_report["restricted_edges_dropped"] == 1
    assert network.build_report["restricted_as_beyond_cars_reach"] == 2
    assert sorted(network.node_osmid[network.car_nodes].tolist()) == [1, 3, 4, 5]

    by_car = network.shortest_path(node[1], node[3], weight="length_m")
    assert network.node_osmid[by_car.nodes].tolist() == [1, 4, 5, 3]
    assert by_car.length_m == pytest.approx(600.0, rel=0.01)
    assert network.matrix([node[1]], [node[3]], weight="length_m")[0, 0] == pytest.approx(by_car.length_m)
    by_bus = network.shortest_path(node[1], node[3], weight=network.length_m)
    assert network.edge_osmid[by_bus.edges].tolist() == [11]
    assert by_bus.length_m == pytest.approx(200.0, rel=0.01)
    to_bay = network.shortest_path(node[1], node[9], weight=network.travel_time_s)
    assert network.node_osmid[to_bay.nodes].tolist() == [1, 4, 6, 7, 9]

    # Cars are never placed where they could not leave.
    assert network.snap(*nodes[7])[0] == node[4]
    with pytest.raises(InvalidInputError, match="closed to cars") as error:
        network.place_node(7, "origin")
    assert error.value.field == "origin"
    with pytest.raises(NoRouteError, match="restricted"):
        network.shortest_path(node[1], node[7])
    assert network.one_to_many(node[1], [node[7]])[0] == math.inf


def test_embedded_city_is_at_dijon_scale(city: RoadNetwork) -> None:
    assert len(city.intersections) >= 100
    assert city.n_nodes > 1000
    min_lon, min_lat, max_lon, max_lat = city.bounding_box
    assert 6.0 < min_lon < max_lon < 6.25
    assert 49.5 < min_lat < max_lat < 49.7
    assert city.build_report["source"] == "luxembourg-lust.osm.xz"
    # Every intersection has approaches, and each enters one of its own signal nodes.
    approaches = np.diff(city.intersections.approach_ptr)
    assert (approaches >= 1).all()
    for k in range(len(city.intersections)):
        heads = city.indices[city.intersections.approaches(k)]
        assert set(heads.tolist()) <= set(city.intersections.signal_nodes(k).tolist())


def test_real_extract_with_footways_and_service_aisles(helsinki: RoadNetwork) -> None:
    assert reported(helsinki, "non_drivable_edges_dropped") > 1000
    assert len(helsinki.intersections) >= 30
    assert "footway" not in helsinki.road_classes
    assert set(helsinki.road_class.tolist()) <= {helsinki.road_classes.index(c) for c in osm.ROAD_CLASS_SPEED_KPH}


def test_one_way_streets_are_respected() -> None:
    graph = osm.read_osm(HELSINKI)
    network = osm.network_from_graph(graph)
    one_way_ways = {d["osmid"] for _, _, d in graph.edges(data=True) if d.get("oneway") is True}
    assert one_way_ways
    edges = set(zip(network.edge_source.tolist(), network.indices.tolist(), network.edge_osmid.tolist(), strict=True))
    one_way_edges = [(u, v, w) for u, v, w in edges if w in one_way_ways]
    assert one_way_edges
    assert not [(u, v, w) for u, v, w in one_way_edges if u != v and (v, u, w) in edges]


def test_edges_without_length_are_measured_along_the_street(helsinki: RoadNetwork) -> None:
    graph = osm.read_osm(HELSINKI)
    for _, _, tags in graph.edges(data=True):
        del tags["length"]
    network = osm.network_from_graph(graph)
    drivable = graph.number_of_edges() - reported(network, "non_drivable_edges_dropped")
    assert network.build_report["length_from_straight_line"] == drivable
    # osmnx's own lengths are these straight segments, summed along each street.
    np.testing.assert_allclose(network.length_m, helsinki.length_m, rtol=1e-9)


def test_edges_without_maxspeed_take_their_class_default() -> None:
    graph = osm.read_osm(HELSINKI)
    for _, _, tags in graph.edges(data=True):
        tags.pop("maxspeed", None)
    network = osm.network_from_graph(graph)
    # Counted over the simplified edges, before the strongly connected component is kept.
    assert reported(network, "speed_from_class_default") >= network.n_edges
    expected_kph = [osm.ROAD_CLASS_SPEED_KPH[network.road_classes[c]] for c in network.road_class]
    np.testing.assert_array_equal(network.speed_kph, expected_kph)


def test_speeds_come_from_maxspeed_then_class_default(city: RoadNetwork) -> None:
    speeds = set(np.unique(city.speed_kph).tolist())
    assert {50.0, 70.0, 90.0} <= speeds  # tagged in the extract
    assert reported(city, "speed_from_class_default") > 0
    assert (city.travel_time_s == pytest.approx(city.length_m / (city.speed_kph / 3.6)))


@pytest.mark.parametrize("compress", [None, gzip.compress, bz2.compress, lzma.compress])
def test_plain_and_compressed_files_give_the_same_network(compress, tmp_path: Path, helsinki: RoadNetwork) -> None:
    xml = lzma.decompress(HELSINKI.read_bytes())
    path = tmp_path / "helsinki.osm"
    path.write_bytes(compress(xml) if compress else xml)
    network = osm.load_network(path, cache_dir=tmp_path)
    np.testing.assert_array_equal(network.indices, helsinki.indices)
    np.testing.assert_array_equal(network.length_m, helsinki.length_m)


def test_the_cache_is_used_and_a_broken_one_rebuilt(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    built = osm.load_network(HELSINKI, cache_dir=tmp_path)
    (cached,) = tmp_path.glob("network-*.npz")

    def no_build(path: Path) -> None:
        raise AssertionError("the cached network should have been loaded")

    monkeypatch.setattr(osm, "read_osm", no_build)
    np.testing.assert_array_equal(osm.load_network(HELSINKI, cache_dir=tmp_path).indices, built.indices)
    monkeypatch.undo()
    cached.write_bytes(b"not a network")
    with caplog.at_level(logging.WARNING):
        rebuilt = osm.load_network(HELSINKI, cache_dir=tmp_path)
    assert "cache is unusable" in caplog.text
    np.testing.assert_array_equal(rebuilt.indices, built.indices)


def test_an_unwritable_cache_only_warns(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with caplog.at_level(logging.WARNING):
        network = osm.load_network(HELSINKI, cache_dir=blocker / "cache")
    assert network.n_nodes > 0
    assert "could not cache" in caplog.text


@pytest.mark.parametrize(("content", "message"), [
    (b"", "cannot read"),
    (b"\x00\x01binary garbage\xff", "cannot read"),
    (b"<osm version='0.6'></osm>", "cannot read"),
    (b"<html><body>not a map</body></html>", "cannot read"),
    (b"\xfd7zXZ\x00 truncated xz", "cannot decompress"),
    (b"<osm version='0.6'><node id='1' lat='0' lon='0'/><node id='2' lat='0' lon='0.001'/>"
     b"<way id='3'><nd ref='1'/><nd ref='2'/><tag k='highway' v='footway'/></way></osm>", "no drivable way"),
])
def test_bad_files_give_a_data_file_error(content: bytes, message: str, tmp_path: Path) -> None:
    path = tmp_path / "bad.osm"
    path.write_bytes(content)
    with pytest.raises(DataFileError, match=message):
        osm.load_network(path, cache_dir=tmp_path)


def test_a_missing_file_gives_a_data_file_error(tmp_path: Path) -> None:
    with pytest.raises(DataFileError, match="cannot read the OSM file"):
        osm.load_network(tmp_path / "nowhere.osm", cache_dir=tmp_path)
    with pytest.raises(DataFileError, match="no OSM file"):
        osm.read_osm(tmp_path / "nowhere.osm")


def test_cache_directory_follows_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PILOTAGE_CACHE_DIR", str(tmp_path / "a"))
    assert osm.cache_directory() == tmp_path / "a"
    monkeypatch.delenv("PILOTAGE_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "b"))
    assert osm.cache_directory() == tmp_path / "b" / "pilotage"
