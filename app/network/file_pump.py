"""Downloading one file: pieces from peers into ``<name>.part``, verified, then finalized.

``PieceDownloader`` is the blocking engine (plain Python, runs on any thread);
``FilePump`` runs it in its own QThread and reports through signals at most
ten times a second. The GUI thread never sees file bytes.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import shutil
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from PySide6.QtCore import QObject, Qt, QThread, Signal, Slot

from app.filenames import STATE_SUFFIX, TMP_SUFFIX, is_inside, place_without_overwriting
from app.network import pieces as pc
from app.network import protocol as p
from app.units import human_size

log = logging.getLogger("napster.download")

#: Pieces asked for in one DOWNLOAD request.
PIECES_PER_REQUEST = 32
PROGRESS_INTERVAL = 0.1
STATE_SAVE_INTERVAL = 1.0


class DownloadFailed(Exception):
    """A download cannot go on now; ``retryable`` says whether trying later may help."""

    def __init__(self, reason: str, retryable: bool = True, retry_after: float | None = None):
        super().__init__(reason)
        self.reason = reason
        self.retryable = retryable
        self.retry_after = retry_after


class DownloadStopped(Exception):
    """The download was paused or cancelled; its .part and state are kept."""


class SourceFailed(Exception):
    """One source could not help (gone, stalled, refused, or lying)."""

    def __init__(self, reason: str, corrupt: bool = False, retry_after: float | None = None):
        super().__init__(reason)
        self.reason = reason
        self.corrupt = corrupt
        self.retry_after = retry_after


@dataclass
class DownloadSpec:
    """Everything needed to download (or resume) one file."""

    hash: str
    size: int
    name: str  # safe local name for the finished file
    folder: Path  # the chosen download folder
    part_name: str  # the .part file inside ``folder``
    sources: list[p.PeerAddress] = field(default_factory=list)
    bad_sources: set[str] = field(default_factory=set)

    @property
    def part_path(self) -> Path:
        return self.folder / self.part_name

    @property
    def state_path(self) -> Path:
        return self.folder / (self.part_name + STATE_SUFFIX)


@dataclass(frozen=True)
class Timeouts:
    connect: float = 10.0
    stall: float = 20.0
    tick: float = 0.25  # how often a blocked read checks for pause/cancel
    #: Bytes a source must send per ``stall`` period while we wait: a trickle is a stall too.
    min_progress: int = 64 * 1024


# ------------------------------------------------------------------ piece state


class PartState:
    """Which pieces of a .part are verified; saved beside it by atomic replace."""

    VERSION = 1

    def __init__(self, file_hash: str, size: int, digests: tuple[bytes, ...]) -> None:
        self.hash = file_hash
        self.size = size
        self.digests = digests
        self.verified = bytearray(len(digests))

    @property
    def count(self) -> int:
        return len(self.digests)

    def missing(self) -> list[int]:
        return [i for i, ok in enumerate(self.verified) if not ok]

    def verified_bytes(self) -> int:
        total = 0
        for index, ok in enumerate(self.verified):
            if ok:
                total += pc.piece_range(index, self.size)[1]
        return total

    def save(self, path: Path) -> None:
        body = {
            "version": self.VERSION,
            "hash": self.hash,
            "size": self.size,
            "piece_size": p.PIECE_SIZE,
            "pieces": [d.hex() for d in self.digests],
            "verified": [i for i, ok in enumerate(self.verified) if ok],
        }
        tmp = path.with_name(path.name + TMP_SUFFIX)
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(body, f, separators=(",", ":"))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: Path, file_hash: str, size: int) -> PartState | None:
        """The saved state, or None when it is missing, cut short, garbled or not this file's."""
        try:
            body = json.loads(path.read_text(encoding="utf-8"))
            if body.get("version") != cls.VERSION or body.get("hash") != file_hash:
                return None
            if body.get("size") != size or body.get("piece_size") != p.PIECE_SIZE:
                return None
            digests = tuple(bytes.fromhex(p.check_hash(d)) for d in body["pieces"])
            if len(digests) != pc.piece_count(size):
                return None
            if pc.file_hash_from_digests(digests) != file_hash:
                return None
            state = cls(file_hash, size, digests)
            for index in body["verified"]:
                if isinstance(index, int) and 0 <= index < state.count:
                    state.verified[index] = 1
            return state
        except (OSError, ValueError, TypeError, KeyError, AttributeError, p.ProtocolError):
            return None


