"""HTML maps of vehicle rounds that open without internet: inline SVG, CSS and a few lines of JS, nothing fetched.

:func:`render_html` draws a GeoJSON FeatureCollection as the solver's writer makes it (routes, swept streets,
stops, depots, stops left out) over an optional background of street lines, with a table of the vehicles
beside the map whose check boxes hide or show each vehicle's features. Control rooms have no internet: no
tile, script, style sheet or font is loaded from anywhere.
"""

from __future__ import annotations

import html
import itertools
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from pilotage.core.errors import InvalidInputError
from pilotage.core.network import RoadNetwork

logger = logging.getLogger(__name__)

_Point = tuple[float, float]

#: tab10, with its grey swapped for a dark indigo: grey is the street background and the stops left out.
_PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
            "#8c564b", "#e377c2", "#393b79", "#bcbd22", "#17becf")

#: Geometry type each drawn kind of feature has; other kinds are not drawn.
_GEOMETRY = {"route": "LineString", "service": "LineString", "stop": "Point", "unassigned": "Point", "depot": "Point"}

#: Kinds that belong to a vehicle, in the order their first feature registers the vehicle's colour.
_VEHICLE_KINDS = ("route", "service", "stop")

# The SVG is _VIEW_WIDTH user units across whatever the data's extent, and coordinates are written with two
# decimals: about six significant digits of the extent, finer than any screen shows.
_VIEW_WIDTH = 1000.0
_MARGIN = 0.05  # share of the features' extent added on each side
_MIN_ASPECT = 0.25  # the short side is at least this share of the long one: a row of stops is not a sliver
_POINT_SPAN_DEG = 0.01  # extent around features that all sit on one spot: about 1 km in lon/lat
_POINT_SPAN_PLANE = 1.0  # the same, in a plane instance's unit
_SAME_SPOT = 1e-9  # relative extent below which the features count as one spot
_MIN_STRETCH = 0.01  # x stretch floor: latitudes at or past the poles must not fold the map
_STOP_RADIUS = 5.0
_DEPOT_SIDE = 12.0
_CROSS_HALF = 5.0

#: Legend columns: route property, heading; the distance heading depends on the unit.
_COLUMNS = (("visits", "Visits"), ("distance", "Distance"), ("duration_s", "Duration"), ("load", "Load"),
            ("cost", "Cost"))

_HEADERS = {"route": "Route", "service": "Swept street", "stop": "Stop", "unassigned": "Left out", "depot": "Depot"}

_CSS = """
body{margin:0;font:14px system-ui,sans-serif;color:#222;background:#fff}
main{display:flex;flex-wrap:wrap;align-items:flex-start}
.map{flex:1 1 600px;min-width:0}
svg{display:block;width:100%;height:auto;max-height:100vh;background:#fafafa}
aside{flex:0 1 auto;padding:8px 16px}
h1{font-size:18px;margin:4px 0 8px}
table{border-collapse:collapse}
th,td{padding:2px 6px;text-align:right;white-space:nowrap}
th:nth-child(-n+2),td:nth-child(-n+2){text-align:left}
thead th{border-bottom:1px solid #999}
tfoot td{border-top:1px solid #999;font-weight:bold}
.sw{display:inline-block;width:12px;height:12px;margin-left:4px;vertical-align:middle;border-radius:2px}
.streets{fill:none;stroke:#d0d0d0;stroke-width:1;vector-effect:non-scaling-stroke}
.route{fill:none;stroke-width:2.5;stroke-linejoin:round;stroke-linecap:round;vector-effect:non-scaling-stroke}
.service{fill:none;stroke-width:7;stroke-opacity:.55;stroke-linecap:round;vector-effect:non-scaling-stroke}
.stop{stroke:#fff;stroke-width:1}
.depot{fill:#222;stroke:#fff;stroke-width:1}
.left{fill:none;stroke:#888;stroke-width:2;vector-effect:non-scaling-stroke}
.keys{color:#555}
"""

# Each check box carries its vehicle's index; every SVG element of that vehicle has the class "v<index>".
_SCRIPT = """
document.querySelectorAll('input[data-v]').forEach(function (box) {
  box.addEventListener('change', function () {
    document.querySelectorAll('svg .v' + box.dataset.v).forEach(function (item) {
      item.style.display = box.checked ? '' : 'none';
    });
  });
});
"""


