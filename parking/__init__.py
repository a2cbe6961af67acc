"""Car parks: live availability, reservations ahead, forecasts and guidance."""

from pilotage.parking.engine import Availability, Guidance, ParkingEngine
from pilotage.parking.forecast import (
    Counts,
    Forecaster,
    Persistence,
    ProfileRegression,
    SeasonalNaive,
    SeasonalProfile,
    evaluate,
    forecast_table,
    read_counts,
    resample,
)
from pilotage.parking.registry import CarPark, CarParks, read_bnls, sample_carparks
from pilotage.parking.reservations import Reservation, ReservationBook

__all__ = [
    "Availability",
    "CarPark",
    "CarParks",
    "Counts",
    "Forecaster",
    "Guidance",
    "ParkingEngine",
    "Persistence",
    "ProfileRegression",
    "Reservation",
    "ReservationBook",
    "SeasonalNaive",
    "SeasonalProfile",
    "evaluate",
    "forecast_table",
    "read_bnls",
    "read_counts",
    "resample",
    "sample_carparks",
]
