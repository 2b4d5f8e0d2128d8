"""The status bar: the connection, what the library is doing, speeds, totals and limits."""

from __future__ import annotations

import math
import time

from PySide6.QtCore import QObject, Qt, QTimer
from PySide6.QtWidgets import QLabel, QStatusBar

from app.config import server_text
from app.display import ElidedLabel
from app.network.index_client import ClientState
from app.peer import PeerNode
from app.ui.formatting import format_count, format_files, format_size, format_speed

REFRESH_MS = 250


class StatusArea(QObject):
    """Keeps the status-bar labels true: connection, background work, transfer speeds,
    this session's totals and the speed limits in force.

    ``connection_text()``, ``activity_text()``, ``speed_text()``, ``totals_text()`` and
    ``limits_text()`` are what the labels show.
    """

    def __init__(self, node: PeerNode, status_bar: QStatusBar, parent: QObject | None = None):
        super().__init__(parent)
        self.node = node
        self.status_bar = status_bar
        self._retry_at: float | None = None
        self._last_problem = ""
        self._problem_server = ""
        #: the server last refused for a changed identity ("" when none)
        self._identity_refused = ""
        self._hashing: tuple[int, int] | None = None
        self._copying: tuple[str, int, int, int] | None = None  # name, done, total, queued
        self._upload_speed = 0.0
        self._shared = (0, 0)
        self._alternative_limits = False

        self.connection_label = self._label(status_bar, "connection")
        self.reach_label = self._plain_label(status_bar, "reachability")
        self.activity_label = self._label(status_bar, "activity")
        self.speed_label = self._plain_label(status_bar, "speed")
        self.totals_label = self._plain_label(status_bar, "totals")
        self.limits_label = self._plain_label(status_bar, "limits")
        # Room for "Connected to host:port…" at least, however much else the bar holds.
        self.connection_label.setMinimumWidth(
            self.connection_label.fontMetrics().horizontalAdvance("M" * 18)
        )
        status_bar.addWidget(self.connection_label, 1)
        status_bar.addWidget(self.reach_label)
        status_bar.addWidget(self.activity_label, 1)
        status_bar.addPermanentWidget(self.speed_label)
        status_bar.addPermanentWidget(self.totals_label)
        status_bar.addPermanentWidget(self.limits_label)
        # A message (a menu's hint, "Download finished") hides the left-hand labels while it
        # shows; they come back, as they should be, when it goes.
        status_bar.messageChanged.connect(lambda _message: self.refresh())

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
        client.connection_problem.connect(self._on_connection_problem)
        client.joined.connect(lambda *_: self.refresh())
        client.server_changed.connect(lambda _server: self.refresh())
        client.reachability_changed.connect(lambda _reachable: self.refresh())
        library = node.library
        library.files_added.connect(self._count_shared_later)
        library.files_removed.connect(self._count_shared_later)
        library.hashing_progress.connect(self._on_hashing_progress)
        library.hashing_finished.connect(self._on_hashing_finished)
        node.transfers.transfer_changed.connect(self.schedule_refresh)
        node.totals.changed.connect(self.schedule_refresh)
        self._count_shared()

    @staticmethod
    def _label(status_bar: QStatusBar, name: str) -> QLabel:
        label = ElidedLabel(status_bar, Qt.TextElideMode.ElideRight)
        label.setObjectName(f"status_{name}")
        return label

    @staticmethod
    def _plain_label(status_bar: QStatusBar, name: str) -> QLabel:
        label = QLabel(status_bar)
        label.setObjectName(f"status_{name}")
        label.setTextFormat(Qt.TextFormat.PlainText)
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

    def set_alternative_limits(self, on: bool) -> None:
        """The alternative speed limits are in force (the limits are read from the peer)."""
        self._alternative_limits = on
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
            self._identity_refused = ""
        self.refresh()

    def _on_reconnect_scheduled(self, delay: float) -> None:
        self._retry_at = time.monotonic() + delay
        self.refresh()

    def _on_connection_problem(self, code: str, server: str, reason: str) -> None:
        """The client's problem code, in the user's language (the tooltip shows it)."""
        if code == "connection_lost":
            text = self.tr("Lost the connection to {server}: {reason}")
        elif code == "identity_changed":
            self._identity_refused = server
            text = self.tr(
                "Not connected to {server}: it presented another identity than the one"
                " remembered (another machine may be answering at that address)"
            )
        else:
            text = self.tr("Cannot reach the index server at {server}: {reason}")
        self._last_problem = text.format(server=server, reason=reason)
        self._problem_server = server
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
        if self._identity_refused == server and state != ClientState.JOINED:
            return self.tr("Refused {server}: its identity changed").format(
                server=self._identity_refused
            )
        if state == ClientState.CONNECTING:
            if self._last_problem and self._problem_server == server:
                return self.tr("Server unreachable, trying again now…")
            return self.tr("Connecting to {server}…").format(server=server)
        if state == ClientState.JOINING:
            return self.tr("Joining {server}…").format(server=server)
        if state == ClientState.WAITING:
            left = 0 if self._retry_at is None else self._retry_at - time.monotonic()
            seconds = max(1, math.ceil(left))
            if len(client.servers) > 1:
                return self.tr("No index server reachable, retrying in {seconds} s").format(
                    seconds=seconds
                )
            return self.tr("Server unreachable, retrying in {seconds} s").format(seconds=seconds)
        return self.tr("Offline")

    def reachability_short(self) -> str:
        """The reachability label: a few words (the full sentence is its tooltip)."""
        reachable = self.node.client.reachable
        if reachable is None or self.node.client.state != ClientState.JOINED:
            return ""
        if reachable:
            return self.tr("Other peers can reach you")
        return self.tr("Behind a firewall: sharing through push")

    def reachability_text(self) -> str:
        """What the index's connect-back found (empty until it has said)."""
        reachable = self.node.client.reachable
        if reachable is None:
            return ""
        if reachable:
            return self.tr("Other peers can reach you")
        return self.tr(
            "You are behind a firewall or router: others can still download from you"
            " through the server's push"
        )

    def connection_tooltip(self) -> str:
        """The last connection problem while not joined, and every index server when several
        are given."""
        client = self.node.client
        lines = [] if client.state == ClientState.JOINED else [self._last_problem]
        if len(client.servers) > 1:
            servers = ", ".join(server_text(server) for server in client.servers)
            lines.append(self.tr("Index servers: {servers}").format(servers=servers))
        return "\n".join(line for line in lines if line)

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

    def totals_text(self) -> str:
        totals = self.node.totals
        if not totals.downloaded and not totals.uploaded:
            return ""
        return self.tr("Session: {down} down, {up} up").format(
            down=format_size(totals.downloaded), up=format_size(totals.uploaded)
        )

    def limits_text(self) -> str:
        config = self.node.config
        parts = []
        if config.max_download_rate > 0:
            parts.append(self.tr("down {rate}").format(rate=format_speed(config.max_download_rate)))
        if config.max_upload_rate > 0:
            parts.append(self.tr("up {rate}").format(rate=format_speed(config.max_upload_rate)))
        if self._alternative_limits:
            if not parts:
                return self.tr("Alternative speed limits: none set")
            return self.tr("Alternative speed limits: {limits}").format(limits=", ".join(parts))
        if not parts:
            return ""
        return self.tr("Speed limit: {limits}").format(limits=", ".join(parts))

    def refresh(self) -> None:
        self.connection_label.setText(self.connection_text())
        self.connection_label.setToolTip(self.connection_tooltip())
        # While a message shows, the bar hides its left-hand labels: showing one again would
        # draw it under the message.
        room = not self.status_bar.currentMessage()
        reach = self.reachability_short()
        self.reach_label.setText(reach)
        self.reach_label.setVisible(bool(reach) and room)
        self.reach_label.setToolTip(self.reachability_text())
        activity = self.activity_text()
        self.activity_label.setText(activity)
        self.activity_label.setVisible(bool(activity) and room)  # an empty one took half the bar
        self.speed_label.setText(self.speed_text())
        totals = self.totals_text()
        self.totals_label.setText(totals)
        self.totals_label.setVisible(bool(totals))
        self.totals_label.setToolTip(self.tr("Bytes downloaded and uploaded since the app started"))
        limits = self.limits_text()
        self.limits_label.setText(limits)
        self.limits_label.setVisible(bool(limits))
        self.limits_label.setToolTip(
            self.tr("Change the limits in Settings; the toolbar switches to the alternative ones")
        )

    def text(self) -> str:
        """Everything the status area says, in one line (for tests and logs)."""
        parts = [
            self.connection_text(),
            self.reachability_short(),
            self.activity_text(),
            self.speed_text(),
            self.totals_text(),
            self.limits_text(),
        ]
        return " | ".join(part for part in parts if part)
