"""The admin window's Relay tab: switch the relay on or off, its limits, the live relays.

It calls ``IndexServer.configure_relay`` and polls ``Relay.snapshot()`` once a second;
the relay's own threads do the piping (no socket work here).
"""

from __future__ import annotations

import time

from PySide6.QtCore import QCoreApplication, Qt, QTimer
from PySide6.QtWidgets import (
    QCheckBox,
    QFormLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from app.network.rate_limit import parse_rate
from server_app.index_server import IndexServer
from server_app.relay import RelaySettings
from server_app.ui.formatting import format_size

REFRESH_MS = 1000


def tr(text: str) -> str:
    return QCoreApplication.translate("RelayPanel", text)


def rate_text(rate: int) -> str:
    """A limit as the operator types it: 0 for none, else e.g. 2M."""
    if rate == 0:
        return "0"
    for unit, size in (("G", 1000**3), ("M", 1000**2), ("K", 1000)):
        if rate % size == 0:
            return f"{rate // size}{unit}"
    return str(rate)


class RelayPanel(QWidget):
    """Relay on/off, port and limits (applied with Apply), and what is relayed now."""

    def __init__(self, server: IndexServer, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.server = server
        settings = server.relay_settings
        self.enabled_box = QCheckBox(
            tr("Relay transfers between peers that cannot reach each other")
        )
        self.port_box = QSpinBox()
        self.port_box.setRange(0, 65535)
        self.rate_edit = QLineEdit()
        self.total_rate_edit = QLineEdit()
        for edit in (self.rate_edit, self.total_rate_edit):
            edit.setPlaceholderText(tr("0 = no limit; e.g. 500K, 2M"))
        self.max_box = QSpinBox()
        self.max_box.setRange(1, 10_000)
        self.apply_button = QPushButton(tr("Apply"))
        self.apply_button.clicked.connect(self.apply)
        self.state_label = QLabel()
        self.state_label.setTextFormat(Qt.TextFormat.PlainText)
        self.state_label.setWordWrap(True)
        self.table = QTableWidget(0, 5)
        self.table.setHorizontalHeaderLabels(
            [tr("Downloader"), tr("Holder"), tr("Since"), tr("Bytes"), tr("Rate")]
        )
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().hide()  # as in the other tabs: no row numbers
        header = self.table.horizontalHeader()
        header.setStretchLastSection(True)
        for column in range(self.table.columnCount() - 1):  # "Quem tem o arquivo" was cut
            header.setSectionResizeMode(column, QHeaderView.ResizeMode.ResizeToContents)
        #: Why the last Apply failed, shown until the next one (the refresh kept erasing it).
        self.problem = ""
        form = QFormLayout()
        form.addRow(self.enabled_box)
        form.addRow(tr("Relay port"), self.port_box)
        form.addRow(tr("Limit per transfer"), self.rate_edit)
        form.addRow(tr("Limit over all relays"), self.total_rate_edit)
        form.addRow(tr("Relays at once"), self.max_box)
        row = QHBoxLayout()
        row.addWidget(self.state_label, 1)
        row.addWidget(self.apply_button)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addLayout(row)
        layout.addWidget(self.table, 1)
        self.show_settings(settings)
        server.relay_changed.connect(self.refresh)
        self._timer = QTimer(self, interval=REFRESH_MS)
        self._timer.timeout.connect(self.refresh)
        self._timer.start()
        self.refresh()

    def show_settings(self, settings: RelaySettings) -> None:
        self.enabled_box.setChecked(settings.enabled)
        self.port_box.setValue(settings.port)
        self.rate_edit.setText(rate_text(settings.rate))
        self.total_rate_edit.setText(rate_text(settings.total_rate))
        self.max_box.setValue(settings.max_relays)

    def apply(self) -> bool:
        """Apply what the form says; False (and why, in the state line) if it cannot."""
        rates = []
        for label, edit in (
            (tr("Limit per transfer"), self.rate_edit),
            (tr("Limit over all relays"), self.total_rate_edit),
        ):
            text = edit.text().strip() or "0"
            try:
                rates.append(parse_rate(text))
            except ValueError:
                return self._failed(
                    tr(
                        "{field}: “{text}” is not a rate. Write for example 500K or 2M (bytes"
                        " per second, at least 1K), or 0 for no limit."
                    ).format(field=label, text=text)
                )
        rate, total = rates
        current = self.server.relay_settings
        settings = RelaySettings(
            enabled=self.enabled_box.isChecked(),
            host=current.host,
            port=self.port_box.value(),
            advertise_host=current.advertise_host,
            rate=rate,
            total_rate=total,
            max_relays=self.max_box.value(),
            pair_timeout=current.pair_timeout,
        )
        try:
            self.server.configure_relay(settings)
        except OSError as exc:
            self.enabled_box.setChecked(False)
            return self._failed(
                tr("Cannot listen for relays on port {port}: {error}").format(
                    port=settings.port, error=exc.strerror or exc
                )
            )
        self.problem = ""
        self.refresh()
        return True

    def _failed(self, problem: str) -> bool:
        self.problem = problem
        self.refresh()
        return False

    def state_text(self) -> str:
        relay = self.server.relay
        if relay is None or not relay.listening:
            return tr("Off: peers that cannot reach each other are told this server does not relay")
        return tr(
            "Relaying on port {port}: {running} now, {awaited} awaited, {total} in all"
        ).format(
            port=relay.port,
            running=relay.running(),
            awaited=relay.awaited(),
            total=relay.relayed_total,
        )

    def refresh(self) -> None:
        self.state_label.setText(self.problem or self.state_text())
        relay = self.server.relay
        infos = relay.snapshot() if relay is not None and relay.listening else []
        self.table.setRowCount(len(infos))
        for row, info in enumerate(infos):
            since = time.strftime("%H:%M:%S", time.localtime(info.started))
            cells = (
                info.downloader,
                info.holder,
                since,
                format_size(info.bytes),
                f"{format_size(int(info.rate))}/s",
            )
            for column, text in enumerate(cells):
                self.table.setItem(row, column, QTableWidgetItem(text))
