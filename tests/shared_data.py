"""The shared data: the standard routing instances, the SUMO scenarios and the parking counts kept
beside the repository, in ``<repository>/../shared/data`` (its README says what each is), not in it.

Tests and benchmarks ask for each file or folder they need through the ``shared_data`` fixture
(tests/conftest.py, benchmarks/conftest.py), which is :func:`shared_data_path`: when one is
missing, the test is skipped, with one reason everywhere: which path, and where the shared data
goes. Scripts beside the benchmarks read :data:`SHARED_DATA`.
"""

from pathlib import Path

#: The shared data folder, next to the repository.
SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def shared_data_path(*parts: str) -> Path:
    """The file or folder ``SHARED_DATA / part / ...``; skips the running test when it is missing."""
    __tracebackhide__ = True  # the skip is reported at the line of the test that asked
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        # Imported here: the scripts beside the benchmarks read SHARED_DATA without pytest installed.
        import pytest  # noqa: PLC0415

        pytest.skip(f"shared data missing: no {path}; put the shared data folder next to the repository, "
                    f"as {SHARED_DATA}")
    return path
