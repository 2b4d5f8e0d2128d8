"""Table models for the window: search results, downloads, uploads and shared files.

Every model offers ``SORT_ROLE`` (a value that sorts right: bytes, not "1.2 GB") for a
``QSortFilterProxyModel``, and shows names from the network as plain, printable text.
"""

from __future__ import annotations

import os
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
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


def sources_text(peers: tuple[p.PeerAddress, ...] | list[p.PeerAddress], most: int) -> str:
    """The peers' host:port, one a line, at most ``most`` of them and how many more."""
    lines = [p.printable(str(peer), 300) for peer in peers[:most]]
    if len(peers) > most:
        lines.append(
            translate("SearchResultsModel", "…and {count} more").format(
                count=format_count(len(peers) - most)
            )
        )
    return "\n".join(lines)


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
                return sources_text(result.peers, 30)
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
            text = transfer_state_text(transfer)
            lead = self.transfers.stream_lead(transfer.id)
            if lead is not None and transfer.state is not TransferState.DONE:
                text += " · " + self.tr("streaming, {size} ahead of the player").format(
                    size=format_size(lead)
                )
            return text
        usable, total = transfer.usable_sources, len(transfer.sources)
        if transfer.state.is_active and transfer.source_stats:
            return self.tr("{active}/{total} in use").format(
                active=transfer.sources_active, total=total
            )
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
                elif transfer.state.is_active and any(
                    s.address == text and s.state == "downloading" for s in transfer.source_stats
                ):
                    text = self.tr("{source} (in use)").format(source=text)
                lines.append(text)
            return "\n".join(lines) or self.tr("No sources")
        return None


def _added_at(transfer: Transfer) -> float:
    return transfer.added_at


# ---------------------------------------------------------------- uploads


class UploadState(str, Enum):
    UPLOADING = "uploading"
    IDLE = "idle"  # the peer asked for part of the file and is not asking now
    FINISHED = "finished"  # every byte of the file went to this peer
    FAILED = "failed"


