"""Clients that fail fast: with no server at the endpoint, or a server that refuses the client's
CurveZMQ key, `Client` and `Subscriber` say so within the connection window (2 s), not after every
timeout and retry; over real sockets."""

import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from pilotage.adapters.service import Service
from pilotage.adapters.zeromq import CONNECT_WINDOW_S, Client, Server, Subscriber, new_client_keys, new_server_keys
from pilotage.core.errors import ForbiddenError, TimedOutError


def free_endpoint() -> str:
    """A loopback endpoint nothing listens on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"tcp://127.0.0.1:{probe.getsockname()[1]}"


def test_a_client_without_a_server_is_told_so_before_its_timeouts_run_out() -> None:
    # Its timeouts and retries would wait 4 x 60 s; the connection window is 2 s.
    with Client(free_endpoint(), timeout_s=60.0, retries=3) as client, pytest.raises(TimedOutError) as raised:
        client.request("ping")
    assert f"no server accepted a connection at {client.endpoint} in {CONNECT_WINDOW_S} s" in str(raised.value)


def test_a_subscriber_without_a_server_is_told_so_before_its_timeout_runs_out() -> None:
    with Subscriber(free_endpoint()) as events, pytest.raises(TimedOutError) as raised:
        events.receive(timeout_s=60.0)
    assert "no server accepted a connection" in str(raised.value)


@pytest.fixture
def curve_server(make_service: Callable[..., Service], tmp_path: Path) -> Iterator[tuple[Server, Path]]:
    keys = tmp_path / "keys"
    new_server_keys(keys)
    new_client_keys(keys, "avl", "controller")
    running = Server(make_service(), bind="tcp://127.0.0.1:*", events="tcp://127.0.0.1:*", keys=keys)
    thread = threading.Thread(target=running.serve_forever, daemon=True)
    thread.start()
    yield running, keys
    running.stop()
    thread.join(timeout=10)


def test_a_key_the_server_does_not_allow_is_told_so_at_once(curve_server: tuple[Server, Path],
                                                            tmp_path: Path) -> None:
    server, keys = curve_server
    # A key pair made elsewhere: not in the server's allow-list.
    stranger = new_client_keys(tmp_path / "elsewhere", "stranger", "controller")
    with Client(server.endpoint, timeout_s=60.0, retries=3, server_key=keys / "server.key",
                client_key=stranger) as client, pytest.raises(ForbiddenError) as raised:
        client.request("ping")
    assert "refused this client's key" in str(raised.value)
    with Client(server.endpoint, timeout_s=60.0, retries=0, server_key=keys / "server.key",
                client_key=keys / "clients" / "avl.key_secret") as allowed:
        assert "time" in allowed.request("ping")
