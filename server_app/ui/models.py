"""Table models of the admin window.

Each model changes row by row (``beginInsertRows``/``beginRemoveRows``/``dataChanged``)
so views and proxies keep their selection, scroll position and sort order; display
strings are made once per change, not on every paint. Everything a peer sent is
shown through ``plain_text`` and never as rich text.
"""

from __future__ import annotations

import ipaddress
import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from PySide6.QtCore import (
    QAbstractTableModel,
    QCoreApplication,
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    QSortFilterProxyModel,
    Qt,
)
from PySide6.QtGui import QColor

from app.network.protocol import FileInfo
from server_app.index_server import Ban
from server_app.log_handler import LogEntry
from server_app.store import IndexedFile, PeerRecord, fold
from server_app.ui.formatting import format_clock, format_count, format_size, plain_text

DISPLAY_ROLE = int(Qt.ItemDataRole.DisplayRole)
TOOLTIP_ROLE = int(Qt.ItemDataRole.ToolTipRole)
ALIGNMENT_ROLE = int(Qt.ItemDataRole.TextAlignmentRole)
FOREGROUND_ROLE = int(Qt.ItemDataRole.ForegroundRole)
#: The raw value a column sorts by (numbers as numbers).
SORT_ROLE = int(Qt.ItemDataRole.UserRole) + 1
#: The text the peers filter box matches (address and agent).
FILTER_ROLE = int(Qt.ItemDataRole.UserRole) + 2

RIGHT_ALIGNED = int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
HASH_SHOWN_CHARS = 16

AnyIndex = QModelIndex | QPersistentModelIndex


def address_sort_key(host: str, port: int) -> str:
    """A string that sorts addresses numerically: 10.0.0.9 before 10.0.0.10."""
    try:
        packed = ipaddress.ip_address(host).packed
    except ValueError:
        return f"~{host}:{port:05d}"
    return f"{len(packed):02d}{packed.hex()}:{port:05d}"


def contiguous_runs(rows: Iterable[int]) -> list[tuple[int, int]]:
    """Row numbers grouped into (first, last) runs, last run first (safe removal order)."""
    runs: list[tuple[int, int]] = []
    for row in sorted(set(rows), reverse=True):
        if runs and runs[-1][0] == row + 1:
            runs[-1] = (row, runs[-1][1])
        else:
            runs.append((row, row))
    return runs


class _RowTableModel(QAbstractTableModel):
    """A table of rows that each hold their display strings and sort keys."""

    HEADERS: tuple[str, ...] = ()
    RIGHT_ALIGNED_COLUMNS: frozenset[int] = frozenset()

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._rows: list[Any] = []

    def rowCount(self, parent: AnyIndex = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self._rows)

    def columnCount(self, parent: AnyIndex = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self.HEADERS)

    def headerData(
        self, section: int, orientation: Qt.Orientation, role: int = DISPLAY_ROLE
    ) -> Any:
        if orientation == Qt.Orientation.Horizontal and role == DISPLAY_ROLE:
            return QCoreApplication.translate("AdminTables", self.HEADERS[section])
        return None

    def data(self, index: AnyIndex, role: int = DISPLAY_ROLE) -> Any:
        row = self._rows[index.row()]
        column = index.column()
        if role == DISPLAY_ROLE:
            return row.display[column]
        if role == SORT_ROLE:
            return row.sort_keys[column]
        if role == ALIGNMENT_ROLE:
            return RIGHT_ALIGNED if column in self.RIGHT_ALIGNED_COLUMNS else None
        return self.extra_data(row, column, role)

    def extra_data(self, row: Any, column: int, role: int) -> Any:
        return None

    def _changed(self, rows: Iterable[int]) -> None:
        last_column = len(self.HEADERS) - 1
        for first, last in contiguous_runs(rows):
            self.dataChanged.emit(self.index(first, 0), self.index(last, last_column))


# ---------------------------------------------------------------------------- peers


@dataclass(frozen=True)
class PeerRow:
    """One online peer, ready to show."""

    peer_id: int
    host: str
    display: tuple[str, ...]
    sort_keys: tuple[Any, ...]
    filter_text: str

    @classmethod
    def from_record(cls, record: PeerRecord) -> PeerRow:
        address = f"{record.host}:{record.port}"
        agent = plain_text(record.agent) or "—"
        return cls(
            peer_id=record.peer_id,
            host=record.host,
            display=(
                address,
                agent,
                format_count(record.files),
                format_size(record.bytes),
                format_clock(record.joined_at),
                format_clock(record.last_seen),
                plain_text(record.server) or "—",
            ),
            sort_keys=(
                address_sort_key(record.host, record.port),
                fold(record.agent),
                record.files,
                record.bytes,
                record.joined_at,
                record.last_seen,
                fold(record.server),
            ),
            filter_text=f"{address} {agent} {record.server}",
        )


