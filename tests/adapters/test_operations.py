"""What a supervisor sees of a server: Prometheus metrics and the health check over real HTTP, the
`health` request, and systemd's notifications over a real datagram socket."""

import json
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from pilotage.adapters.operations import STALL_S, notify_systemd, serve_http
from pilotage.adapters.service import Service
from pilotage.adapters.zeromq import Client, Server
from pilotage.core import InvalidInputError

LOOPBACK = "tcp://127.0.0.1:*"
PRIORITY = {"vehicle": "bus-1", "intersection": -30248, "group": "from--25024", "eta_s": 30.0, "class": "bus",
            "lateness_s": 200.0}


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


@pytest.fixture
def running(make_service: Callable[..., Service]) -> Iterator[tuple[Server, str, threading.Thread]]:
    """A server in a thread, its metrics and health on a port the system picks."""
    service = make_service()
    server = Server(service, bind=LOOPBACK, events=None)
    http = serve_http("127.0.0.1:0", service.metrics, service.health)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server, f"http://127.0.0.1:{http.server_address[1]}", thread
    server.stop()
    thread.join(timeout=10)
    http.shutdown()


def test_metrics_count_replies_by_type_and_code_and_decisions_by_strategy(
        running: tuple[Server, str, threading.Thread]) -> None:
    server, base, _ = running
    with Client(server.endpoint, timeout_s=10.0) as client:
        client.request("ping")
        client.request("priority.request", PRIORITY)
        with pytest.raises(Exception, match="UNKNOWN_ENTITY"):
            client.request("priority.request", {**PRIORITY, "intersection": 1})
    status, text = get(f"{base}/metrics")
    assert status == 200
    lines = text.splitlines()
    assert 'pilotage_replies_total{code="OK",type="ping"} 1.0' in lines
    assert 'pilotage_replies_total{code="UNKNOWN_ENTITY",type="priority.request"} 1.0' in lines
    assert 'pilotage_requests_total 3.0' in lines
    assert any(line.startswith("pilotage_priority_decisions_total{") for line in lines)
    assert 'pilotage_reply_seconds_count{type="priority.request"} 2.0' in lines
    assert "pilotage_open_corridors 0.0" in lines
    assert any(line.startswith("pilotage_monitor_checks_total ") and float(line.split()[1]) >= 200 for line in lines)
    assert get(f"{base}/nowhere")[0] == 404


def test_health_is_ok_while_the_loop_turns_and_503_once_it_stops(running: tuple[Server, str, threading.Thread],
                                                                  ) -> None:
    server, base, thread = running
    with Client(server.endpoint, timeout_s=10.0) as client:
        assert client.request("health")["status"] == "ok"
    assert get(f"{base}/health") == (200, json.dumps({"status": "ok", "reasons": []}))
    server.stop()
    thread.join(timeout=10)
    time.sleep(STALL_S + 0.2)
    status, body = get(f"{base}/health")
    assert status == 503
    assert json.loads(body)["reasons"][0].startswith("the server's loop has not turned for")


def test_a_bad_metrics_address_is_refused_naming_the_option() -> None:
    with pytest.raises(InvalidInputError) as error:
        serve_http("9100", None, list)  # type: ignore[arg-type]
    assert error.value.field == "metrics"


def test_the_server_tells_systemd_it_is_ready_alive_and_stopping(make_service: Callable[..., Service],
                                                                  tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    address = str(tmp_path / "notify")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as systemd:
        systemd.bind(address)
        systemd.settimeout(10)
        monkeypatch.setenv("NOTIFY_SOCKET", address)
        server = Server(make_service(), bind=LOOPBACK, events=None)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        assert systemd.recv(64) == b"READY=1"
        assert systemd.recv(64) == b"WATCHDOG=1"
        server.stop()
        thread.join(timeout=10)
        states = []
        while (state := systemd.recv(64)) != b"STOPPING=1":
            states.append(state)
        assert set(states) <= {b"WATCHDOG=1"}
    # Not started by systemd: nothing to tell, and nothing fails.
    monkeypatch.delenv("NOTIFY_SOCKET")
    notify_systemd("READY=1")
