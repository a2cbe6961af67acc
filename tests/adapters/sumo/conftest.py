"""Fixtures of the SUMO tests: the embedded city's SUMO scenario, built once per session."""

import pytest

from pilotage.adapters.sumo.scenario import Scenario, city_scenario


@pytest.fixture(scope="session")
def scenario(tmp_path_factory: pytest.TempPathFactory) -> Scenario:
    """The embedded city's SUMO scenario, built at the first use in the session into a private cache
    (its parent folder)."""
    return city_scenario(cache_dir=tmp_path_factory.mktemp("sumo-scenario"))