class PeerTableModel(_RowTableModel):
    """Online peers, one row each, keyed by peer id; rows are appended, changed and removed."""

    HEADERS = ("Address", "Agent", "Files", "Shared", "Connected since", "Last seen", "Server")
    ADDRESS, AGENT, FILES, SHARED, SINCE, LAST_SEEN, SERVER = range(7)
    RIGHT_ALIGNED_COLUMNS = frozenset({FILES, SHARED})

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._rows: list[PeerRow] = []
        self._row_of: dict[int, int] = {}
        #: Files and bytes over every row, kept up to date as rows change.
        self.total_files = 0
        self.total_bytes = 0

    def _count(self, row: PeerRow, sign: int) -> None:
        self.total_files += sign * row.sort_keys[self.FILES]
        self.total_bytes += sign * row.sort_keys[self.SHARED]

    def extra_data(self, row: PeerRow, column: int, role: int) -> Any:
        if role == FILTER_ROLE:
            return row.filter_text
        if role == TOOLTIP_ROLE and column == self.AGENT:
            return row.display[column]
        return None

    def __contains__(self, peer_id: int) -> bool:
        return peer_id in self._row_of

    def row_of(self, peer_id: int) -> int | None:
        return self._row_of.get(peer_id)

    def peer_at(self, row: int) -> PeerRow:
        return self._rows[row]

    def peer_ids(self) -> list[int]:
        return [row.peer_id for row in self._rows]

    def add_or_update(self, records: Sequence[PeerRecord]) -> None:
        """Append new peers in one insertion; refresh the ones already shown."""
        new: list[PeerRow] = []
        changed: list[int] = []
        for record in records:
            row = self._row_of.get(record.peer_id)
            if row is None:
                new.append(PeerRow.from_record(record))
            else:
                fresh = PeerRow.from_record(record)
                if fresh != self._rows[row]:
                    self._count(self._rows[row], -1)
                    self._count(fresh, +1)
                    self._rows[row] = fresh
                    changed.append(row)
        self._changed(changed)
        if new:
            first = len(self._rows)
            self.beginInsertRows(QModelIndex(), first, first + len(new) - 1)
            self._rows.extend(new)
            for offset, row in enumerate(new):
                self._row_of[row.peer_id] = first + offset
                self._count(row, +1)
            self.endInsertRows()

    def remove(self, peer_ids: Iterable[int]) -> None:
        rows = [self._row_of[peer_id] for peer_id in peer_ids if peer_id in self._row_of]
        if not rows:
            return
        for first, last in contiguous_runs(rows):
            self.beginRemoveRows(QModelIndex(), first, last)
            for row in self._rows[first : last + 1]:
                del self._row_of[row.peer_id]
                self._count(row, -1)
            del self._rows[first : last + 1]
            self.endRemoveRows()
        for row in range(min(rows), len(self._rows)):
            self._row_of[self._rows[row].peer_id] = row


def peer_filter_proxy(
    model: PeerTableModel, parent: QObject | None = None
) -> QSortFilterProxyModel:
    """Sorts peers by raw values and filters them by address or agent, case-insensitively."""
    proxy = QSortFilterProxyModel(parent)
    proxy.setSourceModel(model)
    proxy.setSortRole(SORT_ROLE)
    proxy.setFilterRole(FILTER_ROLE)
    proxy.setFilterKeyColumn(0)
    proxy.setFilterCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)
    return proxy


def sort_proxy(model: QAbstractTableModel, parent: QObject | None = None) -> QSortFilterProxyModel:
    proxy = QSortFilterProxyModel(parent)
    proxy.setSourceModel(model)
    proxy.setSortRole(SORT_ROLE)
    return proxy


# ---------------------------------------------------------------------------- files


@dataclass(frozen=True)
class FileRow:
    """One file name with its size and hash (and holders, in the index)."""

    key: tuple[str, str]
    display: tuple[str, ...]
    sort_keys: tuple[Any, ...]
    hash: str


def _short_hash(hash_: str) -> str:
    return hash_[:HASH_SHOWN_CHARS] + "…"


