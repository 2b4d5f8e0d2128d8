"""Turns the server's peer events into timed, bounded batches of changes to the peers table.

A burst of thousands of JOINs and LEAVEs becomes a few model changes every
``INTERVAL_MS``; each batch stops after ``BUDGET_MS`` and the rest waits for the
next tick, so the event loop is never held for long. A peer that joins and
leaves between two ticks never reaches the table.

When other servers share the index (PostgreSQL), their peers come and go without
this server's signals: a ``SharedPeerPoller`` reads the whole index again every ``POLL_MS``
on a thread and connection of its own and hands over only the differences, which go
through the same batches; the GUI thread never reads or compares the whole index.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterable
from typing import cast

from PySide6.QtCore import QObject, QTimer, Signal

from server_app.index_server import IndexServer
from server_app.store import IndexUnavailable, PeerRecord, SharedIndexStore
from server_app.ui.models import PeerTableModel
from server_app.ui.peer_poller import PeerChanges, SharedPeerPoller

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
        #: Records read by the poller of a shared index, shown without asking again.
        self._polled: dict[int, PeerRecord] = {}
        #: This server's peers seen leaving (by its signal), when: an older read still has them.
        self._gone: dict[int, float] = {}
        self._stopped = False
        self._poll_timer = QTimer(self, interval=POLL_MS)
        self._poll_timer.timeout.connect(self.poll)
        #: Reads a shared index off the GUI thread (None for an index of this server alone).
        self.poller: SharedPeerPoller | None = None
        if server.store.shared:
            self.poller = SharedPeerPoller(cast(SharedIndexStore, server.store).open_reader)
            self.poller.changed.connect(self._on_polled)
            self.destroyed.connect(self.poller.stop)  # deleted without disconnect_server
            self._poll_timer.start()

    def disconnect_server(self) -> None:
        self.server.peer_joined.disconnect(self._on_joined)
        self.server.peer_left.disconnect(self._on_left)
        self.server.peer_updated.disconnect(self._on_updated)
        self._timer.stop()
        self._poll_timer.stop()
        self._stopped = True
        if self.poller is not None:
            self.poller.changed.disconnect(self._on_polled)
            self.poller.stop()

    def poll(self) -> None:
        """Ask the poller to read the shared index again; returns at once (no-op otherwise).

        The differences arrive later through ``_on_polled``. The database away changes
        nothing: the table keeps what it showed and the next poll tries again.
        """
        if self.poller is not None and not self._stopped:
            self.poller.poll()

    def _on_polled(self, changes: PeerChanges) -> None:
        """Queue what a read of the shared index found changed (only the changes: cheap)."""
        if self._stopped:
            return
        for peer_id in changes.left:
            self._polled.pop(peer_id, None)
            self._joined.pop(peer_id, None)
            self._updated.discard(peer_id)
            self._gone.pop(peer_id, None)
            if peer_id in self.model:
                self._left.add(peer_id)
        for records in (changes.joined, changes.updated):
            for record in records:
                peer_id = record.peer_id
                gone_at = self._gone.get(peer_id)
                if gone_at is not None and gone_at >= changes.read_at:
                    continue  # this server saw it leave after the read began
                self._polled[peer_id] = record
                if peer_id in self.model:
                    self._updated.add(peer_id)
                elif peer_id not in self._joined:
                    self._joined[peer_id] = None
        # Reads that began after a leave cannot show that peer any more.
        for peer_id in [p for p, at in self._gone.items() if at < changes.read_at]:
            del self._gone[peer_id]
        self._schedule()
        self.index_changed.emit()

    def pending(self) -> int:
        return len(self._joined) + len(self._left) + len(self._updated)

    def load_current(self) -> None:
        """Queue every peer the index holds now (when the window opens on a running server).

        On a shared index the poller's first read brings them (off the GUI thread).
        """
        if self.poller is not None:
            self.poll()
            return
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
        self._polled.pop(peer_id, None)  # read it afresh when shown
        self._joined[peer_id] = None
        self._updated.discard(peer_id)
        self._schedule()
        self.index_changed.emit()

    def _on_left(self, peer_id: int, _address: str) -> None:
        self._polled.pop(peer_id, None)
        if self.poller is not None:
            self._gone[peer_id] = time.monotonic()
        self._joined.pop(peer_id, None)
        self._updated.discard(peer_id)
        if peer_id in self.model:
            self._left.add(peer_id)
        self._schedule()
        self.index_changed.emit()

    def _on_updated(self, peer_id: int, _files: int) -> None:
        self._polled.pop(peer_id, None)
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
