"""A small QPainter chart of online peers and requests per minute over the last hour.

QtCharts is not part of PySide6-Essentials, and two lines over an hour need no more
than a painter.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from PySide6.QtCore import QCoreApplication, QPointF, QRectF, QSize, Qt
from PySide6.QtGui import QColor, QPainter, QPainterPath, QPaintEvent, QPalette, QPen
from PySide6.QtWidgets import QSizePolicy, QWidget

from server_app.ui.formatting import format_count
from server_app.ui.traffic import HISTORY_SECONDS, SAMPLE_SECONDS, TrafficSample

PEERS_COLOR = QColor("#1e88e5")
REQUESTS_COLOR = QColor("#ef6c00")
EMPTY_TEXT = (
    "Online peers and requests per minute appear here, one point every {seconds} s, "
    "for the last hour."
)


def tr(text: str) -> str:
    return QCoreApplication.translate("AdminChart", text)


def nice_ceiling(value: float) -> float:
    """The smallest of 1, 2, 5 x 10^k that is at least ``value`` (and at least 1)."""
    if value <= 1:
        return 1
    magnitude = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 5, 10):
        if value <= step * magnitude:
            return step * magnitude
    return 10 * magnitude  # pragma: no cover


class TrafficChart(QWidget):
    """Online peers (left scale, filled) and requests per minute (right scale, line)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._samples: list[TrafficSample] = []
        self._now = 0.0
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
        self.setMinimumSize(280, 120)

    def sizeHint(self) -> QSize:
        return QSize(420, 150)

    def set_samples(self, samples: Sequence[TrafficSample], now: float) -> None:
        self._samples = [s for s in samples if s.at >= now - HISTORY_SECONDS]
        self._now = now
        self.update()

    def paintEvent(self, event: QPaintEvent) -> None:
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        palette = self.palette()
        text_color = palette.color(QPalette.ColorRole.WindowText)
        faint = palette.color(QPalette.ColorRole.PlaceholderText)
        metrics = painter.fontMetrics()
        line_height = metrics.height()

        frame = QRectF(self.rect()).adjusted(0.5, 0.5, -0.5, -0.5)
        painter.setPen(QPen(palette.color(QPalette.ColorRole.Mid), 1))
        painter.setBrush(palette.color(QPalette.ColorRole.Base))
        painter.drawRoundedRect(frame, 4, 4)

        peers_max = nice_ceiling(max((s.peers for s in self._samples), default=0))
        requests_max = nice_ceiling(max((s.requests_per_minute for s in self._samples), default=0))
        left_label = format_count(int(peers_max))
        right_label = format_count(int(requests_max))
        plot = QRectF(
            frame.left() + metrics.horizontalAdvance(left_label) + 12,
            frame.top() + line_height + 10,
            0,
            0,
        )
        plot.setRight(frame.right() - metrics.horizontalAdvance(right_label) - 12)
        plot.setBottom(frame.bottom() - line_height - 6)

        self._draw_legend(painter, frame, line_height, text_color)
        painter.setPen(QPen(faint, 1, Qt.PenStyle.DotLine))
        for fraction in (0.0, 0.5, 1.0):
            y = plot.bottom() - fraction * plot.height()
            painter.drawLine(QPointF(plot.left(), y), QPointF(plot.right(), y))

        has_data = len(self._samples) >= 2
        if has_data:  # the top of each scale, in its series' colour
            label_top = plot.top() - line_height / 2
            painter.setPen(PEERS_COLOR)
            painter.drawText(
                QRectF(frame.left(), label_top, plot.left() - frame.left() - 6, line_height),
                int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter),
                left_label,
            )
            painter.setPen(REQUESTS_COLOR)
            painter.drawText(
                QRectF(plot.right() + 6, label_top, frame.right() - plot.right() - 6, line_height),
                int(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter),
                right_label,
            )
        painter.setPen(faint)
        axis = QRectF(plot.left(), plot.bottom() + 2, plot.width(), line_height)
        painter.drawText(axis, int(Qt.AlignmentFlag.AlignLeft), tr("60 min ago"))
        painter.drawText(axis, int(Qt.AlignmentFlag.AlignHCenter), tr("30 min"))
        painter.drawText(axis, int(Qt.AlignmentFlag.AlignRight), tr("now"))

        if not has_data:
            painter.drawText(
                plot.adjusted(8, 0, -8, 0),
                int(Qt.AlignmentFlag.AlignCenter) | int(Qt.TextFlag.TextWordWrap),
                tr(EMPTY_TEXT).format(seconds=SAMPLE_SECONDS),
            )
            painter.end()
            return

        start = self._now - HISTORY_SECONDS

        def x_of(sample: TrafficSample) -> float:
            return plot.left() + (sample.at - start) / HISTORY_SECONDS * plot.width()

        peers_line = QPainterPath()
        requests_line = QPainterPath()
        for index, sample in enumerate(self._samples):
            x = x_of(sample)
            peers_point = QPointF(x, plot.bottom() - sample.peers / peers_max * plot.height())
            requests_point = QPointF(
                x, plot.bottom() - sample.requests_per_minute / requests_max * plot.height()
            )
            if index == 0:
                peers_line.moveTo(peers_point)
                requests_line.moveTo(requests_point)
            else:
                peers_line.lineTo(peers_point)
                requests_line.lineTo(requests_point)

        area = QPainterPath(peers_line)
        area.lineTo(QPointF(x_of(self._samples[-1]), plot.bottom()))
        area.lineTo(QPointF(x_of(self._samples[0]), plot.bottom()))
        area.closeSubpath()
        fill = QColor(PEERS_COLOR)
        fill.setAlpha(50)
        painter.fillPath(area, fill)
        painter.setBrush(Qt.BrushStyle.NoBrush)
        painter.setPen(QPen(PEERS_COLOR, 2))
        painter.drawPath(peers_line)
        painter.setPen(QPen(REQUESTS_COLOR, 1.5))
        painter.drawPath(requests_line)
        painter.end()

    def _draw_legend(
        self, painter: QPainter, frame: QRectF, line_height: int, text_color: QColor
    ) -> None:
        x = frame.left() + 10
        y = frame.top() + 5
        metrics = painter.fontMetrics()
        for color, label in (
            (PEERS_COLOR, tr("Online peers")),
            (REQUESTS_COLOR, tr("Requests / min")),
        ):
            painter.fillRect(QRectF(x, y + line_height / 2 - 4, 10, 8), color)
            x += 14
            painter.setPen(text_color)
            painter.drawText(QPointF(x, y + metrics.ascent()), label)
            x += metrics.horizontalAdvance(label) + 16
