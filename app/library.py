"""The peer's shared library: scan the shared folders, hash in the background, cache, watch.

Threads: a ``Library`` lives on one thread (the GUI thread in the app), which owns its timers,
its folder watcher and its SQLite hash cache. Walking the folders and hashing files run as
``QRunnable`` jobs in a thread pool; they report back through queued signals and the library
thread compares the results with what it knows. ``files``, ``infos``, ``lookup``,
``is_unchanged``, ``mark_changed`` and ``add_downloaded`` may be called from any thread.
Call ``stop()`` (on the library thread) before the library is deleted, and delete it there.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import stat
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from PySide6.QtCore import (
    QFileSystemWatcher,
    QObject,
    QRunnable,
    Qt,
    QThread,
    QThreadPool,
    QTimer,
    Signal,
)

from app.network.pieces import (
    FileDigest,
    HashCancelled,
    file_hash_from_digests,
    hash_file,
    piece_count,
)
from app.network.protocol import FileInfo, name_problem, printable

log = logging.getLogger("napster.library")

PERIODIC_RESCAN_MS = 60_000
#: Most files in one ``files_added`` emission, and how long a smaller batch may wait.
BATCH_FILES = 1000
BATCH_INTERVAL_MS = 500
PROGRESS_INTERVAL_MS = 100
#: A file seen changing while it was hashed is hashed again once it has been still this long.
SETTLE_MS = 2000
HASH_ATTEMPTS = 3
PRIVATE_SUFFIXES = (".part", ".napster-state", ".napster-tmp")
SQLITE_SIDE_FILES = ("-wal", "-shm", "-journal")
CACHE_VERSION = 1
DIGEST_SIZE = 32


@dataclass(frozen=True)
class SharedFile:
    """One file of the shared folders, hashed and ready to serve."""

    path: Path
    name: str
    size: int
    mtime_ns: int
    hash: str
    pieces: tuple[bytes, ...]

    def info(self) -> FileInfo:
        return FileInfo(name=self.name, size=self.size, hash=self.hash)

    def same_version(self, other: SharedFile) -> bool:
        """True when both describe the same bytes at the same path."""
        return (self.path, self.size, self.mtime_ns, self.hash) == (
            other.path,
            other.size,
            other.mtime_ns,
            other.hash,
        )


class _Stat(NamedTuple):
    size: int
    mtime_ns: int
    ctime_ns: int
    inode: str

    @classmethod
    def of(cls, st: os.stat_result) -> _Stat:
        return cls(st.st_size, st.st_mtime_ns, st.st_ctime_ns, f"{st.st_dev}:{st.st_ino}")


class _CacheRow(NamedTuple):
    size: int
    mtime_ns: int
    inode: str
    hash: str
    pieces: tuple[bytes, ...]


@dataclass
class _ScanResult:
    files: dict[str, _Stat]
    dirs: list[str]
    failed_roots: set[str]


# ---------------------------------------------------------------- what may be shared


def is_private_name(name: str) -> bool:
    """Hidden names and our own partial/state files are never shared."""
    return name.startswith(".") or name.lower().endswith(PRIVATE_SUFFIXES)


def _root_prefix(root: str) -> str:
    return root if root.endswith(os.sep) else root + os.sep


def _visible_inside(real_dir: str, roots: Sequence[str]) -> bool:
    """True when ``real_dir`` is a root or below one through folders that are not hidden."""
    for root in roots:
        if real_dir == root:
            return True
        prefix = _root_prefix(root)
        if real_dir.startswith(prefix) and not any(
            part.startswith(".") for part in real_dir[len(prefix) :].split(os.sep)
        ):
            return True
    return False


def _is_excluded(real: str, roots: Sequence[str], excluded: frozenset[str]) -> bool:
    """True for an excluded file, or a file inside an excluded folder below a shared root.

    An excluded folder that is a root or holds one excludes only the files named in it.
    """
    path = real
    while path not in roots:
        if path in excluded:
            return True
        parent = os.path.dirname(path)
        if parent == path:
            return False
        path = parent
    return False


def _file_allowed(real: str, roots: Sequence[str], excluded: frozenset[str]) -> bool:
    if _is_excluded(real, roots, excluded) or is_private_name(os.path.basename(real)):
        return False
    return _visible_inside(os.path.dirname(real), roots)


def _under_any(path: str, roots: Iterable[str]) -> bool:
    return any(path.startswith(_root_prefix(root)) for root in roots)


def _real_paths(paths: Iterable[os.PathLike[str] | str]) -> tuple[str, ...]:
    reals: list[str] = []
    for path in paths:
        real = os.path.realpath(os.path.expanduser(os.fspath(path)))
        if real not in reals:
            reals.append(real)
    return tuple(reals)


def _walk(
    roots: Sequence[str], excluded: frozenset[str], cancelled: threading.Event
) -> _ScanResult | None:
    """Every shareable regular file under ``roots``, by real path; None when cancelled."""
    result = _ScanResult({}, [], set())
    visited: set[tuple[int, int]] = set()
    for root in roots:
        try:
            root_stat = os.stat(root)
        except OSError as exc:
            log.info("Shared folder %s cannot be read: %s", printable(root), exc.strerror)
            result.failed_roots.add(root)
            continue
        if not stat.S_ISDIR(root_stat.st_mode):
            log.info("Shared folder %s is not a folder", printable(root))
            result.failed_roots.add(root)
            continue
        if (root_stat.st_dev, root_stat.st_ino) in visited:
            continue
        visited.add((root_stat.st_dev, root_stat.st_ino))
        stack = [root]
        while stack:
            if cancelled.is_set():
                return None
            folder = stack.pop()
            try:
                with os.scandir(folder) as listing:
                    entries = list(listing)
            except OSError as exc:
                log.info("Cannot list %s: %s", printable(folder), exc.strerror)
                if folder == root:
                    result.failed_roots.add(root)
                continue
            result.dirs.append(folder)
            for entry in entries:
                if cancelled.is_set():
                    return None
                if entry.name.startswith("."):
                    continue
                try:
                    linked = entry.is_symlink()
                    if linked:
                        real = os.path.realpath(entry.path)
                        entry_stat = os.stat(real)
                        is_dir = stat.S_ISDIR(entry_stat.st_mode)
                        if not _visible_inside(real if is_dir else os.path.dirname(real), roots):
                            continue
                    else:
                        real = entry.path
                        entry_stat = entry.stat(follow_symlinks=False)
                except OSError:
                    continue  # vanished, unreadable, a broken link or a link loop
                if stat.S_ISDIR(entry_stat.st_mode):
                    key = (entry_stat.st_dev, entry_stat.st_ino)
                    if key not in visited:
                        visited.add(key)
                        stack.append(real)
                elif stat.S_ISREG(entry_stat.st_mode) and not is_private_name(entry.name):
                    if linked and not _file_allowed(real, roots, excluded):
                        continue
                    if not _is_excluded(real, roots, excluded):
                        result.files[real] = _Stat.of(entry_stat)
    return result


# ---------------------------------------------------------------- background jobs


class _WorkerCount:
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


class _HashQueue:
    """Paths waiting to be hashed, shared by the library thread and the one hash job."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.items: dict[str, int] = {}  # path -> epoch it was queued in
        self.running = False
        self.epoch = 0
        self.current: str | None = None
        self.abandon_current = False
        self.stopped = threading.Event()


