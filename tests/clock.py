"""The clock every test and benchmark moves by hand, as the engines read time from an injected clock.

Tests get it from the ``manual_clock`` fixture (tests/conftest.py, benchmarks/conftest.py) or import
it; it needs nothing but the standard library, so the benchmarks load it from this file.
"""


class ManualClock:
    """A clock the test moves by hand: calling it returns ``now_s``, which the test sets or adds to."""

    def __init__(self, now_s: float = 1000.0) -> None:
        self.now_s = now_s

    def __call__(self) -> float:
        return self.now_s
