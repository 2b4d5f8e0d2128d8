"""Turns the server's peer events into timed, bounded batches of changes to the peers table.

A burst of thousands of JOINs and LEAVEs becomes a few model changes every
``INTERVAL_MS``; each batch stops after ``BUDGET_MS`` and the rest waits for the
next tick, so the event loop is never held for long. A peer that joins and
leaves between two ticks never reaches the table.

When other servers share the index (PostgreSQL), their peers come and go without
this server's signals: the whole index is read again every ``POLL_MS`` and the
differences go through the same batches.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterable

from PySide6.QtCore import QObject, QTimer, Signal

from server_app.index_server import IndexServer
from server_app.store import IndexUnavailable, PeerRecord
from server_app.ui.models import PeerRow, PeerTableModel

INTERVAL_MS = 150
BUDGET_MS = 15
CHUNK = 100
POLL_MS = 2000


class PeerFeed(QObject):
    """Applies pending joins, leaves and updates to a ``PeerTableModel``."""

    #: Emitted after a batch changed the table.
    applied = Signal()
    #: Emitted when any peer or file changed (the files list may be out of date).
    index_changed = Signal()

    def __init__(
        self, server: IndexServer, model: PeerTableModel, parent: QObject | None = None
    ) -> None:
        super().__init__(parent)
        self.server = server
        self.model = model
        self._joined: dict[int, None] = {}  # an ordered set: joins are shown in order
        self._left: set[int] = set()
        self._updated: set[int] = set()
        self._timer = QTimer(self, singleShot=True, interval=INTERVAL_MS)
        self._timer.timeout.connect(self.apply)
        server.peer_joined.connect(self._on_joined)
        server.peer_left.connect(self._on_left)
        server.peer_updated.connect(self._on_updated)
        #: Records read by the last poll of a shared index, shown without asking again.
        self._polled: dict[int, PeerRecord] = {}
        self._poll_timer = QTimer(self, interval=POLL_MS)
        self._poll_timer.timeout.connect(self.poll)
        if server.store.shared:
            self._poll_timer.start()

    def disconnect_server(self) -> None:
        self.server.peer_joined.disconnect(self._on_joined)
        self.server.peer_left.disconnect(self._on_left)
        self.server.peer_updated.disconnect(self._on_updated)
        self._timer.stop()
        self._poll_timer.stop()

    def poll(self) -> None:
        """Read the whole shared index and queue what changed since the table was filled."""
        try:
            records = self.server.store.peers()
        except IndexUnavailable:
            return  # the table keeps what it showed; the log says the database is away
        before = len(self._joined) + len(self._updated) + len(self._left)
        self._polled = {record.peer_id: record for record in records}
        self._left.update(set(self.model.peer_ids()) - self._polled.keys())
        for peer_id, record in self._polled.items():
            row = self.model.row_of(peer_id)
            if row is None:
                self._joined[peer_id] = None
            elif PeerRow.from_record(record) != self.model.peer_at(row):
                self._updated.add(peer_id)
        self._schedule()
        if len(self._joined) + len(self._updated) + len(self._left) != before:
            self.index_changed.emit()

    def pending(self) -> int:
        return len(self._joined) + len(self._left) + len(self._updated)

    def load_current(self) -> None:
        """Queue every peer the index holds now (when the window opens on a running server)."""
        for record in self.server.store.peers():
            self._joined[record.peer_id] = None
        self._schedule()

    def refresh(self, peer_ids: Iterable[int]) -> None:
        """Re-read these peers (for "last seen", which changes without a signal)."""
        self._updated.update(peer_id for peer_id in peer_ids if peer_id not in self._joined)
        self._schedule()

    def _schedule(self) -> None:
        if not self._timer.isActive() and self.pending():
            self._timer.start()

    def _on_joined(self, peer_id: int, _address: str, _files: int) -> None:
        self._joined[peer_id] = None
        self._updated.discard(peer_id)
        self._schedule()
        self.index_changed.emit()

    def _on_left(self, peer_id: int, _address: str) -> None:
        self._joined.pop(peer_id, None)
        self._updated.discard(peer_id)
        if peer_id in self.model:
            self._left.add(peer_id)
        self._schedule()
        self.index_changed.emit()

    def _on_updated(self, peer_id: int, _files: int) -> None:
        if peer_id not in self._joined:
            self._updated.add(peer_id)
        self._schedule()
        self.index_changed.emit()

    def apply(self) -> None:
        """Apply pending changes until the time budget is spent; the rest waits a tick."""
        deadline = time.perf_counter() + BUDGET_MS / 1000
        changed = False
        while self._left and time.perf_counter() < deadline:
            self.model.remove(_take(self._left))
            changed = True
        while self._joined and time.perf_counter() < deadline:
            self._show(_take_in_order(self._joined))
            changed = True
        while self._updated and time.perf_counter() < deadline:
            self._show(_take(self._updated))
            changed = True
        if changed:
            self.applied.emit()
        self._schedule()

    def _show(self, peer_ids: list[int]) -> None:
        found = (self._polled.pop(peer_id, None) or self._read(peer_id) for peer_id in peer_ids)
        records = [record for record in found if record]
        self.model.add_or_update(records)

    def _read(self, peer_id: int) -> PeerRecord | None:
        try:
            return self.server.store.peer(peer_id)
        except IndexUnavailable:
            return None


def _take(pending: set[int]) -> list[int]:
    return [pending.pop() for _ in range(min(CHUNK, len(pending)))]


def _take_in_order(pending: dict[int, None]) -> list[int]:
    taken = list(itertools.islice(pending, CHUNK))
    for peer_id in taken:
        del pending[peer_id]
    return taken