# ------------------------------------------------------------------ one source


class SourceConnection:
    """A blocking transfer connection to one sharing peer."""

    def __init__(self, address: p.PeerAddress, timeouts: Timeouts, stop: threading.Event):
        self.address = address
        self.timeouts = timeouts
        self.stop = stop
        self.inbox = bytearray()
        self.next_id = 1
        self._window_start = time.monotonic()
        self._window_bytes = 0
        try:
            self.sock = socket.create_connection(
                (address.host, address.port), timeout=timeouts.connect
            )
        except OSError as exc:
            raise SourceFailed(f"cannot connect: {exc.strerror or exc}") from None
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()

    def _recv_into(self, view: memoryview) -> int:
        """Block until some bytes arrive, checking for stop; drop a stalled source."""
        waited = 0.0
        self.sock.settimeout(self.timeouts.tick)
        while True:
            if self.stop.is_set():
                raise DownloadStopped()
            try:
                n = self.sock.recv_into(view)
            except TimeoutError:
                waited += self.timeouts.tick
                if waited >= self.timeouts.stall:
                    raise SourceFailed(f"stalled for {self.timeouts.stall:.0f} s") from None
                continue
            except OSError as exc:
                raise SourceFailed(f"connection lost: {exc.strerror or exc}") from None
            if n == 0:
                raise SourceFailed("the source closed the connection")
            self._check_progress(n)
            return n

    def _check_progress(self, received: int) -> None:
        """Drop a source that sends, but less than ``min_progress`` bytes per stall period."""
        self._window_bytes += received
        now = time.monotonic()
        if now - self._window_start < self.timeouts.stall:
            return
        if self._window_bytes < self.timeouts.min_progress:
            raise SourceFailed(
                f"too slow: {self._window_bytes} bytes in {now - self._window_start:.0f} s"
            )
        self._window_start, self._window_bytes = now, 0

    def request(self, message: p.Message) -> p.Message:
        self.sock.settimeout(self.timeouts.stall)
        try:
            self.sock.sendall(p.encode(message))
        except OSError as exc:
            raise SourceFailed(f"connection lost: {exc.strerror or exc}") from None
        reply = self._read_message()
        if reply.id not in (None, message.id):
            raise SourceFailed("the source answered another request")
        if isinstance(reply, p.Error):
            if reply.code is p.ErrorCode.BUSY:
                raise SourceFailed("busy", retry_after=reply.retry_after)
            raise SourceFailed(f"{reply.code.value}: {p.printable(reply.message, 120)}")
        return reply

    def _read_message(self) -> p.Message:
        chunk = bytearray(65536)
        view = memoryview(chunk)
        while True:
            newline = self.inbox.find(b"\n")
            if newline >= 0:
                line = bytes(self.inbox[:newline])
                del self.inbox[: newline + 1]
                try:
                    return p.decode_line(line, p.DOWNLOADER_BULK_OPS)
                except p.ProtocolError as exc:
                    raise SourceFailed(f"protocol error: {exc.message}") from None
            if len(self.inbox) > p.MAX_BULK_LINE:
                raise SourceFailed("protocol error: reply line too long")
            n = self._recv_into(view)
            self.inbox += view[:n]

    def next_request_id(self) -> int:
        self.next_id += 1
        return self.next_id

    def fetch_pieces(self, file_hash: str) -> tuple[bytes, ...]:
        reply = self.request(p.Pieces(id=self.next_request_id(), hash=file_hash))
        if not isinstance(reply, p.PiecesOk) or reply.hash != file_hash:
            raise SourceFailed("unexpected reply to PIECES")
        if reply.piece_size != p.PIECE_SIZE:
            raise SourceFailed(f"unsupported piece size {reply.piece_size}")
        digests = tuple(bytes.fromhex(d) for d in reply.pieces)
        if len(digests) != pc.piece_count(reply.size):
            raise SourceFailed("piece list does not match the file size", corrupt=True)
        if pc.file_hash_from_digests(digests) != file_hash:
            raise SourceFailed("piece list does not match the file hash", corrupt=True)
        return digests

    def start_download(self, file_hash: str, offset: int, length: int) -> None:
        reply = self.request(
            p.Download(id=self.next_request_id(), hash=file_hash, offset=offset, length=length)
        )
        if (
            not isinstance(reply, p.DownloadOk)
            or reply.hash != file_hash
            or reply.offset != offset
            or reply.length != length
        ):
            raise SourceFailed("unexpected reply to DOWNLOAD")

    def read_exact(self, view: memoryview) -> None:
        """Fill ``view`` with the next raw bytes of the current DOWNLOAD."""
        filled = 0
        if self.inbox:
            take = min(len(self.inbox), len(view))
            view[:take] = self.inbox[:take]
            del self.inbox[:take]
            filled = take
        while filled < len(view):
            filled += self._recv_into(view[filled:])


