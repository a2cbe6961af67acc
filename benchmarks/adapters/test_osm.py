"""Loading the embedded city in-process: building it from the OSM extract (reference) against
loading the cached arrays. The kernels are compiled beforehand, so the build is osmnx's reading
and simplification plus pilotage's grouping of signals.
"""

import tempfile

from pilotage.adapters.osm import load_network
from pilotage.core import RoadNetwork

GROUP = "embedded city, in-process"


def test_build_from_osm(benchmark, city: RoadNetwork) -> None:
    benchmark.group = GROUP
    benchmark.extra_info["reference"] = True
    benchmark.pedantic(load_network, setup=lambda: ((), {"cache_dir": tempfile.mkdtemp(prefix="pilotage-build-")}),
                       rounds=3, iterations=1)


def test_load_from_cache(benchmark, city: RoadNetwork) -> None:
    benchmark.group = GROUP
    cache_dir = tempfile.mkdtemp(prefix="pilotage-load-")
    load_network(cache_dir=cache_dir)
    benchmark(load_network, cache_dir=cache_dir)
