"""The status bar: where the connection stands, what the library is doing, transfer speeds."""

from __future__ import annotations

import math
import time

from PySide6.QtCore import QObject, Qt, QTimer
from PySide6.QtWidgets import QLabel, QStatusBar

from app.network.index_client import ClientState
from app.peer import PeerNode
from app.ui.formatting import format_count, format_files, format_size, format_speed
from app.ui.widgets import ElidedLabel

REFRESH_MS = 250


class StatusArea(QObject):
    """Keeps three status-bar labels true: connection, background work, transfer speeds.

    ``connection_text()``, ``activity_text()`` and ``speed_text()`` are what the labels show.
    """

    def __init__(self, node: PeerNode, status_bar: QStatusBar, parent: QObject | None = None):
        super().__init__(parent)
        self.node = node
        self._retry_at: float | None = None
        self._last_problem = ""
        self._hashing: tuple[int, int] | None = None
        self._copying: tuple[str, int, int, int] | None = None  # name, done, total, queued
        self._upload_speed = 0.0
        self._shared = (0, 0)

        self.connection_label = self._label(status_bar, "connection")
        self.activity_label = self._label(status_bar, "activity")
        self.speed_label = QLabel(status_bar)
        self.speed_label.setObjectName("status_speed")
        self.speed_label.setTextFormat(Qt.TextFormat.PlainText)
        status_bar.addWidget(self.connection_label, 1)
        status_bar.addWidget(self.activity_label, 1)
        status_bar.addPermanentWidget(self.speed_label)

        self._refresh_timer = QTimer(self)
        self._refresh_timer.setSingleShot(True)
        self._refresh_timer.setInterval(REFRESH_MS)
        self._refresh_timer.timeout.connect(self.refresh)
        # Many library batches can arrive at once: count the shared files once they settle.
        self._count_timer = QTimer(self)
        self._count_timer.setSingleShot(True)
        self._count_timer.setInterval(REFRESH_MS)
        self._count_timer.timeout.connect(self._count_shared)

        client = node.client
        client.state_changed.connect(self._on_state_changed)
        client.reconnect_scheduled.connect(self._on_reconnect_scheduled)
        client.connection_lost.connect(self._on_connection_lost)
        client.joined.connect(lambda *_: self.refresh())
        library = node.library
        library.files_added.connect(self._count_shared_later)
        library.files_removed.connect(self._count_shared_later)
        library.hashing_progress.connect(self._on_hashing_progress)
        library.hashing_finished.connect(self._on_hashing_finished)
        node.transfers.transfer_changed.connect(self.schedule_refresh)
        self._count_shared()

    @staticmethod
    def _label(status_bar: QStatusBar, name: str) -> QLabel:
        label = ElidedLabel(status_bar, Qt.TextElideMode.ElideRight)
        label.setObjectName(f"status_{name}")
        return label

    # ------------------------------------------------------------ inputs

    def set_copying(self, name: str, done: int, total: int, queued: int) -> None:
        """A copy into the shared folder is running (empty name: none is)."""
        self._copying = (name, done, total, queued) if name else None
        self.schedule_refresh()

    def server_changed(self) -> None:
        """A new server was chosen: the old one's problems no longer apply."""
        self._last_problem = ""
        self._retry_at = None
        self.refresh()

    def set_upload_speed(self, speed: float) -> None:
        self._upload_speed = speed
        self.schedule_refresh()

    def schedule_refresh(self, *_args: object) -> None:
        if not self._refresh_timer.isActive():
            self._refresh_timer.start()

    def _on_state_changed(self, state: str) -> None:
        if state != ClientState.WAITING:
            self._retry_at = None
        if state == ClientState.JOINED:
            self._last_problem = ""
        self.refresh()

    def _on_reconnect_scheduled(self, delay: float) -> None:
        self._retry_at = time.monotonic() + delay
        self.refresh()

    def _on_connection_lost(self, message: str) -> None:
        self._last_problem = message
        self.refresh()

    def _on_hashing_progress(self, done: int, total: int, _name: str) -> None:
        self._hashing = (done, total) if total and done < total else None
        self.schedule_refresh()

    def _on_hashing_finished(self) -> None:
        self._hashing = None
        self._count_shared()

    def _count_shared_later(self, *_args: object) -> None:
        if not self._count_timer.isActive():
            self._count_timer.start()

    def _count_shared(self) -> None:
        infos = self.node.library.infos()
        self._shared = (len(infos), sum(info.size for info in infos))
        self.refresh()

    # ------------------------------------------------------------ texts

    def connection_text(self) -> str:
        client = self.node.client
        server = client.server_address
        state = client.state
        if state == ClientState.JOINED:
            count, size = self._shared
            return self.tr("Connected to {server} · sharing {files} ({size})").format(
                server=server, files=format_files(count), size=format_size(size)
            )
        if state == ClientState.CONNECTING:
            if self._last_problem:
                return self.tr("Server unreachable, trying again now…")
            return self.tr("Connecting to {server}…").format(server=server)
        if state == ClientState.JOINING:
            return self.tr("Joining {server}…").format(server=server)
        if state == ClientState.WAITING:
            left = 0 if self._retry_at is None else self._retry_at - time.monotonic()
            return self.tr("Server unreachable, retrying in {seconds} s").format(
                seconds=max(1, math.ceil(left))
            )
        return self.tr("Offline")

    def activity_text(self) -> str:
        if self._copying is not None:
            name, done, total, queued = self._copying
            short = name if len(name) <= 32 else f"{name[:20]}…{name[-11:]}"
            text = self.tr("Copying {name} ({done} of {total})").format(
                name=short, done=format_size(done), total=format_size(total)
            )
            if queued:
                text += " " + self.tr("+{count} more").format(count=format_count(queued))
            return text
        if self._hashing is not None:
            done, total = self._hashing
            return self.tr("Hashing {current} of {total} files…").format(
                current=format_count(min(done + 1, total)), total=format_count(total)
            )
        if self.node.library.is_hashing:
            return self.tr("Looking for new files in the shared folder…")
        return ""

    def speed_text(self) -> str:
        down = sum(t.speed for t in self.node.transfers.transfers() if t.state.is_active)
        if down <= 0 and self._upload_speed <= 0:
            return ""
        return self.tr("Down {down} · Up {up}").format(
            down=format_speed(down) or self.tr("0 B/s"),
            up=format_speed(self._upload_speed) or self.tr("0 B/s"),
        )

    def refresh(self) -> None:
        self.connection_label.setText(self.connection_text())
        tooltip = "" if self.node.client.state == ClientState.JOINED else self._last_problem
        self.connection_label.setToolTip(tooltip)
        self.activity_label.setText(self.activity_text())
        self.speed_label.setText(self.speed_text())

    def text(self) -> str:
        """Everything the status area says, in one line (for tests and logs)."""
        parts = [self.connection_text(), self.activity_text(), self.speed_text()]
        return " | ".join(part for part in parts if part)
