"""What a supervisor and a monitoring system see of a running server: Prometheus metrics, a health
check over HTTP, and systemd's readiness and watchdog notifications. The only module that imports
``prometheus_client``.

:class:`Metrics` holds the server's metrics on its own registry:

- ``pilotage_requests_total`` (requests read) and ``pilotage_replies_total{type, code}`` (replies
  sent, by request type, ``unknown`` when it could not be read, and wire code, ``OK`` for answers);
- ``pilotage_reply_seconds{type}``: from the start of the turn that read a request to its reply;
- ``pilotage_priority_decide_seconds``: one engine call deciding a turn's priority requests;
- ``pilotage_priority_decisions_total{decision, strategy}``: the decisions, granted or denied;
- ``pilotage_queue_depth``: the requests taken in the last turn;
- ``pilotage_dropped_replies_total``: replies and events that could not be delivered;
- ``pilotage_tick_lag_seconds``: how late the engines' last timed work ran past its due time;
- read from the engines when scraped: ``pilotage_open_corridors``, ``pilotage_monitor_checks_total``,
  ``pilotage_monitor_refused_total``, ``pilotage_monitor_fallbacks_total``,
  ``pilotage_corridor_implausible_updates_total`` (vehicle positions refused as out of reach).

:func:`serve_http` answers ``GET /metrics`` (the exposition format) and ``GET /health``: ``200``
with ``{"status": "ok"}`` while the server's loop turns, ``503`` with the reasons when it has not
turned for :data:`STALL_S` or the service reports itself degraded.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from pilotage.core.errors import InvalidInputError

logger = logging.getLogger(__name__)

#: The server's loop wakes at least every 100 ms; not turning for this long means it is stuck.
STALL_S = 2.0

# From 100 µs to 1 s: a priority decision takes about a tenth of a millisecond, a route job's
# submission tens of milliseconds.
_LATENCY_BUCKETS_S = (1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 1e-2, 2.5e-2, 5e-2, 0.1, 0.25, 0.5, 1.0)


class Metrics:
    """The metrics of one server. ``engines`` reads, when scraped, what the engines hold:
    ``{"open_corridors": n, "monitor_checks": n, "monitor_refused": n, "monitor_fallbacks": n,
    "corridor_implausible_updates": n}``.
    """

    def __init__(self, engines: Callable[[], dict[str, int]]) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("pilotage_requests", "Requests read", registry=self.registry)
        self.replies = Counter("pilotage_replies", "Replies sent, by request type and wire code", ["type", "code"],
                               registry=self.registry)
        self.reply_seconds = Histogram("pilotage_reply_seconds", "From the start of the turn that read a request "
                                       "to its reply", ["type"], buckets=_LATENCY_BUCKETS_S, registry=self.registry)
        self.decide_seconds = Histogram("pilotage_priority_decide_seconds", "One engine call deciding a turn's "
                                        "priority requests", buckets=_LATENCY_BUCKETS_S, registry=self.registry)
        self.decisions = Counter("pilotage_priority_decisions", "Priority decisions, by decision and strategy",
                                 ["decision", "strategy"], registry=self.registry)
        self.queue_depth = Gauge("pilotage_queue_depth", "Requests taken in the last turn", registry=self.registry)
        self.dropped = Counter("pilotage_dropped_replies", "Replies and events that could not be delivered",
                               registry=self.registry)
        self.tick_lag_seconds = Gauge("pilotage_tick_lag_seconds", "How late the engines' last timed work ran past "
                                      "its due time", registry=self.registry)
        self.registry.register(_EngineCollector(engines))
        self._last_turn_s = time.monotonic()

    def reply(self, message_type: str, code: str, seconds: float) -> None:
        """Count one reply, and how long it took."""
        self.replies.labels(message_type, code).inc()
        self.reply_seconds.labels(message_type).observe(seconds)

    def totals(self) -> tuple[int, dict[str, int], int]:
        """Since the server started: the requests read, the replies by wire code, and the replies and
        events dropped (what ``server.stats`` gives)."""
        by_code: dict[str, int] = {}
        for metric in self.replies.collect():
            for sample in metric.samples:
                if sample.name == "pilotage_replies_total":
                    by_code[sample.labels["code"]] = by_code.get(sample.labels["code"], 0) + int(sample.value)
        read = self.registry.get_sample_value("pilotage_requests_total") or 0.0
        dropped = self.registry.get_sample_value("pilotage_dropped_replies_total") or 0.0
        return int(read), by_code, int(dropped)

    def turned(self) -> None:
        """The server's loop turned: it is alive."""
        self._last_turn_s = time.monotonic()

    def stalled_s(self) -> float:
        """Seconds since the server's loop last turned."""
        return time.monotonic() - self._last_turn_s

    def exposition(self) -> bytes:
        """The metrics in Prometheus' text format."""
        return generate_latest(self.registry)


