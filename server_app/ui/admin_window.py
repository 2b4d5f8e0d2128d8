"""The index server's admin window: listening, live counters, peers, files, bans and the log.

The window drives an ``IndexServer`` through its methods and signals and reads the
index through its ``IndexStore``; it does no socket, file or hash work itself.
"""

from __future__ import annotations

import logging
import time

from PySide6.QtCore import QCoreApplication, QItemSelection, Qt, QTimer
from PySide6.QtGui import QAction, QCloseEvent, QKeySequence, QShortcut
from PySide6.QtNetwork import QAbstractSocket
from PySide6.QtWidgets import (
    QFormLayout,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QMainWindow,
    QMessageBox,
    QPushButton,
    QSpinBox,
    QSplitter,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from app.display import ElidedLabel
from app.network.identity import grouped_fingerprint
from app.network.protocol import DEFAULT_SERVER_PORT
from server_app.index_server import IndexServer, ServerStartError
from server_app.log_handler import LogBuffer, QtLogHandler
from server_app.ui.formatting import format_count, format_size, plain_text
from server_app.ui.log_pane import LogPane
from server_app.ui.models import (
    BanTableModel,
    IndexFileModel,
    PeerFilesModel,
    PeerTableModel,
    peer_filter_proxy,
    sort_proxy,
)
from server_app.ui.peer_feed import PeerFeed
from server_app.ui.relay_panel import RelayPanel
from server_app.ui.traffic import SAMPLE_SECONDS, TrafficStats
from server_app.ui.traffic_chart import TrafficChart
from server_app.ui.widgets import StatTile, TableView

log = logging.getLogger("napster.admin")

#: The files table shows at most this many rows of a query (the index may hold millions).
FILE_ROWS_SHOWN = 1000
#: A selected peer's files shown at most (a peer may share 200,000).
PEER_FILES_SHOWN = 2000
COUNTERS_INTERVAL_MS = 500
LAST_SEEN_INTERVAL_MS = 2000
FILES_REFRESH_INTERVAL_MS = 3000
SEARCH_DELAY_MS = 300
BAN_REASON = "banned from the admin window"
#: How often the Bans tab's "Ends" column is brought up to date.
BANS_REFRESH_INTERVAL_MS = 15_000
APP_TITLE = "Napster P2P index server"

STATE_COLORS = {"listening": "#2e7d32", "stopped": "#757575", "error": "#c62828"}
EMPTY_PEERS = "No peer is online yet. Peers appear here as soon as they connect and JOIN."
EMPTY_PEERS_STOPPED = "The server is not listening, so no peer can connect. Press Start above."
EMPTY_FILES = "No files are indexed yet. Files appear here as peers JOIN and share them."
EMPTY_BANS = (
    "No address is banned. Ban a peer from the Peers tab, or type an address above. "
    "Bans are kept in the index database and survive restarts; a kicked peer's address "
    "is refused for 10 minutes."
)
NO_PEER_SELECTED = "Select a peer to see the files it shares."


def tr(text: str) -> str:
    """``text`` in the window's language (the AdminWindow context of the catalog)."""
    return QCoreApplication.translate("AdminWindow", text)


class AdminPrompts:
    """The admin window's modal questions; tests replace ``AdminWindow.prompts``."""

    def __init__(self, parent: QWidget) -> None:
        self.parent = parent

    def confirm(self, title: str, question: str) -> bool:
        answer = QMessageBox.question(self.parent, title, question)
        return answer == QMessageBox.StandardButton.Yes

    def confirm_disconnect(self, peers: int, quitting: bool) -> bool:
        """Ask before ``peers`` online peers are disconnected (by Stop, or by quitting)."""
        if quitting:
            title = tr("Quit the index server")
            question = tr(
                "{peers} peers are online. Quitting disconnects every one of them and "
                "they cannot search until the server runs again. Quit?"
            )
        else:
            title = tr("Stop the index server")
            question = tr(
                "{peers} peers are online. Stopping disconnects every one of them and "
                "they cannot search until you press Start again. Stop?"
            )
        return self.confirm(title, question.format(peers=format_count(peers)))


class AdminWindow(QMainWindow):
    """Watch and steer one ``IndexServer``: peers, files, traffic, bans and the log.

    ``prompts`` asks the modal questions (Stop, Quit, Ban); tests replace it.
    """

    def __init__(
        self,
        server: IndexServer,
        database: str = "",
        parent: QWidget | None = None,
        prompts: AdminPrompts | None = None,
    ) -> None:
        super().__init__(parent)
        self.server = server
        self.prompts = prompts or AdminPrompts(self)
        self.store = server.store
        self.stats = TrafficStats()
        self._shut_down = False
        self._files_stale = False
        self._last_sample = 0.0
        self._shown_query: str | None = None
        self._detail_peer: int | None = None

        self.log_buffer = LogBuffer(parent=self)
        self.log_handler = QtLogHandler(self.log_buffer)
        self.log_handler.attach("napster")

        self.setWindowTitle(tr(APP_TITLE))
        self.resize(1280, 860)
        self._build_menu()

        self.peer_model = PeerTableModel(self)
        self.peer_proxy = peer_filter_proxy(self.peer_model, self)
        self.peer_feed = PeerFeed(server, self.peer_model, self)
        self.peer_files_model = PeerFilesModel(self)
        self.file_model = IndexFileModel(self)
        self.file_proxy = sort_proxy(self.file_model, self)
        self.ban_model = BanTableModel(self)
        self.ban_proxy = sort_proxy(self.ban_model, self)

        central = QWidget()
        layout = QVBoxLayout(central)
        layout.addLayout(self._build_listen_bar())
        layout.addLayout(self._build_counters())
        self.tabs = QTabWidget()
        self.tabs.addTab(self._build_peers_tab(), tr("Peers"))
        self.tabs.addTab(self._build_files_tab(), tr("Files"))
        self.tabs.addTab(self._build_bans_tab(), tr("Bans"))
        self.relay_panel = RelayPanel(server)
        self.tabs.addTab(self.relay_panel, tr("Relay"))
        self.tabs.currentChanged.connect(self._on_tab_changed)
        self.log_pane = LogPane(self.log_buffer)
        splitter = QSplitter(Qt.Orientation.Vertical)
        splitter.addWidget(self.tabs)
        splitter.addWidget(self.log_pane)
        splitter.setStretchFactor(0, 3)
        splitter.setStretchFactor(1, 2)
        splitter.setChildrenCollapsible(False)
        layout.addWidget(splitter, 1)
        self.setCentralWidget(central)
        # The path gives way (elided in the middle, whole in its tooltip) to the fingerprint.
        self.database_label = ElidedLabel()
        self.database_label.setText(
            tr("Index database: {path}").format(path=database) if database else ""
        )
        self.database_label.setToolTip(database)
        self.statusBar().addWidget(self.database_label, 1)
        # Peers remember the server by this on first use and refuse another one later:
        # the operator publishes it beside the server's address.
        self.fingerprint_label = QLabel(
            tr("Fingerprint: {fingerprint}").format(
                fingerprint=grouped_fingerprint(server.fingerprint)
            )
        )
        self.fingerprint_label.setTextFormat(Qt.TextFormat.PlainText)
        self.fingerprint_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.fingerprint_label.setToolTip(
            tr(
                "The SHA-256 of this server's TLS certificate. Publish it beside the server's"
                " address: peers remember it when they first connect and refuse a server that"
                " presents another one."
            )
        )
        self.statusBar().addPermanentWidget(self.fingerprint_label)

        self._connect_server()
        self._counters_timer = QTimer(self, interval=COUNTERS_INTERVAL_MS)
        self._counters_timer.timeout.connect(self.refresh_counters)
        self._counters_timer.start()
        self._last_seen_timer = QTimer(self, interval=LAST_SEEN_INTERVAL_MS)
        self._last_seen_timer.timeout.connect(self._refresh_visible_peers)
        self._last_seen_timer.start()
        self._files_timer = QTimer(self, interval=FILES_REFRESH_INTERVAL_MS)
        self._files_timer.timeout.connect(self._refresh_files_if_stale)
        self._files_timer.start()
        self._details_timer = QTimer(self, singleShot=True, interval=200)
        self._details_timer.timeout.connect(self._reload_details)
        self._bans_timer = QTimer(self, interval=BANS_REFRESH_INTERVAL_MS)
        self._bans_timer.timeout.connect(self.reload_bans)
        self._bans_timer.start()

        self.reload_bans()
        self.peer_feed.load_current()
        self._show_listen_state()
        self.refresh_counters()
        self.run_file_search()

    # ------------------------------------------------------------------ building

    def _build_menu(self) -> None:
        file_menu = self.menuBar().addMenu(tr("&File"))
        self.quit_action = QAction(tr("&Quit"), self)
        self.quit_action.setShortcut(QKeySequence.StandardKey.Quit)
        self.quit_action.setMenuRole(QAction.MenuRole.QuitRole)
        self.quit_action.triggered.connect(self.close)  # closeEvent asks first
        file_menu.addAction(self.quit_action)

    def _build_listen_bar(self) -> QHBoxLayout:
        self.host_edit = QLineEdit("0.0.0.0")
        self.host_edit.setToolTip(tr("The address to listen on; 0.0.0.0 means every network"))
        self.host_edit.setMaximumWidth(220)
        self.port_box = QSpinBox()
        self.port_box.setRange(0, 65535)
        self.port_box.setValue(DEFAULT_SERVER_PORT)
        self.port_box.setSpecialValueText(tr("any free port"))
        self.port_box.setMinimumWidth(110)
        self.listen_button = QPushButton(tr("Start"))
        self.listen_button.setMinimumWidth(90)
        self.listen_button.clicked.connect(self._on_listen_clicked)
        self.host_edit.returnPressed.connect(self._on_listen_clicked)
        self.listen_state = QLabel()
        self.listen_state.setTextFormat(Qt.TextFormat.PlainText)
        self.listen_state.setWordWrap(True)
        bar = QHBoxLayout()
        bar.addWidget(QLabel(tr("Host")))
        bar.addWidget(self.host_edit)
        bar.addWidget(QLabel(tr("Port")))
        bar.addWidget(self.port_box)
        bar.addWidget(self.listen_button)
        bar.addSpacing(12)
        bar.addWidget(self.listen_state, 1)
        return bar

    def _build_counters(self) -> QHBoxLayout:
        captions = {
            "peers": "Online peers",
            "files": "Files indexed",
            "bytes": "Total shared",
            "JOIN": "JOINs / min",
            "SEARCH": "SEARCHes / min",
            "UPDATE": "UPDATEs / min",
            "errors": "Protocol errors",
            "refused": "Refused connections",
        }
        self.tiles = {key: StatTile(tr(caption)) for key, caption in captions.items()}
        grid = QGridLayout()
        grid.setSpacing(6)
        for position, tile in enumerate(self.tiles.values()):
            grid.addWidget(tile, position // 4, position % 4)
        self.chart = TrafficChart()
        row = QHBoxLayout()
        row.addLayout(grid, 3)
        row.addWidget(self.chart, 2)
        return row

    def _build_peers_tab(self) -> QWidget:
        self.peer_filter = QLineEdit()
        self.peer_filter.setPlaceholderText(tr("Filter peers by address or agent"))
        self.peer_filter.setClearButtonEnabled(True)
        self.peer_filter.textChanged.connect(self._on_peer_filter_changed)
        self.kick_button = QPushButton(tr("Kick"))
        self.kick_button.setToolTip(
            tr("Close the selected peers' connections and refuse their addresses for 10 minutes")
        )
        self.kick_button.clicked.connect(self.kick_selected)
        self.ban_button = QPushButton(tr("Ban address…"))
        self.ban_button.setToolTip(tr("Refuse every connection from the selected peers' addresses"))
        self.ban_button.clicked.connect(self.ban_selected)
        self.peer_count = QLabel()
        bar = QHBoxLayout()
        bar.addWidget(self.peer_filter, 1)
        bar.addWidget(self.peer_count)
        bar.addWidget(self.kick_button)
        bar.addWidget(self.ban_button)

        self.peers_view = TableView(tr(EMPTY_PEERS))
        self.peers_view.setModel(self.peer_proxy)
        self.peers_view.setSortingEnabled(True)
        self.peers_view.sortByColumn(PeerTableModel.ADDRESS, Qt.SortOrder.AscendingOrder)
        self.peers_view.set_column_widths(150, 220, 70, 105, 125)
        self.peers_view.selectionModel().selectionChanged.connect(self._on_peer_selection)
        QShortcut(QKeySequence.StandardKey.Delete, self.peers_view, self.kick_selected)

        self.detail_title = QLabel(tr(NO_PEER_SELECTED))
        self.detail_title.setTextFormat(Qt.TextFormat.PlainText)
        self.detail_title.setWordWrap(True)
        self.peer_files_view = TableView("")
        self.peer_files_view.setModel(sort_proxy(self.peer_files_model, self))
        self.peer_files_view.setSortingEnabled(True)
        self.peer_files_view.sortByColumn(PeerFilesModel.NAME, Qt.SortOrder.AscendingOrder)
        self.peer_files_view.set_column_widths(260, 80)
        self.peer_files_view.setTextElideMode(Qt.TextElideMode.ElideMiddle)
        details = QWidget()
        details_layout = QVBoxLayout(details)
        details_layout.setContentsMargins(0, 0, 0, 0)
        details_layout.addWidget(self.detail_title)
        details_layout.addWidget(self.peer_files_view)

        split = QSplitter(Qt.Orientation.Horizontal)
        split.addWidget(self.peers_view)
        split.addWidget(details)
        split.setStretchFactor(0, 3)
        split.setStretchFactor(1, 2)
        split.setChildrenCollapsible(False)
        page = QWidget()
        page_layout = QVBoxLayout(page)
        page_layout.addLayout(bar)
        page_layout.addWidget(split, 1)
        self.peer_feed.applied.connect(self._on_peers_applied)
        self._update_peer_buttons()
        return page

    def _build_files_tab(self) -> QWidget:
        self.file_search = QLineEdit()
        self.file_search.setPlaceholderText(
            tr("Search the index the way peers do: every word must appear in the name")
        )
        self.file_search.setClearButtonEnabled(True)
        self._search_timer = QTimer(self, singleShot=True, interval=SEARCH_DELAY_MS)
        self._search_timer.timeout.connect(self.run_file_search)
        self.file_search.textChanged.connect(self._search_timer.start)
        self.file_search.returnPressed.connect(self.run_file_search)
        refresh = QPushButton(tr("Refresh"))
        refresh.clicked.connect(self.run_file_search)
        self.file_note = QLabel()
        self.file_note.setTextFormat(Qt.TextFormat.PlainText)
        self.file_note.setWordWrap(True)
        bar = QHBoxLayout()
        bar.addWidget(self.file_search, 1)
        bar.addWidget(refresh)
        self.files_view = TableView(tr(EMPTY_FILES))
        self.files_view.setModel(self.file_proxy)
        # No sort indicator at first: a search shows the peers' ranking until a header is clicked.
        self.files_view.horizontalHeader().setSortIndicator(-1, Qt.SortOrder.AscendingOrder)
        self.files_view.setSortingEnabled(True)
        self.files_view.set_column_widths(480, 90, 60)
        self.files_view.setTextElideMode(Qt.TextElideMode.ElideMiddle)
        page = QWidget()
        layout = QVBoxLayout(page)
        layout.addLayout(bar)
        layout.addWidget(self.file_note)
        layout.addWidget(self.files_view, 1)
        self.files_page = page
        return page

    def _build_bans_tab(self) -> QWidget:
        self.ban_address_edit = QLineEdit()
        self.ban_address_edit.setPlaceholderText(tr("IP address, e.g. 203.0.113.7"))
        self.ban_reason_edit = QLineEdit()
        self.ban_reason_edit.setPlaceholderText(tr("Reason (optional)"))
        add = QPushButton(tr("Ban"))
        add.clicked.connect(self._on_ban_entered)
        self.ban_address_edit.returnPressed.connect(self._on_ban_entered)
        self.ban_error = QLabel()
        self.ban_error.setTextFormat(Qt.TextFormat.PlainText)
        self.ban_error.setStyleSheet(f"color: {STATE_COLORS['error']}")
        self.ban_error.hide()
        form = QFormLayout()
        row = QHBoxLayout()
        row.addWidget(self.ban_address_edit, 2)
        row.addWidget(self.ban_reason_edit, 3)
        row.addWidget(add)
        form.addRow(tr("Ban an address"), row)
        self.bans_view = TableView(tr(EMPTY_BANS))
        self.bans_view.setModel(self.ban_proxy)
        self.bans_view.setSortingEnabled(True)
        self.bans_view.sortByColumn(2, Qt.SortOrder.AscendingOrder)
        self.bans_view.set_column_widths(200, 360, 120)
        self.unban_button = QPushButton(tr("Unban selected"))
        self.unban_button.clicked.connect(self.unban_selected)
        self.unban_button.setEnabled(False)
        self.bans_view.selectionModel().selectionChanged.connect(
            lambda *_: self.unban_button.setEnabled(self.bans_view.selectionModel().hasSelection())
        )
        bottom = QHBoxLayout()
        bottom.addStretch(1)
        bottom.addWidget(self.unban_button)
        page = QWidget()
        layout = QVBoxLayout(page)
        layout.addLayout(form)
        layout.addWidget(self.ban_error)
        layout.addWidget(self.bans_view, 1)
        layout.addLayout(bottom)
        return page

    def _connect_server(self) -> None:
        server = self.server
        server.request_handled.connect(self._on_request)
        server.protocol_error.connect(self._on_protocol_error)
        server.connection_refused.connect(self._on_refused)
        server.peer_left.connect(self._on_peer_left)
        server.peer_updated.connect(self._on_peer_updated)
        server.bans_changed.connect(self.reload_bans)
        self.peer_feed.index_changed.connect(self._note_index_changed)

    def _disconnect_server(self) -> None:
        server = self.server
        server.request_handled.disconnect(self._on_request)
        server.protocol_error.disconnect(self._on_protocol_error)
        server.connection_refused.disconnect(self._on_refused)
        server.peer_left.disconnect(self._on_peer_left)
        server.peer_updated.disconnect(self._on_peer_updated)
        server.bans_changed.disconnect(self.reload_bans)
        self.peer_feed.disconnect_server()

    # ------------------------------------------------------------------ listening

    def start_listening(self, host: str | None = None, port: int | None = None) -> bool:
        """Listen on host:port (the fields' values when not given); False if that failed."""
        if host is not None:
            self.host_edit.setText(host)
        if port is not None:
            self.port_box.setValue(port)
        host = self.host_edit.text().strip()
        port = self.port_box.value()
        try:
            self.server.start(host, port)
        except ServerStartError as exc:
            if self.server.serverError() == QAbstractSocket.SocketError.AddressInUseError:
                message = tr(
                    "Port {port} is already in use on {host}: another server may be running. "
                    "Choose another port, then press Start."
                ).format(port=port, host=host)
            else:
                message = str(exc)
            log.warning("Not listening: %s", message)
            self._show_listen_state(message)
            return False
        self._show_listen_state()
        return True

    def stop_listening(self) -> None:
        """Stop listening and close every connection (all peers leave the index)."""
        self.server.stop()
        log.info("Index server stopped; every peer was disconnected")
        self._show_listen_state()

    def _on_listen_clicked(self) -> None:
        if self.server.isListening():
            peers = self.server.online_peers()
            if peers and not self.prompts.confirm_disconnect(peers, quitting=False):
                return
            self.stop_listening()
        else:
            self.start_listening()

    def _show_listen_state(self, error: str = "") -> None:
        listening = self.server.isListening()
        if listening:
            state = "listening"
            where = f"{self.host_edit.text().strip()}:{self.server.serverPort()}"
            text = "● " + tr("Listening on {address}").format(address=where)
            self.setWindowTitle(f"{where} — {tr(APP_TITLE)}")
        else:
            if error:
                state, text = "error", "● " + tr("Not listening. {reason}").format(reason=error)
            else:
                state = "stopped"
                text = "● " + tr("Stopped: peers cannot connect. Press Start to listen.")
            self.setWindowTitle(tr("{title} (stopped)").format(title=tr(APP_TITLE)))
        self.listen_state.setText(text)
        self.listen_state.setStyleSheet(f"color: {STATE_COLORS[state]}")
        self.listen_button.setText(tr("Stop") if listening else tr("Start"))
        self.host_edit.setEnabled(not listening)
        self.port_box.setEnabled(not listening)
        self.peers_view.set_empty_text(tr(EMPTY_PEERS if listening else EMPTY_PEERS_STOPPED))

    def listen_state_text(self) -> str:
        return self.listen_state.text()

    # ------------------------------------------------------------------ counters

    def _on_request(self, op: str, _millis: float) -> None:
        self.stats.note_request(op, time.monotonic())

    def _on_protocol_error(self, _remote: str, _code: str, _message: str) -> None:
        self.stats.protocol_errors += 1

    def _on_refused(self, _ip: str, _reason: str) -> None:
        self.stats.refused_connections += 1

    def _note_index_changed(self) -> None:
        self._files_stale = True

    def refresh_counters(self) -> None:
        """Update the counter tiles (and, every few seconds, the chart)."""
        now = time.monotonic()
        self._show_index_totals()
        for op in ("JOIN", "SEARCH", "UPDATE"):
            self.tiles[op].set_value(format_count(self.stats.per_minute(op, now)))
        self.tiles["errors"].set_value(format_count(self.stats.protocol_errors))
        self.tiles["refused"].set_value(format_count(self.stats.refused_connections))
        if now - self._last_sample >= SAMPLE_SECONDS:
            self._last_sample = now
            self.stats.sample(now, self.peer_model.rowCount())
            self.chart.set_samples(self.stats.samples, now)

    def _show_index_totals(self) -> None:
        model = self.peer_model
        self.tiles["peers"].set_value(format_count(model.rowCount()))
        self.tiles["files"].set_value(
            format_count(model.total_files), tr("Every shared file of every online peer")
        )
        self.tiles["bytes"].set_value(
            format_size(model.total_bytes),
            tr("{count} bytes").format(count=format_count(model.total_bytes)),
        )

    # ------------------------------------------------------------------ peers

    def _on_peers_applied(self) -> None:
        self._show_index_totals()
        self._update_peer_buttons()  # removed rows leave the selection without a signal
        shown = self.peer_proxy.rowCount()
        total = self.peer_model.rowCount()
        text = tr("{count} online").format(count=format_count(total))
        if shown != total:
            text = tr("{shown} of {total} online").format(
                shown=format_count(shown), total=format_count(total)
            )
        self.peer_count.setText(text)

    def _on_peer_filter_changed(self, text: str) -> None:
        self.peer_proxy.setFilterFixedString(text.strip())
        if text.strip():
            self.peers_view.set_empty_text(
                tr("No online peer matches “{text}”.").format(text=text.strip())
            )
        else:
            self._show_listen_state()
        self._on_peers_applied()

    def selected_peer_ids(self) -> list[int]:
        rows = self.peers_view.selectionModel().selectedRows()
        return [
            self.peer_model.peer_at(self.peer_proxy.mapToSource(index).row()).peer_id
            for index in rows
        ]

    def select_peer(self, peer_id: int) -> bool:
        """Select a peer's row (as a click would); False if it is not shown."""
        row = self.peer_model.row_of(peer_id)
        if row is None:
            return False
        proxy_index = self.peer_proxy.mapFromSource(self.peer_model.index(row, 0))
        if not proxy_index.isValid():
            return False
        self.peers_view.selectRow(proxy_index.row())
        return True

    def _on_peer_selection(self, _selected: QItemSelection, _deselected: QItemSelection) -> None:
        self._update_peer_buttons()
        ids = self.selected_peer_ids()
        peer_id = ids[0] if ids else None
        current = self.peers_view.selectionModel().currentIndex()
        if current.isValid():
            current_id = self.peer_model.peer_at(self.peer_proxy.mapToSource(current).row()).peer_id
            if current_id in ids:
                peer_id = current_id
        if peer_id != self._detail_peer:
            self._detail_peer = peer_id
            self._reload_details()

    def _update_peer_buttons(self) -> None:
        has_selection = self.peers_view.selectionModel().hasSelection()
        self.kick_button.setEnabled(has_selection)
        self.ban_button.setEnabled(has_selection)

    def _on_peer_left(self, peer_id: int, address: str) -> None:
        if peer_id == self._detail_peer:
            self._detail_peer = None
            self.detail_title.setText(
                tr("{address} has left; its files are no longer indexed.").format(address=address)
            )
            self.peer_files_model.show_files([])

    def _on_peer_updated(self, peer_id: int, _files: int) -> None:
        if peer_id == self._detail_peer:
            self._details_timer.start()

    def _reload_details(self) -> None:
        peer_id = self._detail_peer
        record = self.store.peer(peer_id) if peer_id is not None else None
        if record is None:
            self.detail_title.setText(tr(NO_PEER_SELECTED))
            self.peer_files_model.show_files([])
            self.peer_files_view.set_empty_text("")
            return
        files = self.store.peer_files(record.peer_id)
        shown = files[:PEER_FILES_SHOWN]
        title = tr("{address} ({agent}) shares {count} files, {size}").format(
            address=f"{record.host}:{record.port}",
            agent=plain_text(record.agent) or tr("no agent"),
            count=format_count(record.files),
            size=format_size(record.bytes),
        )
        if len(files) > len(shown):
            title += tr(" — showing the first {count}").format(count=format_count(len(shown)))
        self.detail_title.setText(title)
        self.peer_files_model.show_files(shown)
        self.peer_files_view.set_empty_text(tr("This peer shares no files."))

    def _refresh_visible_peers(self) -> None:
        """Re-read the peers in view, so "last seen" stays current where anyone looks."""
        view = self.peers_view
        if not view.isVisible() or self.peer_proxy.rowCount() == 0:
            return
        first = max(view.rowAt(0), 0)
        last = view.rowAt(view.viewport().height() - 1)
        if last < 0:
            last = self.peer_proxy.rowCount() - 1
        ids = [
            self.peer_model.peer_at(
                self.peer_proxy.mapToSource(self.peer_proxy.index(row, 0)).row()
            ).peer_id
            for row in range(first, last + 1)
        ]
        self.peer_feed.refresh(ids)

    def kick_selected(self) -> int:
        """Close the selected peers' connections (their addresses are refused for 10 minutes).

        Returns how many were kicked.
        """
        return sum(1 for peer_id in self.selected_peer_ids() if self.server.kick(peer_id))

    def ban_selected(self) -> int:
        """Ask, then ban the selected peers' addresses; returns how many were banned."""
        hosts = sorted(
            {
                self.peer_model.peer_at(self.peer_proxy.mapToSource(index).row()).host
                for index in self.peers_view.selectionModel().selectedRows()
            }
        )
        if not hosts:
            return 0
        question = tr(
            "Ban {addresses}?\n\nEvery connection from these addresses is closed now and "
            "refused from now on, also after a restart, until you unban them on the Bans tab."
        ).format(addresses=", ".join(hosts))
        if not self.confirm(tr("Ban address"), question):
            return 0
        for host in hosts:
            self.ban_address(host, BAN_REASON)
        return len(hosts)

    def confirm(self, title: str, question: str) -> bool:
        """Ask a yes/no question (through ``prompts``)."""
        return self.prompts.confirm(title, question)

    # ------------------------------------------------------------------ bans

    def ban_address(self, address: str, reason: str = "") -> str:
        """Ban an IP address at once (see ``IndexServer.ban``); returns it as stored.

        Raises ValueError for text that is not an IP address.
        """
        return self.server.ban(address, reason)[0]

    def unban_address(self, address: str) -> None:
        self.server.unban(address)

    def reload_bans(self) -> None:
        """Show the bans in force (a temporary one that ran out disappears)."""
        self.ban_model.load(self.server.bans(), self.server.now())

    def unban_selected(self) -> None:
        addresses = [
            self.ban_model.address_at(self.ban_proxy.mapToSource(index).row())
            for index in self.bans_view.selectionModel().selectedRows()
        ]
        for address in addresses:
            self.unban_address(address)

    def _on_ban_entered(self) -> None:
        text = self.ban_address_edit.text().strip()
        try:
            self.ban_address(text, self.ban_reason_edit.text().strip())
        except ValueError:
            self.ban_error.setText(
                tr("“{text}” is not an IP address.").format(text=plain_text(text))
            )
            self.ban_error.show()
            return
        self.ban_error.clear()
        self.ban_error.hide()
        self.ban_address_edit.clear()
        self.ban_reason_edit.clear()

    # ------------------------------------------------------------------ files

    def run_file_search(self) -> None:
        """Show the index's files matching the search box (the first ``FILE_ROWS_SHOWN``)."""
        self._search_timer.stop()
        query = self.file_search.text().strip()
        files = self.store.search_files(query, FILE_ROWS_SHOWN)
        if query == self._shown_query:
            self.file_model.merge(files)
        else:
            self.file_model.replace_all(files)
            self._shown_query = query
        self._files_stale = False
        if query:
            self.files_view.set_empty_text(
                tr("No file name contains every word of “{query}”.").format(query=query)
            )
        else:
            self.files_view.set_empty_text(tr(EMPTY_FILES))
        self.file_note.setText(self._files_note(query, len(files)))

    def _files_note(self, query: str, shown: int) -> str:
        model = self.peer_model
        index = tr("{files} shared files from {peers} peers").format(
            files=format_count(model.total_files), peers=format_count(model.rowCount())
        )
        if shown >= FILE_ROWS_SHOWN:
            if query:
                text = tr("Showing the first {count} matches ({index} in the index).")
            else:
                text = tr(
                    "Showing the first {count} names in alphabetical order ({index} in the index)."
                )
            return (
                text.format(count=format_count(shown), index=index)
                + " "
                + tr("Type more words to narrow the list.")
            )
        if not shown:
            return ""
        if query:
            if shown == 1:
                text = tr("1 file matches “{query}”. Click a header to sort.")
            else:
                text = tr("{count} different files match “{query}”. Click a header to sort.")
            return text.format(count=format_count(shown), query=query)
        if shown == 1:
            text = tr("1 file in the index ({index}). Click a header to sort.")
        else:
            text = tr("{count} different files in the index ({index}). Click a header to sort.")
        return text.format(count=format_count(shown), index=index)

    def _refresh_files_if_stale(self) -> None:
        if self._files_stale and self.tabs.currentWidget() is self.files_page:
            self.run_file_search()

    def _on_tab_changed(self, _index: int) -> None:
        # Opened, the Files tab shows the index as it is now, not as it was at start-up.
        if self.tabs.currentWidget() is self.files_page and (
            self._files_stale or not self.file_model.rowCount()
        ):
            self.run_file_search()

    # ------------------------------------------------------------------ closing

    def shutdown(self) -> None:
        """Stop the server and timers and let go of the log; safe to call twice."""
        if self._shut_down:
            return
        self._shut_down = True
        for timer in (
            self._counters_timer,
            self._last_seen_timer,
            self._files_timer,
            self._details_timer,
            self._search_timer,
            self._bans_timer,
        ):
            timer.stop()
        self._disconnect_server()
        self.server.stop()
        self.log_handler.detach()

    def closeEvent(self, event: QCloseEvent) -> None:
        if not self._shut_down and self.server.isListening():
            peers = self.server.online_peers()
            if peers and not self.prompts.confirm_disconnect(peers, quitting=True):
                event.ignore()
                return
        self.shutdown()
        super().closeEvent(event)

    # ------------------------------------------------------------------ for tests and tools

    def peer_addresses(self) -> list[str]:
        """The addresses in the peers table, in model order."""
        return [
            self.peer_model.peer_at(row).display[PeerTableModel.ADDRESS]
            for row in range(self.peer_model.rowCount())
        ]

    def file_names(self) -> list[str]:
        """The names in the files table, in model order."""
        return [
            self.file_model.file_at(row).display[IndexFileModel.NAME]
            for row in range(self.file_model.rowCount())
        ]

    def counter(self, key: str) -> str:
        return self.tiles[key].value()