# ------------------------------------------------------------------ the engine


ProgressCallback = Callable[[int, int, float], None]


class PieceDownloader:
    """Downloads one file piece by piece from a list of sources (blocking)."""

    def __init__(
        self,
        spec: DownloadSpec,
        stop: threading.Event | None = None,
        timeouts: Timeouts | None = None,
        on_progress: ProgressCallback | None = None,
        on_state: Callable[[str, str], None] | None = None,
        on_bad_source: Callable[[str, str], None] | None = None,
        source_factory: Callable[..., SourceConnection] = SourceConnection,
    ) -> None:
        self.spec = spec
        self.stop = stop or threading.Event()
        self.timeouts = timeouts or Timeouts()
        self._on_progress = on_progress or (lambda done, total, speed: None)
        self._on_state = on_state or (lambda state, detail: None)
        self._on_bad_source = on_bad_source or (lambda source, reason: None)
        self._connect = source_factory
        self.state: PartState | None = None
        self.digest: pc.FileDigest | None = None
        self.done_bytes = 0
        self._last_report = 0.0
        self._last_report_bytes = 0
        self._speed = 0.0
        self._last_save = 0.0
        #: Bytes that came over the network in this run (resume tests read it).
        self.received_bytes = 0

    # ------------------------------------------------------------- public

    def run(self) -> Path:
        """Download, verify and finalize; return the final path.

        Raises DownloadFailed, or DownloadStopped when paused or cancelled.
        """
        spec = self.spec
        self._check_folder()
        self._on_state("verifying", "")
        self.state = PartState.load(spec.state_path, spec.hash, spec.size)
        rebuild = self.state is None
        if self.state is None:
            self.state = PartState(spec.hash, spec.size, self._fetch_piece_list())
        self._reverify(rebuild)
        self.done_bytes = self.state.verified_bytes()
        self._report(force=True)
        if self.state.missing():
            self._check_free_space()
            self._download_missing()
        return self._finalize()

    # ------------------------------------------------------------- steps

    def _check_folder(self) -> None:
        folder = self.spec.folder
        if not folder.is_dir():
            raise DownloadFailed(f"The download folder {folder} does not exist.", retryable=False)
        if not is_inside(folder, self.spec.part_path) or not is_inside(
            folder, self.spec.state_path
        ):
            raise DownloadFailed("Refusing to write outside the download folder.", retryable=False)

    def _usable_sources(self) -> list[p.PeerAddress]:
        return [s for s in self.spec.sources if str(s) not in self.spec.bad_sources]

    def _mark_bad(self, source: p.PeerAddress, reason: str) -> None:
        self.spec.bad_sources.add(str(source))
        log.warning("Not trusting %s again for %s: %s", source, self.spec.hash[:12], reason)
        self._on_bad_source(str(source), reason)

    def _fetch_piece_list(self) -> tuple[bytes, ...]:
        failures = []
        for source in self._usable_sources():
            self._on_state("connecting", str(source))
            conn: SourceConnection | None = None
            try:
                conn = self._connect(source, self.timeouts, self.stop)
                digests = conn.fetch_pieces(self.spec.hash)
                if pc.piece_count(self.spec.size) != len(digests):
                    raise SourceFailed("file size differs from the search result", corrupt=True)
                return digests
            except SourceFailed as exc:
                failures.append(f"{source}: {exc.reason}")
                if exc.corrupt:
                    self._mark_bad(source, exc.reason)
            finally:
                if conn is not None:
                    conn.close()
        raise self._all_failed(failures)

    def _all_failed(self, failures: list[str]) -> DownloadFailed:
        if not self.spec.sources:
            return DownloadFailed("No peer has this file right now.")
        if not self._usable_sources():
            return DownloadFailed("Every source sent corrupt data; none is trusted for this file.")
        detail = "; ".join(failures[-3:]) or "no source could be reached"
        return DownloadFailed(f"Every source failed ({detail}).")

    def _reverify(self, rebuild: bool) -> None:
        """Trust nothing on disk until it verifies again (after a crash or a garbled state)."""
        state = self.state
        assert state is not None
        part = self.spec.part_path
        try:
            on_disk = part.stat().st_size
        except FileNotFoundError:
            state.verified = bytearray(state.count)
            return
        if rebuild:
            candidates: list[int] | range = range(state.count)
        else:
            marked = [i for i in range(state.count) if state.verified[i]]
            # Pieces verified after the state was last saved (then a crash) lie past the last
            # one it marks: pieces are fetched in order. Check those too, not fetch them again.
            after = marked[-1] + 1 if marked else 0
            candidates = [*marked, *range(after, state.count)]
        state.verified = bytearray(state.count)
        for index in candidates:
            if self.stop.is_set():
                raise DownloadStopped()
            offset, length = pc.piece_range(index, state.size)
            if offset + length > on_disk:
                continue
            if pc.verify_file_range(part, index, state.digests[index], state.size):
                state.verified[index] = 1
        state.save(self.spec.state_path)

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
                f"Not enough free disk space in {self.spec.folder}: the file needs "
                f"{human_size(needed)} more, {human_size(free)} is free.",
                retryable=False,
            )

    def _download_missing(self) -> None:
        failures: list[str] = []
        retry_after: float | None = None
        buffer = bytearray(p.PIECE_SIZE)
        flags = os.O_RDWR | os.O_CREAT | getattr(os, "O_BINARY", 0)
        fd = os.open(self.spec.part_path, flags, 0o644)
        try:
            for source in self._usable_sources():
                if not self.state.missing():
                    break
                try:
                    self._download_from(source, fd, buffer)
                except SourceFailed as exc:
                    failures.append(f"{source}: {exc.reason}")
                    if exc.retry_after is not None:
                        retry_after = exc.retry_after
                    if exc.corrupt:
                        self._mark_bad(source, exc.reason)
                    log.info("Source %s dropped: %s", source, exc.reason)
        finally:
            self._save_state()
            os.close(fd)
        if self.state.missing():
            failure = self._all_failed(failures)
            failure.retry_after = retry_after
            raise failure

    def _download_from(self, source: p.PeerAddress, fd: int, buffer: bytearray) -> None:
        state = self.state
        assert state is not None
        self._on_state("connecting", str(source))
        conn = self._connect(source, self.timeouts, self.stop)
        try:
            self._on_state("downloading", str(source))
            view = memoryview(buffer)
            while True:
                run = self._next_run()
                if not run:
                    return
                first, count = run
                offset = first * p.PIECE_SIZE
                end_offset, end_length = pc.piece_range(first + count - 1, state.size)
                length = end_offset + end_length - offset
                conn.start_download(state.hash, offset, length)
                for index in range(first, first + count):
                    piece_offset, piece_length = pc.piece_range(index, state.size)
                    piece = view[:piece_length]
                    conn.read_exact(piece)
                    self.received_bytes += piece_length
                    if not pc.verify_piece(piece, state.digests[index]):
                        raise SourceFailed(f"piece {index} failed verification", corrupt=True)
                    self._write(fd, piece, piece_offset)
                    state.verified[index] = 1
                    self.done_bytes += piece_length
                    self._report()
                    self._maybe_save_state()
        finally:
            conn.close()

    def _next_run(self) -> tuple[int, int] | None:
        verified = self.state.verified
        try:
            first = verified.index(0)
        except ValueError:
            return None
        count = 1
        while (
            count < PIECES_PER_REQUEST
            and first + count < len(verified)
            and not verified[first + count]
        ):
            count += 1
        return first, count

    def _write(self, fd: int, data: memoryview, offset: int) -> None:
        try:
            if hasattr(os, "pwrite"):
                written = 0
                while written < len(data):
                    written += os.pwrite(fd, data[written:], offset + written)
            else:  # pragma: no cover - Windows
                os.lseek(fd, offset, os.SEEK_SET)
                written = 0
                while written < len(data):
                    written += os.write(fd, data[written:])
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, getattr(errno, "EDQUOT", -1)):
                raise DownloadFailed(
                    f"The disk is full: {self.spec.folder} has no space left. Free some space "
                    "and resume; the part already downloaded is kept.",
                    retryable=False,
                ) from None
            raise DownloadFailed(f"Cannot write the file: {exc.strerror or exc}") from None

    def _finalize(self) -> Path:
        spec = self.spec
        self._on_state("verifying", "finishing")
        part = spec.part_path
        if self.state.size == 0 and not part.exists():
            part.touch()
        with open(part, "r+b") as f:
            f.truncate(self.state.size)
            f.flush()
            os.fsync(f.fileno())
        self.digest = pc.FileDigest(self.state.size, self.state.digests, self.state.hash)
        final = self._move_into_place(part)
        with contextlib.suppress(FileNotFoundError):
            spec.state_path.unlink()
        _fsync_folder(spec.folder)
        self._report(force=True)
        return final

    def _move_into_place(self, part: Path) -> Path:
        """Give the file a name nobody has: never overwrite an existing file."""
        final = place_without_overwriting(part, self.spec.folder, self.spec.name)
        if final is None:
            raise DownloadFailed(
                "Could not find a free name for the finished file.", retryable=False
            )
        return final

    # ------------------------------------------------------------- reporting

    def _report(self, force: bool = False) -> None:
        now = time.monotonic()
        elapsed = now - self._last_report
        if not force and elapsed < PROGRESS_INTERVAL:
            return
        if self._last_report and elapsed > 0:
            instant = (self.done_bytes - self._last_report_bytes) / elapsed
            self._speed = instant if not self._speed else 0.7 * self._speed + 0.3 * instant
        self._last_report = now
        self._last_report_bytes = self.done_bytes
        self._on_progress(self.done_bytes, self.spec.size, max(0.0, self._speed))

    def _maybe_save_state(self) -> None:
        if time.monotonic() - self._last_save >= STATE_SAVE_INTERVAL:
            self._save_state()

    def _save_state(self) -> None:
        if self.state is None:
            return
        self._last_save = time.monotonic()
        try:
            self.state.save(self.spec.state_path)
        except OSError as exc:
            log.warning("Could not save the piece state of %s: %s", self.spec.name, exc)


