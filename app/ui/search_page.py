"""The Search page: a search field, a sortable result table, hints, busy state and errors."""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import QModelIndex, QSortFilterProxyModel, Qt, Signal
from PySide6.QtGui import QPalette
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QSizePolicy,
    QStackedWidget,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from app.network import protocol as p
from app.network.index_client import ClientState
from app.peer import PeerNode
from app.ui.models import SORT_ROLE, SearchResultsModel

ERROR_STYLE = "color: #b3261e;"
HINT_STYLE = "font-size: 11pt;"
#: How many results a search asks for, and each "Show more" after it (the protocol's most).
SEARCH_LIMITS = (p.DEFAULT_SEARCH_LIMIT, 200, p.MAX_SEARCH_LIMIT)


def has_more(results: list, limit: int) -> bool:
    """Whether the server has more results than it sent.

    The server may say so (SEARCH_OK's optional ``more``, when the list carries it); when it
    cannot, a full page means there are at least that many, and maybe more.
    """
    said = getattr(results, "more", None)
    if isinstance(said, bool):
        return said
    return len(results) >= limit


def next_limit(limit: int) -> int:
    """The next, larger number of results to ask for (the protocol's most at the end)."""
    return next((step for step in SEARCH_LIMITS if step > limit), p.MAX_SEARCH_LIMIT)


def make_table(model, name: str, parent: QWidget) -> tuple[QTableView, QSortFilterProxyModel]:
    """A sortable, row-selecting table over ``model`` (shared by every page)."""
    proxy = QSortFilterProxyModel(parent)
    proxy.setSourceModel(model)
    proxy.setSortRole(SORT_ROLE)
    proxy.setSortCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)
    table = QTableView(parent)
    table.setObjectName(name)
    table.setModel(proxy)
    table.setSortingEnabled(True)
    table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
    table.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
    table.setAlternatingRowColors(True)
    table.setShowGrid(False)
    table.setWordWrap(False)
    table.setTextElideMode(Qt.TextElideMode.ElideMiddle)
    table.verticalHeader().hide()
    table.verticalHeader().setDefaultSectionSize(table.fontMetrics().height() + 10)
    table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
    table.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
    header = table.horizontalHeader()
    header.setHighlightSections(False)
    header.setSectionsMovable(True)
    header.setStretchLastSection(False)
    header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
    header.setMinimumSectionSize(48)
    header.setSortIndicator(-1, Qt.SortOrder.AscendingOrder)  # the model's own order
    return table, proxy


def fit_header(table: QTableView) -> None:
    """Widen columns whose (translated) title no longer fits."""
    header = table.horizontalHeader()
    for section in range(1, header.count()):
        needed = header.sectionSizeFromContents(section).width()
        if header.sectionSize(section) < needed:
            header.resizeSection(section, needed)


def hint_label(parent: QWidget) -> QLabel:
    label = QLabel(parent)
    label.setTextFormat(Qt.TextFormat.PlainText)
    label.setAlignment(Qt.AlignmentFlag.AlignCenter)
    label.setWordWrap(True)
    label.setStyleSheet(HINT_STYLE)
    label.setMargin(24)
    palette = label.palette()
    palette.setColor(
        QPalette.ColorRole.WindowText, palette.color(QPalette.ColorRole.PlaceholderText)
    )
    label.setPalette(palette)
    return label


