"""The ``pilotage`` command line.

Every failure the user can fix (a bad file, a point outside the network, a malformed argument)
ends with one line on stderr and a non-zero exit status: 2 for a malformed command line, 1 for
everything else.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import itertools
import json
import logging
import os
import signal
import sys
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn
from zoneinfo import ZoneInfo

from pilotage import __version__
from pilotage.adapters.service import ROLES
from pilotage.adapters.zeromq import DEFAULT_ENDPOINT, DEFAULT_EVENTS_ENDPOINT
from pilotage.core import WEIGHTS, InvalidInputError, PilotageError, RoadNetwork
from pilotage.core.protocol import COMMAND_TTL_S, DEFAULT_QUEUE_LIMIT, MAX_MESSAGE_BYTES, MESSAGES
from pilotage.core.protocol.schema import json_schemas, schema_text, write_json_schemas
from pilotage.routing.formats import FORMATS

if TYPE_CHECKING:
    from pilotage.adapters.config import ServeConfig
    from pilotage.adapters.service import Service
    from pilotage.adapters.sumo.measures import Run
    from pilotage.adapters.sumo.network import ScenarioNetwork

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
    parser.add_argument("--log-json", action="store_true",
                        help="log as JSON lines (time, level, logger, message, request_id when there is one)")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    network = commands.add_parser("network", help="the road network and its signalised intersections")
    network_commands = network.add_subparsers(dest="network_command", required=True, parser_class=_Parser)
    osm = _Parser(add_help=False)
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

    gtfs = commands.add_parser("gtfs", help="public-transport timetables on the road network (docs/positions.md)")
    gtfs_commands = gtfs.add_subparsers(dest="gtfs_command", required=True, parser_class=_Parser)
    check = gtfs_commands.add_parser("check", parents=[osm],
                                     help="how a GTFS feed's trips match the network: trips matched, the signalised "
                                          "intersections each crosses, shapes not matched and why; a map")
    check.add_argument("feed", metavar="FEED", help="a GTFS feed: its zip file or folder")
    check.add_argument("--date", metavar="YYYY-MM-DD", type=dt.date.fromisoformat,
                       help="check the trips of that service day (default: every trip of the feed)")
    check.add_argument("--out", metavar="DIR", help="write check.json, check.geojson and check.html there")
    check.set_defaults(run=_gtfs_check)
    _add_service_commands(commands)
    return parser


def _add_service_commands(commands: argparse._SubParsersAction) -> None:
    serve = commands.add_parser("serve", help="serve the engines over ZeroMQ (docs/protocol.md); SIGHUP reads the "
                                              "client keys again")
    serve.add_argument("--config", metavar="FILE.toml",
                       help="every option below, and the engines' parameters, from a TOML file (docs/operations.md); "
                            "a flag given overrides the file")
    serve.add_argument("--osm", metavar="FILE", help="OSM extract of the city; default: the embedded city")
    serve.add_argument("--sumocfg", metavar="FILE",
                       help="a SUMO scenario whose road network and traffic-light programs are the city's (instead of "
                            "--osm): a field adapter, such as `pilotage simulate --engine`, drives its lights")
    serve.add_argument("--clock", choices=("wall", "field"),
                       help="the engines' clock: the host's (wall, the default), or the time each field adapter's "
                            "signals.command gives (field: a simulator, or controllers keeping their own time)")
    serve.add_argument("--command-ttl", dest="command_ttl_s", type=float, metavar="S",
                       help="how long a field adapter runs a command without a newer one, before its lights go back "
                            f"to their own programs (default {COMMAND_TTL_S} s)")
    # No defaults here: a flag not given leaves the configuration file's value, else the default.
    serve.add_argument("--bind", metavar="ENDPOINT",
                       help=f"request endpoint (ROUTER; default {DEFAULT_ENDPOINT}; tcp://HOST:* picks a port)")
    serve.add_argument("--pub", metavar="ENDPOINT",
                       help=f"event endpoint (PUB; default {DEFAULT_EVENTS_ENDPOINT})")
    serve.add_argument("--keys", metavar="DIR", help="CurveZMQ on, with this keys directory (`pilotage keys new`)")
    serve.add_argument("--insecure", action="store_true", default=None,
                       help="serve without CurveZMQ on an endpoint beyond loopback (not advised)")
    serve.add_argument("--audit", metavar="FILE",
                       help="audit log, JSON lines, rotated at 50 MB (default: audit.jsonl in the state directory)")
    serve.add_argument("--max-message-bytes", type=int, metavar="N",
                       help=f"larger requests get TOO_LARGE (default {MAX_MESSAGE_BYTES})")
    serve.add_argument("--queue-limit", type=int, metavar="N",
                       help=f"requests taken at once; more get OVERLOADED (default {DEFAULT_QUEUE_LIMIT})")
    serve.add_argument("--carparks", metavar="FILE",
                       help="car parks, in the BNLS schema (CSV or GeoJSON); default: the embedded city's sample")
    serve.add_argument("--parking-db", metavar="FILE",
                       help="reservation database, SQLite (default: parking.sqlite in the state directory)")
    serve.add_argument("--state-db", metavar="FILE",
                       help="where the signals' state (plans changed, grants, open corridors) is kept across "
                            "restarts; default: signals.sqlite in the state directory")
    serve.add_argument("--routing-db", metavar="FILE",
                       help="routing jobs submitted, SQLite (default: routing.sqlite in the state directory)")
    serve.add_argument("--metrics", metavar="HOST:PORT",
                       help="serve Prometheus metrics on http://HOST:PORT/metrics and a health check on /health")
    serve.add_argument("--gtfs", metavar="FEED",
                       help="a GTFS feed (zip or folder): its bus and tram trips, matched onto the network, are "
                            "those vehicle.position names (docs/positions.md)")
    serve.add_argument("--gtfs-date", metavar="YYYY-MM-DD", help="the feed's service day (default: today there)")
    serve.add_argument("--vehicle-positions", metavar="SOURCE",
                       help="a GTFS-Realtime VehiclePositions feed to follow: a file, an http(s):// URL, or "
                            "zmq+tcp://HOST:PORT/TOPIC")
    serve.add_argument("--trip-updates", metavar="FILE",
                       help="write the followed trips' delays there every second (GTFS-Realtime TripUpdates)")
    serve.add_argument("--counts", nargs="+", metavar="CSV",
                       help="history of free spaces per car park (docs/parking.md), for the forecasts")
    serve.set_defaults(run=_serve)

    client = argparse.ArgumentParser(add_help=False)
    client.add_argument("--server-key", metavar="FILE", help="CurveZMQ: the server's public key (server.key)")
    client.add_argument("--key", metavar="FILE", help="CurveZMQ: this client's key pair (NAME.key_secret)")

    call = commands.add_parser("call", parents=[client], help="send one request to a server, print the reply body")
    call.add_argument("type", choices=sorted(MESSAGES), metavar="TYPE", help=f"one of {', '.join(MESSAGES)}")
    call.add_argument("body", nargs="?", default="{}", type=_json_object, metavar="BODY",
                      help="the body, a JSON object (default {}); @FILE reads it from a file, - from the "
                           "standard input")
    call.add_argument("--endpoint", default=DEFAULT_ENDPOINT, help=f"default {DEFAULT_ENDPOINT}")
    call.add_argument("--timeout", type=float, default=2.5, metavar="S", help="seconds per attempt (default 2.5)")
    call.add_argument("--retries", type=int, default=3, help="attempts after the first (default 3)")
    call.set_defaults(run=_call)

    watch = commands.add_parser("watch", parents=[client], help="print a server's events, one JSON line each")
    watch.add_argument("topics", nargs="*", metavar="TOPIC", help="priority, signals, server, ... (default: all)")
    watch.add_argument("--endpoint", default=DEFAULT_EVENTS_ENDPOINT, help=f"default {DEFAULT_EVENTS_ENDPOINT}")
    watch.add_argument("--count", type=int, metavar="N", help="stop after N events")
    watch.set_defaults(run=_watch)

    rounds = commands.add_parser("route", help="plan rounds: routing jobs or standard instance files (docs/routing.md)")
    rounds.add_argument("inputs", nargs="+", metavar="FILE", help="routing jobs (JSON); with --format, instance files")
    rounds.add_argument("--format", dest="instance_format", choices=FORMATS,
                        help="the files are Solomon, VRPLIB or CARP (Belenguer) instances, not jobs")
    rounds.add_argument("--out", default="routes", metavar="DIR",
                        help="where NAME.solution.json, NAME.geojson and NAME.html go (default ./routes)")
    rounds.add_argument("--time-limit", type=float, metavar="S",
                        help="search time per file (default: the job's own, 10 s for instances)")
    rounds.add_argument("--seed", type=int, metavar="N", help="the solver's seed (default: the job's own, 0)")
    rounds.add_argument("--workers", type=int, metavar="N", help="files solved at once (default: the cores available)")
    rounds.add_argument("--osm", metavar="FILE", help="OSM extract the jobs are on; default: the embedded city")
    rounds.add_argument("--json", action="store_true", help="print JSON for scripts")
    rounds.set_defaults(run=_route)

    parking = commands.add_parser("parking", help="car parks: forecasts of free spaces")
    parking_commands = parking.add_subparsers(dest="parking_command", required=True, metavar="COMMAND")
    forecast = parking_commands.add_parser(
        "forecast", help="forecast errors per horizon of each model, trained on the first days of CSV files of counts")
    forecast.add_argument("csv", nargs="+", metavar="CSV", help="counts: timestamp, then free spaces per car park")
    forecast.add_argument("--train-fraction", type=float, default=0.7, metavar="F",
                          help="share of the days to train on; the later ones are the test (default 0.7)")
    forecast.set_defaults(run=_parking_forecast)

    sim = argparse.ArgumentParser(add_help=False)
    sim.add_argument("--duration", type=float, metavar="S", help="simulated seconds (default: the scenario's end)")
    sim.add_argument("--seed", type=int, default=42, metavar="N",
                     help="SUMO's seed of the first paired runs; the next ones take the next seeds (42)")
    sim.add_argument("--seeds", type=_positive_int, default=1, metavar="N",
                     help="paired runs: each seed runs off and on, N seeds from --seed on, in parallel processes; "
                          "the report gives means and 95%% confidence intervals of the changes (1)")
    sim.add_argument("--report", metavar="OUT.json",
                     help="write the report there, its plots beside it, and each run's outputs (the scenario's "
                          "own included) into OUT/<arm>-seed<N>/ (default: a temporary folder, removed)")
    sim.add_argument("--min-lateness", type=float, metavar="S",
                     help="priority only for buses at least this late (default: every bus)")
    sim.add_argument("--emergency-every", type=float, metavar="S",
                     help="add an emergency vehicle this often on a random route (default: the scenario's own)")
    simulate = commands.add_parser(
        "simulate", parents=[sim], help="SUMO closed loop: the engine drives the lights, priority off and on "
                                        "(docs/simulation.md); arguments after -- go to SUMO")
    simulate.add_argument("--sumocfg", metavar="FILE", help="a SUMO scenario: its .sumocfg file or its folder "
                                                           "(default: the embedded city)")
    simulate.add_argument("--priority", choices=("on", "off"), default="on", help="bus and tram priority (on)")
    simulate.add_argument("--corridors", choices=("on", "off"), default="on", help="emergency corridors (on)")
    simulate.add_argument("--compare", choices=("on", "off"), default="on",
                          help="also run the baseline, priority and corridors off, with each seed (on); off: the "
                               "asked run alone")
    simulate.add_argument("--own-control", choices=("on", "off"), default="on",
                          help="also run SUMO's own control of the scenario, untouched, with each seed, so the table "
                               "shows what pilotage's reading of its programs costs (on; only with --compare on)")
    simulate.add_argument("--time-space-line", metavar="LINE",
                          help="the bus or tram line (SUMO's line, or route id) drawn in the time-space plot "
                               "(default: the busiest route crossing three driven lights)")
    simulate.add_argument("--requests-from", choices=("loop", "positions"), default="loop",
                          help="who asks for the buses' and trams' priority: the loop, from what SUMO knows of each "
                               "(loop), or pilotage, from each vehicle's position and trip alone, as in service "
                               "(positions; docs/positions.md)")
    simulate.add_argument("--gtfs", metavar="FEED",
                          help="with --requests-from positions: the GTFS feed whose trips the buses and trams run "
                               "(their gtfs.trip_id parameter, as a scenario built from a feed has), followed on "
                               "their trips' paths and times")
    simulate.add_argument("--gtfs-date", metavar="YYYY-MM-DD", type=dt.date.fromisoformat,
                          help="the feed's service day (required with --gtfs)")
    simulate.add_argument("--check", action="store_true",
                          help="read the scenario and say how each light will be driven, the buses, trams and "
                               "timetables found, then stop")
    simulate.add_argument("--json", action="store_true", help="print the runs as JSON for scripts")
    simulate.add_argument("--engine", metavar="ENDPOINT",
                          help="drive the lights through a `pilotage serve --sumocfg SCENARIO --clock field` at this "
                               "endpoint, as a field adapter (docs/operations.md); default: an engine in this process")
    simulate.set_defaults(run=_simulate)
    demo = commands.add_parser("demo", parents=[sim], help="the embedded city's peak, priority and corridors off "
                                                           "then on, side by side")
    demo.set_defaults(run=_simulate, sumocfg=None, priority="on", corridors="on", compare="on", json=False,
                      demo=True, own_control="on", time_space_line=None, check=False, requests_from="loop",
                      gtfs=None, gtfs_date=None)

    schema = commands.add_parser("schema", help="the wire protocol's JSON Schema: one message's, or every file")
    schema.add_argument("name", nargs="?", choices=sorted(json_schemas()), metavar="NAME",
                        help="request, reply, request.TYPE, reply.TYPE or event.TOPIC (docs/protocol.md)")
    schema.add_argument("--out", metavar="DIR", help="write NAME.json there (every file without NAME) instead")
    schema.set_defaults(run=_schema)

    keys = commands.add_parser("keys", help="CurveZMQ keys for the server and its clients")
    keys_commands = keys.add_subparsers(dest="keys_command", required=True, parser_class=_Parser)
    new = keys_commands.add_parser("new", help="a client's key pair, allowed with a role; or the server's (--server)")
    new.add_argument("name", nargs="?", help="the client's name (letters, digits, _ - .)")
    new.add_argument("--role", choices=list(ROLES), help="what the client may do (docs/protocol.md)")
    new.add_argument("--server", action="store_true", help="make the server's key pair instead")
    new.add_argument("--dir", default="keys", help="the keys directory (default ./keys)")
    new.set_defaults(run=_keys_new)
    listed = keys_commands.add_parser("list", help="the clients allowed, with their roles, and the server's key")
    listed.add_argument("--dir", default="keys", help="the keys directory (default ./keys)")
    listed.add_argument("--json", action="store_true", help="print JSON for scripts")
    listed.set_defaults(run=_keys_list)


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of 1 or more, got {text!r}")
    return value


def _json_object(text: str) -> dict[str, object]:
    """A JSON object given as it is, from a file (``@FILE``), or from the standard input (``-``)."""
    if text == "-":
        text = sys.stdin.read()
    elif text.startswith("@"):
        try:
            text = Path(text[1:]).read_text(encoding="utf-8")
        except OSError as exc:
            raise argparse.ArgumentTypeError(f"cannot read the body from {text[1:]}: {exc.strerror}; give an "
                                             "existing JSON file after @") from None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"expected a JSON object such as '{{\"intersection\": -29436}}', "
                                         f"got {text!r}: {exc}") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"expected a JSON object, got {type(value).__name__}")
    return value


def _load(args: argparse.Namespace) -> RoadNetwork:
    from pilotage.adapters.osm import load_network  # noqa: PLC0415 - keeps `--help` instant

    return load_network(args.osm)


def _network_info(args: argparse.Namespace) -> dict[str, object]:
    network = _load(args)
    summary: dict[str, Any] = network.summary()
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
    print(f"  edges                     {summary['edges']:>8,}"
          f"   ({summary['restricted_edges']:,} restricted: buses and trams, not cars)")
    print(f"  signalised intersections  {summary['signalised_intersections']:>8,}"
          f"   ({summary['signal_nodes']} signal nodes)")
    print(f"  road length               {summary['length_km']:>8,.1f} km")
    print(f"  bounding box              lon {min_lon:.4f}..{max_lon:.4f}, lat {min_lat:.4f}..{max_lat:.4f}")
    print(f"  dropped                   {report['non_drivable_edges_dropped']:,} edges open to neither cars nor "
          f"buses; {report['scc_dropped_nodes']:,} nodes and {report['scc_dropped_edges']:,} edges outside "
          "the largest strongly connected component")
    return summary


def _gtfs_check(args: argparse.Namespace) -> dict[str, object]:
    from pilotage.adapters.gtfs import check_feed, check_geojson, check_html, format_check, read_feed  # noqa: PLC0415

    feed = read_feed(args.feed)
    report = check_feed(feed, _load(args), service_date=args.date)
    result: dict[str, Any] = report.to_dict()
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "check.json").write_text(json.dumps(result, indent=1), encoding="utf-8")
        (out / "check.geojson").write_text(json.dumps(check_geojson(report)), encoding="utf-8")
        (out / "check.html").write_text(check_html(report), encoding="utf-8")
    if not args.json:
        print(format_check(report))
        if args.out:
            print(f"report, GeoJSON and map in {args.out}/")
    return result


def _network_route(args: argparse.Namespace) -> dict[str, object]:
    network = _load(args)
    ends: list[dict[str, Any]] = []
    for name, (lon, lat) in (("from", args.origin), ("to", args.destination)):
        node, snap_m = network.snap(lon, lat)
        ends.append({"point": [lon, lat], "node": node, "osmid": int(network.node_osmid[node]),
                     "node_lon": float(network.node_lon[node]), "node_lat": float(network.node_lat[node]),
                     "snap_m": round(snap_m, 1), "end": name})
    route = network.shortest_path(ends[0]["node"], ends[1]["node"], weight=args.weight)
    crossed = network.intersections
    arrival_s = route.cumulative(network.travel_time_s)[route.intersection_positions]
    distance_m = route.cumulative(network.length_m)[route.intersection_positions]
    result: dict[str, Any] = {
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


def _route(args: argparse.Namespace) -> list[dict[str, object]]:
    from pilotage.routing.batch import run_files  # noqa: PLC0415

    if args.time_limit is not None and not args.time_limit > 0:
        raise InvalidInputError(f"expected --time-limit > 0 s, got {args.time_limit}", field="time-limit")
    network = None if args.instance_format else _load(args)
    progress = _Progress(len(args.inputs)) if sys.stderr.isatty() and not args.json else None
    summaries = run_files(args.inputs, args.out, instance_format=args.instance_format, network=network,
                          time_limit_s=args.time_limit, seed=args.seed, workers=args.workers,
                          on_progress=progress.update if progress else None)
    if progress:
        progress.close()
    failed = [s for s in summaries if "error" in s or not s["feasible"]]
    if not args.json:
        # Jobs: costs in their currency, km, and the hours out of all rounds (h:mm); standard
        # instances: cost and distance in the instance's unit. The search's own time stands apart.
        jobs = args.instance_format is None
        names = [Path(str(s["input"])).name for s in summaries]
        width = max(len("input"), *(len(name) for name in names))
        rounds = f" {'rounds h:mm':>11}" if jobs else ""
        print(f"{'input':<{width}} {'feasible':>8} {'cost':>16} {'distance km' if jobs else 'distance':>12}{rounds} "
              f"{'vehicles':>8} {'left out':>8} | {'search s':>8}")
        for name, s in zip(names, summaries, strict=True):
            if "error" in s:
                print(f"{name:<{width}} error: {s['error']}")
                continue
            cost = f"{s['cost']:,.2f}" + (f" {s['currency']}" if s.get("currency") else "")
            distance = s["distance"] / 1000 if jobs else s["distance"]
            hours, minutes = divmod(round(s["duration_s"] / 60), 60)
            rounds = f" {f'{hours}:{minutes:02d}':>11}" if jobs else ""
            print(f"{name:<{width}} {'yes' if s['feasible'] else 'NO':>8} {cost:>16} {distance:>12,.1f}{rounds} "
                  f"{s['vehicles_used']:>8} {s['unassigned']:>8} | {s['runtime_s']:>8.1f}")
        written = [name for name, s in zip(names, summaries, strict=True) if "error" not in s]
        if len(written) == len(summaries):
            print(f"solutions, GeoJSON and maps in {args.out}/")
        elif written:
            print(f"solutions, GeoJSON and maps of {len(written)} of {len(summaries)} files in {args.out}/: "
                  f"{', '.join(written)}")
    if failed:
        listed = ", ".join(Path(str(s["input"])).name for s in failed)
        raise PilotageError(f"{len(failed)} of {len(summaries)} files failed or gave an infeasible solution: {listed}")
    return summaries


class _Progress:
    """A one-line progress bar on stderr: the share of the files' search time done, and each best cost."""

    def __init__(self, files: int) -> None:
        self.done = [0.0] * files
        self.budget = [1.0] * files
        self.best: dict[int, float] = {}
        self.shown = 0.0

    def update(self, index: int, elapsed_s: float, budget_s: float, cost: float) -> None:
        self.done[index], self.budget[index] = min(elapsed_s, budget_s), budget_s
        self.best[index] = cost
        now = time.monotonic()
        if now - self.shown < 0.2 and elapsed_s < budget_s:
            return
        self.shown = now
        share = sum(self.done) / sum(self.budget)
        bar = "#" * round(30 * share)
        costs = "  ".join(f"{self.best[i]:,.1f}" for i in sorted(self.best))[:60]
        sys.stderr.write(f"\r[{bar:<30}] {share:4.0%}  best cost: {costs}\x1b[K")
        sys.stderr.flush()

    @staticmethod
    def close() -> None:
        sys.stderr.write("\n")


