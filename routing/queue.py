"""Routing jobs submitted to a server: kept in SQLite, solved one after another in a worker process.

A server must answer every request in milliseconds, and a job searches for seconds or minutes, so
jobs run in another process while the server goes on; :meth:`RoutingQueue.advance`, called by the
server at each tick, collects progress and results and starts the next job.

- **Durable**: a job is on disk (WAL, ``synchronous=FULL``) before its submission is confirmed. A
  job that was queued or running when the server stopped is queued again when it restarts.
- **Idempotent**: a job's id is a hash of its content, so submitting the same job again (a client's
  retry) returns the job already known; change its name to run it afresh.
- **Validated at submission**: a job that cannot be solved as given (a window that closes before it
  opens, a stop heavier than every truck, a place off the map) is refused at once, with the error
  that names it; only valid jobs are queued.
"""

from __future__ import annotations

import hashlib
import json
import logging
import multiprocessing
import os
import queue
import time
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Any

import msgspec

from pilotage.core.errors import ConflictError, PilotageError, UnknownEntityError
from pilotage.core.network import RoadNetwork
from pilotage.core.protocol import JobStateName
from pilotage.core.protocol.jobs import Job
from pilotage.core.store import open_store
from pilotage.routing.batch import job_options, solve_job
from pilotage.routing.jobs import job_problem

logger = logging.getLogger(__name__)

#: A job's states, in order.
STATES = ("queued", "running", "done", "failed")

#: A running job reports its progress at most this often (s).
PROGRESS_EVERY_S = 1.0

