"""The index server: a QTcpServer with one PeerSession per control connection.

It speaks PROTOCOL.md's control conversation, enforces its limits, keeps the
index in an ``IndexStore`` and reports what happens through typed signals (for
the admin window) and the ``napster.server`` logger.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import time
from collections import Counter, deque
from collections.abc import Generator
from dataclasses import dataclass

from PySide6.QtCore import QObject, QTimer, Signal
from PySide6.QtNetwork import QAbstractSocket, QHostAddress, QTcpServer, QTcpSocket

from app.network import protocol as p
from server_app.index_store import IndexLimitError, IndexStore, normalize_address

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
#: Bytes Qt may hold for a connection we are not reading (its request waits for its turn).
READ_BUFFER = 1024 * 1024
#: Seconds of JOIN, UPDATE and SEARCH work one pass of the event loop may do; the rest
#: wait for the next pass, so timers, other connections and the admin window keep up.
TURN_BUDGET = 0.010
#: A connection quiet for longer than this (seconds) counts as newly busy when it asks again.
QUIET_GAP = 0.25
#: A request counts as made later by BUSY_WEIGHT times how long its connection has been
#: busy, at most BUSY_CAP seconds later. (Among connections busy since the same moment
#: the order stays first come, first served.)
BUSY_WEIGHT = 10.0
BUSY_CAP = 10.0
#: Index upkeep (deleting departed peers' rows, merging the name index) runs in slices
#: of this many seconds, one every UPKEEP_INTERVAL_MS while some is due.
UPKEEP_SLICE = 0.005
UPKEEP_INTERVAL_MS = 20
#: Seconds one pass may spend forgetting connections the peers dropped.
DROP_SLICE = 0.010
#: Requests that use the index wait for their turn (see IndexServer.request_turn).
INDEX_OPS = (p.Join, p.Search, p.Update)
#: A JOIN or UPDATE listing more files than this goes into the index this many at a
#: time, one turn each (a 10,000-file JOIN is about a tenth of a second of work).
STEP_FILES = 1000


@dataclass(frozen=True)
class ServerLimits:
    """The server settings of PROTOCOL.md's limits table (seconds and counts)."""

    join_timeout: float = 10.0
    idle_timeout: float = 90.0
    #: A started line must finish within this (a big one: grow by MIN_LINE_PROGRESS per period).
    request_timeout: float = 10.0
    max_connections_per_ip: int = 32
    max_files_per_peer: int = 200_000


class ServerStartError(Exception):
    """The server could not listen; the message says why in one line."""


def describe_files(files: tuple[p.FileInfo, ...]) -> str:
    names = [p.printable(f.name) for f in files[:LOGGED_NAMES]]
    text = " ".join(names) if names else "(no files)"
    if len(files) > LOGGED_NAMES:
        text += f" and {len(files) - LOGGED_NAMES} more"
    return text


def _single_shot_timer(parent: QObject) -> QTimer:
    timer = QTimer(parent)
    timer.setSingleShot(True)
    return timer


