"""The ``pilotage`` command line.

Every failure the user can fix (a bad file, a point outside the network, a malformed argument)
ends with one line on stderr and a non-zero exit status: 2 for a malformed command line, 1 for
everything else.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from typing import NoReturn

from pilotage import __version__
from pilotage.core import WEIGHTS, PilotageError, RoadNetwork

logger = logging.getLogger("pilotage")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _lon_lat(text: str) -> tuple[float, float]:
    try:
        lon, lat = (float(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected LON,LAT in degrees such as 6.1300,49.6100, got {text!r}") from None
    return lon, lat


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="pilotage", description="Real-time traffic and mobility optimisation core.")
    parser.add_argument("--version", action="version", version=f"pilotage {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log details, and tracebacks of internal errors")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    network = commands.add_parser("network", help="the road network and its signalised intersections")
    network_commands = network.add_subparsers(dest="network_command", required=True, parser_class=_Parser)
    osm = argparse.ArgumentParser(add_help=False)
    osm.add_argument("--osm", metavar="FILE", help="OSM extract (.osm, .osm.xml, .gz, .bz2, .xz); "
                                                    "default: the embedded city")
    osm.add_argument("--json", action="store_true", help="print JSON for scripts")

    info = network_commands.add_parser("info", parents=[osm], help="nodes, edges, signalised intersections, extent")
    info.set_defaults(run=_network_info)

    route = network_commands.add_parser("route", parents=[osm], help="fastest route between two points")
    route.add_argument("--from", dest="origin", type=_lon_lat, required=True, metavar="LON,LAT")
    route.add_argument("--to", dest="destination", type=_lon_lat, required=True, metavar="LON,LAT")
    route.add_argument("--weight", choices=WEIGHTS, default="travel_time_s",
                       help="what to minimise (default: travel_time_s)")
    route.set_defaults(run=_network_route)
    return parser


def _load(args: argparse.Namespace) -> RoadNetwork:
    from pilotage.adapters.osm import load_network  # noqa: PLC0415 - keeps `--help` instant

    return load_network(args.osm)


def _network_info(args: argparse.Namespace) -> dict[str, object]:
    network = _load(args)
    summary = network.summary()
    summary["intersections"] = [
        {"id": int(i), "lon": round(float(lon), 7), "lat": round(float(lat), 7),
         "signal_nodes": int(network.intersections.node_ptr[k + 1] - network.intersections.node_ptr[k]),
         "approaches": int(network.intersections.approach_ptr[k + 1] - network.intersections.approach_ptr[k])}
        for k, (i, lon, lat) in enumerate(zip(network.intersections.ids, network.intersections.lon,
                                              network.intersections.lat, strict=True))
    ]
    if args.json:
        return summary
    report = summary["build_report"]
    min_lon, min_lat, max_lon, max_lat = summary["bounding_box"]
    print(f"road network of {report.get('source', 'the given graph')}")
    print(f"  nodes                     {summary['nodes']:>8,}")
    print(f"  edges                     {summary['edges']:>8,}")
    print(f"  signalised intersections  {summary['signalised_intersections']:>8,}"
          f"   ({summary['signal_nodes']} signal nodes)")
    print(f"  road length               {summary['length_km']:>8,.1f} km")
    print(f"  bounding box              lon {min_lon:.4f}..{max_lon:.4f}, lat {min_lat:.4f}..{max_lat:.4f}")
    print(f"  dropped                   {report['non_drivable_edges_dropped']:,} non-drivable edges; "
          f"{report['scc_dropped_nodes']:,} nodes and {report['scc_dropped_edges']:,} edges outside "
          "the largest strongly connected component")
    return summary


def _network_route(args: argparse.Namespace) -> dict[str, object]:
    network = _load(args)
    ends = []
    for name, (lon, lat) in (("from", args.origin), ("to", args.destination)):
        node, snap_m = network.snap(lon, lat)
        ends.append({"point": [lon, lat], "node": node, "osmid": int(network.node_osmid[node]),
                     "node_lon": float(network.node_lon[node]), "node_lat": float(network.node_lat[node]),
                     "snap_m": round(snap_m, 1), "end": name})
    route = network.shortest_path(ends[0]["node"], ends[1]["node"], weight=args.weight)
    crossed = network.intersections
    arrival_s = route.cumulative(network.travel_time_s)[route.intersection_positions]
    distance_m = route.cumulative(network.length_m)[route.intersection_positions]
    result = {
        "from": ends[0], "to": ends[1], "weight": args.weight,
        "travel_time_s": round(route.travel_time_s, 3), "length_m": round(route.length_m, 3),
        "intersections": [{"id": int(crossed.ids[k]), "lon": round(float(crossed.lon[k]), 7),
                           "lat": round(float(crossed.lat[k]), 7), "arrival_s": round(float(t), 3),
                           "distance_m": round(float(d), 3)}
                          for k, t, d in zip(route.intersections, arrival_s, distance_m, strict=True)],
        # Node positions along the route, as a GeoJSON LineString's coordinates.
        "coordinates": [[round(float(network.node_lon[v]), 7), round(float(network.node_lat[v]), 7)]
                        for v in route.nodes],
    }
    if args.json:
        return result
    minutes, seconds = divmod(route.travel_time_s, 60.0)
    for end in ends:
        print(f"{end['end']:<5} {end['point'][0]:.6f},{end['point'][1]:.6f}  ->  node OSM {end['osmid']} "
              f"({end['snap_m']:.0f} m away)")
    print(f"travel time  {int(minutes)} min {seconds:04.1f} s  (free flow)")
    print(f"distance     {route.length_m / 1000.0:.2f} km")
    print(f"signalised intersections crossed: {len(result['intersections'])}")
    for n, intersection in enumerate(result["intersections"], 1):
        print(f"  {n:>3}. {intersection['id']:>12}  at {intersection['lon']:.5f},{intersection['lat']:.5f}"
              f"   after {intersection['arrival_s']:6.1f} s, {intersection['distance_m'] / 1000.0:5.2f} km")
    return result


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    parser = _parser()
    args = parser.parse_args(argv)
    # Warnings from the libraries, information from pilotage (such as a first build), on stderr.
    logging.basicConfig(level=logging.WARNING, format="pilotage: %(message)s", stream=sys.stderr)
    logger.setLevel(logging.DEBUG if args.verbose else logging.INFO)
    try:
        result = args.run(args)
    except PilotageError as exc:
        print(f"pilotage: error: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:
        logger.debug("internal error", exc_info=True)
        print(f"pilotage: internal error: {type(exc).__name__}: {exc} (run with -v for details)", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(result, indent=2))
    return 0
