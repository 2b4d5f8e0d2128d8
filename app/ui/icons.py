"""Icons: the app icon, a type icon for video, audio and other files, the speed-limit icon."""

from __future__ import annotations

import sys
from enum import Enum
from functools import cache
from pathlib import Path

from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QColor, QIcon, QPainter, QPen, QPixmap
from PySide6.QtWidgets import QApplication, QStyle

from app.icons import app_icon as packaged_app_icon

VIDEO_EXTENSIONS = frozenset(
    {
        "mp4",
        "mkv",
        "avi",
        "mov",
        "wmv",
        "flv",
        "webm",
        "m4v",
        "mpg",
        "mpeg",
        "ts",
        "m2ts",
        "vob",
        "3gp",
        "ogv",
        "divx",
        "rmvb",
    }
)
AUDIO_EXTENSIONS = frozenset(
    {
        "mp3",
        "flac",
        "wav",
        "ogg",
        "oga",
        "opus",
        "m4a",
        "aac",
        "wma",
        "aiff",
        "alac",
        "mka",
        "ape",
    }
)


class FileKind(str, Enum):
    VIDEO = "video"
    AUDIO = "audio"
    OTHER = "other"


def file_kind(name: str) -> FileKind:
    extension = name.rpartition(".")[2].lower() if "." in name else ""
    if extension in VIDEO_EXTENSIONS:
        return FileKind.VIDEO
    if extension in AUDIO_EXTENSIONS:
        return FileKind.AUDIO
    return FileKind.OTHER


def icons_dir() -> Path:
    bundle = getattr(sys, "_MEIPASS", None)
    base = Path(bundle) if bundle else Path(__file__).resolve().parent.parent.parent
    return base / "resources" / "icons"


def _svg(name: str, fallback: QStyle.StandardPixmap) -> QIcon:
    icon = QIcon(str(icons_dir() / f"{name}.svg"))
    if icon.isNull() or (not icon.availableSizes() and icon.pixmap(16, 16).isNull()):
        icon = QApplication.style().standardIcon(fallback)
    return icon


@cache
def kind_icon(kind: FileKind) -> QIcon:
    fallback = {
        FileKind.VIDEO: QStyle.StandardPixmap.SP_MediaPlay,
        FileKind.AUDIO: QStyle.StandardPixmap.SP_MediaVolume,
        FileKind.OTHER: QStyle.StandardPixmap.SP_FileIcon,
    }[kind]
    return _svg(f"file-{kind.value}", fallback)


@cache
def app_icon() -> QIcon:
    """The peer's icon: the PNG set made for every size, else the SVG, else a standard icon."""
    icon = packaged_app_icon("peer")
    return (
        icon if not icon.isNull() else _svg("napster-peer", QStyle.StandardPixmap.SP_DriveNetIcon)
    )


def standard_icon(pixmap: QStyle.StandardPixmap) -> QIcon:
    return QApplication.style().standardIcon(pixmap)


@cache
def speed_limit_icon() -> QIcon:
    """A gauge with its needle held low: the alternative (slower) speed limits.

    Drawn here because no standard icon means "limit"; sized for toolbars and menus.
    """
    icon = QIcon()
    for size in (16, 24, 32, 48):
        pixmap = QPixmap(size, size)
        pixmap.fill(Qt.GlobalColor.transparent)
        painter = QPainter(pixmap)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        unit = size / 16
        pen = QPen(QColor("#2e6bb3"), 1.6 * unit)
        pen.setCapStyle(Qt.PenCapStyle.RoundCap)
        painter.setPen(pen)
        dial = QRectF(1.5 * unit, 3 * unit, 13 * unit, 13 * unit)
        painter.drawArc(dial, 0, 180 * 16)
        center = QPointF(8 * unit, 9.5 * unit)
        pen.setColor(QColor("#b3261e"))
        painter.setPen(pen)
        painter.drawLine(center, QPointF(3.5 * unit, 7 * unit))
        painter.setBrush(QColor("#b3261e"))
        painter.drawEllipse(center, 1.2 * unit, 1.2 * unit)
        painter.end()
        icon.addPixmap(pixmap)
    return icon
