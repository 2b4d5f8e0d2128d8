"""The index server: a QTcpServer with one PeerSession per control connection.

It speaks PROTOCOL.md's control conversation, enforces its limits and its ban policy,
keeps the index in an ``IndexStore`` and reports what happens through typed signals
(for the admin window) and the ``napster.server`` logger. The requests that use the
index are answered by ``IndexRequests`` (``index_requests.py``), the fair turns come
from ``TurnQueue`` (``turns.py``) and each connection's bytes go through a
``Connection`` (``connection.py``).
"""

from __future__ import annotations

import ipaddress
import logging
import os
import socket
import time
from collections import Counter, deque
from collections.abc import Generator
from dataclasses import dataclass, replace
from typing import Protocol

from PySide6.QtCore import QObject, QTimer, Signal
from PySide6.QtNetwork import QAbstractSocket, QHostAddress, QTcpServer

from app.network import protocol as p
from app.network import tls
from app.network.identity import PeerIdentity
from server_app.connection import Connection
from server_app.index_requests import IndexRequests, Job, PeerEntry
from server_app.reachability import ReachabilityChecker
from server_app.relay import OFF_MESSAGE, Relay, RelayRefused, RelaySettings
from server_app.store import IndexStore, IndexUnavailable, normalize_address
from server_app.turns import BusyClock, TurnQueue

log = logging.getLogger("napster.server")

READ_CHUNK = 64 * 1024
#: A client that stops reading its replies is dropped once this much waits to be sent.
MAX_PENDING_WRITE = 4 * 1024 * 1024
#: How often (seconds) the peers' last_seen times go to the store, all in one transaction:
#: a commit per PING costs tens of milliseconds on an index of a million files.
TOUCH_INTERVAL = 30.0
#: How many file names a JOIN log line shows before it says "and N more".
LOGGED_NAMES = 10
#: A request line unfinished after ``request_timeout`` must at least have grown this much.
MIN_LINE_PROGRESS = 64 * 1024
#: Bytes read from a connection and not yet handled, at most (its request waits for its turn).
READ_BUFFER = 1024 * 1024
#: Index upkeep (deleting departed peers' rows, merging the name index) runs in slices
#: of this many seconds, one every UPKEEP_INTERVAL_MS while some is due.
UPKEEP_SLICE = 0.005
UPKEEP_INTERVAL_MS = 20
#: Seconds one pass may spend forgetting connections the peers dropped.
DROP_SLICE = 0.010
#: New connections set up per pass of the event loop at most (QTcpServer's own default
#: of pending connections): the rest wait for the next pass, so a burst never stalls it.
ACCEPT_BATCH = 30
#: Requests that use the index wait for their turn (see IndexServer.request_turn).
INDEX_OPS = (p.Join, p.Search, p.Sources, p.Browse, p.Update)
#: The requests the index server answers; any other op is BAD_REQUEST.
SERVER_OPS = (p.Join, p.Search, p.Sources, p.Browse, p.Update, p.Push, p.Relay, p.Ping, p.Leave)
#: The certificate name of an index server's identity (peers pin the fingerprint, not this).
SERVER_COMMON_NAME = "napster-p2p index server"
#: What a version-1 (plaintext) client gets before the close.
VERSION_1_REFUSAL = p.encode(
    p.Error(
        code=p.ErrorCode.BAD_REQUEST,
        message="this index server speaks Napster P2P protocol version 2: connections use"
        " TLS 1.3; please upgrade your peer",
    )
)
#: ERROR replies that answer a well-formed request (nobody to push to, the relay off or
#: full, the database away): not counted or logged as the peer's protocol errors.
ANSWERS_NOT_ERRORS = frozenset({p.ErrorCode.NOT_FOUND, p.ErrorCode.BUSY, p.ErrorCode.UNAVAILABLE})
#: How often a server of a shared index looks for push requests other servers passed on.
FORWARDED_PUSH_MS = 100
#: A kicked peer's address is refused for this many seconds.
KICK_BAN_SECONDS = 600.0
KICK_REASON = "kicked from the admin window"
#: Seconds a closing connection has to flush its last replies.
FLUSH_SECONDS = 5.0
#: The heartbeat a connection that asked for it (JOIN "heartbeat") gets while its requests
#: wait: an unasked PONG, so its peer can tell a busy server from a frozen one.
HEARTBEAT_LINE = p.encode(p.Pong())


@dataclass(frozen=True)
class ServerLimits:
    """The server settings of PROTOCOL.md's limits table (seconds and counts)."""

    join_timeout: float = 10.0
    idle_timeout: float = 90.0
    #: A started line must finish within this (a big one: grow by MIN_LINE_PROGRESS per period).
    request_timeout: float = 10.0
    max_connections_per_ip: int = 32
    max_files_per_peer: int = 200_000
    #: Seconds between the heartbeats of a connection whose requests wait (see HEARTBEAT_LINE).
    heartbeat: float = 1.0
    #: Seconds without a line to a connection that asked for heartbeats after which it gets
    #: one even with nothing to wait for (it sees a frozen server within a few seconds).
    idle_heartbeat: float = 2.0


@dataclass(frozen=True)
class Ban:
    """A refused address: kept in the database, or temporary (``expires_at``, a kick)."""

    address: str
    reason: str
    banned_at: float
    #: When a temporary ban ends (time.time()); None: until unbanned.
    expires_at: float | None = None


class ServerStartError(Exception):
    """The server could not listen; the message says why in one line."""


def describe_files(files: tuple[p.FileInfo, ...]) -> str:
    names = [p.printable(f.name) for f in files[:LOGGED_NAMES]]
    text = " ".join(names) if names else "(no files)"
    if len(files) > LOGGED_NAMES:
        text += f" and {len(files) - LOGGED_NAMES} more"
    return text


#: Seconds a peer is told to wait when the index database is away (a restart takes a few).
UNAVAILABLE_RETRY = 5