@dataclass(frozen=True)
class _Feature:
    """A feature to draw: its kind, the vehicle it belongs to (if any), its positions and properties."""

    kind: str
    vehicle: str | None
    points: tuple[_Point, ...]
    properties: Mapping[str, Any]


@dataclass(frozen=True)
class _View:
    """The box shown, in the data's coordinates, and how it maps to SVG user units (y grows downward)."""

    xmin: float
    ymin: float
    xmax: float
    ymax: float
    x_scale: float  # SVG units per data unit along x (includes the cos(latitude) stretch)
    y_scale: float
    height: float  # SVG units; the width is _VIEW_WIDTH

    def project(self, point: _Point) -> _Point:
        """The point's SVG coordinates."""
        return (point[0] - self.xmin) * self.x_scale, (self.ymax - point[1]) * self.y_scale

    def pair(self, point: _Point) -> str:
        """The point's SVG coordinates as "x,y"."""
        x, y = self.project(point)
        return f"{_num(x)},{_num(y)}"


def render_html(collection: Mapping[str, Any], *, title: str, geographic: bool,
                background: Sequence[Sequence[tuple[float, float]]] = ()) -> str:
    """An HTML page showing the routes of a GeoJSON FeatureCollection on a map, with a table of the vehicles.

    The page is self-contained (inline SVG, CSS and JS; no URL): it opens offline. Each vehicle has its own
    colour; a check box per vehicle hides or shows its features; hovering a feature shows its properties.
    Features whose kind is not one of route, service, stop, unassigned or depot are not drawn; features with
    unusable coordinates are left out (logged).

    Args:
        collection: the FeatureCollection the solver's writer makes: routes and swept streets as LineStrings,
            stops, stops left out and depots as Points, told apart by ``properties["kind"]``.
        title: page heading, as plain text.
        geographic: whether coordinates are lon/lat in degrees (shown with x stretched by the cosine of the
            mean latitude, distances in km from metres) or a plane's coordinates, shown as they are
            (distances in the instance's unit).
        background: polylines in the features' coordinates (a street network's edges) drawn thin and grey
            beneath; only those that cross the shown box are kept, to keep the page small.

    Returns:
        The page, a complete HTML document.

    Raises:
        InvalidInputError: ``collection`` is not a mapping with ``type`` "FeatureCollection" and a list of
            ``features`` (field "collection").
    """
    features = _parse(collection)
    located = [feature for feature in features if feature.points]
    if not located:
        body = (f"<h1>{html.escape(title)}</h1>\n"
                f"<p>No routes to show: the collection holds no feature to draw ({len(features)} given).</p>")
        return _page(title, body, script=False)
    view = _view([point for feature in located for point in feature.points], geographic)
    vehicles: dict[str, int] = {}
    for feature in features:
        if feature.vehicle is not None:
            vehicles.setdefault(feature.vehicle, len(vehicles))
    svg = _svg(located, vehicles, view, background, geographic)
    body = f'<main>\n<div class="map">\n{svg}\n</div>\n{_legend(title, features, vehicles, geographic)}\n</main>'
    return _page(title, body, script=True)


def road_segments(network: RoadNetwork, box: tuple[float, float, float, float] | None = None) -> list[
        tuple[tuple[float, float], tuple[float, float]]]:
    """The network's edges as ((lon, lat), (lon, lat)) segments, the background :func:`render_html`
    draws: all of them, or those with an end inside ``box`` (min lon, min lat, max lon, max lat)."""
    kept = np.arange(network.n_edges)
    if box is not None:
        min_lon, min_lat, max_lon, max_lat = box
        inside = ((network.node_lon >= min_lon) & (network.node_lon <= max_lon)
                  & (network.node_lat >= min_lat) & (network.node_lat <= max_lat))
        kept = np.flatnonzero(inside[network.edge_source] | inside[network.indices])
    tails, heads = network.edge_source[kept], network.indices[kept]
    return [((a, b), (c, d)) for a, b, c, d in zip(network.node_lon[tails].tolist(), network.node_lat[tails].tolist(),
                                                   network.node_lon[heads].tolist(), network.node_lat[heads].tolist(),
                                                   strict=True)]


