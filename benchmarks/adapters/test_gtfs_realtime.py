"""GTFS-Realtime for Dijon's 180 buses: reading their VehiclePositions feed into checked wire messages,
and writing their TripUpdates feed, against protobuf's own parsing of the same feed (reference).
"""

from google.transit import gtfs_realtime_pb2 as rt

from pilotage.adapters.gtfs_realtime import TripDelay, read_vehicle_positions, trip_updates_feed, vehicle_positions_feed
from pilotage.core.protocol import VehiclePosition

GROUP = "GTFS-Realtime, 180 buses"
BUSES = 180
START_S = 1_700_000_000.0

POSITIONS = [VehiclePosition(f"bus-{index}", 5.0 + index * 1e-3, 47.3 + index * 1e-3, START_S + index % 30,
                             trip=f"T-{index}", route=f"L-{index % 12}", speed_m_s=8.0, heading_deg=90.0,
                             occupancy=30.0) for index in range(BUSES)]
FEED = vehicle_positions_feed(POSITIONS, timestamp=START_S + 30)
DELAYS = [TripDelay(f"T-{index}", f"L-{index % 12}", f"bus-{index}", 60.0, f"S-{index}", 7, START_S)
          for index in range(BUSES)]


def test_protobuf_parse(benchmark) -> None:
    benchmark.group = GROUP
    benchmark.extra_info["reference"] = True
    benchmark(rt.FeedMessage.FromString, FEED)


def test_read_vehicle_positions(benchmark) -> None:
    benchmark.group = GROUP
    # A new reader each time (read_vehicle_positions), so every position is read, none a repeat.
    batch = benchmark(read_vehicle_positions, FEED)
    assert len(batch.positions) == BUSES


def test_write_trip_updates(benchmark) -> None:
    benchmark.group = GROUP
    benchmark(trip_updates_feed, DELAYS, timestamp=START_S)
