"""The Transfers page: downloads above, uploads below, each a table with a progress bar."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import Qt, QUrl, Signal
from PySide6.QtGui import QDesktopServices
from PySide6.QtWidgets import (
    QLabel,
    QSplitter,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

from app.download.transfer import Transfer, TransferState
from app.network import protocol as p
from app.peer import PeerNode
from app.ui.delegates import ProgressBarDelegate, StateDelegate
from app.ui.dialogs import CancelAnswer, Prompts
from app.ui.models import KEY_ROLE, DownloadsModel, UploadsModel
from app.ui.search_page import fit_header, hint_label, make_table
from app.ui.transfer_details import TransferDetails


def _section_title(parent: QWidget) -> QLabel:
    label = QLabel(parent)
    label.setTextFormat(Qt.TextFormat.PlainText)
    font = label.font()
    font.setBold(True)
    label.setFont(font)
    return label


class TransfersPage(QWidget):
    """Downloads and uploads, and the commands on the selected downloads (pause, resume,
    retry, cancel, open); the window's actions call them."""

    selection_changed = Signal()

    def __init__(self, node: PeerNode, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.node = node
        #: asks before cancelling, and opens finished files and folders (the window sets both)
        self.prompts: Prompts | None = None
        self.open_url: Callable[[QUrl], bool] = QDesktopServices.openUrl
        self.downloads = DownloadsModel(node.transfers, self)
        self._sizes: dict[str, list[int]] | None = None
        node.library.files_added.connect(self._forget_sizes)
        node.library.files_removed.connect(self._forget_sizes)
        self.uploads = UploadsModel(self.shared_size, self)
        uploads = node.uploads
        uploads.upload_started.connect(self.uploads.on_started)
        uploads.upload_progress.connect(self.uploads.on_progress)
        uploads.upload_finished.connect(self.uploads.on_finished)
        uploads.upload_failed.connect(self.uploads.on_failed)

        self.downloads_title = _section_title(self)
        self.downloads_table, self.downloads_proxy = make_table(
            self.downloads, "downloads_table", self
        )
        self.downloads_table.setItemDelegateForColumn(
            DownloadsModel.PROGRESS, ProgressBarDelegate(self.downloads_table)
        )
        self.downloads_table.setItemDelegateForColumn(
            DownloadsModel.STATE, StateDelegate(self.downloads_table)
        )
        header = self.downloads_table.horizontalHeader()
        for column, width in ((1, 170), (2, 130), (3, 90), (4, 90), (5, 190), (6, 90)):
            header.resizeSection(column, width)
        self.downloads_table.selectionModel().selectionChanged.connect(self.selection_changed)
        self.downloads_table.doubleClicked.connect(self._on_double_click)
        self.downloads.dataChanged.connect(self._on_downloads_changed)
        self.downloads.rowsInserted.connect(self._show_state)
        self.downloads.rowsRemoved.connect(self._show_state)
        self.downloads_hint = hint_label(self)
        self.downloads_stack = QStackedWidget(self)
        self.downloads_stack.addWidget(self.downloads_hint)
        self.downloads_stack.addWidget(self.downloads_table)

        self.uploads_title = _section_title(self)
        self.uploads_table, self.uploads_proxy = make_table(self.uploads, "uploads_table", self)
        self.uploads_table.setItemDelegateForColumn(
            UploadsModel.PROGRESS, ProgressBarDelegate(self.uploads_table)
        )
        self.uploads_table.setItemDelegateForColumn(
            UploadsModel.STATE, StateDelegate(self.uploads_table)
        )
        header = self.uploads_table.horizontalHeader()
        for column, width in ((1, 120), (2, 90), (3, 130), (4, 90), (5, 90), (6, 160)):
            header.resizeSection(column, width)
        for signal in (
            self.uploads.rowsInserted,
            self.uploads.rowsRemoved,
            self.uploads.modelReset,
        ):
            signal.connect(self._show_state)
        self.uploads_hint = hint_label(self)
        self.uploads_stack = QStackedWidget(self)
        self.uploads_stack.addWidget(self.uploads_hint)
        self.uploads_stack.addWidget(self.uploads_table)

        top = QWidget(self)
        top_layout = QVBoxLayout(top)
        top_layout.setContentsMargins(0, 0, 0, 0)
        top_layout.addWidget(self.downloads_title)
        top_layout.addWidget(self.downloads_stack, 1)
        bottom = QWidget(self)
        bottom_layout = QVBoxLayout(bottom)
        bottom_layout.setContentsMargins(0, 6, 0, 0)
        bottom_layout.addWidget(self.uploads_title)
        bottom_layout.addWidget(self.uploads_stack, 1)
        self.details = TransferDetails(self)
        self.splitter = QSplitter(Qt.Orientation.Vertical, self)
        self.splitter.setObjectName("transfers_splitter")
        self.splitter.addWidget(top)
        self.splitter.addWidget(self.details)
        self.splitter.addWidget(bottom)
        self.splitter.setStretchFactor(0, 3)
        self.splitter.setStretchFactor(1, 1)
        self.splitter.setStretchFactor(2, 1)
        self.selection_changed.connect(self.refresh_details)
        self.splitter.setChildrenCollapsible(False)
        layout = QVBoxLayout(self)
        layout.addWidget(self.splitter)
        self.retranslate()

    def shared_size(self, name: str, at_least: int) -> int:
        """The size of the shared file called ``name`` that holds ``at_least`` bytes.

        The upload server names the file, not its hash; of several shared files of that name
        the smallest that fits is the best guess (``at_least`` when none does).
        """
        if self._sizes is None:
            sizes: dict[str, list[int]] = {}
            for shared in self.node.library.files():
                sizes.setdefault(shared.name, []).append(shared.size)
            self._sizes = sizes
        fitting = [size for size in self._sizes.get(name, ()) if size >= at_least]
        return min(fitting, default=at_least)

    def _forget_sizes(self, *_args: object) -> None:
        self._sizes = None

    def tick(self) -> None:
        self.downloads.tick()
        self.uploads.tick()
        self.refresh_details()

    def refresh_details(self) -> None:
        """The details pane follows the first selected download."""
        selected = self.selected_transfers()
        self.details.show_transfer(selected[0] if selected else None)

    def retranslate(self) -> None:
        self.downloads.retranslate()
        self.uploads.retranslate()
        fit_header(self.downloads_table)
        fit_header(self.uploads_table)
        self.details.retranslate()
        self._show_state()

    def _on_downloads_changed(self, *_args: object) -> None:
        self.selection_changed.emit()  # the actions depend on the selected rows' states

    def _show_state(self, *_args: object) -> None:
        downloads = self.downloads.rowCount()
        uploads = self.uploads.rowCount()
        self.downloads_title.setText(
            self.tr("Downloads ({count})").format(count=downloads)
            if downloads
            else self.tr("Downloads")
        )
        self.uploads_title.setText(
            self.tr("Uploads ({count})").format(count=uploads) if uploads else self.tr("Uploads")
        )
        self.downloads_hint.setText(
            self.tr(
                "Nothing is downloading.\n"
                "Search for a file and double-click it: it shows up here with its progress."
            )
        )
        self.uploads_hint.setText(
            self.tr(
                "Nobody is downloading from you right now.\n"
                "Other peers can download every file on the Shared files page."
            )
        )
        self.downloads_stack.setCurrentWidget(
            self.downloads_table if downloads else self.downloads_hint
        )
        self.uploads_stack.setCurrentWidget(self.uploads_table if uploads else self.uploads_hint)

    def selected_transfers(self) -> list[Transfer]:
        selected = []
        for index in self.downloads_table.selectionModel().selectedRows():
            transfer = self.node.transfers.get(index.data(KEY_ROLE))
            if transfer is not None:
                selected.append(transfer)
        return selected

    def select_transfer(self, transfer_id: str) -> None:
        row = self.downloads.row_of(transfer_id)
        if row < 0:
            return
        index = self.downloads_proxy.mapFromSource(self.downloads.index(row, 0))
        self.downloads_table.selectRow(index.row())

    # ------------------------------------------------------------ commands on the selection

    def _selected(self) -> list[Transfer]:
        return self.selected_transfers()

    def pause_selected(self) -> None:
        for transfer in self._selected():
            self.node.transfers.pause(transfer.id)

    def resume_selected(self) -> None:
        for transfer in self._selected():
            self.node.transfers.resume(transfer.id)

    def retry_selected(self) -> None:
        for transfer in self._selected():
            self.node.transfers.retry(transfer.id)

    def cancel_selected(self) -> None:
        unfinished = [t for t in self._selected() if t.state is not TransferState.DONE]
        if not unfinished:
            return
        answer = self.prompts.ask_cancel([p.printable(t.name) for t in unfinished])
        if answer is CancelAnswer.KEEP_DOWNLOADING:
            return
        delete = answer is CancelAnswer.CANCEL_DELETE_PARTIAL
        for transfer in unfinished:
            self.node.transfers.cancel(transfer.id, delete_partial=delete)

    def clear_finished(self) -> None:
        for transfer in self.node.transfers.transfers():
            if transfer.state is TransferState.DONE:
                self.node.transfers.cancel(transfer.id)

    def open_selected(self) -> None:
        for transfer in self._selected():
            if transfer.state is TransferState.DONE and transfer.final_path:
                self.open_url(QUrl.fromLocalFile(transfer.final_path))

    def show_selected_in_folder(self) -> None:
        folders = []
        for transfer in self._selected():
            folder = Path(transfer.final_path).parent if transfer.final_path else transfer.folder
            if folder not in folders:
                folders.append(folder)
        for folder in folders:
            self.open_url(QUrl.fromLocalFile(str(folder)))

    def _on_double_click(self, index) -> None:
        transfer = self.node.transfers.get(index.data(KEY_ROLE))
        if transfer is not None and transfer.state is TransferState.DONE and transfer.final_path:
            self.open_url(QUrl.fromLocalFile(transfer.final_path))
