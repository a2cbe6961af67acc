"""`pilotage serve` killed (SIGKILL) and started again on the same state: nothing is lost. An open
corridor is answered from its restored self, a priority grant still running is in the plan and
can be checked out, a reservation can be cancelled, a routing job is still known."""

import contextlib
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pilotage.adapters.zeromq import Client

from .conftest import TINY_JOB, Served

CORRIDOR = {"incident": "fire-1", "origin": -30124, "destination": -16808}
INTERSECTION, GROUP = -30182, "from--17636"


def granted_extension(client: Client) -> tuple[str, dict[str, object]]:
    """A late bus whose request changes the plan (on the wall clock, which arrival does depends on
    the moment): the vehicle, and the decision."""
    for n, eta_s in enumerate(range(5, 120, 3)):
        vehicle = f"bus-{n}"
        decision = client.request("priority.request", {"vehicle": vehicle, "intersection": INTERSECTION,
                                                       "group": GROUP, "eta_s": float(eta_s), "class": "bus",
                                                       "lateness_s": 200.0})
        if decision["strategy"] in ("extension", "early_green"):
            return vehicle, decision
    raise AssertionError("no arrival in the next two minutes got a plan change")


def test_a_killed_server_restarts_with_its_corridors_grants_reservations_and_jobs(
        serving: Callable[..., contextlib.AbstractContextManager[Served]], tmp_path: Path) -> None:
    state = tmp_path / "state"
    with serving(state, tmp_path / "first.log") as first, Client(first.endpoint, timeout_s=30.0) as client:
        opened: dict[str, Any] = client.request("corridor.open", CORRIDOR)
        vehicle, decision = granted_extension(client)
        state_before: dict[str, Any] = client.request("signals.state", {"intersection": INTERSECTION})
        plan = state_before["intersections"][0]["plan"]
        reservation = client.request("parking.reserve", {"carpark": "sample-gare", "from": time.time() + 600,
                                                         "until": time.time() + 4200, "ref": "app-1"})
        job = client.request("route.submit", TINY_JOB)["job"]
        # The state is kept at each tick of the engines, every 100 ms, before the tick starts a job.
        deadline = time.monotonic() + 60.0
        while client.request("route.status", {"job": job})["state"] == "queued" and time.monotonic() < deadline:
            time.sleep(0.1)
        first.process.send_signal(signal.SIGKILL)
        assert first.process.wait(timeout=30) == -signal.SIGKILL
    with serving(state, tmp_path / "second.log") as second, Client(second.endpoint, timeout_s=30.0) as client:
        assert "restored from" in second.log.read_text()
        updated: dict[str, Any] = client.request("corridor.update", {"incident": "fire-1",
                                                                     "position": {"lon": 6.1748, "lat": 49.6149}})
        assert updated["route"][:5] == opened["route"][:5]
        assert updated["reroutes"] <= 1
        state_after: dict[str, Any] = client.request("signals.state", {"intersection": INTERSECTION})
        replanned = state_after["intersections"][0]["plan"]
        granted = [entry for entry in plan if entry["green_until"] == decision["green_until"]]
        assert granted and granted[0] in replanned
        assert client.request("priority.checkout", {"vehicle": vehicle, "intersection": INTERSECTION})
        assert client.request("parking.cancel", {"reservation": reservation["reservation"]})["state"] == "cancelled"
        assert client.request("route.status", {"job": job})["state"] in ("queued", "running", "done")
