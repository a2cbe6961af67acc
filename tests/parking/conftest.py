"""Fixtures of the parking tests: the first days of the shared parking counts."""

from collections.abc import Callable
from pathlib import Path

import pytest

#: Days of May 2024 the tests read: the first nine.
MAY_DAYS = 9


@pytest.fixture(scope="session")
def may_files(shared_data: Callable[..., Path]) -> list[Path]:
    """The daily CSV files of counts of 1 to 9 May 2024, in order."""
    return [shared_data("parking", "2024-05", f"2024-05-{day:02d}.csv") for day in range(1, MAY_DAYS + 1)]
