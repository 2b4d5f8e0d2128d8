"""The peer's main window: Search, Transfers and Shared files pages, menus, toolbar, status.

The window drives a ``PeerNode`` (adapter methods in, adapter signals out) and a
``FileCopier`` for files dropped on it; it does no socket, file or hash work itself.
``run_window()`` is what ``napster-peer`` runs without flags.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QEvent, QProcess, QSize, Qt, QTimer, QUrl, Signal
from PySide6.QtGui import (
    QAction,
    QCloseEvent,
    QDesktopServices,
)
from PySide6.QtWidgets import (
    QApplication,
    QDialog,
    QMainWindow,
    QMenu,
    QMessageBox,
    QStyle,
    QSystemTrayIcon,
    QTableView,
    QTabWidget,
    QWidget,
)

from app.config import config_from_settings
from app.download.transfer import TransferState
from app.file_copier import FileCopier
from app.i18n import Translations
from app.network import protocol as p
from app.peer import PeerNode
from app.settings import Settings
from app.streaming.player import player_command
from app.ui.dialogs import (
    Prompts,
    ResultDetailsDialog,
    SettingsDialog,
    SettingsValues,
)
from app.ui.formatting import folder_problem_text, format_count
from app.ui.icons import app_icon
from app.ui.models import percent, transfer_state_text
from app.ui.search_page import SearchPage
from app.ui.settings_apply import SettingsApplier
from app.ui.share_drop import ShareByDrop
from app.ui.shared_page import SharedPage
from app.ui.status import StatusArea
from app.ui.transfers_page import TransfersPage
from app.ui.window_actions import (
    DOWNLOAD_COMMANDS,
    add_to,
    make_actions,
    make_menus_and_toolbar,
    make_tray,
    retranslate_actions,
)

log = logging.getLogger("napster.ui")

TICK_MS = 1000
DEFAULT_SIZE = QSize(1100, 700)
SP = QStyle.StandardPixmap


class MainWindow(QMainWindow):
    """The desktop window around one PeerNode.

    ``prompts`` asks the questions that need a modal dialog and ``open_url`` opens files and
    folders; tests replace both. ``notifications`` keeps every notification shown.
    """

    #: the window has stopped the peer (LEAVE sent, queue saved)
    stopped = Signal()

    def __init__(
        self,
        node: PeerNode,
        settings: Settings,
        translations: Translations | None = None,
        prompts: Prompts | None = None,
        copier: FileCopier | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.node = node
        self.settings = settings
        self.translations = translations or Translations(self)
        self.prompts = prompts or Prompts(self)
        self.copier = copier or FileCopier(self)
        self.open_url: Callable[[QUrl], bool] = QDesktopServices.openUrl
        self.notifications: list[tuple[str, str]] = []
        self._stopped = False
        self._asked_to_quit = False
        self.details_dialog: ResultDetailsDialog | None = None
        self.setObjectName("main_window")
        self.setWindowIcon(app_icon())
        self.setAcceptDrops(True)

        self.search_page = SearchPage(node, self.file_status, self)
        self.transfers_page = TransfersPage(node, self)
        self.shared_page = SharedPage(node, self)
        self.tabs = QTabWidget(self)
        self.tabs.setObjectName("pages")
        self.tabs.setDocumentMode(True)
        self.tabs.addTab(self.search_page, "")
        self.tabs.addTab(self.transfers_page, "")
        self.tabs.addTab(self.shared_page, "")
        self.tabs.currentChanged.connect(self._update_actions)
        self.setCentralWidget(self.tabs)

        self.actions: dict[str, QAction] = make_actions(self)
        make_menus_and_toolbar(self)
        self.status = StatusArea(node, self.statusBar(), self)
        #: (server, presented fingerprint) pairs the user was already asked about
        self._identity_questions: set[tuple[str, str]] = set()
        node.client.server_identity_changed.connect(self._on_server_identity_changed)
        self.tray = make_tray(self)

        self.applier = SettingsApplier(self)
        self.actions["alt_limits"].setChecked(settings.use_alt_rates)
        self.actions["alt_limits"].toggled.connect(self.set_alternative_limits)
        if settings.use_alt_rates:
            self.applier.apply_rate_limits()
        self.status.set_alternative_limits(settings.use_alt_rates)

        self.search_page.download_requested.connect(self.queue_downloads)
        self.search_page.table.customContextMenuRequested.connect(self._search_menu)
        self.transfers_page.selection_changed.connect(self._update_actions)
        self.transfers_page.prompts = self.prompts
        self.transfers_page.open_url = lambda url: self.open_url(url)
        self.transfers_page.downloads_table.customContextMenuRequested.connect(self._downloads_menu)
        self.transfers_page.uploads_table.customContextMenuRequested.connect(self._uploads_menu)
        self.search_page.table.selectionModel().selectionChanged.connect(self._update_actions)
        self.shared_page.table.selectionModel().selectionChanged.connect(self._update_actions)
        self.search_page.table.selectionModel().selectionChanged.connect(self._follow_details)
        self.shared_page.add_files_requested.connect(self.add_files)
        self.shared_page.open_folder_requested.connect(self.open_shared_folder)
        self.shared_page.table.customContextMenuRequested.connect(self._shared_menu)
        self.shared_page.model.rowsInserted.connect(self._update_tab_titles)
        self.shared_page.model.rowsRemoved.connect(self._update_tab_titles)
        self.shared_page.model.modelReset.connect(self._update_tab_titles)

        transfers = node.transfers
        transfers.transfer_finished.connect(self._on_download_finished)
        transfers.transfer_failed.connect(self._on_download_failed)
        for signal in (
            transfers.transfer_added,
            transfers.transfer_changed,
            transfers.transfer_removed,
        ):
            signal.connect(self._schedule_marks)
        node.library.files_added.connect(self._schedule_marks)

        # Files dropped on the window (or chosen) are copied into the shared folder.
        self.sharing = ShareByDrop(self)

        # Search results and tab titles follow transfers, at most a few times a second.
        self._marks_timer = QTimer(self)
        self._marks_timer.setSingleShot(True)
        self._marks_timer.setInterval(300)
        self._marks_timer.timeout.connect(self._refresh_marks)
        self._ticker = QTimer(self)
        self._ticker.setInterval(TICK_MS)
        self._ticker.timeout.connect(self._tick)
        self._ticker.start()

        self.retranslate()
        self._restore_state()
        self._update_actions()

    # ------------------------------------------------------------ building

    def show_from_tray(self) -> None:
        self.showNormal()
        self.raise_()
        self.activateWindow()

    # ------------------------------------------------------------ texts

    def retranslate(self) -> None:
        self.setWindowTitle(self.tr("Napster P2P"))
        retranslate_actions(self)
        self.search_page.retranslate()
        if self.details_dialog is not None:
            self.details_dialog.retranslate()
        self.transfers_page.retranslate()
        self.shared_page.retranslate()
        self._update_tab_titles()
        self.status.refresh()

    def changeEvent(self, event: QEvent) -> None:
        if event.type() == QEvent.Type.LanguageChange:
            self.retranslate()
        super().changeEvent(event)

    def _update_tab_titles(self, *_args: object) -> None:
        unfinished = sum(
            1 for t in self.node.transfers.transfers() if t.state is not TransferState.DONE
        )
        shared = self.shared_page.model.shared_count()
        self.tabs.setTabText(0, self.tr("Search"))
        self.tabs.setTabText(
            1,
            self.tr("Transfers ({count})").format(count=format_count(unfinished))
            if unfinished
            else self.tr("Transfers"),
        )
        self.tabs.setTabText(
            2,
            self.tr("Shared files ({count})").format(count=format_count(shared))
            if shared
            else self.tr("Shared files"),
        )

    def _on_server_identity_changed(self, server: str, known: str, presented: str) -> None:
        """Ask once per new identity, outside the socket's signal (the dialog is modal)."""
        if (server, presented) in self._identity_questions:
            return
        self._identity_questions.add((server, presented))
        QTimer.singleShot(0, self, lambda: self._ask_about_identity(server, known, presented))

    def _ask_about_identity(self, server: str, known: str, presented: str) -> None:
        if self.prompts.trust_new_server_identity(server, known, presented):
            log.warning("The user trusts the new identity of %s: %s", server, presented)
            self.node.client.trust_server_identity(server, presented)
            self.node.client.retry_server(server)

    # ------------------------------------------------------------ life cycle

    def start(self) -> int:
        """Start the peer; a listen port in use falls back to any free port (said in the status).

        Folders that cannot be used are told at once, not discovered by the first download.
        """
        problems = self.node.folder_problems()
        if problems:
            self.prompts.warn(
                self.tr("Folder problem"),
                "\n\n".join(folder_problem_text(*problem) for problem in problems),
            )
        try:
            return self.node.start()
        except OSError as exc:
            wanted = self.node.config.listen_port
            if wanted == 0:
                raise
            log.warning("%s; listening on a free port instead", exc)
            self.node.config.listen_port = 0
            port = self.node.start()
            self.statusBar().showMessage(
                self.tr("Port {wanted} is in use; other peers reach you on port {port}.").format(
                    wanted=wanted, port=port
                ),
                15000,
            )
            return port

    def busy_counts(self) -> tuple[int, int, int]:
        """Running or queued downloads, uploads in progress, copies not finished."""
        downloads = sum(
            1
            for t in self.node.transfers.transfers()
            if t.state.is_active or t.state is TransferState.QUEUED
        )
        return downloads, self.node.uploads.active_uploads, self.copier.pending()

    def quit_without_asking(self) -> None:
        """Close for SIGINT/SIGTERM: the system or the user already decided; saves everything."""
        self._asked_to_quit = True
        self.close()

    def closeEvent(self, event: QCloseEvent) -> None:
        if not self._stopped and not self._asked_to_quit:
            downloads, uploads, copies = self.busy_counts()
            if (downloads or uploads or copies) and not self.prompts.confirm_quit(
                downloads, uploads, copies
            ):
                event.ignore()
                return
        self.shutdown()
        event.accept()

    def shutdown(self) -> None:
        """Save the window, stop copying, LEAVE the index and save the queue (once)."""
        if self._stopped:
            return
        self._stopped = True
        self._ticker.stop()
        self._save_state()
        self.copier.stop()
        self.node.stop()
        if self.tray is not None:
            self.tray.hide()
        self.stopped.emit()

    def _tables(self) -> dict[str, QTableView]:
        return {
            "search": self.search_page.table,
            "downloads": self.transfers_page.downloads_table,
            "uploads": self.transfers_page.uploads_table,
            "shared": self.shared_page.table,
        }

    def _restore_state(self) -> None:
        geometry = self.settings.window_state("geometry")
        if geometry is None or not self.restoreGeometry(geometry):
            self.resize(DEFAULT_SIZE)
            self.fit_toolbar()
        toolbars = self.settings.window_state("toolbars")
        if toolbars is not None:
            self.restoreState(toolbars)
        for name, table in self._tables().items():
            state = self.settings.window_state(f"header_{name}")
            if state is not None:
                table.horizontalHeader().restoreState(state)
        splitter = self.settings.window_state("transfers_splitter")
        if splitter is not None:
            self.transfers_page.splitter.restoreState(splitter)

    def _save_state(self) -> None:
        settings = self.settings
        settings.set_window_state("geometry", self.saveGeometry())
        settings.set_window_state("toolbars", self.saveState())
        for name, table in self._tables().items():
            settings.set_window_state(f"header_{name}", table.horizontalHeader().saveState())
        settings.set_window_state("transfers_splitter", self.transfers_page.splitter.saveState())
        settings.sync()

    # ------------------------------------------------------------ pages

    def show_page(self, page: QWidget) -> None:
        self.tabs.setCurrentWidget(page)

    def focus_search(self) -> None:
        self.show_page(self.search_page)
        self.search_page.field.setFocus()
        self.search_page.field.selectAll()

    def file_status(self, result: p.SearchResult) -> str:
        """How a search result relates to this peer: downloaded, downloading, or already shared."""
        file_hash = result.hash
        transfer = self.node.transfers.find(result.hash, result.size)
        if transfer is not None:
            if transfer.state is TransferState.DONE:
                return self.tr("Downloaded")
            if transfer.state is TransferState.DOWNLOADING:
                return self.tr("Downloading {percent}").format(percent=percent(transfer.progress))
            return transfer_state_text(transfer)
        if self.node.library.lookup(file_hash) is not None:
            return self.tr("In your shared files")
        return ""

    def _schedule_marks(self, *_args: object) -> None:
        if not self._marks_timer.isActive():
            self._marks_timer.start()

    def _refresh_marks(self) -> None:
        self.search_page.model.refresh_status()
        self._update_tab_titles()
        self._update_actions()

    def _tick(self) -> None:
        self.transfers_page.tick()
        self.status.set_upload_speed(self.transfers_page.uploads.total_speed())
        self.status.refresh()

    # ------------------------------------------------------------ downloads

    def queue_downloads(self, results: list[p.SearchResult]) -> list[str]:
        """Queue each result with all its sources; files already downloaded are skipped."""
        queued: list[str] = []
        queued_names: list[str] = []
        skipped: list[str] = []
        for result in results:
            existing = self.node.transfers.find(result.hash, result.size)
            if existing is not None and existing.state is TransferState.DONE:
                skipped.append(result.name)
                continue
            queued.append(self.node.download(result))
            queued_names.append(result.name)
        if len(queued) == 1:
            message = self.tr("Downloading {name}").format(name=p.printable(queued_names[0]))
        elif queued:
            message = self.tr("Downloading {count} files").format(count=len(queued))
        elif skipped:
            message = self.tr("Already downloaded: {name}").format(name=p.printable(skipped[0]))
        else:
            message = ""
        if message:
            self.statusBar().showMessage(message, 5000)
        self._schedule_marks()
        return queued

    def _selected(self):
        return self.transfers_page.selected_transfers()

    # ------------------------------------------------------------ playing

    def play_selected(self) -> None:
        """Play the selected download (finished or not) or shared file in the user's player."""
        url = None
        if self.tabs.currentWidget() is self.shared_page:
            for key in self.shared_page.selected_keys():
                row = self.shared_page.model.row_for(key)
                if row is not None and row.hash:
                    url = self.node.stream_url_of_shared(row.hash)
                    break
        else:
            for transfer in self._selected():
                if transfer.state is not TransferState.FAILED:
                    url = self.node.stream_url(transfer.id)
                    break
        if url is None:
            return
        command = player_command(self.settings.player)
        if command is None or not self.launch_player(command, url):
            self.prompts.show_stream_url(url)
        else:
            self.statusBar().showMessage(
                self.tr("Playing in {player}").format(player=Path(command[0]).name), 5000
            )

    def launch_player(self, command: list[str], url: str) -> bool:
        """Start the player on ``url``, detached (tests replace this)."""
        return QProcess.startDetached(command[0], [*command[1:], url])[0]

    def _on_download_finished(self, transfer_id: str, path: str, _digest: object) -> None:
        transfer = self.node.transfers.get(transfer_id)
        name = p.printable(transfer.name if transfer else Path(path).name)
        if self.settings.notify_finished:
            self.notify(
                self.tr("Download finished"),
                self.tr("{name} is in {folder}").format(name=name, folder=Path(path).parent),
            )

    def _on_download_failed(self, transfer_id: str, reason: str) -> None:
        transfer = self.node.transfers.get(transfer_id)
        if transfer is not None and transfer.state is TransferState.FAILED:
            self.statusBar().showMessage(
                self.tr("Download of {name} failed: {reason}").format(
                    name=p.printable(transfer.name), reason=reason
                ),
                10000,
            )

    def notify(self, title: str, text: str) -> None:
        """A tray notification where the desktop has a tray; always a status-bar message."""
        self.notifications.append((title, text))
        self.statusBar().showMessage(f"{title}: {text}", 8000)
        if self.tray is not None and QSystemTrayIcon.supportsMessages():
            self.tray.showMessage(title, text, QSystemTrayIcon.MessageIcon.Information, 6000)

    def _update_actions(self, *_args: object) -> None:
        selected = self._selected()
        states = {t.state for t in selected}
        on_transfers = self.tabs.currentWidget() is self.transfers_page
        a = self.actions
        has_results = bool(self.search_page.selected_results())
        a["download"].setEnabled(has_results)
        a["details"].setEnabled(has_results)
        a["copy_sources"].setEnabled(has_results)
        a["pause"].setEnabled(
            on_transfers and bool(states - {TransferState.DONE, TransferState.PAUSED})
        )
        a["resume"].setEnabled(
            on_transfers
            and bool(states & {TransferState.PAUSED, TransferState.FAILED, TransferState.WAITING})
        )
        a["retry"].setEnabled(
            on_transfers and bool(states & {TransferState.FAILED, TransferState.WAITING})
        )
        a["cancel"].setEnabled(on_transfers and bool(states - {TransferState.DONE}))
        done = on_transfers and TransferState.DONE in states
        a["open_file"].setEnabled(done)
        a["show_in_folder"].setEnabled(on_transfers and bool(selected))
        on_shared = self.tabs.currentWidget() is self.shared_page
        shared_rows = [self.shared_page.model.row_for(k) for k in self.shared_page.selected_keys()]
        a["play"].setEnabled(
            (on_transfers and bool(states - {TransferState.FAILED}))
            or (on_shared and any(row is not None and row.hash for row in shared_rows))
        )
        a["clear_finished"].setEnabled(
            any(t.state is TransferState.DONE for t in self.node.transfers.transfers())
        )

    # ------------------------------------------------------------ context menus

    def _context_menu(self) -> QMenu:
        menu = QMenu(self)
        menu.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        return menu

    def _popup(self, table: QTableView, names: list[str | None], position) -> None:
        menu = self._context_menu()
        for name in names:
            add_to(menu, self.actions, name)
        menu.popup(table.viewport().mapToGlobal(position))

    def _search_menu(self, position) -> None:
        menu = self._context_menu()
        for name in ("download", None, "details", "copy_sources"):
            add_to(menu, self.actions, name)
        results = self.search_page.selected_results()
        peers = list(dict.fromkeys(peer for r in results[:1] for peer in r.peers))[:20]
        if peers:
            browse = menu.addMenu(self.tr("Browse a Peer's Files"))
            for peer in peers:
                browse.addAction(str(peer), lambda peer=peer: self.search_page.browse(peer))
        menu.popup(self.search_page.table.viewport().mapToGlobal(position))

    def _downloads_menu(self, position) -> None:
        self._popup(self.transfers_page.downloads_table, list(DOWNLOAD_COMMANDS), position)

    def _uploads_menu(self, position) -> None:
        menu = self._context_menu()
        menu.addAction(
            self.tr("Clear Finished Uploads"), self.transfers_page.uploads.clear_finished
        )
        menu.popup(self.transfers_page.uploads_table.viewport().mapToGlobal(position))

    def _shared_menu(self, position) -> None:
        menu = self._context_menu()
        jobs = self.shared_page.selected_copy_jobs()
        if jobs:
            menu.addAction(
                self.tr("Cancel Copy"), lambda: [self.copier.cancel(job) for job in jobs]
            )
        menu.addAction(self.actions["play"])
        menu.addAction(self.actions["open_shared"])
        menu.addAction(self.tr("Clear Failed"), self.shared_page.model.clear_failed)
        menu.popup(self.shared_page.table.viewport().mapToGlobal(position))

    # ------------------------------------------------------------ sharing

    def share_paths(self, paths: list[Path]) -> list[int]:
        """Copy files and folders into the shared folder (in the background) to share them."""
        return self.sharing.share_paths(paths)

    def add_files(self) -> None:
        self.sharing.add_files()

    # ------------------------------------------------------------ folders and settings

    def open_shared_folder(self) -> None:
        self.open_url(QUrl.fromLocalFile(str(self.node.config.share_dir)))

    def open_download_folder(self) -> None:
        self.open_url(QUrl.fromLocalFile(str(self.node.config.download_dir)))

    def current_values(self) -> SettingsValues:
        """The settings as they are in force (command-line choices included)."""
        return self.applier.current_values()

    def open_settings(self) -> None:
        values = self.prompts.edit_settings(self.current_values())
        if values is not None:
            self.apply_settings(values)

    def apply_settings(self, values: SettingsValues) -> None:
        """Save the settings and apply what can change while running."""
        self.applier.apply(values)

    def set_alternative_limits(self, on: bool) -> None:
        """Switch between the usual and the alternative speed limits, at once and for good."""
        if self.actions["alt_limits"].isChecked() != on:
            self.actions["alt_limits"].setChecked(on)  # toggled() brings us back here once
            return
        self.applier.use_alternative_limits(on)

    # ------------------------------------------------------------ search results

    def show_details(self) -> None:
        """The first selected search result in full, in a window that stays open."""
        results = self.search_page.selected_results()
        if not results:
            return
        if self.details_dialog is None:
            self.details_dialog = ResultDetailsDialog(self)
        self.details_dialog.show_result(results[0])
        self.details_dialog.show()
        self.details_dialog.raise_()

    def _follow_details(self, *_args: object) -> None:
        if self.details_dialog is not None and self.details_dialog.isVisible():
            results = self.search_page.selected_results()
            if results:
                self.details_dialog.show_result(results[0])

    def copy_sources(self) -> None:
        addresses = []
        for result in self.search_page.selected_results():
            for peer in result.peers:
                if str(peer) not in addresses:
                    addresses.append(str(peer))
        if addresses:
            QApplication.clipboard().setText("\n".join(addresses))
            self.statusBar().showMessage(
                self.tr("Addresses copied: {count}").format(count=len(addresses)), 4000
            )

    def set_language(self, choice: str) -> None:
        """Show the window in ``choice`` ("" follows the system), at once."""
        self.translations.apply(choice)
        self.retranslate()
        self.fit_toolbar()

    def fit_toolbar(self) -> None:
        """Widen the window, as far as the screen allows, until every toolbar button shows:
        in Portuguese their texts are longer, and Settings went into the overflow menu."""
        if self.isMaximized() or self.isFullScreen():
            return
        wanted = self.toolbar.sizeHint().width()
        screen = self.screen()
        if screen is not None:
            wanted = min(wanted, screen.availableGeometry().width())
        if self.width() < wanted:
            self.resize(wanted, self.height())

    def show_about(self) -> None:
        self.prompts.show_about()


