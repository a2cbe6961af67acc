"""Soak: `pilotage serve` under mixed traffic at a steady share of its measured maximum, for a while.

    python benchmarks/adapters/soak.py [--duration S] [--share 0.8] [--out soak.json]

Starts `pilotage serve` in a process of its own (its state in a temporary folder) and measures the
most requests a second it sustains: the most a pipelined client gets answered bounds it, then a
bisection of :data:`SEARCH_STEPS` open-loop runs of :data:`STEP_S` each finds the highest rate
with no ``OVERLOADED`` reply, no reply lost and a p99 under :data:`CLEAN_P99_S`. It then sends
the mix at ``share`` of that rate, open loop (the client sends on its own schedule whatever the
replies), for ``duration`` seconds:

- ``priority.request`` 50 %, ``priority.checkout`` 15 % (buses at the city's approaches),
- ``corridor.update`` 10 % (one emergency vehicle along its corridor, a node further each time),
- ``parking.reserve`` 8 % and ``parking.cancel`` of the reservations made 8 % (four car parks),
- ``route.status`` 9 % (of one routing job submitted at the start).

The report gives, per request type and per tenth of the run, the p50, p99 and p99.9 of the time
from sending a request to its reply; the server's resident memory after the first minute (or the
first tenth, when shorter) and at the end; the replies lost (requests never answered: must be 0
below the overload limit); and the ``OVERLOADED`` and other error replies by code.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np
import zmq

# One client process sends tens of thousands of requests a second: more would only take the
# server's cores on a small machine.
CLIENTS = 1
# The search of the sustained rate: bisection steps, each an open-loop run of STEP_S seconds; a
# rate is sustained when nothing is refused or lost and the p99 stays under CLEAN_P99_S.
SEARCH_STEPS = 4
STEP_S = 5.0
CLEAN_P99_S = 0.05
WINDOWS = 10
MIX = (("priority.request", 50), ("priority.checkout", 15), ("corridor.update", 10), ("parking.reserve", 8),
       ("parking.cancel", 8), ("route.status", 9))
CARPARKS = ("sample-gare", "sample-knuedler", "sample-monterey", "sample-theatre")
# Approaches of the embedded city, a corridor across it, and a small routing job (docs/protocol.md).
APPROACHES = ((-30248, "from--25024"), (-29436, "from--15874"))
CORRIDOR = {"incident": "soak-fire", "origin": -30124, "destination": -16808}
JOB = {"name": "soak", "depots": [{"id": "depot", "location": {"lon": 6.1223, "lat": 49.5859}}],
       "vehicles": [{"id": "truck", "count": 1, "depot": "depot", "capacity": 10, "shift": ["07:30", "15:30"]}],
       "stops": [{"id": "s1", "location": {"lon": 6.1377, "lat": 49.6012}, "demand": 1, "service_s": 300}],
       "options": {"time_limit_s": 1}}


def start_server(folder: Path) -> tuple[subprocess.Popen, str]:
    """`pilotage serve` in another process, its state in ``folder``; its process and endpoint."""
    log = folder / "serve.log"
    with log.open("w") as stderr:
        process = subprocess.Popen([sys.executable, "-m", "pilotage", "serve", "--bind", "tcp://127.0.0.1:*",
                                    "--pub", "tcp://127.0.0.1:*"], stderr=stderr,
                                   env=os.environ | {"PILOTAGE_STATE_DIR": str(folder)})
    deadline = time.monotonic() + 300
    while not (ready := re.search(r"serving requests on (\S+),", log.read_text())):
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"pilotage serve did not start: {log.read_text()}")
        time.sleep(0.1)
    return process, ready.group(1)


def resident_mb(pid: int) -> float:
    """The resident memory of process ``pid`` (MB)."""
    status = Path(f"/proc/{pid}/status").read_text()
    found = re.search(r"VmRSS:\s+(\d+) kB", status)
    assert found is not None, status
    return int(found.group(1)) / 1024.0


def request(socket: zmq.Socket, message_type: str, body: dict) -> dict:
    """One request and its reply body (raises on an error reply)."""
    socket.send(json.dumps({"v": 1, "id": "setup", "type": message_type, "body": body}).encode())
    reply = json.loads(socket.recv())
    if not reply["ok"]:
        raise RuntimeError(f"{message_type}: {reply['error']}")
    return reply["body"]


class Mix:
    """The requests of the mix, one after the other, for one client (``seed``)."""

    def __init__(self, seed: int, route: list[dict[str, float]], job: str) -> None:
        self.random = random.Random(seed)
        self.seed = seed
        self.route = route
        self.job = job
        self.reservations: list[str] = []
        self.at_node = 0
        self.count = 0
        self.types = [name for name, _ in MIX]
        self.weights = [weight for _, weight in MIX]

    def next(self, now_s: float) -> tuple[str, bytes]:
        """The type and the frame of the next request."""
        self.count += 1
        message_type = self.random.choices(self.types, self.weights)[0]
        if message_type == "parking.cancel" and not self.reservations:
            message_type = "parking.reserve"
        bus = f"bus-{self.seed}-{self.random.randrange(90)}"
        intersection, group = self.random.choice(APPROACHES)
        if message_type == "priority.request":
            body: dict[str, object] = {"vehicle": bus, "intersection": intersection, "group": group,
                                       "eta_s": self.random.uniform(5.0, 60.0), "class": "bus",
                                       "lateness_s": self.random.uniform(60.0, 300.0)}
        elif message_type == "priority.checkout":
            body = {"vehicle": bus, "intersection": intersection}
        elif message_type == "corridor.update":
            self.at_node = (self.at_node + 1) % len(self.route)
            body = {"incident": CORRIDOR["incident"], "position": self.route[self.at_node]}
        elif message_type == "parking.reserve":
            # The process id keeps the references of two runs apart: a reference given again with
            # another window is a conflict.
            body = {"carpark": self.random.choice(CARPARKS), "from": now_s + 600.0, "until": now_s + 4200.0,
                    "ref": f"soak-{os.getpid()}-{self.seed}-{self.count}"}
        elif message_type == "parking.cancel":
            body = {"reservation": self.reservations.pop(0)}
        else:
            body = {"job": self.job}
        frame = json.dumps({"v": 1, "id": f"{message_type}|{self.count}", "type": message_type, "body": body})
        return message_type, frame.encode()


def client(endpoint: str, rate_per_s: float, duration_s: float, seed: int, setup: dict) -> dict:
    """Send the mix at ``rate_per_s`` for ``duration_s``, open loop; then wait 5 s for the last
    replies. Returns what was sent and answered, and each reply's latency and window."""
    context = zmq.Context()
    socket = context.socket(zmq.DEALER)
    socket.setsockopt(zmq.LINGER, 0)
    # No receive limit: a client process the machine starves for a moment keeps every reply queued
    # rather than have ZeroMQ drop those past its high-water mark, which would count as lost.
    socket.setsockopt(zmq.RCVHWM, 0)
    socket.connect(endpoint)
    mix = Mix(seed, setup["route"], setup["job"])
    sent_at: dict[str, tuple[str, float]] = {}
    latencies: list[tuple[str, int, float]] = []
    codes: Counter[str] = Counter()
    started = time.perf_counter()
    interval_s = 1.0 / rate_per_s
    next_send = started
    poller = zmq.Poller()
    poller.register(socket, zmq.POLLIN)
    while True:
        now = time.perf_counter()
        sending = now - started < duration_s
        if not sending and (not sent_at or now - started > duration_s + 5.0):
            break
        while sending and now >= next_send:
            message_type, frame = mix.next(time.time())
            request_id = f"{message_type}|{mix.count}"
            sent_at[request_id] = (message_type, time.perf_counter())
            socket.send(frame)
            next_send += interval_s
        timeout_ms = max(0, int((next_send - time.perf_counter()) * 1000)) if sending else 100
        if poller.poll(timeout_ms):
            while int(socket.getsockopt(zmq.EVENTS)) & zmq.POLLIN:
                reply = json.loads(socket.recv())
                message_type, at = sent_at.pop(reply["id"])
                received = time.perf_counter()
                window = min(WINDOWS - 1, int((at - started) / duration_s * WINDOWS))
                latencies.append((message_type, window, received - at))
                codes[f"{message_type} {'OK' if reply['ok'] else reply['error']['code']}"] += 1
                if reply["ok"] and message_type == "parking.reserve":
                    mix.reservations.append(reply["body"]["reservation"])
    lost = len(sent_at)
    _cancel_reservations(socket, mix)
    socket.close()
    context.term()
    return {"sent": mix.count, "lost": lost, "codes": dict(codes), "latencies": latencies}