def _parse(collection: Mapping[str, Any]) -> list[_Feature]:
    """The features of a FeatureCollection whose kind is drawn; positions that are not finite numbers dropped."""
    features = collection.get("features") if isinstance(collection, Mapping) else None
    if (not isinstance(collection, Mapping) or collection.get("type") != "FeatureCollection"
            or not isinstance(features, Sequence) or isinstance(features, (str, bytes))):
        raise InvalidInputError(f"expected a GeoJSON FeatureCollection (a mapping with type 'FeatureCollection' "
                                f"and a list of features), got {_describe(collection)}; pass the object the "
                                f"solver's GeoJSON writer returns, or json.load of its file", field="collection")
    parsed = []
    unusable = 0
    for raw in features:
        properties = raw.get("properties") if isinstance(raw, Mapping) else None
        if not isinstance(properties, Mapping) or properties.get("kind") not in _GEOMETRY:
            continue  # other writers may add features of their own: they are not drawn
        kind = str(properties["kind"])
        points = _positions(raw.get("geometry"), _GEOMETRY[kind])
        if not points and kind != "route":  # a route without a path still counts in the table
            unusable += 1
        vehicle = _text(properties.get("vehicle"), "?") if kind in _VEHICLE_KINDS else None
        parsed.append(_Feature(kind, vehicle, points, properties))
    if unusable:
        logger.warning("%d features without usable coordinates are not drawn", unusable)
    return parsed


def _describe(value: object) -> str:
    """What came instead of a FeatureCollection, for the error message."""
    if isinstance(value, Mapping):
        return f"a mapping with type {value.get('type')!r} and features of type {type(value.get('features')).__name__}"
    return f"a {type(value).__name__}"


def _positions(geometry: object, expected: str) -> tuple[_Point, ...]:
    """The finite positions of a Point or LineString geometry of the expected type; none if it is not one."""
    if not isinstance(geometry, Mapping) or geometry.get("type") != expected:
        return ()
    coordinates = geometry.get("coordinates")
    raw = [coordinates] if expected == "Point" else coordinates
    if not isinstance(raw, Sequence):
        return ()
    points = (_position(position) for position in raw)
    return tuple(point for point in points if point is not None)


def _position(position: object) -> _Point | None:
    """An [x, y(, z)] position as a point, or None if it is not two finite numbers."""
    if not isinstance(position, Sequence) or len(position) < 2:
        return None
    x, y = _number(position[0]), _number(position[1])
    return None if x is None or y is None else (x, y)