def _fsync_folder(folder: Path) -> None:
    if os.name == "nt":  # pragma: no cover - folders cannot be fsynced on Windows
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# ------------------------------------------------------------------ Qt adapter


class _PumpWorker(QObject):
    """Runs a PieceDownloader inside the pump's QThread."""

    progress = Signal("qint64", "qint64", float)
    state_changed = Signal(str, str)
    bad_source = Signal(str, str)
    finished = Signal(str)  # final path
    failed = Signal(str, bool, float)  # reason, retryable, retry after (s, -1 if none)
    stopped = Signal()

    def __init__(self, spec: DownloadSpec, stop: threading.Event, timeouts: Timeouts) -> None:
        super().__init__()
        self.spec = spec
        self.stop = stop
        self.timeouts = timeouts
        self.digest: pc.FileDigest | None = None

    @Slot()
    def run(self) -> None:
        downloader = PieceDownloader(
            self.spec,
            self.stop,
            self.timeouts,
            on_progress=self.progress.emit,
            on_state=self.state_changed.emit,
            on_bad_source=self.bad_source.emit,
        )
        try:
            final = downloader.run()
        except DownloadStopped:
            self.stopped.emit()
        except DownloadFailed as exc:
            retry = -1.0 if exc.retry_after is None else float(exc.retry_after)
            self.failed.emit(exc.reason, exc.retryable, retry)
        except Exception as exc:  # a bug must not kill the thread silently
            log.exception("Download of %s crashed", self.spec.name)
            self.failed.emit(f"Unexpected error: {exc}", True, -1.0)
        else:
            self.digest = downloader.digest
            self.finished.emit(str(final))