_SCHEMA_VERSION = 1
_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    state TEXT NOT NULL,
    job BLOB NOT NULL,
    submitted_s REAL NOT NULL,
    started_s REAL,
    finished_s REAL,
    progress REAL NOT NULL DEFAULT 0,
    best_cost REAL,
    result BLOB,
    error_code TEXT,
    error_message TEXT
);
CREATE INDEX IF NOT EXISTS jobs_by_state ON jobs (state, submitted_s);
"""
_COLUMNS = "id, name, state, submitted_s, started_s, finished_s, progress, best_cost, error_code, error_message"


@dataclass(frozen=True)
class JobRecord:
    """A submitted job's state.

    Attributes:
        id: the job's id (a hash of its content).
        name: the job's name.
        state: one of :data:`STATES`.
        submitted_s, started_s, finished_s: on the queue's clock (s); None until it happens.
        progress: share of the time limit searched, 0 to 1.
        best_cost: the best solution's cost so far; None before the first.
        error_code, error_message: why a failed job failed.
    """

    id: str
    name: str
    state: JobStateName
    submitted_s: float
    started_s: float | None
    finished_s: float | None
    progress: float
    best_cost: float | None
    error_code: str | None
    error_message: str | None


class RoutingQueue:
    """Submitted routing jobs, solved one at a time in a worker process.

    Args:
        path: the SQLite database (``":memory:"``: jobs last as long as the queue).
        network: the road network the jobs are on.
        clock: time of submissions and state changes (s).

    Raises:
        DataFileError: the database cannot be opened.
    """

    def __init__(self, path: str | os.PathLike[str], network: RoadNetwork, *,
                 clock: Callable[[], float] = time.time) -> None:
        self.network = network
        self.clock = clock
        self._db = open_store(path, what="routing jobs", schema=_SCHEMA, version=_SCHEMA_VERSION)
        # Jobs cut short by a stop run again.
        self._db.execute("UPDATE jobs SET state = 'queued', progress = 0, best_cost = NULL, started_s = NULL "
                         "WHERE state = 'running'")
        self._pool: ProcessPoolExecutor | None = None
        self._updates: Any = None
        self._running: tuple[str, Future[dict[str, Any]]] | None = None
        self._submitted: set[str] = set()
        # Whether a queued job may be waiting: the queue is read only then, not at every tick.
        self._may_wait = True

    def submit(self, job: Job) -> JobRecord:
        """Validate ``job`` and queue it; the same job again returns the one already known.

        Raises:
            InvalidInputError, UnknownEntityError: the job cannot be solved as given
                (:func:`pilotage.routing.jobs.job_problem`).
        """
        data = msgspec.json.encode(job)
        job_id = _job_id(job)
        known = self._row(job_id)
        if known is not None:
            return known
        job_problem(job, self.network)
        self._db.execute("INSERT OR IGNORE INTO jobs (id, name, state, job, submitted_s) VALUES (?, ?, 'queued', ?, ?)",
                         (job_id, job.name, data, self.clock()))
        self._submitted.add(job_id)
        self._may_wait = True
        return self.status(job_id)

    def status(self, job_id: str) -> JobRecord:
        """The state of job ``job_id``.

        Raises:
            UnknownEntityError: no job has this id.
        """
        record = self._row(job_id)
        if record is None:
            raise UnknownEntityError(f"no routing job has id {job_id!r}; use the id route.submit gave",
                                     field="job")
        return record

    def result(self, job_id: str) -> dict[str, Any]:
        """The solution of a finished job (docs/routing.md, "The solution").

        Raises:
            UnknownEntityError: no job has this id.
            ConflictError: the job is not done yet, or failed (the message says why).
        """
        record = self.status(job_id)
        if record.state != "done":
            why = (f"it failed: {record.error_code}: {record.error_message}" if record.state == "failed" else
                   f"it is {record.state} ({record.progress:.0%} searched); ask again when route.status says done")
            raise ConflictError(f"routing job {job_id!r} has no solution: {why}", field="job")
        (result,) = self._db.execute("SELECT result FROM jobs WHERE id = ?", (job_id,)).fetchone()
        document: dict[str, Any] = json.loads(result)
        return document

    def advance(self) -> list[JobRecord]:
        """Collect progress and results, start the next queued job; the jobs whose state changed
        since the last call (submitted, started, progressed, finished). Never raises for a job's
        failure: the job is marked failed."""
        changed, self._submitted = self._submitted, set()
        while self._updates is not None:
            try:
                job_id, elapsed_s, budget_s, cost = self._updates.get_nowait()
            except queue.Empty:
                break
            self._db.execute("UPDATE jobs SET progress = ?, best_cost = ? WHERE id = ? AND state = 'running'",
                             (min(1.0, elapsed_s / budget_s), cost, job_id))
            changed.add(job_id)
        if self._running is not None and self._running[1].done():
            job_id, future = self._running
            self._running = None
            self._finish(job_id, future)
            changed.add(job_id)
        if self._running is None and self._may_wait:
            row = self._db.execute("SELECT id, job FROM jobs WHERE state = 'queued' ORDER BY submitted_s, id "
                                   "LIMIT 1").fetchone()
            self._may_wait = row is not None
            if row is not None:
                self._start(*row)
                changed.add(row[0])
        return [self.status(job_id) for job_id in sorted(changed)]

    def close(self) -> None:
        """Stop the worker (a running job is queued again at the next start) and close the database."""
        if self._pool is not None:
            # The executor has no way to stop a task under way, and a search may run for minutes:
            # its worker processes are ended directly.
            for process in list(getattr(self._pool, "_processes", {}).values()):
                process.terminate()
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None
        self._db.close()

    def _start(self, job_id: str, data: bytes) -> None:
        if self._pool is None:
            # spawn, not fork: the server's process holds ZeroMQ sockets and threads.
            context = multiprocessing.get_context("spawn")
            self._updates = context.Queue()
            self._pool = ProcessPoolExecutor(max_workers=1, mp_context=context, initializer=_worker_init,
                                             initargs=(self.network, self._updates))
        self._db.execute("UPDATE jobs SET state = 'running', started_s = ? WHERE id = ?", (self.clock(), job_id))
        self._running = (job_id, self._pool.submit(_worker_solve, job_id, data))
        logger.info("routing job %s started", job_id)

    def _finish(self, job_id: str, future: Future[dict[str, Any]]) -> None:
        now = self.clock()
        try:
            document = future.result()
        except PilotageError as error:
            self._fail(job_id, error.code, str(error), now)
        except BrokenProcessPool:
            self._pool = None
            self._fail(job_id, "INTERNAL", "the worker process died; the server logs say why", now)
        except Exception as error:
            logger.exception("routing job %s failed", job_id)
            self._fail(job_id, "INTERNAL", f"{type(error).__name__}: {error}", now)
        else:
            self._db.execute("UPDATE jobs SET state = 'done', finished_s = ?, progress = 1, best_cost = ?, result = ? "
                             "WHERE id = ?", (now, document["cost"], json.dumps(document), job_id))
            logger.info("routing job %s done: cost %.2f, feasible %s", job_id, document["cost"], document["feasible"])

    def _fail(self, job_id: str, code: str, message: str, now: float) -> None:
        self._db.execute("UPDATE jobs SET state = 'failed', finished_s = ?, error_code = ?, error_message = ? "
                         "WHERE id = ?", (now, code, message, job_id))
        logger.warning("routing job %s failed: %s: %s", job_id, code, message)

    def _row(self, job_id: str) -> JobRecord | None:
        row = self._db.execute(f"SELECT {_COLUMNS} FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return None if row is None else JobRecord(*row)


def _job_id(job: Job) -> str:
    """A job's id: a hash of its content. A job that gives no ``currency`` hashes as every job did
    before the field was added, so a job stored then keeps its id when it is submitted again."""
    content = msgspec.to_builtins(job)
    if content["currency"] is None:
        del content["currency"]
    return hashlib.blake2b(msgspec.json.encode(content), digest_size=8).hexdigest()


_WORKER: dict[str, Any] = {}


def _worker_init(network: RoadNetwork, updates: Any) -> None:
    _WORKER["network"] = network
    _WORKER["updates"] = updates


def _worker_solve(job_id: str, data: bytes) -> dict[str, Any]:
    job = msgspec.json.decode(data, type=Job)
    options = job_options(job)
    last = [0.0]

    def progress(elapsed_s: float, cost: float) -> None:
        if elapsed_s - last[0] >= PROGRESS_EVERY_S:
            last[0] = elapsed_s
            _WORKER["updates"].put((job_id, elapsed_s, options.time_limit_s, cost))

    return solve_job(job, _WORKER["network"], options, on_solution=progress).document
