"""The hash cache: digests of shared files kept in SQLite between runs (pure, no Qt).

Keyed by path, and valid while the size and modification time match; found again by
(inode, size, time) after a rename. All methods run on one thread (the library's).
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
from typing import NamedTuple

from app.network.pieces import file_hash_from_digests, piece_count
from app.sharing.policy import SQLITE_SIDE_FILES, FileStat

log = logging.getLogger("napster.library")

CACHE_VERSION = 1
DIGEST_SIZE = 32


class CacheRow(NamedTuple):
    size: int
    mtime_ns: int
    inode: str
    hash: str
    pieces: tuple[bytes, ...]


class HashCache:
    """Cached digests by path, in memory and in an SQLite file (or in memory only)."""

    def __init__(self, location: str) -> None:
        self.location = location
        self._rows: dict[str, CacheRow] = {}
        self._by_inode: dict[tuple[str, int, int], str] = {}
        self._db: sqlite3.Connection | None = None
        self._dirty = False

    def open(self) -> None:
        """Load the cache; a damaged file is replaced, an unusable place means memory only."""
        try:
            self._db = self._connect(self.location)
            return
        except (sqlite3.Error, OSError) as exc:
            log.warning(
                "The hash cache %s is unusable (%s); starting a new one", self.location, exc
            )
        for suffix in ("", *SQLITE_SIDE_FILES):
            with contextlib.suppress(OSError):
                os.unlink(self.location + suffix)
        try:
            self._db = self._connect(self.location)
        except (sqlite3.Error, OSError) as exc:
            log.error(
                "Cannot keep a hash cache at %s (%s); every start hashes again",
                self.location,
                exc,
            )
            self._db = self._connect(":memory:")

    def close(self) -> None:
        if self._db is not None:
            with contextlib.suppress(sqlite3.Error):
                self._db.commit()
            self._db.close()
            self._db = None

    def get(self, path: str) -> CacheRow | None:
        return self._rows.get(path)

    def paths(self) -> list[str]:
        return list(self._rows)

    def known(self, path: str, st: FileStat, still_there: set[str] | dict) -> CacheRow | None:
        """The cached digest for this file, by path or, after a rename, by inode."""
        row = self._rows.get(path)
        if row is not None and (row.size, row.mtime_ns) == (st.size, st.mtime_ns):
            return row
        old_path = self._by_inode.get((st.inode, st.size, st.mtime_ns))
        if old_path is not None and old_path not in still_there:
            return self._rows.get(old_path)
        return None

    def put(self, path: str, row: CacheRow) -> None:
        if self._rows.get(path) == row:
            return
        self._remember(path, row)
        self._write(
            "INSERT OR REPLACE INTO files VALUES (?, ?, ?, ?, ?, ?)",
            (
                os.fsencode(path),
                row.size,
                row.mtime_ns,
                row.inode,
                row.hash,
                b"".join(row.pieces),
            ),
        )

    def delete(self, path: str) -> None:
        row = self._rows.pop(path, None)
        if row is None:
            return
        if self._by_inode.get((row.inode, row.size, row.mtime_ns)) == path:
            del self._by_inode[(row.inode, row.size, row.mtime_ns)]
        self._write("DELETE FROM files WHERE path = ?", (os.fsencode(path),))

    def commit(self) -> None:
        if self._db is not None and self._dirty:
            try:
                self._db.commit()
                self._dirty = False
            except sqlite3.Error as exc:
                log.warning("Cannot write to the hash cache: %s", exc)

    def _write(self, sql: str, values: tuple) -> None:
        if self._db is None:
            return
        try:
            self._db.execute(sql, values)
            self._dirty = True
        except sqlite3.Error as exc:
            log.warning("Cannot write to the hash cache: %s", exc)

    def _remember(self, path: str, row: CacheRow) -> None:
        old = self._rows.get(path)
        if old is not None:
            self._by_inode.pop((old.inode, old.size, old.mtime_ns), None)
        self._rows[path] = row
        self._by_inode[(row.inode, row.size, row.mtime_ns)] = path

    def _connect(self, location: str) -> sqlite3.Connection:
        if location != ":memory:":
            os.makedirs(os.path.dirname(location), exist_ok=True)
        db = sqlite3.connect(location)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            if db.execute("PRAGMA user_version").fetchone()[0] != CACHE_VERSION:
                db.execute("DROP TABLE IF EXISTS files")
                db.execute(
                    "CREATE TABLE files (path BLOB PRIMARY KEY, size INTEGER NOT NULL,"
                    " mtime_ns INTEGER NOT NULL, inode TEXT NOT NULL, hash TEXT NOT NULL,"
                    " pieces BLOB NOT NULL) WITHOUT ROWID"
                )
                db.execute(f"PRAGMA user_version={CACHE_VERSION}")
                db.commit()
            rows = db.execute("SELECT path, size, mtime_ns, inode, hash, pieces FROM files")
            bad: list[bytes] = []
            for raw_path, size, mtime_ns, inode, file_hash, blob in rows:
                row = _checked_row(size, mtime_ns, inode, file_hash, blob)
                if row is None or not isinstance(raw_path, bytes):
                    bad.append(raw_path)
                    continue
                self._remember(os.fsdecode(raw_path), row)
            if bad:
                log.info("Dropping %d damaged rows from the hash cache", len(bad))
                db.executemany("DELETE FROM files WHERE path = ?", [(p,) for p in bad])
                db.commit()
        except BaseException:
            db.close()
            self._rows.clear()
            self._by_inode.clear()
            raise
        return db


def _checked_row(size, mtime_ns, inode, file_hash, blob) -> CacheRow | None:
    """A cache row checked for sense; None when it is damaged."""
    if not (
        isinstance(size, int)
        and isinstance(mtime_ns, int)
        and isinstance(inode, str)
        and isinstance(file_hash, str)
        and isinstance(blob, bytes)
        and size >= 0
        and len(blob) == piece_count(size) * DIGEST_SIZE
    ):
        return None
    pieces = tuple(blob[i : i + DIGEST_SIZE] for i in range(0, len(blob), DIGEST_SIZE))
    if file_hash_from_digests(pieces) != file_hash:
        return None
    return CacheRow(size, mtime_ns, inode, file_hash, pieces)
