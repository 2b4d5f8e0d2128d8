"""The peer's shared library: the shared folders' files, hashed in the background, cached, watched.

Threads: a ``Library`` lives on one thread (the GUI thread in the app), which owns its timers,
its folder watcher and its hash cache. Walking the folders and hashing files run as
``QRunnable`` jobs in a thread pool (``app.sharing.jobs``); they report back through queued
signals and the library thread compares the results with what it knows. ``files``, ``infos``,
``lookup``, ``open_shared``, ``is_unchanged``, ``mark_changed`` and ``add_downloaded`` may be
called from any thread. Call ``stop()`` (on the library thread) before the library is deleted,
and delete it there.

What is shared is decided by ``SharePolicy`` and every file is reached through
``app.sharing.confined``: nothing hashed, announced or served is reached through a link.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import stat
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import BinaryIO

from PySide6.QtCore import QFileSystemWatcher, QObject, Qt, QThread, QThreadPool, QTimer, Signal

from app.network.pieces import FileDigest
from app.network.protocol import FileInfo, name_problem, printable
from app.sharing.catalog import PublishedCatalog, SharedFile
from app.sharing.hash_cache import CacheRow, HashCache
from app.sharing.jobs import HashJob, HashQueue, JobSignals, ScanJob, WorkerCount
from app.sharing.policy import (
    FileStat,
    ScanResult,
    SharePolicy,
    excluded_set,
    real_paths,
    under_any,
)

log = logging.getLogger("napster.library")

PERIODIC_RESCAN_MS = 60_000
#: Most files in one ``files_added`` emission, and how long a smaller batch may wait.
BATCH_FILES = 1000
BATCH_INTERVAL_MS = 500
PROGRESS_INTERVAL_MS = 100
#: A file seen changing while it was hashed is hashed again once it has been still this long.
SETTLE_MS = 2000


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
        is_private: Callable[[Path], bool] | None = None,
        rescan_interval_ms: int = PERIODIC_RESCAN_MS,
    ) -> None:
        """``excluded_files`` are never shared; a folder among them, nothing inside it.

        ``is_private(path)`` is asked about every folder and file below a shared folder (any
        thread); True keeps it and everything inside it private (the transfer manager's own).
        """
        super().__init__(parent)
        if pool is None:
            pool = QThreadPool(self)
            pool.setMaxThreadCount(2)
        self._pool = pool
        cache_location = os.path.realpath(os.path.expanduser(os.fspath(cache_path)))
        self._policy = SharePolicy(
            real_paths(folders),
            excluded_set([cache_location, *excluded_files]),
            is_private,
        )
        self._cache = HashCache(cache_location)

        # Read and written from any thread.
        self._published = PublishedCatalog()

        # The library thread's own state.
        self._pending: dict[str, SharedFile] = {}
        self._failed: dict[str, FileStat] = {}
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
        self._hash_queue = HashQueue(self._policy)
        self._workers = WorkerCount()

        self._debounce = self._timer(debounce_ms, self._start_scan)
        self._periodic = self._timer(rescan_interval_ms, self.rescan, single_shot=False)
        self._batch_timer = self._timer(BATCH_INTERVAL_MS, self._flush_added)
        self._progress_timer = self._timer(PROGRESS_INTERVAL_MS, self._emit_due_progress)
        self._settle_timer = self._timer(SETTLE_MS, self.rescan)
        self._watcher = QFileSystemWatcher(self)
        self._watcher.directoryChanged.connect(self.rescan)

        queued = Qt.ConnectionType.QueuedConnection
        self._job_signals = JobSignals(self)
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
        return tuple(Path(root) for root in self._policy.roots)

    def start(self) -> None:
        """Load the hash cache, scan, hash what is new in the background and start watching."""
        if self._started or self._stopped:
            return
        self._started = True
        self._cache.open()
        self._periodic.start()
        self._start_scan()

    def set_folders(self, folders: Sequence[os.PathLike[str] | str]) -> None:
        """Share these folders instead; files outside them are removed after the rescan."""
        roots = real_paths(folders)
        if roots == self._policy.roots:
            self.rescan()
            return
        self._policy = dataclasses.replace(self._policy, roots=roots)
        if not self._started or self._stopped:
            return
        self._epoch += 1
        with self._hash_queue.lock:
            self._hash_queue.epoch = self._epoch
            self._hash_queue.items.clear()
            self._hash_queue.policy = self._policy
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
        return self._published.files()

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
        return self._published.lookup(hash)

    def open_shared(self, shared: SharedFile) -> BinaryIO:
        """The shared file opened for reading, reached beneath its shared folder (any thread).

        Raises OSError when it cannot be reached that way (a link or a non-regular file on
        the way, gone, unreadable). The caller compares ``os.fstat`` with ``shared``.
        """
        fd = self._policy.open(os.fspath(shared.path))
        return os.fdopen(fd, "rb", buffering=0)

    def is_unchanged(self, shared: SharedFile) -> bool:
        """True when the file reached beneath its shared folder is still the one hashed."""
        try:
            with self.open_shared(shared) as file:
                st = os.fstat(file.fileno())
        except OSError:
            return False
        return (st.st_size, st.st_mtime_ns) == (shared.size, shared.mtime_ns)

    def mark_changed(self, shared: SharedFile) -> None:
        """Stop serving ``shared`` at once and hash its path again (any thread)."""
        self._change_reported.emit(shared, self._published.distrust(shared))

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
        self._cache.close()

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
            ScanJob(
                self._job_signals,
                self._workers,
                self._policy,
                self._scan_id,
                self._scan_cancel,
            )
        )

    def _on_scanned(self, scan_id: int, result: ScanResult) -> None:
        if self._stopped or scan_id != self._scan_id or not self._scanning:
            return
        self._scanning = False
        found = result.files
        published, distrusted = self._published.snapshot()

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
            known = None if path in distrusted else self._cache.known(path, st, found)
            if known is None:
                to_hash.append(path)
                continue
            shared = SharedFile(
                Path(path), os.path.basename(path), st.size, st.mtime_ns, known.hash, known.pieces
            )
            self._cache_put(path, st, shared)
            ready.append(shared)

        ok_roots = [root for root in self._policy.roots if root not in result.failed_roots]
        for path in [p for p in self._cache.paths() if p not in found and under_any(p, ok_roots)]:
            self._cache.delete(path)
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
    def _still_same(st: FileStat | None, shared: SharedFile) -> bool:
        return st is not None and (st.size, st.mtime_ns) == (shared.size, shared.mtime_ns)

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
            self._pool.start(HashJob(self._job_signals, self._workers, self._hash_queue))

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

    def _on_hashed(self, epoch: int, path: str, st: FileStat, digest: FileDigest) -> None:
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
            self._failed[path] = FileStat.of(self._policy.lstat(path))
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
        self._cache.delete(path)
        self._published.trust(path)
        self._failed.pop(path, None)
        if os.path.lexists(path):
            self._enqueue([path])

    def _add_downloaded(self, path: os.PathLike[str] | str, digest: FileDigest) -> None:
        if self._stopped:
            return
        # The download folder's own path may hold links (trusted like a shared folder); the
        # file's name is taken as it is, and reached beneath the folder.
        path = os.fspath(path)
        real = os.path.join(os.path.realpath(os.path.dirname(path)), os.path.basename(path))
        if self._policy.locate(real) is None:
            log.info("Not sharing download %s: it is not in a shared folder", printable(real))
            return
        try:
            st = self._policy.lstat(real)
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
        self._cache_put(real, FileStat.of(st), shared)
        self._replace(shared)
        self._flush_added()
        if not self._queued:
            self._maybe_finish()

    def _replace(self, shared: SharedFile) -> None:
        """Make ``shared`` the entry for its path, announcing what it replaces."""
        path = os.fspath(shared.path)
        current = self._published.get(path)
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
            self._published.publish(batch)
            for start in range(0, len(batch), BATCH_FILES):
                self.files_added.emit(batch[start : start + BATCH_FILES])
        self._cache.commit()

    def _unpublish(self, paths: Sequence[str]) -> None:
        if not paths:
            return
        self._announce_removals(self._published.withdraw(paths))

    def _announce_removals(self, gone: Sequence[SharedFile]) -> None:
        removed, still_shared = self._published.removals(gone)
        if removed:
            self.files_removed.emit(removed)
        if still_shared:
            self.files_added.emit(still_shared)

    # ------------------------------------------------------------ hash cache

    def _cache_put(self, path: str, st: FileStat, shared: SharedFile) -> None:
        self._cache.put(
            path, CacheRow(shared.size, shared.mtime_ns, st.inode, shared.hash, shared.pieces)
        )
