"""Client keys in service: the allow-list read again (keys added, revoked, given another role), revoked
clients refused and disconnected, key changes in the audit log, and `pilotage keys list`. Over real
loopback sockets with real CurveZMQ keys: servers in a thread of the test process, and a `pilotage
serve` process for SIGHUP."""

import contextlib
import json
import logging
import re
import signal
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import zmq
import zmq.auth
from zmq.utils.monitor import recv_monitor_message

from pilotage.adapters.service import AuditLog, Service
from pilotage.adapters.zeromq import Client, Server, new_client_keys, new_server_keys
from pilotage.core import RoadNetwork
from pilotage.core.errors import ForbiddenError, RemoteError

from .command_line import pilotage
from .conftest import Served

LOOPBACK = "tcp://127.0.0.1:*"
#: A request of the ``priority`` permission whose reply does not depend on the clock.
DETECTORS = {"intersection": -30248, "queues": [{"group": "from--25024", "queue_vehicles": 3}]}


@pytest.fixture
def keys(tmp_path: Path) -> Path:
    """A keys directory: the server's pair, ``avl`` (controller) and ``wall`` (reader)."""
    directory = tmp_path / "keys"
    new_server_keys(directory)
    new_client_keys(directory, "avl", "controller")
    new_client_keys(directory, "wall", "reader")
    return directory


@pytest.fixture
def server(make_service: Callable[..., Service], keys: Path, tmp_path: Path) -> Iterator[Server]:
    """A server on ``keys``, its audit log in ``tmp_path/audit.jsonl``, serving in a thread until the test ends."""
    audit = AuditLog(tmp_path / "audit.jsonl")
    running = Server(make_service(audit=audit), bind=LOOPBACK, events=LOOPBACK, keys=keys)
    thread = threading.Thread(target=running.serve_forever, name="pilotage-server", daemon=True)
    thread.start()
    yield running
    running.stop()
    thread.join(timeout=10)
    assert not thread.is_alive()
    audit.close()


class Peer:
    """A client's raw socket (REQ, or SUB to every topic) with its CurveZMQ keys, and a monitor of its
    connection, to see it closed."""

    def __init__(self, kind: int, endpoint: str, keys: Path, name: str) -> None:
        self.context = zmq.Context()
        self.socket = self.context.socket(kind)
        self.socket.setsockopt(zmq.LINGER, 0)
        self.socket.curve_serverkey = zmq.auth.load_certificate(keys / "server.key")[0]
        self.socket.curve_publickey, self.socket.curve_secretkey = zmq.auth.load_certificate(
            keys / "clients" / f"{name}.key_secret")
        self.monitor = self.socket.get_monitor_socket()
        if kind == zmq.SUB:
            self.socket.setsockopt(zmq.SUBSCRIBE, b"")
        self.socket.connect(endpoint)

    def request(self, message_type: str, timeout_s: float = 10.0) -> dict:
        """The whole reply to a request with an empty body."""
        self.socket.send_json({"v": 1, "id": "r-1", "type": message_type, "body": {}})
        assert self.socket.poll(int(timeout_s * 1000)), "no reply"
        reply = self.socket.recv_json()
        assert isinstance(reply, dict)
        return reply

    def wait_for(self, event: int, timeout_s: float = 10.0) -> float:
        """Waits for ``event`` (``zmq.EVENT_*``) on the connection; returns when it came (``time.monotonic``)."""
        deadline = time.monotonic() + timeout_s
        while (left_s := deadline - time.monotonic()) > 0:
            if self.monitor.poll(int(left_s * 1000)) and recv_monitor_message(self.monitor)["event"] == event:
                return time.monotonic()
        raise AssertionError(f"no {zmq.Event(event).name} in {timeout_s} s")

    def close(self) -> None:
        self.socket.disable_monitor()
        self.monitor.close()
        self.socket.close()
        self.context.term()


@pytest.fixture
def peers(keys: Path) -> Iterator[Callable[[int, str, str], Peer]]:
    """Opens :class:`Peer` sockets with the client keys of ``keys`` by name, closed at the end of the test."""
    opened: list[Peer] = []

    def connect(kind: int, endpoint: str, name: str) -> Peer:
        opened.append(Peer(kind, endpoint, keys, name))
        return opened[-1]

    yield connect
    for peer in opened:
        peer.close()