class _JobSignals(QObject):
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


class _ScanJob(QRunnable):
    def __init__(
        self,
        signals: _JobSignals,
        workers: _WorkerCount,
        roots: tuple[str, ...],
        excluded: frozenset[str],
        scan_id: int,
        cancelled: threading.Event,
    ) -> None:
        super().__init__()
        self._signals = signals
        self._workers = workers
        self._roots = roots
        self._excluded = excluded
        self._scan_id = scan_id
        self._cancelled = cancelled

    def run(self) -> None:
        try:
            result = _walk(self._roots, self._excluded, self._cancelled)
            if result is not None and not self._cancelled.is_set():
                self._signals.scanned.emit(self._scan_id, result)
        except Exception:
            log.exception("Scanning the shared folders failed")
        finally:
            self._workers.end()


class _HashJob(QRunnable):
    """Hashes queued paths one after another until the queue is empty or stopped."""

    def __init__(self, signals: _JobSignals, workers: _WorkerCount, queue: _HashQueue) -> None:
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
                self._hash_one(path, epoch)
        finally:
            if not finished_normally:
                with queue.lock:
                    queue.running = False
                    queue.current = None
            self._workers.end()

    def _hash_one(self, path: str, epoch: int) -> None:
        signals = self._signals
        queue = self._queue

        def keep_going(_done: int, _total: int) -> bool:
            return not (queue.stopped.is_set() or queue.epoch != epoch or queue.abandon_current)

        signals.hash_started.emit(epoch, path)
        try:
            for _attempt in range(HASH_ATTEMPTS):
                before = os.lstat(path)
                if not stat.S_ISREG(before.st_mode):
                    signals.hash_failed.emit(epoch, path, "it is no longer a regular file")
                    return
                digest = hash_file(path, keep_going)
                after = os.lstat(path)
                if _Stat.of(before) == _Stat.of(after) and digest.size == before.st_size:
                    signals.hashed.emit(epoch, path, _Stat.of(before), digest)
                    return
        except HashCancelled:
            signals.hash_skipped.emit(epoch, path)
            return
        except OSError as exc:
            signals.hash_failed.emit(epoch, path, _failure_reason(exc))
            return
        except Exception as exc:
            log.exception("Hashing %s failed", printable(path))
            signals.hash_failed.emit(epoch, path, f"hashing failed ({type(exc).__name__})")
            return
        signals.hash_unstable.emit(epoch, path)