def _number(value: object) -> float | None:
    """A finite int or float as a float; None for anything else (missing, text, bool, NaN)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


def _text(value: object, default: str) -> str:
    """A property as text; the default when it is missing."""
    return default if value is None else str(value)


def _view(points: Sequence[_Point], geographic: bool) -> _View:
    """The box around the points with a margin, and its SVG scale; a box of zero extent is padded."""
    xs = [x for x, _ in points]
    ys = [y for _, y in points]
    # Equirectangular: a degree of longitude is cos(latitude) times as long as a degree of latitude.
    stretch = max(math.cos(math.radians((min(ys) + max(ys)) / 2)), _MIN_STRETCH) if geographic else 1.0
    left, right, bottom, top = min(xs) * stretch, max(xs) * stretch, min(ys), max(ys)
    span = max(right - left, top - bottom)
    if span <= _SAME_SPOT * max(1.0, *(abs(v) for v in (left, right, bottom, top))):
        span = _POINT_SPAN_DEG if geographic else _POINT_SPAN_PLANE
    half_width = max(right - left, _MIN_ASPECT * span) / 2 + _MARGIN * span
    half_height = max(top - bottom, _MIN_ASPECT * span) / 2 + _MARGIN * span
    centre_x, centre_y = (left + right) / 2, (bottom + top) / 2
    scale = _VIEW_WIDTH / (2 * half_width)
    return _View(xmin=(centre_x - half_width) / stretch, ymin=centre_y - half_height,
                 xmax=(centre_x + half_width) / stretch, ymax=centre_y + half_height,
                 x_scale=scale * stretch, y_scale=scale, height=2 * half_height * scale)


def _num(value: float) -> str:
    """A coordinate with at most two decimals and no trailing zeros, to keep the page small."""
    text = f"{value:.2f}".rstrip("0").rstrip(".")
    return "0" if text == "-0" else text


def _svg(features: Sequence[_Feature], vehicles: Mapping[str, int], view: _View,
         background: Sequence[Sequence[tuple[float, float]]], geographic: bool) -> str:
    """The map: background streets, then routes, swept streets, stops left out, stops and depots on top."""
    items = [f'<svg viewBox="0 0 {_num(_VIEW_WIDTH)} {_num(view.height)}" role="img" aria-label="map of the routes">']
    streets = _background(background, view)
    if streets:
        items.append(f'<path class="streets" d="{streets}"/>')
    layers = ("route", "service", "unassigned", "stop", "depot")
    for kind in layers:
        for feature in features:
            if feature.kind == kind:
                items.append(_item(feature, vehicles, view, geographic))
    items.append("</svg>")
    return "\n".join(items)


def _item(feature: _Feature, vehicles: Mapping[str, int], view: _View, geographic: bool) -> str:
    """One feature as an SVG element with its hover title."""
    title = f"<title>{_title(feature, geographic)}</title>"
    if feature.kind == "depot":
        x, y = view.project(feature.points[0])
        corner_x, corner_y, side = _num(x - _DEPOT_SIDE / 2), _num(y - _DEPOT_SIDE / 2), _num(_DEPOT_SIDE)
        return f'<rect class="depot" x="{corner_x}" y="{corner_y}" width="{side}" height="{side}">{title}</rect>'
    if feature.kind == "unassigned":
        x, y = view.project(feature.points[0])
        low_x, high_x = _num(x - _CROSS_HALF), _num(x + _CROSS_HALF)
        low_y, high_y = _num(y - _CROSS_HALF), _num(y + _CROSS_HALF)
        cross = f"M{low_x},{low_y}L{high_x},{high_y}M{low_x},{high_y}L{high_x},{low_y}"
        return f'<path class="left" d="{cross}">{title}</path>'
    index = vehicles[str(feature.vehicle)]
    colour, classes = _PALETTE[index % len(_PALETTE)], f"{feature.kind} v{index}"
    if feature.kind == "stop":
        x, y = view.project(feature.points[0])
        return (f'<circle class="{classes}" cx="{_num(x)}" cy="{_num(y)}" r="{_num(_STOP_RADIUS)}" fill="{colour}">'
                f"{title}</circle>")
    points = " ".join(view.pair(point) for point in feature.points)
    return f'<polyline class="{classes}" stroke="{colour}" points="{points}">{title}</polyline>'


def _title(feature: _Feature, geographic: bool) -> str:
    """The hover text of a feature: what it is, then one line per property; escaped."""
    lines = [_HEADERS[feature.kind]]
    for key, value in feature.properties.items():
        if key == "duration_s":
            lines.append(f"duration: {_show(key, value, geographic)}")
        elif key != "kind":
            lines.append(f"{key}: {_show(str(key), value, geographic)}")
    return html.escape("\n".join(lines))


def _show(key: str, value: object, geographic: bool) -> str:
    """A property value as people read it: durations in h:mm, job distances in km, floats shortened."""
    number = _number(value)
    if number is None:
        return str(value)
    if key == "duration_s":
        return _hours(number)
    if key == "distance" and geographic:
        return f"{number / 1000:.2f} km"
    return f"{number:.6g}" if isinstance(value, float) else str(value)


def _hours(seconds: float) -> str:
    """A duration in seconds as h:mm, rounded to the minute."""
    hours, minutes = divmod(round(seconds / 60), 60)
    return f"{hours}:{minutes:02d}"


def _background(lines: Sequence[Sequence[tuple[float, float]]], view: _View) -> str:
    """SVG path data of the background lines that cross the view; lines with non-finite points are skipped."""
    parts = []
    for line in lines:
        points = [(float(x), float(y)) for x, y in line]
        if len(points) < 2 or not all(math.isfinite(x) and math.isfinite(y) for x, y in points):
            continue
        if _crosses(points, view):
            coordinates = [view.pair(point) for point in points]
            parts.append(f"M{coordinates[0]}L{' '.join(coordinates[1:])}")
    logger.debug("%d of %d background lines cross the map", len(parts), len(lines))
    return "".join(parts)


def _crosses(points: Sequence[_Point], view: _View) -> bool:
    """Whether a polyline meets the view's box."""
    xs = [x for x, _ in points]
    ys = [y for _, y in points]
    # Most lines of a city network are far from a round: reject them on their bounding box first.
    if max(xs) < view.xmin or min(xs) > view.xmax or max(ys) < view.ymin or min(ys) > view.ymax:
        return False
    return any(_segment_meets(a, b, view) for a, b in itertools.pairwise(points))


