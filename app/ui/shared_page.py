"""The Shared files page: what this peer offers, files on their way in, and the drop hint."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

from app.display import ElidedLabel
from app.peer import PeerNode
from app.ui.models import KEY_ROLE, SharedFilesModel, ShareState
from app.ui.search_page import fit_header, hint_label, make_table

DROP_HINT_STYLE = (
    "QLabel { border: 2px dashed palette(mid); border-radius: 10px; font-size: 11pt; }"
)
DROP_ACTIVE_STYLE = (
    "QLabel { border: 2px dashed palette(highlight); border-radius: 10px;"
    " color: palette(highlight); font-size: 11pt; }"
)


class SharedPage(QWidget):
    """The shared files with their state; buttons to add files and open the folder."""

    add_files_requested = Signal()
    open_folder_requested = Signal()

    def __init__(self, node: PeerNode, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.node = node
        self.model = SharedFilesModel(self)
        self.model.roots = node.library.folders
        self.folder_label = ElidedLabel(self)
        self.add_button = QPushButton(self)
        self.add_button.clicked.connect(self.add_files_requested)
        self.open_button = QPushButton(self)
        self.open_button.setObjectName("open_shared_folder")
        self.open_button.clicked.connect(self.open_folder_requested)
        self.filter = QLineEdit(self)
        self.filter.setClearButtonEnabled(True)
        self.filter.setAcceptDrops(False)
        self.filter.setMaximumWidth(260)

        self.table, self.proxy = make_table(self.model, "shared_table", self)
        self.proxy.setFilterKeyColumn(SharedFilesModel.NAME)
        self.proxy.setFilterCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)
        self.filter.textChanged.connect(self.proxy.setFilterFixedString)
        header = self.table.horizontalHeader()
        for column, width in ((1, 160), (2, 170), (3, 190)):
            header.resizeSection(column, width)
        self.table.sortByColumn(SharedFilesModel.NAME, Qt.SortOrder.AscendingOrder)
        self.hint = hint_label(self)
        self.hint.setObjectName("drop_hint")
        self.hint.setStyleSheet(DROP_HINT_STYLE)
        self.stack = QStackedWidget(self)
        self.stack.addWidget(self.hint)
        self.stack.addWidget(self.table)
        self.footer = QLabel(self)
        self.footer.setTextFormat(Qt.TextFormat.PlainText)
        self.footer.setWordWrap(True)

        for signal in (self.model.rowsInserted, self.model.rowsRemoved, self.model.modelReset):
            signal.connect(self._show_state)

        top = QHBoxLayout()
        top.addWidget(self.folder_label, 1)
        top.addWidget(self.filter)
        top.addWidget(self.add_button)
        top.addWidget(self.open_button)
        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addWidget(self.stack, 1)
        layout.addWidget(self.footer)

        library = node.library
        library.files_added.connect(self.model.add_files)
        library.files_removed.connect(self.model.remove_hashes)
        library.file_failed.connect(self.model.mark_failed)
        library.hashing_progress.connect(lambda _done, _total, name: self.model.mark_hashing(name))
        library.hashing_finished.connect(lambda: self.model.mark_hashing(""))
        self.model.reset_files(library.files())
        self.retranslate()

    def folders_changed(self) -> None:
        """The shared or download folder changed: the library announces the new files."""
        self.model.roots = self.node.library.folders
        self.retranslate()

    def set_drop_active(self, active: bool) -> None:
        self.hint.setStyleSheet(DROP_ACTIVE_STYLE if active else DROP_HINT_STYLE)

    def retranslate(self) -> None:
        share = self.node.config.share_dir
        self.folder_label.setText(self.tr("Sharing {folder}").format(folder=share))
        self.folder_label.setToolTip(
            f"{share}\n"
            + self.tr("Your downloads in {folder} are shared too.").format(
                folder=self.node.config.download_dir
            )
        )
        self.add_button.setText(self.tr("Add files…"))
        self.add_button.setToolTip(self.tr("Copy files into the shared folder"))
        self.open_button.setText(self.tr("Open shared folder"))
        self.filter.setPlaceholderText(self.tr("Filter by name"))
        self.hint.setText(
            self.tr(
                "You are not sharing any files yet.\n\n"
                "Drag files or folders here from your desktop or file manager,\n"
                "or click “Add files…”. They are copied into your shared folder,\n"
                "checked, and offered to other peers."
            )
        )
        self.model.retranslate()
        fit_header(self.table)
        self._show_state()

    def _show_state(self, *_args: object) -> None:
        has_rows = self.model.rowCount() > 0
        self.stack.setCurrentWidget(self.table if has_rows else self.hint)
        self.footer.setVisible(has_rows)
        self.footer.setText(
            self.tr("Drop files anywhere on this window to share them.") if has_rows else ""
        )

    def selected_keys(self) -> list[str]:
        return [index.data(KEY_ROLE) for index in self.table.selectionModel().selectedRows()]

    def selected_copy_jobs(self) -> list[int]:
        jobs = []
        for key in self.selected_keys():
            row = self.model.row_for(key)
            if row is not None and row.state is ShareState.COPYING and key.startswith("copy:"):
                jobs.append(int(key.split(":", 1)[1]))
        return jobs
