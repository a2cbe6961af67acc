"""ZeroMQ: the server, the client, event subscribers and CurveZMQ keys. The only module that imports zmq.

The **server** (:class:`Server`) answers requests on a ROUTER socket and publishes events on a PUB
socket, through a :class:`~pilotage.adapters.service.Service`. One thread serves: at each turn it
takes every request waiting (at most ``queue_limit`` go to the engines; the rest are answered
``OVERLOADED`` at once, so memory stays bounded), answers them in order, sends the replies without
ever blocking on a slow client (a reply that cannot be delivered is dropped and counted), and then
publishes the events of the turn.
Frames are ``[identity, (empty delimiter from a REQ socket), request]``; any other count gets a
``BAD_SCHEMA`` reply.

**Security** is CurveZMQ: the server's key pair and an allow-list of client public keys, each with a
role (:data:`pilotage.adapters.service.ROLES`), in a keys directory made by :func:`new_server_keys` and
:func:`new_client_keys`::

    KEYS/server.key           the server's public key: give it to clients
    KEYS/server.key_secret    the server's key pair: stays on the server
    KEYS/clients/NAME.key     an allowed client's public key, with its role
    KEYS/clients/NAME.key_secret  that client's key pair: give it to the client; the server never reads it

Without keys every client is :data:`~pilotage.adapters.service.LOCAL_CALLER`, which the server
accepts on loopback (and IPC) endpoints only, unless told ``insecure``.

The allow-list is read again on :meth:`Server.reload_keys` (``pilotage serve`` calls it on SIGHUP):
a key added may connect at once, a role changed applies from the key's next request, since each
request is looked up by its key; a key removed is revoked: its handshakes fail, its requests get
``FORBIDDEN``, and its connections, requests and events alike, are closed within a tick (100 ms).
Every change goes to the audit log.

The **client** (:class:`Client`) is synchronous, with a timeout and Lazy-Pirate retries: on a
timeout it closes its socket, opens a new one and sends again, so a request may reach the server
twice (priority requests renew, and check-outs repeat harmlessly).
"""

from __future__ import annotations

import ipaddress
import itertools
import logging
import os
import re
import threading
import time
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from socket import SHUT_RDWR
from socket import socket as system_socket
from typing import TYPE_CHECKING

import msgspec
import zmq
import zmq.auth
from zmq.auth.thread import ThreadAuthenticator
from zmq.utils import z85
from zmq.utils.monitor import recv_monitor_message

from pilotage.adapters.operations import notify_systemd
from pilotage.adapters.service import LOCAL_CALLER, ROLES, Caller, Service
from pilotage.core import protocol as wire
from pilotage.core.errors import (
    DataFileError,
    ForbiddenError,
    InvalidInputError,
    OverloadedError,
    PilotageError,
    RemoteError,
    TimedOutError,
)

if TYPE_CHECKING:
    from typing_extensions import Self

#: Default endpoints: requests (ROUTER) and events (PUB).
DEFAULT_ENDPOINT = "tcp://127.0.0.1:5570"
DEFAULT_EVENTS_ENDPOINT = "tcp://127.0.0.1:5571"

logger = logging.getLogger(__name__)

#: One turn of the server reads up to this many times its queue limit.
_TURN_FACTOR = 4
# How often the server runs the engines' timed work (Service.tick), s.
_TICK_S = 0.1
# systemd's watchdog is told the loop is alive this often (s); give it WatchdogSec of 10 s or more.
_WATCHDOG_S = 1.0

_ROLE_LINE = re.compile(r"^\s+role\s*=\s*\"?([A-Za-z_-]+)\"?\s*$", re.MULTILINE)


# -- keys ---------------------------------------------------------------------------------------


def new_server_keys(directory: str | os.PathLike[str]) -> Path:
    """Make the server's key pair in ``directory``; returns the public key file, for clients.

    Raises:
        InvalidInputError: the directory already holds a server key (delete it first to replace it).
    """
    folder = Path(directory)
    return _new_keys(folder, "server", None)


def new_client_keys(directory: str | os.PathLike[str], name: str, role: str) -> Path:
    """Make a client's key pair in ``directory/clients``, allowed with ``role``; returns its secret
    key file, to give to the client.

    Raises:
        InvalidInputError: an unknown role, a name that is not a plain file name, or a client of that
            name already.
    """
    if role not in ROLES:
        raise InvalidInputError(f"expected a role among {', '.join(ROLES)}, got {role!r}", field="role")
    if not re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", name) or name.startswith("."):
        raise InvalidInputError(f"expected a client name of letters, digits, '_', '-', '.', got {name!r}",
                                field="name")
    _new_keys(Path(directory) / "clients", name, role)
    return Path(directory) / "clients" / f"{name}.key_secret"