def _state_directory() -> Path:
    """Where the server keeps its state: ``$PILOTAGE_STATE_DIR``, else ``$XDG_STATE_HOME/pilotage``,
    else ``~/.local/state/pilotage``."""
    if os.environ.get("PILOTAGE_STATE_DIR"):
        return Path(os.environ["PILOTAGE_STATE_DIR"])
    base = os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state"
    return Path(base) / "pilotage"


def _serve(args: argparse.Namespace) -> None:
    from pilotage.adapters.config import ServeConfig, read_serve_config  # noqa: PLC0415
    from pilotage.adapters.operations import serve_http  # noqa: PLC0415
    from pilotage.adapters.osm import load_network  # noqa: PLC0415
    from pilotage.adapters.service import AuditLog, FieldClock, Service  # noqa: PLC0415
    from pilotage.adapters.zeromq import Server  # noqa: PLC0415
    from pilotage.core.default_plans import default_plans  # noqa: PLC0415
    from pilotage.core.signals import SignalPlans  # noqa: PLC0415
    from pilotage.parking import ParkingEngine, ReservationBook, read_bnls, read_counts, sample_carparks  # noqa: PLC0415
    from pilotage.routing import RoutingQueue  # noqa: PLC0415
    from pilotage.signal_priority import CorridorEngine, PriorityEngine  # noqa: PLC0415

    # The whole configuration is checked before anything starts.
    config = read_serve_config(args.config, {name: value for name, value in vars(args).items()
                                             if name in ServeConfig.__struct_fields__})
    field_clock = FieldClock() if config.clock == "field" else None
    clock = field_clock or time.time
    corridor_config = config.corridors
    if config.sumocfg:
        scenario = _read_scenario(config.sumocfg)
        network, plans = scenario.network, scenario.plans
        # Its roads' classes are named by speed limit: the emergency speeds are the scenario's.
        corridor_config = dataclasses.replace(corridor_config, emergency_speed_kph=scenario.speed_classes_kph)
    else:
        network = load_network(config.osm)
        plans = default_plans(network)
    engine = PriorityEngine(SignalPlans(plans), clock=clock, config=config.priority)
    # Compile or load the kernels now, not at the first request: a decision and a pre-emption, on an
    # engine of one intersection thrown away after (a pre-emption suspends priority where it runs).
    warm_up = PriorityEngine(SignalPlans(engine.plans.plans[:1]), clock=time.time)
    warm_up.decide([])
    warm_up.preempt(warm_up.plans.ids[0], [])
    carparks = read_bnls(config.carparks) if config.carparks else sample_carparks()
    database = Path(config.parking_db) if config.parking_db else _state_directory() / "parking.sqlite"
    database.parent.mkdir(parents=True, exist_ok=True)
    parking = ParkingEngine(carparks, ReservationBook(database, carparks, clock=time.time), time.time,
                            network=network)
    if config.counts:
        parking.load_counts(read_counts(config.counts))
    logger.info("%d car parks; reservations in %s", len(carparks), database)
    jobs = Path(config.routing_db) if config.routing_db else _state_directory() / "routing.sqlite"
    routing = RoutingQueue(jobs, network, clock=time.time)
    logger.info("routing jobs in %s", jobs)
    audit = AuditLog(config.audit or _state_directory() / "audit.jsonl")
    logger.info("audit log: %s", audit.path)
    signal_state = Path(config.state_db) if config.state_db else _state_directory() / "signals.sqlite"
    service = Service(network, engine, corridors=CorridorEngine(network, engine, corridor_config), parking=parking,
                      routing=routing, audit=audit, signal_state=signal_state,
                      max_message_bytes=config.max_message_bytes, field_clock=field_clock,
                      command_ttl_s=config.command_ttl_s)
    logger.info("signal states in %s", signal_state)
    _follow_transit(service, config)
    server = Server(service, bind=config.bind, events=config.pub, keys=config.keys, insecure=config.insecure,
                    queue_limit=config.queue_limit)
    metrics = serve_http(config.metrics, service.metrics, service.health) if config.metrics else None
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: server.stop())
    # As for a stop, the handler only asks: the serving thread reads the keys again.
    signal.signal(signal.SIGHUP, lambda *_: server.reload_keys())
    try:
        server.serve_forever()
    finally:
        if metrics is not None:
            metrics.shutdown()
        service.close()


