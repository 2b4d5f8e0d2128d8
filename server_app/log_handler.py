"""Server log records for the admin window: a logging handler feeding a capped buffer.

``QtLogHandler`` may be called from any thread. It turns each record into a
one-line ``LogEntry`` (text from the network escaped by ``protocol.printable``)
and appends it to a ``LogBuffer``; the buffer emits ``entries_added`` once per
batch, and the GUI thread collects the batch with ``take_new()``.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from dataclasses import dataclass

from PySide6.QtCore import QObject, Signal

from app.network.protocol import printable

__all__ = ["DEFAULT_CAPACITY", "LogBuffer", "LogEntry", "QtLogHandler"]

DEFAULT_CAPACITY = 5000
MAX_MESSAGE_CHARS = 2000


@dataclass(frozen=True)
class LogEntry:
    """One log record as the log pane shows it."""

    created: float
    level: int
    level_name: str
    source: str
    message: str
    details: str = ""


class LogBuffer(QObject):
    """The newest log entries, at most ``capacity`` of them, shared between threads."""

    #: Emitted (from the thread that logged) when entries arrive and the previous batch
    #: was taken. Connect it with ``Qt.QueuedConnection`` so the slot never runs inside
    #: the code that is logging, and call ``take_new()`` there.
    entries_added = Signal()

    def __init__(self, capacity: int = DEFAULT_CAPACITY, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.capacity = capacity
        self._lock = threading.Lock()
        self._new: deque[LogEntry] = deque(maxlen=capacity)
        self._announced = False

    def append(self, entry: LogEntry) -> None:
        with self._lock:
            self._new.append(entry)
            announce = not self._announced
            self._announced = True
        if announce:
            self.entries_added.emit()

    def take_new(self) -> list[LogEntry]:
        """The entries added since the last call, oldest first (only the newest ``capacity``)."""
        with self._lock:
            entries = list(self._new)
            self._new.clear()
            self._announced = False
        return entries


class QtLogHandler(logging.Handler):
    """A logging handler that appends every record it is given to a ``LogBuffer``."""

    def __init__(self, buffer: LogBuffer, level: int = logging.INFO) -> None:
        super().__init__(level)
        self.buffer = buffer
        self._logger: logging.Logger | None = None
        self._previous_level = logging.NOTSET

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = record.getMessage()
            if not message.isprintable():
                message = printable(message, MAX_MESSAGE_CHARS)
            elif len(message) > MAX_MESSAGE_CHARS:
                message = message[:MAX_MESSAGE_CHARS] + "…"
            details = ""
            if record.exc_info:
                details = logging.Formatter().formatException(record.exc_info)
            self.buffer.append(
                LogEntry(
                    created=record.created,
                    level=record.levelno,
                    level_name=record.levelname,
                    source=record.name,
                    message=message,
                    details=details,
                )
            )
        except Exception:
            self.handleError(record)

    def attach(self, logger_name: str = "napster") -> None:
        """Listen to ``logger_name`` and its children, letting at least this level through."""
        logger = logging.getLogger(logger_name)
        self._logger = logger
        self._previous_level = logger.level
        if logger.getEffectiveLevel() > self.level:
            logger.setLevel(self.level)
        logger.addHandler(self)

    def detach(self) -> None:
        """Stop listening and restore the logger's level."""
        if self._logger is None:
            return
        self._logger.removeHandler(self)
        self._logger.setLevel(self._previous_level)
        self._logger = None
