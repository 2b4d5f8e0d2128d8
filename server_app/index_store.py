"""The index server's own index: who is online and which files each one shares.

Pure Python on the standard library's ``sqlite3``; no Qt. One ``SqliteIndexStore`` is
used from one thread (the server's event loop). It implements ``server_app.store.IndexStore``
for one server; ``server_app.postgres_store`` shares one index among many.

Two databases on one connection:

- ``main`` (the file given, WAL mode) holds ``bans``, the only data kept across
  restarts.
- ``live`` is a private in-memory database (``ATTACH ':memory:'``) for everything that is
  only true while the server runs, so a restart starts with no peer online (they
  JOIN again) without deleting anything, and no write waits for a journal sync:

  - ``peers``: one row per online peer, with its running file count and byte total;
  - ``files``: one row per (peer, hash, name) entry; ``hash`` as 32 raw bytes (half
    the size of hex, in the table and both indexes that hold it), ``name_key`` the
    name in the form matching compares (``fold()``) followed by ``END``;
  - ``names_fts``: an FTS5 trigram index over ``files.name_key`` (external content).
    This module writes it in the same transaction as ``files``, in rising rowid
    order, never from triggers: FTS5 flushes its pending terms at each statement
    savepoint and at each lower rowid, which makes a per-row trigger about ten
    times slower.
  - ``names_vocab``: FTS5's vocabulary of ``names_fts`` (which trigrams it holds).

Leaving is cheap: ``remove_peer`` deletes the peer's row at once (searches join ``files``
to ``peers``, so its files stop matching) and queues its file rows; ``upkeep`` deletes
them, and merges the name index's segments, a few milliseconds at a time. (FTS5's own
automatic merging is off: it runs inside a commit and can take a tenth of a second on a
million names.)

Search: every whitespace-separated term must be a substring of the folded name
(``server_app.search_terms``: case- and accent-insensitive). A term of 3+ characters
is the AND of trigrams covering it (then checked in the names with ``instr``); a
2-character one is the OR of its trigrams with each character that names hold
(``END`` after every name makes every character start a trigram); a 1-character one
held by few names is the OR of the trigrams it starts, from the index's vocabulary,
and a commoner one is checked with ``instr``.
With several indexed terms, the longest one's first ``DRIVER_ROWS`` index matches are
read and the other terms checked in those names; that answers when they were all of
its matches or enough matched (reading on when the others match often). Otherwise
FTS5 gets every term as one AND and steps through the rarest one's list. No count of
examined rows cuts a search short: every matching name can be found, whatever each
term's frequency. Both sides are folded in Python and the index is case-sensitive,
so a match is exactly ``fold(term) in fold(name)``.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sqlite3
import time
from collections import Counter, deque
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager

from app.network.protocol import FileInfo, PeerAddress, SearchResult
from server_app.search_terms import TRIGRAM, SearchTerms, fold
from server_app.store import (
    MAX_FILES,
    MAX_FILES_PER_ADDRESS,
    MAX_FILES_PER_PEER,
    MAX_SOURCE_RESULTS,
    CapacityExceeded,
    IndexedFile,
    IndexLimitError,
    PeerRecord,
    RankedGroup,
    SearchPage,
    StoreCounters,
    normalize_address,
)

__all__ = [
    "CapacityExceeded",
    "IndexLimitError",
    "IndexedFile",
    "PeerRecord",
    "SearchPage",
    "SqliteIndexStore",
    "StoreCounters",
    "fold",
    "normalize_address",
]

SCHEMA_VERSION = 1
MAX_STORED_INT = 2**63 - 1
#: Distinct (hash, name) candidates gathered per search, as a multiple of ``limit``.
CANDIDATE_FACTOR = 2
MIN_CANDIDATES = 200
#: Values per ``IN (...)`` list; lists are padded to a power of two so few statements exist.
IN_CHUNK = 512
#: Index matches of one term read to check the other terms in (see ``_driven_rows``),
#: and how many times more are read on when the other terms match often enough.
DRIVER_ROWS = 1_000
DRIVER_READ = 8
#: Ends every ``name_key``, so that every character of a name starts a trigram. Control
#: characters: never in a name, and a search term holding one matches nothing.
END = "\x01\x01"
#: Past this many different characters in names, 2-character terms are checked with instr
#: (their OR of trigrams would grow too long).
MAX_ALPHABET = 512
#: A 1-character term held by at most this many names is looked up in the index (the OR
#: of the trigrams it starts, listed by the index's vocabulary); a commoner one is checked
#: with instr, and a name holding it is soon found.
RARE_CHARACTER_ROWS = 1_000
#: File rows of departed peers deleted per upkeep transaction.
PURGE_ROWS = 200
#: Rows a departure must leave behind, at least, before upkeep starts the tables afresh
#: instead of purging row by row; the online peers' rows are copied over, so only while
#: they are at most REBUILD_LIVE_ROWS and a quarter of the departed ones.
REBUILD_MIN_ROWS = 10_000
REBUILD_LIVE_ROWS = 2_000
#: After purging at least this many rows (and as many as are online), upkeep merges the
#: name index into one segment, a step at a time: only a full merge drops the deleted
#: names' entries from the oldest segments, so their memory can be used again.
COMPACT_MIN_ROWS = 50_000
#: Leaf pages one name-index merge step may write.
MERGE_PAGES = 16
#: Inserted names per leaf page of merging done at once (see ``_insert``).
ROWS_PER_MERGE_PAGE = 8

#: Joins a file row ``f`` to its peer ``p``: rows of departed peers (not purged yet) drop out.
_ONLINE = "p.peer_id = f.peer_id"

_LIVE_SCHEMA = """
CREATE TABLE live.peers (
    peer_id   INTEGER PRIMARY KEY AUTOINCREMENT,
    host      TEXT NOT NULL,
    port      INTEGER NOT NULL,
    agent     TEXT NOT NULL,
    files     INTEGER NOT NULL DEFAULT 0,
    bytes     INTEGER NOT NULL DEFAULT 0,
    joined_at REAL NOT NULL,
    last_seen REAL NOT NULL
);
CREATE TABLE live.files (
    id       INTEGER PRIMARY KEY,
    peer_id  INTEGER NOT NULL,
    hash     BLOB NOT NULL,
    name     TEXT NOT NULL,
    name_key TEXT NOT NULL,
    size     INTEGER NOT NULL,
    UNIQUE (peer_id, hash, name)
);
-- The UNIQUE index above, (peer_id, hash, name), is also the index on files(peer_id).
CREATE INDEX live.files_by_hash ON files (hash, peer_id);
CREATE INDEX live.files_by_key ON files (name_key);
CREATE VIRTUAL TABLE live.names_fts USING fts5 (
    name_key,
    content = 'files',
    content_rowid = 'id',
    tokenize = 'trigram case_sensitive 1'
);
CREATE VIRTUAL TABLE live.names_vocab USING fts5vocab (names_fts, row);
"""

_BANS_SCHEMA = """
CREATE TABLE IF NOT EXISTS main.bans (
    address   TEXT PRIMARY KEY,
    reason    TEXT NOT NULL DEFAULT '',
    banned_at REAL NOT NULL
);
"""


_Entries = dict[tuple[bytes, str], tuple[str, int]]


class SqliteIndexStore:
    """Peers, their shared files and bans, in one SQLite database with an FTS5 name index.

    ``path`` is the database file for bans (opened in WAL mode) or ``":memory:"``;
    peers and files live in a private in-memory database, so every run starts with
    none (a million entries take about 450 MiB). ``cache_mib`` is its page cache.
    Every change is one transaction: a failure (including ``IndexLimitError``) leaves
    nothing half done.
    ``hash`` values must be 64 hexadecimal characters (``ValueError`` if not).
    Changing the files of an unknown peer id raises ``KeyError``.

    ``max_files`` bounds the entries of all peers together, ``max_files_per_address``
    those of every peer at one host; growing past either raises ``CapacityExceeded``.
    Rows of departed peers never make the tables grow: each change adds no more rows
    than it first purges while such rows wait, so their memory is used again.
    The index is this server's alone (``shared`` is False); ``server_name`` is given as
    every peer's ``PeerRecord.server``.
    """

    shared = False

    def __init__(
        self,
        path: str | os.PathLike[str] = ":memory:",
        max_files_per_peer: int = MAX_FILES_PER_PEER,
        *,
        cache_mib: int = 512,
        max_files: int = MAX_FILES,
        max_files_per_address: int = MAX_FILES_PER_ADDRESS,
        server_name: str = "",
    ) -> None:
        self.server_name = server_name
        self.max_files_per_peer = max_files_per_peer
        self.max_files = max_files
        self.max_files_per_address = max_files_per_address
        #: Entries of the online peers: in all, by host, and by peer id.
        self._live_files = 0
        self._files_by_host: Counter[str] = Counter()
        self._files_of: dict[int, int] = {}
        #: Rows purged since the name index was last merged into one segment.
        self._purged_rows = 0
        self._compact_due = False
        self._db = sqlite3.connect(os.fspath(path), isolation_level=None, cached_statements=256)
        #: Every online peer's address, by peer id.
        self._addresses: dict[int, PeerAddress] = {}
        #: Online peer ids by address, oldest first (usually one; two while a peer JOINs
        #: on a new connection before the server noticed the old one drop).
        self._ids_by_address: dict[PeerAddress, list[int]] = {}
        #: Peer ids whose address another online peer id also has: listed once in results.
        self._repeated: set[int] = set()
        #: Departed peers whose file rows are still to be deleted, oldest first, and
        #: about how many rows that is.
        self._departed: deque[int] = deque()
        self._departed_rows = 0
        self._merge_due = False
        #: How many rows' ``name_key`` holds each character (None: more than MAX_ALPHABET
        #: characters were seen).
        self._alphabet: Counter[str] | None = Counter()
        try:
            self._open_schema(os.fspath(path) in ("", ":memory:"), cache_mib)
        except BaseException:
            self._db.close()
            raise

    def _open_schema(self, in_memory: bool, cache_mib: int) -> None:
        db = self._db
        if not in_memory:
            db.execute("PRAGMA journal_mode = WAL")
            db.execute("PRAGMA synchronous = NORMAL")
        with self._transaction():
            db.execute(_BANS_SCHEMA)
            db.execute(f"PRAGMA main.user_version = {SCHEMA_VERSION}")
        self._cache_mib = cache_mib
        self._attach_live()

    def _attach_live(self) -> None:
        """Attach a new, empty live database."""
        db = self._db
        # The live index is a private in-memory database: nothing to clear after a restart,
        # no journal to sync. (A temporary file database made every commit pay for its whole
        # page cache: 3 ms per one-row UPDATE at 300k files, 0.01 ms in memory.)
        db.execute("ATTACH DATABASE ':memory:' AS live")
        db.execute(f"PRAGMA live.cache_size = {-1024 * self._cache_mib}")
        # The rollback journal is only needed to undo a transaction, never after a crash.
        db.execute("PRAGMA live.journal_mode = MEMORY")
        with self._transaction():
            for statement in _LIVE_SCHEMA.split(";"):
                if statement.strip():
                    db.execute(statement)
            # upkeep() merges in small steps; the crisis merge only guards against no upkeep.
            db.execute("INSERT INTO names_fts (names_fts, rank) VALUES ('automerge', 0)")
            db.execute("INSERT INTO names_fts (names_fts, rank) VALUES ('crisismerge', 64)")

    def rename(self, server_name: str) -> None:
        """Name this server from now on (its port is known only once it listens)."""
        self.server_name = server_name

    def close(self) -> None:
        """Close the database; the store cannot be used afterwards."""
        self._db.close()

    def __enter__(self) -> SqliteIndexStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        # The character counts follow the rows: a rolled-back change must not keep its own.
        alphabet = None if self._alphabet is None else self._alphabet.copy()
        self._db.execute("BEGIN")
        try:
            yield self._db
        except BaseException:
            self._alphabet = alphabet
            if self._db.in_transaction:  # SQLite may have rolled back already (e.g. disk full)
                self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

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
        entries = self._entries(files)
        self._check_limit(len(entries))
        self._check_capacity(host, None, len(entries))
        self._keep_pace(len(entries))
        now = time.time() if now is None else now
        with self._transaction() as db:
            cursor = db.execute(
                "INSERT INTO peers (host, port, agent, joined_at, last_seen)"
                " VALUES (?, ?, ?, ?, ?)",
                (host, port, agent, now, now),
            )
            peer_id = cursor.lastrowid
            assert peer_id is not None
            added, added_bytes = self._insert(peer_id, entries, ignore_existing=False)
            self._set_totals(peer_id, added, added_bytes)
        address = PeerAddress(host, port, fingerprint)
        self._addresses[peer_id] = address
        self._count(peer_id, added)
        same = self._ids_by_address.setdefault(address, [])
        same.append(peer_id)
        if len(same) > 1:
            self._repeated.update(same)  # every id at an address JOINed more than once
        return peer_id

    def replace_files(self, peer_id: int, files: Sequence[FileInfo]) -> int:
        """Make ``files`` the peer's whole list (a second JOIN); returns the new total."""
        entries = self._entries(files)
        self._check_limit(len(entries))
        self._require_peer(peer_id)
        self._check_capacity(self._addresses[peer_id].host, peer_id, len(entries))
        self._keep_pace(len(entries))
        files_total = len(entries)
        bytes_total = sum(size for _, size in entries.values())
        with self._transaction() as db:
            stale = []
            for row_id, hash_, name, key, size in db.execute(
                "SELECT id, hash, name, name_key, size FROM files WHERE peer_id = ?", (peer_id,)
            ):
                wanted = entries.get((hash_, name))
                if wanted is not None and wanted[1] == size:
                    del entries[(hash_, name)]
                else:
                    stale.append((row_id, key))
            self._delete(stale)
            self._insert(peer_id, entries, ignore_existing=False)
            self._set_totals(peer_id, files_total, bytes_total)
        self._count(peer_id, files_total)
        return files_total

    def update_files(self, peer_id: int, add: Sequence[FileInfo], remove: Sequence[str]) -> int:
        """Remove every entry of the hashes in ``remove``, then add ``add``; returns the total.

        Removing first lets one UPDATE rename a file (remove its hash, add the new name).
        """
        entries = self._entries(add)
        removed_hashes = list(dict.fromkeys(bytes.fromhex(value) for value in remove))
        files_total, bytes_total = self._require_peer(peer_id)
        self._keep_pace(len(entries))
        with self._transaction():
            removed = list(
                self._select_in(
                    "SELECT id, name_key, size FROM files WHERE peer_id = ? AND hash IN ({marks})",
                    removed_hashes,
                    before=(peer_id,),
                )
            )
            self._delete([(row_id, key) for row_id, key, _ in removed])
            added, added_bytes = self._insert(peer_id, entries, ignore_existing=True)
            files_total += added - len(removed)
            if files_total > self.max_files_per_peer:
                raise IndexLimitError(files_total, self.max_files_per_peer)
            self._check_capacity(self._addresses[peer_id].host, peer_id, files_total)
            bytes_total += added_bytes - sum(size for _, _, size in removed)
            self._set_totals(peer_id, files_total, bytes_total)
        self._count(peer_id, files_total)
        return files_total

    def set_reachable(self, peer_id: int, reachable: bool) -> None:
        """Whether the peer's listen port answered from outside (results say so)."""
        address = self._addresses.get(peer_id)
        if address is not None:
            self._addresses[peer_id] = dataclasses.replace(address, reachable=reachable)

    def forward_push(self, host: str, port: int, request: dict[str, object]) -> bool:
        """No other server shares this index: nobody to forward a push request to."""
        return False

    def take_forwarded(self) -> list[tuple[int, dict[str, object]]]:
        return []

    def remove_peer(self, peer_id: int) -> None:
        """Forget a peer: from now on no result, count or list includes it or its files.

        Its file rows are deleted later by ``upkeep``. Unknown ids are ignored.
        """
        if peer_id not in self._addresses:
            return
        rows = self.file_count(peer_id)
        self._db.execute("DELETE FROM peers WHERE peer_id = ?", (peer_id,))
        self._departed_rows += rows
        self._count(peer_id, 0)
        del self._files_of[peer_id]
        address = self._addresses.pop(peer_id)
        same = self._ids_by_address[address]
        same.remove(peer_id)
        self._repeated.discard(peer_id)
        if len(same) == 1:
            self._repeated.discard(same[0])
        elif not same:
            del self._ids_by_address[address]
        self._departed.append(peer_id)

    @property
    def upkeep_due(self) -> bool:
        """True while departed peers' rows or name-index merges wait for ``upkeep``."""
        return bool(self._departed) or self._merge_due or self._compact_due

    def upkeep(self, seconds: float) -> bool:
        """Delete departed peers' rows and merge the name index for about ``seconds``.

        Works in small transactions (at least one step per call), so it can be called
        between requests; returns True while more remains (see ``upkeep_due``). When
        the departed rows far outnumber the online ones (everyone left), the tables
        start afresh at once instead.
        """
        deadline = time.perf_counter() + seconds
        while self.upkeep_due:
            if self._departed:
                if (
                    self._departed_rows >= REBUILD_MIN_ROWS
                    and self._live_files <= REBUILD_LIVE_ROWS
                    and self._departed_rows >= 4 * self._live_files
                ):
                    self._rebuild()
                    continue
                self._purge_departed(PURGE_ROWS)
                if not self._departed and self._purged_rows >= max(
                    COMPACT_MIN_ROWS, self._live_files
                ):
                    self._compact_due = True
            # Merging between purges keeps the segments that deletions add few and cheap.
            if self._merge_due or self._compact_due:
                self._merge_step(MERGE_PAGES)
            if time.perf_counter() >= deadline:
                break
        return self.upkeep_due

    def _merge_step(self, pages: int) -> None:
        """Merge name-index segments, writing about ``pages`` leaf pages."""
        before = self._db.total_changes
        # A negative page count merges every segment into one, step by step.
        self._db.execute(
            "INSERT INTO names_fts (names_fts, rank) VALUES ('merge', ?)",
            (-pages if self._compact_due else pages,),
        )
        # SQLite's documented sign that a merge step found nothing left to merge.
        if self._db.total_changes - before < 2:
            if self._compact_due:
                self._purged_rows = 0
            self._merge_due = self._compact_due = False

    def _rebuild(self) -> None:
        """Start a new live database with the online peers and their rows (few, by the caller)."""
        db = self._db
        peers = db.execute(
            "SELECT peer_id, host, port, agent, files, bytes, joined_at, last_seen FROM peers"
        ).fetchall()
        (sequence,) = db.execute(
            "SELECT ifnull(max(seq), 0) FROM live.sqlite_sequence WHERE name = 'peers'"
        ).fetchone()
        # Through the online peers' ids (an index), not a scan of every row.
        rows = self._select_in(
            "SELECT id, peer_id, hash, name, name_key, size FROM files WHERE peer_id IN ({marks})",
            list(self._addresses),
        )
        rows = sorted(set(rows))
        # Dropping the whole in-memory database frees its pages at once, for the next rows
        # to use (30 ms for a million rows; a whole-table DELETE took 0.6 s and journaled).
        db.execute("DETACH DATABASE live")
        self._attach_live()
        with self._transaction():
            db.executemany(
                "INSERT INTO peers (peer_id, host, port, agent, files, bytes, joined_at, last_seen)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                peers,
            )
            # Peer ids are never given twice.
            db.execute("DELETE FROM live.sqlite_sequence WHERE name = 'peers'")
            db.execute(
                "INSERT INTO live.sqlite_sequence (name, seq) VALUES ('peers', ?)", (sequence,)
            )
            db.executemany(
                "INSERT INTO files (id, peer_id, hash, name, name_key, size)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                rows,
            )
            db.executemany(
                "INSERT INTO names_fts (rowid, name_key) VALUES (?, ?)",
                [(row[0], row[4]) for row in rows],
            )
        self._departed.clear()
        self._departed_rows = 0
        self._purged_rows = 0
        self._compact_due = False
        self._merge_due = bool(rows)
        self._alphabet = Counter()
        for row in rows:
            self._alphabet.update(set(row[4]))

    def _keep_pace(self, rows: int) -> None:
        """Purge up to ``rows`` departed rows first: while any wait, the tables never grow.

        Merges the name index as much as ``upkeep`` would have for those rows, so its
        segments do not pile up either.
        """
        purged = 0
        while self._departed and purged < rows:
            purged += self._purge_departed(min(rows - purged, PURGE_ROWS * 5))
        for _ in range(-(-purged // PURGE_ROWS)):
            self._merge_step(MERGE_PAGES)

    def _purge_departed(self, limit: int) -> int:
        """Delete up to ``limit`` rows of departed peers, oldest first; returns how many."""
        rows: list[tuple[int, str]] = []
        with self._transaction() as db:
            while self._departed and len(rows) < limit:
                peer_id = self._departed[0]
                wanted = limit - len(rows)
                found = db.execute(
                    "SELECT id, name_key FROM files WHERE peer_id = ? LIMIT ?", (peer_id, wanted)
                ).fetchall()
                rows.extend(found)
                if len(found) < wanted:
                    self._departed.popleft()
            self._delete(rows)
        self._departed_rows = max(0, self._departed_rows - len(rows)) if self._departed else 0
        self._purged_rows += len(rows)
        return len(rows)

    def touch(self, peer_id: int, now: float | None = None) -> None:
        """Note that the peer was heard from (``last_seen``)."""
        now = time.time() if now is None else now
        self._db.execute("UPDATE peers SET last_seen = ? WHERE peer_id = ?", (now, peer_id))

    def touch_many(self, seen: dict[int, float]) -> None:
        """Record ``last_seen`` for many peers in one transaction (one commit, not one each)."""
        if not seen:
            return
        with self._transaction() as db:
            db.executemany(
                "UPDATE peers SET last_seen = ? WHERE peer_id = ?",
                [(when, peer_id) for peer_id, when in seen.items()],
            )

    def check_file_count(self, files: Sequence[FileInfo], host: str | None = None) -> None:
        """Raise ``IndexLimitError`` if ``files`` holds more entries than a peer may share,
        or (given the ``host`` of a new peer) ``CapacityExceeded`` if the index or that
        host's files would grow past their limits."""
        count = len({(info.hash.lower(), info.name) for info in files})
        self._check_limit(count)
        if host is not None:
            self._check_capacity(host, None, count)

    def _check_limit(self, files: int) -> None:
        if files > self.max_files_per_peer:
            raise IndexLimitError(files, self.max_files_per_peer)

    def _check_capacity(self, host: str, peer_id: int | None, files: int) -> None:
        """Raise ``CapacityExceeded`` unless the peer (None: a new one) may hold ``files``."""
        growth = files - self._files_of.get(peer_id, 0) if peer_id is not None else files
        if growth <= 0:
            return
        if self._live_files + growth > self.max_files:
            raise CapacityExceeded(
                f"the index is full: it holds {self._live_files:,} files of"
                f" {self.max_files:,}; try again later",
                self._live_files + growth,
                self.max_files,
            )
        at_host = self._files_by_host[host] + growth
        if at_host > self.max_files_per_address:
            raise CapacityExceeded(
                f"{at_host:,} files from {host} is more than the"
                f" {self.max_files_per_address:,} files one address may share",
                at_host,
                self.max_files_per_address,
            )

    def _count(self, peer_id: int, files: int) -> None:
        """Note that an online peer (or one leaving: 0) now holds ``files`` entries."""
        change = files - self._files_of.get(peer_id, 0)
        self._files_of[peer_id] = files
        self._live_files += change
        host = self._addresses[peer_id].host
        self._files_by_host[host] += change
        if not self._files_by_host[host]:
            del self._files_by_host[host]

    def _require_peer(self, peer_id: int) -> tuple[int, int]:
        row = self._db.execute(
            "SELECT files, bytes FROM peers WHERE peer_id = ?", (peer_id,)
        ).fetchone()
        if row is None:
            raise KeyError(f"no peer {peer_id} in the index")
        return row[0], int(row[1])

    @staticmethod
    def _entries(files: Iterable[FileInfo]) -> _Entries:
        """The files keyed by (raw hash, name), each once (the first size listed wins)."""
        entries: _Entries = {}
        for info in files:
            key = (bytes.fromhex(info.hash), info.name)
            if key not in entries:
                entries[key] = (fold(info.name) + END, info.size)
        return entries

    def _insert(self, peer_id: int, entries: _Entries, ignore_existing: bool) -> tuple[int, int]:
        """Insert entries and index their names; returns how many were new and their bytes."""
        if not entries:
            return 0, 0
        db = self._db
        first_id = db.execute("SELECT ifnull(max(id), 0) + 1 FROM files").fetchone()[0]
        # Ids follow hash order, so the rows and both hash indexes fill in key order.
        rows = [
            (first_id + offset, peer_id, hash_, name, key, size)
            for offset, ((hash_, name), (key, size)) in enumerate(sorted(entries.items()))
        ]
        self._merge_due = True
        verb = "INSERT OR IGNORE" if ignore_existing else "INSERT"
        db.executemany(
            f"{verb} INTO files (id, peer_id, hash, name, name_key, size)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            rows,
        )
        if ignore_existing:
            inserted = {
                row_id
                for (row_id,) in db.execute("SELECT id FROM files WHERE id >= ?", (first_id,))
            }
            rows = [row for row in rows if row[0] in inserted]
        db.executemany(
            "INSERT INTO names_fts (rowid, name_key) VALUES (?, ?)",
            [(row[0], row[4]) for row in rows],
        )
        alphabet = self._alphabet
        if alphabet is not None:
            for row in rows:
                alphabet.update(set(row[4]))
            if len(alphabet) > MAX_ALPHABET:
                self._alphabet = None
        # Merge as much as the new names' segment will need over its life, now: left
        # to upkeep after a flood of JOINs, hundreds of small segments slowed every search.
        self._merge_step(max(MERGE_PAGES, len(rows) // ROWS_PER_MERGE_PAGE))
        return len(rows), sum(row[5] for row in rows)

    def _delete(self, rows: Sequence[tuple[int, str]]) -> None:
        """Delete file rows given as (id, name_key), and their index entries."""
        if not rows:
            return
        self._merge_due = True
        # FTS5 flushes its pending changes whenever a rowid is lower than the last one.
        rows = sorted(rows)
        self._db.executemany(
            "INSERT INTO names_fts (names_fts, rowid, name_key) VALUES ('delete', ?, ?)", rows
        )
        self._db.executemany("DELETE FROM files WHERE id = ?", [(row[0],) for row in rows])
        alphabet = self._alphabet
        if alphabet is not None:
            for _, key in rows:
                alphabet.subtract(set(key))

    def _set_totals(self, peer_id: int, files: int, total_bytes: int) -> None:
        stored = max(0, min(total_bytes, MAX_STORED_INT))
        self._db.execute(
            "UPDATE peers SET files = ?, bytes = ? WHERE peer_id = ?", (files, stored, peer_id)
        )

    # ------------------------------------------------------------ reading

    def counters(self) -> StoreCounters:
        """How many peers are online and how many file entries and bytes they share."""
        rows = self._db.execute("SELECT files, bytes FROM peers").fetchall()
        return StoreCounters(
            peers=len(rows),
            files=sum(files for files, _ in rows),
            bytes=sum(int(size) for _, size in rows),
        )

    def peers(self) -> list[PeerRecord]:
        """Every online peer, oldest first."""
        rows = self._db.execute(
            "SELECT peer_id, host, port, agent, files, bytes, joined_at, last_seen"
            " FROM peers ORDER BY peer_id"
        )
        return [_peer_record(row, self.server_name) for row in rows]

    def peer(self, peer_id: int) -> PeerRecord | None:
        row = self._db.execute(
            "SELECT peer_id, host, port, agent, files, bytes, joined_at, last_seen"
            " FROM peers WHERE peer_id = ?",
            (peer_id,),
        ).fetchone()
        return None if row is None else _peer_record(row, self.server_name)

    def peer_files(self, peer_id: int) -> list[FileInfo]:
        """The peer's entries, sorted by name (case-insensitively); none once it left."""
        if peer_id not in self._addresses:
            return []
        rows = self._db.execute(
            "SELECT name, size, hash FROM files WHERE peer_id = ? ORDER BY name_key, name, hash",
            (peer_id,),
        )
        return [FileInfo(name, size, hash_.hex()) for name, size, hash_ in rows]

    def file_count(self, peer_id: int) -> int:
        row = self._db.execute("SELECT files FROM peers WHERE peer_id = ?", (peer_id,)).fetchone()
        return 0 if row is None else row[0]

    def check_index(self) -> None:
        """Raise ``sqlite3.DatabaseError`` unless the name index agrees with ``files``."""
        self._db.execute("INSERT INTO names_fts (names_fts, rank) VALUES ('integrity-check', 1)")

    # ------------------------------------------------------------ search

    def search(
        self, query: str, limit: int = 100, exclude_peer: int | None = None
    ) -> list[SearchResult]:
        """The results of ``search_page`` (see there)."""
        return self.search_page(query, limit, exclude_peer).results

    def search_page(
        self, query: str, limit: int = 100, exclude_peer: int | None = None
    ) -> SearchPage:
        """Files whose name holds every term of ``query``, one result per (hash, size, name).

        A file is its hash and its size together: a peer that announces a real file's hash
        with another size announces another file, listed apart, so a false size never hides
        the real one. ``peers`` lists every online peer holding that hash and size (under any
        name) except
        ``exclude_peer``, by peer id; results no other peer holds are left out. An
        exact whole-name match ranks first, then more peers, then name. ``more`` says
        that more than ``limit`` results matched.

        Every matching name can be found; ranking by peers looks at the first
        ``CANDIDATE_FACTOR`` x ``limit`` distinct matches plus the exact ones, so a
        term matching a million entries stays fast.
        """
        terms = SearchTerms.parse(query)
        if terms is None or limit <= 0 or not self._live_files:
            return SearchPage([], False)
        groups, more, holder_ids = self._ranked_groups(terms, limit, exclude_peer)
        holders = self._addresses_of(holder_ids, [group.key for group in groups])
        results = [
            SearchResult(group.name, group.size, group.hash.hex(), tuple(holders[group.key]))
            for group in groups
        ]
        return SearchPage(results, more)

    def sources(
        self, file_hash: str, size: int | None = None, exclude_peer: int | None = None
    ) -> list[SearchResult]:
        """Who holds the file with this hash (and size, when given): one result per
        (size, name), each listing its online holders but ``exclude_peer``; at most
        ``MAX_SOURCE_RESULTS`` results, those most peers hold first."""
        hash_ = bytes.fromhex(file_hash)
        sql = (
            "SELECT DISTINCT f.hash, f.name, f.size FROM files AS f"
            f" CROSS JOIN peers AS p ON {_ONLINE} WHERE f.hash = ?"
        )
        params: tuple[object, ...] = (hash_,)
        if size is not None:
            sql += " AND f.size = ?"
            params += (size,)
        rows = self._db.execute(sql + " LIMIT ?", (*params, MAX_SOURCE_RESULTS * 4)).fetchall()
        groups = [RankedGroup(h, name, s, exact=False) for h, name, s in rows]
        holder_ids = self._holder_ids(list({group.key for group in groups}), exclude_peer)
        for group in groups:
            group.holders = len(holder_ids[group.key])
        held = sorted((g for g in groups if g.holders), key=RankedGroup.rank_key)
        held = held[:MAX_SOURCE_RESULTS]
        addresses = self._addresses_of(holder_ids, [group.key for group in held])
        return [SearchResult(g.name, g.size, g.hash.hex(), tuple(addresses[g.key])) for g in held]

    def browse(self, host: str, port: int, limit: int = 500) -> SearchPage:
        """Everything the online peer at ``host:port`` shares, by name (at most ``limit``)."""
        address = PeerAddress(normalize_address(host), port)
        peer_ids = [pid for pid, known in self._addresses.items() if known == address]
        if not peer_ids:
            return SearchPage([], False)
        rows = self._select_in(
            "SELECT DISTINCT f.name, f.size, f.hash FROM files AS f WHERE f.peer_id IN ({marks})"
            " ORDER BY f.name_key, f.name LIMIT ?",
            peer_ids,
            after=(limit + 1,),
        )
        # The newest JOIN at this address gives the fingerprint and reachability.
        holder = self._addresses[max(peer_ids)]
        results = [SearchResult(name, size, hash_.hex(), (holder,)) for name, size, hash_ in rows]
        return SearchPage(results[:limit], len(results) > limit)

    def search_files(self, query: str, limit: int = 1000) -> list[IndexedFile]:
        """For the admin window: like ``search`` but counting every peer; ``""`` lists all.

        With no terms the list is sorted by name (case-insensitively).
        """
        if limit <= 0:
            return []
        terms = SearchTerms.parse(query)
        if terms is not None:
            groups, _, _ = self._ranked_groups(terms, limit, None)
        else:
            groups = self._groups_by_name(limit)
        return [
            IndexedFile(group.name, group.size, group.hash.hex(), group.holders) for group in groups
        ]

    def _ranked_groups(
        self, terms: SearchTerms, limit: int, exclude: int | None
    ) -> tuple[list[RankedGroup], bool, dict[bytes, list[int]]]:
        """The best ``limit`` (hash, name) groups held by a peer other than ``exclude``.

        Also True when more groups than ``limit`` matched, and the ids of the online
        peers other than ``exclude`` holding each candidate's hash.
        """
        if terms.matches_nothing:
            return [], False, {}
        cap = max(limit * CANDIDATE_FACTOR, MIN_CANDIDATES, limit + 1)
        groups = self._candidates(terms, cap, exclude)
        holder_ids = self._holder_ids(list({group.key for group in groups}), exclude)
        held = []
        for group in groups:
            group.holders = len(holder_ids[group.key])
            if group.holders:
                held.append(group)
        held.sort(key=RankedGroup.rank_key)
        return held[:limit], len(held) > limit, holder_ids

    def _candidates(self, terms: SearchTerms, cap: int, exclude: int | None) -> list[RankedGroup]:
        """Up to ``cap`` matching groups some peer other than ``exclude`` holds, exact ones first.

        Fewer than ``cap`` means these are all of them.
        """
        db = self._db
        alphabet = self._alphabet
        if alphabet is not None and any(alphabet[c] <= 0 for term in terms.terms for c in term):
            return []  # no name holds that character
        if exclude is None:
            held, held_params = "", ()
        else:
            # A row of the asker's counts only if another online peer holds its hash (under
            # any name): filtered here, so the asker's own files never crowd out the rest.
            held = (
                " AND (f.peer_id != ? OR EXISTS (SELECT 1 FROM files AS g CROSS JOIN peers AS q"
                " ON q.peer_id = g.peer_id WHERE g.hash = f.hash AND g.peer_id != ?))"
            )
            held_params = (exclude, exclude)
        groups: dict[tuple[bytes, int, str], RankedGroup] = {}
        exact_rows = db.execute(
            "SELECT DISTINCT f.hash, f.name, f.size FROM files AS f"
            f" CROSS JOIN peers AS p ON {_ONLINE} WHERE f.name_key = ?{held} LIMIT ?",
            (terms.exact + END, *held_params, cap),
        ).fetchall()
        for hash_, name, size in exact_rows:
            groups.setdefault((hash_, size, name), RankedGroup(hash_, name, size, exact=True))
        # Each term the index can look up, as an FTS5 expression; the long terms' are
        # not exact (see _trigram_cover), so they are checked in the names too.
        indexed = [(term, _trigram_cover(term)) for term in terms.long_terms]
        checked = list(terms.long_terms)
        for term in terms.short_terms:
            if alphabet is None:
                checked.append(term)
            elif len(term) == 2:
                # The term followed by any character (or END): one of these trigrams.
                held_by = (char for char, count in alphabet.items() if count > 0)
                either = " OR ".join(_phrase(term + char) for char in held_by)
                indexed.append((term, f"({either})"))
            elif alphabet[term] <= RARE_CHARACTER_ROWS:
                grams = [
                    gram
                    for (gram,) in db.execute(
                        "SELECT term FROM names_vocab WHERE term >= ? AND term <= ?",
                        (term, term + "\U0010ffff" * 2),
                    )
                ]
                if not grams:
                    return []
                indexed.append((term, "(" + " OR ".join(map(_phrase, grams)) + ")"))
            else:
                checked.append(term)
        rows = self._driven_rows(indexed, checked, held, held_params, cap)
        if rows is None:

            def filtered(source: str) -> str:
                checks = "".join(" AND instr(f.name_key, ?)" for _ in checked)
                return (
                    f"SELECT DISTINCT f.hash, f.name, f.size FROM {source}"
                    f" CROSS JOIN peers AS p ON {_ONLINE} WHERE 1{checks}{held} LIMIT ?"
                )

            if indexed:
                # FTS5 walks the terms' match lists together, skipping ahead in the longer.
                sql = filtered(
                    "(SELECT rowid FROM names_fts WHERE names_fts MATCH ?) AS m"
                    " CROSS JOIN files AS f ON f.id = m.rowid"
                )
                match = " AND ".join(expression for _, expression in indexed)
                rows = db.execute(sql, (match, *checked, *held_params, cap)).fetchall()
            else:
                sql = filtered("files AS f")
                if self._departed_rows > self._live_files:
                    # Mostly departed rows waiting for upkeep: read the online peers' rows
                    # through the peer_id index instead (slower per row than a scan).
                    sql = filtered("peers AS o CROSS JOIN files AS f ON o.peer_id = f.peer_id")
                rows = db.execute(sql, (*checked, *held_params, cap)).fetchall()
        for hash_, name, size in rows:
            groups.setdefault((hash_, size, name), RankedGroup(hash_, name, size, exact=False))
        return list(groups.values())

    def _driven_rows(
        self,
        indexed: list[tuple[str, str]],
        checked: list[str],
        held: str,
        held_params: tuple[object, ...],
        cap: int,
    ) -> list[tuple[bytes, str, int]] | None:
        """Matches found through one term's index matches, or None if none suits.

        Longest term first, up to ``DRIVER_ROWS + 1`` index matches of one term are read
        and the other terms checked in their names. That answers when the term has no
        more matches than that (all of them were read), or when ``cap`` names matched;
        when they match often enough that reading on would find ``cap`` within
        ``DRIVER_READ`` times as many, the term's index matches are read on. Stepping
        through a common term's long index list, as the AND of every term does, costs
        more than any of these.
        """
        if len(indexed) < 2:
            return None
        for term, expression in sorted(indexed, key=lambda item: -len(item[0])):
            row_ids = [
                row_id
                for (row_id,) in self._db.execute(
                    "SELECT rowid FROM names_fts WHERE names_fts MATCH ? LIMIT ?",
                    (expression, DRIVER_ROWS + 1),
                )
            ]
            others = list(
                dict.fromkeys([*checked, *(other for other, _ in indexed if other != term)])
            )
            checks = "".join(" AND instr(f.name_key, ?)" for _ in others)
            rows = self._db.execute(
                "SELECT DISTINCT f.hash, f.name, f.size FROM json_each(?) AS m"
                f" CROSS JOIN files AS f ON f.id = m.value CROSS JOIN peers AS p ON {_ONLINE}"
                f" WHERE 1{checks}{held} LIMIT ?",
                (json.dumps(row_ids), *others, *held_params, cap),
            ).fetchall()
            if len(row_ids) <= DRIVER_ROWS or len(rows) >= cap:
                return rows
            if len(rows) * DRIVER_READ >= cap:
                # Read on from the last index match read (FTS5 seeks to a rowid range); a
                # whole cap, as some of these names may repeat those already found.
                more = self._db.execute(
                    "SELECT DISTINCT f.hash, f.name, f.size FROM (SELECT rowid FROM names_fts"
                    " WHERE names_fts MATCH ? AND rowid > ?) AS m"
                    f" CROSS JOIN files AS f ON f.id = m.rowid CROSS JOIN peers AS p"
                    f" ON {_ONLINE} WHERE 1{checks}{held} LIMIT ?",
                    (expression, row_ids[-1], *others, *held_params, cap),
                )
                return rows + more.fetchall()
        return None

    def _groups_by_name(self, limit: int) -> list[RankedGroup]:
        rows = self._db.execute(
            "SELECT DISTINCT f.hash, f.name, f.size FROM files AS f"
            f" CROSS JOIN peers AS p ON {_ONLINE}"
            " ORDER BY f.name_key, f.name, f.hash LIMIT ?",
            (limit,),
        ).fetchall()
        groups: dict[tuple[bytes, int, str], RankedGroup] = {}
        for hash_, name, size in rows:
            groups.setdefault((hash_, size, name), RankedGroup(hash_, name, size, exact=False))
        hashes = list({group.hash for group in groups.values()})
        counts = dict(
            self._select_in(
                "SELECT f.hash, count(DISTINCT f.peer_id) FROM files AS f"
                f" CROSS JOIN peers AS p ON {_ONLINE}"
                " WHERE f.hash IN ({marks}) GROUP BY f.hash",
                hashes,
            )
        )
        for group in groups.values():
            group.holders = counts.get(group.hash, 0)
        return list(groups.values())

    def _holder_ids(
        self, keys: Sequence[tuple[bytes, int]], exclude: int | None
    ) -> dict[tuple[bytes, int], list[int]]:
        """The online peers holding each (hash, size), by peer id, without ``exclude`` and any
        other peer id at its address (itself before a restart)."""
        addresses = self._addresses
        skip = set(self._ids_by_address[addresses[exclude]]) if exclude in addresses else set()
        holders: dict[tuple[bytes, int], list[int]] = {key: [] for key in keys}
        rows = self._select_in(
            "SELECT DISTINCT hash, size, peer_id FROM files WHERE hash IN ({marks})"
            " AND peer_id != ? ORDER BY hash, size, peer_id",
            list({hash_ for hash_, _size in holders}),
            after=(-1 if exclude is None else exclude,),
        )
        for hash_, size, peer_id in rows:
            listed = holders.get((hash_, size))
            # A peer id not in addresses has departed and is not purged yet.
            if listed is not None and peer_id in addresses and peer_id not in skip:
                listed.append(peer_id)
        return holders

    def _addresses_of(
        self, holder_ids: dict[tuple[bytes, int], list[int]], keys: Sequence[tuple[bytes, int]]
    ) -> dict[tuple[bytes, int], list[PeerAddress]]:
        """The addresses of each file's holders, in peer id order.

        An address is listed once even if two peer ids have it (a JOIN on a new
        connection before the server noticed the old one drop), with what the newest of
        them JOINed with: a peer that restarted with a new identity is pinned to that one.
        """
        addresses = self._addresses
        repeated = self._repeated
        holders: dict[tuple[bytes, int], list[PeerAddress]] = {}
        for key in keys:
            listed = holders[key] = []
            for peer_id in holder_ids[key]:
                if peer_id not in repeated:
                    listed.append(addresses[peer_id])
                    continue
                # The newest id at the address, whether or not it holds this file yet (a
                # big JOIN arrives in steps; a restarted peer may UPDATE its files later).
                address = addresses[self._ids_by_address[addresses[peer_id]][-1]]
                if address not in listed:
                    listed.append(address)
        return holders

    def _select_in(
        self,
        sql: str,
        values: Sequence[object],
        before: tuple[object, ...] = (),
        after: tuple[object, ...] = (),
    ) -> list[tuple]:
        """Run ``sql`` with ``{marks}`` standing for an IN list, over ``values`` in chunks."""
        rows: list[tuple] = []
        for start in range(0, len(values), IN_CHUNK):
            chunk = list(values[start : start + IN_CHUNK])
            width = 16
            while width < len(chunk):
                width *= 2
            chunk += [chunk[-1]] * (width - len(chunk))
            marks = ", ".join("?" * width)
            rows += self._db.execute(sql.format(marks=marks), (*before, *chunk, *after))
        return rows

    # ------------------------------------------------------------ bans

    def ban(self, address: str, reason: str = "") -> None:
        """Refuse ``address`` from now on (kept across restarts); banning again updates it."""
        self._db.execute(
            "INSERT INTO bans (address, reason, banned_at) VALUES (?, ?, ?)"
            " ON CONFLICT (address) DO UPDATE SET reason = excluded.reason,"
            " banned_at = excluded.banned_at",
            (normalize_address(address), reason, time.time()),
        )

    def unban(self, address: str) -> None:
        self._db.execute("DELETE FROM bans WHERE address = ?", (normalize_address(address),))

    def is_banned(self, address: str) -> bool:
        row = self._db.execute(
            "SELECT 1 FROM bans WHERE address = ?", (normalize_address(address),)
        ).fetchone()
        return row is not None

    def bans(self) -> list[tuple[str, str, float]]:
        """Every ban as (address, reason, banned_at), oldest first."""
        rows = self._db.execute(
            "SELECT address, reason, banned_at FROM bans ORDER BY banned_at, address"
        )
        return [(address, reason, banned_at) for address, reason, banned_at in rows]


def _trigram_cover(term: str) -> str:
    """An FTS5 expression every name holding ``term`` (3+ characters) matches: the AND of
    trigrams that cover it, without overlap where they can.

    Not exact (the trigrams may sit apart in a name), but about twice as fast as the
    phrase of every trigram; the caller checks the term itself in the matched names.
    """
    starts = list(range(0, len(term) - TRIGRAM + 1, TRIGRAM))
    if starts[-1] != len(term) - TRIGRAM:
        starts.append(len(term) - TRIGRAM)
    grams = dict.fromkeys(term[start : start + TRIGRAM] for start in starts)
    return "(" + " AND ".join(_phrase(gram) for gram in grams) + ")"


def _phrase(text: str) -> str:
    """``text`` as an FTS5 string: every character literal, to the trigram tokenizer."""
    return '"' + text.replace('"', '""') + '"'


def _peer_record(row: tuple, server: str) -> PeerRecord:
    peer_id, host, port, agent, files, size, joined_at, last_seen = row
    return PeerRecord(peer_id, host, port, agent, files, int(size), joined_at, last_seen, server)
