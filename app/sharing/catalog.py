"""The published catalog: the shared files announced so far, by path and by hash (pure).

Thread-safe: the library thread publishes and withdraws, upload threads look files up and
withdraw one they found changed. This is what ``UploadServer`` needs from the library.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from app.network.protocol import FileInfo


@dataclass(frozen=True)
class SharedFile:
    """One file of the shared folders, hashed and ready to serve."""

    path: Path
    name: str
    size: int
    mtime_ns: int
    hash: str
    pieces: tuple[bytes, ...]

    def info(self) -> FileInfo:
        return FileInfo(name=self.name, size=self.size, hash=self.hash)

    def same_version(self, other: SharedFile) -> bool:
        """True when both describe the same bytes at the same path."""
        return (self.path, self.size, self.mtime_ns, self.hash) == (
            other.path,
            other.size,
            other.mtime_ns,
            other.hash,
        )


class PublishedCatalog:
    """Published files by path and by hash, and the paths whose cached digest is distrusted."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_path: dict[str, SharedFile] = {}
        self._by_hash: dict[str, dict[str, SharedFile]] = {}
        self._distrusted: set[str] = set()

    def files(self) -> list[SharedFile]:
        with self._lock:
            return list(self._by_path.values())

    def get(self, path: str) -> SharedFile | None:
        with self._lock:
            return self._by_path.get(path)

    def lookup(self, file_hash: str) -> SharedFile | None:
        with self._lock:
            holders = self._by_hash.get(file_hash)
            return next(iter(holders.values())) if holders else None

    def snapshot(self) -> tuple[dict[str, SharedFile], set[str]]:
        """A copy of the published files by path, and of the distrusted paths."""
        with self._lock:
            return dict(self._by_path), set(self._distrusted)

    def publish(self, batch: Sequence[SharedFile]) -> None:
        """Make each file the entry for its path."""
        with self._lock:
            for shared in batch:
                path = os.fspath(shared.path)
                self._unindex(path)
                self._by_path[path] = shared
                self._by_hash.setdefault(shared.hash, {})[path] = shared

    def withdraw(self, paths: Sequence[str]) -> list[SharedFile]:
        """Drop these paths; the entries that were published."""
        with self._lock:
            return [shared for path in paths if (shared := self._unindex(path)) is not None]

    def distrust(self, shared: SharedFile) -> bool:
        """Withdraw ``shared`` if it is still the entry for its path, and distrust its digest.

        True when it was withdrawn (False: it had been replaced or withdrawn already).
        """
        path = os.fspath(shared.path)
        with self._lock:
            current = self._by_path.get(path)
            if current is None or not current.same_version(shared):
                return False
            self._unindex(path)
            self._distrusted.add(path)
            return True

    def trust(self, path: str) -> None:
        with self._lock:
            self._distrusted.discard(path)

    def removals(self, gone: Sequence[SharedFile]) -> tuple[list[str], list[SharedFile]]:
        """What to announce after ``gone`` were withdrawn: hashes to remove, files to re-add.

        A hash goes when no path holds it any more, or when a name it was announced under is
        gone; the files still holding such a hash are announced again with their names.
        """
        removed: list[str] = []
        still_shared: list[SharedFile] = []
        with self._lock:
            for file_hash in dict.fromkeys(shared.hash for shared in gone):
                remaining = list(self._by_hash.get(file_hash, {}).values())
                lost_names = {s.name for s in gone if s.hash == file_hash} - {
                    s.name for s in remaining
                }
                if not remaining or lost_names:
                    removed.append(file_hash)
                    still_shared.extend(remaining)
        return removed, still_shared

    def _unindex(self, path: str) -> SharedFile | None:
        """Drop ``path`` from both maps; the caller holds the lock."""
        shared = self._by_path.pop(path, None)
        if shared is not None:
            holders = self._by_hash.get(shared.hash)
            if holders is not None:
                holders.pop(path, None)
                if not holders:
                    del self._by_hash[shared.hash]
        return shared