def curve(keys: Path, name: str) -> dict[str, Path]:
    """The key files a client named ``name`` connects with."""
    return {"server_key": keys / "server.key", "client_key": keys / "clients" / f"{name}.key_secret"}


def change_role(keys: Path, name: str, role: str) -> None:
    """Give a client key another role, as an operator does: in its file."""
    path = keys / "clients" / f"{name}.key"
    path.write_text(re.sub(r'role = "\w+"', f'role = "{role}"', path.read_text()))


def key_changes(audit: Path) -> list[tuple[str, str, str, str | None]]:
    """The audit log's records of key changes: (type, name, role, previous role)."""
    records = [json.loads(line) for line in audit.read_text().splitlines()]
    return [(record["type"], record["client"], record["role"], record["previous_role"])
            for record in records if record["type"].startswith("key.")]


def reload_keys(server: Server, audit: Path, changes: int) -> None:
    """Has the server read its keys again, and waits until its audit log holds ``changes`` more key records."""
    expected = len(key_changes(audit)) + changes
    server.reload_keys()
    deadline = time.monotonic() + 10
    while len(key_changes(audit)) < expected:
        assert time.monotonic() < deadline, key_changes(audit)
        time.sleep(0.01)


def test_a_key_added_is_let_in_and_a_role_changed_applies_to_the_next_request(
        server: Server, keys: Path, tmp_path: Path, late_bus: Callable[..., dict]) -> None:
    with Client(server.endpoint, timeout_s=10.0, retries=0, **curve(keys, "avl")) as avl:
        assert avl.request("priority.request", late_bus())["decision"] == "granted"
        new_client_keys(keys, "depot", "planner")
        with Client(server.endpoint, timeout_s=30.0, retries=0, **curve(keys, "depot")) as early, \
                pytest.raises(ForbiddenError):
            early.request("ping")
        change_role(keys, "avl", "reader")
        reload_keys(server, tmp_path / "audit.jsonl", 2)
        # The same connection: its next request has the new role.
        with pytest.raises(RemoteError) as refused:
            avl.request("priority.request", late_bus("bus-2"))
        assert refused.value.code == "FORBIDDEN"
        assert "role 'reader'" in str(refused.value)
        assert "time" in avl.request("ping")
    with Client(server.endpoint, timeout_s=10.0, retries=0, **curve(keys, "depot")) as depot:
        assert "time" in depot.request("ping")
    assert key_changes(tmp_path / "audit.jsonl") == [
        ("key.allowed", "avl", "controller", None), ("key.allowed", "wall", "reader", None),
        ("key.role_changed", "avl", "reader", "controller"), ("key.added", "depot", "planner", None)]


def test_a_revoked_key_is_refused_and_its_connections_are_closed(
        server: Server, keys: Path, tmp_path: Path, peers: Callable[[int, str, str], Peer]) -> None:
    assert server.events_endpoint is not None
    active = peers(zmq.REQ, server.endpoint, "avl")
    assert active.request("ping")["ok"]
    subscriber = peers(zmq.SUB, server.events_endpoint, "avl")
    # A heartbeat shows the subscription has reached the server.
    assert subscriber.socket.poll(10_000)
    # Connected, the handshake done, but no request sent yet: the server has not seen it.
    idle = peers(zmq.REQ, server.endpoint, "avl")
    idle.wait_for(zmq.EVENT_HANDSHAKE_SUCCEEDED)
    wall = peers(zmq.REQ, server.endpoint, "wall")
    assert wall.request("ping")["ok"]

    (keys / "clients" / "avl.key").unlink()
    revoked_s = time.monotonic()
    reload_keys(server, tmp_path / "audit.jsonl", 1)
    closed_s = max(active.wait_for(zmq.EVENT_DISCONNECTED), subscriber.wait_for(zmq.EVENT_DISCONNECTED))
    # The serving loop sees the reload within 100 ms, and closes the connections at the next tick.
    assert closed_s - revoked_s < 2.0
    # ZeroMQ connects again by itself; the handshake now fails.
    active.wait_for(zmq.EVENT_HANDSHAKE_FAILED_AUTH)
    subscriber.wait_for(zmq.EVENT_HANDSHAKE_FAILED_AUTH)
    while subscriber.socket.poll(0):
        subscriber.socket.recv_multipart()
    assert not subscriber.socket.poll(1500), "a revoked subscriber still gets the heartbeats"

    refused = idle.request("ping")
    assert (refused["ok"], refused["error"]["code"]) == (False, "FORBIDDEN")
    assert "revoked" in refused["error"]["message"]
    idle.wait_for(zmq.EVENT_DISCONNECTED)
    idle.wait_for(zmq.EVENT_HANDSHAKE_FAILED_AUTH)
    assert wall.request("ping")["ok"]
    assert key_changes(tmp_path / "audit.jsonl")[-1] == ("key.revoked", "avl", "controller", None)


