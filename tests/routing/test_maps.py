"""The HTML route maps: self-contained, escaped, one element per feature, counting the stops and
street sides served, robust to odd collections."""

import math
import re
from html.parser import HTMLParser
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pilotage.core.errors import InvalidInputError
from pilotage.routing.maps import render_html

#: Elements without an end tag in HTML.
VOID = {"meta", "input", "br", "hr", "img", "link"}


class Page(HTMLParser):
    """Every start tag with its attributes, checking that end tags close what they open."""

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str]]] = []
        self.open: list[str] = []
        self.feed(text)
        self.close()
        assert not self.open, f"unclosed: {self.open}"

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, {name: value or "" for name, value in attrs}))
        if tag not in VOID:
            self.open.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, {name: value or "" for name, value in attrs}))

    def handle_endtag(self, tag: str) -> None:
        assert self.open and self.open[-1] == tag, f"</{tag}> closes {self.open[-1:]}"
        self.open.pop()

    def find(self, tag: str, cls: str | None = None) -> list[dict[str, str]]:
        """Attributes of the tags of that name (and class, if given)."""
        return [attrs for name, attrs in self.tags
                if name == tag and (cls is None or cls in attrs.get("class", "").split())]


def line(kind: str, coordinates: list[list[float]], **properties: Any) -> dict[str, Any]:
    return {"type": "Feature", "geometry": {"type": "LineString", "coordinates": coordinates},
            "properties": {"kind": kind, **properties}}


def point(kind: str, x: float, y: float, **properties: Any) -> dict[str, Any]:
    return {"type": "Feature", "geometry": {"type": "Point", "coordinates": [x, y]},
            "properties": {"kind": kind, **properties}}


def collection(*features: dict[str, Any]) -> dict[str, Any]:
    return {"type": "FeatureCollection", "features": list(features)}


def route(vehicle: str, coordinates: list[list[float]]) -> dict[str, Any]:
    return line("route", coordinates, vehicle=vehicle, distance=1234.5, duration_s=3720.0, load=4, visits=2,
                cost=17.25)


def rounds(vehicles: int = 2) -> dict[str, Any]:
    """A small geographic solution: a depot, one route per vehicle with a stop and a swept street, one left out."""
    features = [point("depot", 5.04, 47.32, label="depot")]
    for v in range(vehicles):
        path = [[5.04, 47.32], [5.05 + 0.001 * v, 47.33], [5.04, 47.32]]
        features += [route(f"truck-{v}", path),
                     line("service", path[:2], vehicle=f"truck-{v}", label=f"street {v}"),
                     point("stop", *path[1], vehicle=f"truck-{v}", label=f"stop {v}", order=1, arrival="08:10:00",
                           start="08:12:00", load=4)]
    features.append(point("unassigned", 5.03, 47.31, label="far away"))
    return collection(*features)


def numbers(text: str) -> list[float]:
    return [float(n) for n in re.findall(r"-?\d+(?:\.\d+)?", text)]


def assert_self_contained(page: Page, text: str) -> None:
    for tag, attrs in page.tags:
        for name, value in attrs.items():
            assert "//" not in value and not value.lower().startswith(("http", "data:")), (tag, name, value)
    assert "url(" not in text and "@import" not in text


def test_a_solution_gives_one_self_contained_map_with_a_table() -> None:
    text = render_html(rounds(), title="Monday rounds", geographic=True)
    page = Page(text)
    assert text.count("<svg") == 1
    assert_self_contained(page, text)
    assert len(page.find("polyline", "route")) == 2
    assert len(page.find("polyline", "service")) == 2
    assert len(page.find("circle", "stop")) == 2
    assert len(page.find("rect", "depot")) == 1
    assert len(page.find("path", "left")) == 1
    assert len(page.find("input")) == 2
    # Totals of the two routes: 2 x 1234.5 m, 2 x 62 min, 2 x 17.25.
    assert "<td>Total</td><td>4</td><td>2.5</td><td>2:04</td><td>8</td><td>34.50</td>" in text
    assert "Left out: 1." in text


