"""A small shared-file catalog for upload tests (the real one is app.sharing.library.Library)."""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from app.network.pieces import FileDigest, hash_file
from app.sharing import confined


@dataclass(frozen=True)
class Entry:
    path: Path
    name: str
    size: int
    mtime_ns: int
    hash: str
    pieces: tuple[bytes, ...]


class Catalog:
    """Thread-safe map of hash -> shared file, recording mark_changed calls."""

    def __init__(self) -> None:
        self.entries: dict[str, Entry] = {}
        self.changed: list[Entry] = []
        self.lock = threading.Lock()

    def share(self, path: Path, digest: FileDigest | None = None) -> Entry:
        digest = digest or hash_file(path)
        stat = os.stat(path)
        entry = Entry(path, path.name, stat.st_size, stat.st_mtime_ns, digest.hash, digest.pieces)
        with self.lock:
            self.entries[entry.hash] = entry
        return entry

    def lookup(self, file_hash: str) -> Entry | None:
        with self.lock:
            return self.entries.get(file_hash)

    def is_unchanged(self, entry: Entry) -> bool:
        try:
            stat = os.stat(entry.path)
        except OSError:
            return False
        return stat.st_size == entry.size and stat.st_mtime_ns == entry.mtime_ns

    def open_shared(self, entry: Entry) -> BinaryIO:
        """Opened beneath the file's own folder, the way the real library does."""
        fd = confined.open_file(str(entry.path.parent), (entry.path.name,))
        return os.fdopen(fd, "rb", buffering=0)

    def mark_changed(self, entry: Entry) -> None:
        with self.lock:
            self.changed.append(entry)
            self.entries.pop(entry.hash, None)