def test_an_unreadable_allow_list_leaves_the_one_in_force(server: Server, keys: Path,
                                                          caplog: pytest.LogCaptureFixture) -> None:
    (keys / "clients" / "avl.key").unlink()
    (keys / "clients" / "broken.key").write_text("not a certificate")
    with caplog.at_level(logging.ERROR, logger="pilotage.adapters.zeromq"):
        server.reload_keys()
        deadline = time.monotonic() + 10
        while "the allow-list in force is kept" not in caplog.text:
            assert time.monotonic() < deadline
            time.sleep(0.01)
    assert "broken.key" in caplog.text
    with Client(server.endpoint, timeout_s=10.0, retries=0, **curve(keys, "avl")) as avl:
        assert "time" in avl.request("ping")


def test_sighup_makes_pilotage_serve_read_its_keys_again(
        city: RoadNetwork, serving: Callable[..., contextlib.AbstractContextManager[Served]], keys: Path,
        tmp_path: Path, peers: Callable[[int, str, str], Peer]) -> None:
    with serving(tmp_path / "state", tmp_path / "serve.log", "--keys", str(keys)) as served:
        avl = peers(zmq.REQ, served.endpoint, "avl")
        assert avl.request("ping")["ok"]
        with Client(served.endpoint, timeout_s=30.0, retries=0, **curve(keys, "wall")) as wall, \
                pytest.raises(RemoteError, match="FORBIDDEN"):
            wall.request("detectors", DETECTORS)
        (keys / "clients" / "avl.key").unlink()
        change_role(keys, "wall", "controller")
        new_client_keys(keys, "depot", "planner")
        signalled_s = time.monotonic()
        served.process.send_signal(signal.SIGHUP)
        closed_s = avl.wait_for(zmq.EVENT_DISCONNECTED)
        avl.wait_for(zmq.EVENT_HANDSHAKE_FAILED_AUTH)
        with Client(served.endpoint, timeout_s=30.0, retries=0, **curve(keys, "wall")) as wall:
            assert wall.request("detectors", DETECTORS) == {}
        with Client(served.endpoint, timeout_s=30.0, retries=0, **curve(keys, "depot")) as depot:
            assert "time" in depot.request("ping")
        served.process.send_signal(signal.SIGTERM)
        assert served.process.wait(timeout=30) == 0
    assert closed_s - signalled_s < 2.0
    assert "client keys read again: 1 added, 1 revoked, 1 roles changed; 2 allowed" in served.log.read_text()
    assert key_changes(tmp_path / "state" / "audit.jsonl") == [
        ("key.allowed", "avl", "controller", None), ("key.allowed", "wall", "reader", None),
        ("key.revoked", "avl", "controller", None), ("key.added", "depot", "planner", None),
        ("key.role_changed", "wall", "controller", "reader")]


def test_keys_list_gives_the_clients_their_roles_and_the_server_key(keys: Path, cache_dir: Path) -> None:
    (keys / "clients" / "wall.key_secret").unlink()
    listed = pilotage("keys", "list", "--dir", str(keys), cache_dir=cache_dir)
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.splitlines()
    assert lines[0].startswith(f"server key: {keys / 'server.key'} ")
    assert [line.split()[:2] for line in lines[2:]] == [["avl", "controller"], ["wall", "reader"]]
    assert "still here" in lines[2]
    assert "still here" not in lines[3]
    as_json = json.loads(pilotage("keys", "list", "--dir", str(keys), "--json", cache_dir=cache_dir).stdout)
    assert as_json["server_key"] == str(keys / "server.key")
    assert [(client["name"], client["role"], client["secret_here"]) for client in as_json["clients"]] == [
        ("avl", "controller", True), ("wall", "reader", False)]
    assert as_json["clients"][0]["key"] == zmq.auth.load_certificate(keys / "clients" / "avl.key")[0].decode()
    missing = pilotage("keys", "list", "--dir", str(keys / "nowhere"), cache_dir=cache_dir)
    assert missing.returncode == 1
    assert "pilotage keys new --server" in missing.stderr
