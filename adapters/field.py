"""A field adapter's side of the signals: the engine's commands while they are valid, the lights' own
base program when they are not, and what the lights show for an engine to take over from.

A field adapter sits between the engine (``pilotage serve``) and the traffic lights. At each turn it
sends ``signals.command`` (docs/protocol.md) with its clock and, for every light not running the
engine's commands, the stages it shows; the reply holds each intersection's plan and the time it is
valid until. When no newer command has come by then (the engine was killed, its host is gone, the
network is cut), each light goes back to its own base program as a local controller would: from the
stage it shows, by an exit transition that the safety monitor checks (:meth:`PriorityEngine.take_over`
on an engine of the lights' own, which never gets a request). When an engine answers again, a new
process or the same, it first takes over from the stages the lights show, so the lights never jump
to a plan made without them.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np

from pilotage.core.errors import InvalidInputError
from pilotage.core.safety import TOLERANCE_S
from pilotage.core.signals import SignalPlans, greens_at
from pilotage.signal_priority import MonitorCounts, PriorityEngine

logger = logging.getLogger(__name__)

#: The most stages of one intersection a command holds.
MAX_ENTRIES = 64
#: The most lights whose stages one ``signals.command`` shows: a city's fit in requests of the
#: protocol's default size limit.
SHOWN_PER_REQUEST = 200


@dataclass
class FieldCounts:
    """What a field adapter did, since it started.

    Attributes:
        commands: commands run.
        unanswered: turns the engine did not answer.
        stale: replies not run, because they came from an engine that had not taken over from
            the lights (it restarted since the last command).
        fallbacks: times the lights went back to their own base program, a command having expired.
        fallback_delay_s: the longest time from a command's expiry to the lights' going back (s).
        taken_over: lights an engine took over from what they showed.
        refused: lights whose way back to their own program the safety monitor refused (they
            kept the last command's plan).
    """

    commands: int = 0
    unanswered: int = 0
    stale: int = 0
    fallbacks: int = 0
    fallback_delay_s: float = 0.0
    taken_over: int = 0
    refused: int = 0


class FieldSignals:
    """The signals of a field adapter: each light runs the engine's last command until it expires,
    then its own base program.

    Args:
        plans: the lights' plans, with the ids the engine gives them.
        clock: the field's clock (s).
        horizon_s: the plan ahead asked for in each command (s); longer than the engine's command
            lifetime, so that a command covers the time it is valid.

    Raises:
        InvalidInputError: ``horizon_s`` not positive.
    """

    def __init__(self, plans: SignalPlans, clock: Callable[[], float], *, horizon_s: float = 30.0) -> None:
        if not (math.isfinite(horizon_s) and horizon_s > 0):
            raise InvalidInputError(f"expected horizon_s > 0, got {horizon_s!r}", field="horizon_s")
        self.plans = plans
        self.clock = clock
        self.horizon_s = horizon_s
        # The lights' own base programs, run when no command is valid; it never gets a request.
        self.own = PriorityEngine(plans, clock)
        k = len(plans)
        self._stage = np.zeros((k, MAX_ENTRIES), dtype=np.int64)
        self._start_s = np.zeros((k, MAX_ENTRIES))
        self._end_s = np.zeros((k, MAX_ENTRIES))
        self._n = np.ones(k, dtype=np.int64)
        #: The lights that run the engine's commands; the others run their own base program.
        self.commanded = np.zeros(k, dtype=np.bool_)
        #: The engine whose commands the lights run (None: none, or one that has not taken over).
        self.engine: str | None = None
        self.valid_until_s = -math.inf
        self.counts = FieldCounts()
        # What the detectors of the actuated lights saw last, for the next turn.
        self._gaps: dict[int | str, dict[str, float]] = {}

    @property
    def monitor(self) -> MonitorCounts:
        """What the safety monitor did with the plans of the lights' own programs."""
        return self.own.monitor

    def detected(self, gaps_s: Mapping[int | str, Mapping[str, float]]) -> None:
        """What the detectors of the actuated lights see now (per light, per group: the time since
        a vehicle last passed, s): the lights' own programs follow it at once, and the next turn's
        requests carry it to the engine.

        Raises:
            UnknownEntityError, InvalidInputError: as :meth:`PriorityEngine.actuate`.
        """
        self.own.actuate(gaps_s)
        self._gaps = {intersection: dict(gaps) for intersection, gaps in gaps_s.items()}

    def requests(self) -> list[dict[str, object]]:
        """The bodies of this turn's ``signals.command`` requests: the field's time, the engine it
        follows, the stages shown by every light not running that engine's commands (all of them
        when it follows none), :data:`SHOWN_PER_REQUEST` lights per request, and in the first what
        the detectors of actuated lights saw (:meth:`detected`). Send them in order, and give
        :meth:`command` every reply."""
        now = float(self.clock())
        reporting = np.ones_like(self.commanded) if self.engine is None else ~self.commanded
        # The stage in progress (or the one before an interstage) and the next one: what an engine
        # needs to take over, and no more.
        shown = [{"intersection": self.plans.ids[k],
                  "plan": [{"stage": stage, "green_from": start, "green_until": end}
                           for stage, start, end in self._shown(k, now)[:2]]}
                 for k in np.flatnonzero(reporting).tolist()]
        chunks = [shown[i:i + SHOWN_PER_REQUEST] for i in range(0, len(shown), SHOWN_PER_REQUEST)] or [[]]
        bodies: list[dict[str, object]] = [
            {"time": now, "engine": self.engine, "shown": chunk, "horizon_s": self.horizon_s,
             "intersections": list(self.plans.ids)} for chunk in chunks]
        if self._gaps:
            bodies[0]["gaps"] = [{"intersection": intersection, "gaps_s": gaps}
                                 for intersection, gaps in self._gaps.items()]
        return bodies

    def command(self, replies: list[dict]) -> None:
        """Run the command of this turn's ``signals.command`` reply bodies (dicts, as decoded from
        JSON): the last one's, when one engine sent them all.

        Raises:
            UnknownEntityError: an intersection these plans do not have.
        """
        engines = {str(reply["engine"]) for reply in replies}
        if len(engines) > 1:
            # The engine restarted within the turn: what the lights show is sent again.
            self.engine = None
            self.counts.stale += 1
            return
        engine = engines.pop()
        reply = replies[-1]
        self.counts.taken_over += sum(len(each["taken_over"]) for each in replies)
        if self.engine is not None and engine != self.engine:
            # A restarted engine that was not told what the lights show: its plans wait for that.
            logger.warning("the engine restarted (%s, was %s): the lights keep their plans until it takes over "
                           "from them", engine, self.engine)
            self.engine = None
            self.counts.stale += 1
            return
        self.engine = engine
        self.valid_until_s = float(reply["valid_until"])
        for state in reply["intersections"]:
            k = self.plans.index_of(state["intersection"])
            entries = state["plan"][:MAX_ENTRIES]
            n = len(entries)
            self._stage[k, :n] = [entry["stage"] for entry in entries]
            self._start_s[k, :n] = [entry["green_from"] for entry in entries]
            self._end_s[k, :n] = [entry["green_until"] for entry in entries]
            self._n[k] = n
            self.commanded[k] = True
        self.counts.commands += 1

    def unanswered(self) -> None:
        """The engine did not answer this turn: count it (the command runs on until it expires)."""
        self.counts.unanswered += 1

    def green_groups(self) -> np.ndarray:
        """(K, Gm) the groups green now at every light: from the engine's command while it is valid,
        else from the light's own base program (going back to it first, when the command has just
        expired)."""
        now = float(self.clock())
        if self.commanded.any() and now >= self.valid_until_s:
            self._fall_back(now)
        green = self.own.green_groups()
        if self.commanded.any():
            commanded = greens_at(now + TOLERANCE_S, self.plans.stage_groups, entry_stage=self._stage,
                                  entry_start_s=self._start_s, entry_end_s=self._end_s, n_entries=self._n)
            green[self.commanded] = commanded[self.commanded]
        return green

    def plan_ahead(self, intersection: int | str) -> list[tuple[int, float, float]]:
        """The stages the light runs from the current one on: ``(stage, green start, green end)``."""
        return self._shown(self.plans.index_of(intersection), float(self.clock()))

    def _shown(self, k: int, now: float) -> list[tuple[int, float, float]]:
        """Light ``k``'s stages from the last one started by now on."""
        if not self.commanded[k]:
            return self.own.plan_ahead(self.plans.ids[k])
        n = int(self._n[k])
        current = max(0, int(np.searchsorted(self._start_s[k, :n], now, side="right")) - 1)
        return [(int(self._stage[k, i]), float(self._start_s[k, i]), float(self._end_s[k, i]))
                for i in range(current, n)]

    def _fall_back(self, now: float) -> None:
        """Every commanded light back to its own base program, from the stage it shows."""
        lights = np.flatnonzero(self.commanded).tolist()
        logger.warning("no command since %.1f s (valid until %.1f s): %d lights back to their own programs",
                       now, self.valid_until_s, len(lights))
        self.counts.fallbacks += 1
        self.counts.fallback_delay_s = max(self.counts.fallback_delay_s, now - self.valid_until_s)
        for k in lights:
            result = self.own.take_over(self.plans.ids[k], self._shown(k, now))
            if result.refused:
                self.counts.refused += 1
                logger.error("traffic light %s: the way back to its own program was refused (%s); it keeps the last "
                             "command's plan", self.plans.ids[k], result.refused)
                continue
            self.commanded[k] = False
        self.engine = None
