"""The car parks: a registry read from the French national off-street parking schema (BNLS).

The BNLS ("Base nationale des lieux de stationnement", schema.data.gouv.fr
``etalab/schema-stationnement``) publishes one car park per row (CSV) or per feature (GeoJSON).
pilotage reads ``id``, ``nom`` (name), ``adresse``, ``Xlong`` and ``Ylat`` (WGS 84 degrees; a GeoJSON
point's coordinates otherwise) and ``nb_places`` (capacity); other columns are kept out. One column
of its own may be added, ``reservable_share`` (0 to 1): the share of spaces that may be reserved
ahead; without it, the reader's default applies.

:func:`sample_carparks` gives eight car parks of the embedded city, marked as sample data
(``parking/data/README.md``).
"""

from __future__ import annotations

import csv
import json
import math
import os
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pilotage.core.errors import DataFileError, InvalidInputError, UnknownEntityError

SAMPLE_CARPARKS = Path(__file__).resolve().parent / "data" / "sample-carparks.csv"

#: The share of a car park's spaces that may be reserved, when its file does not say.
DEFAULT_RESERVABLE_SHARE = 0.2


@dataclass(frozen=True)
class CarPark:
    """One car park.

    Attributes:
        id: its id in the registry (the BNLS ``id``).
        name: its name.
        lon, lat: its entrance, degrees (WGS 84).
        capacity: its spaces.
        reservable: the spaces that may be reserved ahead (at most ``capacity``).
        address: its address, as published.
    """

    id: str
    name: str
    lon: float
    lat: float
    capacity: int
    reservable: int
    address: str = ""

    def __post_init__(self) -> None:
        if not self.id:
            raise InvalidInputError("expected a non-empty car park id", field="id")
        if not (-180.0 <= self.lon <= 180.0 and -90.0 <= self.lat <= 90.0):
            raise InvalidInputError(f"car park {self.id}: expected lon in [-180, 180] and lat in [-90, 90], got "
                                    f"({self.lon}, {self.lat})", field="lon")
        if self.capacity <= 0:
            raise InvalidInputError(f"car park {self.id}: expected a capacity > 0, got {self.capacity}",
                                    field="capacity")
        if not 0 <= self.reservable <= self.capacity:
            raise InvalidInputError(f"car park {self.id}: expected 0 <= reservable <= capacity ({self.capacity}), "
                                    f"got {self.reservable}", field="reservable")


class CarParks:
    """The registry: car parks by id, and their positions as arrays (``lon``, ``lat``).

    Raises:
        InvalidInputError: no car park, or two with one id.
    """

    def __init__(self, carparks: Iterable[CarPark]) -> None:
        self.carparks = tuple(carparks)
        if not self.carparks:
            raise InvalidInputError("expected at least one car park", field="carparks")
        self._index = {carpark.id: i for i, carpark in enumerate(self.carparks)}
        if len(self._index) != len(self.carparks):
            raise InvalidInputError("expected unique car park ids", field="id")
        self.lon = np.array([carpark.lon for carpark in self.carparks])
        self.lat = np.array([carpark.lat for carpark in self.carparks])
        self.lon.flags.writeable = self.lat.flags.writeable = False

    def __len__(self) -> int:
        return len(self.carparks)

    def __iter__(self) -> Iterator[CarPark]:
        return iter(self.carparks)

    @property
    def ids(self) -> tuple[str, ...]:
        """The ids, in the registry's order."""
        return tuple(self._index)

    def index_of(self, carpark_id: str) -> int:
        """Index of the car park with this id; raises :class:`UnknownEntityError`."""
        try:
            return self._index[carpark_id]
        except (KeyError, TypeError):
            raise UnknownEntityError(f"no car park has id {carpark_id!r}; `parking.availability` lists them",
                                     field="carpark") from None

    def get(self, carpark_id: str) -> CarPark:
        """The car park with this id; raises :class:`UnknownEntityError`."""
        return self.carparks[self.index_of(carpark_id)]

    def distances_m(self, lon: float, lat: float) -> np.ndarray:
        """Great-circle distance (m) from ``(lon, lat)`` to each car park."""
        return haversine_m(lon, lat, self.lon, self.lat)