def index_unavailable(message: p.Message) -> p.ProtocolError:
    """The answer to a request the shared index could not take: try again (or elsewhere)."""
    return p.ProtocolError(
        p.ErrorCode.UNAVAILABLE,
        f"the index database is unavailable: {message.OP} was not done; try again in a few"
        " seconds or use another index server",
        message.id,
        retry_after=UNAVAILABLE_RETRY,
    )


def _single_shot_timer(parent: QObject) -> QTimer:
    timer = QTimer(parent)
    timer.setSingleShot(True)
    return timer


class SessionHost(Protocol):
    """What a ``PeerSession`` needs from its server (``IndexServer`` is the one)."""

    limits: ServerLimits
    requests: IndexRequests

    def request_turn(self, session: PeerSession) -> bool: ...
    def spend(self, seconds: float) -> None: ...
    def claim_port(self, session: PeerSession, port: int) -> bool: ...
    def release_port(self, session: PeerSession) -> None: ...
    def note_dropped(self, session: PeerSession) -> None: ...
    def note_joined(self, session: PeerSession, files: int) -> None: ...
    def note_updated(self, session: PeerSession, files: int) -> None: ...
    def note_left(self, session: PeerSession, peer_id: int) -> None: ...
    def note_answered(self, session: PeerSession, op: str, seconds: float) -> None: ...
    def note_protocol_error(self, session: PeerSession, error: p.ProtocolError) -> None: ...
    def schedule_upkeep(self) -> None: ...
    def relay_push(self, session: PeerSession, message: p.Push) -> p.Message: ...
    def relay_transfer(self, session: PeerSession, message: p.Relay) -> p.Message: ...


