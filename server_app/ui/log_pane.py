"""The admin window's log pane: the server's log, filtered by level and text."""

from __future__ import annotations

import logging

from PySide6.QtCore import QCoreApplication, Qt, QTimer
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from server_app.log_handler import LogBuffer
from server_app.ui.models import LogFilterProxy, LogTableModel
from server_app.ui.widgets import TableView

#: New lines are added to the table at most this often (ms), in one batch.
DRAIN_INTERVAL_MS = 100
LEVELS = (
    ("Info and above", logging.INFO),
    ("Warnings and errors", logging.WARNING),
    ("Errors only", logging.ERROR),
    ("Everything (debug)", logging.DEBUG),
)
EMPTY_LOG = "Nothing logged yet. Peers joining, searches, refused connections and errors show here."
EMPTY_FILTERED = "No log line matches this level and text."


def tr(text: str) -> str:
    return QCoreApplication.translate("AdminLog", text)


class LogPane(QWidget):
    """Shows entries from a ``LogBuffer``; follows new lines unless paused."""

    def __init__(self, buffer: LogBuffer, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.buffer = buffer
        self.model = LogTableModel(buffer.capacity, self)
        self.proxy = LogFilterProxy(self.model, self)

        title = QLabel(tr("Log"))
        title.setStyleSheet("font-weight: bold")
        self.level_box = QComboBox()
        for label, level in LEVELS:
            self.level_box.addItem(tr(label), level)
        self.filter_edit = QLineEdit()
        self.filter_edit.setPlaceholderText(tr("Filter log lines by text"))
        self.filter_edit.setClearButtonEnabled(True)
        self.follow_box = QCheckBox(tr("Follow new lines"))
        self.follow_box.setChecked(True)
        self.follow_box.setToolTip(tr("Untick to stop the log from scrolling while you read it"))
        clear_button = QPushButton(tr("Clear"))
        clear_button.clicked.connect(self.model.clear)

        bar = QHBoxLayout()
        bar.addWidget(title)
        bar.addSpacing(8)
        bar.addWidget(self.level_box)
        bar.addWidget(self.filter_edit, 1)
        bar.addWidget(self.follow_box)
        bar.addWidget(clear_button)

        self.view = TableView(tr(EMPTY_LOG))
        self.view.setModel(self.proxy)
        self.view.setSelectionMode(TableView.SelectionMode.ExtendedSelection)
        self.view.set_column_widths(80, 70, 90)
        self.view.setTextElideMode(Qt.TextElideMode.ElideRight)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(bar)
        layout.addWidget(self.view)

        self._drain_timer = QTimer(self, singleShot=True, interval=DRAIN_INTERVAL_MS)
        self._drain_timer.timeout.connect(self.drain)
        self._filter_timer = QTimer(self, singleShot=True, interval=200)
        self._filter_timer.timeout.connect(self._apply_filter)
        buffer.entries_added.connect(self._schedule_drain, Qt.ConnectionType.QueuedConnection)
        self.level_box.currentIndexChanged.connect(self._apply_filter)
        self.filter_edit.textChanged.connect(self._filter_timer.start)
        self.follow_box.toggled.connect(self._on_follow_toggled)

    def _schedule_drain(self) -> None:
        if not self._drain_timer.isActive():
            self._drain_timer.start()

    def drain(self) -> None:
        """Move the buffer's new entries into the table."""
        entries = self.buffer.take_new()
        if entries:
            self.model.append(entries)
            if self.follow_box.isChecked():
                self.view.scrollToBottom()

    def _apply_filter(self) -> None:
        self.proxy.set_filter(self.level_box.currentData(), self.filter_edit.text())
        filtered = self.proxy.min_level > logging.INFO or bool(self.proxy.text)
        self.view.set_empty_text(tr(EMPTY_FILTERED if filtered else EMPTY_LOG))
        if self.follow_box.isChecked():
            self.view.scrollToBottom()

    def _on_follow_toggled(self, follow: bool) -> None:
        if follow:
            self.view.scrollToBottom()

    def visible_messages(self) -> list[str]:
        """The messages the table shows now, after filtering, oldest first."""
        return [
            self.model.entry(self.proxy.mapToSource(self.proxy.index(row, 0)).row()).message
            for row in range(self.proxy.rowCount())
        ]