class SearchPage(QWidget):
    """Searches the index and queues downloads; marks files already here or on their way."""

    #: the results the user asked to download
    download_requested = Signal(list)

    def __init__(
        self,
        node: PeerNode,
        status_of: Callable[[p.SearchResult], str],
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.node = node
        self._search_id: int | None = None
        self._query = ""
        self._error = ""
        #: the error came from a search that did not reach the server (stale once joined)
        self._error_from_search = False
        self._limit = p.DEFAULT_SEARCH_LIMIT  # what the results shown were asked with
        self._asked_limit = p.DEFAULT_SEARCH_LIMIT  # what the running search asks for
        self._more = False
        self._reconnected = False
        #: the peer whose shared files are listed (Browse), else None for a search
        self._browsing: p.PeerAddress | None = None

        self.field = QLineEdit(self)
        self.field.setObjectName("search_field")
        self.field.setClearButtonEnabled(True)
        self.field.setMaxLength(p.MAX_QUERY_CHARS)
        self.field.setAcceptDrops(False)  # dropped files go to the window: they are shared
        self.field.returnPressed.connect(self.search)
        self.search_button = QPushButton(self)
        self.search_button.clicked.connect(self.search)

        self.busy = QProgressBar(self)
        self.busy.setRange(0, 0)
        self.busy.setMaximumWidth(120)
        self.busy.setMaximumHeight(14)
        self.busy.setTextVisible(False)
        self.busy.hide()
        self.error_label = QLabel(self)
        self.error_label.setObjectName("search_error")
        self.error_label.setTextFormat(Qt.TextFormat.PlainText)
        self.error_label.setWordWrap(True)
        self.error_label.setStyleSheet(ERROR_STYLE)
        self.error_label.hide()
        self.count_label = QLabel(self)
        self.count_label.setObjectName("search_count")
        self.count_label.setTextFormat(Qt.TextFormat.PlainText)
        self.more_button = QPushButton(self)
        self.more_button.setObjectName("show_more")
        self.more_button.clicked.connect(self.show_more)
        self.more_button.setSizePolicy(QSizePolicy.Policy.Maximum, QSizePolicy.Policy.Fixed)
        self.more_button.hide()

        self.model = SearchResultsModel(status_of, self)
        self.table, self.proxy = make_table(self.model, "search_results", self)
        header = self.table.horizontalHeader()
        for column, width in ((1, 100), (2, 80), (3, 150)):
            header.resizeSection(column, width)
        self.table.sortByColumn(SearchResultsModel.SOURCES, Qt.SortOrder.DescendingOrder)
        self.table.doubleClicked.connect(self._on_double_click)
        self.table.selectionModel().selectionChanged.connect(self._update_buttons)
        self.hint = hint_label(self)
        self.stack = QStackedWidget(self)
        self.stack.addWidget(self.hint)
        self.stack.addWidget(self.table)

        self.download_button = QPushButton(self)
        self.download_button.setObjectName("download_button")
        self.download_button.clicked.connect(self.download_selected)

        top = QHBoxLayout()
        top.addWidget(self.field, 1)
        top.addWidget(self.search_button)
        info = QHBoxLayout()
        info.addWidget(self.busy)
        info.addWidget(self.count_label)
        info.addWidget(self.more_button)
        info.addWidget(self.error_label, 1)
        info.addStretch()  # holds the count and the button on the left while no error shows
        bottom = QHBoxLayout()
        bottom.addStretch(1)
        bottom.addWidget(self.download_button)
        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addLayout(info)
        layout.addWidget(self.stack, 1)
        layout.addLayout(bottom)

        node.search_finished.connect(self._on_finished)
        node.search_failed.connect(self._on_failed)
        node.client.state_changed.connect(self._on_client_state)
        self.field.textEdited.connect(self._on_text_edited)
        self.retranslate()

    # ------------------------------------------------------------ state

    @property
    def searching(self) -> bool:
        return self._search_id is not None

    def hint_text(self) -> str:
        if self._browsing is not None:
            if self.searching:
                return self.tr("Asking the server what {peer} shares…").format(peer=self._browsing)
            if not self.model.rowCount():
                return self.tr("{peer} shares nothing right now, or has left.").format(
                    peer=self._browsing
                )
        if self.searching:
            return self.tr("Searching for “{query}”…").format(query=self._query)
        if self._error and not self.model.rowCount():
            return self.tr("The search did not reach the server. Check the status bar below.")
        if self._reconnected and not self.model.rowCount():
            return self.tr(
                "Connected to the server again. Press Enter to search for “{query}”."
            ).format(query=self._query)
        if self._query and not self.model.rowCount():
            return self.tr(
                "No peer shares a file matching “{query}”.\n"
                "Every word must appear in the name: try fewer or shorter words."
            ).format(query=self._query)
        return self.tr(
            "Find files shared by other peers.\n"
            "Type part of a name (for example: aula mp4) and press Enter.\n"
            "Double-click a result to download it."
        )

    def retranslate(self) -> None:
        self.field.setPlaceholderText(self.tr("Search for files, e.g. aula mp4"))
        self.search_button.setText(self.tr("Search"))
        self.download_button.setText(self.tr("Download"))
        self.download_button.setToolTip(self.tr("Download the selected files from every source"))
        self.more_button.setText(self.tr("Show more"))
        self.more_button.setToolTip(
            self.tr("Ask the server again for up to {count} results").format(
                count=next_limit(self._limit)
            )
        )
        self.model.retranslate()
        fit_header(self.table)
        self._show_state()

    def _show_state(self) -> None:
        has_rows = self.model.rowCount() > 0
        self.stack.setCurrentWidget(self.table if has_rows else self.hint)
        self.hint.setText(self.hint_text())
        self.busy.setVisible(self.searching)
        self.error_label.setText(self._error)
        self.error_label.setVisible(bool(self._error))
        self.count_label.setText(self.count_text())
        can_ask_more = self._more and self._limit < p.MAX_SEARCH_LIMIT
        self.more_button.setVisible(can_ask_more and not self.searching)
        self.more_button.setToolTip(
            self.tr("Ask the server again for up to {count} results").format(
                count=next_limit(self._limit)
            )
        )
        self._update_buttons()

    def count_text(self) -> str:
        """ "12 results", or "Showing the first 100 results; more match." """
        if not self._query or (self.searching and not self.model.rowCount()):
            return ""
        count = self.model.rowCount()
        if self._browsing is not None and not self.searching:
            text = self.tr("{count} files shared by {peer}").format(
                count=count, peer=self._browsing
            )
            if self._more:
                text += " " + self.tr("(the first {count})").format(count=count)
            return text
        if self._more:
            if self._limit >= p.MAX_SEARCH_LIMIT:
                return self.tr(
                    "Showing the first {count} results; more match: add words to narrow the search."
                ).format(count=count)
            return self.tr("Showing the first {count} results; more match.").format(count=count)
        if count == 1:
            return self.tr("1 result")
        return self.tr("{count} results").format(count=count)

    def _update_buttons(self) -> None:
        self.download_button.setEnabled(bool(self.selected_results()))

    # ------------------------------------------------------------ actions

    def search(self) -> None:
        query = self.field.text().strip()
        if not query:
            self._error = self.tr("Type a file name or part of one to search.")
            self._error_from_search = False
            self._show_state()
            return
        self._query = query
        self._browsing = None
        self._error = ""
        self._reconnected = False
        self._more = False
        self._limit = self._asked_limit = p.DEFAULT_SEARCH_LIMIT
        self.model.set_results([])
        self._search_id = self.node.search(query, self._asked_limit)
        self._show_state()

    def browse(self, peer: p.PeerAddress) -> None:
        """List everything ``peer`` shares (the index knows); download from the list."""
        self._browsing = peer
        self._query = str(peer)
        self._error = ""
        self._reconnected = False
        self._more = False
        self._limit = self._asked_limit = p.MAX_SEARCH_LIMIT
        self.model.set_results([])
        self._search_id = self.node.browse(peer)
        self._show_state()

    def show_more(self) -> None:
        """Ask again for more results; the ones shown stay until the answer comes."""
        if not self._query or self.searching or self._limit >= p.MAX_SEARCH_LIMIT:
            return
        if self._browsing is not None:
            return
        self._asked_limit = next_limit(self._limit)
        self._error = ""
        self._search_id = self.node.search(self._query, self._asked_limit)
        self._show_state()

    def selected_results(self) -> list[p.SearchResult]:
        rows = {
            self.proxy.mapToSource(index).row()
            for index in self.table.selectionModel().selectedRows()
        }
        return [self.model.result_at(row) for row in sorted(rows)]

    def download_selected(self) -> None:
        results = self.selected_results()
        if results:
            self.download_requested.emit(results)

    def _on_double_click(self, index: QModelIndex) -> None:
        source = self.proxy.mapToSource(index)
        if source.isValid():
            self.download_requested.emit([self.model.result_at(source.row())])

    def _on_finished(self, search_id: int, results: list) -> None:
        if search_id != self._search_id:
            return
        self._search_id = None
        self._limit = self._asked_limit
        self._more = has_more(results, self._limit)
        self.model.set_results(results)
        self._show_state()

    def _on_failed(self, search_id: int, message: str) -> None:
        if search_id != self._search_id:
            return
        self._search_id = None
        self._error = message
        self._error_from_search = True
        self._show_state()

    def _on_client_state(self, state: str) -> None:
        # "Not connected" is no longer true once the client has joined again.
        if state == ClientState.JOINED and self._error_from_search:
            self._error = ""
            self._error_from_search = False
            self._reconnected = True
            self._show_state()

    def _on_text_edited(self, _text: str) -> None:
        if self._error and not self._error_from_search:
            self._error = ""  # "Type a file name..." is answered by typing
            self._show_state()
