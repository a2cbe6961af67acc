"""The signals' state that must survive a restart: plans changed by priority and pre-emption, the
grants running, and the open corridors, kept in SQLite (:func:`pilotage.core.store.open_store`).

A server saves what changed at every tick of its engines (every 100 ms, one transaction, off the
path of the requests), and restores it when it starts again: an intersection's state is taken back
only when the model it was kept for is the same (a digest of the plan), its plan still covers the
time of the restart, and the safety monitor passes it; a corridor is routed again on its kept
route from where its vehicle was last seen. Writes reach the operating system before the call
returns (``synchronous=NORMAL``): they survive the process being killed, and cost a fraction of a
disk flush per tick.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sqlite3
from typing import Any

import numpy as np

from pilotage.core.errors import DataFileError
from pilotage.core.signals import IntersectionPlan
from pilotage.core.store import open_store
from pilotage.signal_priority.corridors import CorridorEngine, CorridorState
from pilotage.signal_priority.engine import IntersectionState, PriorityEngine

logger = logging.getLogger(__name__)

_SCHEMA_VERSION = 1
_SCHEMA = """
CREATE TABLE IF NOT EXISTS intersections (id TEXT PRIMARY KEY, digest TEXT NOT NULL, state TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS corridors (incident TEXT PRIMARY KEY, opened INTEGER NOT NULL, state TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS preempted (id TEXT PRIMARY KEY);
"""


class SignalStateStore:
    """The state of ``priority`` (and of ``corridors``) kept at ``path``.

    Raises:
        DataFileError: the database cannot be opened, or is of another schema version.
    """

    def __init__(self, path: str | os.PathLike[str], priority: PriorityEngine,
                 corridors: CorridorEngine | None = None) -> None:
        self.path = os.fspath(path)
        self.priority = priority
        self.corridors = corridors
        self._db = open_store(path, what="signal states", schema=_SCHEMA, version=_SCHEMA_VERSION, durable=False)
        self._digests = {plan.id: _digest(plan) for plan in priority.plans.plans}
        self._saved_preempted: tuple[int | str, ...] = ()
        self._next_opened = 0

    def restore(self) -> tuple[int, int]:
        """Take back what was kept: returns how many intersections and corridors were restored.

        Raises:
            DataFileError: the database cannot be read.
        """
        try:
            rows = self._db.execute("SELECT id, digest, state FROM intersections").fetchall()
            corridors = self._db.execute("SELECT state, opened FROM corridors ORDER BY opened").fetchall()
            preempted = [json.loads(row[0]) for row in self._db.execute("SELECT id FROM preempted")]
        except sqlite3.Error as error:
            raise DataFileError(f"cannot read the signal states in {self.path}: {error}", field="path") from None
        states = []
        for key, digest, text in rows:
            intersection = json.loads(key)
            if self._digests.get(intersection) != digest:
                logger.warning("intersection %s: its kept state was for another signal plan; it runs its base plan",
                               intersection)
                continue
            states.append(_intersection_state(intersection, json.loads(text)))
        intersections = self.priority.restore(states)
        restored = 0
        if self.corridors is not None:
            restored = self.corridors.restore([_corridor_state(json.loads(text)) for text, _ in corridors], preempted)
            self._saved_preempted = tuple(preempted)
        self._next_opened = max((opened for _, opened in corridors), default=-1) + 1
        logger.info("restored from %s: %d intersections, %d corridors", self.path, intersections, restored)
        return intersections, restored

    def save(self) -> None:
        """Keep what changed since the last save, in one transaction.

        Raises:
            DataFileError: the database cannot be written (nothing of this save is kept then).
        """
        states = self.priority.unsaved()
        corridors, ended = self.corridors.unsaved() if self.corridors is not None else ([], [])
        preempted = self.corridors.preempted if self.corridors is not None else ()
        if not (states or corridors or ended) and preempted == self._saved_preempted:
            return
        try:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.executemany(
                "INSERT INTO intersections VALUES (?, ?, ?) ON CONFLICT(id) DO UPDATE SET digest = excluded.digest, "
                "state = excluded.state",
                [(json.dumps(state.intersection), self._digests[state.intersection], json.dumps(_plain(state)))
                 for state in states])
            for state in corridors:
                self._db.execute("INSERT INTO corridors VALUES (?, ?, ?) ON CONFLICT(incident) DO UPDATE SET "
                                 "state = excluded.state",
                                 (state.incident, self._next_opened, json.dumps(_corridor_plain(state))))
                self._next_opened += 1
            self._db.executemany("DELETE FROM corridors WHERE incident = ?", [(incident,) for incident in ended])
            if preempted != self._saved_preempted:
                self._db.execute("DELETE FROM preempted")
                self._db.executemany("INSERT INTO preempted VALUES (?)", [(json.dumps(i),) for i in preempted])
            self._db.execute("COMMIT")
        except sqlite3.Error as error:
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
            raise DataFileError(f"cannot keep the signal states in {self.path}: {error}; they are kept at the next "
                                "save", field="path") from None
        self._saved_preempted = preempted
        self.priority.mark_saved()
        if self.corridors is not None:
            self.corridors.mark_saved()

    def close(self) -> None:
        """Close the database."""
        self._db.close()


def _digest(plan: IntersectionPlan) -> str:
    """A digest of what an intersection's kept state depends on: its groups, stages and base plan."""
    digest = hashlib.sha256(json.dumps(plan.group_names).encode())
    for array in (plan.stage_groups, plan.intergreen_s, plan.min_green_s, plan.green_s, plan.stage_min_s,
                  plan.stage_max_s, np.array([plan.offset_s, plan.max_cycle_s, plan.passage_s, plan.keeps_cycle])):
        digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()


def _plain(state: IntersectionState) -> dict[str, object]:
    # Infinite times (no promise, never pre-empted) are kept as JSON's Infinity, which json reads back.
    return {"entries": state.entries.tolist(), "budget": state.budget.tolist(),
            "stage_cuts": state.stage_cuts.tolist(), "promised_s": state.promised_s.tolist(),
            "preempted_until_s": state.preempted_until_s, "grants": [list(grant) for grant in state.grants]}


def _intersection_state(intersection: int | str, plain: dict[str, Any]) -> IntersectionState:
    return IntersectionState(intersection, np.array(plain["entries"], dtype=np.float64),
                             np.array(plain["budget"], dtype=np.float64),
                             np.array(plain["stage_cuts"], dtype=np.float64),
                             np.array(plain["promised_s"], dtype=np.float64), float(plain["preempted_until_s"]),
                             tuple((str(v), int(g), float(u), float(b)) for v, g, u, b in plain["grants"]))


def _corridor_state(plain: dict[str, Any]) -> CorridorState:
    return CorridorState(str(plain["incident"]), tuple(int(n) for n in plain["route_osmids"]), int(plain["edge"]),
                         float(plain["fraction"]), float(plain["seen_s"]), int(plain["reroutes"]),
                         None if plain.get("fix") is None else (float(plain["fix"][0]), float(plain["fix"][1])))


def _corridor_plain(state: CorridorState) -> dict[str, object]:
    return {"incident": state.incident, "route_osmids": list(state.route_osmids), "edge": state.edge,
            "fraction": state.fraction, "seen_s": state.seen_s, "reroutes": state.reroutes,
            "fix": None if state.fix is None else list(state.fix)}