def _follow_transit(service: Service, config: ServeConfig) -> None:
    """The trips of the configuration's GTFS feed to the service's tracker, and its GTFS-Realtime
    link (positions read, trip updates written), if any."""
    if config.gtfs is None:
        if config.vehicle_positions or config.trip_updates:
            raise InvalidInputError("expected --gtfs with --vehicle-positions or --trip-updates: positions name "
                                    "the trips of a timetable", field="gtfs")
        return
    from pilotage.adapters.gtfs import read_feed, timetable  # noqa: PLC0415
    from pilotage.adapters.gtfs_realtime import FeedLink, position_source  # noqa: PLC0415

    feed = read_feed(config.gtfs)
    day = (dt.date.fromisoformat(config.gtfs_date) if config.gtfs_date
           else dt.datetime.now(ZoneInfo(feed.timezone)).date())
    trips = timetable(feed, service.network, service_date=day, plans=service.priority.plans,
                      day_start_s=None if config.clock == "wall" else 0.0)
    service.tracker.add_trips(trips.trips)
    logger.info("GTFS %s, %s: %d bus and tram trips followed on %d paths (%d left out); %.1f s matching",
                config.gtfs, day, len(trips.trips), len(trips.paths), sum(trips.left_out.values()),
                trips.match_time_s)
    if config.vehicle_positions or config.trip_updates:
        source = position_source(config.vehicle_positions) if config.vehicle_positions else None
        service.timed_work.append(FeedLink(service, source, config.trip_updates))