class _EngineCollector(Collector):
    """The engines' own counts, read when scraped."""

    def __init__(self, engines: Callable[[], dict[str, int]]) -> None:
        self.engines = engines

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        values = self.engines()
        yield GaugeMetricFamily("pilotage_open_corridors", "Emergency corridors open", value=values["open_corridors"])
        for name, what in (("checks", "Plans the safety monitor checked"),
                           ("refused", "Plans the safety monitor refused (not applied)"),
                           ("fallbacks", "Base stages refused, the intersection sent back to its coordinated plan")):
            yield CounterMetricFamily(f"pilotage_monitor_{name}", what, value=values[f"monitor_{name}"])
        yield CounterMetricFamily("pilotage_corridor_implausible_updates",
                                  "Vehicle positions refused as farther than the vehicle could have driven",
                                  value=values["corridor_implausible_updates"])


def serve_http(address: str, metrics: Metrics, health: Callable[[], list[str]]) -> ThreadingHTTPServer:
    """Answer ``GET /metrics`` and ``GET /health`` on ``address`` (``HOST:PORT``; port 0: one the
    system picks, read back from ``server_address``) in a daemon thread. ``health`` returns why the
    service is degraded (empty: it is not).

    Raises:
        InvalidInputError: an address that is not ``HOST:PORT``, or that cannot be bound.
    """
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise InvalidInputError(f"expected the metrics address as HOST:PORT, got {address!r}", field="metrics")

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == "/metrics":
                self._send(200, "text/plain; version=0.0.4; charset=utf-8", metrics.exposition())
            elif self.path == "/health":
                reasons = list(health())
                stalled = metrics.stalled_s()
                if stalled > STALL_S:
                    reasons.insert(0, f"the server's loop has not turned for {stalled:.1f} s")
                body = {"status": "degraded" if reasons else "ok", "reasons": reasons}
                self._send(503 if reasons else 200, "application/json", json.dumps(body).encode())
            else:
                self._send(404, "text/plain", b"GET /metrics or /health\n")

        def _send(self, status: int, content_type: str, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            logger.debug("metrics: " + format, *args)

    try:
        server = ThreadingHTTPServer((host.strip("[]"), int(port)), Handler)
    except OSError as error:
        raise InvalidInputError(f"cannot serve metrics on {address}: {error}; choose another address",
                                field="metrics") from None
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="pilotage-metrics", daemon=True).start()
    logger.info("metrics on http://%s:%d/metrics, health on /health", *server.server_address[:2])
    return server


def notify_systemd(state: str) -> None:
    """Tell systemd ``state`` (``READY=1``, ``WATCHDOG=1``, ``STOPPING=1``) when it started the
    process with ``Type=notify`` (``NOTIFY_SOCKET`` set); nothing otherwise."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return
    if address.startswith("@"):
        address = "\0" + address[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as notify:
            notify.sendto(state.encode(), address)
    except OSError as error:
        logger.warning("cannot notify systemd (%s): %s", state, error)
