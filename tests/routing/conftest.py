"""Fixtures of the routing tests: small jobs on the embedded city."""

import copy
import json
from collections.abc import Callable
from pathlib import Path

import pytest

from pilotage.core.protocol import decode_job
from pilotage.core.protocol.jobs import Job

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.fixture(scope="session")
def bulky_waste() -> dict:
    """The embedded city's example of 60 bulky-waste pickups, as JSON data."""
    return json.loads((EXAMPLES / "bulky-waste.json").read_text())


@pytest.fixture(scope="session")
def street_cleaning() -> dict:
    """The embedded city's example cleaning round, as JSON data."""
    return json.loads((EXAMPLES / "street-cleaning.json").read_text())


@pytest.fixture
def small_job(bulky_waste: dict) -> Callable[..., dict]:
    """Makes a job of the first ``stops`` pickups of the example (default 8) for two trucks, with
    changes: ``small_job(stops=5, **{"vehicles": [...]})``."""

    def make(stops: int = 8, **changes: object) -> dict:
        job = copy.deepcopy(bulky_waste)
        job["name"] = "small"
        job["stops"] = job["stops"][:stops]
        for stop in job["stops"]:
            stop.pop("skills", None)
        job["vehicles"] = [dict(job["vehicles"][0], count=2)]
        job["options"] = {"time_limit_s": 1}
        job.update(changes)
        return job

    return make


@pytest.fixture(scope="session")
def as_job() -> Callable[[dict], Job]:
    """Decodes JSON data into a job, as from a file."""
    return lambda data: decode_job(json.dumps(data).encode())
