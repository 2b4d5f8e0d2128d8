"""The library's background jobs: walking the shared folders and hashing files.

They run as ``QRunnable``s in a thread pool and report through ``JobSignals`` (queued to the
library's thread). Every file is hashed from a descriptor that ``SharePolicy.open`` reached
beneath its shared folder, so a link swapped in is never followed.
"""

from __future__ import annotations

import logging
import os
import threading

from PySide6.QtCore import QObject, QRunnable, Signal

from app.network.pieces import FileDigest, HashCancelled, hash_file
from app.network.protocol import printable
from app.sharing.confined import NotBeneath
from app.sharing.policy import FileStat, SharePolicy

log = logging.getLogger("napster.library")

HASH_ATTEMPTS = 3


def hash_descriptor(fd: int, keep_going) -> FileDigest:
    """Hash the open file ``fd`` (left open); the bytes come from that descriptor only."""
    # hash_file opens what it is given: a duplicate descriptor, which it closes.
    return hash_file(os.dup(fd), keep_going)


class WorkerCount:
    """How many of our jobs are queued or running, so ``stop()`` can wait for them."""

    def __init__(self) -> None:
        self._condition = threading.Condition()
        self._count = 0

    def begin(self) -> None:
        with self._condition:
            self._count += 1

    def end(self) -> None:
        with self._condition:
            self._count -= 1
            self._condition.notify_all()

    def wait(self) -> None:
        with self._condition:
            self._condition.wait_for(lambda: self._count == 0)


class HashQueue:
    """Paths waiting to be hashed, shared by the library thread and the one hash job."""

    def __init__(self, policy: SharePolicy) -> None:
        self.lock = threading.Lock()
        self.items: dict[str, int] = {}  # path -> epoch it was queued in
        self.policy = policy
        self.running = False
        self.epoch = 0
        self.current: str | None = None
        self.abandon_current = False
        self.stopped = threading.Event()


class JobSignals(QObject):
    """What the jobs report, delivered to the library thread by queued connections.

    Jobs hold this child of the library, never the library itself: a job (or a traceback
    kept by one) must not be what keeps a library alive, or it could be destroyed on a pool
    thread.
    """

    scanned = Signal(int, object)
    hash_started = Signal(int, str)
    hashed = Signal(int, str, object, object)
    hash_failed = Signal(int, str, str)
    hash_skipped = Signal(int, str)
    hash_unstable = Signal(int, str)


class ScanJob(QRunnable):
    """Walks the shared folders once and reports a ``ScanResult`` (or nothing if cancelled)."""

    def __init__(
        self,
        signals: JobSignals,
        workers: WorkerCount,
        policy: SharePolicy,
        scan_id: int,
        cancelled: threading.Event,
    ) -> None:
        super().__init__()
        self._signals = signals
        self._workers = workers
        self._policy = policy
        self._scan_id = scan_id
        self._cancelled = cancelled

    def run(self) -> None:
        try:
            result = self._policy.walk(self._cancelled.is_set)
            if result is not None and not self._cancelled.is_set():
                self._signals.scanned.emit(self._scan_id, result)
        except Exception:
            log.exception("Scanning the shared folders failed")
        finally:
            self._workers.end()


class HashJob(QRunnable):
    """Hashes queued paths one after another until the queue is empty or stopped."""

    def __init__(self, signals: JobSignals, workers: WorkerCount, queue: HashQueue) -> None:
        super().__init__()
        self._signals = signals
        self._workers = workers
        self._queue = queue

    def run(self) -> None:
        queue = self._queue
        finished_normally = False
        try:
            while True:
                with queue.lock:
                    if queue.stopped.is_set() or not queue.items:
                        queue.running = False
                        queue.current = None
                        finished_normally = True
                        return
                    path = next(iter(queue.items))
                    epoch = queue.items.pop(path)
                    queue.current = path
                    queue.abandon_current = False
                    policy = queue.policy
                self._hash_one(path, epoch, policy)
        finally:
            if not finished_normally:
                with queue.lock:
                    queue.running = False
                    queue.current = None
            self._workers.end()

    def _hash_one(self, path: str, epoch: int, policy: SharePolicy) -> None:
        signals = self._signals
        queue = self._queue

        def keep_going(_done: int, _total: int) -> bool:
            return not (queue.stopped.is_set() or queue.epoch != epoch or queue.abandon_current)

        signals.hash_started.emit(epoch, path)
        try:
            for _attempt in range(HASH_ATTEMPTS):
                fd = policy.open(path)
                try:
                    before = FileStat.of(os.fstat(fd))
                    digest = hash_descriptor(fd, keep_going)
                    after = FileStat.of(os.fstat(fd))
                finally:
                    os.close(fd)
                if before == after and digest.size == before.size:
                    signals.hashed.emit(epoch, path, before, digest)
                    return
        except HashCancelled:
            signals.hash_skipped.emit(epoch, path)
            return
        except OSError as exc:
            signals.hash_failed.emit(epoch, path, failure_reason(exc))
            return
        except Exception as exc:
            log.exception("Hashing %s failed", printable(path))
            signals.hash_failed.emit(epoch, path, f"hashing failed ({type(exc).__name__})")
            return
        signals.hash_unstable.emit(epoch, path)


def failure_reason(exc: OSError) -> str:
    """Why a file is not shared, in words for the log and the window."""
    if isinstance(exc, NotBeneath):
        return "it is a link, not a regular file, or not inside a shared folder"
    if isinstance(exc, FileNotFoundError):
        return "it vanished before it could be hashed"
    if isinstance(exc, PermissionError):
        return "permission denied"
    return exc.strerror or str(exc)