def max_rate(endpoint: str, setup: dict) -> float:
    """The most requests a second the server sustains, open loop (see the module's docstring)."""
    results = _results(_start_clients(endpoint, setup, "max", STEP_S, 64))
    low, high = 0.0, sum(result["answered"] for result in results) / STEP_S
    for _ in range(SEARCH_STEPS):
        rate = (low + high) / 2.0
        results = _results(_start_clients(endpoint, setup, "soak", rate / CLIENTS, STEP_S))
        latencies = np.array([seconds for result in results for _, _, seconds in result["latencies"]])
        clean = (not any(key.endswith(" OVERLOADED") for result in results for key in result["codes"])
                 and not any(result["lost"] for result in results)
                 and latencies.size and np.percentile(latencies, 99) < CLEAN_P99_S)
        low, high = (rate, high) if clean else (low, rate)
    return low


def pipelined(endpoint: str, seconds: float, window: int, seed: int, setup: dict) -> dict:
    """Keep ``window`` requests of the mix in flight for ``seconds``; how many were answered."""
    context = zmq.Context()
    socket = context.socket(zmq.DEALER)
    socket.setsockopt(zmq.LINGER, 0)
    socket.connect(endpoint)
    mix = Mix(seed, setup["route"], setup["job"])
    answered = in_flight = 0
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline or in_flight:
        while in_flight < window and time.perf_counter() < deadline:
            socket.send(mix.next(time.time())[1])
            in_flight += 1
        reply = json.loads(socket.recv())
        in_flight -= 1
        answered += 1
        if reply["ok"] and reply["id"].startswith("parking.reserve"):
            mix.reservations.append(reply["body"]["reservation"])
    _cancel_reservations(socket, mix)
    socket.close()
    context.term()
    return {"answered": answered}


