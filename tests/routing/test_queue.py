"""The routing job queue: durable, idempotent, validated at submission, solved in a worker process."""

import time
from collections.abc import Callable
from pathlib import Path

import pytest

from pilotage.core import RoadNetwork
from pilotage.core.errors import ConflictError, InvalidInputError, UnknownEntityError
from pilotage.core.protocol.jobs import Job
from pilotage.routing import JobRecord, RoutingQueue


def run_until_finished(jobs: RoutingQueue, job_id: str, timeout_s: float = 60.0) -> list[JobRecord]:
    """Advance the queue as a server's ticks do until the job is done or failed; the changes seen."""
    seen: list[JobRecord] = []
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        seen.extend(jobs.advance())
        if jobs.status(job_id).state in ("done", "failed"):
            return seen
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} still {jobs.status(job_id).state} after {timeout_s} s")


def test_a_job_is_queued_solved_and_its_solution_kept(city: RoadNetwork, small_job: Callable[..., dict],
                                                      as_job: Callable[[dict], Job], tmp_path: Path) -> None:
    jobs = RoutingQueue(tmp_path / "routing.sqlite", city, clock=lambda: 1000.0)
    try:
        job = as_job(small_job(options={"time_limit_s": 0.5}))
        record = jobs.submit(job)
        assert (record.state, record.submitted_s, record.progress) == ("queued", 1000.0, 0.0)
        assert jobs.submit(job) == record  # a retry is the same job
        with pytest.raises(ConflictError, match="queued"):
            jobs.result(record.id)
        seen = run_until_finished(jobs, record.id)
        states = [r.state for r in seen]
        assert "running" in states and states[-1] == "done"
        solution = jobs.result(record.id)
        assert solution["feasible"] and not solution["unassigned"]
        assert jobs.status(record.id).best_cost == pytest.approx(solution["cost"])
    finally:
        jobs.close()


def test_jobs_survive_a_restart_and_run_again(city: RoadNetwork, small_job: Callable[..., dict],
                                              as_job: Callable[[dict], Job], tmp_path: Path) -> None:
    path = tmp_path / "routing.sqlite"
    first = RoutingQueue(path, city)
    job = as_job(small_job(options={"time_limit_s": 30}))
    record = first.submit(job)
    first.advance()
    assert first.status(record.id).state == "running"
    first.close()  # the server stops in the middle of the search
    second = RoutingQueue(path, city)
    try:
        assert second.status(record.id).state == "queued"
        assert second.submit(job).id == record.id
    finally:
        second.close()


def test_a_job_that_cannot_be_solved_as_given_is_refused_at_once(
        city: RoadNetwork, small_job: Callable[..., dict], as_job: Callable[[dict], Job]) -> None:
    jobs = RoutingQueue(":memory:", city)
    bad = small_job()
    bad["stops"][0]["windows"] = [["10:00", "09:00"]]
    with pytest.raises(InvalidInputError, match="closes at"):
        jobs.submit(as_job(bad))
    with pytest.raises(UnknownEntityError, match=r"route\.submit"):
        jobs.status("0123456789abcdef")
    assert jobs.advance() == []
    jobs.close()


def test_a_job_without_a_solution_fails_with_its_reason(city: RoadNetwork, small_job: Callable[..., dict],
                                                        as_job: Callable[[dict], Job]) -> None:
    jobs = RoutingQueue(":memory:", city)
    try:
        job = small_job(stops=3, options={"time_limit_s": 0.3})
        job["vehicles"] = [dict(job["vehicles"][0], count=1)]
        for stop in job["stops"]:
            stop["windows"] = [["09:00", "09:00"]]  # three places at once: each alone is fine, not all three
        record = jobs.submit(as_job(job))
        run_until_finished(jobs, record.id)
        failed = jobs.status(record.id)
        assert (failed.state, failed.error_code) == ("failed", "NO_SOLUTION")
        with pytest.raises(ConflictError, match="NO_SOLUTION"):
            jobs.result(record.id)
    finally:
        jobs.close()