class FilePump(QObject):
    """One download in its own QThread: start(), stop(), and signals for the UI."""

    progress = Signal("qint64", "qint64", float)  # done, total, bytes per second
    state_changed = Signal(str, str)  # state, detail (e.g. the source)
    bad_source = Signal(str, str)  # source, reason
    finished = Signal(str)  # final path
    failed = Signal(str, bool, float)  # reason, retryable, retry after
    stopped = Signal()  # paused or cancelled; .part kept
    done = Signal()  # after any of finished/failed/stopped, once the thread ended

    def __init__(
        self, spec: DownloadSpec, timeouts: Timeouts | None = None, parent: QObject | None = None
    ) -> None:
        super().__init__(parent)
        self.spec = spec
        self._stop = threading.Event()
        self._thread = QThread()
        self._thread.setObjectName(f"pump {spec.name}")
        self._worker = _PumpWorker(spec, self._stop, timeouts or Timeouts())
        self._worker.moveToThread(self._thread)
        self._thread.started.connect(self._worker.run)
        for name in ("progress", "state_changed", "bad_source", "finished", "failed", "stopped"):
            getattr(self._worker, name).connect(getattr(self, name))
        for end in (self._worker.finished, self._worker.failed, self._worker.stopped):
            # Direct: quit from the worker thread, so wait() on the GUI thread cannot deadlock.
            end.connect(self._thread.quit, Qt.ConnectionType.DirectConnection)
        self._thread.finished.connect(self._on_thread_finished)

    @property
    def digest(self) -> pc.FileDigest | None:
        return self._worker.digest

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Ask the download to stop soon (pause or cancel); it keeps its .part."""
        self._stop.set()

    @property
    def stop_requested(self) -> bool:
        """Paused or cancelled: what the pump reports from now on is stale."""
        return self._stop.is_set()

    def is_running(self) -> bool:
        return self._thread.isRunning()

    def wait(self, timeout_ms: int = 10000) -> bool:
        self._stop.set()
        return self._thread.wait(timeout_ms)

    def _on_thread_finished(self) -> None:
        self.done.emit()
