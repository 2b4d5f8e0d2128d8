"""Small widgets of the admin window: tables that explain an empty state, counter tiles (the
label that elides is ``app.display.ElidedLabel``, shared with the peer window)."""

from __future__ import annotations

from PySide6.QtCore import QRect, Qt
from PySide6.QtGui import QFont, QPainter, QPaintEvent, QPalette
from PySide6.QtWidgets import (
    QAbstractItemView,
    QFrame,
    QHeaderView,
    QLabel,
    QTableView,
    QVBoxLayout,
    QWidget,
)


class TableView(QTableView):
    """A read-only table for large models that shows a hint while it has no rows.

    Rows have a fixed height and columns keep the widths they are given, so the
    view never measures every row of a large model.
    """

    def __init__(self, empty_text: str = "", parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._empty_text = empty_text
        self.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.setAlternatingRowColors(True)
        self.setWordWrap(False)
        self.setShowGrid(False)
        self.setCornerButtonEnabled(False)
        rows = self.verticalHeader()
        rows.hide()
        rows.setSectionResizeMode(QHeaderView.ResizeMode.Fixed)
        rows.setDefaultSectionSize(self.fontMetrics().height() + 8)
        columns = self.horizontalHeader()
        columns.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        columns.setStretchLastSection(True)
        columns.setHighlightSections(False)
        columns.setDefaultAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter)

    def set_empty_text(self, text: str) -> None:
        if text != self._empty_text:
            self._empty_text = text
            self.viewport().update()

    def empty_text(self) -> str:
        return self._empty_text

    def set_column_widths(self, *widths: int) -> None:
        """The columns' widths, each at least its (translated) title's: "Visto por último"
        was cut where "Last seen" fits."""
        header = self.horizontalHeader()
        for column in range(header.count()):
            needed = header.sectionSizeFromContents(column).width()
            given = widths[column] if column < len(widths) else header.sectionSize(column)
            self.setColumnWidth(column, max(given, needed))

    def paintEvent(self, event: QPaintEvent) -> None:
        super().paintEvent(event)
        model = self.model()
        if not self._empty_text or (model is not None and model.rowCount() > 0):
            return
        painter = QPainter(self.viewport())
        painter.setPen(self.palette().color(QPalette.ColorRole.PlaceholderText))
        area = self.viewport().rect().adjusted(24, 16, -24, -16)
        flags = int(Qt.AlignmentFlag.AlignCenter) | int(Qt.TextFlag.TextWordWrap)
        painter.drawText(QRect(area), flags, self._empty_text)
        painter.end()


class StatTile(QFrame):
    """One live counter: a large value over a short caption."""

    def __init__(self, caption: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.setObjectName("statTile")
        self.value_label = QLabel("0")
        font = QFont(self.value_label.font())
        font.setPointSizeF(font.pointSizeF() * 1.5)
        font.setBold(True)
        self.value_label.setFont(font)
        self.value_label.setTextFormat(Qt.TextFormat.PlainText)
        self.caption_label = QLabel(caption)
        self.caption_label.setTextFormat(Qt.TextFormat.PlainText)
        self.caption_label.setForegroundRole(QPalette.ColorRole.PlaceholderText)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(10, 6, 10, 6)
        layout.setSpacing(0)
        layout.addWidget(self.value_label)
        layout.addWidget(self.caption_label)

    def set_value(self, text: str, tooltip: str = "") -> None:
        if self.value_label.text() != text:
            self.value_label.setText(text)
        self.setToolTip(tooltip)

    def value(self) -> str:
        return self.value_label.text()