def _merge(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    merged: list[tuple[int, int]] = []
    for start, end in sorted(r for r in ranges if r[1] > r[0]):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


@dataclass
class _Request:
    offset: int
    length: int
    sent: int = 0


@dataclass
class UploadRow:
    """One file going to one downloading peer (its IP), over all of that peer's requests."""

    peer: str
    name: str
    size: int  # the shared file's size; 0 when the library no longer knows it
    sent: int = 0  # bytes sent in total, repeats included
    requests: int = 0
    error: str = ""
    covered: list[tuple[int, int]] = field(default_factory=list)
    running: dict[int, _Request] = field(default_factory=dict)
    samples: deque[tuple[float, int]] = field(default_factory=deque)
    speed: float = 0.0

    @property
    def key(self) -> tuple[str, str]:
        return self.peer, self.name

    @property
    def received(self) -> int:
        """Distinct bytes of the file this peer has been sent (finished and running requests)."""
        partial = [(r.offset, r.offset + r.sent) for r in self.running.values()]
        return sum(end - start for start, end in _merge(self.covered + partial))

    @property
    def progress(self) -> float:
        if self.size <= 0:
            return 0.0
        return min(1.0, self.received / self.size)

    @property
    def state(self) -> UploadState:
        if self.running:
            return UploadState.UPLOADING
        if self.size > 0 and self.received >= self.size:
            return UploadState.FINISHED
        if self.error:
            return UploadState.FAILED
        return UploadState.IDLE

    @property
    def active(self) -> bool:
        return bool(self.running)


def peer_ip(remote: str) -> str:
    """ "192.168.0.12:53122" -> "192.168.0.12": a downloader's port changes with every
    connection, so it says nothing about who is downloading."""
    host = remote.rpartition(":")[0] or remote
    return host.strip("[]")


class UploadsModel(_TableModel):
    """What other peers are downloading from us: one row per file and downloading peer.

    A downloader asks for a file in runs of pieces, each its own request and connection;
    a row adds them all up. ``size_of(name, at_least)`` gives the shared file's size.
    ``clock`` is replaced by tests.
    """

    NAME, PEER, SIZE, PROGRESS, SENT, SPEED, STATE = range(7)
    MAX_ROWS = 300
    #: the speed is the bytes sent over this many seconds
    SPEED_WINDOW = 5.0

    def __init__(
        self,
        size_of: Callable[[str, int], int] = lambda _name, at_least: at_least,
        parent: QObject | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(parent)
        self.size_of = size_of
        self.clock = clock
        self._rows: list[UploadRow] = []
        self._by_upload: dict[int, UploadRow] = {}

    def headers(self) -> list[str]:
        return [
            self.tr("Name"),
            self.tr("Peer"),
            self.tr("Size"),
            self.tr("Progress"),
            self.tr("Sent"),
            self.tr("Speed"),
            self.tr("State"),
        ]

    def rows(self) -> list[UploadRow]:
        return list(self._rows)

    def row_for(self, peer: str, name: str) -> UploadRow | None:
        for row in self._rows:
            if row.key == (peer, name):
                return row
        return None

    def active_count(self) -> int:
        return sum(1 for row in self._rows if row.active)

    def total_speed(self) -> float:
        return sum(row.speed for row in self._rows)

    # ------------------------------------------------------------ upload server events

    def on_started(self, upload_id: int, remote: str, name: str, offset: int, length: int) -> None:
        peer = peer_ip(remote)
        row = self.row_for(peer, name)
        if row is None:
            self._trim()
            row = UploadRow(peer, name, self.size_of(name, offset + length))
            row.samples.append((self.clock(), 0))
            position = len(self._rows)
            self.beginInsertRows(QModelIndex(), position, position)
            self._rows.append(row)
            self.endInsertRows()
        elif row.size < offset + length:
            row.size = self.size_of(name, offset + length)
        row.running[upload_id] = _Request(offset, length)
        row.requests += 1
        row.error = ""
        self._by_upload[upload_id] = row
        self._changed(row)

    def on_progress(self, upload_id: int, sent: int) -> None:
        row = self._by_upload.get(upload_id)
        if row is None:
            return
        request = row.running[upload_id]
        self._count(row, request, sent)
        self._changed(row)

    def on_finished(self, upload_id: int) -> None:
        row = self._by_upload.pop(upload_id, None)
        if row is None:
            return
        request = row.running.pop(upload_id)
        # The last bytes may be sent after the last progress report.
        self._count(row, request, request.length)
        row.covered = _merge([*row.covered, (request.offset, request.offset + request.length)])
        self._changed(row)

    def on_failed(self, upload_id: int, reason: str) -> None:
        row = self._by_upload.pop(upload_id, None)
        if row is None:
            return
        request = row.running.pop(upload_id)
        row.covered = _merge([*row.covered, (request.offset, request.offset + request.sent)])
        row.error = reason or "?"
        self._changed(row)

    def _count(self, row: UploadRow, request: _Request, sent: int) -> None:
        fresh = max(0, sent - request.sent)
        request.sent = max(request.sent, sent)
        row.sent += fresh
        self._sample(row)

    def _sample(self, row: UploadRow) -> None:
        now = self.clock()
        samples = row.samples
        samples.append((now, row.sent))
        # One sample at or before the window's start is kept: the speed spans the window.
        while len(samples) > 1 and samples[1][0] <= now - self.SPEED_WINDOW:
            samples.popleft()
        first_time, first_sent = samples[0]
        span = now - first_time
        if span >= 0.2:
            row.speed = (row.sent - first_sent) / span

    def tick(self) -> None:
        """Once a second: the speeds follow what was (or was not) sent lately."""
        for row in self._rows:
            if row.speed or row.running:
                self._sample(row)
                self._changed(row, (self.SPEED, self.STATE))

    def clear_finished(self) -> None:
        """Forget every row nothing is being sent for now."""
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

    def _changed(self, row: UploadRow, only: tuple[int, ...] | None = None) -> None:
        try:
            row_number = self._rows.index(row)
        except ValueError:
            return
        first, last = (0, self.columnCount() - 1) if only is None else (min(only), max(only))
        self.dataChanged.emit(self.index(row_number, first), self.index(row_number, last))

    def rowCount(self, parent: _Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self._rows)

    # ------------------------------------------------------------ texts

    def state_text(self, row: UploadRow) -> str:
        state = row.state
        if state is UploadState.UPLOADING:
            return self.tr("Uploading")
        if state is UploadState.FINISHED:
            return self.tr("Finished")
        if state is UploadState.FAILED:
            return self.tr("Failed: {reason}").format(reason=p.printable(row.error, 200))
        return self.tr("Idle")

    def _tooltip(self, row: UploadRow, column: int) -> str | None:
        if column == self.NAME:
            return shown_name(row.name)
        if column == self.STATE:
            return self.state_text(row)
        if column in (self.SENT, self.PROGRESS):
            return self.tr(
                "{received} of the file's {size} sent to this peer; {sent} in total over "
                "{requests} requests"
            ).format(
                received=format_size(row.received),
                size=format_size(row.size),
                sent=format_size(row.sent),
                requests=format_count(row.requests),
            )
        return None

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
            if column == self.PEER:
                return row.peer
            if column == self.SIZE:
                return format_size(row.size) if row.size else ""
            if column == self.PROGRESS:
                return percent(row.progress) if row.size else ""
            if column == self.SENT:
                return format_size(row.sent)
            if column == self.SPEED:
                return format_speed(row.speed) if row.active else ""
            return self.state_text(row)
        if role == SORT_ROLE:
            keys = (row.name.lower(), row.peer, row.size, row.progress, row.sent, row.speed)
            return keys[column] if column < len(keys) else row.state.value
        if role == PROGRESS_ROLE and column == self.PROGRESS:
            return row.progress if row.size else None
        if role == Qt.ItemDataRole.DecorationRole and column == self.NAME:
            return kind_icon(file_kind(row.name))
        if role == Qt.ItemDataRole.ToolTipRole:
            return self._tooltip(row, column)
        if role == Qt.ItemDataRole.ForegroundRole and column == self.STATE:
            return {UploadState.FAILED: ERROR_COLOR, UploadState.FINISHED: DONE_COLOR}.get(
                row.state
            )
        if role == Qt.ItemDataRole.TextAlignmentRole and column in (
            self.SIZE,
            self.SENT,
            self.SPEED,
        ):
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