class PeerSession(QObject):
    """One control connection: reads requests, answers them, enforces deadlines."""

    closed = Signal(object)  # self

    def __init__(self, host: SessionHost, connection: Connection) -> None:
        # Sessions and their connections are owned by Python (no Qt parent): the server
        # drops a closed session from a zero-delay timer, outside its signal handlers.
        super().__init__()
        self.host = host
        self.connection = connection
        self.ip = normalize_address(connection.peer_host)
        self.remote = f"{self.ip}:{connection.peer_port}"
        self.entry = PeerEntry(self.ip)
        self.peer_label = self.remote
        self.agent = ""
        #: The certificate fingerprint the peer announced in its JOIN (version 2).
        self.fingerprint: str | None = None
        #: A JOIN asked for heartbeats (from the moment it is read, before its turn).
        self.heartbeat = False
        #: When a line was last written to the peer (``time.monotonic``).
        self.last_sent = time.monotonic()
        self.connected_at = time.time()
        self.last_seen = self.connected_at
        self._reader = p.LineReader(p.SERVER_BULK_OPS)
        self._closing = False
        self._dropped = False
        self._finished = False
        #: Requests read but not answered yet, in order; one that uses the index waits
        #: at the head for its turn.
        self._held: deque[p.Message | p.ProtocolError] = deque()
        self._turn_granted = False
        #: A JOIN or UPDATE under way a step per turn (see STEP_FILES), and its request.
        self._job: Job | None = None
        self._job_message: p.Message | None = None
        self._job_seconds = 0.0
        #: In the server's turn queue: take_turn() will carry on reading or answering.
        self.waiting_turn = False
        #: How long this connection has been busy, for the turn queue.
        self.clock = BusyClock()
        limits = host.limits

        self._join_timer = _single_shot_timer(self)
        self._join_timer.timeout.connect(self._on_join_timeout)
        self._join_timer.start(int(limits.join_timeout * 1000))
        self._idle_timer = _single_shot_timer(self)
        self._idle_timer.timeout.connect(self._on_idle_timeout)
        self._idle_timer.start(int(limits.idle_timeout * 1000))
        # A client trickling a line byte by byte keeps the idle timer happy, not this one.
        self._line_timer = _single_shot_timer(self)
        self._line_timer.setInterval(int(limits.request_timeout * 1000))
        self._line_timer.timeout.connect(self._on_line_timeout)
        self._line_mark = 0
        self._line_started = False  # a line deadline runs for the unfinished line
        # Gives a closing connection a few seconds to flush its last replies.
        self._abort_timer = _single_shot_timer(self)
        self._abort_timer.timeout.connect(connection.abort)

        connection.ready_read.connect(self._on_ready_read)
        connection.input_finished.connect(self._on_input_finished)
        connection.disconnected.connect(self._on_disconnected)

    @property
    def peer_id(self) -> int | None:
        """The peer's row in the index once it has joined."""
        return self.entry.peer_id

    @property
    def closing(self) -> bool:
        return self._closing

    # ------------------------------------------------------------ I/O

    def send(self, message: p.Message) -> None:
        self.send_line(p.encode(message))

    def send_line(self, line: bytes) -> None:
        if self._closing:
            return
        self.connection.write(line)
        self.last_sent = time.monotonic()
        if self.connection.bytes_to_write() > MAX_PENDING_WRITE:
            log.warning("Dropping %s: it does not read its replies", self.peer_label)
            self.close(flush=False)

    def close(self, flush: bool = True) -> None:
        """Close the connection; the peer leaves the index at once."""
        if self._closing:
            return
        self._closing = True
        self._stop()
        if flush and self.connection.is_open:
            self.connection.close()
            if self.connection.is_open:
                # disconnected() will finish the job once the replies are flushed.
                self._abort_timer.start(int(FLUSH_SECONDS * 1000))
                return
        else:
            self.connection.abort()
        self._finish()

    def _stop(self) -> None:
        self._held.clear()
        self._join_timer.stop()
        self._idle_timer.stop()
        self._line_timer.stop()
        self._forget_peer()
        self.host.release_port(self)

    def _finish(self) -> None:
        if self._finished or self.connection.is_open:
            return
        self._finished = True
        self._abort_timer.stop()
        self.closed.emit(self)

    def _on_disconnected(self) -> None:
        if self._dropped:
            return  # forget_dropped() finishes
        if self._closing:
            self._finish()
            return
        self._drop()

    def _drop(self) -> None:
        # The peer went: when thousands go at once, the server forgets them in slices
        # (see IndexServer.forget_dropped) rather than in one long pass.
        # The socket is closed then too: at the end of its input its read notifier is off.
        self._closing = self._dropped = True
        self.host.note_dropped(self)

    def forget_dropped(self) -> None:
        """Finish a connection the peer dropped: it leaves the index."""
        self._stop()
        self.connection.abort()
        self._finish()

    def _on_input_finished(self) -> None:
        """The peer shut its sending side: answer what it sent, then close."""
        self._guarded(self._on_ready_read)

    def _end_if_input_done(self) -> None:
        connection = self.connection
        if (
            self._closing
            or not connection.at_eof
            or self._owes_answers
            or connection.bytes_available()
        ):
            return
        if self._reader.buffered:
            log.info("Closing %s: it stopped sending in the middle of a line", self.peer_label)
        if connection.bytes_to_write():
            self.close()  # its last replies go out first
        else:
            self._drop()

    def _on_join_timeout(self) -> None:
        # A busy loop may run this timer before a JOIN that has already arrived.
        self._guarded(self._on_ready_read)
        if self._owes_answers and not self._closing:  # its JOIN waits for its turn
            self._join_timer.start()
            return
        if self.peer_id is None and not self._closing:
            log.info(
                "Closing %s: no JOIN within %.0f s", self.remote, self.host.limits.join_timeout
            )
            self.close()

    def _on_idle_timeout(self) -> None:
        if self._closing:
            return
        if self._owes_answers:  # the client is waiting for us, not the other way round
            self._idle_timer.start()
            return
        log.info("Closing %s: idle for %.0f s", self.peer_label, self.host.limits.idle_timeout)
        self.close()

    def _on_line_timeout(self) -> None:
        self._guarded(self._on_ready_read)  # bytes that already arrived count
        if self._closing or not self._line_started or self._line_timer.isActive():
            return  # closed, or the line finished (and a new one has its own deadline)
        if self._owes_answers:  # we are not reading: not the client's fault
            self._line_timer.start()
            return
        if self._reader.buffered - self._line_mark >= MIN_LINE_PROGRESS:
            self._line_mark = self._reader.buffered  # a big line still coming in: allow more
            self._line_timer.start()
            return
        log.info(
            "Closing %s: a request line still unfinished after %.0f s",
            self.peer_label,
            self.host.limits.request_timeout,
        )
        self.close()

    @property
    def _owes_answers(self) -> bool:
        """Requests of this connection wait for the server (held, under way or queued)."""
        return bool(self._held) or self._job is not None or self.waiting_turn

    def _guarded(self, work) -> None:
        """Run ``work``; a fault of the server closes this connection, never leaves it stuck."""
        try:
            work()
        except Exception:
            log.exception("Closing %s: the server failed on its requests", self.peer_label)
            self.waiting_turn = False
            self._job = self._job_message = None
            self.close(flush=False)

    def _on_ready_read(self) -> None:
        """Bytes arrived (or a deadline wants them counted): read them when the server lets."""
        if self._closing or self._owes_answers:
            return  # take_turn() / a held request's answer reads on
        if self.connection.bytes_available() <= 0:
            self._end_if_input_done()
            return
        if not self.host.request_turn(self):
            self.waiting_turn = True
            return
        self._turn_granted = True  # the turn covers reading and the first index request
        self._read()
        self._turn_granted = False

    def _read(self) -> None:
        completed = False
        connection = self.connection
        while not self._closing and not self._owes_answers and connection.bytes_available() > 0:
            data = connection.read(READ_CHUNK)
            self._idle_timer.start()
            started = time.perf_counter()
            try:
                messages = self._reader.feed(data)
            except p.ProtocolError as exc:
                # A copy: the raised error's frames (and its context's) would tie it to
                # this session in a reference cycle.
                error = p.ProtocolError(exc.code, exc.message, exc.request_id)
                self._held.extend([*exc.preceding, error])
                self._answer_held()
                return
            finally:
                self.host.spend(time.perf_counter() - started)  # parsing counts too
            completed = completed or bool(messages)
            if not self.heartbeat:
                self.heartbeat = any(isinstance(m, p.Join) and m.heartbeat for m in messages)
            self._held.extend(messages)
            self._answer_held()
        if self._closing:
            return
        if not self._owes_answers:
            self.clock.answered(time.monotonic())  # everything asked so far is answered
        if not self._reader.buffered:
            self._line_timer.stop()
            self._line_started = False
        elif completed or not self._line_started:
            self._line_started = True
            self._line_mark = self._reader.buffered
            self._line_timer.start()
        self._end_if_input_done()

    # ------------------------------------------------------------ requests

    def _answer_held(self) -> None:
        """Answer held requests in order, until one that uses the index must wait its turn."""
        while (self._held or self._job is not None) and not self._closing:
            if self._job is not None:
                if not self._take_index_turn():
                    return  # take_turn() carries on
                self._step_job()
                continue
            item = self._held[0]
            needs_turn = isinstance(item, INDEX_OPS) and (
                self.peer_id is not None or isinstance(item, p.Join)
            )
            if needs_turn and not self._take_index_turn():
                return  # take_turn() carries on
            self._held.popleft()
            if isinstance(item, p.ProtocolError):
                self._fail(item)
            else:
                self._dispatch(item)

    def _take_index_turn(self) -> bool:
        if self._turn_granted:
            self._turn_granted = False
            return True
        if self.host.request_turn(self):
            return True
        self.waiting_turn = True
        return False

    def take_turn(self) -> None:
        """The server's scheduler says this connection may go on: answer, then read."""
        self.waiting_turn = False
        if self._closing:
            return
        self._turn_granted = True
        self._guarded(self._answer_then_read)
        self._turn_granted = False

    def _answer_then_read(self) -> None:
        self._answer_held()
        if not self._owes_answers:
            self._read()

    def _fail(self, error: p.ProtocolError) -> None:
        if self._closing:
            return
        if error.code not in ANSWERS_NOT_ERRORS:
            self.host.note_protocol_error(self, error)
        self.send(error.to_message())
        if error.closes_connection:
            self.close()

    def _failed_inside(self, message: p.Message) -> None:
        """A fault of the server on ``message`` (call from an except block): say so, close."""
        log.exception("The server failed on a %s from %s", message.OP, self.peer_label)
        self._job = self._job_message = None
        self._fail(
            p.ProtocolError(
                p.ErrorCode.BAD_REQUEST,
                f"the server could not answer this {message.OP}",
                message.id,
            )
        )

    def _dispatch(self, message: p.Message) -> None:
        if self._closing:
            return
        started = time.perf_counter()
        try:
            if not isinstance(message, SERVER_OPS):
                raise p.ProtocolError(
                    p.ErrorCode.BAD_REQUEST,
                    f"{message.OP} is not a request the index server answers",
                    message.id,
                )
            if self.peer_id is None and not isinstance(message, p.Join | p.Ping | p.Leave):
                raise p.ProtocolError(
                    p.ErrorCode.NOT_JOINED, f"send JOIN before {message.OP}", message.id
                )
            outcome = self._handle(message)
            if outcome is not None and not isinstance(outcome, Generator):
                self._deliver(message, outcome)
        except p.ProtocolError as exc:
            self._fail(exc)
            return
        except IndexUnavailable:
            self._fail(index_unavailable(message))
            return
        except Exception:
            self._failed_inside(message)
            return
        finally:
            took = time.perf_counter() - started
            self.host.spend(took)
        if isinstance(outcome, Generator):  # a big JOIN or UPDATE: its steps follow, one per turn
            self._job, self._job_message, self._job_seconds = outcome, message, took
            self._step_job()
            return
        self._answered(message, took)

    def _handle(self, message: p.Message) -> p.Message | bytes | Job | None:
        requests = self.host.requests
        if isinstance(message, p.Join):
            return self._on_join(message)
        if isinstance(message, p.Search):
            return requests.search(self.entry, message)
        if isinstance(message, p.Sources):
            return requests.sources(self.entry, message)
        if isinstance(message, p.Browse):
            return requests.browse(self.entry, message)
        if isinstance(message, p.Update):
            return requests.update(self.entry, message)
        if isinstance(message, p.Push):
            return self.host.relay_push(self, message)
        if isinstance(message, p.Relay):
            return self.host.relay_transfer(self, message)
        if isinstance(message, p.Ping):
            self.send(p.Pong(id=message.id))
        elif isinstance(message, p.Leave):
            self.send(p.LeaveOk(id=message.id))
            log.info("Peer %s left", self.peer_label)
            self.close()
        return None

    def _step_job(self) -> None:
        assert self._job is not None
        started = time.perf_counter()
        reply: p.Message | None = None
        try:
            next(self._job)
            done = False
        except StopIteration as stop:
            done, reply = True, stop.value
        except p.ProtocolError as exc:
            self._job = self._job_message = None
            self._fail(exc)
            return
        except IndexUnavailable:
            assert self._job_message is not None
            failed, self._job, self._job_message = self._job_message, None, None
            self._fail(index_unavailable(failed))
            return
        except Exception:
            assert self._job_message is not None
            self._failed_inside(self._job_message)
            return
        finally:
            took = time.perf_counter() - started
            self.host.spend(took)
            self._job_seconds += took
        if done:
            message, self._job, self._job_message = self._job_message, None, None
            if message is not None and reply is not None:  # (None: closed during the step)
                started = time.perf_counter()
                self._deliver(message, reply)
                took = time.perf_counter() - started  # sending and logging count too
                self.host.spend(took)
                self._answered(message, self._job_seconds + took)
        else:
            self.host.schedule_upkeep()

    def _deliver(self, message: p.Message, reply: p.Message | bytes) -> None:
        if isinstance(reply, bytes):
            self.send_line(reply)
            if isinstance(message, p.Search):
                log.info("Peer %s searched for %s", self.peer_label, p.printable(message.query))
        elif isinstance(reply, p.JoinOk) and isinstance(message, p.Join):
            self._joined(message, reply)
        elif isinstance(reply, p.UpdateOk) and isinstance(message, p.Update):
            self._updated(message, reply)
        else:
            self.send(reply)

    def _answered(self, message: p.Message, took: float) -> None:
        self.last_seen = time.time()
        self.host.note_answered(self, message.OP, took)

    def _on_join(self, message: p.Join) -> p.Message | Job:
        if not self.host.claim_port(self, message.port):
            raise p.ProtocolError(
                p.ErrorCode.BAD_REQUEST,
                f"port {message.port} at {self.ip} is listed by another connection",
                message.id,
            )
        if self.peer_id is not None and self.entry.port != message.port:
            self._forget_peer()  # the same connection moves to another port
        return self.host.requests.join(self.entry, message)

    def _joined(self, message: p.Join, reply: p.JoinOk) -> None:
        self._join_timer.stop()
        self.peer_label = reply.peer
        self.agent = message.agent
        self.fingerprint = message.fingerprint
        self.send(replace(reply, heartbeat=message.heartbeat))
        log.info("Peer %s joined with files %s", reply.peer, describe_files(message.files))
        self.host.note_joined(self, reply.files)

    def _updated(self, message: p.Update, reply: p.UpdateOk) -> None:
        self.send(reply)
        log.info(
            "Peer %s updated: %d added, %d removed, %d files",
            self.peer_label,
            len(message.add),
            len(message.remove),
            reply.files,
        )
        self.host.note_updated(self, reply.files)

    def _forget_peer(self) -> None:
        self._job = self._job_message = None
        try:
            peer_id = self.host.requests.leave(self.entry)
        except IndexUnavailable:
            # The store forgets the peer when the database is back (it re-asserts only
            # the peers still connected); the session is gone either way.
            log.warning("Peer %s left while the index database was unavailable", self.peer_label)
            peer_id, self.entry.peer_id = self.entry.peer_id, None
        if peer_id is not None:
            self.host.note_left(self, peer_id)