def haversine_m(lon: float, lat: float, lons: np.ndarray, lats: np.ndarray) -> np.ndarray:
    """Great-circle distances (m) from one point to many (degrees)."""
    lon1, lat1 = np.radians(lon), np.radians(lat)
    lon2, lat2 = np.radians(lons), np.radians(lats)
    a = np.sin((lat2 - lat1) / 2) ** 2 + np.cos(lat1) * np.cos(lat2) * np.sin((lon2 - lon1) / 2) ** 2
    distances_m: np.ndarray = 2 * 6_371_008.8 * np.arcsin(np.sqrt(a))
    return distances_m


def read_bnls(path: str | os.PathLike[str], *, reservable_share: float = DEFAULT_RESERVABLE_SHARE) -> CarParks:
    """The car parks of a BNLS file: CSV (comma or semicolon) or GeoJSON (``.geojson``, ``.json``).

    Raises:
        DataFileError: a file that cannot be read, or a row without a valid id, position or
            capacity (the message names the row and the column).
        InvalidInputError: two car parks with one id.
    """
    path = Path(path)
    if not 0.0 <= reservable_share <= 1.0:
        raise InvalidInputError(f"expected reservable_share in [0, 1], got {reservable_share}",
                                field="reservable_share")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise DataFileError(f"cannot read car parks from {path}: {exc}", field="path") from None
    rows = _geojson_rows(path, text) if path.suffix.lower() in (".geojson", ".json") else _csv_rows(text)
    return CarParks(_carpark(path, where, row, reservable_share) for where, row in rows)


def sample_carparks() -> CarParks:
    """The embedded city's sample car parks (sample data, not an official record)."""
    return read_bnls(SAMPLE_CARPARKS)


def _csv_rows(text: str) -> Iterator[tuple[str, Mapping[str, str]]]:
    dialect = csv.Sniffer().sniff(text.split("\n", 1)[0], delimiters=",;")
    for number, row in enumerate(csv.DictReader(text.splitlines(), dialect=dialect), start=2):
        yield f"line {number}", row


def _geojson_rows(path: Path, text: str) -> Iterator[tuple[str, Mapping[str, object]]]:
    try:
        features = json.loads(text)["features"]
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise DataFileError(f"{path}: expected a GeoJSON FeatureCollection ({exc})", field="features") from None
    for number, feature in enumerate(features):
        properties = dict(feature.get("properties") or {})
        geometry = feature.get("geometry") or {}
        if geometry.get("type") == "Point":
            properties.setdefault("Xlong", geometry["coordinates"][0])
            properties.setdefault("Ylat", geometry["coordinates"][1])
        yield f"feature {number}", properties


def _carpark(path: Path, where: str, row: Mapping[str, object], reservable_share: float) -> CarPark:
    def number(column: str, default: float | None = None) -> float:
        value = row.get(column)
        if value in (None, "") and default is not None:
            return default
        try:
            result = float(str(value).replace(",", "."))
        except ValueError:
            result = math.nan
        if not math.isfinite(result):
            raise DataFileError(f"{path}, {where}: expected a number in column {column}, got {value!r}",
                                field=column)
        return result

    carpark_id = str(row.get("id") or "").strip()
    if not carpark_id:
        raise DataFileError(f"{path}, {where}: expected an id in column id", field="id")
    capacity = int(number("nb_places"))
    share = number("reservable_share", reservable_share)
    if capacity <= 0 or not 0.0 <= share <= 1.0:
        raise DataFileError(f"{path}, {where}: car park {carpark_id}: expected nb_places > 0 and reservable_share "
                            f"in [0, 1], got {capacity} and {share}", field="nb_places")
    try:
        return CarPark(id=carpark_id, name=str(row.get("nom") or carpark_id), lon=number("Xlong"),
                       lat=number("Ylat"), capacity=capacity, reservable=math.floor(capacity * share),
                       address=str(row.get("adresse") or ""))
    except InvalidInputError as exc:
        raise DataFileError(f"{path}, {where}: {exc}", field=exc.field) from None