def _read_scenario(sumocfg: str) -> ScenarioNetwork:
    try:
        from pilotage.adapters.sumo.network import read_scenario  # noqa: PLC0415 - SUMO is an extra
    except ImportError as exc:
        raise PilotageError(str(exc)) from exc
    try:
        return read_scenario(sumocfg)
    except ImportError as exc:
        # SUMO is an extra: its absence is the user's to fix, not an internal error.
        raise PilotageError(str(exc)) from exc


def _simulate(args: argparse.Namespace) -> list[Run] | dict[str, object]:
    try:
        return _run_simulation(args)
    except ImportError as exc:
        # SUMO is an extra: its absence is the user's to fix, not an internal error.
        raise PilotageError(str(exc)) from exc


def _run_simulation(args: argparse.Namespace) -> list[Run] | dict[str, object]:
    from pilotage.adapters.sumo.closed_loop import LoopOptions, compare  # noqa: PLC0415 - SUMO is an extra
    from pilotage.adapters.sumo.report import (  # noqa: PLC0415
        comparison,
        format_lights,
        format_table,
        left_to_sumo,
        write_report,
    )
    from pilotage.adapters.sumo.scenario import city_scenario  # noqa: PLC0415

    demo = getattr(args, "demo", False)
    if demo and args.sumo_args:
        raise InvalidInputError("`pilotage demo` takes no SUMO arguments; use `pilotage simulate ... -- ARGS`")
    sumocfg = Path(args.sumocfg) if args.sumocfg else city_scenario().sumocfg
    duration_s = args.duration
    if args.check:
        return _check_scenario(sumocfg, args)
    options = LoopOptions(priority=args.priority == "on", corridors=args.corridors == "on", duration_s=duration_s,
                          min_lateness_s=args.min_lateness,
                          emergency_every_s=args.emergency_every, seed=args.seed,
                          sumo_args=tuple(args.sumo_args), engine=getattr(args, "engine", None),
                          time_space_line=args.time_space_line, requests_from=args.requests_from,
                          timetable=args.gtfs, timetable_date=args.gtfs_date)
    report_file = args.report or ("simulation/report.json" if demo else None)
    report = Path(report_file) if report_file else None
    if report is not None and report.suffix != ".json":
        raise InvalidInputError(f"expected a report path ending in .json, got {str(report)!r}: name the file "
                                "<name>.json; the plots and the runs' outputs go next to it", field="report")
    # Each run's outputs (SUMO's and the scenario's own) in a folder named after the report, beside it.
    runs = compare(sumocfg, options, seeds=args.seeds, baseline=args.compare == "on",
                   own_control=args.own_control == "on" and options.engine is None,
                   output_dir=report.with_suffix("") if report is not None else None)
    left = left_to_sumo(runs)
    for reason, count in Counter(left.values()).most_common():
        logger.warning("%d traffic light%s left to SUMO, which runs %s: %s (%s)", count, "s" if count > 1 else "",
                       "their programs" if count > 1 else "its program", reason,
                       ", ".join(name for name, why in left.items() if why == reason))
    if not args.json:
        print(format_table(runs))
        print(format_lights(runs))
    if report is None and args.compare == "on":
        comparison(runs)  # its headline, logged (a report logs it when written)
    if report is not None:
        path = write_report(runs, report)
        if not args.json:
            print(f"report and plots in {path.parent}/, each run's outputs in {report.with_suffix('')}/")
    return runs