def run_window(args: argparse.Namespace) -> int:
    """``napster-peer``: first-run setup if needed, then the window until it closes."""
    from app.quit_signals import QuitOnSignals
    from app.runtime import setup_logging

    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationDisplayName("Napster P2P")
    app.setDesktopFileName("napster-peer")
    app.setWindowIcon(app_icon())
    setup_logging()
    settings = Settings.for_app()
    translations = Translations(app)
    translations.apply(settings.language)
    explicit = bool(args.server or args.share or args.downloads)
    if not settings.setup_done and not explicit:
        dialog = SettingsDialog(SettingsValues.load(settings), first_run=True)
        if dialog.exec() != QDialog.DialogCode.Accepted:
            return 0
        dialog.values().save(settings)
        translations.apply(settings.language)
    try:
        node = PeerNode(config_from_settings(settings, args))
    except OSError as exc:
        QMessageBox.critical(None, "Napster P2P", str(exc))
        return 1
    window = MainWindow(node, settings, translations)
    window.show()
    try:
        window.start()
    except OSError as exc:
        QMessageBox.critical(window, "Napster P2P", str(exc))
        window.shutdown()
        return 1
    quitter = QuitOnSignals(window.quit_without_asking)
    code = app.exec()
    window.shutdown()
    quitter.uninstall()
    return code