class IndexFileModel(_RowTableModel):
    """Distinct (hash, name) entries of the index with how many peers hold each hash."""

    HEADERS = ("Name", "Size", "Peers", "Hash")
    NAME, SIZE, PEERS, HASH = range(4)
    RIGHT_ALIGNED_COLUMNS = frozenset({SIZE, PEERS})

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._rows: list[FileRow] = []
        self._row_of: dict[tuple[str, str], int] = {}

    @staticmethod
    def make_row(file: IndexedFile) -> FileRow:
        name = plain_text(file.name)
        return FileRow(
            key=(file.hash, file.name),
            display=(
                name,
                format_size(file.size),
                format_count(file.peers),
                _short_hash(file.hash),
            ),
            sort_keys=(fold(file.name), file.size, file.peers, file.hash),
            hash=file.hash,
        )

    def extra_data(self, row: FileRow, column: int, role: int) -> Any:
        if role == TOOLTIP_ROLE:
            if column == self.NAME:
                return row.display[column]
            if column == self.HASH:
                return row.hash
        return None

    def file_at(self, row: int) -> FileRow:
        return self._rows[row]

    def replace_all(self, files: Sequence[IndexedFile]) -> None:
        """Show the result of a new query (a different list, so the view starts over)."""
        self.beginResetModel()
        self._rows = [self.make_row(file) for file in files]
        self._row_of = {row.key: index for index, row in enumerate(self._rows)}
        self.endResetModel()

    def merge(self, files: Sequence[IndexedFile]) -> None:
        """Bring the same query's rows up to date: drop gone ones, change counts, add new."""
        fresh = {(file.hash, file.name): file for file in files}
        gone = [row for key, row in self._row_of.items() if key not in fresh]
        if gone:
            for first, last in contiguous_runs(gone):
                self.beginRemoveRows(QModelIndex(), first, last)
                del self._rows[first : last + 1]
                self.endRemoveRows()
            self._row_of = {row.key: index for index, row in enumerate(self._rows)}
        changed = []
        new = []
        for key, file in fresh.items():
            row = self._row_of.get(key)
            if row is None:
                new.append(self.make_row(file))
            elif self._rows[row].sort_keys[self.PEERS] != file.peers:
                self._rows[row] = self.make_row(file)
                changed.append(row)
        self._changed(changed)
        if new:
            first = len(self._rows)
            self.beginInsertRows(QModelIndex(), first, first + len(new) - 1)
            self._rows.extend(new)
            for offset, row in enumerate(new):
                self._row_of[row.key] = first + offset
            self.endInsertRows()


class PeerFilesModel(_RowTableModel):
    """The files one peer shares (shown when the peer is selected)."""

    HEADERS = ("Name", "Size", "Hash")
    NAME, SIZE, HASH = range(3)
    RIGHT_ALIGNED_COLUMNS = frozenset({SIZE})

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._rows: list[FileRow] = []

    def extra_data(self, row: FileRow, column: int, role: int) -> Any:
        if role == TOOLTIP_ROLE:
            return row.hash if column == self.HASH else row.display[self.NAME]
        return None

    def show_files(self, files: Sequence[FileInfo]) -> None:
        """Show another peer's files (a different subject, so the view starts over)."""
        self.beginResetModel()
        self._rows = [
            FileRow(
                key=(file.hash, file.name),
                display=(plain_text(file.name), format_size(file.size), _short_hash(file.hash)),
                sort_keys=(fold(file.name), file.size, file.hash),
                hash=file.hash,
            )
            for file in files
        ]
        self.endResetModel()


# ---------------------------------------------------------------------------- bans


