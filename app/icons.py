"""The application icons of the peer and the index server, from source or from a frozen build.

The PNG files are made from ``resources/icons/napster-<kind>.svg`` by
``build_scripts/make_icons.py``. A PyInstaller build carries ``resources/`` inside its bundle
folder (``sys._MEIPASS``); from source it is the folder beside the ``app`` package.
"""

from __future__ import annotations

import sys
from pathlib import Path

from PySide6.QtCore import QSize
from PySide6.QtGui import QIcon

ICON_KINDS = ("peer", "server")
ICON_SIZES = (16, 24, 32, 48, 64, 128, 256, 512)


def resources_dir() -> Path:
    """``resources/`` of a frozen bundle, or of the source tree."""
    bundle = getattr(sys, "_MEIPASS", None)
    if bundle:
        return Path(bundle) / "resources"
    return Path(__file__).resolve().parent.parent / "resources"


def icon_files(kind: str) -> list[Path]:
    """The PNG files of one app icon, smallest first; only those that exist."""
    if kind not in ICON_KINDS:
        raise ValueError(f"unknown icon {kind!r}; expected one of {', '.join(ICON_KINDS)}")
    folder = resources_dir() / "icons"
    paths = (folder / f"napster-{kind}-{size}.png" for size in ICON_SIZES)
    return [path for path in paths if path.is_file()]


def app_icon(kind: str) -> QIcon:
    """The window icon of ``"peer"`` or ``"server"``, in every size there is a file for.

    A missing set of files gives a null icon (Qt then shows its default), never an error.
    """
    icon = QIcon()
    for path in icon_files(kind):
        size = int(path.stem.rsplit("-", 1)[1])
        icon.addFile(str(path), QSize(size, size))
    return icon
