"""One index shared by many index servers, in PostgreSQL (psycopg 3, pg_trgm); no Qt.

Every server opens a ``PostgresIndexStore`` on the same database. A peer connected to any
of them is found by all: peers, files, bans and counters live in shared tables.

Each server *owns* the peers connected to it. Its store registers a ``servers`` row and
holds a session advisory lock on that row's id over a dedicated connection (the lease),
which a background thread uses to heartbeat the row every ``heartbeat_seconds`` and to
sweep: a server whose lock is free (its connection died: kill -9, PostgreSQL saw the
socket close) or whose heartbeat is older than ``lease_seconds`` (power or network cut)
is dead, and its peers and files are deleted. After its own (re)connect a sweeper waits
one lease before judging others, so that after a PostgreSQL restart they have time to
reconnect.

The store keeps in memory the file lists of its own peers. When the lease connection
comes back and finds this server's rows gone or different (swept while cut off, or
PostgreSQL lost them), it re-inserts them with the same peer ids (re-assert), so the
server's sessions keep theirs. Changes to a peer not re-inserted yet are made in memory
and written with it.

Any call that cannot reach the database raises ``IndexUnavailable`` within about two
seconds (connect timeout, TCP user timeout, statement timeout) and changes nothing;
the next call connects again.

Search follows ``server_app.search_terms`` exactly as ``SqliteIndexStore`` does: every
folded term a substring of the folded name (``files.name_key``). Terms are ``LIKE``
patterns over a pg_trgm GIN index; terms of 1-2 characters have no trigram, so
PostgreSQL checks them in the rows the longer terms' trigrams find, and a query of short
terms only is a scan. Every search is bounded by ``SEARCH_SECONDS``: a scan that finds
too little in that time answers with what it found and ``more`` set.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import queue
import select
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field

import psycopg
from psycopg import errors as pg_errors

from app.network.protocol import FileInfo, PeerAddress, SearchResult
from server_app.search_terms import SearchTerms, fold
from server_app.store import (
    MAX_FILES,
    MAX_FILES_PER_ADDRESS,
    MAX_FILES_PER_PEER,
    MAX_SOURCE_RESULTS,
    CapacityExceeded,
    IndexedFile,
    IndexLimitError,
    IndexUnavailable,
    PeerRecord,
    RankedGroup,
    SearchPage,
    StoreCounters,
    normalize_address,
)

__all__ = ["PostgresIndexStore", "SchemaError"]

log = logging.getLogger(__name__)

#: The first key of every advisory lock this module takes ("NAPS"); the second is 0 for
#: schema migrations and a server's id for its lease.
LOCK_CLASS = 0x4E415053
MIGRATION_LOCK = 0
LEASE_SECONDS = 5.0
HEARTBEAT_SECONDS = 1.0
#: The lease thread looks at its stop flag this often while it waits for notifications.
NOTIFY_WAIT = 0.1
#: How long a call may take to reach the database before ``IndexUnavailable``.
CONNECT_SECONDS = 2
#: After a failed connect, calls fail at once for this long instead of each waiting again.
RETRY_SECONDS = 0.5
#: Server-side limit of one statement of a request (a 10,000-file COPY takes ~0.25 s).
STATEMENT_MS = 5_000
#: The lease connection re-inserts and sweeps whole peers: more time per statement.
LEASE_STATEMENT_MS = 30_000
#: Time one search may scan for; then it answers with what it found (``more`` set).
SEARCH_SECONDS = 1.5
#: Rows fetched from a search's cursor at a time.
FETCH_ROWS = 200
#: Peers of a dead server deleted per sweep transaction (the lease heartbeats between).
SWEEP_PEERS = 20
MAX_STORED_INT = 2**63 - 1
#: Distinct (hash, name) candidates gathered per search, as in ``SqliteIndexStore``.
CANDIDATE_FACTOR = 2
MIN_CANDIDATES = 200

#: Migrations, in order: version n is ``MIGRATIONS[n - 1]``. Never edit a released one;
#: append a new one.
MIGRATIONS: tuple[str, ...] = (
    """
    CREATE EXTENSION IF NOT EXISTS pg_trgm;
    CREATE TABLE servers (
        server_id  bigserial PRIMARY KEY,
        name       text NOT NULL,
        started_at timestamptz NOT NULL DEFAULT now(),
        heartbeat  timestamptz NOT NULL DEFAULT now()
    );
    CREATE TABLE peers (
        peer_id   bigserial PRIMARY KEY,
        server_id bigint NOT NULL REFERENCES servers ON DELETE CASCADE,
        host      text NOT NULL,
        port      integer NOT NULL,
        agent     text NOT NULL,
        files     integer NOT NULL DEFAULT 0,
        bytes     bigint NOT NULL DEFAULT 0,
        joined_at double precision NOT NULL,
        last_seen double precision NOT NULL
    );
    CREATE INDEX peers_by_server ON peers (server_id);
    CREATE INDEX peers_by_address ON peers (host, port);
    CREATE TABLE files (
        peer_id  bigint NOT NULL REFERENCES peers ON DELETE CASCADE,
        hash     bytea NOT NULL,
        name     text COLLATE "C" NOT NULL,
        name_key text COLLATE "C" NOT NULL,
        size     bigint NOT NULL,
        PRIMARY KEY (peer_id, hash, name)
    );
    CREATE INDEX files_by_hash ON files (hash, size);
    CREATE INDEX files_by_key ON files (name_key);
    CREATE INDEX files_by_trigram ON files USING gin (name_key gin_trgm_ops);
    CREATE TABLE bans (
        address   text PRIMARY KEY,
        reason    text NOT NULL DEFAULT '',
        banned_at double precision NOT NULL
    );
    """,
    # 2: protocol version 2 -- each peer's certificate fingerprint (downloaders pin it) and
    # whether its listen port answered the index's connect-back.
    """
    ALTER TABLE peers ADD COLUMN fingerprint text;
    ALTER TABLE peers ADD COLUMN reachable boolean NOT NULL DEFAULT true;
    """,
)
SCHEMA_VERSION = len(MIGRATIONS)


class SchemaError(RuntimeError):
    """The database holds a newer schema than this program knows: upgrade the program."""


_Entries = dict[tuple[bytes, str], int]


@dataclass
class _OwnPeer:
    """A peer connected to this server, as kept in memory to re-insert it."""

    host: str
    port: int
    agent: str
    joined_at: float
    last_seen: float
    entries: _Entries = field(default_factory=dict)
    fingerprint: str | None = None
    reachable: bool = True

    @property
    def bytes(self) -> int:
        return max(0, min(sum(self.entries.values()), MAX_STORED_INT))


def _like(term: str) -> str:
    """A LIKE pattern matching names that hold ``term`` (``%``, ``_`` and ``\\`` literal)."""
    escaped = term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _entries(files: Iterable[FileInfo]) -> _Entries:
    """The files keyed by (raw hash, name), each once (the first size listed wins)."""
    entries: _Entries = {}
    for info in files:
        entries.setdefault((bytes.fromhex(info.hash), info.name), info.size)
    return entries


def migrate(conn: psycopg.Connection) -> int:
    """Bring the schema up to ``SCHEMA_VERSION`` in one transaction; returns the version.

    Under a transaction advisory lock, so servers starting together apply each
    migration once. ``SchemaError`` if the database is newer than this code.
    """
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s, %s)", (LOCK_CLASS, MIGRATION_LOCK))
        conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version integer NOT NULL)")
        row = conn.execute("SELECT max(version) FROM schema_version").fetchone()
        current = (row[0] if row else None) or 0
        if current > SCHEMA_VERSION:
            raise SchemaError(
                f"the index database has schema version {current}; this program knows"
                f" versions up to {SCHEMA_VERSION}: upgrade napster-server"
            )
        for version in range(current + 1, SCHEMA_VERSION + 1):
            conn.execute(MIGRATIONS[version - 1])  # type: ignore[arg-type]
            conn.execute("INSERT INTO schema_version (version) VALUES (%s)", (version,))
    return SCHEMA_VERSION


def connect(url: str, *, statement_ms: int = STATEMENT_MS, name: str = "napster-server"):
    """A connection that fails fast when PostgreSQL cannot be reached (see module doc)."""
    return psycopg.connect(
        url,
        autocommit=True,
        connect_timeout=CONNECT_SECONDS,
        application_name=name,
        # Unacknowledged data (a cut network) fails the connection instead of hanging.
        tcp_user_timeout=CONNECT_SECONDS * 1000,
        keepalives=1,
        keepalives_idle=1,
        keepalives_interval=1,
        keepalives_count=2,
        options=f"-c statement_timeout={statement_ms} -c lock_timeout={STATEMENT_MS}",
    )


#: Rows ``PostgresPeerReader`` turns into records at a time (see ``peers``).
READ_CHUNK = 500


class PostgresPeerReader:
    """``peers()`` on a read-only connection of its own, used from one thread (its owner's).

    The request connection of ``PostgresIndexStore`` stays the server thread's; this one
    lets the admin window read the whole index without taking it (or its mutex). Database
    trouble is ``IndexUnavailable``; the next call reconnects (after ``RETRY_SECONDS``).
    """

    def __init__(self, url: str) -> None:
        self.url = url
        self._conn: psycopg.Connection | None = None
        self._retry_at = 0.0

    def _connection(self) -> psycopg.Connection:
        conn = self._conn
        if conn is not None and not conn.closed and not conn.broken and not _readable(conn):
            return conn
        self.close()
        if time.monotonic() < self._retry_at:
            raise IndexUnavailable("the index database is unreachable")
        try:
            conn = connect(self.url, name="napster-admin")
            conn.execute("SET default_transaction_read_only = on")
        except psycopg.Error as exc:
            self._retry_at = time.monotonic() + RETRY_SECONDS
            raise IndexUnavailable(f"the index database is unreachable: {exc}") from exc
        self._conn = conn
        return conn

    def peers(self) -> list[PeerRecord]:
        """Every online peer on every server, oldest peer id first."""
        conn = self._connection()
        records: list[PeerRecord] = []
        try:
            with conn.cursor() as cursor:
                cursor.execute(PostgresIndexStore._PEER_COLUMNS + " ORDER BY p.peer_id")
                # A few hundred rows at a time: the C row maker holds the GIL while it works,
                # and the GUI thread must get it back within milliseconds.
                while rows := cursor.fetchmany(READ_CHUNK):
                    records.extend(PeerRecord(*row) for row in rows)
        except psycopg.Error as exc:
            if conn.closed or conn.broken:
                self.close()
            raise IndexUnavailable(f"the index database failed: {exc}") from exc
        return records

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.close()


class PostgresIndexStore:
    """The index in a PostgreSQL database shared by every server given the same ``url``.

    ``server_name`` ("host:port") is shown as ``PeerRecord.server`` of this server's peers.
    Limits hold over the whole index. Used from one thread (the server's event loop),
    plus the store's own lease thread; calls may raise ``IndexUnavailable``.
    """

    shared = True

    def __init__(
        self,
        url: str,
        *,
        server_name: str,
        lease_seconds: float = LEASE_SECONDS,
        heartbeat_seconds: float = HEARTBEAT_SECONDS,
        max_files_per_peer: int = MAX_FILES_PER_PEER,
        max_files: int = MAX_FILES,
        max_files_per_address: int = MAX_FILES_PER_ADDRESS,
    ) -> None:
        self.url = url
        self.server_name = server_name
        self.lease_seconds = lease_seconds
        self.heartbeat_seconds = heartbeat_seconds
        self.max_files_per_peer = max_files_per_peer
        self.max_files = max_files
        self.max_files_per_address = max_files_per_address
        #: Guards the request connection and the own peers (the lease thread re-inserts them).
        self._mutex = threading.RLock()
        self._own: dict[int, _OwnPeer] = {}
        #: Own peers whose rows are not in the database now (a re-assert is under way).
        self._missing: set[int] = set()
        self._reassert_due = threading.Event()
        self._stop = threading.Event()
        #: Push requests for this server's peers, NOTIFY payloads from other servers.
        self._forwarded: queue.SimpleQueue[str] = queue.SimpleQueue()
        self._conn: psycopg.Connection | None = None
        self._retry_at = 0.0
        try:
            self._conn = connect(url)
            migrate(self._conn)
            (self.server_id,) = self._conn.execute(
                "SELECT nextval(pg_get_serial_sequence('servers', 'server_id'))"
            ).fetchone()  # type: ignore[misc]
            lease = self._open_lease()
        except psycopg.Error as exc:
            self._close_connection()
            raise IndexUnavailable(f"cannot open the index at {_safe(url)}: {exc}") from exc
        except BaseException:
            self._close_connection()
            raise
        self._thread = threading.Thread(
            target=self._lease_loop, args=(lease,), name="index-lease", daemon=True
        )
        self._thread.start()

    # ------------------------------------------------------------ connections

    @property
    def _lease_name(self) -> str:
        return f"napster-lease-{self.server_id}"

    def _connection(self) -> psycopg.Connection:
        conn = self._conn
        if conn is not None and not conn.closed and not conn.broken and not _readable(conn):
            return conn
        self._close_connection()
        if time.monotonic() < self._retry_at:
            raise IndexUnavailable("the index database is unreachable")
        try:
            self._conn = connect(self.url)
        except psycopg.Error as exc:
            self._retry_at = time.monotonic() + RETRY_SECONDS
            raise IndexUnavailable(f"the index database is unreachable: {exc}") from exc
        return self._conn

    def _close_connection(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.close()

    @contextlib.contextmanager
    def _db(self) -> Iterator[psycopg.Connection]:
        """The request connection, for one call; database trouble is ``IndexUnavailable``."""
        if not self._mutex.acquire(timeout=CONNECT_SECONDS):
            raise IndexUnavailable("the index is busy re-inserting this server's peers")
        try:
            conn = self._connection()
            try:
                yield conn
            except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
                if conn.closed or conn.broken:
                    self._close_connection()
                raise IndexUnavailable(f"the index database failed: {exc}") from exc
            except (pg_errors.ForeignKeyViolation, pg_errors.UndefinedTable) as exc:
                # This server's rows were swept, or the database lost them: the lease
                # thread puts them back (and the schema, first).
                self._reassert_due.set()
                raise IndexUnavailable("this server's peers are being re-inserted") from exc
        finally:
            self._mutex.release()

    def rename(self, server_name: str) -> None:
        """Name this server from now on (its port is known only once it listens)."""
        self.server_name = server_name
        with self._db() as conn:
            conn.execute(
                "UPDATE servers SET name = %s WHERE server_id = %s", (server_name, self.server_id)
            )

    def close(self) -> None:
        """Stop the lease and delete this server's peers (other servers see them go)."""
        if self._stop.is_set():
            return
        self._stop.set()
        self._thread.join(timeout=10)
        with contextlib.suppress(Exception), self._db() as conn:
            conn.execute(f"SET statement_timeout = {LEASE_STATEMENT_MS}")
            conn.execute("DELETE FROM servers WHERE server_id = %s", (self.server_id,))
        with self._mutex:
            self._close_connection()

    def __enter__(self) -> PostgresIndexStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # ------------------------------------------------------------ lease and sweeper

    def _open_lease(self) -> psycopg.Connection:
        """Connect the lease, take this server's lock and (re)register; may re-assert."""
        conn = connect(self.url, statement_ms=LEASE_STATEMENT_MS, name=self._lease_name)
        try:
            migrate(conn)  # PostgreSQL may have come back without the schema
            conn.execute(f"LISTEN {_push_channel(self.server_id)}")
            if not self._try_lock(conn, self.server_id):
                # Our own old lease connection may still hold it (PostgreSQL has not seen
                # its socket die); another server's sweeper holds it only for a moment.
                self._terminate_lease(conn, self.server_id)
                if not self._try_lock(conn, self.server_id):
                    raise psycopg.OperationalError("this server's lease lock is held")
            (inserted,) = conn.execute(
                "INSERT INTO servers (server_id, name) VALUES (%s, %s)"
                " ON CONFLICT (server_id) DO UPDATE SET heartbeat = now(), name = excluded.name"
                " RETURNING xmax = 0",
                (self.server_id, self.server_name),
            ).fetchone()  # type: ignore[misc]
            self._sync_sequence(conn)
            if inserted or not self._rows_agree(conn):
                self._reassert(conn)
        except BaseException:
            with contextlib.suppress(Exception):
                conn.close()
            raise
        return conn

    @staticmethod
    def _try_lock(conn: psycopg.Connection, server_id: int) -> bool:
        row = conn.execute(
            "SELECT pg_try_advisory_lock(%s, %s)", (LOCK_CLASS, server_id)
        ).fetchone()
        return bool(row and row[0])

    @staticmethod
    def _terminate_lease(conn: psycopg.Connection, server_id: int) -> None:
        """End the backends of ``server_id``'s lease connection (other than this one)."""
        with contextlib.suppress(psycopg.errors.InsufficientPrivilege):
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE application_name = %s AND pid <> pg_backend_pid()",
                (f"napster-lease-{server_id}",),
            )

    def _sync_sequence(self, conn: psycopg.Connection) -> None:
        """Keep new peer ids above every id in use (re-inserted ones included)."""
        conn.execute(
            "SELECT setval(pg_get_serial_sequence('peers', 'peer_id'), m) FROM"
            " (SELECT max(peer_id) AS m FROM peers) AS t, peers_peer_id_seq AS s"
            " WHERE m > s.last_value"
        )
        own = max(self._own, default=0)
        if own:
            conn.execute(
                "SELECT setval(pg_get_serial_sequence('peers', 'peer_id'), %s)"
                " FROM peers_peer_id_seq WHERE last_value < %s",
                (own, own),
            )

    def _rows_agree(self, conn: psycopg.Connection) -> bool:
        """True when the database holds exactly this server's own peers and file counts."""
        with self._mutex:
            rows = conn.execute(
                "SELECT peer_id, files FROM peers WHERE server_id = %s", (self.server_id,)
            ).fetchall()
            return dict(rows) == {pid: len(peer.entries) for pid, peer in self._own.items()}

    def _reassert(self, conn: psycopg.Connection) -> None:
        """Put this server's peers back as they are in memory, one peer per transaction."""
        with self._mutex:
            if self._own:
                log.warning("index: re-inserting this server's %d peers", len(self._own))
            conn.execute("DELETE FROM peers WHERE server_id = %s", (self.server_id,))
            self._missing = set(self._own)
            self._sync_sequence(conn)
        beat = time.monotonic()
        while True:
            with self._mutex:
                if not self._missing:
                    break
                peer_id = self._missing.pop()
                peer = self._own.get(peer_id)
                if peer is None:
                    continue
                try:
                    with conn.transaction():
                        self._insert_peer(conn, peer_id, peer)
                except BaseException:
                    self._missing.add(peer_id)
                    raise
            if time.monotonic() - beat > self.heartbeat_seconds:
                self._heartbeat(conn)
                beat = time.monotonic()
        self._reassert_due.clear()

    def _insert_peer(self, conn: psycopg.Connection, peer_id: int, peer: _OwnPeer) -> None:
        row = conn.execute(
            "INSERT INTO peers (peer_id, server_id, host, port, agent, files, bytes,"
            " joined_at, last_seen, fingerprint, reachable)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
            " ON CONFLICT (peer_id) DO NOTHING RETURNING peer_id",
            (
                peer_id,
                self.server_id,
                peer.host,
                peer.port,
                peer.agent,
                len(peer.entries),
                peer.bytes,
                peer.joined_at,
                peer.last_seen,
                peer.fingerprint,
                peer.reachable,
            ),
        ).fetchone()
        if row is None:
            log.error("index: peer id %d is taken by another server; not re-inserted", peer_id)
            return
        self._copy_files(conn, peer_id, peer.entries.items())

    def _heartbeat(self, conn: psycopg.Connection) -> bool:
        """Renew this server's row; False if it is gone (swept)."""
        cursor = conn.execute(
            "UPDATE servers SET heartbeat = now() WHERE server_id = %s", (self.server_id,)
        )
        return cursor.rowcount == 1

    def _lease_loop(self, conn: psycopg.Connection | None) -> None:
        judge_at = time.monotonic() + self.lease_seconds
        while not self._stop.is_set():
            try:
                if conn is None or conn.closed or conn.broken:
                    conn = None
                    conn = self._open_lease()
                    self._retry_at = 0.0  # the database is back: requests need not wait
                    judge_at = time.monotonic() + self.lease_seconds
                if not self._heartbeat(conn):
                    conn.execute(
                        "INSERT INTO servers (server_id, name) VALUES (%s, %s)",
                        (self.server_id, self.server_name),
                    )
                    self._reassert(conn)
                elif self._reassert_due.is_set() or self._missing:
                    self._reassert(conn)
                if time.monotonic() >= judge_at:
                    self._sweep(conn)
            except psycopg.Error as exc:
                log.warning("index: lease connection failed (%s); reconnecting", exc)
                if conn is not None:
                    with contextlib.suppress(Exception):
                        conn.close()
                conn = None
            except Exception:
                log.exception("index: lease thread error")
            self._wait_for_notifies(conn)
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.close()

    def _wait_for_notifies(self, conn: psycopg.Connection | None) -> None:
        """Wait one heartbeat, taking the push requests other servers NOTIFY meanwhile (in
        short waits, so close() is not held up by a whole heartbeat)."""
        if conn is None or conn.closed or conn.broken:
            self._stop.wait(self.heartbeat_seconds)
            return
        deadline = time.monotonic() + self.heartbeat_seconds
        try:
            while not self._stop.is_set():
                left = deadline - time.monotonic()
                if left <= 0:
                    return
                for notify in conn.notifies(timeout=min(left, NOTIFY_WAIT)):
                    self._forwarded.put(notify.payload)
        except psycopg.Error:
            self._stop.wait(self.heartbeat_seconds)  # reconnected by the next turn

    def _sweep(self, conn: psycopg.Connection) -> None:
        """Delete the peers and rows of dead servers (lock free, or heartbeat too old)."""
        servers = conn.execute(
            "SELECT server_id, heartbeat < now() - make_interval(secs => %s) FROM servers"
            " WHERE server_id <> %s",
            (self.lease_seconds, self.server_id),
        ).fetchall()
        for server_id, stale in servers:
            locked = self._try_lock(conn, server_id)
            if not (locked or stale):
                continue
            try:
                log.warning("index: server %d is gone; removing its peers", server_id)
                if not locked:
                    self._terminate_lease(conn, server_id)
                beat = time.monotonic()
                while conn.execute(
                    "DELETE FROM peers WHERE peer_id IN (SELECT peer_id FROM peers"
                    " WHERE server_id = %s LIMIT %s)",
                    (server_id, SWEEP_PEERS),
                ).rowcount:
                    if time.monotonic() - beat > self.heartbeat_seconds:
                        self._heartbeat(conn)
                        beat = time.monotonic()
                conn.execute("DELETE FROM servers WHERE server_id = %s", (server_id,))
            finally:
                if locked:
                    conn.execute("SELECT pg_advisory_unlock(%s, %s)", (LOCK_CLASS, server_id))

    # ------------------------------------------------------------ peers and files

    def add_peer(
        self,
        host: str,
        port: int,
        agent: str,
        files: Sequence[FileInfo],
        now: float | None = None,
        fingerprint: str | None = None,
    ) -> int:
        """Record a peer that has just JOINed with ``files``; returns its new peer id."""
        entries = _entries(files)
        self._check_limit(len(entries))
        now = time.time() if now is None else now
        peer = _OwnPeer(host, port, agent, now, now, entries, fingerprint)
        with self._db() as conn:
            self._check_capacity(conn, host, None, len(entries))
            with conn.transaction():
                (peer_id,) = conn.execute(
                    "INSERT INTO peers (server_id, host, port, agent, files, bytes, joined_at,"
                    " last_seen, fingerprint) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)"
                    " RETURNING peer_id",
                    (
                        self.server_id,
                        *(host, port, agent, len(entries), peer.bytes, now, now, fingerprint),
                    ),
                ).fetchone()  # type: ignore[misc]
                self._copy_files(conn, peer_id, entries.items())
            self._own[peer_id] = peer
        return peer_id

    def set_reachable(self, peer_id: int, reachable: bool) -> None:
        """Whether the peer's listen port answered from outside (results say so)."""
        with self._mutex:
            own = self._own.get(peer_id)
            if own is None:
                return
            own.reachable = reachable
        with self._db() as conn:
            conn.execute("UPDATE peers SET reachable = %s WHERE peer_id = %s", (reachable, peer_id))

    def forward_push(self, host: str, port: int, request: dict[str, object]) -> bool:
        """Pass a push request to the server the peer at host:port is connected to (by
        NOTIFY on that server's channel); False if no other server has such a peer."""
        payload = None
        with self._db() as conn:
            row = conn.execute(
                "SELECT peer_id, server_id FROM peers WHERE host = %s AND port = %s"
                " AND server_id <> %s ORDER BY peer_id DESC LIMIT 1",
                (normalize_address(host), port, self.server_id),
            ).fetchone()
            if row is None:
                return False
            peer_id, server_id = row
            payload = json.dumps({"peer_id": peer_id, "request": request})
            conn.execute("SELECT pg_notify(%s, %s)", (_push_channel(server_id), payload))
        return True

    def take_forwarded(self) -> list[tuple[int, dict[str, object]]]:
        """Push requests other servers passed to this server's peers: (peer id, request)."""
        taken: list[tuple[int, dict[str, object]]] = []
        while True:
            try:
                payload = self._forwarded.get_nowait()
            except queue.Empty:
                return taken
            try:
                message = json.loads(payload)
                taken.append((int(message["peer_id"]), dict(message["request"])))
            except (ValueError, KeyError, TypeError):
                log.warning("index: ignoring a malformed forwarded push request")

    def replace_files(self, peer_id: int, files: Sequence[FileInfo]) -> int:
        """Make ``files`` the peer's whole list (a second JOIN); returns the new total."""
        entries = _entries(files)
        self._check_limit(len(entries))
        with self._db() as conn:
            peer = self._require_own(peer_id)
            self._check_capacity(conn, peer.host, peer_id, len(entries))
            stale = [key for key, size in peer.entries.items() if entries.get(key) != size]
            added = [(key, size) for key, size in entries.items() if key not in peer.entries]
            added += [(key, entries[key]) for key in stale if key in entries]
            # A copy with the new list: the fingerprint and reachability stay (a re-assert
            # writes them back).
            new = dataclasses.replace(peer, entries=entries)
            self._write(conn, peer_id, new, stale, [], added)
            self._own[peer_id] = new
        return len(entries)

    def update_files(self, peer_id: int, add: Sequence[FileInfo], remove: Sequence[str]) -> int:
        """Remove every entry of the hashes in ``remove``, then add ``add``; returns the total."""
        adding = _entries(add)
        removed_hashes = list(dict.fromkeys(bytes.fromhex(value) for value in remove))
        with self._db() as conn:
            peer = self._require_own(peer_id)
            gone = set(removed_hashes)
            kept = {key: size for key, size in peer.entries.items() if key[0] not in gone}
            added = [(key, size) for key, size in adding.items() if key not in kept]
            total = len(kept) + len(added)
            if total > self.max_files_per_peer:
                raise IndexLimitError(total, self.max_files_per_peer)
            self._check_capacity(conn, peer.host, peer_id, total)
            new = dataclasses.replace(peer, entries={**kept, **dict(added)})
            self._write(conn, peer_id, new, [], removed_hashes, added)
            self._own[peer_id] = new
        return total

    def _write(
        self,
        conn: psycopg.Connection,
        peer_id: int,
        peer: _OwnPeer,
        stale: list[tuple[bytes, str]],
        removed_hashes: list[bytes],
        added: list[tuple[tuple[bytes, str], int]],
    ) -> None:
        """Apply one change of an own peer's files in one transaction."""
        if peer_id in self._missing:
            return  # not in the database now: the re-assert writes it as it is in memory
        with conn.transaction():
            updated = conn.execute(
                "UPDATE peers SET files = %s, bytes = %s WHERE peer_id = %s",
                (len(peer.entries), peer.bytes, peer_id),
            ).rowcount
            if not updated:
                self._reassert_due.set()
                raise IndexUnavailable("this server's peers are being re-inserted")
            if stale:
                conn.execute(
                    "DELETE FROM files WHERE peer_id = %s AND (hash, name) IN"
                    " (SELECT * FROM unnest(%s::bytea[], %s::text[]))",
                    (peer_id, [key[0] for key in stale], [key[1] for key in stale]),
                )
            if removed_hashes:
                conn.execute(
                    "DELETE FROM files WHERE peer_id = %s AND hash = ANY(%s)",
                    (peer_id, removed_hashes),
                )
            self._copy_files(conn, peer_id, added)

    @staticmethod
    def _copy_files(
        conn: psycopg.Connection,
        peer_id: int,
        entries: Iterable[tuple[tuple[bytes, str], int]],
    ) -> None:
        with (
            conn.cursor() as cursor,
            cursor.copy("COPY files (peer_id, hash, name, name_key, size) FROM STDIN") as copy,
        ):
            for (hash_, name), size in entries:
                copy.write_row((peer_id, hash_, name, fold(name), size))

    def remove_peer(self, peer_id: int) -> None:
        """Forget a peer: its rows go at once, for every server. Unknown ids are ignored.

        Never raises: if the database is unreachable, the peer is forgotten here and
        its rows are replaced when the lease re-asserts this server's peers.
        """
        with self._mutex:
            if self._own.pop(peer_id, None) is None:
                return
            self._missing.discard(peer_id)
        try:
            with self._db() as conn:
                conn.execute("DELETE FROM peers WHERE peer_id = %s", (peer_id,))
        except IndexUnavailable as exc:
            log.warning("index: peer %d left while the index was unreachable: %s", peer_id, exc)
            self._reassert_due.set()

    @property
    def upkeep_due(self) -> bool:
        """Always False: PostgreSQL deletes and vacuums by itself."""
        return False

    def upkeep(self, seconds: float) -> bool:
        """Nothing to do (see ``upkeep_due``)."""
        return False

    def touch(self, peer_id: int, now: float | None = None) -> None:
        """Note that the peer was heard from (``last_seen``)."""
        self.touch_many({peer_id: time.time() if now is None else now})

    def touch_many(self, seen: dict[int, float]) -> None:
        """Record ``last_seen`` for many peers in one statement."""
        if not seen:
            return
        with self._db() as conn:
            for peer_id, when in seen.items():
                peer = self._own.get(peer_id)
                if peer is not None:
                    peer.last_seen = when
            conn.execute(
                "UPDATE peers SET last_seen = t.seen FROM"
                " unnest(%s::bigint[], %s::float8[]) AS t(id, seen) WHERE peer_id = t.id",
                (list(seen), list(seen.values())),
            )

    def check_file_count(self, files: Sequence[FileInfo], host: str | None = None) -> None:
        """Raise ``IndexLimitError`` if ``files`` holds more entries than a peer may share,
        or (given the ``host`` of a new peer) ``CapacityExceeded`` if the index or that
        host's files would grow past their limits."""
        count = len({(info.hash.lower(), info.name) for info in files})
        self._check_limit(count)
        if host is not None:
            with self._db() as conn:
                self._check_capacity(conn, host, None, count)

    def _check_limit(self, files: int) -> None:
        if files > self.max_files_per_peer:
            raise IndexLimitError(files, self.max_files_per_peer)

    def _check_capacity(
        self, conn: psycopg.Connection, host: str, peer_id: int | None, files: int
    ) -> None:
        """Raise ``CapacityExceeded`` unless the peer (None: a new one) may hold ``files``."""
        peer = self._own.get(peer_id) if peer_id is not None else None
        growth = files - (len(peer.entries) if peer else 0)
        if growth <= 0:
            return
        total, at_host = conn.execute(
            "SELECT coalesce(sum(files), 0), coalesce(sum(files) FILTER (WHERE host = %s), 0)"
            " FROM peers",
            (host,),
        ).fetchone()  # type: ignore[misc]
        if total + growth > self.max_files:
            raise CapacityExceeded(
                f"the index is full: it holds {total:,} files of"
                f" {self.max_files:,}; try again later",
                total + growth,
                self.max_files,
            )
        if at_host + growth > self.max_files_per_address:
            raise CapacityExceeded(
                f"{at_host + growth:,} files from {host} is more than the"
                f" {self.max_files_per_address:,} files one address may share",
                at_host + growth,
                self.max_files_per_address,
            )

    def _require_own(self, peer_id: int) -> _OwnPeer:
        peer = self._own.get(peer_id)
        if peer is None:
            raise KeyError(f"no peer {peer_id} on this server")
        return peer

    # ------------------------------------------------------------ reading

    def counters(self) -> StoreCounters:
        """How many peers are online (on every server) and the file entries and bytes."""
        with self._db() as conn:
            peers, files, size = conn.execute(
                "SELECT count(*), coalesce(sum(files), 0), coalesce(sum(bytes), 0) FROM peers"
            ).fetchone()  # type: ignore[misc]
        return StoreCounters(peers=peers, files=int(files), bytes=int(size))

    _PEER_COLUMNS = (
        "SELECT p.peer_id, p.host, p.port, p.agent, p.files, p.bytes, p.joined_at,"
        " p.last_seen, s.name FROM peers AS p JOIN servers AS s USING (server_id)"
    )

    def peers(self) -> list[PeerRecord]:
        """Every online peer on every server, oldest peer id first."""
        with self._db() as conn:
            rows = conn.execute(self._PEER_COLUMNS + " ORDER BY p.peer_id").fetchall()
        return [PeerRecord(*row) for row in rows]

    def open_reader(self) -> PostgresPeerReader:
        """A reader of every peer on a read-only connection of its own, for another thread
        (the admin window's poll); it connects on its first read. Close it when done."""
        return PostgresPeerReader(self.url)

    def peer(self, peer_id: int) -> PeerRecord | None:
        with self._db() as conn:
            row = conn.execute(self._PEER_COLUMNS + " WHERE p.peer_id = %s", (peer_id,)).fetchone()
        return None if row is None else PeerRecord(*row)

    def peer_files(self, peer_id: int) -> list[FileInfo]:
        """The peer's entries, sorted by name (case-insensitively); none once it left."""
        with self._db() as conn:
            rows = conn.execute(
                "SELECT name, size, hash FROM files WHERE peer_id = %s"
                " ORDER BY name_key, name, hash",
                (peer_id,),
            ).fetchall()
        return [FileInfo(name, size, bytes(hash_).hex()) for name, size, hash_ in rows]

    def file_count(self, peer_id: int) -> int:
        peer = self._own.get(peer_id)
        if peer is not None:
            return len(peer.entries)
        with self._db() as conn:
            row = conn.execute("SELECT files FROM peers WHERE peer_id = %s", (peer_id,)).fetchone()
        return 0 if row is None else row[0]

    # ------------------------------------------------------------ search

    def search(
        self, query: str, limit: int = 100, exclude_peer: int | None = None
    ) -> list[SearchResult]:
        """The results of ``search_page`` (see there)."""
        return self.search_page(query, limit, exclude_peer).results

    def search_page(
        self, query: str, limit: int = 100, exclude_peer: int | None = None
    ) -> SearchPage:
        """Files whose name holds every term of ``query``, one result per (hash, size, name),
        ranked and listed as ``SqliteIndexStore.search_page`` does."""
        terms = SearchTerms.parse(query)
        if terms is None or limit <= 0 or terms.matches_nothing:
            return SearchPage([], False)
        with self._db() as conn:
            groups, more, holders = self._ranked_groups(conn, terms, limit, exclude_peer)
        results = [
            SearchResult(group.name, group.size, group.hash.hex(), tuple(holders[group.key]))
            for group in groups
        ]
        return SearchPage(results, more)

    def _ranked_groups(
        self, conn: psycopg.Connection, terms: SearchTerms, limit: int, exclude: int | None
    ) -> tuple[list[RankedGroup], bool, dict[tuple[bytes, int], list[PeerAddress]]]:
        cap = max(limit * CANDIDATE_FACTOR, MIN_CANDIDATES, limit + 1)
        groups, complete = self._candidates(conn, terms, cap, exclude)
        holders = self._holders(conn, [group.key for group in groups], exclude)
        held = []
        for group in groups:
            group.holders = len(holders[group.key])
            if group.holders:
                held.append(group)
        held.sort(key=RankedGroup.rank_key)
        return held[:limit], len(held) > limit or not complete, holders

    def _candidates(
        self, conn: psycopg.Connection, terms: SearchTerms, cap: int, exclude: int | None
    ) -> tuple[list[RankedGroup], bool]:
        """Up to ``cap`` matching groups some peer other than ``exclude`` holds, exact ones
        first; and False if the search ran out of time before it saw every match."""
        if exclude is None:
            held, held_params = "", ()
        else:
            held = (
                " AND (f.peer_id <> %s OR EXISTS (SELECT 1 FROM files AS g"
                " WHERE g.hash = f.hash AND g.peer_id <> %s))"
            )
            held_params = (exclude, exclude)
        groups: dict[tuple[bytes, int, str], RankedGroup] = {}
        exact, _ = self._distinct_rows(
            conn,
            f"SELECT f.hash, f.name, f.size FROM files AS f WHERE f.name_key = %s{held}",
            (terms.exact, *held_params),
            cap,
        )
        for hash_, name, size in exact:
            groups.setdefault((hash_, size, name), RankedGroup(hash_, name, size, exact=True))
        # Longest terms first: PostgreSQL looks up the trigrams of the long ones in the
        # index and checks the rest (1-2 character terms have no trigram) in those rows.
        ordered = sorted(terms.long_terms + terms.short_terms, key=len, reverse=True)
        likes = " AND ".join("f.name_key LIKE %s" for _ in ordered)
        rows, complete = self._distinct_rows(
            conn,
            f"SELECT f.hash, f.name, f.size FROM files AS f WHERE {likes}{held}",
            (*map(_like, ordered), *held_params),
            cap,
        )
        for hash_, name, size in rows:
            groups.setdefault((hash_, size, name), RankedGroup(hash_, name, size, exact=False))
        return list(groups.values()), complete

    @staticmethod
    def _distinct_rows(
        conn: psycopg.Connection, sql: str, params: Sequence[object], cap: int
    ) -> tuple[list[tuple[bytes, str, int]], bool]:
        """Up to ``cap`` distinct (hash, name, size) rows of ``sql``, read through a cursor
        for at most ``SEARCH_SECONDS``; and False if time ran out before the last row."""
        found: dict[tuple[bytes, str, int], None] = {}
        deadline = time.monotonic() + SEARCH_SECONDS
        try:
            with conn.transaction(), conn.cursor(name="search") as cursor:
                # Once for the whole read (a SET per FETCH was a round trip each): a single
                # FETCH cannot outlast the budget, and the loop stops at the deadline.
                conn.execute(f"SET LOCAL statement_timeout = {int(SEARCH_SECONDS * 1000)}")
                cursor.execute(sql, params)
                while len(found) < cap:
                    if time.monotonic() >= deadline:
                        return list(found), False
                    rows = cursor.fetchmany(FETCH_ROWS)
                    for hash_, name, size in rows:
                        found[(bytes(hash_), name, size)] = None
                    if len(rows) < FETCH_ROWS:
                        break
        except pg_errors.QueryCanceled:
            return list(found)[:cap], False
        return list(found)[:cap], True

    def _holders(
        self, conn: psycopg.Connection, keys: Sequence[tuple[bytes, int]], exclude: int | None
    ) -> dict[tuple[bytes, int], list[PeerAddress]]:
        """The online peers holding each (hash, size) but ``exclude``, in peer id order, each
        address once (a peer id per connection: two while a peer rejoins) with what the
        newest of its peer ids JOINed with (a restarted peer may have a new identity)."""
        holders: dict[tuple[bytes, int], list[PeerAddress]] = {key: [] for key in keys}
        if not keys:
            return holders
        # The fingerprint and reachability are the newest JOIN's at the address, whether or
        # not that one holds the file yet; the asker is left out under every id it has.
        rows = conn.execute(
            "SELECT DISTINCT f.hash, f.size, f.peer_id, p.host, p.port, n.fingerprint,"
            " n.reachable FROM files AS f JOIN peers AS p USING (peer_id)"
            " CROSS JOIN LATERAL (SELECT q.fingerprint, q.reachable FROM peers AS q"
            "  WHERE q.host = p.host AND q.port = p.port ORDER BY q.peer_id DESC LIMIT 1) AS n"
            " WHERE f.hash = ANY(%s) AND NOT EXISTS (SELECT 1 FROM peers AS me"
            "  WHERE me.peer_id = %s AND me.host = p.host AND me.port = p.port)"
            " ORDER BY f.hash, f.size, f.peer_id",
            (list({hash_ for hash_, _ in keys}), -1 if exclude is None else exclude),
        ).fetchall()
        for hash_, size, _peer_id, host, port, fingerprint, reachable in rows:
            listed = holders.get((bytes(hash_), size))
            if listed is not None:
                address = PeerAddress(host, port, fingerprint, reachable)
                if address not in listed:
                    listed.append(address)
        return holders

    def sources(
        self, file_hash: str, size: int | None = None, exclude_peer: int | None = None
    ) -> list[SearchResult]:
        """Who holds the file with this hash (and size, when given): as
        ``SqliteIndexStore.sources``."""
        hash_ = bytes.fromhex(file_hash)
        sql = "SELECT DISTINCT f.hash, f.name, f.size FROM files AS f WHERE f.hash = %s"
        params: tuple[object, ...] = (hash_,)
        if size is not None:
            sql += " AND f.size = %s"
            params += (size,)
        with self._db() as conn:
            rows = conn.execute(sql + " LIMIT %s", (*params, MAX_SOURCE_RESULTS * 4)).fetchall()
            groups = [RankedGroup(bytes(h), name, s, exact=False) for h, name, s in rows]
            holders = self._holders(conn, list({g.key for g in groups}), exclude_peer)
        for group in groups:
            group.holders = len(holders[group.key])
        held = sorted((g for g in groups if g.holders), key=RankedGroup.rank_key)
        return [
            SearchResult(g.name, g.size, g.hash.hex(), tuple(holders[g.key]))
            for g in held[:MAX_SOURCE_RESULTS]
        ]

    def browse(self, host: str, port: int, limit: int = 500) -> SearchPage:
        """Everything the online peer at ``host:port`` shares, by name (at most ``limit``)."""
        address = PeerAddress(normalize_address(host), port)
        with self._db() as conn:
            holder = conn.execute(
                "SELECT fingerprint, reachable FROM peers WHERE host = %s AND port = %s"
                " ORDER BY peer_id DESC LIMIT 1",
                (address.host, port),
            ).fetchone()
            if holder is None:
                return SearchPage([], False)
            address = PeerAddress(address.host, port, holder[0], holder[1])
            rows = conn.execute(
                "SELECT DISTINCT f.name_key, f.name, f.size, f.hash FROM files AS f"
                " JOIN peers AS p USING (peer_id) WHERE p.host = %s AND p.port = %s"
                " ORDER BY f.name_key, f.name LIMIT %s",
                (address.host, port, limit + 1),
            ).fetchall()
        results = [
            SearchResult(name, size, bytes(hash_).hex(), (address,))
            for _key, name, size, hash_ in rows
        ]
        return SearchPage(results[:limit], len(results) > limit)

    def search_files(self, query: str, limit: int = 1000) -> list[IndexedFile]:
        """For the admin window: like ``search`` but counting every peer on every server;
        ``""`` lists all, sorted by name (case-insensitively)."""
        if limit <= 0:
            return []
        terms = SearchTerms.parse(query)
        if terms is not None and terms.matches_nothing:
            return []
        with self._db() as conn:
            if terms is not None:
                groups, _, _ = self._ranked_groups(conn, terms, limit, None)
            else:
                groups = self._groups_by_name(conn, limit)
        return [IndexedFile(g.name, g.size, g.hash.hex(), g.holders) for g in groups]

    @staticmethod
    def _groups_by_name(conn: psycopg.Connection, limit: int) -> list[RankedGroup]:
        rows = conn.execute(
            "SELECT DISTINCT name_key, name, hash, size FROM files"
            " ORDER BY name_key, name, hash LIMIT %s",
            (limit,),
        ).fetchall()
        groups = [RankedGroup(bytes(h), name, size, exact=False) for _key, name, h, size in rows]
        counts = dict(
            conn.execute(
                "SELECT hash, count(DISTINCT peer_id) FROM files WHERE hash = ANY(%s)"
                " GROUP BY hash",
                (list({g.hash for g in groups}),),
            ).fetchall()
        )
        counts = {bytes(h): n for h, n in counts.items()}
        for group in groups:
            group.holders = counts.get(group.hash, 0)
        return groups

    # ------------------------------------------------------------ bans

    def ban(self, address: str, reason: str = "") -> None:
        """Refuse ``address`` on every server from now on; banning again updates it."""
        with self._db() as conn:
            conn.execute(
                "INSERT INTO bans (address, reason, banned_at) VALUES (%s, %s, %s)"
                " ON CONFLICT (address) DO UPDATE SET reason = excluded.reason,"
                " banned_at = excluded.banned_at",
                (normalize_address(address), reason, time.time()),
            )

    def unban(self, address: str) -> None:
        with self._db() as conn:
            conn.execute("DELETE FROM bans WHERE address = %s", (normalize_address(address),))

    def is_banned(self, address: str) -> bool:
        with self._db() as conn:
            row = conn.execute(
                "SELECT 1 FROM bans WHERE address = %s", (normalize_address(address),)
            ).fetchone()
        return row is not None

    def bans(self) -> list[tuple[str, str, float]]:
        """Every ban as (address, reason, banned_at), oldest first."""
        with self._db() as conn:
            rows = conn.execute(
                "SELECT address, reason, banned_at FROM bans ORDER BY banned_at, address"
            ).fetchall()
        return [(address, reason, banned_at) for address, reason, banned_at in rows]


def _readable(conn: psycopg.Connection) -> bool:
    """True if an idle connection has something to read: the server ended it (a restart
    sends its reason and closes), so the next statement on it would fail."""
    try:
        return bool(select.select([conn.fileno()], [], [], 0)[0])
    except (OSError, ValueError, psycopg.Error):
        return True


def _push_channel(server_id: int) -> str:
    """The NOTIFY channel on which a server hears push requests for its peers."""
    return f"napster_push_{int(server_id)}"


def _safe(url: str) -> str:
    """The URL without its password, for messages."""
    with contextlib.suppress(Exception):
        info = psycopg.conninfo.conninfo_to_dict(url)
        return f"{info.get('host', '')}:{info.get('port', '')}/{info.get('dbname', '')}"
    return "the database"
