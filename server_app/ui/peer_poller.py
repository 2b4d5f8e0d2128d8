"""Reads a shared index's peers off the GUI thread and says what changed since the last read.

On a shared (PostgreSQL) index other servers' peers come and go without this server's
signals, so the admin window reads the whole index again every few seconds. At tens of
thousands of peers the read and the comparison take a second or more: ``SharedPeerPoller``
does both on a thread of its own, over a ``PeerReader`` (a connection of its own), and
emits only the differences as one ``PeerChanges``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from PySide6.QtCore import QObject, Signal

from server_app.store import IndexUnavailable, PeerReader, PeerRecord

log = logging.getLogger("napster.admin")

#: How long ``stop`` waits for a read under way (one over 50,000 peers takes about 0.3 s).
STOP_SECONDS = 3.0


@dataclass(frozen=True)
class PeerChanges:
    """What one read of the index found changed since the read before it."""

    #: ``time.monotonic()`` when the read started: it cannot show a leave seen after that.
    read_at: float
    joined: list[PeerRecord]
    updated: list[PeerRecord]
    left: list[int]


class SharedPeerPoller(QObject):
    """Owns the polling thread and its reader; ``poll()`` asks for a read and returns at once.

    The first read reports every peer as joined. A read that finds the database away
    reports nothing and keeps the last snapshot (the next ``poll()`` tries again). The
    object has no parent, so a receiver deleted first only loses its connection; after
    ``stop()`` nothing more is emitted.
    """

    #: Emitted from the polling thread (queued to receivers) when a read found changes.
    changed = Signal(PeerChanges)
    #: Emitted from the polling thread when a read failed (the database is away): why.
    unavailable = Signal(str)

    def __init__(self, open_reader: Callable[[], PeerReader]) -> None:
        super().__init__()
        self._open_reader = open_reader
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="admin-peer-poll", daemon=True)
        self._thread.start()

    def poll(self) -> None:
        """Read the index again as soon as the thread is free (reads never pile up)."""
        self._wake.set()

    def stop(self) -> bool:
        """End the thread (it closes its connection); True if it ended within ``STOP_SECONDS``."""
        self._stop.set()
        self._wake.set()
        self._thread.join(STOP_SECONDS)
        return not self._thread.is_alive()

    def is_running(self) -> bool:
        return self._thread.is_alive()

    def _run(self) -> None:
        reader = self._open_reader()
        snapshot: dict[int, PeerRecord] = {}
        try:
            while True:
                self._wake.wait()
                if self._stop.is_set():
                    return
                self._wake.clear()
                read_at = time.monotonic()
                try:
                    records = reader.peers()
                except IndexUnavailable as exc:
                    log.debug("The admin window could not read the index's peers: %s", exc)
                    if not self._stop.is_set():
                        self.unavailable.emit(str(exc))
                    continue
                except Exception:  # a bug must not end the polling for good: said, then on
                    log.exception("The admin window's read of the index's peers failed")
                    continue
                current = {record.peer_id: record for record in records}
                joined: list[PeerRecord] = []
                updated: list[PeerRecord] = []
                for peer_id, record in current.items():
                    old = snapshot.get(peer_id)
                    if old is None:
                        joined.append(record)
                    elif old != record:
                        updated.append(record)
                left = [peer_id for peer_id in snapshot if peer_id not in current]
                snapshot = current
                if (joined or updated or left) and not self._stop.is_set():
                    self.changed.emit(PeerChanges(read_at, joined, updated, left))
        finally:
            reader.close()