def _new_keys(folder: Path, name: str, role: str | None) -> Path:
    public_path, secret_path = folder / f"{name}.key", folder / f"{name}.key_secret"
    if public_path.exists() or secret_path.exists():
        raise InvalidInputError(f"{public_path} exists already; delete it first to make a new pair", field="name")
    folder.mkdir(parents=True, exist_ok=True)
    public, secret = (key.decode("ascii") for key in zmq.curve_keypair())
    # The certificate format of zmq.auth (ZPL), with the role in its metadata, in both files.
    metadata = f'metadata\n    role = "{role}"\n' if role else "metadata\n"
    text = f'#   pilotage CurveZMQ certificate: {name}\n{metadata}curve\n    public-key = "{public}"\n'
    public_path.write_text(text, encoding="utf-8")
    # Readable by its owner only, from the start.
    descriptor = os.open(secret_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as file:
        file.write(f'{text}    secret-key = "{secret}"\n')
    return public_path


def read_allow_list(directory: str | os.PathLike[str]) -> dict[bytes, Caller]:
    """The allowed clients of a keys directory: each public key (Z85) with its name and role.

    Raises:
        DataFileError: a key file that cannot be read, or names no known role.
    """
    allowed = {}
    for path in sorted((Path(directory) / "clients").glob("*.key")):
        try:
            public, _ = zmq.auth.load_certificate(path)
            role = _ROLE_LINE.search(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise DataFileError(f"cannot read client key {path}: {exc}") from None
        if role is None or role.group(1) not in ROLES:
            raise DataFileError(f"client key {path} names no role among {', '.join(ROLES)}; "
                                "make it again with `pilotage keys new NAME --role ROLE`")
        allowed[public] = Caller(path.stem, role.group(1))
    return allowed


def _key_pair(path: str | os.PathLike[str], what: str) -> tuple[bytes, bytes]:
    try:
        public, secret = zmq.auth.load_certificate(path)
    except (OSError, ValueError) as exc:
        raise DataFileError(f"cannot read the {what} {path}: {exc}") from None
    if secret is None:
        raise DataFileError(f"{path} holds no secret key; give the {what}, the file ending in .key_secret")
    return public, secret


def _public_key(path: str | os.PathLike[str]) -> bytes:
    try:
        public, _ = zmq.auth.load_certificate(path)
    except (OSError, ValueError) as exc:
        raise DataFileError(f"cannot read the server's public key {path}: {exc}") from None
    return public


def is_local(endpoint: str) -> bool:
    """Whether ``endpoint`` is reachable from this machine only: loopback TCP, IPC or in-process."""
    if endpoint.startswith(("ipc://", "inproc://")):
        return True
    match = re.fullmatch(r"tcp://\[?([^\]]+?)\]?:(\d+|\*)", endpoint)
    if match is None:
        return False
    host = match.group(1)
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class _Authenticator(ThreadAuthenticator):
    """ZAP handler: a client key on the allow-list is accepted, and the key itself (Z85) becomes the
    User-Id of its messages, so that each message is looked up on the allow-list in force (a name
    could be given to a new key, and a key's role may change while it is connected).

    ``allowed`` is replaced whole when the list is read again; the handler's thread sees either list.
    """

    def __init__(self, context: zmq.Context, allowed: dict[bytes, Caller]) -> None:
        super().__init__(context)
        self.allowed = allowed

    def callback(self, domain: str, key: bytes) -> bool:
        return key in self.allowed

    def curve_user_id(self, client_public_key: bytes) -> str:
        return z85.encode(client_public_key).decode("ascii")


def _key_changes(before: dict[bytes, Caller], after: dict[bytes, Caller]) -> list[wire.KeyChange]:
    """What changed from one allow-list to the next: the keys added, revoked, or given another role."""
    now = time.time()
    changes = [wire.KeyChange(now, caller.name, caller.role, "key.revoked", key.decode("ascii"))
               for key, caller in before.items() if key not in after]
    for key, caller in after.items():
        previous = before.get(key)
        if previous is None:
            changes.append(wire.KeyChange(now, caller.name, caller.role, "key.added", key.decode("ascii")))
        elif previous.role != caller.role:
            changes.append(wire.KeyChange(now, caller.name, caller.role, "key.role_changed", key.decode("ascii"),
                                          previous_role=previous.role))
    return changes


def _inode(descriptor: int) -> int | None:
    """The inode of an open file descriptor (a socket's is unique while it is open); None once closed."""
    try:
        return os.fstat(descriptor).st_ino
    except OSError:
        return None


class _Connections:
    """The connections of client keys, so that those of a revoked key can be closed.

    ZeroMQ has no call to close one peer's connection. Each message it delivers carries the file
    descriptor of the TCP (or IPC) socket it came in on (``ZMQ_SRCFD``); shutting that socket down
    makes ZeroMQ drop the connection and close the descriptor itself. ZeroMQ reuses the number of a
    closed descriptor, so each is kept with its socket's inode, and shut down only while it is the
    same socket.
    """

    def __init__(self) -> None:
        # Per descriptor: the client key, the socket's inode, and the routing id of its connection
        # on the ROUTER socket.
        self._seen: dict[int, tuple[bytes, int, bytes]] = {}
        self._closing: list[tuple[int, int]] = []

    def seen(self, descriptor: int, key: bytes, routing_id: bytes = b"") -> None:
        """A message of ``key`` came in on ``descriptor``, from the ROUTER connection ``routing_id``
        (b"": a subscription, on the event socket)."""
        known = self._seen.get(descriptor)
        # A new routing id, or a new key, on a known descriptor: another connection has its number
        # now. Subscriptions have no routing id, and are few: each is looked at.
        if known is None or known[0] != key or known[2] != routing_id or not routing_id:
            inode = _inode(descriptor)
            if inode is not None:
                self._seen[descriptor] = (key, inode, routing_id)

    def close_later(self, descriptor: int) -> None:
        """Close the connection on ``descriptor`` at the next :meth:`close_pending`."""
        inode = _inode(descriptor)
        if inode is not None:
            self._closing.append((descriptor, inode))

    def revoke(self, keys: set[bytes]) -> None:
        """Close every connection seen of these keys at the next :meth:`close_pending`."""
        for descriptor, (key, inode, _) in list(self._seen.items()):
            if key in keys:
                self._closing.append((descriptor, inode))
                del self._seen[descriptor]

    def close_pending(self) -> int:
        """Shut down the sockets of the connections to close; returns how many were still open.

        Called a tick after they were marked, so that a reply sent to them (``FORBIDDEN``) has left.
        """
        closing, self._closing = self._closing, []
        closed = 0
        for descriptor, inode in closing:
            if _inode(descriptor) != inode:
                continue
            self._seen.pop(descriptor, None)
            try:
                peer = system_socket(fileno=descriptor)
            except OSError:
                continue
            try:
                peer.shutdown(SHUT_RDWR)
                closed += 1
            except OSError:
                # Already disconnected: ZeroMQ is closing it.
                pass
            finally:
                # The descriptor stays ZeroMQ's to close.
                peer.detach()
        return closed


# -- server -------------------------------------------------------------------------------------


class Server:
    """The service behind a ROUTER socket (requests) and a PUB socket (events).

    Sockets are bound when the server is made, so :attr:`endpoint` and :attr:`events_endpoint` give
    the ports chosen for ``*``. :meth:`serve_forever` serves in the calling thread until
    :meth:`stop`, then answers what has arrived, and closes with ``linger_ms`` for replies to leave.

    Args:
        service: the request path.
        bind: the request endpoint (``tcp://HOST:PORT``, ``tcp://HOST:*``, ``ipc://PATH``).
        events: the event endpoint, or None for no events.
        keys: a keys directory: CurveZMQ on, with its allow-list and roles (read again on
            :meth:`reload_keys`; the keys allowed at start and each change go to the service's audit log).
        insecure: serve without CurveZMQ on an endpoint that is not local.
        queue_limit: at most this many requests go to the engines at each turn; more get ``OVERLOADED``.
        linger_ms: how long replies may take to leave once the server stops.
        heartbeat_s: a heartbeat event every so often (topic ``server``).

    Raises:
        InvalidInputError: a non-local endpoint without keys nor ``insecure``.
        DataFileError: unreadable keys.
    """

    def __init__(self, service: Service, *, bind: str = DEFAULT_ENDPOINT,
                 events: str | None = DEFAULT_EVENTS_ENDPOINT, keys: str | os.PathLike[str] | None = None,
                 insecure: bool = False, queue_limit: int = wire.DEFAULT_QUEUE_LIMIT, linger_ms: int = 1000,
                 heartbeat_s: float = 1.0) -> None:
        endpoints = [bind] + ([events] if events else [])
        if keys is None and not insecure and not all(is_local(endpoint) for endpoint in endpoints):
            raise InvalidInputError(f"serving on {', '.join(endpoints)}, beyond this machine, needs CurveZMQ: give a "
                                    "keys directory (`pilotage keys new`), or insecure to serve without it",
                                    field="keys")
        if queue_limit < 1:
            raise InvalidInputError(f"expected queue_limit >= 1, got {queue_limit}", field="queue_limit")
        self.service = service
        self.queue_limit = queue_limit
        self.linger_ms = linger_ms
        self.heartbeat_s = heartbeat_s
        self._stopping = threading.Event()
        self._reloading = threading.Event()
        self._keys = None if keys is None else Path(keys)
        curve, allowed = None, {}
        if keys is not None:
            curve = _key_pair(Path(keys) / "server.key_secret", "server's key pair")
            allowed = read_allow_list(keys)
            if not allowed:
                logger.warning("no client key in %s: no client can connect", Path(keys) / "clients")
        self._allowed = allowed
        self._connections = _Connections()
        self._context = zmq.Context()
        self._authenticator: _Authenticator | None = None
        if keys is not None:
            self._authenticator = _Authenticator(self._context, allowed)
            self._authenticator.start()
            self._authenticator.configure_curve_callback("*", credentials_provider=self._authenticator)
        try:
            self._router = self._socket(zmq.ROUTER, curve)
            # A reply to a client that is gone, or not reading, raises instead of waiting or vanishing.
            self._router.setsockopt(zmq.ROUTER_MANDATORY, 1)
            # ZeroMQ holds for each client what one turn reads, so an overload is answered, not buffered.
            self._router.setsockopt(zmq.RCVHWM, _TURN_FACTOR * queue_limit)
            # ZeroMQ drops the connection of a peer that sends more than this: far past the reply limit,
            # it only bounds memory against a hostile peer.
            self._router.setsockopt(zmq.MAXMSGSIZE, 16 * service.max_message_bytes)
            self.endpoint = self._bind(self._router, bind, "bind")
            # Under CurveZMQ, an XPUB socket: it hands over every subscription (XPUB_VERBOSE), with the
            # subscriber's key, so that the connections of a revoked key can be found and closed.
            self._events = self._socket(zmq.XPUB if curve else zmq.PUB, curve) if events else None
            if self._events is not None and curve is not None:
                self._events.setsockopt(zmq.XPUB_VERBOSE, 1)
            self.events_endpoint = (self._bind(self._events, events, "events")
                                    if self._events is not None and events else None)
        except BaseException:
            self._close()
            raise
        self.service.publish = self._publish
        # The keys the server starts with, once it is bound: a reload's changes are against them.
        now = time.time()
        service.audit_key_changes([wire.KeyChange(now, caller.name, caller.role, "key.allowed", key.decode("ascii"))
                                   for key, caller in allowed.items()])

    def _socket(self, kind: int, curve: tuple[bytes, bytes] | None) -> zmq.Socket:
        socket = self._context.socket(kind)
        socket.setsockopt(zmq.LINGER, self.linger_ms)
        if curve is not None:
            socket.curve_publickey, socket.curve_secretkey = curve
            socket.curve_server = True
        return socket

    @staticmethod
    def _bind(socket: zmq.Socket, endpoint: str, field: str) -> str:
        try:
            socket.bind(endpoint)
        except zmq.ZMQError as exc:
            raise InvalidInputError(f"cannot bind {endpoint}: {exc}; choose another endpoint or free the port",
                                    field=field) from None
        return socket.getsockopt_string(zmq.LAST_ENDPOINT)

    def stop(self) -> None:
        """Ask :meth:`serve_forever` to finish; safe from any thread and from a signal handler."""
        self._stopping.set()

    def reload_keys(self) -> None:
        """Ask :meth:`serve_forever` to read the allow-list again, within 100 ms; safe from any thread
        and from a signal handler. An unreadable list is logged, and the one in force is kept."""
        self._reloading.set()

    def serve_forever(self) -> None:
        """Serve until :meth:`stop`; then answer what has arrived and close the sockets."""
        poller = zmq.Poller()
        poller.register(self._router, zmq.POLLIN)
        secure = self._authenticator is not None
        subscriptions = secure and self._events is not None
        if subscriptions:
            poller.register(self._events, zmq.POLLIN)
        started = time.monotonic()
        next_heartbeat = next_tick = started
        logger.info("serving requests on %s%s%s", self.endpoint,
                    f", events on {self.events_endpoint}" if self.events_endpoint else "",
                    ", CurveZMQ on" if self._authenticator else "")
        notify_systemd("READY=1")
        metrics = self.service.metrics
        next_watchdog = started
        try:
            while not self._stopping.is_set():
                if self._reloading.is_set():
                    self._reload_keys()
                now = time.monotonic()
                metrics.turned()
                if now >= next_watchdog:
                    notify_systemd("WATCHDOG=1")
                    next_watchdog = now + _WATCHDOG_S
                if self._events is not None and now >= next_heartbeat:
                    heartbeat = wire.Heartbeat(float(self.service.clock()), now - started)
                    self._publish("server", wire.encode(heartbeat))
                    next_heartbeat = now + self.heartbeat_s
                # The engines' timed work (expiries, no-shows) every 100 ms, not on every turn:
                # it costs tens of microseconds, a tenth of a round trip.
                if now >= next_tick:
                    metrics.tick_lag_seconds.set(now - next_tick)
                    self.service.tick()
                    self.service.publish_events()
                    if secure and (closed := self._connections.close_pending()):
                        logger.info("closed %d connections of revoked client keys", closed)
                    next_tick = now + _TICK_S
                # Wake at least every 100 ms to see a stop, and in time for the heartbeat and the tick.
                timeout_ms = max(1, min(100, int((min(next_heartbeat, next_tick) - now) * 1000)))
                if poller.poll(timeout_ms):
                    self._serve_waiting()
                    if subscriptions:
                        self._take_subscriptions()
            self._serve_waiting()
        finally:
            notify_systemd("STOPPING=1")
            self._close()
            logger.info("stopped")

    def _serve_waiting(self) -> None:
        """Take the requests waiting, answer them, and send the replies."""
        routes: list[list[bytes]] = []
        frames: list[bytes] = []
        callers: list[Caller] = []
        router = self._router
        secure = self._authenticator is not None
        # Read past the queue's limit, so what is over it gets its answer now instead of waiting.
        for _ in range(_TURN_FACTOR * self.queue_limit):
            if not int(router.getsockopt(zmq.EVENTS)) & zmq.POLLIN:
                break
            # Frames carry the client's key and socket under CurveZMQ; plain bytes are faster otherwise.
            caller: Caller | None
            if secure:
                parts = router.recv_multipart(zmq.NOBLOCK, copy=False)
                caller = self._caller(parts)
                route, payload = _split_route([part.bytes for part in parts])
            else:
                caller = LOCAL_CALLER
                route, payload = _split_route(router.recv_multipart(zmq.NOBLOCK))
            if not payload:
                # One empty frame reads as the delimiter a REQ socket adds: it is an empty request.
                payload = [b""]
            if caller is None:
                self._reply(route, self.service.reject(payload[0], ForbiddenError(
                    "this client's key was revoked: it is no longer on the server's allow-list, and its "
                    "connection is closed; ask the operator for a key (`pilotage keys new`)")))
            elif len(payload) != 1:
                self._reply(route, self.service.reject(b"", InvalidInputError(
                    f"expected one request frame after the routing frames, got {len(payload)}; send the JSON "
                    "request as a single frame", field="frames")))
            elif len(frames) >= self.queue_limit:
                self._reply(route, self.service.reject(payload[0], OverloadedError(
                    f"more than {self.queue_limit} requests are waiting; ask again later")))
            else:
                routes.append(route)
                frames.append(payload[0])
                callers.append(caller)
        if frames:
            try:
                replies = self.service.handle(frames, callers)
            except Exception:
                # The service answers every failure itself; should that fail too, each request still
                # gets its one reply, and the server goes on.
                logger.exception("internal error answering %d requests; each gets an INTERNAL reply", len(frames))
                replies = [self.service.reject(frame, PilotageError("the server failed on this request; it is "
                                                                    "logged, and the server goes on"))
                           for frame in frames]
            for route, reply in zip(routes, replies, strict=True):
                self._reply(route, reply)
            self.service.publish_events()

    def _caller(self, parts: list[zmq.Frame]) -> Caller | None:
        """Who sent a message under CurveZMQ, by its key on the allow-list in force; None for a key
        revoked since it connected, whose connection is then closed at the next tick."""
        metadata = parts[-1]
        # "User-Id" is the client's public key, as text (the stubs give str options int | str).
        key = str(metadata.get("User-Id")).encode("ascii")
        descriptor = metadata.get(zmq.SRCFD)
        caller = self._allowed.get(key)
        if caller is None:
            logger.warning("refused a request of the revoked client key %s; its connection is closed",
                           key.decode("ascii"))
            self._connections.close_later(descriptor)
        else:
            self._connections.seen(descriptor, key, parts[0].bytes)
        return caller

    def _take_subscriptions(self) -> None:
        """Note the key of each new subscriber, so that its connection is closed if the key is revoked;
        a subscriber whose key was revoked meanwhile is closed at the next tick."""
        events = self._events
        if events is None:
            return
        for _ in range(self.queue_limit):
            if not int(events.getsockopt(zmq.EVENTS)) & zmq.POLLIN:
                break
            message = events.recv(zmq.NOBLOCK, copy=False)
            # Unsubscriptions (first byte 0) are left alone: those ZeroMQ makes when a subscriber
            # leaves carry no key.
            if message.bytes[:1] != b"\x01":
                continue
            key = str(message.get("User-Id")).encode("ascii")
            if key in self._allowed:
                self._connections.seen(message.get(zmq.SRCFD), key)
            else:
                self._connections.close_later(message.get(zmq.SRCFD))

    def _reload_keys(self) -> None:
        """Read the allow-list again, in the serving thread: audit the changes, let the keys added
        in, and mark the connections of the keys revoked to be closed at the next tick."""
        self._reloading.clear()
        if self._keys is None or self._authenticator is None:
            logger.warning("asked to read the client keys again, but the server has none (serve with --keys DIR)")
            return
        try:
            allowed = read_allow_list(self._keys)
        except DataFileError as exc:
            logger.error("%s; the allow-list in force is kept", exc)
            return
        changes = _key_changes(self._allowed, allowed)
        self._allowed = self._authenticator.allowed = allowed
        self._connections.revoke({change.key.encode("ascii") for change in changes if change.type == "key.revoked"})
        self.service.audit_key_changes(changes)
        counts = Counter(change.type for change in changes)
        logger.info("client keys read again: %d added, %d revoked, %d roles changed; %d allowed",
                    counts["key.added"], counts["key.revoked"], counts["key.role_changed"], len(allowed))

    def _reply(self, route: list[bytes], reply: bytes) -> None:
        try:
            self._router.send_multipart([*route, reply], zmq.NOBLOCK)
        except zmq.ZMQError as exc:
            # Gone (EHOSTUNREACH), or not reading its replies (EAGAIN): the reply cannot be delivered.
            logger.debug("reply dropped: %s", exc)
            self.service.count_dropped()

    def _publish(self, topic: str, body: bytes) -> None:
        if self._events is not None:
            try:
                self._events.send_multipart([topic.encode("ascii"), body], zmq.NOBLOCK)
            except zmq.Again:
                self.service.count_dropped()

    def _close(self) -> None:
        for socket in (getattr(self, "_router", None), getattr(self, "_events", None)):
            if socket is not None:
                socket.close()
        if self._authenticator is not None:
            self._authenticator.stop()
        self._context.term()


def _split_route(parts: list[bytes]) -> tuple[list[bytes], list[bytes]]:
    """The routing frames (identity, and the empty delimiter a REQ socket adds) and the rest."""
    if len(parts) > 1 and not parts[1]:
        return parts[:2], parts[2:]
    return parts[:1], parts[1:]


# -- client -------------------------------------------------------------------------------------


class _Curve:
    """The client side of CurveZMQ: the server's public key and the client's key pair."""

    def __init__(self, server_key: str | os.PathLike[str] | None, client_key: str | os.PathLike[str] | None) -> None:
        if (server_key is None) != (client_key is None):
            raise InvalidInputError("expected both the server's public key and the client's key pair, or neither",
                                    field="server_key" if server_key is None else "client_key")
        self.server = _public_key(server_key) if server_key is not None else None
        self.client = _key_pair(client_key, "client's key pair") if client_key is not None else None

    def apply(self, socket: zmq.Socket) -> None:
        if self.server is not None and self.client is not None:
            socket.curve_serverkey = self.server
            socket.curve_publickey, socket.curve_secretkey = self.client


#: How soon a client tells that no server accepted its connection, or that the server refused its
#: CurveZMQ handshake (s): a live server accepts at once, and sends a heartbeat every second.
CONNECT_WINDOW_S = 2.0
_HANDSHAKE_FAILURES: dict[int, str] = {int(zmq.EVENT_HANDSHAKE_FAILED_AUTH): "the server refused this client's key",
                                        int(zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL): "the handshake broke off",
                                        int(zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL): "the handshake failed"}


class _Watch:
    """The connection of one socket as ZeroMQ's monitor reports it: whether a server completed the
    handshake, or refused it."""

    def __init__(self, socket: zmq.Socket, endpoint: str, curve: bool) -> None:
        self.endpoint = endpoint
        self.curve = curve
        self._monitor = socket.get_monitor_socket(zmq.EVENT_HANDSHAKE_SUCCEEDED | zmq.EVENT_DISCONNECTED
                                                  | sum(_HANDSHAKE_FAILURES))
        self.connected = False
        self._failure = ""
        self._since = time.monotonic()

    def check(self) -> None:
        """Read the events so far.

        Raises:
            ForbiddenError: the server refused the CurveZMQ handshake.
            TimedOutError: no server completed a handshake within :data:`CONNECT_WINDOW_S`.
        """
        while self._monitor.poll(0):
            event = int(recv_monitor_message(self._monitor)["event"])
            if event == zmq.EVENT_HANDSHAKE_SUCCEEDED:
                self.connected = True
            elif event == zmq.EVENT_DISCONNECTED:
                self.connected = False
                self._since = time.monotonic()
            else:
                self._failure = _HANDSHAKE_FAILURES[event]
        if self._failure and not self.connected:
            raise ForbiddenError(f"{self.endpoint}: {self._failure}; check this client's key pair and the server's "
                                 "public key (`pilotage keys list` on the server)")
        if not self.connected and time.monotonic() - self._since > CONNECT_WINDOW_S:
            keys = ", or with keys that do not match" if self.curve else ""
            raise TimedOutError(f"no server accepted a connection at {self.endpoint} in {CONNECT_WINDOW_S} s; is "
                                f"`pilotage serve` running there{keys}?")

    def close(self) -> None:
        self._monitor.close()


class _Connection:
    """A socket of this process to a server, and its ZeroMQ context; a context manager."""

    _context: zmq.Context
    _socket: zmq.Socket
    _watch: _Watch

    def close(self) -> None:
        """Close the socket at once."""
        self._watch.close()
        self._socket.disable_monitor()
        self._socket.close()
        self._context.term()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


class Client(_Connection):
    """A synchronous client of a pilotage server, with a timeout and Lazy-Pirate retries.

    Args:
        endpoint: the server's request endpoint.
        timeout_s: how long to wait for each reply.
        retries: how many times to send again after a timeout, on a new socket.
        server_key, client_key: for CurveZMQ, the server's public key file (``server.key``) and this
            client's key pair file (``NAME.key_secret``).

    Raises:
        DataFileError: unreadable keys.
    """

    _instances = itertools.count()

    def __init__(self, endpoint: str = DEFAULT_ENDPOINT, *, timeout_s: float = 2.5, retries: int = 3,
                 server_key: str | os.PathLike[str] | None = None,
                 client_key: str | os.PathLike[str] | None = None) -> None:
        self.endpoint = endpoint
        self.timeout_s = timeout_s
        self.retries = retries
        self._curve = _Curve(server_key, client_key)
        self._context = zmq.Context()
        self._socket, self._watch = self._connect()
        self._ids = itertools.count(1)
        self._prefix = f"{os.getpid()}.{next(self._instances)}"
        self._decoder = msgspec.json.Decoder(wire.Reply)

    def _connect(self) -> tuple[zmq.Socket, _Watch]:
        socket = self._context.socket(zmq.REQ)
        socket.setsockopt(zmq.LINGER, 0)
        self._curve.apply(socket)
        watch = _Watch(socket, self.endpoint, self._curve.server is not None)
        socket.connect(self.endpoint)
        return socket, watch

    def request(self, message_type: str, body: dict[str, object] | None = None) -> dict[str, object]:
        """Send one request and return the body of its reply.

        Raises:
            RemoteError: the server answered with an error (its ``code``, message and ``field``).
            TimedOutError: no reply after every retry.
        """
        request_id = f"{self._prefix}.{next(self._ids)}"
        frame = msgspec.json.encode({"v": wire.VERSION, "id": request_id, "type": message_type, "body": body or {}})
        return self._reply(self.send_frame(frame))

    def send_frame(self, frame: bytes) -> bytes:
        """Send one raw request frame and return the raw reply, with the same timeout and retries.
        Without a server that accepts the connection, it says so within :data:`CONNECT_WINDOW_S`
        rather than after every retry.

        Raises:
            TimedOutError: no reply after every retry, or no server at the endpoint.
            ForbiddenError: the server refused this client's CurveZMQ handshake.
        """
        for attempt in range(self.retries + 1):
            self._socket.send(frame)
            deadline = time.monotonic() + self.timeout_s
            while (left_s := deadline - time.monotonic()) > 0:
                if self._socket.poll(int(min(left_s, 0.1) * 1000) or 1, zmq.POLLIN):
                    return self._socket.recv()
                self._watch.check()
            logger.warning("no reply from %s in %.1f s (attempt %d of %d)", self.endpoint, self.timeout_s,
                           attempt + 1, self.retries + 1)
            # Lazy Pirate: a REQ socket waiting for a lost reply is stuck; drop it for a new one.
            self._watch.close()
            self._socket.disable_monitor()
            self._socket.close()
            self._socket, self._watch = self._connect()
        raise TimedOutError(f"no reply from {self.endpoint} in {self.retries + 1} attempts of {self.timeout_s} s; "
                            "is `pilotage serve` running there, with the same keys?")

    def _reply(self, raw: bytes) -> dict[str, object]:
        try:
            reply = self._decoder.decode(raw)
        except msgspec.DecodeError as exc:
            raise PilotageError(f"the server sent a reply that is not protocol v1: {exc}") from None
        if not reply.ok:
            error = reply.error
            if not isinstance(error, wire.Error):
                raise PilotageError("the server sent a reply that is not protocol v1: a failure without its error")
            raise RemoteError(error.code, error.message, field=error.field)
        return reply.body


class Subscriber(_Connection):
    """Events from a pilotage server's PUB socket: ``topics`` (all when empty), as ``(topic, body)``.

    Args:
        endpoint: the server's event endpoint.
        topics: topic prefixes to receive (``priority``, ``signals``, ``server``, …).
        server_key, client_key: for CurveZMQ, as :class:`Client`.
    """

    def __init__(self, endpoint: str = DEFAULT_EVENTS_ENDPOINT, topics: Iterable[str] = (), *,
                 server_key: str | os.PathLike[str] | None = None,
                 client_key: str | os.PathLike[str] | None = None) -> None:
        curve = _Curve(server_key, client_key)
        self._context = zmq.Context()
        self._socket = self._context.socket(zmq.SUB)
        self._socket.setsockopt(zmq.LINGER, 0)
        curve.apply(self._socket)
        for topic in list(topics) or [""]:
            self._socket.setsockopt(zmq.SUBSCRIBE, topic.encode("ascii"))
        self._watch = _Watch(self._socket, endpoint, curve.server is not None)
        self._socket.connect(endpoint)
        self.endpoint = endpoint

    def receive(self, timeout_s: float = 5.0) -> tuple[str, dict[str, object]]:
        """The next event. Without a server that accepts the connection, it says so within
        :data:`CONNECT_WINDOW_S`.

        Raises:
            TimedOutError: no event in ``timeout_s``, or no server at the endpoint.
            ForbiddenError: the server refused this client's CurveZMQ handshake.
        """
        deadline = time.monotonic() + timeout_s
        while not self._socket.poll(int(min(max(deadline - time.monotonic(), 0.0), 0.1) * 1000), zmq.POLLIN):
            self._watch.check()
            if time.monotonic() >= deadline:
                raise TimedOutError(f"no event from {self.endpoint} in {timeout_s} s (the server sends a heartbeat "
                                    "every second: is it running, with the same keys?)")
        topic, body = self._socket.recv_multipart()
        return topic.decode("ascii"), msgspec.json.decode(body)

    def receive_frames(self) -> list[bytes] | None:
        """The frames of the next message waiting, as they came (a publisher of other than JSON
        events, such as a GTFS-Realtime feed's protobuf), or None when none is waiting; never waits.

        Raises:
            TimedOutError: no publisher has accepted the connection within :data:`CONNECT_WINDOW_S`.
            ForbiddenError: the publisher refused this client's CurveZMQ handshake.
        """
        self._watch.check()
        if not self._socket.poll(0, zmq.POLLIN):
            return None
        frames: list[bytes] = self._socket.recv_multipart()
        return frames