def _failure_reason(exc: OSError) -> str:
    if isinstance(exc, FileNotFoundError):
        return "it vanished before it could be hashed"
    if isinstance(exc, PermissionError):
        return "permission denied"
    return exc.strerror or str(exc)


# ---------------------------------------------------------------- the library


class Library(QObject):
    """The shared folders' files: found, hashed in the background, cached and watched.

    ``files_removed`` lists hashes whose entries must be dropped. When another path still holds
    a removed hash (a duplicate under another name), a ``files_added`` with those remaining files
    follows at once, so "remove by hash, then add" always leaves the right names.
    """

    files_added = Signal(list)
    files_removed = Signal(list)
    hashing_progress = Signal(int, int, str)
    hashing_finished = Signal()
    file_failed = Signal(str, str)

    _change_reported = Signal(object, bool)
    _download_reported = Signal(object, object)

    def __init__(
        self,
        folders: Sequence[os.PathLike[str] | str],
        cache_path: os.PathLike[str] | str,
        pool: QThreadPool | None = None,
        debounce_ms: int = 500,
        parent: QObject | None = None,
        *,
        excluded_files: Sequence[os.PathLike[str] | str] = (),
        rescan_interval_ms: int = PERIODIC_RESCAN_MS,
    ) -> None:
        """``excluded_files`` are never shared; a folder among them, nothing inside it."""
        super().__init__(parent)
        if pool is None:
            pool = QThreadPool(self)
            pool.setMaxThreadCount(2)
        self._pool = pool
        self._cache_path = os.path.realpath(os.path.expanduser(os.fspath(cache_path)))
        private = [self._cache_path, *_real_paths(excluded_files)]
        self._excluded = frozenset(
            path + suffix for path in private for suffix in ("", *SQLITE_SIDE_FILES)
        )
        self._roots = _real_paths(folders)

        # Read and written from any thread under _lock.
        self._lock = threading.Lock()
        self._by_path: dict[str, SharedFile] = {}
        self._by_hash: dict[str, dict[str, SharedFile]] = {}
        self._distrusted: set[str] = set()

        # The library thread's own state.
        self._pending: dict[str, SharedFile] = {}
        self._cache: dict[str, _CacheRow] = {}
        self._cache_by_inode: dict[tuple[str, int, int], str] = {}
        self._db: sqlite3.Connection | None = None
        self._db_dirty = False
        self._failed: dict[str, _Stat] = {}
        self._unsettled: set[str] = set()
        self._queued: set[str] = set()
        self._round_total = 0
        self._round_done = 0
        self._progress_due: tuple[int, int, str] | None = None
        self._progress_sent: tuple[int, int, str] | None = None
        self._epoch = 0
        self._scan_id = 0
        self._scan_cancel = threading.Event()
        self._scanning = False
        self._scan_again = False
        self._busy = False
        self._started = False
        self._stopped = False
        self._bad_names_logged: set[str] = set()
        self._hash_queue = _HashQueue()
        self._workers = _WorkerCount()

        self._debounce = self._timer(debounce_ms, self._start_scan)
        self._periodic = self._timer(rescan_interval_ms, self.rescan, single_shot=False)
        self._batch_timer = self._timer(BATCH_INTERVAL_MS, self._flush_added)
        self._progress_timer = self._timer(PROGRESS_INTERVAL_MS, self._emit_due_progress)
        self._settle_timer = self._timer(SETTLE_MS, self.rescan)
        self._watcher = QFileSystemWatcher(self)
        self._watcher.directoryChanged.connect(self.rescan)

        queued = Qt.ConnectionType.QueuedConnection
        self._job_signals = _JobSignals(self)
        self._job_signals.scanned.connect(self._on_scanned, queued)
        self._job_signals.hash_started.connect(self._on_hash_started, queued)
        self._job_signals.hashed.connect(self._on_hashed, queued)
        self._job_signals.hash_failed.connect(self._on_hash_failed, queued)
        self._job_signals.hash_skipped.connect(self._on_hash_skipped, queued)
        self._job_signals.hash_unstable.connect(self._on_hash_unstable, queued)
        self._change_reported.connect(self._on_change_reported, queued)
        self._download_reported.connect(self._add_downloaded, queued)

    def _timer(self, interval_ms: int, slot, single_shot: bool = True) -> QTimer:
        timer = QTimer(self)
        timer.setSingleShot(single_shot)
        timer.setInterval(interval_ms)
        timer.timeout.connect(slot)
        return timer

    # ------------------------------------------------------------ public API

    @property
    def is_hashing(self) -> bool:
        """True from the start of a scan round until its ``hashing_finished``."""
        return self._busy

    @property
    def folders(self) -> tuple[Path, ...]:
        return tuple(Path(root) for root in self._roots)

    def start(self) -> None:
        """Load the hash cache, scan, hash what is new in the background and start watching."""
        if self._started or self._stopped:
            return
        self._started = True
        self._open_cache()
        self._periodic.start()
        self._start_scan()

    def set_folders(self, folders: Sequence[os.PathLike[str] | str]) -> None:
        """Share these folders instead; files outside them are removed after the rescan."""
        roots = _real_paths(folders)
        if roots == self._roots:
            self.rescan()
            return
        self._roots = roots
        if not self._started or self._stopped:
            return
        self._epoch += 1
        with self._hash_queue.lock:
            self._hash_queue.epoch = self._epoch
            self._hash_queue.items.clear()
        self._queued.clear()
        self._end_hash_round()
        self._scan_cancel.set()
        self._scanning = False
        self._scan_again = False
        self._debounce.stop()
        self._start_scan()

    def rescan(self) -> None:
        """Ask for a scan; requests within the debounce interval make one scan."""
        if self._started and not self._stopped and not self._debounce.isActive():
            self._debounce.start()

    def files(self) -> list[SharedFile]:
        with self._lock:
            return list(self._by_path.values())

    def infos(self) -> list[FileInfo]:
        """One entry per (name, hash), for JOIN; names the protocol cannot carry are left out."""
        seen: set[tuple[str, str]] = set()
        infos: list[FileInfo] = []
        for shared in self.files():
            if (shared.name, shared.hash) in seen:
                continue
            seen.add((shared.name, shared.hash))
            problem = name_problem(shared.name)
            if problem is None:
                infos.append(shared.info())
            elif shared.name not in self._bad_names_logged:
                self._bad_names_logged.add(shared.name)
                log.warning("Not announcing %s: %s", printable(shared.name), problem)
        return infos

    def lookup(self, hash: str) -> SharedFile | None:
        with self._lock:
            holders = self._by_hash.get(hash)
            return next(iter(holders.values())) if holders else None

    def is_unchanged(self, shared: SharedFile) -> bool:
        """True when the file on disk is still the one hashed and still inside a shared folder."""
        path = os.fspath(shared.path)
        try:
            st = os.lstat(path)
        except OSError:
            return False
        if not stat.S_ISREG(st.st_mode) or (st.st_size, st.st_mtime_ns) != (
            shared.size,
            shared.mtime_ns,
        ):
            return False
        # A folder on the way may have been swapped for a link to somewhere else.
        if os.path.realpath(path) != path:
            return False
        return _file_allowed(path, self._roots, self._excluded)

    def mark_changed(self, shared: SharedFile) -> None:
        """Stop serving ``shared`` at once and hash its path again (any thread)."""
        path = os.fspath(shared.path)
        with self._lock:
            current = self._by_path.get(path)
            removed = current is not None and current.same_version(shared)
            if removed:
                self._unindex(path)
                self._distrusted.add(path)
        self._change_reported.emit(shared, removed)

    def add_downloaded(self, path: os.PathLike[str] | str, digest: FileDigest) -> None:
        """Share a finished, verified download without hashing it again (any thread)."""
        if QThread.currentThread() is not self.thread():
            self._download_reported.emit(path, digest)
        else:
            self._add_downloaded(path, digest)

    def stop(self) -> None:
        """Cancel scanning and hashing, stop watching and wait for the workers."""
        if self._stopped:
            return
        self._stopped = True
        for timer in (
            self._debounce,
            self._periodic,
            self._batch_timer,
            self._progress_timer,
            self._settle_timer,
        ):
            timer.stop()
        watched = self._watcher.directories()
        if watched:
            self._watcher.removePaths(watched)
        self._scan_cancel.set()
        with self._hash_queue.lock:
            self._hash_queue.stopped.set()
            self._hash_queue.items.clear()
        self._workers.wait()
        self._queued.clear()
        self._scanning = False
        self._busy = False
        if self._db is not None:
            with contextlib.suppress(sqlite3.Error):
                self._db.commit()
            self._db.close()
            self._db = None

    # ------------------------------------------------------------ scanning

    def _start_scan(self) -> None:
        if self._stopped or not self._started:
            return
        if self._scanning:
            self._scan_again = True
            return
        self._scanning = True
        self._busy = True
        self._scan_id += 1
        self._scan_cancel = threading.Event()
        self._workers.begin()
        self._pool.start(
            _ScanJob(
                self._job_signals,
                self._workers,
                self._roots,
                self._excluded,
                self._scan_id,
                self._scan_cancel,
            )
        )

    def _on_scanned(self, scan_id: int, result: _ScanResult) -> None:
        if self._stopped or scan_id != self._scan_id or not self._scanning:
            return
        self._scanning = False
        found = result.files
        with self._lock:
            published = dict(self._by_path)
            distrusted = set(self._distrusted)

        self._unpublish(
            [
                path
                for path, shared in published.items()
                if not self._still_same(found.get(path), shared)
            ]
        )
        for path, shared in list(self._pending.items()):
            if not self._still_same(found.get(path), shared):
                del self._pending[path]
        self._abandon([path for path in self._queued if path not in found])
        self._failed = {path: st for path, st in self._failed.items() if path in found}
        self._unsettled &= found.keys()

        ready: list[SharedFile] = []
        to_hash: list[str] = []
        settle_later = False
        now_ns = time.time_ns()
        for path, st in found.items():
            current = published.get(path) or self._pending.get(path)
            if current is not None and self._still_same(st, current):
                continue
            if path in self._queued or self._failed.get(path) == st:
                continue
            if path in self._unsettled and now_ns - st.mtime_ns < SETTLE_MS * 1_000_000:
                settle_later = True
                continue
            known = None if path in distrusted else self._known_digest(path, st, found)
            if known is None:
                to_hash.append(path)
                continue
            shared = SharedFile(
                Path(path), os.path.basename(path), st.size, st.mtime_ns, known.hash, known.pieces
            )
            self._cache_put(path, st, shared)
            ready.append(shared)

        ok_roots = [root for root in self._roots if root not in result.failed_roots]
        for path in [p for p in self._cache if p not in found and _under_any(p, ok_roots)]:
            self._cache_delete(path)
        self._watch(result.dirs)
        self._add_pending(ready)
        self._enqueue(sorted(to_hash))
        if settle_later and not self._settle_timer.isActive():
            self._settle_timer.start()
        if self._scan_again:
            self._scan_again = False
            self._start_scan()
        else:
            self._maybe_finish()

    @staticmethod
    def _still_same(st: _Stat | None, shared: SharedFile) -> bool:
        return st is not None and (st.size, st.mtime_ns) == (shared.size, shared.mtime_ns)

    def _known_digest(self, path: str, st: _Stat, found: dict[str, _Stat]) -> _CacheRow | None:
        """The cached digest for this file, by path or, after a rename, by inode."""
        row = self._cache.get(path)
        if row is not None and (row.size, row.mtime_ns) == (st.size, st.mtime_ns):
            return row
        old_path = self._cache_by_inode.get((st.inode, st.size, st.mtime_ns))
        if old_path is not None and old_path not in found:
            return self._cache.get(old_path)
        return None

    def _watch(self, dirs: list[str]) -> None:
        wanted = set(dirs)
        watched = set(self._watcher.directories())
        gone = sorted(watched - wanted)
        new = sorted(wanted - watched)
        if gone:
            self._watcher.removePaths(gone)
        if new:
            refused = self._watcher.addPaths(new)
            if refused:
                log.info(
                    "Cannot watch %d folders for changes; they are rescanned every %d s",
                    len(refused),
                    self._periodic.interval() // 1000,
                )

    # ------------------------------------------------------------ hashing

    def _enqueue(self, paths: Iterable[str]) -> None:
        paths = [path for path in paths if path not in self._queued]
        if not paths or self._stopped:
            return
        if not self._queued:
            self._round_total = self._round_done = 0
        self._queued.update(paths)
        self._round_total += len(paths)
        self._busy = True
        queue = self._hash_queue
        with queue.lock:
            for path in paths:
                queue.items[path] = self._epoch
            start_job = not queue.running
            queue.running = True
        if start_job:
            self._workers.begin()
            self._pool.start(_HashJob(self._job_signals, self._workers, self._hash_queue))

    def _abandon(self, paths: Iterable[str]) -> None:
        """Stop waiting for these paths' hashes (they vanished or came from elsewhere)."""
        dropped = []
        queue = self._hash_queue
        with queue.lock:
            for path in paths:
                if queue.items.pop(path, None) is not None:
                    dropped.append(path)
                elif queue.current == path:
                    queue.abandon_current = True
        for path in dropped:
            self._queued.discard(path)
            self._round_done += 1
        if dropped and not self._queued:
            self._end_hash_round()

    def _take_result(self, epoch: int, path: str) -> bool:
        if self._stopped or epoch != self._epoch or path not in self._queued:
            return False
        self._queued.discard(path)
        self._round_done += 1
        return True

    def _after_result(self) -> None:
        if self._queued:
            self._report_progress("")
        else:
            self._end_hash_round()
            self._maybe_finish()

    def _on_hash_started(self, epoch: int, path: str) -> None:
        if not self._stopped and epoch == self._epoch and path in self._queued:
            self._report_progress(os.path.basename(path))

    def _on_hashed(self, epoch: int, path: str, st: _Stat, digest: FileDigest) -> None:
        if not self._take_result(epoch, path):
            return
        self._failed.pop(path, None)
        self._unsettled.discard(path)
        shared = SharedFile(
            Path(path), os.path.basename(path), st.size, st.mtime_ns, digest.hash, digest.pieces
        )
        self._cache_put(path, st, shared)
        self._replace(shared)
        self._after_result()

    def _on_hash_failed(self, epoch: int, path: str, reason: str) -> None:
        if not self._take_result(epoch, path):
            return
        with contextlib.suppress(OSError):
            self._failed[path] = _Stat.of(os.lstat(path))
        log.info("Not sharing %s: %s", printable(path), reason)
        self.file_failed.emit(path, reason)
        self._after_result()

    def _on_hash_skipped(self, epoch: int, path: str) -> None:
        if self._take_result(epoch, path):
            self._after_result()

    def _on_hash_unstable(self, epoch: int, path: str) -> None:
        if not self._take_result(epoch, path):
            return
        log.info("%s keeps changing; hashing it once it is still", printable(path))
        self._unsettled.add(path)
        if not self._settle_timer.isActive():
            self._settle_timer.start()
        self._after_result()

    def _report_progress(self, name: str) -> None:
        """Emit progress at most every PROGRESS_INTERVAL_MS, always ending with the latest."""
        if not name and self._progress_due is not None:
            name = self._progress_due[2]
        self._progress_due = (self._round_done, self._round_total, name)
        if not self._progress_timer.isActive():
            self._emit_due_progress()

    def _emit_due_progress(self) -> None:
        due = self._progress_due
        if due is None or due == self._progress_sent or not self._queued:
            return
        self._progress_sent = due
        self.hashing_progress.emit(*due)
        self._progress_timer.start()

    def _end_hash_round(self) -> None:
        self._progress_timer.stop()
        self._progress_due = self._progress_sent = None
        if self._round_total:
            self.hashing_progress.emit(self._round_done, self._round_total, "")
        self._round_total = self._round_done = 0

    def _maybe_finish(self) -> None:
        if self._stopped or self._scanning or self._queued:
            return
        self._flush_added()
        if self._busy:
            self._busy = False
            self.hashing_finished.emit()

    # ------------------------------------------------------------ changes

    def _on_change_reported(self, shared: SharedFile, removed: bool) -> None:
        if self._stopped:
            return
        path = os.fspath(shared.path)
        if removed:
            self._announce_removals([shared])
        else:
            pending = self._pending.get(path)
            if pending is None or not pending.same_version(shared):
                return
            del self._pending[path]
        self._cache_delete(path)
        with self._lock:
            self._distrusted.discard(path)
        self._failed.pop(path, None)
        if os.path.lexists(path):
            self._enqueue([path])

    def _add_downloaded(self, path: os.PathLike[str] | str, digest: FileDigest) -> None:
        if self._stopped:
            return
        real = os.path.realpath(os.fspath(path))
        if not _file_allowed(real, self._roots, self._excluded):
            log.info("Not sharing download %s: it is not in a shared folder", printable(real))
            return
        try:
            st = os.lstat(real)
        except OSError as exc:
            log.info("Not sharing download %s: %s", printable(real), exc.strerror)
            return
        if not stat.S_ISREG(st.st_mode):
            return
        if st.st_size != digest.size:
            log.info("Download %s changed after it was verified; hashing it", printable(real))
            self._enqueue([real])
            return
        self._abandon([real])
        self._failed.pop(real, None)
        self._unsettled.discard(real)
        shared = SharedFile(
            Path(real),
            os.path.basename(real),
            st.st_size,
            st.st_mtime_ns,
            digest.hash,
            tuple(digest.pieces),
        )
        self._cache_put(real, _Stat.of(st), shared)
        self._replace(shared)
        self._flush_added()
        if not self._queued:
            self._maybe_finish()

    def _replace(self, shared: SharedFile) -> None:
        """Make ``shared`` the entry for its path, announcing what it replaces."""
        path = os.fspath(shared.path)
        with self._lock:
            current = self._by_path.get(path)
        if current is not None:
            if current.same_version(shared):
                return
            self._unpublish([path])
        self._pending.pop(path, None)
        self._add_pending([shared])

    def _add_pending(self, files: Sequence[SharedFile]) -> None:
        for shared in files:
            self._pending[os.fspath(shared.path)] = shared
        if len(self._pending) >= BATCH_FILES:
            self._flush_added()
        elif self._pending and not self._batch_timer.isActive():
            self._batch_timer.start()

    def _flush_added(self) -> None:
        self._batch_timer.stop()
        if self._pending and not self._stopped:
            batch = list(self._pending.values())
            self._pending.clear()
            with self._lock:
                for shared in batch:
                    path = os.fspath(shared.path)
                    self._unindex(path)
                    self._by_path[path] = shared
                    self._by_hash.setdefault(shared.hash, {})[path] = shared
            for start in range(0, len(batch), BATCH_FILES):
                self.files_added.emit(batch[start : start + BATCH_FILES])
        self._commit_cache()

    def _unindex(self, path: str) -> SharedFile | None:
        """Drop ``path`` from the lookup tables; the caller holds ``_lock``."""
        shared = self._by_path.pop(path, None)
        if shared is not None:
            holders = self._by_hash.get(shared.hash)
            if holders is not None:
                holders.pop(path, None)
                if not holders:
                    del self._by_hash[shared.hash]
        return shared

    def _unpublish(self, paths: Sequence[str]) -> None:
        if not paths:
            return
        with self._lock:
            gone = [shared for path in paths if (shared := self._unindex(path)) is not None]
        self._announce_removals(gone)

    def _announce_removals(self, gone: Sequence[SharedFile]) -> None:
        removed: list[str] = []
        still_shared: list[SharedFile] = []
        with self._lock:
            for file_hash in dict.fromkeys(shared.hash for shared in gone):
                remaining = list(self._by_hash.get(file_hash, {}).values())
                lost_names = {s.name for s in gone if s.hash == file_hash} - {
                    s.name for s in remaining
                }
                if not remaining or lost_names:
                    removed.append(file_hash)
                    still_shared.extend(remaining)
        if removed:
            self.files_removed.emit(removed)
        if still_shared:
            self.files_added.emit(still_shared)

    # ------------------------------------------------------------ hash cache

    def _open_cache(self) -> None:
        try:
            self._db = self._connect_cache(self._cache_path)
            return
        except (sqlite3.Error, OSError) as exc:
            log.warning(
                "The hash cache %s is unusable (%s); starting a new one", self._cache_path, exc
            )
        for suffix in ("", *SQLITE_SIDE_FILES):
            with contextlib.suppress(OSError):
                os.unlink(self._cache_path + suffix)
        try:
            self._db = self._connect_cache(self._cache_path)
        except (sqlite3.Error, OSError) as exc:
            log.error(
                "Cannot keep a hash cache at %s (%s); every start hashes again",
                self._cache_path,
                exc,
            )
            self._db = self._connect_cache(":memory:")

    def _connect_cache(self, location: str) -> sqlite3.Connection:
        if location != ":memory:":
            os.makedirs(os.path.dirname(location), exist_ok=True)
        db = sqlite3.connect(location)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            if db.execute("PRAGMA user_version").fetchone()[0] != CACHE_VERSION:
                db.execute("DROP TABLE IF EXISTS files")
                db.execute(
                    "CREATE TABLE files (path BLOB PRIMARY KEY, size INTEGER NOT NULL,"
                    " mtime_ns INTEGER NOT NULL, inode TEXT NOT NULL, hash TEXT NOT NULL,"
                    " pieces BLOB NOT NULL) WITHOUT ROWID"
                )
                db.execute(f"PRAGMA user_version={CACHE_VERSION}")
                db.commit()
            rows = db.execute("SELECT path, size, mtime_ns, inode, hash, pieces FROM files")
            bad: list[bytes] = []
            for raw_path, size, mtime_ns, inode, file_hash, blob in rows:
                row = _cache_row(size, mtime_ns, inode, file_hash, blob)
                if row is None or not isinstance(raw_path, bytes):
                    bad.append(raw_path)
                    continue
                self._remember(os.fsdecode(raw_path), row)
            if bad:
                log.info("Dropping %d damaged rows from the hash cache", len(bad))
                db.executemany("DELETE FROM files WHERE path = ?", [(p,) for p in bad])
                db.commit()
        except BaseException:
            db.close()
            self._cache.clear()
            self._cache_by_inode.clear()
            raise
        return db

    def _remember(self, path: str, row: _CacheRow) -> None:
        old = self._cache.get(path)
        if old is not None:
            self._cache_by_inode.pop((old.inode, old.size, old.mtime_ns), None)
        self._cache[path] = row
        self._cache_by_inode[(row.inode, row.size, row.mtime_ns)] = path

    def _cache_put(self, path: str, st: _Stat, shared: SharedFile) -> None:
        row = _CacheRow(shared.size, shared.mtime_ns, st.inode, shared.hash, shared.pieces)
        if self._cache.get(path) == row:
            return
        self._remember(path, row)
        if self._db is None:
            return
        try:
            self._db.execute(
                "INSERT OR REPLACE INTO files VALUES (?, ?, ?, ?, ?, ?)",
                (
                    os.fsencode(path),
                    row.size,
                    row.mtime_ns,
                    row.inode,
                    row.hash,
                    b"".join(row.pieces),
                ),
            )
            self._db_dirty = True
        except sqlite3.Error as exc:
            log.warning("Cannot write to the hash cache: %s", exc)

    def _cache_delete(self, path: str) -> None:
        row = self._cache.pop(path, None)
        if row is None:
            return
        if self._cache_by_inode.get((row.inode, row.size, row.mtime_ns)) == path:
            del self._cache_by_inode[(row.inode, row.size, row.mtime_ns)]
        if self._db is None:
            return
        try:
            self._db.execute("DELETE FROM files WHERE path = ?", (os.fsencode(path),))
            self._db_dirty = True
        except sqlite3.Error as exc:
            log.warning("Cannot write to the hash cache: %s", exc)

    def _commit_cache(self) -> None:
        if self._db is not None and self._db_dirty:
            try:
                self._db.commit()
                self._db_dirty = False
            except sqlite3.Error as exc:
                log.warning("Cannot write to the hash cache: %s", exc)


def _cache_row(size, mtime_ns, inode, file_hash, blob) -> _CacheRow | None:
    """A cache row checked for sense; None when it is damaged."""
    if not (
        isinstance(size, int)
        and isinstance(mtime_ns, int)
        and isinstance(inode, str)
        and isinstance(file_hash, str)
        and isinstance(blob, bytes)
        and size >= 0
        and len(blob) == piece_count(size) * DIGEST_SIZE
    ):
        return None
    pieces = tuple(blob[i : i + DIGEST_SIZE] for i in range(0, len(blob), DIGEST_SIZE))
    if file_hash_from_digests(pieces) != file_hash:
        return None
    return _CacheRow(size, mtime_ns, inode, file_hash, pieces)
