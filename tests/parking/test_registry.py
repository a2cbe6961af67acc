"""The car park registry: BNLS files (CSV, GeoJSON), the sample registry, and clear errors."""

import json
from pathlib import Path

import pytest

from pilotage.core.errors import DataFileError
from pilotage.parking.registry import SAMPLE_CARPARKS, CarParks, read_bnls, sample_carparks

HEADER = "id,nom,adresse,Xlong,Ylat,nb_places,type_usagers,gratuit"


def test_the_sample_registry_is_marked_and_inside_the_embedded_city(city) -> None:
    carparks = sample_carparks()
    assert len(carparks) == 8
    assert all("SAMPLE" in carpark.name for carpark in carparks)
    assert "sample data" in (SAMPLE_CARPARKS.parent / "README.md").read_text().lower()
    min_lon, min_lat, max_lon, max_lat = city.bounding_box
    assert all(min_lon < c.lon < max_lon and min_lat < c.lat < max_lat for c in carparks)
    assert carparks.get("sample-gare").reservable == 150


def test_a_semicolon_csv_with_decimal_commas_and_the_default_share(tmp_path: Path) -> None:
    path = tmp_path / "parkings.csv"
    path.write_text("id;nom;adresse;Xlong;Ylat;nb_places\nP1;Centre;1 rue A;5,041;47,322;400\n")
    (carpark,) = read_bnls(path, reservable_share=0.25)
    assert (carpark.id, carpark.lon, carpark.lat, carpark.capacity, carpark.reservable) == ("P1", 5.041, 47.322, 400,
                                                                                           100)


def test_geojson_points_give_the_position(tmp_path: Path) -> None:
    path = tmp_path / "parkings.geojson"
    path.write_text(json.dumps({"type": "FeatureCollection", "features": [
        {"type": "Feature", "geometry": {"type": "Point", "coordinates": [5.04, 47.32]},
         "properties": {"id": "P1", "nom": "Centre", "nb_places": 120, "reservable_share": 0.5}}]}))
    (carpark,) = read_bnls(path)
    assert (carpark.lon, carpark.lat, carpark.reservable) == (5.04, 47.32, 60)


@pytest.mark.parametrize(("row", "field", "where"), [
    (",Sans id,,5.0,47.0,10,tous,0", "id", "line 2"),
    ("P1,Centre,,5.0,47.0,,tous,0", "nb_places", "line 2"),
    ("P1,Centre,,east,47.0,10,tous,0", "Xlong", "line 2"),
    ("P1,Centre,,5.0,147.0,10,tous,0", "lon", "line 2"),
    ("P1,Centre,,5.0,47.0,0,tous,0", "nb_places", "line 2"),
])
def test_a_bad_row_names_its_line_and_column(tmp_path: Path, row: str, field: str, where: str) -> None:
    path = tmp_path / "parkings.csv"
    path.write_text(f"{HEADER}\n{row}\n")
    with pytest.raises(DataFileError, match=where) as error:
        read_bnls(path)
    assert error.value.field == field
    assert str(path) in str(error.value)


def test_unknown_ids_and_duplicates(tmp_path: Path) -> None:
    with pytest.raises(LookupError, match="no car park has id 'nowhere'"):
        sample_carparks().get("nowhere")
    path = tmp_path / "parkings.csv"
    path.write_text(f"{HEADER}\nP1,A,,5.0,47.0,10,tous,0\nP1,B,,5.0,47.0,10,tous,0\n")
    with pytest.raises(ValueError, match="unique car park ids"):
        read_bnls(path)
    with pytest.raises(ValueError, match="at least one car park"):
        CarParks([])