class IndexServer(QTcpServer):
    """Accepts control connections and keeps the index of who shares what."""

    #: peer id, "host:port", number of files
    peer_joined = Signal(int, str, int)
    #: peer id, "host:port"
    peer_left = Signal(int, str)
    #: peer id, number of files after the update
    peer_updated = Signal(int, int)
    #: op, milliseconds taken
    request_handled = Signal(str, float)
    #: remote "host:port", error code, message
    protocol_error = Signal(str, str, str)
    #: remote ip, reason
    connection_refused = Signal(str, str)
    #: a ban was added, lifted or ran out (see bans())
    bans_changed = Signal()
    #: the relay was switched on or off, or its limits changed (see relay_settings)
    relay_changed = Signal()

    #: The relay for peers that cannot reach each other (None until configure_relay()).
    relay: Relay | None = None

    def __init__(
        self,
        store: IndexStore,
        limits: ServerLimits | None = None,
        parent: QObject | None = None,
        *,
        identity: PeerIdentity | None = None,
    ) -> None:
        """``identity``: the server's long-lived key and certificate (None: a new one for
        this run, which peers that remembered another will refuse)."""
        super().__init__(parent)
        self.identity = identity or PeerIdentity.generate(SERVER_COMMON_NAME)
        #: Every control connection is TLS 1.3 with this identity (protocol version 2).
        self._tls = tls.server_context(self.identity)
        self.store = store
        self.limits = limits or ServerLimits()
        store.max_files_per_peer = self.limits.max_files_per_peer
        self.requests = IndexRequests(store)
        self.sessions: set[PeerSession] = set()
        #: open sessions per IP address (counted, not scanned, for each new connection)
        self._sessions_per_ip: Counter[str] = Counter()
        #: (ip, port) -> the session that has JOINed (or is JOINing) with that port
        self._ports: dict[tuple[str, int], PeerSession] = {}
        self._port_of: dict[PeerSession, int] = {}
        #: ip -> a kick's ban, until it runs out
        self._temporary_bans: dict[str, Ban] = {}
        #: Refused connections still telling their client why.
        self._refusing: set[Connection] = set()
        #: The wall clock of bans (tests move it).
        self.now = time.time
        self._closed_sessions: list[PeerSession] = []
        self._reaper = QTimer(self)
        self._reaper.setSingleShot(True)
        self._reaper.setInterval(0)
        self._reaper.timeout.connect(self._reap_sessions)
        #: Connections the peers dropped, forgotten a slice at a time.
        self._dropped: deque[PeerSession] = deque()
        self._drop_timer = QTimer(self)
        self._drop_timer.setSingleShot(True)
        self._drop_timer.setInterval(0)
        self._drop_timer.timeout.connect(self._forget_dropped)
        #: Accepted sockets (descriptors) not set up yet, ACCEPT_BATCH per pass.
        self._incoming: deque[int] = deque()
        self._accept_timer = QTimer(self)
        self._accept_timer.setSingleShot(True)
        self._accept_timer.setInterval(0)
        self._accept_timer.timeout.connect(self._take_incoming)
        #: peer id -> when it was last heard from, not yet written to the store
        self.seen: dict[int, float] = {}
        self._touch_timer = QTimer(self)
        self._touch_timer.setInterval(int(TOUCH_INTERVAL * 1000))
        self._touch_timer.timeout.connect(self.flush_last_seen)
        self._touch_timer.start()
        # When requests pile up, a connection that asks now and then goes before those
        # that ask non-stop (see turns.py); each is answered, none is refused.
        self.turns: TurnQueue[PeerSession] = TurnQueue()
        self._turn_timer = QTimer(self)
        self._turn_timer.setSingleShot(True)
        self._turn_timer.setInterval(0)
        self._turn_timer.timeout.connect(self._next_turns)
        # Connections waiting for their turn get a heartbeat if they asked for it.
        self._heartbeat_timer = QTimer(self)
        self._heartbeat_timer.setInterval(max(1, round(self.limits.heartbeat * 1000)))
        self._heartbeat_timer.timeout.connect(self._send_heartbeats)
        self._upkeep_timer = QTimer(self)
        self._upkeep_timer.setInterval(UPKEEP_INTERVAL_MS)
        self._upkeep_timer.timeout.connect(self._upkeep)
        #: Connect-backs to joined peers' listen ports (the answer goes to the peer and
        #: into results as ``reachable``).
        self.reachability = ReachabilityChecker(parent=self)
        self.reachability.checked.connect(self._on_reachability_checked)
        #: Push requests other servers of a shared index pass to this server's peers.
        self._forwarded_timer = QTimer(self)
        self._forwarded_timer.setInterval(FORWARDED_PUSH_MS)
        self._forwarded_timer.timeout.connect(self._deliver_forwarded_pushes)
        if store.shared:
            self._forwarded_timer.start()

    def start(self, host: str = "0.0.0.0", port: int = p.DEFAULT_SERVER_PORT) -> int:
        """Listen on host:port (0 picks a free port); return the port. Raises ServerStartError."""
        address = QHostAddress(host)
        if address.isNull():
            raise ServerStartError(f"{host!r} is not an IP address this computer can listen on")
        if not self.listen(address, port):
            if self.serverError() == QAbstractSocket.SocketError.AddressInUseError:
                reason = "the port is already in use (another server running? try --port)"
            else:
                reason = self.errorString()
            raise ServerStartError(f"cannot listen on {host}:{port}: {reason}")
        self._touch_timer.start()
        self._heartbeat_timer.start()
        if self.store.shared:
            self._forwarded_timer.start()
        self.schedule_upkeep()
        log.info("Index server listening on %s:%d", host, self.serverPort())
        return self.serverPort()

    def stop(self) -> None:
        """Stop listening and close every connection (peers leave the index)."""
        self.close()
        self._accept_timer.stop()
        while self._incoming:
            os.close(self._incoming.popleft())
        self._forget_dropped(everyone=True)
        for session in list(self.sessions):
            session.close(flush=False)
        # No timer may outlive stop(): a stopped server can then be freed on any thread.
        # (The store's upkeep goes on when the server starts again.)
        self.turns.clear()
        self._turn_timer.stop()
        self._heartbeat_timer.stop()
        self._upkeep_timer.stop()
        self._drop_timer.stop()
        self._touch_timer.stop()
        self._forwarded_timer.stop()
        if self.relay is not None:
            self.relay.stop()
        self._reaper.stop()
        self._closed_sessions.clear()

    # ------------------------------------------------------------ turns

    def request_turn(self, session: PeerSession) -> bool:
        """True when ``session`` may go on now; else it is queued and take_turn() follows.

        See ``TurnQueue.request``: a connection that asks now and then goes ahead of
        those that ask non-stop.
        """
        if not self._turn_timer.isActive():
            self._turn_timer.start()  # the next pass starts a new budget
        return self.turns.request(session, session.clock, time.monotonic())

    def spend(self, seconds: float) -> None:
        """``seconds`` of request work were done in this pass."""
        self.turns.spend(seconds)

    def _next_turns(self) -> None:
        turns = self.turns
        turns.start_pass()
        while turns.waiting and turns.budget_left:
            session = turns.pop(time.monotonic())
            if session is None:
                break
            if session not in self.sessions:
                continue
            session.clock.turn_pass = turns.pass_number
            session.take_turn()
        if turns.waiting or turns.spent:
            self._turn_timer.start()

    def _send_heartbeats(self) -> None:
        """An unasked PONG to each connection that asked for heartbeats and whose requests
        wait for their turn now (a request read and not answered always waits there
        between two passes of the loop), or that was sent nothing for ``idle_heartbeat``
        seconds: its peer sees the server is alive, busy or idle.

        Idle, one such line costs the server far less than the peer's PING would (no
        request to read, queue and answer), so the peer PINGs only for the idle deadline.
        """
        waiting = set(self.turns.waiting_owners())
        quiet = time.monotonic() - self.limits.idle_heartbeat
        for session in list(self.sessions):  # a send may close one
            if not session.heartbeat or session.closing:
                continue
            if session in waiting or session.last_sent <= quiet:
                session.send_line(HEARTBEAT_LINE)

    # ------------------------------------------------------------ what sessions report

    def claim_port(self, session: PeerSession, port: int) -> bool:
        """Let ``session`` list files at ``port`` of its IP, unless another connection does."""
        key = (session.ip, port)
        holder = self._ports.get(key)
        if holder is not None and holder is not session and not holder.closing:
            if not holder.connection.peer_gone():
                return False
            # The same peer back on a new connection before we saw its old one close.
            holder.close(flush=False)
        self.release_port(session)
        self._ports[key] = session
        self._port_of[session] = port
        return True

    def release_port(self, session: PeerSession) -> None:
        port = self._port_of.pop(session, None)
        if port is not None and self._ports.get((session.ip, port)) is session:
            del self._ports[(session.ip, port)]

    # ------------------------------------------------------------ reachability and push

    def _on_reachability_checked(self, peer_id: int, host: str, port: int, ok: bool) -> None:
        session = self.session_for(peer_id)
        if session is None or session.closing or session.entry.port != port:
            return  # gone, or joined again at another port (checked again then)
        try:
            self.store.set_reachable(peer_id, ok)
        except IndexUnavailable:
            log.warning("Could not record whether %s is reachable: index unavailable", host)
        log.info("Peer %s:%d is %sreachable from outside", host, port, "" if ok else "NOT ")
        session.send(p.Reachability(reachable=ok))

    def relay_push(self, session: PeerSession, message: p.Push) -> p.Message:
        """Pass a downloader's push request to the holder at message.host:port: on this
        server directly, through the shared index to another server, or NOT_FOUND.

        The holder is told to connect to the asker's own IP and joined port, never to an
        address the asker names: a push cannot aim a holder at a third party."""
        assert session.entry.port is not None  # only joined sessions get here
        request = p.PushRequest(host=session.ip, port=session.entry.port, token=message.token)
        target = self._ports.get((normalize_address(message.host), message.port))
        if target is not None and target is not session and target.peer_id is not None:
            if target.fingerprint is None:  # a peer that announced no identity cannot prove it
                raise p.ProtocolError(
                    p.ErrorCode.NOT_FOUND,
                    f"the peer at {message.host}:{message.port} cannot be pushed (no fingerprint)",
                    message.id,
                )
            target.send(request)
            log.info("Push: %s asks %s to connect out to it", session.peer_label, target.peer_label)
            return p.PushOk(id=message.id)
        if self.store.forward_push(message.host, message.port, request.body()):
            log.info("Push: %s's request passed to another server", session.peer_label)
            return p.PushOk(id=message.id)
        raise p.ProtocolError(
            p.ErrorCode.NOT_FOUND,
            f"no peer at {message.host}:{message.port} is online",
            message.id,
        )

    def _deliver_forwarded_pushes(self) -> None:
        try:
            forwarded = self.store.take_forwarded()
        except IndexUnavailable:
            return
        for peer_id, body in forwarded:
            session = self.session_for(peer_id)
            if session is None or session.closing:
                continue
            try:
                if body.get("op") == p.RelayRequest.OP:
                    request: p.Message = p.RelayRequest.parse(body)
                else:
                    request = p.PushRequest.parse(body)
            except p.ProtocolError:
                log.warning("Ignoring a malformed push request from another server")
                continue
            session.send(request)

    # ------------------------------------------------------------ relay

    @property
    def relay_settings(self) -> RelaySettings:
        return self.relay.settings if self.relay is not None else RelaySettings()

    def configure_relay(self, settings: RelaySettings) -> int:
        """Switch the relay on or off and set its limits; the relay port (0 when off).

        Raises OSError when the relay port cannot be listened on (the relay stays off).
        Switching it off ends the relays running."""
        relay = self.relay
        if relay is None:
            relay = self.relay = Relay(settings)
        elif relay.listening and (
            not settings.enabled
            or (settings.host, settings.port) != (relay.settings.host, relay.settings.port)
        ):
            relay.stop()
            log.info("Relay stopped")
        relay.configure(settings)
        try:
            if settings.enabled and not relay.listening:
                relay.start()
                log.info("Relaying on %s:%d", settings.host or "0.0.0.0", relay.port)
        finally:
            self.relay_changed.emit()
        return relay.port

    def relay_transfer(self, session: PeerSession, message: p.Relay) -> p.Message:
        """A downloader and the holder at message.host:port cannot reach each other: have
        both connect to the relay (RELAY_OK to the asker, RELAY_REQUEST to the holder, here
        or through the shared index), or refuse with a clear ERROR."""
        assert session.entry.port is not None  # only joined sessions get here
        relay = self.relay
        if relay is None or not relay.settings.enabled or not relay.listening:
            raise p.ProtocolError(p.ErrorCode.NOT_FOUND, OFF_MESSAGE, message.id)
        holder_ip = normalize_address(message.host)
        target = self._ports.get((holder_ip, message.port))
        if target is session or (target is not None and target.peer_id is None):
            target = None
        if target is None and not self.store.shared:
            raise p.ProtocolError(
                p.ErrorCode.NOT_FOUND,
                f"no peer at {message.host}:{message.port} is online",
                message.id,
            )
        if target is not None and target.fingerprint is None:
            raise p.ProtocolError(
                p.ErrorCode.NOT_FOUND,
                f"the peer at {message.host}:{message.port} cannot be relayed to (no fingerprint)",
                message.id,
            )
        # Each peer is told the relay's address as it reached this server (another address
        # family or network than the asker's, perhaps); forwarded, only an advertised one.
        relay_host = relay.settings.advertise_host or _local_host(session)
        holder_host = relay.settings.advertise_host or (
            _local_host(target) if target is not None else relay_host
        )
        request = p.RelayRequest(relay_host=holder_host, relay_port=relay.port, token=message.token)
        downloader = f"{session.ip}:{session.entry.port}"
        try:
            relay.expect(message.token, downloader, f"{holder_ip}:{message.port}")
        except RelayRefused as refused:
            raise p.ProtocolError(
                refused.code, refused.message, message.id, retry_after=refused.retry_after
            ) from None
        try:
            if target is not None:
                target.send(request)
            elif not self.store.forward_push(message.host, message.port, request.to_json()):
                raise p.ProtocolError(
                    p.ErrorCode.NOT_FOUND,
                    f"no peer at {message.host}:{message.port} is online",
                    message.id,
                )
        except BaseException:
            relay.withdraw(message.token)  # the slot is not held by a relay that cannot be
            raise
        log.info("Relay: %s and %s:%d meet at the relay", downloader, holder_ip, message.port)
        return p.RelayOk(id=message.id, relay_host=relay_host, relay_port=relay.port)

    def note_joined(self, session: PeerSession, files: int) -> None:
        assert session.peer_id is not None
        self.peer_joined.emit(session.peer_id, session.peer_label, files)
        if session.fingerprint is not None and session.entry.port is not None:
            # Only a version-2 peer (it announced a fingerprint) can be checked, and is told.
            self.reachability.check(
                session.peer_id, session.ip, session.entry.port, session.fingerprint
            )

    def note_updated(self, session: PeerSession, files: int) -> None:
        assert session.peer_id is not None
        self.peer_updated.emit(session.peer_id, files)

    def note_left(self, session: PeerSession, peer_id: int) -> None:
        self.seen.pop(peer_id, None)
        self.schedule_upkeep()
        self.peer_left.emit(peer_id, session.peer_label)

    def note_answered(self, session: PeerSession, op: str, seconds: float) -> None:
        if session.peer_id is not None:
            self.seen[session.peer_id] = session.last_seen
        self.schedule_upkeep()
        self.request_handled.emit(op, seconds * 1000.0)

    def note_protocol_error(self, session: PeerSession, error: p.ProtocolError) -> None:
        log.warning(
            "Protocol error from %s: %s %s",
            session.peer_label,
            error.code.value,
            p.printable(error.message),
        )
        self.protocol_error.emit(session.peer_label, error.code.value, error.message)

    def note_dropped(self, session: PeerSession) -> None:
        """``session``'s peer dropped the connection: forget it soon (see _forget_dropped)."""
        self._dropped.append(session)
        if not self._drop_timer.isActive():
            self._drop_timer.start()

    def _forget_dropped(self, everyone: bool = False) -> None:
        deadline = time.perf_counter() + DROP_SLICE
        while self._dropped and (everyone or time.perf_counter() < deadline):
            self._dropped.popleft().forget_dropped()
        if self._dropped:
            self._drop_timer.start()

    def schedule_upkeep(self) -> None:
        """Let the store catch up on its upkeep between requests (see IndexStore.upkeep)."""
        if self.store.upkeep_due and not self._upkeep_timer.isActive():
            self._upkeep_timer.start()

    def _upkeep(self) -> None:
        try:
            if not self.store.upkeep(UPKEEP_SLICE):
                self._upkeep_timer.stop()
        except IndexUnavailable:
            self._upkeep_timer.stop()  # due again with the next change

    def flush_last_seen(self) -> None:
        """Write the pending last_seen times to the store in one transaction."""
        seen, self.seen = self.seen, {}
        try:
            self.store.touch_many(seen)
        except IndexUnavailable:
            self.seen = {**seen, **self.seen}  # written with the next flush

    def online_peers(self) -> int:
        """How many connections have joined (and not left)."""
        return sum(1 for session in self.sessions if session.peer_id is not None)

    def session_for(self, peer_id: int) -> PeerSession | None:
        return next((s for s in self.sessions if s.peer_id == peer_id), None)

    # ------------------------------------------------------------ bans

    def kick(self, peer_id: int, ban_seconds: float = KICK_BAN_SECONDS) -> bool:
        """Close a peer's connection and refuse its address for ``ban_seconds``."""
        session = self.session_for(peer_id)
        if session is None:
            return False
        log.info(
            "Kicked peer %s; its address is refused for %.0f s", session.peer_label, ban_seconds
        )
        session.close(flush=False)
        try:
            banned_for_good = self.store.is_banned(session.ip)
        except IndexUnavailable:
            banned_for_good = False  # the kick's own ban holds either way
        if ban_seconds > 0 and not banned_for_good:
            now = self.now()
            self._temporary_bans[session.ip] = Ban(session.ip, KICK_REASON, now, now + ban_seconds)
            self.bans_changed.emit()
        return True

    def ban(self, address: str, reason: str = "") -> tuple[str, int]:
        """Ban an IP address for good (kept in the database) and close its connections.

        Returns the address as stored and how many connections were closed; raises
        ValueError for text that is not an IP address.
        """
        ip = normalize_address(address)
        ipaddress.ip_address(ip)  # ValueError for anything else
        self.store.ban(ip, reason)
        self._temporary_bans.pop(ip, None)
        closed = 0
        for session in list(self.sessions):
            if session.ip == ip and not session.closing:
                session.close(flush=False)
                closed += 1
        connections = {0: "no connection was open", 1: "closed its connection"}.get(
            closed, f"closed its {closed} connections"
        )
        log.info("Banned %s; %s", ip, connections)
        self.bans_changed.emit()
        return ip, closed

    def unban(self, address: str) -> None:
        """Lift a ban, for good or temporary."""
        ip = normalize_address(address)
        self.store.unban(ip)
        self._temporary_bans.pop(ip, None)
        log.info("Unbanned %s", ip)
        self.bans_changed.emit()

    def _expire_bans(self) -> None:
        now = self.now()
        expired = [
            ip
            for ip, ban in self._temporary_bans.items()
            if ban.expires_at is not None and ban.expires_at <= now
        ]
        for ip in expired:
            del self._temporary_bans[ip]
        if expired:
            self.bans_changed.emit()

    def bans(self) -> list[Ban]:
        """Every ban in force: those in the database, then the temporary ones."""
        self._expire_bans()
        kept = [Ban(address, reason, at) for address, reason, at in self.store.bans()]
        return kept + sorted(self._temporary_bans.values(), key=lambda ban: ban.banned_at)

    def is_banned(self, ip: str) -> bool:
        ip = normalize_address(ip)
        if ip in self._temporary_bans:
            self._expire_bans()
        if ip in self._temporary_bans:
            return True
        try:
            return self.store.is_banned(ip)
        except IndexUnavailable:
            return False  # its requests will be refused until the database is back

    # ------------------------------------------------------------ connections

    @property
    def fingerprint(self) -> str:
        """The SHA-256 of this server's certificate: peers pin it; publish it beside the
        server's address."""
        return self.identity.fingerprint

    def _refuse(self, sock: socket.socket, ip: str, reason: str) -> None:
        """Tell the client why (an ERROR LIMIT once its TLS handshake is done; a version-1
        client gets the version refusal) and close."""
        log.warning("Refused connection from %s: %s", ip, reason)
        try:
            connection = Connection(sock, READ_CHUNK, self._tls, VERSION_1_REFUSAL)
        except OSError:
            sock.close()
            return
        self._refusing.add(connection)
        connection.disconnected.connect(lambda: self._refusing.discard(connection))
        connection.write(p.encode(p.Error(code=p.ErrorCode.LIMIT, message=reason)))
        connection.close()
        QTimer.singleShot(int(FLUSH_SECONDS * 1000), connection, connection.abort)
        self.connection_refused.emit(ip, reason)

    def incomingConnection(self, handle: int) -> None:
        self._incoming.append(handle)
        if not self._accept_timer.isActive():
            self._accept_timer.start()

    def _take_incoming(self) -> None:
        for _ in range(min(ACCEPT_BATCH, len(self._incoming))):
            self._set_up(self._incoming.popleft())
        if self._incoming:
            self._accept_timer.start()

    def _set_up(self, handle: int) -> None:
        try:
            sock = socket.socket(fileno=handle)
            ip = normalize_address(sock.getpeername()[0])
        except OSError as exc:  # gone before we looked
            log.debug("Could not take an incoming connection: %s", exc)
            return
        if self.is_banned(ip):
            self._refuse(sock, ip, "this address is banned from the index")
            return
        if self._sessions_per_ip[ip] >= self.limits.max_connections_per_ip:
            self._refuse(
                sock,
                ip,
                f"too many connections from {ip} "
                f"(the limit is {self.limits.max_connections_per_ip})",
            )
            return
        try:
            connection = Connection(sock, READ_BUFFER, self._tls, VERSION_1_REFUSAL)
        except OSError:
            sock.close()
            return
        session = PeerSession(self, connection)
        session.closed.connect(self._on_session_closed)
        self.sessions.add(session)
        self._sessions_per_ip[ip] += 1

    def _on_session_closed(self, session: PeerSession) -> None:
        if session in self.sessions:
            self.sessions.discard(session)
            self._sessions_per_ip[session.ip] -= 1
            if self._sessions_per_ip[session.ip] <= 0:
                del self._sessions_per_ip[session.ip]
        self._closed_sessions.append(session)
        self._reaper.start()

    def _reap_sessions(self) -> None:
        self._closed_sessions.clear()


def _local_host(session: PeerSession) -> str:
    """The address this server has on the asking peer's connection (what it reached)."""
    host = session.connection.local_host
    return normalize_address(host) if host else "127.0.0.1"
