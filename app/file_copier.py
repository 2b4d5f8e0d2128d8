"""FileCopier: copies files dropped on the window into the shared folder, on a worker thread.

A copy never overwrites anything and is never seen half-done: it is written under a hidden
temporary name (which the library never shares), flushed to disk, and only then given its
final name, the first free one (``video.mp4``, ``video (1).mp4``, ...). A dropped folder is
copied with its files below a free folder name. Progress is reported at most ten times a
second; the GUI thread never touches the bytes.
"""

from __future__ import annotations

import contextlib
import errno
import itertools
import logging
import os
import shutil
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

from PySide6.QtCore import QObject, QThread, Signal, Slot

from app.filenames import TMP_SUFFIX, free_name, is_inside, place_without_overwriting

log = logging.getLogger("napster.copier")

CHUNK = 8 * 1024 * 1024
PROGRESS_INTERVAL = 0.1
#: Flush the copy to disk this often: a pile of unwritten data makes the kernel stall every
#: other writer (the GUI thread's small writes included) while it catches up.
FLUSH_EVERY = 64 * 1024 * 1024
_flush_data = getattr(os, "fdatasync", os.fsync)


class CopyCancelled(Exception):
    """The job was cancelled while it ran."""


class CopyFailed(Exception):
    """The job cannot finish; the message is meant for the user."""


@dataclass
class CopyJob:
    """One dropped file or folder and where it goes."""

    id: int
    source: Path
    folder: Path
    cancelled: threading.Event = field(default_factory=threading.Event)


@dataclass
class _Progress:
    total: int
    done: int = 0


def _reason(exc: OSError) -> str:
    if exc.errno == errno.ENOSPC:
        return "the disk is full"
    if isinstance(exc, PermissionError):
        return "permission denied"
    if isinstance(exc, FileNotFoundError):
        return "the file is gone"
    return exc.strerror or str(exc)


class _CopyWorker(QObject):
    """Runs in the copier's thread: takes jobs off the queue one by one."""

    started = Signal(int, str, "qint64")  # job id, display name, total bytes
    progress = Signal(int, "qint64", "qint64")
    finished = Signal(int, list)  # job id, [(final real path, size), ...]
    failed = Signal(int, str)
    cancelled = Signal(int)

    def __init__(self, copier: FileCopier) -> None:
        super().__init__()
        self._queue = copier._queue
        self._lock = copier._lock
        self._stopping = copier._stopping

    @Slot()
    def process(self) -> None:
        """Copy every queued job, then return to the thread's event loop."""
        while True:
            with self._lock:
                job = self._queue.popleft() if self._queue else None
            if job is None:
                return
            if self._stopping.is_set() or job.cancelled.is_set():
                self.cancelled.emit(job.id)
                continue
            try:
                paths = self._copy_job(job)
            except CopyCancelled:
                self.cancelled.emit(job.id)
            except CopyFailed as exc:
                self.failed.emit(job.id, str(exc))
            except OSError as exc:
                self.failed.emit(job.id, _reason(exc))
            except Exception as exc:  # a bug must not kill the worker
                log.exception("Copying %s crashed", job.source)
                self.failed.emit(job.id, f"unexpected error ({type(exc).__name__})")
            else:
                self.finished.emit(job.id, paths)

    def _copy_job(self, job: CopyJob) -> list[tuple[str, int]]:
        source = Path(os.path.abspath(job.source))
        folder = Path(os.path.realpath(job.folder))
        if not folder.is_dir():
            raise CopyFailed(f"the shared folder {folder} does not exist")
        real = Path(os.path.realpath(source))
        if real == folder or is_inside(folder, real):
            # Already shared: nothing to copy.
            size = real.stat().st_size if real.is_file() else 0
            self.started.emit(job.id, source.name, size)
            return [(str(real), size)] if real.is_file() else []
        if is_inside(real, folder):
            raise CopyFailed("a folder cannot be copied into itself")
        if real.is_dir():
            files = self._files_below(real)
            total = sum(size for _, size in files)
            self._check_space(folder, total)
            self.started.emit(job.id, source.name, total)
            top = folder / free_name(folder, source.name, with_part=False)
            return self._copy_tree(job, real, files, top, total)
        if not real.is_file():
            raise CopyFailed("only files and folders can be shared")
        total = real.stat().st_size
        self._check_space(folder, total)
        self.started.emit(job.id, source.name, total)
        final = self._copy_file(job, real, folder, source.name, _Progress(total))
        return [(str(final), total)]

    @staticmethod
    def _files_below(root: Path) -> list[tuple[Path, int]]:
        files = []
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            for name in sorted(filenames):
                if name.startswith("."):
                    continue
                path = Path(dirpath) / name
                with contextlib.suppress(OSError):
                    if path.is_file():
                        files.append((path, path.stat().st_size))
        return files

    @staticmethod
    def _check_space(folder: Path, needed: int) -> None:
        free = shutil.disk_usage(folder).free
        if free < needed:
            raise CopyFailed("there is not enough free disk space in the shared folder")

    def _copy_tree(
        self, job: CopyJob, root: Path, files: list[tuple[Path, int]], top: Path, total: int
    ) -> list[tuple[str, int]]:
        progress = _Progress(total)
        copied = []
        for path, size in files:
            target_folder = top / path.parent.relative_to(root)
            target_folder.mkdir(parents=True, exist_ok=True)
            final = self._copy_file(job, path, target_folder, path.name, progress)
            copied.append((str(final), size))
        if not files:
            top.mkdir(parents=True, exist_ok=True)
        return copied

    def _copy_file(
        self, job: CopyJob, source: Path, folder: Path, name: str, progress: _Progress
    ) -> Path:
        tmp = folder / f".{name[:200]}.{job.id}{TMP_SUFFIX}"
        last_report = 0.0
        try:
            with open(source, "rb") as src, open(tmp, "xb") as dst:
                use_sendfile = sys.platform.startswith("linux")
                buffer = bytearray(0 if use_sendfile else CHUNK)
                view = memoryview(buffer)
                offset = flushed = 0
                while True:
                    if job.cancelled.is_set() or self._stopping.is_set():
                        raise CopyCancelled()
                    count = 0
                    if use_sendfile:
                        try:
                            count = os.sendfile(dst.fileno(), src.fileno(), offset, CHUNK)
                        except OSError as exc:
                            if exc.errno not in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP):
                                raise
                            use_sendfile = False
                            buffer = bytearray(CHUNK)
                            view = memoryview(buffer)
                            src.seek(offset)
                            dst.seek(offset)
                            continue
                    else:
                        count = src.readinto(view)
                        if count:
                            dst.write(view[:count])
                    if not count:
                        break
                    offset += count
                    progress.done += count
                    if offset - flushed >= FLUSH_EVERY:
                        _flush_data(dst.fileno())
                        flushed = offset
                    now = time.monotonic()
                    if now - last_report >= PROGRESS_INTERVAL:
                        last_report = now
                        self.progress.emit(job.id, progress.done, progress.total)
                dst.flush()
                os.fsync(dst.fileno())
            final = place_without_overwriting(tmp, folder, name)
            if final is None:
                raise FileExistsError(errno.EEXIST, "no free name for the copy")
        except BaseException:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise
        self.progress.emit(job.id, progress.done, progress.total)
        log.info("Copied %s to %s", source, final)
        return final


