"""A priority request whose arrival its vehicle could not make from where it says it is, is refused:
fixed cases and a property over random positions and arrivals."""

import json
import math
from collections.abc import Callable

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pilotage.adapters.service import Service
from pilotage.core import RoadNetwork
from pilotage.core.network import MAX_PLAUSIBLE_SPEED_KPH, POSITION_TOLERANCE_M

Body = dict[str, object]
INTERSECTION = -30248


def ask(service: Service, body: Body) -> dict:
    frame = json.dumps({"v": 1, "id": "r", "type": "priority.request", "body": body}).encode()
    return json.loads(service.handle([frame])[0])


def near(city: RoadNetwork, north_m: float) -> dict[str, float]:
    """A point ``north_m`` north of the intersection's centre."""
    k = city.intersections.index_of(INTERSECTION)
    return {"lon": float(city.intersections.lon[k]), "lat": float(city.intersections.lat[k]) + north_m / 111_195.0}


def test_a_bus_2_km_away_cannot_arrive_in_5_s(make_service: Callable[..., Service], late_bus: Callable[..., Body],
                                               city: RoadNetwork) -> None:
    reply = ask(make_service(), late_bus(eta_s=5.0, position=near(city, 2000.0)))
    assert not reply["ok"]
    assert (reply["error"]["code"], reply["error"]["field"]) == ("BAD_SCHEMA", "body.eta_s")
    assert "no sooner than 46.8 s from 2000 m away (150 km/h at most)" in reply["error"]["message"]


def test_a_bus_300_m_away_arriving_in_30_s_is_decided(make_service: Callable[..., Service],
                                                     late_bus: Callable[..., Body], city: RoadNetwork) -> None:
    reply = ask(make_service(), late_bus(position=near(city, 300.0)))
    assert reply["ok"] and reply["body"]["decision"] == "granted"


# The fixtures make a fresh service per call, and the request bodies hold no state.
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(north_m=st.floats(0.0, 8000.0), eta_s=st.floats(0.0, 240.0))
def test_an_arrival_is_refused_exactly_when_it_needs_an_implausible_speed(
        make_service: Callable[..., Service], late_bus: Callable[..., Body], city: RoadNetwork, north_m: float,
        eta_s: float) -> None:
    service = make_service()
    reply = ask(service, late_bus(eta_s=eta_s, position=near(city, north_m)))
    soonest_s = max(0.0, north_m - POSITION_TOLERANCE_M) / (MAX_PLAUSIBLE_SPEED_KPH / 3.6)
    # The centre's distance is a great circle; the metres north are on a sphere of the same radius.
    if math.isclose(eta_s, soonest_s, abs_tol=0.05):
        return
    assert reply["ok"] == (eta_s > soonest_s), reply
    if not reply["ok"]:
        assert reply["error"]["field"] == "body.eta_s"
        assert service.priority.plan_ahead(INTERSECTION) == make_service().priority.plan_ahead(INTERSECTION)
