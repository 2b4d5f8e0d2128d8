"""The peer's control connection to the index server (a Qt adapter over QSslSocket: TLS 1.3).

``IndexClient`` connects, JOINs with the shared library, keeps the connection
alive with PING, runs searches and announces library changes. It is given one or
more index servers (stateless servers over one shared index: any of them answers for
the whole network). It tries them in its own random order, so peers spread over the
servers, and round-robin from there. When its server goes away, refuses it or
cannot be reached, it says so once and moves on to the next at once (a short random
pause spreads a crowd of peers); only after a whole round of failures does it back
off, with randomized exponential delays. Each time it JOINs again with the current
library. Everything runs in slots driven by the Qt event loop: nothing here blocks
(except ``stop_and_wait``, meant for quit).

A server that stops answering while the connection stays up (a frozen process, a host
gone silent) is left within a few seconds, busy or not: the client asks for the server's
heartbeat (an unasked PONG about once a second while its requests wait for the server,
and after 2 s of silence when there are none), so it must hear something every
``liveness_timeout`` seconds. It PINGs after ``ping_interval`` seconds without sending
anything, for the server's idle deadline. A server without heartbeats (an older one) gets
``reply_timeout`` per reply, and its PINGs ``liveness_timeout``, as before.

A question left unanswered when the connection is lost (SEARCH, SOURCES, BROWSE: they only
read the index, which every server shares) is asked again, once, of the next server right
after its JOIN_OK, and answered to the same search id as if nothing happened. It fails with
the usual sentence if that server goes too before answering, or if no server JOINs within
``resend_window`` seconds. JOIN, UPDATE, PING, PUSH, RELAY and LEAVE are never sent again
(the re-JOIN carries the whole library).
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from enum import Enum

from PySide6.QtCore import QCryptographicHash, QEventLoop, QObject, Qt, QTimer, Signal
from PySide6.QtNetwork import QAbstractSocket, QSsl, QSslSocket

from app.config import Server, server_text, unique_servers
from app.network import protocol as p
from app.network.known_servers import KnownServers, Verdict
from app.network.relay_client import RelayBroker

log = logging.getLogger("napster.client")

READ_CHUNK = 64 * 1024

_SocketError = QAbstractSocket.SocketError
_SOCKET_ERROR_TEXT = {
    _SocketError.ConnectionRefusedError: "connection refused",
    _SocketError.RemoteHostClosedError: "the server closed the connection",
    _SocketError.HostNotFoundError: "host not found",
    _SocketError.SocketTimeoutError: "timed out",
    _SocketError.SocketAccessError: "not allowed to connect",
    _SocketError.SslHandshakeFailedError: "it does not speak TLS 1.3 (an index server older"
    " than protocol version 2?)",
}


class ClientState(str, Enum):
    """Where the control connection stands."""

    OFFLINE = "offline"
    CONNECTING = "connecting"
    JOINING = "joining"
    JOINED = "joined"
    WAITING = "waiting"  # backing off before the next connection attempt


def backoff_delay(
    attempt: int, min_backoff: float, max_backoff: float, rng: random.Random | None = None
) -> float:
    """Seconds to wait before reconnect attempt ``attempt`` (0 for the first retry).

    The base delay doubles from ``min_backoff`` up to ``max_backoff``; the delay is a random
    0.5x to 1.0x of it, so peers dropped together by a server restart do not return together.
    """
    base = min(max_backoff, min_backoff * 2.0 ** min(max(attempt, 0), 64))
    return base * (rng or random).uniform(0.5, 1.0)


#: Moving on to the next server waits a random 0 to this fraction of ``min_backoff``: a
#: crowd of peers dropped by one server arrives at the others spread out, not at once.
FAILOVER_JITTER = 0.25


def update_batches(
    add: Sequence[p.FileInfo],
    remove: Sequence[str],
    batch_size: int = p.MAX_FILES_PER_MESSAGE,
) -> list[tuple[tuple[p.FileInfo, ...], tuple[str, ...]]]:
    """Split a change into (add, remove) UPDATE bodies of at most ``batch_size`` entries.

    Removals go first, so a hash removed and added again in one change ends up shared.
    """
    batches = []
    removed = added = 0
    while removed < len(remove) or added < len(add):
        batch_remove = tuple(remove[removed : removed + batch_size])
        removed += len(batch_remove)
        room = batch_size - len(batch_remove)
        batch_add = tuple(add[added : added + room])
        added += len(batch_add)
        batches.append((batch_add, batch_remove))
    return batches


def _is_hash(value: str) -> bool:
    try:
        p.check_hash(value)
    except p.ProtocolError:
        return False
    return True


def shareable(files: Sequence[p.FileInfo]) -> list[p.FileInfo]:
    """The entries the protocol can carry; the others are logged and left out."""
    good = [
        f
        for f in files
        if p.name_problem(f.name) is None
        and _is_hash(f.hash)
        and isinstance(f.size, int)
        and 0 <= f.size <= p.MAX_INT
    ]
    if len(good) != len(files):
        log.warning("Not announcing %d files the protocol cannot carry", len(files) - len(good))
    return good


#: Requests that carry a user's question and only read the index: when the connection is
#: lost before their answer, they are asked again (once) of the next server after its JOIN_OK.
RESENDABLE = frozenset({"SEARCH", "SOURCES", "BROWSE"})

#: What a search (or SOURCES, BROWSE) the index never answered fails with.
LOST_TEXT = "Lost the connection to the index server before it answered"


@dataclass(frozen=True)
class _Request:
    op: str
    search_id: int | None = None
    #: the message as sent, kept for the requests that may be sent again (RESENDABLE)
    message: p.Message | None = None
    #: already sent again once, after a lost connection: never a second time
    resent: bool = False

    @property
    def resendable(self) -> bool:
        return self.message is not None and not self.resent


class IndexClient(QObject):
    """The control connection to one of the index servers, with failover and re-JOIN.

    Call ``start()`` once; from then on the client keeps itself JOINed until ``stop()``.
    Results and problems arrive as signals; no method blocks except ``stop_and_wait``.
    A library over 10,000 files JOINs with the first 10,000 (``joined`` reports that count)
    and the rest follow at once as UPDATE batches (each answered by ``update_finished``).
    """

    #: a ClientState value
    state_changed = Signal(str)
    #: our address as the server reports it ("127.0.0.1:6001"), files in the index after JOIN
    joined = Signal(str, int)
    #: one human sentence saying the server went away or could not be reached
    connection_lost = Signal(str)
    #: the same as a code for the window to put in words: "cannot_reach" (never got there)
    #: or "connection_lost" (it was connected), the server "host:port", the OS's reason
    connection_problem = Signal(str, str, str)
    #: seconds until the next connection attempt (after a whole round of servers failed)
    reconnect_scheduled = Signal(float)
    #: the server the client now connects to or is on, as "host:port"
    server_changed = Signal(str)
    #: search id, list[protocol.SearchResult]
    search_finished = Signal(int, object)
    #: search id, human message
    search_failed = Signal(int, str)
    #: files total reported by UPDATE_OK
    update_finished = Signal(int)
    #: code, message of an ERROR not tied to a search
    server_error = Signal(str, str)
    #: stop() has finished: LEAVE answered, the connection closed, or the wait ran out
    stopped = Signal()
    #: an index server presented another certificate than the one remembered for its
    #: address: "host:port", the remembered fingerprint, the new one (not connected)
    server_identity_changed = Signal(str, str, str)
    #: whether the index could reach this peer's listen port from outside (REACHABILITY)
    reachability_changed = Signal(bool)
    #: a downloader wants this peer to connect out to it: host, port, token (PUSH_REQUEST)
    push_requested = Signal(str, int, str)

    #: both this peer and a downloader are unreachable: meet it at the index's relay:
    #: relay host, relay port, token (RELAY_REQUEST)
    relay_requested = Signal(str, int, str)
    #: RELAY answers (RELAY_OK or ERROR) settle this broker's waiters; PeerNode sets it.
    relay_broker: RelayBroker | None = None

    _search_failed_later = Signal(int, str)
    #: request_relay() from any thread, sent from this object's thread
    _relay_wanted = Signal(str, int, str)
    #: request_push() from any thread, sent from this object's thread
    _push_wanted = Signal(str, int, str)

    def __init__(
        self,
        servers: Sequence[Server],
        listen_port: int,
        files_provider: Callable[[], Sequence[p.FileInfo]],
        parent: QObject | None = None,
        *,
        min_backoff: float = 1.0,
        max_backoff: float = 60.0,
        ping_interval: float = 30.0,
        reply_timeout: float = 20.0,
        liveness_timeout: float = 5.0,
        connect_timeout: float = 10.0,
        leave_timeout: float = 1.0,
        agent: str = p.AGENT,
        shuffle: bool = True,
        rng: random.Random | None = None,
        stable_after: float = 10.0,
        fingerprint: str | None = None,
        known_servers: KnownServers | None = None,
        resend_window: float = 30.0,
    ) -> None:
        super().__init__(parent)
        #: index servers' fingerprints, remembered on first use (refused when changed)
        self.known_servers = known_servers or KnownServers()
        #: the fingerprint of the server this client is connected to (None before TLS)
        self.server_fingerprint: str | None = None
        #: this peer's certificate fingerprint, announced in JOIN (protocol version 2)
        self._fingerprint = fingerprint
        #: what the index last said of this peer's reachability (None: not told yet)
        self.reachable: bool | None = None
        self._push_wanted.connect(self._send_push, Qt.ConnectionType.QueuedConnection)
        self._relay_wanted.connect(self._send_relay, Qt.ConnectionType.QueuedConnection)
        #: request id -> token of the RELAYs waiting for their answer
        self._relay_tokens: dict[int, str] = {}
        self._rng = rng or random.Random()
        self._shuffle = shuffle
        #: the servers as given, and the order this client tries them in
        self._servers: list[Server] = []
        self._order: list[Server] = []
        self._position = 0
        self._take_servers(servers)
        self._listen_port = listen_port
        self._files_provider = files_provider
        self._min_backoff = min_backoff
        self._max_backoff = max_backoff
        self._reply_timeout = reply_timeout
        #: While waiting for a server that sends heartbeats (or for a PING's answer), it
        #: must say something at least this often.
        self._liveness_timeout = liveness_timeout
        #: The current server sends heartbeats (JOIN_OK said so, or one arrived).
        self._heartbeats = False
        self._connect_timeout = connect_timeout
        self._agent = agent

        self._state = ClientState.OFFLINE
        self._running = False  # between start() and stop(): keep (re)connecting
        self._leaving = False  # LEAVE sent, waiting for LEAVE_OK or the close
        self._socket: QSslSocket | None = None
        self._reached = False  # the current socket got connected
        self._reader = p.LineReader()
        self._requests: dict[int, _Request] = {}
        #: questions the lost connection left unanswered, for the next server's JOIN_OK
        self._held: list[_Request] = []
        self._next_request_id = 1
        self._next_search_id = 1
        #: False once the index server refused SOURCES (an older server)
        self.sources_supported = True
        self._join_request_id: int | None = None
        self._peer_address = ""
        self._attempt = 0  # whole rounds of servers failed in a row
        self._failed_in_round = 0  # servers failed in a row in the current round
        #: a JOIN counts as success (the failures and the backoff start again) once the
        #: connection has lasted this long: servers that accept a JOIN and drop it at once
        #: must not keep the client in a loop without backoff
        self._stable_after = stable_after
        self._joined_at: float | None = None
        self._announced_server = ""

        self._connect_timer = self._single_shot(connect_timeout, self._on_connect_timeout)
        self._reply_timer = self._single_shot(reply_timeout, self._on_reply_timeout)
        #: what the running reply deadline allows, in seconds (for the message)
        self._deadline = reply_timeout
        self._reconnect_timer = self._single_shot(min_backoff, self._connect)
        self._leave_timer = self._single_shot(leave_timeout, self._finish_leaving)
        #: how long held questions wait for a server to JOIN before they fail
        self._held_timer = self._single_shot(resend_window, self._on_held_timeout)
        self._ping_timer = QTimer(self)
        self._ping_timer.setInterval(max(1, round(ping_interval * 1000)))
        self._ping_timer.timeout.connect(self._on_ping_timer)

        self._search_failed_later.connect(self.search_failed, Qt.ConnectionType.QueuedConnection)

    def _single_shot(self, seconds: float, slot: Callable[[], None]) -> QTimer:
        timer = QTimer(self)
        timer.setSingleShot(True)
        timer.setInterval(max(0, round(seconds * 1000)))
        timer.timeout.connect(slot)
        return timer

    # ------------------------------------------------------------ properties

    @property
    def state(self) -> ClientState:
        return self._state

    @property
    def server_address(self) -> str:
        """The server the client is on or connecting to, as "host:port"."""
        return server_text(self.server)

    @property
    def server(self) -> Server:
        return self._order[self._position]

    @property
    def servers(self) -> list[Server]:
        """The servers as given (the client tries them in its own order)."""
        return list(self._servers)

    @property
    def order(self) -> list[Server]:
        """The order the client tries the servers in, round-robin."""
        return list(self._order)

    @property
    def peer_address(self) -> str:
        """Our address as the server reported it in JOIN_OK, or "" when not joined."""
        return self._peer_address

    @property
    def listen_port(self) -> int:
        return self._listen_port

    # ------------------------------------------------------------ public API

    def start(self) -> None:
        """Connect and JOIN; from now on reconnect whenever the connection drops."""
        if self._running:
            return
        self._running = True
        self._attempt = 0
        self._failed_in_round = 0
        self._joined_at = None
        self._connect()

    def stop(self) -> None:
        """LEAVE (if joined) and close; no more reconnects. ``stopped`` says when it is done."""
        self._running = False
        self._reconnect_timer.stop()
        if self._leaving:
            return
        socket = self._socket
        if (
            socket is not None
            and self._state in (ClientState.JOINING, ClientState.JOINED)
            and socket.state() == QAbstractSocket.SocketState.ConnectedState
        ):
            failed = self._forget_requests() + self._take_held()
            self._reply_timer.stop()
            self._ping_timer.stop()
            self._leaving = True
            self._peer_address = ""
            self._write(p.Leave(id=self._take_request_id()))
            self._leave_timer.start()
            self._set_state(ClientState.OFFLINE)
            self._fail_searches(failed, "The search was cancelled: leaving the index server")
            return
        failed = self._discard_socket() + self._take_held()
        self._set_state(ClientState.OFFLINE)
        self._fail_searches(failed, "The search was cancelled: leaving the index server")
        self.stopped.emit()

    def stop_and_wait(self, timeout_ms: int = 2000) -> bool:
        """stop(), then run a local event loop until LEAVE is answered (for app quit).

        Returns False if the server did not answer in time (the connection is closed anyway).
        """
        self.stop()
        if not self._leaving:
            return True
        loop = QEventLoop()
        deadline = QTimer()
        deadline.setSingleShot(True)
        deadline.timeout.connect(loop.quit)
        self.stopped.connect(loop.quit)
        deadline.start(max(0, timeout_ms))
        loop.exec()
        self.stopped.disconnect(loop.quit)
        deadline.stop()
        if self._leaving:
            self._finish_leaving()
            return False
        return True

    def set_server(self, host: str, port: int) -> None:
        """Use this one index server; reconnect to it at once if running."""
        self.set_servers([(host, port)])

    def set_servers(self, servers: Sequence[Server]) -> None:
        """Use these index servers. A client on one that is still listed stays there;
        otherwise it moves to the first of the new list in its order at once (if running)."""
        current = self.server
        self._take_servers(servers)
        if current in self._order:
            self._position = self._order.index(current)
            return
        if not self._running:
            self._announce_server()
            return
        failed = self._discard_socket()
        self._attempt = 0
        self._failed_in_round = 0
        self._connect()
        self._fail_searches(failed, "The search was cancelled: switched to another index server")

    def _take_servers(self, servers: Sequence[Server]) -> None:
        self._servers = unique_servers(servers)
        self._order = list(self._servers)
        if self._shuffle:
            self._rng.shuffle(self._order)
        self._position = 0

    def set_listen_port(self, port: int) -> None:
        """Announce a new listen port: JOIN again at once if connected, else at the next JOIN."""
        if port == self._listen_port:
            return
        self._listen_port = port
        if self._connected() and self._state in (ClientState.JOINING, ClientState.JOINED):
            self._send_join()

    def search(self, query: str, limit: int = p.DEFAULT_SEARCH_LIMIT) -> int:
        """Start a search; the answer comes as search_finished or search_failed with this id."""
        search_id = self._next_search_id
        self._next_search_id += 1
        problem = None
        if not query.strip():
            problem = "Type something to search for"
        elif len(query) > p.MAX_QUERY_CHARS:
            problem = f"The search text is too long (at most {p.MAX_QUERY_CHARS} characters)"
        elif self._state != ClientState.JOINED or not self._connected():
            problem = self._not_joined_text()
        if problem is not None:
            # Queued, so the caller has the id before the answer arrives.
            self._search_failed_later.emit(search_id, problem)
            return search_id
        limit = max(1, min(limit, p.MAX_SEARCH_LIMIT))
        self._request(
            p.Search(id=self._take_request_id(), query=query, limit=limit), search_id=search_id
        )
        return search_id

    def sources(self, file_hash: str, size: int | None = None) -> int:
        """Ask who holds a file (SOURCES); the answer comes like a search's, with this id.

        An index server too old for SOURCES answers BAD_REQUEST and closes; then
        ``sources_supported`` turns False and callers search by name instead.
        """
        search_id = self._next_search_id
        self._next_search_id += 1
        if self._state != ClientState.JOINED or not self._connected():
            self._search_failed_later.emit(search_id, self._not_joined_text())
            return search_id
        self._request(
            p.Sources(id=self._take_request_id(), hash=file_hash, size=size), search_id=search_id
        )
        return search_id

    def browse(self, address: p.PeerAddress, limit: int = p.MAX_SEARCH_LIMIT) -> int:
        """List what one peer shares (BROWSE); the answer comes like a search's, with this id."""
        search_id = self._next_search_id
        self._next_search_id += 1
        if self._state != ClientState.JOINED or not self._connected():
            self._search_failed_later.emit(search_id, self._not_joined_text())
            return search_id
        message = p.Browse(
            id=self._take_request_id(), host=address.host, port=address.port, limit=limit
        )
        self._request(message, search_id=search_id)
        return search_id

    def announce(self, add: Sequence[p.FileInfo], remove: Sequence[str]) -> None:
        """Send library changes as UPDATE batches; dropped when not connected (JOIN resends all)."""
        if not self._connected() or self._state not in (ClientState.JOINING, ClientState.JOINED):
            log.debug(
                "Not connected: %d added, %d removed wait for the next JOIN", len(add), len(remove)
            )
            return
        self._send_updates(shareable(add), [h for h in remove if _is_hash(h)])

    # ------------------------------------------------------------ connection

    def _connect(self) -> None:
        self._reconnect_timer.stop()
        self._discard_socket()
        # What the last server said of itself or of our requests does not hold for the next.
        self.sources_supported = True
        lost, self._relay_tokens = self._relay_tokens, {}
        if self.relay_broker is not None:
            for token in lost.values():
                self.relay_broker.refuse(token, "the connection to the index server was lost")
        if not QSslSocket.supportsSsl():
            # Qt's TLS backend loads OpenSSL 3 at run time; without it nothing can connect.
            log.error("Qt cannot use TLS here: %s", QSslSocket.sslLibraryBuildVersionString())
            self._set_state(ClientState.OFFLINE)
            self.connection_problem.emit(
                "cannot_reach",
                self.server_address,
                "this build cannot use TLS (Qt found no OpenSSL 3 library on this system)",
            )
            return
        socket = QSslSocket(self)
        configuration = socket.sslConfiguration()
        configuration.setProtocol(QSsl.SslProtocol.TlsV1_3OrLater)
        # Self-signed: the certificate is checked by its fingerprint (_on_encrypted).
        configuration.setPeerVerifyMode(QSslSocket.PeerVerifyMode.VerifyNone)
        socket.setSslConfiguration(configuration)
        socket.encrypted.connect(self._on_encrypted)
        socket.disconnected.connect(self._on_disconnected)
        socket.readyRead.connect(self._on_ready_read)
        socket.errorOccurred.connect(self._on_socket_error)
        self._socket = socket
        self._reached = False
        self._refused_identity = False
        self._reader = p.LineReader()
        self._next_request_id = 1
        self._heartbeats = False
        self._set_state(ClientState.CONNECTING)
        self._announce_server()
        log.info("Connecting to the index server at %s", self.server_address)
        self._connect_timer.start()
        self.server_fingerprint = None
        self.reachable = None  # until this server has connected back
        host, port = self.server
        socket.connectToHostEncrypted(host, port)

    def _announce_server(self) -> None:
        if self.server_address != self._announced_server:
            self._announced_server = self.server_address
            self.server_changed.emit(self.server_address)

    def _connected(self) -> bool:
        return (
            self._socket is not None
            and not self._leaving
            and self._socket.state() == QAbstractSocket.SocketState.ConnectedState
        )

    def _discard_socket(self) -> list[_Request]:
        """Close the current socket without a word; return the searches left unanswered."""
        socket, self._socket = self._socket, None
        for timer in (self._connect_timer, self._reply_timer, self._ping_timer, self._leave_timer):
            timer.stop()
        if socket is not None:
            socket.encrypted.disconnect(self._on_encrypted)
            socket.disconnected.disconnect(self._on_disconnected)
            socket.readyRead.disconnect(self._on_ready_read)
            socket.errorOccurred.disconnect(self._on_socket_error)
            socket.abort()
            socket.deleteLater()
        self._leaving = False
        self._peer_address = ""
        return self._forget_requests()

    def _forget_requests(self) -> list[_Request]:
        searches = [r for r in self._requests.values() if r.search_id is not None]
        self._requests.clear()
        self._join_request_id = None
        return searches

    def _fail_searches(self, requests: list[_Request], message: str) -> None:
        for request in requests:
            assert request.search_id is not None
            self.search_failed.emit(request.search_id, message)

    def _hold(self, requests: list[_Request]) -> None:
        """Keep these questions for the next server's JOIN_OK, within ``resend_window``."""
        if not requests:
            return
        self._held.extend(requests)
        if not self._held_timer.isActive():
            self._held_timer.start()
        log.info("%d questions wait to be asked again of the next server", len(requests))

    def _take_held(self) -> list[_Request]:
        held, self._held = self._held, []
        self._held_timer.stop()
        return held

    def _on_held_timeout(self) -> None:
        """No server JOINed in time: the held questions fail as they would have at once."""
        held = self._take_held()
        if held:
            log.info("No index server joined in time: %d questions fail", len(held))
        self._fail_searches(held, LOST_TEXT)

    def _resend_held(self) -> None:
        """Ask the questions the last server left unanswered, once, with new request ids."""
        held = self._take_held()
        if held:
            log.info("Asking %s the %d questions left unanswered", self.server_address, len(held))
        for request in held:
            assert request.message is not None
            message = replace(request.message, id=self._take_request_id())
            self._request(message, request.search_id, resent=True)

    def _connection_failed(self, reason: str) -> None:
        """The connection is unusable: say so once, fail what waits, schedule a reconnect."""
        if self._socket is None:
            return
        if self._refused_identity:
            self._refused_identity = False
            code = "identity_changed"
            message = f"Not connecting to {self.server_address}: {reason}"
        elif self._reached:
            code, message = (
                "connection_lost",
                f"Lost the connection to {self.server_address}: {reason}",
            )
        else:
            code = "cannot_reach"
            message = f"Cannot reach the index server at {self.server_address}: {reason}"
        log.warning("%s", message)
        if self._joined_at is not None and (
            time.monotonic() - self._joined_at >= self._stable_after
        ):
            self._attempt = 0
            self._failed_in_round = 0
        self._joined_at = None
        server = self.server_address
        lost = self._discard_socket()
        # A question not yet asked twice waits for the next server; the rest fail now.
        failed = [r for r in lost if not (self._running and r.resendable)]
        self._hold([r for r in lost if self._running and r.resendable])
        if not self._running:
            failed += self._take_held()
        delay = None
        if self._running:
            # The next server in this client's order; a whole round of failures backs off.
            self._position = (self._position + 1) % len(self._order)
            self._failed_in_round += 1
            if self._failed_in_round >= len(self._order):
                self._failed_in_round = 0
                delay = backoff_delay(
                    self._attempt, self._min_backoff, self._max_backoff, self._rng
                )
                self._attempt += 1
                self._reconnect_timer.start(max(0, round(delay * 1000)))
                self._set_state(ClientState.WAITING)
            else:
                pause = self._rng.uniform(0, FAILOVER_JITTER * self._min_backoff)
                log.info("Trying the index server at %s next", self.server_address)
                self._reconnect_timer.start(max(0, round(pause * 1000)))
                self._set_state(ClientState.CONNECTING)
        else:
            self._set_state(ClientState.OFFLINE)
        self._fail_searches(failed, LOST_TEXT)
        self.connection_lost.emit(message)
        self.connection_problem.emit(code, server, reason)
        # A slot above may have called stop() or set_servers(); then no retry is pending.
        if self._reconnect_timer.isActive():
            if delay is None:
                self._announce_server()  # the problem first, then where the client goes
            else:
                log.info("Trying the index servers again in %.1f s", delay)
                self.reconnect_scheduled.emit(delay)

    def _finish_leaving(self) -> None:
        if not self._leaving:
            return
        self._discard_socket()
        log.info("Left the index server at %s", self.server_address)
        self.stopped.emit()

    def _on_encrypted(self) -> None:
        """TLS is up: check the server's identity before anything is sent."""
        socket = self._socket
        if socket is None:
            return
        digest = socket.peerCertificate().digest(QCryptographicHash.Algorithm.Sha256)
        fingerprint = bytes(digest.data()).hex()
        address = self.server_address
        verdict = self.known_servers.check(address, fingerprint)
        if verdict is Verdict.CHANGED:
            known = self.known_servers.fingerprint_of(address) or ""
            log.warning(
                "The index server at %s presented another certificate (%s) than the one"
                " remembered (%s): not connecting",
                address,
                fingerprint,
                known,
            )
            self.server_identity_changed.emit(address, known, fingerprint)
            self._refused_identity = True
            self._connection_failed("it presented another identity than before")
            return
        if verdict is Verdict.NEW:
            log.info("Remembered the index server %s by its fingerprint %s", address, fingerprint)
        self.server_fingerprint = fingerprint
        self._on_connected()

    def trust_server_identity(self, address: str, fingerprint: str) -> None:
        """Remember ``fingerprint`` for ``address`` (the user accepted the one shown): the
        next connection is checked against it, not against whatever comes next."""
        self.known_servers.replace(address, fingerprint)

    def retry_server(self, address: str) -> None:
        """Connect to ``address`` (one of the servers) now, without waiting for the backoff
        (the user has just trusted its new identity)."""
        if not self._running or self._state in (ClientState.JOINING, ClientState.JOINED):
            return
        for position, server in enumerate(self._order):
            if server_text(server) == address:
                self._position = position
                self._connect()
                return

    def forget_server_identity(self, address: str) -> None:
        """Trust whatever certificate ``address`` presents next."""
        self.known_servers.forget(address)

    def _on_connected(self) -> None:
        self._connect_timer.stop()
        self._reached = True
        log.info("Connected to the index server at %s", self.server_address)
        self._set_state(ClientState.JOINING)
        self._send_join()

    def _on_disconnected(self) -> None:
        self._on_socket_gone("the server closed the connection")

    def _on_socket_error(self, error: QAbstractSocket.SocketError) -> None:
        socket = self._socket
        reason = _SOCKET_ERROR_TEXT.get(error)
        if reason is None:
            reason = socket.errorString() if socket is not None else str(error)
        self._on_socket_gone(reason)

    def _on_socket_gone(self, reason: str) -> None:
        socket = self._socket
        if socket is None:
            return
        if socket.bytesAvailable() > 0:
            self._on_ready_read()  # its last words, e.g. an ERROR or LEAVE_OK
        if self._socket is not socket:
            return
        if self._leaving:
            self._finish_leaving()
        else:
            self._connection_failed(reason)

    def _on_connect_timeout(self) -> None:
        self._connection_failed(f"no answer within {self._connect_timeout:g} s")

    def _on_reply_timeout(self) -> None:
        self._connection_failed(f"no reply within {self._deadline:g} s")

    def _on_ping_timer(self) -> None:
        # The server's idle deadline: a connection that sent nothing for a while says PING.
        if self._state == ClientState.JOINED and self._connected() and not self._requests:
            self._request(p.Ping(id=self._take_request_id()))

    def _start_reply_timer(self) -> None:
        """The deadline for the server's next word: short when the server sends heartbeats
        (then it runs while idle too: such a server says something every few seconds) or
        when only PINGs wait (answered at once by a live server), else the per-reply
        ``reply_timeout`` (a server without heartbeats may work for longer on one request
        without a word)."""
        if self._heartbeats or all(r.op == "PING" for r in self._requests.values()):
            self._deadline = self._liveness_timeout
        else:
            self._deadline = self._reply_timeout
        self._reply_timer.start(max(0, round(self._deadline * 1000)))

    # ------------------------------------------------------------ sending

    def _take_request_id(self) -> int:
        request_id = self._next_request_id
        self._next_request_id += 1
        return request_id

    def _write(self, message: p.Message) -> None:
        if self._socket is not None:
            self._socket.write(p.encode(message))
            if self._ping_timer.isActive():
                self._ping_timer.start()  # idle is counted from what we last sent

    def _request(
        self, message: p.Message, search_id: int | None = None, resent: bool = False
    ) -> None:
        assert message.id is not None
        if self._socket is None:  # the connection failed while this was being sent
            if search_id is not None:
                self._search_failed_later.emit(search_id, self._not_joined_text())
            return
        kept = message if message.OP in RESENDABLE and search_id is not None else None
        self._requests[message.id] = _Request(message.OP, search_id, kept, resent)
        self._write(message)
        if not self._reply_timer.isActive():
            self._start_reply_timer()

    def _current_files(self) -> list[p.FileInfo]:
        try:
            files = list(self._files_provider())
        except Exception:
            log.exception("Could not list the shared files; joining with none")
            files = []
        return shareable(files)

    def request_push(self, holder: p.PeerAddress, token: str) -> None:
        """Ask the index to have ``holder`` connect out to this peer (any thread; no answer:
        the pushed connection arriving, or not, is the answer)."""
        self._push_wanted.emit(holder.host, holder.port, token)

    def _send_push(self, host: str, port: int, token: str) -> None:
        if self._state != ClientState.JOINED:
            log.info("Not asking %s:%d to push: not joined to an index server", host, port)
            return
        self._request(p.Push(id=self._take_request_id(), host=host, port=port, token=token))

    def request_relay(self, holder: p.PeerAddress, token: str) -> None:
        """Ask the index to relay a transfer with ``holder`` (any thread); the answer
        settles ``relay_broker``'s waiter for ``token``."""
        self._relay_wanted.emit(holder.host, holder.port, token)

    def _send_relay(self, host: str, port: int, token: str) -> None:
        if self._state != ClientState.JOINED:
            if self.relay_broker is not None:
                self.relay_broker.refuse(token, "not connected to an index server")
            return
        request_id = self._take_request_id()
        self._relay_tokens[request_id] = token
        self._request(p.Relay(id=request_id, host=host, port=port, token=token))

    def _on_relay_answer(self, message: p.RelayOk | p.Error) -> None:
        token = self._relay_tokens.pop(message.id, None) if message.id is not None else None
        broker = self.relay_broker
        if token is None or broker is None:
            return
        if isinstance(message, p.RelayOk):
            broker.answer(token, message.relay_host, message.relay_port)
        else:
            busy = message.code is p.ErrorCode.BUSY
            broker.refuse(token, p.printable(message.message), busy, message.retry_after)

    def _send_join(self) -> None:
        files = self._current_files()
        first = files[: p.MAX_FILES_PER_MESSAGE]
        request_id = self._take_request_id()
        self._join_request_id = request_id
        self._request(
            p.Join(
                id=request_id,
                port=self._listen_port,
                files=tuple(first),
                agent=self._agent,
                fingerprint=self._fingerprint,
                heartbeat=True,
            )
        )
        # The server answers in order, so the rest can follow the JOIN right away.
        self._send_updates(files[p.MAX_FILES_PER_MESSAGE :], [])
        log.info(
            "Joining %s with %d files on port %d",
            self.server_address,
            len(files),
            self._listen_port,
        )

    def _send_updates(self, add: Sequence[p.FileInfo], remove: Sequence[str]) -> None:
        for batch_add, batch_remove in update_batches(add, remove):
            self._request(p.Update(id=self._take_request_id(), add=batch_add, remove=batch_remove))

    # ------------------------------------------------------------ receiving

    def _on_ready_read(self) -> None:
        socket = self._socket
        while socket is not None and self._socket is socket and socket.bytesAvailable() > 0:
            data = socket.read(READ_CHUNK).data()
            if not data:
                return
            try:
                messages = self._reader.feed(data)
            except p.ProtocolError as exc:
                self._handle_all(exc.preceding, socket)
                if self._socket is socket:
                    self._protocol_failure(exc)
                return
            self._handle_all(messages, socket)

    def _handle_all(self, messages: list[p.Message], socket: QSslSocket) -> None:
        for message in messages:
            if self._socket is not socket:
                return
            self._handle(message)

    def _protocol_failure(self, error: p.ProtocolError) -> None:
        text = f"{error.code.value}: {p.printable(error.message)}"
        log.warning("The index server at %s broke the protocol: %s", self.server_address, text)
        self._connection_failed(f"the server sent an invalid message ({text})")

    def _handle(self, message: p.Message) -> None:
        if self._leaving:
            if isinstance(message, p.LeaveOk) or (
                isinstance(message, p.Error) and message.code.closes_connection
            ):
                self._finish_leaving()
            return
        request = self._requests.pop(message.id, None) if message.id is not None else None
        heartbeat = isinstance(message, p.Pong) and message.id is None  # unasked: a heartbeat
        if heartbeat or (isinstance(message, p.JoinOk) and message.heartbeat):
            self._heartbeats = True
        if self._requests or self._heartbeats:
            self._start_reply_timer()
        else:
            self._reply_timer.stop()

        if isinstance(message, p.Error):
            self._on_server_error(message, request)
        elif isinstance(message, p.Pong | p.LeaveOk | p.PushOk):
            pass
        elif isinstance(message, p.Reachability):
            self.reachable = message.reachable
            log.info(
                "The index %s this peer's port from outside",
                "reached" if message.reachable else "could not reach",
            )
            self.reachability_changed.emit(message.reachable)
        elif isinstance(message, p.PushRequest):
            self.push_requested.emit(message.host, message.port, message.token)
        elif isinstance(message, p.RelayRequest):
            self.relay_requested.emit(message.relay_host, message.relay_port, message.token)
        elif isinstance(message, p.RelayOk):
            self._on_relay_answer(message)
        elif not isinstance(message, p.JoinOk | p.SearchOk | p.SourcesOk | p.BrowseOk | p.UpdateOk):
            self._protocol_failure(
                p.ProtocolError(p.ErrorCode.BAD_REQUEST, f"unexpected {message.OP}")
            )
        elif request is None or request.op != _REQUEST_OF_REPLY[message.OP]:
            log.warning("Ignoring %s with id %s: no such request waits", message.OP, message.id)
        elif isinstance(message, p.JoinOk):
            self._on_join_ok(message)
        elif isinstance(message, p.SearchOk | p.SourcesOk | p.BrowseOk):
            assert request.search_id is not None
            more = isinstance(message, p.SearchOk | p.BrowseOk) and message.more
            self.search_finished.emit(request.search_id, SearchResults(message.results, more))
        elif isinstance(message, p.UpdateOk):
            self.update_finished.emit(message.files)

    def _on_join_ok(self, message: p.JoinOk) -> None:
        if message.id != self._join_request_id:
            return  # an earlier JOIN, already replaced by a newer one
        self._join_request_id = None
        self._peer_address = message.peer
        self._joined_at = time.monotonic()
        if self._stable_after <= 0:
            self._attempt = 0
            self._failed_in_round = 0
        self._ping_timer.start()
        # Before the slots of the signals below run (one may stop the client, which fails
        # these along with the rest).
        self._resend_held()
        self._set_state(ClientState.JOINED)
        log.info("Joined the index at %s as %s", self.server_address, message.peer)
        self.joined.emit(message.peer, message.files)

    def _on_server_error(self, error: p.Error, request: _Request | None) -> None:
        text = p.printable(error.message)
        if (
            request is not None
            and request.op == "SOURCES"
            and (error.code is p.ErrorCode.BAD_REQUEST)
        ):
            self.sources_supported = False
        if request is not None and request.op == "RELAY":
            log.info("The index will not relay: %s", text)
            self._on_relay_answer(error)
        elif request is not None and request.op == "PUSH":
            # The pushed connection simply does not come; the download tries its other ways.
            log.info("The index could not pass on a push request: %s", text)
        elif request is not None and request.search_id is not None:
            self.search_failed.emit(
                request.search_id, f"The index server refused the search: {text}"
            )
        else:
            about = f" to {request.op}" if request is not None else ""
            log.warning("The index server answered%s: %s %s", about, error.code.value, text)
            self.server_error.emit(error.code.value, text)
        if error.code.closes_connection and self._socket is not None:
            self._connection_failed(f"the server said: {text}")
        elif (
            error.code is p.ErrorCode.UNAVAILABLE
            and self._socket is not None
            and (request is None or request.op in ("JOIN", "UPDATE"))
        ):
            # This server's index database is away: the peer is not (or no longer fully)
            # in the index through it. Another server may reach the database; a re-JOIN
            # sends the whole list again.
            self._connection_failed(f"the server's index database is unavailable: {text}")

    # ------------------------------------------------------------ state

    def _set_state(self, state: ClientState) -> None:
        if state == self._state:
            return
        log.debug("Index client state: %s -> %s", self._state.value, state.value)
        self._state = state
        self.state_changed.emit(state.value)

    def _not_joined_text(self) -> str:
        if self._state in (ClientState.CONNECTING, ClientState.JOINING):
            return f"Still connecting to the index server at {self.server_address}"
        if self._state == ClientState.WAITING:
            return f"Not connected to the index server at {self.server_address} (retrying)"
        return "Not connected to the index server"


class SearchResults(list):
    """A search's results, and whether the server said more matched than it sent."""

    def __init__(self, results: Iterable[p.SearchResult] = (), more: bool = False) -> None:
        super().__init__(results)
        self.more = more


_REQUEST_OF_REPLY = {
    "JOIN_OK": "JOIN",
    "SEARCH_OK": "SEARCH",
    "SOURCES_OK": "SOURCES",
    "BROWSE_OK": "BROWSE",
    "UPDATE_OK": "UPDATE",
    "PUSH_OK": "PUSH",
    "RELAY_OK": "RELAY",
}