def test_a_cleaning_round_counts_the_street_sides_it_sweeps() -> None:
    path = [[5.04, 47.32], [5.05, 47.33], [5.06, 47.33], [5.04, 47.32]]
    sweeping = collection(point("depot", 5.04, 47.32, label="depot"), route("sweeper-1", path),
                          *(line("service", path[k:k + 2], vehicle="sweeper-1", label=f"way {k}") for k in range(3)))
    text = render_html(sweeping, title="Streets", geographic=True)
    assert "Street sides swept: 3. Left out: 0." in text
    assert "Stops served" not in text
    assert "Stops served: 2. Street sides swept: 2. Left out: 1." in render_html(rounds(), title="t", geographic=True)


def test_each_vehicle_has_its_colour_and_its_check_box_names_its_features() -> None:
    page = Page(render_html(rounds(10), title="t", geographic=True))
    routes = page.find("polyline", "route")
    assert len({attrs["stroke"] for attrs in routes}) == 10
    boxes = {attrs["data-v"] for attrs in page.find("input")}
    for attrs in routes + page.find("circle", "stop"):
        (group,) = [c[1:] for c in attrs["class"].split() if re.fullmatch(r"v\d+", c)]
        assert group in boxes
    # A vehicle's swept streets and stops share its route's colour.
    assert {a["stroke"] for a in page.find("polyline", "service")} == {a["stroke"] for a in routes}
    assert {a["fill"] for a in page.find("circle", "stop")} == {a["stroke"] for a in routes}


def test_labels_and_title_are_escaped() -> None:
    attack = "<script>alert(1)</script>"
    features = rounds(1)["features"]
    features[2]["properties"]["label"] = attack
    features[1]["properties"]["vehicle"] = features[3]["properties"]["vehicle"] = '"><img src=x>'
    text = render_html(collection(*features), title=attack, geographic=False)
    assert attack not in text and "<img" not in text
    assert text.count("<script") == 1  # the page's own
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    Page(text)


def test_y_is_flipped_and_longitudes_are_shortened_by_the_latitude() -> None:
    # 1 degree of longitude at 60 N is half a degree of latitude long: this box is about square.
    features = collection(point("stop", 10.0, 60.0, vehicle="a"), point("stop", 11.0, 60.5, vehicle="a"))
    page = Page(render_html(features, title="t", geographic=True))
    _, _, width, height = numbers(page.find("svg")[0]["viewbox"])
    assert width / height == pytest.approx(1.0, abs=0.02)
    south, north = page.find("circle", "stop")
    assert float(north["cy"]) < float(south["cy"]) and float(north["cx"]) > float(south["cx"])
    # On a plane the same coordinates are taken as they are: twice as wide as high.
    page = Page(render_html(features, title="t", geographic=False))
    _, _, width, height = numbers(page.find("svg")[0]["viewbox"])
    assert width / height == pytest.approx((1.0 + 0.1) / (0.5 + 0.1), rel=1e-4)


def test_background_lines_away_from_the_features_are_dropped() -> None:
    features = collection(route("a", [[0.0, 0.0], [10.0, 10.0]]))
    inside = [(2.0, 2.0), (3.0, 5.0)]
    across = [(-50.0, 5.0), (50.0, 5.0)]  # both ends outside, crossing the box
    far = [(100.0, 100.0), (120.0, 110.0)]
    corner = [(9.0, 30.0), (30.0, 9.0)]  # its bounding box overlaps the features' box; the line misses it
    page = Page(render_html(features, title="t", geographic=False, background=[inside, far, across, corner]))
    (streets,) = page.find("path", "streets")
    # Kept in their order: `inside` starts in the view, `across` left of it.
    inside_x, across_x = (numbers(part)[0] for part in streets["d"].split("M")[1:])
    assert inside_x > 0 > across_x


def test_coordinates_are_written_short() -> None:
    features = collection(route("a", [[5.0412345678, 47.3212345678], [5.0512345678, 47.3312345678]]))
    background = [[(5.03 + i * 1e-4, 47.32), (5.03 + i * 1e-4, 47.34)] for i in range(300)]
    page = Page(render_html(features, title="t", geographic=True, background=background))
    for value in [page.find("path", "streets")[0]["d"], page.find("polyline", "route")[0]["points"]]:
        assert all(len(n.split(".")[-1]) <= 2 for n in re.findall(r"\d+\.\d+", value))


def test_an_empty_collection_says_there_are_no_routes() -> None:
    text = render_html(collection(), title="Nothing", geographic=True)
    Page(text)
    assert "No routes" in text and "<svg" not in text