class PeerSession(QObject):
    """One control connection: reads requests, answers them, enforces deadlines."""

    closed = Signal(object)  # self

    def __init__(self, server: IndexServer, socket: QTcpSocket) -> None:
        # Sessions and their sockets are owned by Python (no Qt parent): the server
        # drops a closed session from a zero-delay timer, outside its signal handlers.
        super().__init__()
        self.server = server
        self.socket = socket
        socket.setParent(None)
        self.ip = normalize_address(socket.peerAddress().toString())
        self.remote = f"{self.ip}:{socket.peerPort()}"
        self.peer_id: int | None = None
        self.peer_label = self.remote
        self.agent = ""
        self.connected_at = time.time()
        self.last_seen = self.connected_at
        self._reader = p.LineReader(p.SERVER_BULK_OPS)
        self._closing = False
        self._finished = False
        #: Requests read but not answered yet, in order; one that uses the index waits
        #: at the head for its turn.
        self._held: deque[p.Message | p.ProtocolError] = deque()
        self._turn_granted = False
        #: A JOIN or UPDATE under way a step per turn (see STEP_FILES), and its request.
        self._job: Generator[None, None, None] | None = None
        self._job_message: p.Message | None = None
        self._job_seconds = 0.0
        #: In the server's turn queue: take_turn() will carry on reading or answering.
        self.waiting_turn = False
        #: The event-loop pass in which this connection last had a turn.
        self.turn_pass = -1
        #: How long this connection has had requests for us without a quiet spell: the
        #: seconds before ``busy_started``, plus the time since (while ``quiet_since`` is
        #: None). Short pauses (QUIET_GAP), like the round trip between a reply and the
        #: next request, neither count nor end a busy spell.
        self.busy_before = 0.0
        self.busy_started = 0.0
        self.quiet_since: float | None = float("-inf")
        socket.setReadBufferSize(READ_BUFFER)

        self._join_timer = _single_shot_timer(self)
        self._join_timer.timeout.connect(self._on_join_timeout)
        self._join_timer.start(int(server.limits.join_timeout * 1000))
        self._idle_timer = _single_shot_timer(self)
        self._idle_timer.timeout.connect(self._on_idle_timeout)
        self._idle_timer.start(int(server.limits.idle_timeout * 1000))
        # A client trickling a line byte by byte keeps the idle timer happy, not this one.
        self._line_timer = _single_shot_timer(self)
        self._line_timer.setInterval(int(server.limits.request_timeout * 1000))
        self._line_timer.timeout.connect(self._on_line_timeout)
        self._line_mark = 0
        self._line_started = False  # a line deadline runs for the unfinished line
        # Gives a closing connection a few seconds to flush its last replies.
        self._abort_timer = _single_shot_timer(self)
        self._abort_timer.timeout.connect(self._abort_socket)

        socket.readyRead.connect(self._on_ready_read)
        socket.disconnected.connect(self._on_disconnected)
        if log.isEnabledFor(logging.DEBUG):  # one Python call less per drop otherwise
            socket.errorOccurred.connect(self._on_socket_error)

    # ------------------------------------------------------------ I/O

    def send(self, message: p.Message) -> None:
        self.send_line(p.encode(message))

    def send_line(self, line: bytes) -> None:
        if self._closing:
            return
        self.socket.write(line)
        if self.socket.bytesToWrite() > MAX_PENDING_WRITE:
            log.warning("Dropping %s: it does not read its replies", self.peer_label)
            self.close(flush=False)

    def close(self, flush: bool = True) -> None:
        """Close the connection; the peer leaves the index at once."""
        if self._closing:
            return
        self._closing = True
        self._held.clear()
        self._join_timer.stop()
        self._idle_timer.stop()
        self._line_timer.stop()
        self._forget_peer()
        if flush and self.socket.state() == QAbstractSocket.SocketState.ConnectedState:
            self.socket.disconnectFromHost()
            if self.socket.state() != QAbstractSocket.SocketState.UnconnectedState:
                # disconnected() will finish the job once the replies are flushed.
                self._abort_timer.start(5000)
                return
        else:
            self.socket.abort()
        self._finish()

    def _abort_socket(self) -> None:
        self.socket.abort()

    def _finish(self) -> None:
        if self._finished or self.socket.state() != QAbstractSocket.SocketState.UnconnectedState:
            return
        self._finished = True
        self._abort_timer.stop()
        self.closed.emit(self)

    def _on_disconnected(self) -> None:
        if self._closing:
            self._finish()
            return
        # The peer dropped: when thousands drop at once, the server forgets them in
        # slices (see IndexServer.forget_dropped) rather than in one long pass.
        self._closing = True
        self.server.note_dropped(self)

    def forget_dropped(self) -> None:
        """Finish a connection the peer dropped: it leaves the index."""
        self._held.clear()
        self._join_timer.stop()
        self._idle_timer.stop()
        self._line_timer.stop()
        self._forget_peer()
        self._finish()

    def _on_socket_error(self, error: QAbstractSocket.SocketError) -> None:
        if error != QAbstractSocket.SocketError.RemoteHostClosedError:
            log.debug("Socket error from %s: %s", self.peer_label, self.socket.errorString())

    def _on_join_timeout(self) -> None:
        # A busy loop may run this timer before a JOIN that has already arrived.
        self._on_ready_read()
        if self._owes_answers and not self._closing:  # its JOIN waits for its turn
            self._join_timer.start()
            return
        if self.peer_id is None and not self._closing:
            log.info(
                "Closing %s: no JOIN within %.0f s", self.remote, self.server.limits.join_timeout
            )
            self.close()

    def _on_idle_timeout(self) -> None:
        if self._closing:
            return
        if self._owes_answers:  # the client is waiting for us, not the other way round
            self._idle_timer.start()
            return
        log.info("Closing %s: idle for %.0f s", self.peer_label, self.server.limits.idle_timeout)
        self.close()

    def _on_line_timeout(self) -> None:
        self._on_ready_read()  # bytes that already arrived count
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
            self.server.limits.request_timeout,
        )
        self.close()

    @property
    def _owes_answers(self) -> bool:
        """Requests of this connection wait for the server (held, under way or queued)."""
        return bool(self._held) or self._job is not None or self.waiting_turn

    def _on_ready_read(self) -> None:
        """Bytes arrived (or a deadline wants them counted): read them when the server lets."""
        if self._closing or self._owes_answers or self.socket.bytesAvailable() <= 0:
            return  # nothing to read, or take_turn() / a held request's answer reads on
        if not self.server.request_turn(self):
            self.waiting_turn = True
            return
        self._turn_granted = True  # the turn covers reading and the first index request
        self._read()
        self._turn_granted = False

    def _read(self) -> None:
        completed = False
        while not self._closing and not self._owes_answers and self.socket.bytesAvailable() > 0:
            data = bytes(self.socket.read(READ_CHUNK).data())
            if not data:
                break
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
                self.server.spent += time.perf_counter() - started  # parsing counts too
            completed = completed or bool(messages)
            self._held.extend(messages)
            self._answer_held()
        if self._closing:
            return
        if not self._owes_answers and self.quiet_since is None:
            now = time.monotonic()  # everything asked so far is answered
            self.busy_before += now - self.busy_started
            self.quiet_since = now
        if not self._reader.buffered:
            self._line_timer.stop()
            self._line_started = False
        elif completed or not self._line_started:
            self._line_started = True
            self._line_mark = self._reader.buffered
            self._line_timer.start()

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
        if self.server.request_turn(self):
            return True
        self.waiting_turn = True
        return False

    def take_turn(self) -> None:
        """The server's scheduler says this connection may go on: answer, then read."""
        self.waiting_turn = False
        if self._closing:
            return
        self._turn_granted = True
        self._answer_held()
        if not self._owes_answers:
            self._read()
        self._turn_granted = False

    def _fail(self, error: p.ProtocolError) -> None:
        if self._closing:
            return
        self.server.note_protocol_error(self, error)
        self.send(error.to_message())
        if error.closes_connection:
            self.close()

    def _dispatch(self, message: p.Message) -> None:
        if self._closing:
            return
        started = time.perf_counter()
        handler = self._HANDLERS.get(type(message))
        try:
            if handler is None:
                raise p.ProtocolError(
                    p.ErrorCode.BAD_REQUEST,
                    f"{message.OP} is not a request the index server answers",
                    message.id,
                )
            if self.peer_id is None and not isinstance(message, p.Join | p.Ping | p.Leave):
                raise p.ProtocolError(
                    p.ErrorCode.NOT_JOINED, f"send JOIN before {message.OP}", message.id
                )
            outcome = handler(self, message)
        except p.ProtocolError as exc:
            self._fail(exc)
            return
        finally:
            took = time.perf_counter() - started
            self.server.spent += took
        if outcome is not None:  # a big JOIN or UPDATE: its steps follow, one per turn
            self._job, self._job_message, self._job_seconds = outcome, message, took
            self._step_job()
            return
        self._answered(message, took)

    def _step_job(self) -> None:
        assert self._job is not None
        started = time.perf_counter()
        try:
            next(self._job)
            done = False
        except StopIteration:
            done = True
        except p.ProtocolError as exc:
            self._job = self._job_message = None
            self._fail(exc)
            return
        finally:
            took = time.perf_counter() - started
            self.server.spent += took
            self._job_seconds += took
        if done:
            message, self._job, self._job_message = self._job_message, None, None
            if message is not None:  # (None: the connection closed during the step)
                self._answered(message, self._job_seconds)
        else:
            self.server.schedule_upkeep()

    def _answered(self, message: p.Message, took: float) -> None:
        self.last_seen = time.time()
        if self.peer_id is not None:
            self.server.seen[self.peer_id] = self.last_seen
        self.server.schedule_upkeep()
        self.server.request_handled.emit(message.OP, took * 1000.0)

    def _on_join(self, message: p.Join) -> Generator[None, None, None] | None:
        store = self.server.store
        address = f"{self.ip}:{message.port}"
        if self.peer_id is None or address != self.peer_label:
            self._forget_peer()
            return self._join_in_steps(message, address)
        try:
            total = store.replace_files(self.peer_id, message.files)
        except IndexLimitError as exc:
            raise p.ProtocolError(exc.code, str(exc), message.id) from None
        self._joined(message, address, total)
        return None

    def _join_in_steps(self, message: p.Join, address: str) -> Generator[None, None, None]:
        store = self.server.store
        files = message.files
        try:
            store.check_file_count(files, self.ip)
            self.peer_id = store.add_peer(self.ip, message.port, message.agent, files[:STEP_FILES])
            for start in range(STEP_FILES, len(files), STEP_FILES):
                yield
                store.update_files(self.peer_id, files[start : start + STEP_FILES], ())
        except IndexLimitError as exc:
            raise p.ProtocolError(exc.code, str(exc), message.id) from None
        self._joined(message, address, store.file_count(self.peer_id))

    def _joined(self, message: p.Join, address: str, total: int) -> None:
        self._join_timer.stop()
        self.peer_label = address
        self.agent = message.agent
        self.send(p.JoinOk(id=message.id, peer=address, files=total))
        log.info("Peer %s joined with files %s", address, describe_files(message.files))
        self.server.peer_joined.emit(self.peer_id, address, total)

    def _on_search(self, message: p.Search) -> None:
        page = self.server.store.search_page(message.query, message.limit, self.peer_id)
        # Results past the 64 KiB line limit are left out (and "more" is sent).
        self.send_line(p.encode_search_ok(message.id, page.results, more=page.more)[0])
        log.info("Peer %s searched for %s", self.peer_label, p.printable(message.query))

    def _on_update(self, message: p.Update) -> Generator[None, None, None] | None:
        assert self.peer_id is not None
        store = self.server.store
        add = message.add
        # In steps only when no step can break the files-per-peer limit (else one
        # transaction, so a refused UPDATE changes nothing).
        if len(add) > STEP_FILES and (
            store.file_count(self.peer_id) + len(add) <= store.max_files_per_peer
        ):
            return self._update_in_steps(message)
        try:
            total = store.update_files(self.peer_id, add, message.remove)
        except IndexLimitError as exc:
            raise p.ProtocolError(exc.code, str(exc), message.id) from None
        self._updated(message, total)
        return None

    def _update_in_steps(self, message: p.Update) -> Generator[None, None, None]:
        store = self.server.store
        assert self.peer_id is not None
        total = store.update_files(self.peer_id, message.add[:STEP_FILES], message.remove)
        for start in range(STEP_FILES, len(message.add), STEP_FILES):
            yield
            total = store.update_files(self.peer_id, message.add[start : start + STEP_FILES], ())
        self._updated(message, total)

    def _updated(self, message: p.Update, total: int) -> None:
        self.send(p.UpdateOk(id=message.id, files=total))
        log.info(
            "Peer %s updated: %d added, %d removed, %d files",
            self.peer_label,
            len(message.add),
            len(message.remove),
            total,
        )
        assert self.peer_id is not None
        self.server.peer_updated.emit(self.peer_id, total)

    def _on_ping(self, message: p.Ping) -> None:
        self.send(p.Pong(id=message.id))

    def _on_leave(self, message: p.Leave) -> None:
        self.send(p.LeaveOk(id=message.id))
        log.info("Peer %s left", self.peer_label)
        self.close()

    _HANDLERS = {
        p.Join: _on_join,
        p.Search: _on_search,
        p.Update: _on_update,
        p.Ping: _on_ping,
        p.Leave: _on_leave,
    }

    def _forget_peer(self) -> None:
        if self.peer_id is None:
            return
        peer_id, self.peer_id = self.peer_id, None
        self._job = self._job_message = None
        self.server.seen.pop(peer_id, None)
        self.server.store.remove_peer(peer_id)
        self.server.schedule_upkeep()
        self.server.peer_left.emit(peer_id, self.peer_label)


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

    def __init__(
        self, store: IndexStore, limits: ServerLimits | None = None, parent: QObject | None = None
    ) -> None:
        super().__init__(parent)
        self.store = store
        self.limits = limits or ServerLimits()
        store.max_files_per_peer = self.limits.max_files_per_peer
        self.sessions: set[PeerSession] = set()
        #: open sessions per IP address (counted, not scanned, for each new connection)
        self._sessions_per_ip: Counter[str] = Counter()
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
        #: peer id -> when it was last heard from, not yet written to the store
        self.seen: dict[int, float] = {}
        self._touch_timer = QTimer(self)
        self._touch_timer.setInterval(int(TOUCH_INTERVAL * 1000))
        self._touch_timer.timeout.connect(self.flush_last_seen)
        self._touch_timer.start()
        # When requests pile up, a connection that asks now and then goes before those
        # that ask non-stop (see request_turn); each is answered, none is refused.
        #: The queue (see request_turn), as two heaps over the same entries: by the
        #: priority while a connection's busy time still counts, and by its cap. An entry
        #: is a one-item list holding the session, emptied (None) once it is served.
        self._by_busy: list[tuple[float, int, list[PeerSession | None]]] = []
        self._by_cap: list[tuple[float, int, list[PeerSession | None]]] = []
        self.waiting = 0
        self._wait_order = itertools.count()
        #: Seconds of request work done in this pass of the event loop, and its number.
        self.spent = 0.0
        self._pass = 0
        self._turn_timer = QTimer(self)
        self._turn_timer.setSingleShot(True)
        self._turn_timer.setInterval(0)
        self._turn_timer.timeout.connect(self._next_turns)
        self._upkeep_timer = QTimer(self)
        self._upkeep_timer.setInterval(UPKEEP_INTERVAL_MS)
        self._upkeep_timer.timeout.connect(self._upkeep)
        self.newConnection.connect(self._on_new_connection)

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
        self.schedule_upkeep()
        log.info("Index server listening on %s:%d", host, self.serverPort())
        return self.serverPort()

    def stop(self) -> None:
        """Stop listening and close every connection (peers leave the index)."""
        self.close()
        self._forget_dropped(everyone=True)
        for session in list(self.sessions):
            session.close(flush=False)
        # No timer may outlive stop(): a stopped server can then be freed on any thread.
        # (The store's upkeep goes on when the server starts again.)
        self._by_busy.clear()
        self._by_cap.clear()
        self.waiting = 0
        self._turn_timer.stop()
        self._upkeep_timer.stop()
        self._drop_timer.stop()
        self._touch_timer.stop()
        self._reaper.stop()
        self._closed_sessions.clear()

    def request_turn(self, session: PeerSession) -> bool:
        """True when ``session`` may go on now; else it is queued and take_turn() follows.

        A connection goes on at once if nobody waits, this pass of the event loop has
        done less than TURN_BUDGET of request work and the connection has not had its
        turn in this pass (so one that pipelines requests cannot take it all).

        The queue is first come, first served, except that a request counts as made
        later the longer its connection has been busy without a quiet spell, waiting
        included (see BUSY_WEIGHT): one that asks now and then goes ahead of those that
        ask non-stop, which keep their order among themselves, even in the first round
        of a flood, when none of them has been answered yet.
        """
        now = time.monotonic()
        if session.quiet_since is not None:
            if now - session.quiet_since > QUIET_GAP:
                session.busy_before = 0.0
            session.busy_started = now
            session.quiet_since = None
        if not self._turn_timer.isActive():
            self._turn_timer.start()  # the next pass starts a new budget
        if not self.waiting and self.spent < TURN_BUDGET and session.turn_pass != self._pass:
            session.turn_pass = self._pass
            return True
        # Its priority at a later time t is min(now + BUSY_WEIGHT * busy(t), now + BUSY_CAP),
        # busy(t) = busy_before + t - busy_started: the first part minus BUSY_WEIGHT * t is
        # the same for every t, so each heap's order never changes while entries wait.
        entry: list[PeerSession | None] = [session]
        order = next(self._wait_order)
        growing = now + BUSY_WEIGHT * (session.busy_before - session.busy_started)
        heapq.heappush(self._by_busy, (growing, order, entry))
        heapq.heappush(self._by_cap, (now + BUSY_CAP, order, entry))
        self.waiting += 1
        return False

    def _pop_waiting(self) -> PeerSession | None:
        """The queued connection with the lowest priority now (see request_turn)."""
        for heap in (self._by_busy, self._by_cap):
            while heap and heap[0][2][0] is None:
                heapq.heappop(heap)
        if not self._by_busy:
            return None
        growing, order, _ = self._by_busy[0]
        capped, cap_order, _ = self._by_cap[0]
        heap = self._by_busy
        if (capped, cap_order) < (growing + BUSY_WEIGHT * time.monotonic(), order):
            heap = self._by_cap
        _, _, entry = heapq.heappop(heap)
        session, entry[0] = entry[0], None  # the other heap drops it when it is on top
        self.waiting -= 1
        if not self.waiting:
            self._by_busy.clear()
            self._by_cap.clear()
        return session

    def _next_turns(self) -> None:
        self.spent = 0.0
        self._pass += 1
        while self.waiting and (self.spent < TURN_BUDGET or not self.spent):
            session = self._pop_waiting()
            if session is None:
                break
            if session not in self.sessions:
                continue
            session.turn_pass = self._pass
            session.take_turn()
        if self.waiting or self.spent:
            self._turn_timer.start()

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
        if not self.store.upkeep(UPKEEP_SLICE):
            self._upkeep_timer.stop()

    def flush_last_seen(self) -> None:
        """Write the pending last_seen times to the store in one transaction."""
        seen, self.seen = self.seen, {}
        self.store.touch_many(seen)

    def session_for(self, peer_id: int) -> PeerSession | None:
        return next((s for s in self.sessions if s.peer_id == peer_id), None)

    def kick(self, peer_id: int) -> bool:
        session = self.session_for(peer_id)
        if session is None:
            return False
        log.info("Kicked peer %s", session.peer_label)
        session.close(flush=False)
        return True

    def note_protocol_error(self, session: PeerSession, error: p.ProtocolError) -> None:
        log.warning(
            "Protocol error from %s: %s %s",
            session.peer_label,
            error.code.value,
            p.printable(error.message),
        )
        self.protocol_error.emit(session.peer_label, error.code.value, error.message)

    def _refuse(self, socket: QTcpSocket, ip: str, reason: str) -> None:
        log.warning("Refused connection from %s: %s", ip, reason)
        socket.write(p.encode(p.Error(code=p.ErrorCode.LIMIT, message=reason)))
        socket.disconnectFromHost()
        socket.disconnected.connect(socket.deleteLater)
        if socket.state() == QAbstractSocket.SocketState.UnconnectedState:
            socket.deleteLater()
        self.connection_refused.emit(ip, reason)

    def _on_new_connection(self) -> None:
        while self.hasPendingConnections():
            socket = self.nextPendingConnection()
            ip = normalize_address(socket.peerAddress().toString())
            if self.store.is_banned(ip):
                self._refuse(socket, ip, "this address is banned from the index")
                continue
            if self._sessions_per_ip[ip] >= self.limits.max_connections_per_ip:
                self._refuse(
                    socket,
                    ip,
                    f"too many connections from {ip} "
                    f"(the limit is {self.limits.max_connections_per_ip})",
                )
                continue
            session = PeerSession(self, socket)
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
