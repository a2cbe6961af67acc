"""Writes the embedded city's example routing jobs, reproducibly (fixed seed).

- ``bulky-waste.json``: 60 bulky-waste pickups booked by residents on one day, each with a two-hour
  appointment slot, for four trucks (one with a crane for heavy items) with a lunch break.
- ``street-cleaning.json``: the residential and tertiary streets within 700 m of the city centre,
  both sides, for two sweepers with a 300-litre hopper each, in the early-morning shift.

Run: ``python examples/make_city_jobs.py`` (from the repository root).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from pilotage.adapters.osm import load_network

SEED = 20261126
CENTRE = (6.1300, 49.6110)
HERE = Path(__file__).resolve().parent


def _distance_m(network, nodes: np.ndarray) -> np.ndarray:
    lon0, lat0 = CENTRE
    dx = (network.node_lon[nodes] - lon0) * 111_320 * np.cos(np.radians(lat0))
    dy = (network.node_lat[nodes] - lat0) * 110_540
    return np.hypot(dx, dy)


def bulky_waste(network, rng: np.random.Generator) -> dict:
    residential = network.road_classes.index("residential")
    ends = network.indices[network.road_class == residential]
    candidates = np.unique(ends[_distance_m(network, ends) < 4000])
    chosen = rng.choice(candidates, size=60, replace=False)
    slots = [("08:00", "10:00"), ("10:00", "12:00"), ("12:00", "14:00"), ("13:00", "15:00")]
    stops = []
    for k, node in enumerate(chosen):
        items = int(rng.integers(1, 4))
        stop = {"id": f"P-{k + 1:03d}",
                "location": {"lon": round(float(network.node_lon[node]), 6),
                             "lat": round(float(network.node_lat[node]), 6)},
                "demand": items, "service_s": 300 + 150 * items,
                "windows": [list(slots[int(rng.integers(len(slots)))])]}
        if k % 15 == 7:
            stop["skills"] = ["crane"]
        stops.append(stop)
    return {
        "name": "bulky-waste",
        "currency": "EUR",
        "depots": [{"id": "depot-gasperich", "location": {"lon": 6.1223, "lat": 49.5859}}],
        "vehicles": [
            {"id": "truck", "count": 3, "depot": "depot-gasperich", "capacity": 36, "shift": ["07:30", "15:30"],
             "breaks": [{"earliest": "11:30", "latest": "13:30", "duration_s": 1800}],
             "fixed_cost": 80, "cost_per_hour": 45, "cost_per_km": 0.6},
            {"id": "crane-truck", "depot": "depot-gasperich", "capacity": 40, "shift": ["07:30", "15:30"],
             "breaks": [{"earliest": "11:30", "latest": "13:30", "duration_s": 1800}],
             "fixed_cost": 120, "cost_per_hour": 55, "cost_per_km": 0.8, "skills": ["crane"]},
        ],
        "stops": stops,
        "options": {"time_limit_s": 20, "seed": 0},
    }


def street_cleaning(network) -> dict:
    classes = [network.road_classes.index(name) for name in ("residential", "tertiary")]
    inside = (_distance_m(network, network.edge_source) < 700) & (_distance_m(network, network.indices) < 700)
    ways = np.unique(network.edge_osmid[inside & np.isin(network.road_class, classes)])
    streets = [{"id": f"way-{int(way)}", "way": int(way), "sides": "both", "service_s_per_m": 0.6,
                "demand_per_m": 0.02} for way in ways if (network.edge_osmid == way).sum() == inside[
                    network.edge_osmid == way].sum()]
    return {
        "name": "street-cleaning",
        "currency": "EUR",
        "depots": [{"id": "depot-centre", "location": {"lon": 6.1282, "lat": 49.6065}}],
        "vehicles": [{"id": "sweeper", "count": 2, "depot": "depot-centre", "capacity": 300,
                      "shift": ["05:00", "11:00"], "cost_per_hour": 40, "cost_per_km": 0.3}],
        "streets": streets,
        "options": {"time_limit_s": 20, "seed": 0},
    }


def main() -> None:
    network = load_network()
    rng = np.random.default_rng(SEED)
    for name, job in (("bulky-waste", bulky_waste(network, rng)), ("street-cleaning", street_cleaning(network))):
        (HERE / f"{name}.json").write_text(json.dumps(job, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