def test_unknown_kinds_and_missing_properties_do_not_matter() -> None:
    features = collection({"type": "Feature", "geometry": {"type": "Point", "coordinates": [1, 2]},
                           "properties": {}},
                          point("parking", 1.0, 2.0),
                          line("route", [[0, 0], [1, 1]]),
                          point("stop", 1.0, 1.0),
                          point("depot", 0.0, 0.0))
    text = render_html(features, title="t", geographic=False)
    page = Page(text)
    assert len(page.find("polyline", "route")) == 1 and len(page.find("input")) == 1
    assert len(page.find("circle", "stop")) == 1 and len(page.find("rect", "depot")) == 1
    assert "<td>?</td>" + "<td>&ndash;</td>" * 5 in text  # no vehicle, no figures: shown as unknown


@pytest.mark.parametrize("geographic", [True, False])
def test_a_single_point_is_padded(geographic: bool) -> None:
    page = Page(render_html(collection(point("depot", 5.04, 47.32)), title="t", geographic=geographic))
    _, _, width, height = numbers(page.find("svg")[0]["viewbox"])
    assert width > 0 and height > 0
    (depot,) = page.find("rect", "depot")
    x, y = float(depot["x"]) + 6, float(depot["y"]) + 6
    assert x == pytest.approx(width / 2) and y == pytest.approx(height / 2)


@pytest.mark.parametrize("bad", [[], "FeatureCollection", {"type": "Feature"},
                                 {"type": "FeatureCollection", "features": "none"}])
def test_anything_but_a_feature_collection_is_refused(bad: Any) -> None:
    with pytest.raises(InvalidInputError, match="expected a GeoJSON FeatureCollection") as error:
        render_html(bad, title="t", geographic=False)
    assert error.value.field == "collection"


def features_strategy(geographic: bool) -> st.SearchStrategy[list[dict[str, Any]]]:
    if geographic:
        position = st.tuples(st.floats(-180, 180), st.floats(-89, 89)).map(list)
    else:
        position = st.tuples(st.floats(-1e6, 1e6), st.floats(-1e6, 1e6)).map(list)
    text = st.text(max_size=12)
    vehicle = st.sampled_from(["a", "b", "<c>", "&d"])
    maybe = {"distance": st.floats(0, 1e6), "duration_s": st.integers(0, 86_400), "load": st.integers(0, 99),
             "visits": st.integers(0, 50), "cost": st.floats(0, 1e6), "label": text, "order": st.integers(0, 9)}
    properties = st.fixed_dictionaries({"kind": st.sampled_from(["route", "service", "stop", "unassigned", "depot",
                                                                 "other"]),
                                        "vehicle": vehicle}, optional=maybe)
    return st.lists(st.builds(
        lambda props, coords: {"type": "Feature", "properties": props, "geometry": (
            {"type": "LineString", "coordinates": coords} if props["kind"] in ("route", "service")
            else {"type": "Point", "coordinates": coords[0]})},
        properties, st.lists(position, min_size=1, max_size=4)), max_size=8)


@st.composite
def cases(draw: st.DrawFn) -> tuple[dict[str, Any], bool, list[list[tuple[float, float]]]]:
    geographic = draw(st.booleans())
    features = draw(features_strategy(geographic))
    lines = draw(st.lists(st.lists(st.tuples(st.floats(-200, 200), st.floats(-100, 100)), max_size=3), max_size=4))
    return collection(*features), geographic, lines


@settings(max_examples=60)
@given(cases())
def test_any_small_collection_renders_a_parseable_page(case: tuple[dict[str, Any], bool, list]) -> None:
    features, geographic, background = case
    text = render_html(features, title="<t>", geographic=geographic, background=background)
    page = Page(text)
    assert_self_contained(page, text)
    assert text.count("<script") <= 1 and text.count("<svg") <= 1
    drawn = [attrs.get(name, "") for tag in ("polyline", "path", "circle", "rect") for attrs in page.find(tag)
             for name in ("points", "d", "cx", "cy", "x", "y")]
    assert all(math.isfinite(n) for value in drawn for n in numbers(value))
    assert not any("nan" in value or "inf" in value for value in drawn)
    routes = sum(f["properties"]["kind"] == "route" for f in features["features"])
    assert len(page.find("polyline", "route")) == routes