def _cancel_reservations(socket: zmq.Socket, mix: Mix) -> None:
    """Cancel the reservations a client still holds, once its replies are in: the next run starts
    with the car parks free, so that the mix stays the same all along (reservations left booked
    would fill them, and their release as no-shows 15 min on would change it)."""
    for reservation in mix.reservations:
        socket.send(json.dumps({"v": 1, "id": "cleanup", "type": "parking.cancel",
                                "body": {"reservation": reservation}}).encode())
        while json.loads(socket.recv())["id"] != "cleanup":
            continue
    mix.reservations.clear()


def _start_clients(endpoint: str, setup: dict, *arguments: object) -> list[subprocess.Popen]:
    """:data:`CLIENTS` client processes of this script (``client ENDPOINT SETUP SEED ARGUMENTS...``)."""
    return [subprocess.Popen([sys.executable, __file__, "client", endpoint, json.dumps(setup), str(seed),
                              *map(str, arguments)], stdout=subprocess.PIPE, text=True) for seed in range(CLIENTS)]


def _results(processes: list[subprocess.Popen]) -> list[dict]:
    """The JSON result of each client process, once it ends."""
    results = []
    for process in processes:
        output, _ = process.communicate(timeout=7200)
        if process.returncode != 0:
            raise RuntimeError(f"a soak client failed (exit {process.returncode})")
        results.append(json.loads(output))
    return results


def prepare(endpoint: str) -> dict:
    """Open the corridor and submit the routing job the mix uses; the positions along the corridor."""
    context = zmq.Context()
    socket = context.socket(zmq.DEALER)
    socket.setsockopt(zmq.LINGER, 0)
    socket.connect(endpoint)
    try:
        corridor = request(socket, "corridor.open", CORRIDOR)
        job = request(socket, "route.submit", JOB)["job"]
    finally:
        socket.close()
        context.term()
    # Positions of the route's stop lines and ends: the corridor's crossings have no coordinates on
    # the wire, so the vehicle is placed at the route's nodes, looked up in the city's network.
    from pilotage.adapters.osm import load_network  # noqa: PLC0415

    network = load_network()
    nodes = [network.node_index(osmid) for osmid in corridor["route"]]
    route = [{"lon": float(network.node_lon[n]), "lat": float(network.node_lat[n])} for n in nodes]
    return {"route": route, "job": job}