def format_time_left(seconds: float) -> str:
    """How long a temporary ban has left: 'in 9 min', 'in 40 s'."""
    if seconds >= 60:
        minutes = int((seconds + 59) // 60)
        return QCoreApplication.translate("AdminTables", "in {minutes} min").format(minutes=minutes)
    return QCoreApplication.translate("AdminTables", "in {seconds} s").format(
        seconds=max(int(seconds), 0)
    )


@dataclass(frozen=True)
class BanRow:
    address: str
    display: tuple[str, ...]
    sort_keys: tuple[Any, ...]

    @classmethod
    def make(cls, ban: Ban, now: float | None = None) -> BanRow:
        now = time.time() if now is None else now
        if ban.expires_at is None:
            ends = QCoreApplication.translate("AdminTables", "when unbanned")
        else:
            ends = format_time_left(ban.expires_at - now)
        return cls(
            address=ban.address,
            display=(ban.address, plain_text(ban.reason) or "—", format_clock(ban.banned_at), ends),
            sort_keys=(
                address_sort_key(ban.address, 0),
                fold(ban.reason),
                ban.banned_at,
                float("inf") if ban.expires_at is None else ban.expires_at,
            ),
        )


class BanTableModel(_RowTableModel):
    """Refused addresses: for good (kept in the index database) or for a while (kicks)."""

    HEADERS = ("Address", "Reason", "Banned at", "Ends")

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._rows: list[BanRow] = []

    def load(self, bans: Sequence[Ban], now: float | None = None) -> None:
        """Show these bans as at ``now``: rows are changed, added and removed in place."""
        now = time.time() if now is None else now
        new = [BanRow.make(ban, now) for ban in bans]
        wanted = {row.address: row for row in new}
        for row in reversed(range(len(self._rows))):
            if self._rows[row].address not in wanted:
                self.beginRemoveRows(QModelIndex(), row, row)
                del self._rows[row]
                self.endRemoveRows()
        for row_data in new:
            self.put(row_data)

    def addresses(self) -> list[str]:
        return [row.address for row in self._rows]

    def address_at(self, row: int) -> str:
        return self._rows[row].address

    def put(self, new: BanRow) -> None:
        for row, existing in enumerate(self._rows):
            if existing.address == new.address:
                if existing == new:
                    return
                self._rows[row] = new
                self._changed([row])
                return
        self.beginInsertRows(QModelIndex(), len(self._rows), len(self._rows))
        self._rows.append(new)
        self.endInsertRows()

    def drop(self, address: str) -> None:
        for row, existing in enumerate(self._rows):
            if existing.address == address:
                self.beginRemoveRows(QModelIndex(), row, row)
                del self._rows[row]
                self.endRemoveRows()
                return


# ---------------------------------------------------------------------------- log

WARNING_COLOR = QColor("#b35c00")
ERROR_COLOR = QColor("#c62828")


class LogTableModel(_RowTableModel):
    """The newest ``capacity`` log entries; new ones are appended, the oldest dropped."""

    HEADERS = ("Time", "Level", "Source", "Message")
    #: The level names shown (translated in the AdminTables context).
    LEVEL_NAMES = ("Debug", "Info", "Warning", "Error", "Critical")
    TIME, LEVEL, SOURCE, MESSAGE = range(4)

    def __init__(self, capacity: int, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.capacity = capacity
        self._rows: list[LogEntry] = []
        self._times: list[str] = []

    def entry(self, row: int) -> LogEntry:
        return self._rows[row]

    def messages(self) -> list[str]:
        return [entry.message for entry in self._rows]

    def data(self, index: AnyIndex, role: int = DISPLAY_ROLE) -> Any:
        row = index.row()
        entry = self._rows[row]
        column = index.column()
        if role == DISPLAY_ROLE:
            if column == self.MESSAGE:
                return entry.message
            if column == self.TIME:
                return self._times[row]
            if column == self.LEVEL:
                return QCoreApplication.translate("AdminTables", entry.level_name.capitalize())
            return entry.source.removeprefix("napster.")
        if role == FOREGROUND_ROLE:
            if entry.level >= logging.ERROR:
                return ERROR_COLOR
            if entry.level >= logging.WARNING:
                return WARNING_COLOR
            return None
        if role == TOOLTIP_ROLE and column == self.MESSAGE:
            return f"{entry.message}\n{entry.details}" if entry.details else entry.message
        return None

    def append(self, entries: Sequence[LogEntry]) -> None:
        entries = list(entries[-self.capacity :])
        if not entries:
            return
        overflow = len(self._rows) + len(entries) - self.capacity
        if overflow > 0:
            self.beginRemoveRows(QModelIndex(), 0, overflow - 1)
            del self._rows[:overflow]
            del self._times[:overflow]
            self.endRemoveRows()
        first = len(self._rows)
        self.beginInsertRows(QModelIndex(), first, first + len(entries) - 1)
        self._rows.extend(entries)
        self._times.extend(format_clock(entry.created) for entry in entries)
        self.endInsertRows()

    def clear(self) -> None:
        if not self._rows:
            return
        self.beginRemoveRows(QModelIndex(), 0, len(self._rows) - 1)
        self._rows.clear()
        self._times.clear()
        self.endRemoveRows()


class LogFilterProxy(QSortFilterProxyModel):
    """Shows log entries at or above a level whose message or source holds some text."""

    def __init__(self, model: LogTableModel, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.setSourceModel(model)
        self._model = model
        self.min_level = logging.INFO
        self.text = ""

    def set_filter(self, min_level: int, text: str) -> None:
        text = text.strip().casefold()
        if (min_level, text) == (self.min_level, self.text):
            return
        if hasattr(self, "beginFilterChange"):  # Qt 6.9+; invalidateFilter() is deprecated there
            self.beginFilterChange()
            self.min_level, self.text = min_level, text
            self.endFilterChange()
        else:
            self.min_level, self.text = min_level, text
            self.invalidateFilter()

    def filterAcceptsRow(self, source_row: int, source_parent: AnyIndex) -> bool:
        entry = self._model.entry(source_row)
        if entry.level < self.min_level:
            return False
        return not self.text or (
            self.text in entry.message.casefold() or self.text in entry.source.casefold()
        )