def _segment_meets(a: _Point, b: _Point, view: _View) -> bool:
    """Whether the segment from a to b meets the view's box (Liang-Barsky clipping)."""
    low, high = 0.0, 1.0
    dx, dy = b[0] - a[0], b[1] - a[1]
    # Each pair bounds the segment's parameter t by one side of the box: p * t <= q.
    for p, q in ((-dx, a[0] - view.xmin), (dx, view.xmax - a[0]), (-dy, a[1] - view.ymin), (dy, view.ymax - a[1])):
        if p == 0:
            if q < 0:
                return False
        elif p < 0:
            low = max(low, q / p)
        else:
            high = min(high, q / p)
        if low > high:
            return False
    return True


def _legend(title: str, features: Sequence[_Feature], vehicles: Mapping[str, int], geographic: bool) -> str:
    """The side panel: heading, the stops served and street sides swept, the count left out, and a table of
    the vehicles with their check boxes and totals."""
    sums: dict[str, dict[str, float]] = {vehicle: {} for vehicle in vehicles}
    for feature in features:
        if feature.kind == "route" and feature.vehicle is not None:
            for key, _ in _COLUMNS:
                number = _number(feature.properties.get(key))
                if number is not None:
                    sums[feature.vehicle][key] = sums[feature.vehicle].get(key, 0.0) + number
    left_out = sum(feature.kind == "unassigned" for feature in features)
    served = sum(feature.kind == "stop" for feature in features)
    swept = sum(feature.kind == "service" for feature in features)
    # A cleaning round serves street sides, a pickup round stops: count what the rounds hold.
    counts = ([f"Stops served: {served}."] if served or not swept else []) + (
        [f"Street sides swept: {swept}."] if swept else [])
    headings = "".join(f"<th>{heading}{' (km)' if key == 'distance' and geographic else ''}</th>"
                       for key, heading in _COLUMNS)
    rows = []
    for vehicle, index in vehicles.items():
        colour = _PALETTE[index % len(_PALETTE)]
        name = html.escape(vehicle)
        cells = "".join(f"<td>{_cell(key, sums[vehicle].get(key), geographic)}</td>" for key, _ in _COLUMNS)
        rows.append(f'<tr><td><label><input type="checkbox" checked data-v="{index}" aria-label="show {name}">'
                    f'<span class="sw" style="background:{colour}"></span></label></td><td>{name}</td>{cells}</tr>')
    totals = []
    for key, _ in _COLUMNS:
        values = [sums[vehicle][key] for vehicle in vehicles if key in sums[vehicle]]
        totals.append(f"<td>{_cell(key, sum(values) if values else None, geographic)}</td>")
    table = (f"<table>\n<thead><tr><th></th><th>Vehicle</th>{headings}</tr></thead>\n<tbody>\n" + "\n".join(rows)
             + f"\n</tbody>\n<tfoot><tr><td></td><td>Total</td>{''.join(totals)}</tr></tfoot>\n</table>")
    return (f"<aside>\n<h1>{html.escape(title)}</h1>\n"
            f"<p>{' '.join(counts)} Left out: {left_out}.</p>\n{table}\n"
            '<p class="keys">&#9632; depot &#8195;&#9679; stop &#8195;&#10005; left out &#8195;'
            "thick line: street swept</p>\n</aside>")


def _cell(key: str, value: float | None, geographic: bool) -> str:
    """A legend cell: visits and load as integers, distance in km for jobs, duration h:mm, cost in cents."""
    if value is None:
        return "&ndash;"
    if key == "duration_s":
        return _hours(value)
    if key == "distance":
        return f"{value / 1000:.1f}" if geographic else f"{value:.1f}"
    if key == "cost":
        return f"{value:.2f}"
    return f"{value:.0f}"


def _page(title: str, body: str, *, script: bool) -> str:
    """The HTML document around a body: inline style, and the check boxes' script when there is a map."""
    code = f"<script>{_SCRIPT}</script>\n" if script else ""
    return (f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">\n'
            f"<title>{html.escape(title)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n{body}\n{code}</body>\n"
            "</html>\n")