def _check_scenario(sumocfg: Path, args: argparse.Namespace) -> dict[str, object]:
    from pilotage.adapters.sumo.check import check_scenario, format_check  # noqa: PLC0415 - SUMO is an extra

    check = check_scenario(sumocfg)
    if not args.json:
        print(format_check(check))
    return dict(check)


def _parking_forecast(args: argparse.Namespace) -> None:
    from pilotage.parking import forecast_table  # noqa: PLC0415

    print(forecast_table([Path(path) for path in args.csv], train_fraction=args.train_fraction))


def _curve_files(args: argparse.Namespace) -> dict[str, str | None]:
    return {"server_key": args.server_key, "client_key": args.key}


def _call(args: argparse.Namespace) -> None:
    from pilotage.adapters.zeromq import Client  # noqa: PLC0415

    with Client(args.endpoint, timeout_s=args.timeout, retries=args.retries, **_curve_files(args)) as client:
        print(json.dumps(client.request(args.type, args.body), indent=2))


def _watch(args: argparse.Namespace) -> None:
    from pilotage.adapters.zeromq import Subscriber  # noqa: PLC0415

    with Subscriber(args.endpoint, args.topics, **_curve_files(args)) as subscriber:
        for _ in itertools.count() if args.count is None else range(args.count):
            topic, body = subscriber.receive(timeout_s=30.0)
            print(json.dumps({"topic": topic, "body": body}), flush=True)


