"""``FilePump``: one download's engine in its own QThread, reporting through signals.

The GUI thread never sees file bytes. A pump's QThread is never destroyed while it runs:
the pump lets go of it only after ``wait()`` returned true, and a pump that did not stop
within the quit deadline is kept for the rest of the process (see ``stragglers()``).
"""

from __future__ import annotations

import logging
import threading

from PySide6.QtCore import QObject, Qt, QThread, Signal, Slot

from app.download.engine import DownloadFailed, DownloadSpec, Phase, PieceDownloader
from app.download.problems import Problem
from app.download.source import DownloadStopped, PushRoute, Timeouts
from app.download.watch import PieceWatch
from app.network import protocol as p
from app.network.rate_limit import RateLimiter

log = logging.getLogger("napster.download")

#: Pumps whose thread had not ended by the quit deadline: never destroyed while running.
_STRAGGLERS: list[FilePump] = []


def stragglers() -> int:
    """How many pumps are still running after their quit deadline."""
    return sum(1 for pump in _STRAGGLERS if pump.is_running())


class _PumpWorker(QObject):
    """Runs a PieceDownloader inside the pump's QThread."""

    progress = Signal("qint64", "qint64", float, "qint64")
    phase_changed = Signal(str, str)
    bad_source = Signal(str, str)
    finished = Signal(str, object)  # final path, FileDigest
    failed = Signal(object)  # DownloadFailed
    stopped = Signal()
    details = Signal(bytes, list, int)

    def __init__(self, downloader: PieceDownloader) -> None:
        super().__init__()
        self.downloader = downloader
        downloader._on_progress = self.progress.emit
        downloader._on_details = self.details.emit
        downloader._on_phase = lambda phase, detail: self.phase_changed.emit(phase.value, detail)
        downloader._on_bad_source = self.bad_source.emit

    @Slot()
    def run(self) -> None:
        try:
            final = self.downloader.run()
        except DownloadStopped:
            self.stopped.emit()
        except DownloadFailed as exc:
            self.failed.emit(exc)
        except Exception as exc:  # a bug must not kill the thread silently
            log.exception("Download of %s crashed", self.downloader.spec.name)
            self.failed.emit(DownloadFailed(Problem.UNEXPECTED, error=str(exc)))
        else:
            self.finished.emit(str(final), self.downloader.digest)
        finally:
            # The engine's callbacks are this object's signals: drop them, so no reference
            # cycle is left for the garbage collector to free (on whatever thread it runs,
            # where destroying a QObject crashes).
            self.downloader.detach_callbacks()


class FilePump(QObject):
    """One download in its own QThread: start(), stop(), add_sources(), and signals."""

    #: done bytes, total, bytes per second, bytes received from the network in this run
    progress = Signal("qint64", "qint64", float, "qint64")
    phase_changed = Signal(object, str)  # Phase, detail (e.g. the source)
    bad_source = Signal(str, str)  # source, reason
    finished = Signal(str, object)  # final path, the verified FileDigest
    failed = Signal(object)  # DownloadFailed
    stopped = Signal()  # paused, cancelled or quitting; .part kept
    #: piece states (0 missing, 1 in flight, 2 done), [SourceStats], sources known; ~2 a second
    details = Signal(bytes, list, int)
    done = Signal()  # after any of finished/failed/stopped, once the thread has ended

    def __init__(
        self,
        spec: DownloadSpec,
        timeouts: Timeouts | None = None,
        limiter: RateLimiter | None = None,
        parent: QObject | None = None,
        max_sources: int = 8,
        watch: PieceWatch | None = None,
        push: PushRoute | None = None,
    ) -> None:
        super().__init__(parent)
        self.spec = spec
        self._stop = threading.Event()
        self.downloader = PieceDownloader(
            spec,
            self._stop,
            timeouts,
            limiter=limiter,
            max_sources=max_sources,
            watch=watch,
            push=push,
        )
        self._thread = QThread()
        self._thread.setObjectName(f"pump {spec.name}")
        self._worker = _PumpWorker(self.downloader)
        self._worker.moveToThread(self._thread)
        self._thread.started.connect(self._worker.run)
        self._worker.progress.connect(self.progress)
        # Bound methods and signals of this object, not lambdas: the engine's source threads
        # emit too, and a lambda would queue to the pump's thread, busy running the engine.
        self._worker.phase_changed.connect(self._on_worker_phase)
        self._worker.bad_source.connect(self.bad_source)
        self._worker.finished.connect(self.finished)
        self._worker.failed.connect(self.failed)
        self._worker.stopped.connect(self.stopped)
        self._worker.details.connect(self.details)
        for end in (self._worker.finished, self._worker.failed, self._worker.stopped):
            # Direct: quit from the worker thread, so wait() on the GUI thread cannot deadlock.
            end.connect(self._thread.quit, Qt.ConnectionType.DirectConnection)
        self._thread.finished.connect(self._on_thread_finished)
        self._done_sent = False

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Ask the download to stop soon (pause, cancel or quit); it keeps its .part."""
        self._stop.set()

    def add_sources(self, sources: list[p.PeerAddress]) -> None:
        """More peers holding the file; safe to call while the engine runs."""
        self.downloader.sources.add(sources)

    @property
    def stop_requested(self) -> bool:
        """Paused or cancelled: what the pump reports from now on is stale."""
        return self._stop.is_set()

    def is_running(self) -> bool:
        return self._thread.isRunning()

    def wait(self, timeout_ms: int = 10000) -> bool:
        """Stop and wait for the thread; False if it is still running at the deadline.

        A pump still running is kept alive for the rest of the process, so its QThread
        is never destroyed while it runs.
        """
        self._stop.set()
        if self._thread.wait(max(0, timeout_ms)):
            return True
        if self not in _STRAGGLERS:
            log.warning("Download of %s did not stop in time", self.spec.name)
            _STRAGGLERS.append(self)
        return False

    @Slot(str, str)
    def _on_worker_phase(self, phase: str, detail: str) -> None:
        self.phase_changed.emit(Phase(phase), detail)

    def _on_thread_finished(self) -> None:
        # QThread.finished is emitted from the thread just before it ends: wait until it has,
        # so whoever drops the pump on `done` never destroys a running QThread.
        self._thread.wait()
        if not self._done_sent:
            self._done_sent = True
            self.done.emit()
