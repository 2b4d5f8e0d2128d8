"""``PieceDownloader``: one file, piece by piece, verified, then finalized (blocking, no Qt).

Unfinished data lives in the download folder's private incomplete folder (``layout``); only
a file whose every piece verified is moved, under a free name, into the download folder.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import logging
import os
import shutil
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

from app.download import layout
from app.download.part_state import PartState
from app.download.problems import Problem, describe, folder_problem
from app.download.source import (
    NO_RELAY_REASON,
    DownloadStopped,
    PushRoute,
    SourceConnection,
    SourceFailed,
    Timeouts,
)
from app.download.swarm import Swarm
from app.download.watch import PieceWatch
from app.filenames import place_without_overwriting
from app.network import pieces as pc
from app.network import protocol as p
from app.network.rate_limit import RateLimiter

log = logging.getLogger("napster.download")

PROGRESS_INTERVAL = 0.1
#: Speed and time left are measured over this many seconds (what a person expects to see).
SPEED_WINDOW = 30.0
STATE_SAVE_INTERVAL = 1.0


class Phase(str, Enum):
    """What the engine is doing now."""

    CONNECTING = "connecting"
    VERIFYING = "verifying"
    DOWNLOADING = "downloading"
    FINISHING = "finishing"


class DownloadFailed(Exception):
    """A download cannot go on now; ``retryable`` says whether trying later may help."""

    def __init__(
        self,
        problem: Problem,
        retryable: bool = True,
        retry_after: float | None = None,
        **params: Any,
    ) -> None:
        self.problem = problem
        self.params = params
        self.reason = describe(problem, params)
        super().__init__(self.reason)
        self.retryable = retryable
        self.retry_after = retry_after


@dataclass
class DownloadSpec:
    """Everything needed to download (or resume) one file."""

    hash: str
    size: int
    name: str  # safe local name for the finished file
    folder: Path  # the chosen download folder
    sources: list[p.PeerAddress] = field(default_factory=list)
    bad_sources: set[str] = field(default_factory=set)
    remote_name: str = ""

    @property
    def part_path(self) -> Path:
        return layout.part_path(self.folder, self.hash, self.size)

    @property
    def state_path(self) -> Path:
        return layout.state_path_for(self.part_path)


class SourcePool:
    """The sources of one download; the queue adds to it from another thread."""

    def __init__(self, sources: list[p.PeerAddress], bad: set[str]) -> None:
        self._lock = threading.Lock()
        self._sources = list(dict.fromkeys(sources))
        self._bad = set(bad)

    def add(self, sources: list[p.PeerAddress]) -> None:
        """Add new sources; a known one takes the certificate fingerprint given now."""
        with self._lock:
            for source in sources:
                if source not in self._sources:
                    self._sources.append(source)
                elif source.fingerprint is not None:
                    self._sources[self._sources.index(source)] = source

    def mark_bad(self, source: p.PeerAddress) -> None:
        with self._lock:
            self._bad.add(str(source))

    def bad(self) -> set[str]:
        with self._lock:
            return set(self._bad)

    def known(self) -> int:
        with self._lock:
            return len(self._sources)

    def usable(self) -> list[p.PeerAddress]:
        with self._lock:
            return [s for s in self._sources if str(s) not in self._bad]


ProgressCallback = Callable[[int, int, float, int], None]


class PieceDownloader:
    """Downloads one file piece by piece from its sources (blocking)."""

    def __init__(
        self,
        spec: DownloadSpec,
        stop: threading.Event | None = None,
        timeouts: Timeouts | None = None,
        on_progress: ProgressCallback | None = None,
        on_phase: Callable[[Phase, str], None] | None = None,
        on_bad_source: Callable[[str, str], None] | None = None,
        source_factory: Callable[..., SourceConnection] = SourceConnection,
        limiter: RateLimiter | None = None,
        max_sources: int = 8,
        on_details: Callable[[bytes, list, int], None] | None = None,
        watch: PieceWatch | None = None,
        push: PushRoute | None = None,
    ) -> None:
        """``push``: holders may also be reached by push (None: directly only)."""
        self.spec = spec
        #: Streams reading this file while it downloads: told of each verified piece, and
        #: their positions decide which pieces go first.
        self.watch = watch
        self.max_sources = max_sources
        self._on_details = on_details or (lambda states, sources, known: None)
        # Source workers report and save from their own threads.
        self._report_lock = threading.Lock()
        self.stop = stop or threading.Event()
        self.timeouts = timeouts or Timeouts()
        self.sources = SourcePool(spec.sources, spec.bad_sources)
        self.limiter = limiter or RateLimiter()
        self._on_progress = on_progress or (lambda done, total, speed, received: None)
        self._on_phase = on_phase or (lambda phase, detail: None)
        self._on_bad_source = on_bad_source or (lambda source, reason: None)
        self.push = push
        if push is not None and source_factory is SourceConnection:
            source_factory = functools.partial(SourceConnection, push=push)
        self._connect = source_factory
        self.state: PartState | None = None
        self.digest: pc.FileDigest | None = None
        self.done_bytes = 0
        self._last_report = 0.0
        self._last_report_bytes = 0
        self._samples: deque[tuple[float, int]] = deque()
        self._speed = 0.0
        self._last_save = 0.0
        #: Bytes that came over the network in this run (resume tests and session totals).
        self.received_bytes = 0

    # ------------------------------------------------------------- public

    def detach_callbacks(self) -> None:
        """Forget every callback (the pump's signals) once the run is over."""
        self._on_progress = lambda done, total, speed, received: None
        self._on_phase = lambda phase, detail: None
        self._on_bad_source = lambda source, reason: None
        self._on_details = lambda states, sources, known: None

    def run(self) -> Path:
        """Download, verify and finalize; return the final path.

        Raises DownloadFailed, or DownloadStopped when paused, cancelled or quitting.
        """
        spec = self.spec
        self._prepare_folder()
        self._on_phase(Phase.VERIFYING, "")
        self.state = PartState.load(spec.state_path, spec.hash, spec.size)
        rebuild = self.state is None
        if self.state is None:
            self.state = PartState(
                spec.hash, spec.size, self._fetch_piece_list(), spec.remote_name or spec.name
            )
        self._reverify(rebuild)
        if self.watch is not None:
            self.watch.set_verified(self.state.verified)
        self.done_bytes = self.state.verified_bytes()
        self._report(force=True)
        if self.state.missing():
            self._check_free_space()
            self._download_missing()
        return self._finalize()

    # ------------------------------------------------------------- steps

    def _prepare_folder(self) -> None:
        """The download folder exists and takes writes, or the download fails at once."""
        folder = self.spec.folder
        if not folder.is_dir():
            raise DownloadFailed(Problem.FOLDER_MISSING, retryable=False, folder=str(folder))
        incomplete = layout.incomplete_folder(folder)
        try:
            incomplete.mkdir(exist_ok=True)
            if incomplete.is_symlink() or not incomplete.is_dir():
                raise OSError(errno.ENOTDIR, f"{incomplete} is not a folder")
            flags = os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0)
            os.close(os.open(self.spec.part_path, flags | getattr(os, "O_BINARY", 0), 0o644))
        except OSError as exc:
            raise DownloadFailed(
                folder_problem(exc),
                retryable=False,
                folder=str(folder),
                error=exc.strerror or str(exc),
            ) from None

    def _mark_bad(self, source: p.PeerAddress, reason: str) -> None:
        self.sources.mark_bad(source)
        log.warning("Not trusting %s again for %s: %s", source, self.spec.hash[:12], reason)
        self._on_bad_source(str(source), reason)

    def _fetch_piece_list(self) -> tuple[bytes, ...]:
        failures = []
        for source in self.sources.usable():
            self._on_phase(Phase.CONNECTING, str(source))
            conn: SourceConnection | None = None
            try:
                conn = self._connect(source, self.timeouts, self.stop, self.limiter)
                return conn.fetch_pieces(self.spec.hash, self.spec.size)
            except SourceFailed as exc:
                failures.append(f"{source}: {exc.reason}")
                if exc.corrupt:
                    self._mark_bad(source, exc.reason)
            finally:
                if conn is not None:
                    conn.close()
        raise self._all_failed(failures)

    def _all_failed(self, failures: list[str]) -> DownloadFailed:
        if not self.sources.known():
            return DownloadFailed(Problem.NO_SOURCES)
        if not self.sources.usable():
            return DownloadFailed(Problem.SOURCES_CORRUPT)
        detail = "; ".join(failures[-3:]) or "no source could be reached"
        if failures and all(NO_RELAY_REASON in failure for failure in failures):
            return DownloadFailed(Problem.NO_RELAY, detail=detail)
        return DownloadFailed(Problem.SOURCES_FAILED, detail=detail)

    def _reverify(self, rebuild: bool) -> None:
        """Trust nothing on disk until it verifies again (after a crash or a garbled state).

        Checked: every piece the state marks, and every other piece that holds data on disk
        (verified and written after the state was last saved, then a crash), found by
        skipping holes with SEEK_DATA; so nothing already downloaded is fetched again,
        whatever order the pieces came in.
        """
        state = self.state
        assert state is not None
        part = self.spec.part_path
        marked = set() if rebuild else {i for i in range(state.count) if state.verified[i]}
        state.verified = bytearray(state.count)
        try:
            fd = os.open(part, os.O_RDONLY | getattr(os, "O_BINARY", 0))
        except FileNotFoundError:
            return
        try:
            on_disk = os.fstat(fd).st_size
            for index in range(state.count):
                if self.stop.is_set():
                    raise DownloadStopped()
                offset, length = pc.piece_range(index, state.size)
                if offset + length > on_disk:
                    break
                if index not in marked and not _holds_data(fd, offset, length):
                    continue
                if pc.verify_file_range(part, index, state.digests[index], state.size):
                    state.verified[index] = 1
        finally:
            os.close(fd)
        self._save_state()
        self._last_save = 0.0  # the first piece fetched after this is saved at once

    def _check_free_space(self) -> None:
        assert self.state is not None
        needed = self.state.size - self.state.verified_bytes()
        try:
            on_disk = self.spec.part_path.stat().st_size
        except FileNotFoundError:
            on_disk = 0
        needed = max(0, needed - max(0, on_disk - self.state.verified_bytes()))
        free = shutil.disk_usage(self.spec.folder).free
        if free < needed:
            raise DownloadFailed(
                Problem.NOT_ENOUGH_SPACE,
                retryable=False,
                folder=str(self.spec.folder),
                needed=needed,
                free=free,
            )

    def _download_missing(self) -> None:
        """Every source at once (``Swarm``); DownloadFailed when none can finish the file."""
        flags = os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_BINARY", 0)
        fd = os.open(self.spec.part_path, flags, 0o644)
        swarm = Swarm(self, fd, self.max_sources)
        try:
            swarm.run()
        finally:
            self._save_state()
            os.close(fd)
        if self.state.missing():
            failure = self._all_failed(swarm.failures)
            failure.retry_after = swarm.retry_after
            raise failure

    def _write(self, fd: int, data: memoryview, offset: int) -> None:
        try:
            written = 0
            if hasattr(os, "pwrite"):
                while written < len(data):
                    written += os.pwrite(fd, data[written:], offset + written)
            else:  # pragma: no cover - Windows
                os.lseek(fd, offset, os.SEEK_SET)
                while written < len(data):
                    written += os.write(fd, data[written:])
        except OSError as exc:
            problem = folder_problem(exc)
            if problem is Problem.FOLDER_MISSING:
                problem = Problem.WRITE_FAILED
            raise DownloadFailed(
                problem,
                retryable=False,
                folder=str(self.spec.folder),
                error=exc.strerror or str(exc),
            ) from None

    def _finalize(self) -> Path:
        spec = self.spec
        self._on_phase(Phase.FINISHING, "")
        part = spec.part_path
        with open(part, "r+b") as f:
            f.truncate(self.state.size)
            f.flush()
            os.fsync(f.fileno())
        self.digest = pc.FileDigest(self.state.size, self.state.digests, self.state.hash)
        try:
            final = place_without_overwriting(part, spec.folder, spec.name)
        except OSError as exc:
            raise DownloadFailed(
                folder_problem(exc),
                retryable=False,
                folder=str(spec.folder),
                error=exc.strerror or str(exc),
            ) from None
        if final is None:
            raise DownloadFailed(Problem.NO_FREE_NAME, retryable=False)
        with contextlib.suppress(FileNotFoundError):
            spec.state_path.unlink()
        _fsync_folder(spec.folder)
        self._report(force=True)
        return final

    # ------------------------------------------------------------- reporting

    def _report(self, force: bool = False) -> None:
        with self._report_lock:
            now = time.monotonic()
            elapsed = now - self._last_report
            if not force and elapsed < PROGRESS_INTERVAL:
                return
            samples = self._samples
            if samples and samples[0][1] == samples[-1][1] == self.done_bytes:
                samples.clear()  # nothing arrived yet (connecting): not part of the speed
            samples.append((now, self.done_bytes))
            while samples and samples[0][0] < now - SPEED_WINDOW:
                samples.popleft()
            first_time, first_done = samples[0]
            if now - first_time > 0:
                self._speed = (self.done_bytes - first_done) / (now - first_time)
            self._last_report = now
            self._last_report_bytes = self.done_bytes
            if self.watch is not None:
                self.watch.set_rate(self._speed)
            done, received = self.done_bytes, self.received_bytes
        self._on_progress(done, self.spec.size, max(0.0, self._speed), received)

    def _maybe_save_state(self) -> None:
        if time.monotonic() - self._last_save >= STATE_SAVE_INTERVAL:
            self._save_state()

    def _save_state(self) -> None:
        if self.state is None:
            return
        with self._report_lock:
            self._last_save = time.monotonic()
            try:
                self.state.save(self.spec.state_path)
            except OSError as exc:
                log.warning("Could not save the piece state of %s: %s", self.spec.name, exc)


def _holds_data(fd: int, offset: int, length: int) -> bool:
    """False only when the file is certainly a hole over [offset, offset + length)."""
    seek_data = getattr(os, "SEEK_DATA", None)
    if seek_data is None:
        return True
    try:
        return os.lseek(fd, offset, seek_data) < offset + length
    except OSError as exc:
        return exc.errno != errno.ENXIO  # ENXIO: no data from offset to the end


def _fsync_folder(folder: Path) -> None:
    if os.name == "nt":  # pragma: no cover - folders cannot be fsynced on Windows
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
