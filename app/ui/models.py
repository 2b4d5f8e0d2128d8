"""Table models for the window: search results, downloads, uploads and shared files.

Every model offers ``SORT_ROLE`` (a value that sorts right: bytes, not "1.2 GB") for a
``QSortFilterProxyModel``, and shows names from the network as plain, printable text.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

from PySide6.QtCore import (
    QAbstractTableModel,
    QCoreApplication,
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    Qt,
)
from PySide6.QtGui import QColor, QFont

from app.download.manager import TransferManager
from app.download.transfer import Transfer, TransferState
from app.network import protocol as p
from app.sharing.catalog import SharedFile
from app.ui.formatting import (
    format_count,
    format_duration,
    format_progress,
    format_size,
    format_speed,
    problem_text,
)
from app.ui.icons import file_kind, kind_icon

translate = QCoreApplication.translate

ERROR_COLOR = QColor("#b3261e")
DONE_COLOR = QColor("#2e7d32")
WAITING_COLOR = QColor("#8a5a00")

SORT_ROLE = Qt.ItemDataRole.UserRole + 1
#: float 0..1 for the progress delegate, or None when the row has no progress to show
PROGRESS_ROLE = Qt.ItemDataRole.UserRole + 2
#: the row's key: a SearchResult, a transfer id, an upload id or a shared-file key
KEY_ROLE = Qt.ItemDataRole.UserRole + 3

_Index = QModelIndex | QPersistentModelIndex


def shown_name(name: str) -> str:
    """A name from the network as safe plain text."""
    return p.printable(name, 255)


def transfer_state_text(transfer: Transfer) -> str:
    """ "Downloading", "Waiting to retry in 12 s", "Failed: the disk is full", ..."""
    state = transfer.state
    if state is TransferState.WAITING:
        left = max(0.0, transfer.next_retry_at - time.monotonic())
        text = translate("Transfers", "Waiting to retry in {time}").format(
            time=format_duration(left)
        )
        reason = problem_text(transfer.error_code, transfer.error_params, transfer.error)
        return f"{text}: {reason}" if reason else text
    if state is TransferState.FAILED:
        reason = problem_text(transfer.error_code, transfer.error_params, transfer.error)
        reason = reason or translate("Transfers", "unknown error")
        return translate("Transfers", "Failed: {reason}").format(reason=reason)
    texts = {
        TransferState.QUEUED: translate("Transfers", "Queued"),
        TransferState.CONNECTING: translate("Transfers", "Connecting"),
        TransferState.VERIFYING: translate("Transfers", "Verifying"),
        TransferState.DOWNLOADING: translate("Transfers", "Downloading"),
        TransferState.PAUSED: translate("Transfers", "Paused"),
        TransferState.DONE: translate("Transfers", "Done"),
    }
    return texts[state]


def percent(fraction: float) -> str:
    return translate("Format", "{percent} %").format(percent=int(fraction * 100))


class _TableModel(QAbstractTableModel):
    """Column headers and the plumbing every model here shares."""

    def headers(self) -> list[str]:
        raise NotImplementedError

    def columnCount(self, parent: _Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self.headers())

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = 0):
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole:
            return self.headers()[section]
        return None

    def retranslate(self) -> None:
        """Headers and texts follow a language change."""
        self.headerDataChanged.emit(Qt.Orientation.Horizontal, 0, self.columnCount() - 1)
        self.refresh_all()

    def refresh_all(self) -> None:
        if self.rowCount():
            self.dataChanged.emit(
                self.index(0, 0), self.index(self.rowCount() - 1, self.columnCount() - 1)
            )


# ---------------------------------------------------------------- search results


class SearchResultsModel(_TableModel):
    """Search results; ``status_of(result)`` says whether a file is already here or on its way."""

    NAME, SIZE, SOURCES, STATUS = range(4)

    def __init__(
        self,
        status_of: Callable[[p.SearchResult], str] = lambda _result: "",
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self.status_of = status_of
        self._results: list[p.SearchResult] = []

    def headers(self) -> list[str]:
        return [self.tr("Name"), self.tr("Size"), self.tr("Sources"), self.tr("Status")]

    def set_results(self, results: list[p.SearchResult]) -> None:
        self.beginResetModel()
        self._results = list(results)
        self.endResetModel()

    def results(self) -> list[p.SearchResult]:
        return list(self._results)

    def result_at(self, row: int) -> p.SearchResult:
        return self._results[row]

    def refresh_status(self) -> None:
        if self._results:
            self.dataChanged.emit(
                self.index(0, 0), self.index(len(self._results) - 1, self.columnCount() - 1)
            )

    def rowCount(self, parent: _Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self._results)

    def data(self, index: _Index, role: int = Qt.ItemDataRole.DisplayRole):
        if not index.isValid():
            return None
        result = self._results[index.row()]
        column = index.column()
        if role == KEY_ROLE:
            return result
        if role == Qt.ItemDataRole.DisplayRole:
            if column == self.NAME:
                return shown_name(result.name)
            if column == self.SIZE:
                return format_size(result.size)
            if column == self.SOURCES:
                return format_count(len(result.peers))
            return self.status_of(result)
        if role == SORT_ROLE:
            if column == self.NAME:
                return result.name.lower()
            if column == self.SIZE:
                return result.size
            if column == self.SOURCES:
                return len(result.peers)
            return self.status_of(result)
        if role == Qt.ItemDataRole.DecorationRole and column == self.NAME:
            return kind_icon(file_kind(result.name))
        if role == Qt.ItemDataRole.ToolTipRole:
            if column == self.NAME:
                return shown_name(result.name)
            if column == self.SOURCES:
                return "\n".join(str(peer) for peer in result.peers[:30])
            if column == self.SIZE:
                return self.tr("{count} bytes").format(count=format_count(result.size))
        if role == Qt.ItemDataRole.FontRole and self.status_of(result):
            font = QFont()
            font.setItalic(True)
            return font
        if role == Qt.ItemDataRole.TextAlignmentRole and column in (self.SIZE, self.SOURCES):
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        return None


# ---------------------------------------------------------------- downloads


class DownloadsModel(_TableModel):
    """The download queue of a TransferManager, one row per transfer."""

    NAME, SIZE, PROGRESS, SPEED, ETA, STATE, SOURCES = range(7)

    def __init__(self, transfers: TransferManager, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.transfers = transfers
        self._ids: list[str] = [t.id for t in sorted(transfers.transfers(), key=_added_at)]
        self._rows = {transfer_id: row for row, transfer_id in enumerate(self._ids)}
        transfers.transfer_added.connect(self._on_added)
        transfers.transfer_changed.connect(self._on_changed)
        transfers.transfer_removed.connect(self._on_removed)

    def headers(self) -> list[str]:
        return [
            self.tr("Name"),
            self.tr("Size"),
            self.tr("Progress"),
            self.tr("Speed"),
            self.tr("Time left"),
            self.tr("State"),
            self.tr("Sources"),
        ]

    def transfer_ids(self) -> list[str]:
        return list(self._ids)

    def row_of(self, transfer_id: str) -> int:
        return self._rows.get(transfer_id, -1)

    def tick(self) -> None:
        """Refresh the countdowns of downloads waiting to retry."""
        for transfer_id, row in self._rows.items():
            transfer = self.transfers.get(transfer_id)
            if transfer is not None and transfer.state is TransferState.WAITING:
                index = self.index(row, self.STATE)
                self.dataChanged.emit(index, index)

    def _on_added(self, transfer_id: str) -> None:
        if transfer_id in self._rows:
            return
        row = len(self._ids)
        self.beginInsertRows(QModelIndex(), row, row)
        self._ids.append(transfer_id)
        self._rows[transfer_id] = row
        self.endInsertRows()

    def _on_changed(self, transfer_id: str) -> None:
        row = self._rows.get(transfer_id)
        if row is None:
            self._on_added(transfer_id)
            return
        self.dataChanged.emit(self.index(row, 0), self.index(row, self.columnCount() - 1))

    def _on_removed(self, transfer_id: str) -> None:
        row = self._rows.get(transfer_id)
        if row is None:
            return
        self.beginRemoveRows(QModelIndex(), row, row)
        del self._ids[row]
        self._rows = {tid: r for r, tid in enumerate(self._ids)}
        self.endRemoveRows()

    def rowCount(self, parent: _Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self._ids)

    def data(self, index: _Index, role: int = Qt.ItemDataRole.DisplayRole):
        if not index.isValid():
            return None
        transfer = self.transfers.get(self._ids[index.row()])
        if transfer is None:
            return None
        column = index.column()
        if role == KEY_ROLE:
            return transfer.id
        if role == Qt.ItemDataRole.DisplayRole:
            return self._text(transfer, column)
        if role == SORT_ROLE:
            return self._sort_key(transfer, column)
        if role == PROGRESS_ROLE and column == self.PROGRESS:
            return transfer.progress
        if role == Qt.ItemDataRole.DecorationRole and column == self.NAME:
            return kind_icon(file_kind(transfer.name))
        if role == Qt.ItemDataRole.ToolTipRole:
            return self._tooltip(transfer, column)
        if role == Qt.ItemDataRole.ForegroundRole and column == self.STATE:
            return {
                TransferState.FAILED: ERROR_COLOR,
                TransferState.DONE: DONE_COLOR,
                TransferState.WAITING: WAITING_COLOR,
            }.get(transfer.state)
        if role == Qt.ItemDataRole.TextAlignmentRole and column in (
            self.SIZE,
            self.SPEED,
            self.ETA,
            self.SOURCES,
        ):
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        return None

    def _text(self, transfer: Transfer, column: int) -> str:
        if column == self.NAME:
            return shown_name(transfer.name)
        if column == self.SIZE:
            if transfer.state is TransferState.DONE:
                return format_size(transfer.size)
            return format_progress(transfer.done_bytes, transfer.size)
        if column == self.PROGRESS:
            return percent(transfer.progress)
        if column == self.SPEED:
            return format_speed(transfer.speed) if transfer.state.is_active else ""
        if column == self.ETA:
            return format_duration(transfer.eta_seconds)
        if column == self.STATE:
            return transfer_state_text(transfer)
        usable, total = transfer.usable_sources, len(transfer.sources)
        if usable == total:
            return format_count(total)
        return self.tr("{usable} of {total}").format(usable=usable, total=total)

    def _sort_key(self, transfer: Transfer, column: int):
        if column == self.NAME:
            return transfer.name.lower()
        if column == self.SIZE:
            return transfer.size
        if column == self.PROGRESS:
            return transfer.progress
        if column == self.SPEED:
            return transfer.speed
        if column == self.ETA:
            eta = transfer.eta_seconds
            return float("inf") if eta is None else eta
        if column == self.STATE:
            return transfer.state.value
        return transfer.usable_sources

    def _tooltip(self, transfer: Transfer, column: int) -> str | None:
        if column == self.NAME:
            if transfer.final_path:
                return shown_name(transfer.final_path)
            return shown_name(str(transfer.folder / transfer.name))
        if column == self.STATE:
            return transfer_state_text(transfer)
        if column == self.SOURCES:
            lines = []
            for source in transfer.sources[:30]:
                text = str(source)
                if text in transfer.bad_sources:
                    text = self.tr("{source} (sent bad data)").format(source=text)
                elif text == transfer.current_source and transfer.state.is_active:
                    text = self.tr("{source} (in use)").format(source=text)
                lines.append(text)
            return "\n".join(lines) or self.tr("No sources")
        return None


def _added_at(transfer: Transfer) -> float:
    return transfer.added_at


# ---------------------------------------------------------------- uploads


@dataclass
class UploadRow:
    id: int
    peer: str
    name: str
    offset: int
    length: int
    sent: int = 0
    speed: float = 0.0
    error: str = ""
    finished: bool = False
    last_time: float = 0.0
    last_sent: int = 0

    @property
    def progress(self) -> float:
        return 1.0 if self.length == 0 else min(1.0, self.sent / self.length)

    @property
    def active(self) -> bool:
        return not self.finished and not self.error


class UploadsModel(_TableModel):
    """What other peers are downloading from us (one row per DOWNLOAD request)."""

    NAME, PEER, PROGRESS, SENT, SPEED, STATE = range(6)
    MAX_ROWS = 300

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._rows: list[UploadRow] = []

    def headers(self) -> list[str]:
        return [
            self.tr("Name"),
            self.tr("Peer"),
            self.tr("Progress"),
            self.tr("Sent"),
            self.tr("Speed"),
            self.tr("State"),
        ]

    def rows(self) -> list[UploadRow]:
        return list(self._rows)

    def active_count(self) -> int:
        return sum(1 for row in self._rows if row.active)

    def total_speed(self) -> float:
        return sum(row.speed for row in self._rows if row.active)

    def on_started(self, upload_id: int, peer: str, name: str, offset: int, length: int) -> None:
        # A downloader asks for one run of pieces at a time: a new request from the same
        # peer for the same file takes over its finished row instead of piling up rows.
        for row_number, row in enumerate(self._rows):
            if row.peer == peer and row.name == name and not row.active:
                self._rows[row_number] = UploadRow(
                    upload_id, peer, name, offset, length, last_time=time.monotonic()
                )
                self._changed(row_number)
                return
        self._trim()
        position = len(self._rows)
        self.beginInsertRows(QModelIndex(), position, position)
        self._rows.append(
            UploadRow(upload_id, peer, name, offset, length, last_time=time.monotonic())
        )
        self.endInsertRows()

    def on_progress(self, upload_id: int, sent: int) -> None:
        found = self._find(upload_id)
        if found is None:
            return
        row_number, row = found
        now = time.monotonic()
        elapsed = now - row.last_time
        if elapsed >= 0.2:
            instant = (sent - row.last_sent) / elapsed
            row.speed = instant if not row.speed else 0.6 * row.speed + 0.4 * instant
            row.last_time, row.last_sent = now, sent
        row.sent = sent
        self._changed(row_number)

    def on_finished(self, upload_id: int) -> None:
        found = self._find(upload_id)
        if found is not None:
            row_number, row = found
            row.finished, row.speed, row.sent = True, 0.0, row.length
            self._changed(row_number)

    def on_failed(self, upload_id: int, reason: str) -> None:
        found = self._find(upload_id)
        if found is not None:
            row_number, row = found
            row.error, row.speed = reason or "?", 0.0
            self._changed(row_number)

    def clear_finished(self) -> None:
        self.beginResetModel()
        self._rows = [row for row in self._rows if row.active]
        self.endResetModel()

    def _trim(self) -> None:
        if len(self._rows) < self.MAX_ROWS:
            return
        for row_number, row in enumerate(self._rows):
            if not row.active:
                self.beginRemoveRows(QModelIndex(), row_number, row_number)
                del self._rows[row_number]
                self.endRemoveRows()
                return

    def _find(self, upload_id: int) -> tuple[int, UploadRow] | None:
        for row_number in range(len(self._rows) - 1, -1, -1):
            if self._rows[row_number].id == upload_id:
                return row_number, self._rows[row_number]
        return None

    def _changed(self, row_number: int) -> None:
        self.dataChanged.emit(
            self.index(row_number, 0), self.index(row_number, self.columnCount() - 1)
        )

    def rowCount(self, parent: _Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self._rows)

    def state_text(self, row: UploadRow) -> str:
        if row.error:
            return self.tr("Failed: {reason}").format(reason=p.printable(row.error, 200))
        if row.finished:
            return self.tr("Done")
        return self.tr("Uploading")

    def data(self, index: _Index, role: int = Qt.ItemDataRole.DisplayRole):
        if not index.isValid():
            return None
        row = self._rows[index.row()]
        column = index.column()
        if role == KEY_ROLE:
            return row.id
        if role == Qt.ItemDataRole.DisplayRole:
            if column == self.NAME:
                return shown_name(row.name)
            if column == self.PEER:
                return row.peer
            if column == self.PROGRESS:
                return percent(row.progress)
            if column == self.SENT:
                return format_progress(row.sent, row.length)
            if column == self.SPEED:
                return format_speed(row.speed) if row.active else ""
            return self.state_text(row)
        if role == SORT_ROLE:
            keys = (row.name.lower(), row.peer, row.progress, row.sent, row.speed)
            return keys[column] if column < len(keys) else self.state_text(row)
        if role == PROGRESS_ROLE and column == self.PROGRESS:
            return row.progress
        if role == Qt.ItemDataRole.DecorationRole and column == self.NAME:
            return kind_icon(file_kind(row.name))
        if role == Qt.ItemDataRole.ToolTipRole and column in (self.NAME, self.STATE):
            return shown_name(row.name) if column == self.NAME else self.state_text(row)
        if role == Qt.ItemDataRole.ForegroundRole and column == self.STATE:
            return ERROR_COLOR if row.error else DONE_COLOR if row.finished else None
        if role == Qt.ItemDataRole.TextAlignmentRole and column in (self.SENT, self.SPEED):
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        return None


# ---------------------------------------------------------------- shared files


class ShareState(str, Enum):
    COPYING = "copying"
    WAITING = "waiting"  # copied, waiting to be hashed
    HASHING = "hashing"
    SHARED = "shared"
    FAILED = "failed"


@dataclass
class SharedRow:
    key: str  # the real path, or "copy:<job id>" while a copy runs
    name: str
    size: int
    folder: str
    state: ShareState
    done: int = 0
    reason: str = ""
    hash: str = ""


class SharedFilesModel(_TableModel):
    """The shared folders' files with their hashing state, plus copies still on their way."""

    NAME, SIZE, FOLDER, STATE = range(4)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._rows: list[SharedRow] = []
        self._by_key: dict[str, int] = {}
        self._hashing_name = ""
        self.roots: tuple[Path, ...] = ()

    def headers(self) -> list[str]:
        return [self.tr("Name"), self.tr("Size"), self.tr("Folder"), self.tr("State")]

    def row_for(self, key: str) -> SharedRow | None:
        row = self._by_key.get(key)
        return None if row is None else self._rows[row]

    def rows(self) -> list[SharedRow]:
        return list(self._rows)

    def shared_count(self) -> int:
        return sum(1 for row in self._rows if row.state is ShareState.SHARED)

    # ------------------------------------------------------------ library events

    def reset_files(self, files: list[SharedFile]) -> None:
        self.beginResetModel()
        kept = [row for row in self._rows if row.state is not ShareState.SHARED]
        self._rows = [self._shared_row(f) for f in files]
        known = {row.key for row in self._rows}
        self._rows += [row for row in kept if row.key not in known]
        self._reindex()
        self.endResetModel()

    def add_files(self, files: list[SharedFile]) -> None:
        new_rows = []
        for shared in files:
            row = self._shared_row(shared)
            existing = self._by_key.get(row.key)
            if existing is None:
                new_rows.append(row)
            else:
                self._rows[existing] = row
                self._changed(existing)
        if new_rows:
            start = len(self._rows)
            self.beginInsertRows(QModelIndex(), start, start + len(new_rows) - 1)
            self._rows.extend(new_rows)
            for offset, row in enumerate(new_rows):
                self._by_key[row.key] = start + offset
            self.endInsertRows()

    def remove_hashes(self, hashes: list[str]) -> None:
        gone = set(hashes)
        keep = [
            row for row in self._rows if not (row.state is ShareState.SHARED and row.hash in gone)
        ]
        if len(keep) != len(self._rows):
            self.beginResetModel()
            self._rows = keep
            self._reindex()
            self.endResetModel()

    def mark_failed(self, path: str, reason: str) -> None:
        """The library will not share ``path`` (it reports real paths)."""
        self._upsert(
            SharedRow(
                path,
                os.path.basename(path),
                self._size_of(path),
                self._folder_of(path),
                ShareState.FAILED,
                reason=reason,
            )
        )

    def mark_hashing(self, name: str) -> None:
        """The library is hashing a file of that name (it reports names, not paths)."""
        if name == self._hashing_name:
            return
        self._hashing_name = name
        for row_number, row in enumerate(self._rows):
            if row.state in (ShareState.WAITING, ShareState.HASHING):
                state = ShareState.HASHING if name and row.name == name else ShareState.WAITING
                if state is not row.state:
                    row.state = state
                    self._changed(row_number)

    # ------------------------------------------------------------ copies

    def copy_queued(self, job_id: int, name: str) -> None:
        folder = self._folder_of(str(self.roots[0] / name)) if self.roots else ""
        self._upsert(SharedRow(f"copy:{job_id}", name, 0, folder, ShareState.COPYING))

    def copy_started(self, job_id: int, name: str, size: int) -> None:
        row = self.row_for(f"copy:{job_id}")
        if row is not None:
            row.name, row.size = name, size
            self._changed(self._by_key[row.key])

    def copy_progress(self, job_id: int, done: int, total: int) -> None:
        row = self.row_for(f"copy:{job_id}")
        if row is not None:
            row.done, row.size = done, total
            self._changed(self._by_key[row.key], only=(self.SIZE, self.STATE))

    def copy_finished(self, job_id: int, copied: list[tuple[str, int]]) -> None:
        """The copy is in place: its files (real paths, sizes) now wait for the library."""
        self._drop(f"copy:{job_id}")
        for path, size in copied:
            existing = self.row_for(path)
            if existing is not None and existing.state is ShareState.SHARED:
                continue
            name = os.path.basename(path)
            state = ShareState.HASHING if name == self._hashing_name else ShareState.WAITING
            self._upsert(SharedRow(path, name, size, self._folder_of(path), state))

    def copy_failed(self, job_id: int, reason: str) -> None:
        row = self.row_for(f"copy:{job_id}")
        if row is not None:
            row.state, row.reason = ShareState.FAILED, reason
            self._changed(self._by_key[row.key])

    def copy_cancelled(self, job_id: int) -> None:
        self._drop(f"copy:{job_id}")

    def clear_failed(self) -> None:
        keep = [row for row in self._rows if row.state is not ShareState.FAILED]
        if len(keep) != len(self._rows):
            self.beginResetModel()
            self._rows = keep
            self._reindex()
            self.endResetModel()

    # ------------------------------------------------------------ plumbing

    def _shared_row(self, shared: SharedFile) -> SharedRow:
        path = os.fspath(shared.path)
        return SharedRow(
            path,
            shared.name,
            shared.size,
            self._folder_of(path),
            ShareState.SHARED,
            hash=shared.hash,
        )

    def _folder_of(self, path: str) -> str:
        parent = Path(path).parent
        for root in self.roots:
            try:
                relative = parent.relative_to(root)
            except ValueError:
                continue
            return str(Path(root.name) / relative) if str(relative) != "." else root.name
        return str(parent)

    def _size_of(self, path: str) -> int:
        row = self.row_for(path)
        return row.size if row is not None else 0

    def _upsert(self, row: SharedRow) -> None:
        existing = self._by_key.get(row.key)
        if existing is not None:
            self._rows[existing] = row
            self._changed(existing)
            return
        position = len(self._rows)
        self.beginInsertRows(QModelIndex(), position, position)
        self._rows.append(row)
        self._by_key[row.key] = position
        self.endInsertRows()

    def _drop(self, key: str) -> None:
        row_number = self._by_key.get(key)
        if row_number is None:
            return
        self.beginRemoveRows(QModelIndex(), row_number, row_number)
        del self._rows[row_number]
        self._reindex()
        self.endRemoveRows()

    def _reindex(self) -> None:
        self._by_key = {row.key: number for number, row in enumerate(self._rows)}

    def _changed(self, row_number: int, only: tuple[int, ...] | None = None) -> None:
        first, last = (0, self.columnCount() - 1) if only is None else (min(only), max(only))
        self.dataChanged.emit(self.index(row_number, first), self.index(row_number, last))

    def state_text(self, row: SharedRow) -> str:
        if row.state is ShareState.COPYING:
            if not row.size:
                return self.tr("Waiting to copy")
            return self.tr("Copying {percent}").format(percent=percent(row.done / row.size))
        if row.state is ShareState.WAITING:
            return self.tr("Waiting to be hashed")
        if row.state is ShareState.HASHING:
            return self.tr("Hashing…")
        if row.state is ShareState.FAILED:
            return self.tr("Not shared: {reason}").format(reason=p.printable(row.reason, 200))
        return self.tr("Shared")

    def rowCount(self, parent: _Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self._rows)

    def data(self, index: _Index, role: int = Qt.ItemDataRole.DisplayRole):
        if not index.isValid():
            return None
        row = self._rows[index.row()]
        column = index.column()
        if role == KEY_ROLE:
            return row.key
        if role == Qt.ItemDataRole.DisplayRole:
            if column == self.NAME:
                return shown_name(row.name)
            if column == self.SIZE:
                if row.state is ShareState.COPYING and row.size:
                    return format_progress(row.done, row.size)
                return format_size(row.size) if row.size or row.state is ShareState.SHARED else ""
            if column == self.FOLDER:
                return shown_name(row.folder)
            return self.state_text(row)
        if role == SORT_ROLE:
            keys = (row.name.lower(), row.size, row.folder.lower())
            return keys[column] if column < len(keys) else row.state.value
        if role == Qt.ItemDataRole.DecorationRole and column == self.NAME:
            return kind_icon(file_kind(row.name))
        if role == Qt.ItemDataRole.ToolTipRole:
            if column == self.NAME:
                return shown_name(row.key) if not row.key.startswith("copy:") else None
            if column == self.STATE:
                return self.state_text(row)
        if role == Qt.ItemDataRole.ForegroundRole and column == self.STATE:
            return ERROR_COLOR if row.state is ShareState.FAILED else None
        if role == Qt.ItemDataRole.TextAlignmentRole and column == self.SIZE:
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        return None