def soak(duration_s: float, share: float) -> dict:
    """Run the soak; returns the report."""
    with tempfile.TemporaryDirectory(prefix="pilotage-soak-") as folder:
        process, endpoint = start_server(Path(folder))
        try:
            setup = prepare(endpoint)
            maximum = max_rate(endpoint, setup)
            rate = share * maximum
            clients = _start_clients(endpoint, setup, "soak", rate / CLIENTS, duration_s)
            # Memory is compared from the end of the first minute (or tenth), once caches are warm.
            first_s = min(60.0, duration_s / WINDOWS)
            time.sleep(first_s)
            memory_first = resident_mb(process.pid)
            results = _results(clients)
            memory_end = resident_mb(process.pid)
            alive = process.poll() is None
        finally:
            process.terminate()
            process.wait(timeout=60)
    return _report(results, duration_s=duration_s, share=share, maximum=maximum, rate=rate,
                   memory_first=memory_first, memory_end=memory_end, first_s=first_s, alive=alive)


def _report(results: list[dict], *, duration_s: float, share: float, maximum: float, rate: float,
            memory_first: float, memory_end: float, first_s: float, alive: bool) -> dict:
    latencies = [entry for result in results for entry in result["latencies"]]
    windows: dict[str, list[dict[str, float]]] = {}
    for message_type, _ in MIX:
        rows = []
        for window in range(WINDOWS):
            values = np.array([s for t, w, s in latencies if t == message_type and w == window]) * 1e3
            rows.append({"count": int(values.size)} | ({f"p{q}_ms": float(np.percentile(values, q))
                                                          for q in (50, 99, 99.9)} if values.size else {}))
        windows[message_type] = rows
    codes: Counter[str] = Counter()
    by_type: dict[str, dict[str, int]] = {}
    for result in results:
        for key, count in result["codes"].items():
            message_type, code = key.split(" ")
            codes[code] += count
            by_type.setdefault(message_type, Counter())[code] += count
    priority = windows["priority.request"]
    return {"duration_s": duration_s, "share": share, "max_requests_per_s": maximum, "requests_per_s": rate,
            "clients": CLIENTS, "sent": sum(r["sent"] for r in results), "lost": sum(r["lost"] for r in results),
            "codes": dict(codes), "server_alive": alive, "memory_mb": {"after_s": first_s, "first": memory_first,
                                                                        "end": memory_end},
            "memory_growth": memory_end / memory_first - 1.0,
            "priority_p99_end_over_start": (priority[-1].get("p99_ms", np.nan) / priority[0].get("p99_ms", np.nan)
                                            if priority[0].get("p99_ms") else None),
            "codes_by_type": {t: dict(c) for t, c in by_type.items()}, "latency_by_window": windows}


def format_report(report: dict) -> str:
    """The report as a few lines of text."""
    lines = [f"soak: {report['duration_s']:.0f} s at {report['requests_per_s']:.0f} requests/s "
             f"({report['share']:.0%} of the {report['max_requests_per_s']:.0f} measured), {report['clients']} clients",
             f"sent {report['sent']}, lost {report['lost']}, replies by type and code {report['codes_by_type']}",
             f"server memory {report['memory_mb']['first']:.1f} MB after {report['memory_mb']['after_s']:.0f} s, "
             f"{report['memory_mb']['end']:.1f} MB at the end ({report['memory_growth']:+.1%})"]
    for message_type, rows in report["latency_by_window"].items():
        cells = "  ".join(f"{row['p99_ms']:7.2f}" if "p99_ms" in row else "      -" for row in rows)
        lines.append(f"{message_type:18s} p99 ms by tenth: {cells}")
    return "\n".join(lines)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "client":
        endpoint, setup, seed, mode = sys.argv[2], json.loads(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
        if mode == "max":
            result = pipelined(endpoint, float(sys.argv[6]), int(sys.argv[7]), seed, setup)
        else:
            result = client(endpoint, float(sys.argv[6]), float(sys.argv[7]), seed, setup)
        print(json.dumps(result))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=60.0, metavar="S", help="seconds of steady load (60)")
    parser.add_argument("--share", type=float, default=0.8, help="share of the measured maximum (0.8)")
    parser.add_argument("--out", metavar="FILE", help="write the report as JSON there")
    args = parser.parse_args()
    report = soak(args.duration, args.share)
    print(format_report(report))
    if args.out:
        Path(args.out).write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
