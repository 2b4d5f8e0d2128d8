"""The details of one download: a piece map and its sources (speed, pieces, state, and how
each is connected: directly, pushed to us or through the index server's relay)."""

from __future__ import annotations

from PySide6.QtCore import QModelIndex, QObject, QPersistentModelIndex, QRect, QSize, Qt
from PySide6.QtGui import QColor, QPainter, QPaintEvent
from PySide6.QtWidgets import QLabel, QSizePolicy, QTableView, QVBoxLayout, QWidget

from app.download.source import Route
from app.download.transfer import Transfer
from app.ui.formatting import format_count, format_size, format_speed, translate
from app.ui.models import _TableModel
from app.ui.search_page import fit_header

_Index = QModelIndex | QPersistentModelIndex

#: Piece map colours, as aMule and qBittorrent use them: done, being fetched, missing.
DONE = QColor("#1f6feb")
FETCHING = QColor("#e3a008")
MISSING = QColor("#d0d7de")


class PieceBar(QWidget):
    """One bar, one column of pixels per slice of pieces: blue done, amber in flight, grey
    missing (a slice shows the share of each)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.states = b""
        self.setMinimumHeight(18)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)

    def sizeHint(self) -> QSize:
        return QSize(400, 18)

    def set_states(self, states: bytes) -> None:
        if states != self.states:
            self.states = states
            self.update()

    def paintEvent(self, _event: QPaintEvent) -> None:
        painter = QPainter(self)
        rect = self.rect().adjusted(0, 0, -1, -1)
        painter.fillRect(rect, MISSING)
        count = len(self.states)
        if count:
            width = rect.width()
            for x in range(width):
                first = x * count // width
                last = max(first + 1, (x + 1) * count // width)
                chunk = self.states[first:last]
                done, fetching = chunk.count(2), chunk.count(1)
                if done * 2 >= len(chunk):
                    color = DONE
                elif fetching:
                    color = FETCHING
                else:
                    continue
                painter.fillRect(QRect(rect.left() + x, rect.top(), 1, rect.height()), color)
        painter.setPen(QColor("#8c959f"))
        painter.drawRect(rect)
        painter.end()


class SourcesModel(_TableModel):
    """The sources of the download in view, as the engine last reported them."""

    PEER, STATE, SPEED, PIECES, RECEIVED, ROUTE = range(6)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._stats: list = []

    def headers(self) -> list[str]:
        return [
            self.tr("Peer"),
            self.tr("State"),
            self.tr("Speed"),
            self.tr("Pieces"),
            self.tr("Received"),
            self.tr("Connection"),
        ]

    def set_stats(self, stats: list) -> None:
        if [s.address for s in stats] != [s.address for s in self._stats]:
            self.beginResetModel()
            self._stats = list(stats)
            self.endResetModel()
        else:
            self._stats = list(stats)
            self.refresh_all()

    def rowCount(self, parent: _Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self._stats)

    def data(self, index: _Index, role: int = Qt.ItemDataRole.DisplayRole):
        if not index.isValid():
            return None
        column = index.column()
        if role == Qt.ItemDataRole.ToolTipRole and column == self.ROUTE:
            return route_tooltip(self._stats[index.row()].route)
        if role != Qt.ItemDataRole.DisplayRole:
            if role == Qt.ItemDataRole.TextAlignmentRole and self.SPEED <= column <= self.RECEIVED:
                return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
            return None
        stats = self._stats[index.row()]
        if column == self.PEER:
            return stats.address
        if column == self.STATE:
            return source_state_text(stats.state, stats.detail)
        if column == self.SPEED:
            return format_speed(stats.rate) if stats.state == "downloading" else ""
        if column == self.PIECES:
            return format_count(stats.pieces)
        if column == self.ROUTE:
            return route_text(stats.route)
        return format_size(stats.bytes)


def route_text(route: Route | None) -> str:
    """How a source is connected, in a few words ("" while it is not)."""
    if route is Route.PUSHED:
        return translate("SourcesModel", "Pushed to us (source behind a firewall)")
    if route is Route.RELAYED:
        return translate("SourcesModel", "Through the server's relay (speed limited)")
    if route is Route.DIRECT:
        return translate("SourcesModel", "Direct")
    return ""


def route_tooltip(route: Route | None) -> str:
    """The route's text in full, for the column's tooltip."""
    if route is Route.PUSHED:
        return translate(
            "SourcesModel",
            "The source is behind a firewall or router, so the index server asked it to "
            "connect to you.",
        )
    if route is Route.RELAYED:
        return translate(
            "SourcesModel",
            "Neither you nor the source can be reached from outside, so the transfer goes "
            "through the index server's relay. Its operator limits the relay's speed, so this "
            "source may be slower than the others.",
        )
    if route is Route.DIRECT:
        return translate("SourcesModel", "You connected straight to the source.")
    return ""


def source_state_text(state: str, detail: str) -> str:
    texts = {
        "connecting": translate("SourcesModel", "Connecting"),
        "downloading": translate("SourcesModel", "Sending"),
        "busy": translate("SourcesModel", "Busy, waiting"),
        "done": translate("SourcesModel", "Done"),
        "idle": translate("SourcesModel", "Idle"),
        "failed": translate("SourcesModel", "Failed"),
        "corrupt": translate("SourcesModel", "Sent bad data"),
        "dropped": translate("SourcesModel", "Dropped: too slow"),
    }
    text = texts.get(state, state)
    return f"{text}: {detail}" if detail and state in ("failed", "busy") else text


class TransferDetails(QWidget):
    """Below the downloads: the selected download's piece map and its sources."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.transfer_id: str | None = None
        self.title = QLabel(self)
        self.title.setTextFormat(Qt.TextFormat.PlainText)
        self.bar = PieceBar(self)
        self.model = SourcesModel(self)
        self.table = QTableView(self)
        self.table.setObjectName("sources_table")
        self.table.setModel(self.model)
        self.table.verticalHeader().hide()
        self.table.setSelectionMode(QTableView.SelectionMode.NoSelection)
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.horizontalHeader().resizeSection(SourcesModel.PEER, 170)
        self.table.horizontalHeader().resizeSection(SourcesModel.STATE, 190)
        fit_header(self.table)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 6, 0, 0)
        layout.addWidget(self.title)
        layout.addWidget(self.bar)
        layout.addWidget(self.table, 1)
        self.show_transfer(None)

    def retranslate(self) -> None:
        """Headers in the current language, widened where a title no longer fits."""
        self.model.retranslate()
        fit_header(self.table)

    def show_transfer(self, transfer: Transfer | None) -> None:
        """Show this download (None: a hint), refreshed by calling again."""
        self.transfer_id = transfer.id if transfer is not None else None
        if transfer is None:
            self.title.setText(self.tr("Select a download to see its pieces and sources."))
            self.bar.set_states(b"")
            self.model.set_stats([])
            return
        states = transfer.piece_states
        done = states.count(2)
        self.title.setText(
            self.tr("{name}: {done} of {count} pieces, {active} of {known} sources sending").format(
                name=transfer.name,
                done=format_count(done),
                count=format_count(len(states)),
                active=transfer.sources_active,
                known=len(transfer.sources),
            )
            if states
            else transfer.name
        )
        self.bar.set_states(states)
        self.model.set_stats(transfer.source_stats)
