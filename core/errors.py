"""The errors pilotage raises on purpose: one small hierarchy.

Each class carries the wire-protocol error ``code`` it maps to (DESIGN.md, "Wire protocol v1") and,
where one input is at fault, the ``field`` that names it. Messages say what was expected, what
came, and how to fix it.
"""

from __future__ import annotations


class PilotageError(Exception):
    """Base of every error pilotage raises on purpose."""

    code = "INTERNAL"

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class InvalidInputError(PilotageError, ValueError):
    """An input that does not have the expected form, type or value."""

    code = "BAD_SCHEMA"


class DataFileError(InvalidInputError):
    """A data file (OSM extract, cache, job file) that cannot be read or holds nothing usable."""


class OutsideNetworkError(InvalidInputError):
    """A location too far from every node of the road network to be snapped to it."""


class UnknownEntityError(PilotageError, LookupError):
    """An id or index that names nothing known: a node, an intersection, a vehicle."""

    code = "UNKNOWN_ENTITY"


class NoRouteError(UnknownEntityError):
    """No path exists between two nodes of the road network."""
