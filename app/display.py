"""How both windows show things (the peer window and the index server's admin window): counts
and sizes in the window's language, and a label that elides. Qt, but no window of its own."""

from __future__ import annotations

from PySide6.QtCore import QLocale, QSize, Qt
from PySide6.QtGui import QPainter, QPaintEvent
from PySide6.QtWidgets import QLabel, QSizePolicy, QWidget

from app.units import SIZE_UNITS


def format_count(count: int) -> str:
    """1234 -> "1,234" (or "1.234" in Portuguese)."""
    return QLocale().toString(int(count))


def format_size(size: float) -> str:
    """Decimal units, as file managers show them: 12_400_000_000 -> "12.4 GB"."""
    value = float(size)
    for unit in SIZE_UNITS:
        if abs(value) < 1000 or unit == SIZE_UNITS[-1]:
            if unit == "B":
                return f"{QLocale().toString(int(value))} B"
            return f"{QLocale().toString(value, 'f', 1)} {unit}"
        value /= 1000
    raise AssertionError("unreachable")


class ElidedLabel(QLabel):
    """One line of plain text that shrinks with "…" instead of widening the window."""

    def __init__(
        self,
        parent: QWidget | None = None,
        mode: Qt.TextElideMode = Qt.TextElideMode.ElideMiddle,
    ) -> None:
        super().__init__(parent)
        self.elide_mode = mode
        self.setTextFormat(Qt.TextFormat.PlainText)
        self.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)

    def minimumSizeHint(self) -> QSize:
        return QSize(
            self.fontMetrics().horizontalAdvance("…") * 4, super().minimumSizeHint().height()
        )

    def sizeHint(self) -> QSize:
        return QSize(
            self.fontMetrics().horizontalAdvance(self.text()) + 8, super().sizeHint().height()
        )

    def shown_text(self) -> str:
        """What fits: the text, or the text with "…" in place of what does not."""
        return self.fontMetrics().elidedText(
            self.text(), self.elide_mode, self.contentsRect().width()
        )

    def paintEvent(self, event: QPaintEvent) -> None:
        painter = QPainter(self)
        painter.setPen(self.palette().color(self.foregroundRole()))
        flags = int(self.alignment() | Qt.AlignmentFlag.AlignVCenter)
        painter.drawText(self.contentsRect(), flags, self.shown_text())