class FileCopier(QObject):
    """Copies files into a folder on its own QThread; ``copy()`` returns at once.

    Signals carry the job id that ``copy()`` returned. ``stop()`` cancels what is left and
    waits for the thread (a cancelled copy leaves nothing behind).
    """

    #: job id, name, total bytes (the copy has started)
    job_started = Signal(int, str, "qint64")
    #: job id, bytes copied, total bytes
    job_progress = Signal(int, "qint64", "qint64")
    #: job id, [(final real path, size), ...] of the copied files
    job_finished = Signal(int, list)
    #: job id, reason for the user
    job_failed = Signal(int, str)
    job_cancelled = Signal(int)

    _kick = Signal()

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._queue: deque[CopyJob] = deque()
        self._jobs: dict[int, CopyJob] = {}
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._ids = itertools.count(1)
        self._thread = QThread()
        self._thread.setObjectName("file copier")
        self._worker = _CopyWorker(self)
        self._worker.moveToThread(self._thread)
        self._kick.connect(self._worker.process)
        self._worker.started.connect(self.job_started)
        self._worker.progress.connect(self.job_progress)
        self._worker.finished.connect(self._on_finished)
        self._worker.failed.connect(self._on_failed)
        self._worker.cancelled.connect(self._on_cancelled)

    def copy(self, sources: list[Path], folder: Path) -> list[int]:
        """Queue each file or folder for copying into ``folder``; return their job ids."""
        if self._stopping.is_set():
            return []
        ids = []
        with self._lock:
            for source in sources:
                job = CopyJob(next(self._ids), Path(source), Path(folder))
                self._jobs[job.id] = job
                self._queue.append(job)
                ids.append(job.id)
        if not self._thread.isRunning():
            self._thread.start()
        self._kick.emit()
        return ids

    def cancel(self, job_id: int) -> None:
        job = self._jobs.get(job_id)
        if job is not None:
            job.cancelled.set()

    def pending(self) -> int:
        """Jobs queued or running."""
        return len(self._jobs)

    def stop(self, timeout_ms: int = 10000) -> None:
        """Cancel every job and wait for the worker thread to end."""
        self._stopping.set()
        for job in list(self._jobs.values()):
            job.cancelled.set()
        if self._thread.isRunning():
            self._thread.quit()
            self._thread.wait(timeout_ms)

    def _on_finished(self, job_id: int, paths: list) -> None:
        self._jobs.pop(job_id, None)
        self.job_finished.emit(job_id, paths)

    def _on_failed(self, job_id: int, reason: str) -> None:
        self._jobs.pop(job_id, None)
        self.job_failed.emit(job_id, reason)

    def _on_cancelled(self, job_id: int) -> None:
        self._jobs.pop(job_id, None)
        self.job_cancelled.emit(job_id)