def _schema(args: argparse.Namespace) -> None:
    if args.out is None:
        if args.name is None:
            raise InvalidInputError("expected a NAME to print, or --out DIR to write every file", field="name")
        print(schema_text(json_schemas()[args.name]), end="")
        return
    try:
        written = write_json_schemas(args.out, args.name)
    except OSError as exc:
        raise InvalidInputError(f"expected a folder to write the JSON Schema files to, got {args.out!r}: {exc}; "
                                "give one you may write to", field="out") from None
    for path in written:
        print(path)


def _keys_new(args: argparse.Namespace) -> None:
    from pilotage.adapters.zeromq import new_client_keys, new_server_keys  # noqa: PLC0415

    if args.server:
        if args.name or args.role:
            raise InvalidInputError("expected --server alone, or a NAME with --role; not both", field="name")
        print(f"server public key: {new_server_keys(args.dir)} (give it to clients; keep server.key_secret here)")
        return
    if not (args.name and args.role):
        raise InvalidInputError("expected a client NAME and --role, or --server", field="name")
    secret = new_client_keys(args.dir, args.name, args.role)
    print(f"client {args.name} allowed with role {args.role}; its key pair: {secret} (give it to the client)")


def _keys_list(args: argparse.Namespace) -> dict[str, object]:
    from pilotage.adapters.zeromq import read_allow_list  # noqa: PLC0415

    directory = Path(args.dir)
    if not directory.is_dir():
        raise InvalidInputError(f"expected a keys directory, got {str(directory)!r}, which is not one; make it with "
                                f"`pilotage keys new --server --dir {directory}`", field="dir")
    server_key = directory / "server.key"
    clients = [{"name": caller.name, "role": caller.role, "key": key.decode("ascii"),
                "file": str(directory / "clients" / f"{caller.name}.key"),
                "secret_here": (directory / "clients" / f"{caller.name}.key_secret").exists()}
               for key, caller in read_allow_list(directory).items()]
    listing: dict[str, object] = {"server_key": str(server_key) if server_key.exists() else None, "clients": clients}
    if args.json:
        return listing
    if listing["server_key"]:
        print(f"server key: {server_key} (give it to clients; server.key_secret stays on the server)")
    else:
        print(f"no server key in {directory}: make it with `pilotage keys new --server --dir {directory}`")
    print(f"clients allowed ({len(clients)}), from {directory / 'clients'}/*.key:")
    for client in clients:
        left = "   its key pair is still here: give it to the client, then delete it" if client["secret_here"] else ""
        print(f"  {client['name']:<24} {client['role']:<12}{left}")
    return listing


class _JsonLines(logging.Formatter):
    """One JSON object per record, for a log collector."""

    def format(self, record: logging.LogRecord) -> str:
        line = {"time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}",
                "level": record.levelname.lower(), "logger": record.name, "message": record.getMessage()}
        request_id = getattr(record, "request_id", None)
        if request_id is not None:
            line["request_id"] = request_id
        if record.exc_info:
            line["traceback"] = self.formatException(record.exc_info)
        return json.dumps(line)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    parser = _parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    # Arguments after -- go to SUMO, unchanged.
    sumo_args = argv[argv.index("--") + 1:] if "--" in argv else []
    argv = argv[:argv.index("--")] if "--" in argv else argv
    args = parser.parse_args(argv)
    if sumo_args and args.command != "simulate":
        parser.error("only `pilotage simulate` takes arguments after --")
    args.sumo_args = sumo_args
    # Warnings from the libraries, information from pilotage (such as a first build), on stderr.
    logging.basicConfig(level=logging.WARNING, format="pilotage: %(message)s", stream=sys.stderr)
    if args.log_json:
        for handler in logging.getLogger().handlers:
            handler.setFormatter(_JsonLines())
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
    if getattr(args, "json", False):
        print(json.dumps(result, indent=2))
    return 0
