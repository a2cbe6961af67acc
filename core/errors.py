"""The errors pilotage raises on purpose: one small hierarchy.

Each class carries the wire-protocol error ``code`` it maps to (DESIGN.md, "Wire protocol v1") and,
where one input is at fault, the ``field`` that names it. Messages say what was expected, what
came, and how to fix it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from typing_extensions import Self  # typing has it from Python 3.11


class PilotageError(Exception):
    """Base of every error pilotage raises on purpose."""

    code = "INTERNAL"

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field

    def with_prefix(self, *, field: str | None = None, message: str | None = None) -> Self:
        """This error as seen from a wider scope: a new error of the same class whose field is
        ``field.<this field>`` (``field`` alone when this error names none) and whose message is
        ``message: <this message>``; what is not given stays as it is. The traceback is kept, so
        that ``raise error.with_prefix(...) from None`` still shows where the error arose."""
        # __new__, not __init__: subclasses take other arguments (RemoteError, its code), and every
        # attribute is copied below anyway.
        prefixed = type(self).__new__(type(self), str(self) if message is None else f"{message}: {self}")
        prefixed.__dict__.update(self.__dict__)
        if field is not None:
            prefixed.field = field if self.field is None else f"{field}.{self.field}"
        return prefixed.with_traceback(self.__traceback__)


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


class MalformedMessageError(InvalidInputError):
    """A message that is not JSON, or not UTF-8."""

    code = "BAD_JSON"


class UnsupportedVersionError(InvalidInputError):
    """A message for a protocol version this server does not speak."""

    code = "UNSUPPORTED_VERSION"


class UnknownTypeError(InvalidInputError):
    """A request of a type this server does not serve."""

    code = "UNKNOWN_TYPE"


class MessageTooLargeError(InvalidInputError):
    """A message over the size limit; it is not read."""

    code = "TOO_LARGE"


class ForbiddenError(PilotageError, PermissionError):
    """A request the client's role does not allow."""

    code = "FORBIDDEN"


class ConflictError(PilotageError):
    """The request contradicts the engine's state: an incident whose corridor is already open."""

    code = "CONFLICT"


class UnsafePlanError(PilotageError):
    """A decision whose timing plan the safety monitor refused: nothing was applied."""

    code = "UNSAFE"


class NoSolutionError(PilotageError):
    """A routing job the solver found no solution for in its time limit: every mandatory visit
    could not be fitted into the fleet's capacities, shifts and windows."""

    code = "NO_SOLUTION"


class OverloadedError(PilotageError):
    """More requests waiting than the server takes at once: ask again later."""

    code = "OVERLOADED"


class RemoteError(PilotageError):
    """An error reply from a pilotage server, with the wire ``code`` it gave."""

    def __init__(self, code: str, message: str, *, field: str | None = None) -> None:
        super().__init__(f"{code}: {message}", field=field)
        self.code = code


class TimedOutError(PilotageError, TimeoutError):
    """Nothing came from a pilotage server in time: no reply after every retry, or no event."""
