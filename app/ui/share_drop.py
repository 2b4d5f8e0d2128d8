"""Sharing files by dropping them on the window (or choosing them): copied in the background
into the shared folder, the Shared files page and the status bar following each copy."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QEvent, QMimeData, QObject, Qt
from PySide6.QtGui import QDragEnterEvent, QDragLeaveEvent, QDragMoveEvent, QDropEvent

from app.ui.formatting import translate

if TYPE_CHECKING:
    from app.ui.main_window import MainWindow


def local_paths(mime: QMimeData) -> list[Path]:
    """The local files and folders a drag carries (URLs of other kinds are ignored)."""
    if not mime.hasUrls():
        return []
    return [Path(url.toLocalFile()) for url in mime.urls() if url.isLocalFile()]


class ShareByDrop(QObject):
    """Takes the window's drag-and-drop events and its file copier's progress."""

    def __init__(self, window: MainWindow) -> None:
        super().__init__(window)
        self.window = window
        self._copy_names: dict[int, str] = {}
        window.installEventFilter(self)
        copier = window.copier
        copier.job_started.connect(self._on_copy_started)
        copier.job_progress.connect(self._on_copy_progress)
        copier.job_finished.connect(self._on_copy_finished)
        copier.job_failed.connect(self._on_copy_failed)
        copier.job_cancelled.connect(self._on_copy_cancelled)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        handlers = {
            QEvent.Type.DragEnter: self._drag_enter,
            QEvent.Type.DragMove: self._drag_move,
            QEvent.Type.DragLeave: self._drag_leave,
            QEvent.Type.Drop: self._drop,
        }
        handler = handlers.get(event.type())
        if watched is self.window and handler is not None:
            handler(event)
            return True
        return super().eventFilter(watched, event)

    def _drag_enter(self, event: QDragEnterEvent) -> None:
        if local_paths(event.mimeData()):
            event.acceptProposedAction()
            self.window.shared_page.set_drop_active(True)
        else:
            event.ignore()

    def _drag_move(self, event: QDragMoveEvent) -> None:
        if local_paths(event.mimeData()):
            event.acceptProposedAction()
        else:
            event.ignore()

    def _drag_leave(self, event: QDragLeaveEvent) -> None:
        self.window.shared_page.set_drop_active(False)
        event.accept()

    def _drop(self, event: QDropEvent) -> None:
        self.window.shared_page.set_drop_active(False)
        paths = local_paths(event.mimeData())
        if not paths:
            event.ignore()
            return
        event.setDropAction(Qt.DropAction.CopyAction)
        event.accept()
        self.share_paths(paths)

    def share_paths(self, paths: list[Path]) -> list[int]:
        """Copy files and folders into the shared folder (in the background) to share them."""
        jobs = self.window.copier.copy(paths, self.window.node.config.share_dir)
        for job, path in zip(jobs, paths, strict=False):
            self.window.shared_page.model.copy_queued(job, path.name or str(path))
        self.window.show_page(self.window.shared_page)
        return jobs

    def add_files(self) -> None:
        paths = self.window.prompts.choose_files(self.window.node.config.share_dir)
        if paths:
            self.share_paths(paths)

    def _copy_status(self, name: str, done: int, total: int) -> None:
        self.window.status.set_copying(name, done, total, max(0, self.window.copier.pending() - 1))

    def _on_copy_started(self, job: int, name: str, total: int) -> None:
        self.window.shared_page.model.copy_started(job, name, total)
        self._copy_names[job] = name
        self._copy_status(name, 0, total)

    def _on_copy_progress(self, job: int, done: int, total: int) -> None:
        self.window.shared_page.model.copy_progress(job, done, total)
        self._copy_status(self._copy_names.get(job, ""), done, total)

    def _copy_ended(self, job: int) -> str:
        name = self._copy_names.pop(job, "")
        if not self.window.copier.pending():
            self.window.status.set_copying("", 0, 0, 0)
        return name

    def _on_copy_finished(self, job: int, copied: list) -> None:
        self.window.shared_page.model.copy_finished(job, copied)
        self._copy_ended(job)
        self.window.node.library.rescan()

    def _on_copy_failed(self, job: int, reason: str) -> None:
        self.window.shared_page.model.copy_failed(job, reason)
        name = self._copy_ended(job)
        self.window.statusBar().showMessage(
            translate("MainWindow", "Could not copy {name}: {reason}").format(
                name=name, reason=reason
            ),
            10000,
        )

    def _on_copy_cancelled(self, job: int) -> None:
        self.window.shared_page.model.copy_cancelled(job)
        self._copy_ended(job)
