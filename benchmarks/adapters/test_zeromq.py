"""The ZeroMQ service against a bare pyzmq ROUTER echo, each in a process of its own, over loopback TCP.

Latency (group ``zeromq round trip``): a DEALER socket in this process sends one request and waits
for its reply; a round is one round trip. The reference is a priority request's frame sent back
as it came by a bare ROUTER echo. With ``--benchmark-enable`` the report gives the p99 and p99.9 as
ratios to the echo's, beside the medians.

Throughput (group ``zeromq throughput, 4 clients``): four client processes (``load_client.py``)
each pipeline their requests, 64 at most in flight; a round runs from "go" to the last reply. The
same clients against the echo are the reference; requests answered per second are in
``extra_info``.

The server is ``pilotage serve`` on the embedded city, as deployed: wall clock, audit log on. The
priority requests come from 180 buses, each 120 s late, at approaches drawn with a fixed seed: a
few are granted, most are then denied while their intersection recovers, as in service.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
import zmq

from pilotage.core import RoadNetwork
from pilotage.core.default_plans import default_plans

LATENCY = "zeromq round trip"
THROUGHPUT = "zeromq throughput, 4 clients"
CLIENTS, WINDOW = 4, 64
LOAD_CLIENT = Path(__file__).with_name("load_client.py")

ECHO = """
import zmq
context = zmq.Context()
router = context.socket(zmq.ROUTER)
port = router.bind_to_random_port("tcp://127.0.0.1")
print(f"tcp://127.0.0.1:{port}", flush=True)
while True:
    router.send_multipart(router.recv_multipart())
"""


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="module")
def echo() -> Iterator[str]:
    """The endpoint of a bare pyzmq ROUTER echo in another process."""
    process = subprocess.Popen([sys.executable, "-c", ECHO], stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        yield process.stdout.readline().strip()
    finally:
        stop(process)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The endpoint of `pilotage serve` in another process, ready to answer."""
    folder = tmp_path_factory.mktemp("serve")
    log = folder / "serve.log"
    with log.open("w") as stderr:
        process = subprocess.Popen([sys.executable, "-m", "pilotage", "serve", "--bind", "tcp://127.0.0.1:*", "--pub",
                                    "tcp://127.0.0.1:*"], stderr=stderr,
                                   env=os.environ | {"PILOTAGE_STATE_DIR": str(folder)})
    try:
        # The first start may compile the kernels.
        deadline = time.monotonic() + 300
        while not (ready := re.search(r"serving requests on (\S+),", log.read_text())):
            assert process.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        yield ready.group(1)
    finally:
        stop(process)


@pytest.fixture(scope="module")
def priority_frames(city: RoadNetwork) -> list[bytes]:
    """Priority requests of 180 late buses at vehicle approaches drawn with a fixed seed."""
    approaches = [(plan.id, group) for plan in default_plans(city) for group in plan.group_names
                  if group.startswith("from-")]
    draws = np.random.default_rng(2019).integers(0, len(approaches), 2000)
    return [json.dumps({"v": 1, "id": f"r-{n}", "type": "priority.request", "body": {
        "vehicle": f"bus-{n % 180}", "intersection": approaches[k][0], "group": approaches[k][1], "eta_s": 30.0,
        "class": "bus", "lateness_s": 120.0}}).encode() for n, k in enumerate(draws)]


PING = [b'{"v": 1, "id": "p", "type": "ping"}']


def round_trips(benchmark, endpoint: str, frames: list[bytes]) -> None:
    context = zmq.Context()
    socket = context.socket(zmq.DEALER)
    socket.setsockopt(zmq.LINGER, 0)
    socket.connect(endpoint)
    cycle = itertools.cycle(frames)

    def round_trip() -> None:
        socket.send(next(cycle))
        socket.recv()

    try:
        round_trip()
        benchmark.group = LATENCY
        benchmark.pedantic(round_trip, rounds=5000, warmup_rounds=200, iterations=1)
    finally:
        socket.close()
        context.term()


def test_echo_round_trip(benchmark, echo: str, priority_frames: list[bytes]) -> None:
    benchmark.extra_info["reference"] = True
    round_trips(benchmark, echo, priority_frames)


def test_ping_round_trip(benchmark, server: str) -> None:
    round_trips(benchmark, server, PING)


def test_priority_request_round_trip(benchmark, server: str, priority_frames: list[bytes]) -> None:
    round_trips(benchmark, server, priority_frames)


@pytest.fixture
def clients(tmp_path: Path) -> Iterator[Callable[[str, list[bytes], int], list[subprocess.Popen]]]:
    """Starts load clients, each connected and waiting for "go"; all are ended after the test."""
    started: list[subprocess.Popen] = []

    def start(endpoint: str, frames: list[bytes], count: int) -> list[subprocess.Popen]:
        frames_file = tmp_path / "frames.jsonl"
        frames_file.write_bytes(b"\n".join(frames))
        batch = [subprocess.Popen([sys.executable, str(LOAD_CLIENT), endpoint, str(frames_file), str(count),
                                   str(WINDOW)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
                 for _ in range(CLIENTS)]
        started.extend(batch)
        for process in batch:
            assert process.stdout is not None and process.stdout.readline().strip() == "ready"
        return batch

    yield start
    for process in started:
        if process.poll() is None:
            process.kill()
            process.wait()


def throughput(benchmark, clients: Callable[[str, list[bytes], int], list[subprocess.Popen]], endpoint: str,
               frames: list[bytes]) -> None:
    count = 100 if benchmark.disabled else 5000

    def go(batch: list[subprocess.Popen]) -> None:
        for process in batch:
            assert process.stdin is not None
            process.stdin.write("go\n")
            process.stdin.flush()
        for process in batch:
            assert process.stdout is not None and process.stdout.readline().startswith("done")
            assert process.wait(timeout=60) == 0

    benchmark.group = THROUGHPUT
    benchmark.pedantic(go, setup=lambda: ((clients(endpoint, frames, count),), {}), rounds=5, iterations=1)
    if not benchmark.disabled:
        benchmark.extra_info["requests_per_s"] = CLIENTS * count / benchmark.stats.stats.median


def test_echo_throughput(benchmark, clients, echo: str, priority_frames: list[bytes]) -> None:
    benchmark.extra_info["reference"] = True
    throughput(benchmark, clients, echo, priority_frames)


def test_priority_request_throughput(benchmark, clients, server: str, priority_frames: list[bytes]) -> None:
    throughput(benchmark, clients, server, priority_frames)
