"""TransferManager: the download queue, its pumps, retries, and its state kept on disk."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import random
import shutil
import threading
import time
import uuid
from pathlib import Path

from PySide6.QtCore import QObject, QTimer, Signal

from app.download import layout
from app.download.engine import DownloadFailed, DownloadSpec, Phase
from app.download.part_state import PartState
from app.download.pump import FilePump
from app.download.source import PushRoute, Timeouts
from app.download.transfer import QueueEntryRejected, Transfer, TransferState
from app.download.watch import PieceWatch
from app.filenames import PART_SUFFIX, STATE_SUFFIX, TMP_SUFFIX, safe_filename
from app.network import protocol as p
from app.network.rate_limit import RateLimiter

log = logging.getLogger("napster.transfers")

QUEUE_VERSION = 1
MIN_RETRY_DELAY = 5.0
MAX_RETRY_DELAY = 300.0
#: How long quitting waits, in all, for the running downloads to save their state and stop.
QUIT_DEADLINE_MS = 10000

_PHASE_STATES = {
    Phase.CONNECTING: TransferState.CONNECTING,
    Phase.VERIFYING: TransferState.VERIFYING,
    Phase.DOWNLOADING: TransferState.DOWNLOADING,
    Phase.FINISHING: TransferState.VERIFYING,
}


class QueueWriter:
    """Writes the queue file on its own thread: the latest text wins, each write atomic."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Condition()
        self._pending: str | None = None
        self._busy = False
        self._closing = False
        self._thread = threading.Thread(target=self._run, name="queue writer", daemon=True)
        self._thread.start()

    def write(self, text: str) -> None:
        with self._lock:
            if not self._closing:
                self._pending = text
                self._lock.notify_all()
                return
        self._write(text)  # after close (a download that finished as the app quit): at once

    def flush(self, timeout: float = 10.0) -> None:
        """Wait until everything handed over is on disk."""
        with self._lock:
            self._lock.wait_for(lambda: self._pending is None and not self._busy, timeout)

    def close(self) -> None:
        """Write what is pending, then end the thread."""
        with self._lock:
            self._closing = True
            self._lock.notify_all()
        self._thread.join(10)

    def _run(self) -> None:
        while True:
            with self._lock:
                self._lock.wait_for(lambda: self._pending is not None or self._closing)
                if self._pending is None:
                    return
                text, self._pending = self._pending, None
                self._busy = True
            try:
                self._write(text)
            finally:
                with self._lock:
                    self._busy = False
                    self._lock.notify_all()

    def _write(self, text: str) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_name(self.path.name + TMP_SUFFIX)
            with open(tmp, "w", encoding="utf-8") as f:
                f.write(text)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        except OSError as exc:
            log.error("Could not save the download queue to %s: %s", self.path, exc)


def retry_delay(retries: int, rng: random.Random | None = None) -> float:
    """Randomized exponential backoff for a download whose sources all failed."""
    base = min(MAX_RETRY_DELAY, MIN_RETRY_DELAY * (2 ** max(0, retries - 1)))
    return base * (rng or random).uniform(0.75, 1.0)


class TransferManager(QObject):
    """Keeps the download queue: runs up to ``max_active`` pumps, pauses, retries, saves.

    At start it reloads the saved queue exactly as written, moves the ``.part`` files of
    earlier versions into the private incomplete folder, and adopts any unfinished download
    it finds there without a queue entry, so no partial file is ever left unseen.
    """

    transfer_added = Signal(str)
    transfer_changed = Signal(str)
    transfer_removed = Signal(str)
    #: transfer id, final path, the verified FileDigest (the file is in place)
    transfer_finished = Signal(str, str, object)
    #: transfer id, reason (failed for good, or waiting to retry)
    transfer_failed = Signal(str, str)
    #: hash, size, remote name: more sources would help (the peer may SEARCH for them)
    sources_wanted = Signal(str, "qint64", str)
    #: bytes that just came over the network (for session totals)
    bytes_received = Signal("qint64")

    def __init__(
        self,
        queue_path: Path,
        download_folder: Path,
        max_active: int = 3,
        timeouts: Timeouts | None = None,
        parent: QObject | None = None,
        limiter: RateLimiter | None = None,
        max_sources: int = 8,
        push: PushRoute | None = None,
    ) -> None:
        """``push``: holders may also be reached by push (None: directly only); it can
        also be set later as ``push`` (downloads started from then on use it)."""
        super().__init__(parent)
        self.push = push
        self.max_sources = max(1, max_sources)
        self.queue_path = Path(queue_path)
        self.download_folder = Path(download_folder)
        self.max_active = max(1, max_active)
        self.timeouts = timeouts or Timeouts()
        self.limiter = limiter or RateLimiter()
        self._transfers: dict[str, Transfer] = {}
        self._pumps: dict[str, FilePump] = {}
        self._received: dict[str, int] = {}
        self._watches: dict[str, PieceWatch] = {}
        self._cancel_delete: dict[str, bool] = {}
        self._shut_down = False
        self._retry_timer = QTimer(self)
        self._retry_timer.setSingleShot(True)
        self._retry_timer.timeout.connect(self._on_retry_timer)
        self._writer = QueueWriter(self.queue_path)
        self._load()
        self._adopt_leftovers()

    # ------------------------------------------------------------ queries

    def transfers(self) -> list[Transfer]:
        return list(self._transfers.values())

    def get(self, transfer_id: str) -> Transfer | None:
        return self._transfers.get(transfer_id)

    def find(self, file_hash: str, size: int) -> Transfer | None:
        """The newest transfer of the file (hash and size), if any."""
        matches = [t for t in self._transfers.values() if t.key == (file_hash, size)]
        return max(matches, key=lambda t: t.added_at) if matches else None

    def watch(self, transfer_id: str) -> PieceWatch | None:
        """The verified pieces and readers of a download (for streams); None if unknown."""
        transfer = self._transfers.get(transfer_id)
        if transfer is None:
            return None
        watch = self._watches.get(transfer_id)
        if watch is None:
            watch = self._watches[transfer_id] = PieceWatch(transfer.hash, transfer.size)
            if transfer.state is TransferState.DONE:
                watch.set_verified(b"\x01" * watch.count)
        return watch

    def stream_lead(self, transfer_id: str) -> int | None:
        """None when no stream reads the download; else its verified bytes ahead of the player."""
        watch = self._watches.get(transfer_id)
        return None if watch is None else watch.stream_lead()

    def has_running(self) -> bool:
        return any(t.state.is_active or t.state is TransferState.QUEUED for t in self.transfers())

    def running_count(self) -> int:
        """Downloads running or about to run (what quitting would interrupt)."""
        return sum(
            1
            for t in self._transfers.values()
            if t.state.is_active or t.state is TransferState.QUEUED
        )

    # ------------------------------------------------------------ commands

    def add(self, file_hash: str, size: int, remote_name: str, sources: list[p.PeerAddress]) -> str:
        """Queue a download (or give more sources to one already queued); return its id."""
        existing = self.find(file_hash, size)
        if existing and existing.state is not TransferState.DONE:
            self.add_sources(file_hash, size, sources)
            if existing.state in (TransferState.FAILED, TransferState.WAITING):
                self.retry(existing.id)
            return existing.id
        transfer = Transfer(
            id=uuid.uuid4().hex[:12],
            hash=file_hash,
            size=size,
            name=safe_filename(remote_name),
            remote_name=remote_name,
            folder=self.download_folder,
            sources=_unique(sources),
        )
        self._transfers[transfer.id] = transfer
        log.info(
            "Queued %s (%d bytes) from %d sources", p.printable(transfer.name), size, len(sources)
        )
        self._save()
        self.transfer_added.emit(transfer.id)
        self._schedule()
        return transfer.id

    def add_sources(self, file_hash: str, size: int, sources: list[p.PeerAddress]) -> None:
        for transfer in self._transfers.values():
            if transfer.key != (file_hash, size) or transfer.state is TransferState.DONE:
                continue
            merged = _unique(transfer.sources + list(sources))
            if _pins(merged) != _pins(transfer.sources):
                transfer.sources = merged
                pump = self._pumps.get(transfer.id)
                if pump is not None:
                    pump.add_sources(merged)
                self._save()
                self.transfer_changed.emit(transfer.id)

    def pause(self, transfer_id: str) -> None:
        transfer = self._transfers.get(transfer_id)
        if transfer is None or transfer.state in (TransferState.DONE, TransferState.PAUSED):
            return
        transfer.state = TransferState.PAUSED
        transfer.speed = 0.0
        pump = self._pumps.get(transfer_id)
        if pump is not None:
            pump.stop()
        self._save()
        self.transfer_changed.emit(transfer_id)
        self._schedule()

    def resume(self, transfer_id: str) -> None:
        transfer = self._transfers.get(transfer_id)
        if transfer is None or transfer.state not in (
            TransferState.PAUSED,
            TransferState.FAILED,
            TransferState.WAITING,
        ):
            return
        transfer.state = TransferState.QUEUED
        transfer.error = ""
        transfer.error_code = ""
        transfer.error_params = {}
        self._save()
        self.transfer_changed.emit(transfer_id)
        self._schedule()

    def retry(self, transfer_id: str) -> None:
        """Try a failed or waiting download again now, with every source trusted afresh
        except those that sent corrupt data."""
        transfer = self._transfers.get(transfer_id)
        if transfer is not None and transfer.state in (TransferState.FAILED, TransferState.WAITING):
            transfer.retries = 0
            self.resume(transfer_id)

    def cancel(self, transfer_id: str, delete_partial: bool = False) -> None:
        """Remove a download from the queue; optionally delete its .part and piece state."""
        transfer = self._transfers.get(transfer_id)
        if transfer is None:
            return
        pump = self._pumps.get(transfer_id)
        if pump is not None:
            self._cancel_delete[transfer_id] = delete_partial
            transfer.state = TransferState.PAUSED
            pump.stop()
            pump.done.connect(lambda: self._forget(transfer_id))
            return
        if delete_partial:
            self._cancel_delete[transfer_id] = True
        self._forget(transfer_id)

    def flush_saves(self) -> None:
        """Wait until the queue file on disk matches the queue."""
        self._writer.flush()

    def set_download_folder(self, folder: Path) -> None:
        """New downloads go there; queued ones keep the folder where their .part is."""
        self.download_folder = Path(folder)

    def set_max_active(self, count: int) -> None:
        self.max_active = max(1, count)
        self._schedule()

    def set_rate_limit(self, rate: int) -> None:
        """All downloads together at most ``rate`` bytes per second (0 = no limit), live."""
        self.limiter.set_rate(rate)

    def shutdown(self, deadline_ms: int = QUIT_DEADLINE_MS) -> bool:
        """Stop every pump (their .part and state stay) and save the queue; idempotent.

        Every pump is asked to stop first, then each is waited for within one shared
        deadline. Returns False if a pump was still running at the deadline (it is kept
        alive; its last saved state is still valid, and the next start re-verifies).
        """
        if self._shut_down:
            return True
        self._shut_down = True
        self._retry_timer.stop()
        for pump in self._pumps.values():
            pump.stop()
        ends_at = time.monotonic() + deadline_ms / 1000
        all_stopped = True
        for transfer_id, pump in list(self._pumps.items()):
            left = int(max(0.0, ends_at - time.monotonic()) * 1000)
            all_stopped = pump.wait(left) and all_stopped
            transfer = self._transfers.get(transfer_id)
            if transfer is not None and transfer.state.is_active:
                transfer.state = TransferState.QUEUED  # resumes at the next start
                transfer.speed = 0.0
        self._pumps.clear()
        self._save(wait=True)
        self._writer.close()
        return all_stopped

    # ------------------------------------------------------------ running

    def _schedule(self) -> None:
        if self._shut_down:
            return
        active = len(self._pumps)
        for transfer in sorted(self._transfers.values(), key=lambda t: t.added_at):
            if active >= self.max_active:
                break
            if transfer.state is TransferState.QUEUED and transfer.id not in self._pumps:
                self._start(transfer)
                active += 1

    def _start(self, transfer: Transfer) -> None:
        spec = DownloadSpec(
            hash=transfer.hash,
            size=transfer.size,
            name=transfer.name,
            folder=transfer.folder,
            sources=list(transfer.sources),
            bad_sources=set(transfer.bad_sources),
            remote_name=transfer.remote_name,
        )
        watch = self.watch(transfer.id)
        if watch is not None:
            watch.revive()
        pump = FilePump(
            spec, self.timeouts, self.limiter, self, self.max_sources, watch, push=self.push
        )
        transfer_id = transfer.id
        self._received[transfer_id] = 0
        pump.progress.connect(
            lambda done, total, speed, received: self._on_progress(
                transfer_id, done, speed, received
            )
        )
        pump.phase_changed.connect(
            lambda phase, detail: pump.stop_requested or self._on_phase(transfer_id, phase, detail)
        )
        pump.bad_source.connect(lambda source, reason: self._on_bad_source(transfer_id, source))
        pump.finished.connect(lambda path, digest: self._on_finished(transfer_id, path, digest))
        pump.failed.connect(
            lambda failure: pump.stop_requested or self._on_failed(transfer_id, failure)
        )
        pump.details.connect(
            lambda states, stats, _known: self._on_details(transfer_id, states, stats)
        )
        pump.done.connect(lambda: self._on_pump_done(transfer_id, pump))
        self._pumps[transfer_id] = pump
        transfer.state = TransferState.CONNECTING
        transfer.error = ""
        transfer.error_code = ""
        transfer.error_params = {}
        self.transfer_changed.emit(transfer_id)
        pump.start()

    def _on_progress(self, transfer_id: str, done: int, speed: float, received: int) -> None:
        fresh = received - self._received.get(transfer_id, 0)
        self._received[transfer_id] = received
        if fresh > 0:
            self.bytes_received.emit(fresh)
        transfer = self._transfers.get(transfer_id)
        if transfer is None:
            return
        transfer.done_bytes = done
        transfer.speed = speed
        self.transfer_changed.emit(transfer_id)

    def _on_details(self, transfer_id: str, states: bytes, stats: list) -> None:
        transfer = self._transfers.get(transfer_id)
        if transfer is not None:
            transfer.piece_states, transfer.source_stats = states, stats
            self.transfer_changed.emit(transfer_id)

    def _on_phase(self, transfer_id: str, phase: Phase, detail: str) -> None:
        transfer = self._transfers.get(transfer_id)
        if transfer is None or transfer.state is TransferState.PAUSED:
            return
        transfer.state = _PHASE_STATES[phase]
        if phase in (Phase.CONNECTING, Phase.DOWNLOADING):
            transfer.current_source = detail
        self.transfer_changed.emit(transfer_id)

    def _on_bad_source(self, transfer_id: str, source: str) -> None:
        transfer = self._transfers.get(transfer_id)
        if transfer is not None:
            transfer.bad_sources.add(source)
            self._save()

    def _on_finished(self, transfer_id: str, path: str, digest: object) -> None:
        transfer = self._transfers.get(transfer_id)
        if transfer is None:
            return
        transfer.state = TransferState.DONE
        transfer.final_path = path
        transfer.done_bytes = transfer.size
        transfer.speed = 0.0
        transfer.error = transfer.error_code = ""
        transfer.error_params = {}
        log.info("File %s downloaded to %s", p.printable(transfer.name), path)
        self._save()
        self.transfer_changed.emit(transfer_id)
        self.transfer_finished.emit(transfer_id, path, digest)

    def _on_failed(self, transfer_id: str, failure: DownloadFailed) -> None:
        transfer = self._transfers.get(transfer_id)
        if transfer is None:
            return
        transfer.speed = 0.0
        transfer.error = failure.reason
        transfer.error_code = failure.problem.value
        transfer.error_params = dict(failure.params)
        if failure.retryable and transfer.state is not TransferState.PAUSED:
            transfer.retries += 1
            delay = max(failure.retry_after or 0.0, retry_delay(transfer.retries))
            transfer.state = TransferState.WAITING
            transfer.next_retry_at = time.monotonic() + delay
            log.info("Download of %s will retry in %.0f s: %s", transfer.name, delay, failure)
            self.sources_wanted.emit(transfer.hash, transfer.size, transfer.remote_name)
        elif transfer.state is not TransferState.PAUSED:
            transfer.state = TransferState.FAILED
            log.warning("Download of %s failed: %s", transfer.name, failure)
            if transfer_id in self._watches:
                self._watches[transfer_id].gone(failure.reason)
        self._save()
        self.transfer_changed.emit(transfer_id)
        self.transfer_failed.emit(transfer_id, failure.reason)

    def _on_pump_done(self, transfer_id: str, pump: FilePump) -> None:
        if self._pumps.get(transfer_id) is pump:
            del self._pumps[transfer_id]
        pump.setParent(None)  # its thread has ended (FilePump.done): safe to let go
        pump.deleteLater()
        transfer = self._transfers.get(transfer_id)
        if transfer is not None and transfer.state.is_active:
            # Stopped without pause or cancel: run again later.
            transfer.state = TransferState.QUEUED
        self._arm_retry_timer()
        self._schedule()

    def _arm_retry_timer(self) -> None:
        waiting = [
            t.next_retry_at for t in self._transfers.values() if t.state is TransferState.WAITING
        ]
        if not waiting or self._shut_down:
            self._retry_timer.stop()
            return
        delay = max(0.0, min(waiting) - time.monotonic())
        self._retry_timer.start(int(delay * 1000))

    def _on_retry_timer(self) -> None:
        now = time.monotonic()
        for transfer in self._transfers.values():
            if transfer.state is TransferState.WAITING and transfer.next_retry_at <= now:
                transfer.state = TransferState.QUEUED
                self.transfer_changed.emit(transfer.id)
        self._arm_retry_timer()
        self._schedule()

    def _forget(self, transfer_id: str) -> None:
        watch = self._watches.pop(transfer_id, None)
        if watch is not None:
            watch.gone("the download was cancelled")
        transfer = self._transfers.pop(transfer_id, None)
        self._pumps.pop(transfer_id, None)
        if transfer is None:
            return
        if self._cancel_delete.pop(transfer_id, False) and transfer.state is not TransferState.DONE:
            part = transfer.part_path
            for path in (part, layout.state_path_for(part)):
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
        self._save()
        self.transfer_removed.emit(transfer_id)
        self._schedule()

    # ------------------------------------------------------------ persistence

    def _save(self, wait: bool = False) -> None:
        """Save the queue; the file is written on the writer thread, never on the GUI thread."""
        body = {
            "version": QUEUE_VERSION,
            "transfers": [t.to_json() for t in self._transfers.values()],
        }
        self._writer.write(json.dumps(body, indent=1))
        if wait:
            self._writer.flush()

    def _load(self) -> None:
        try:
            body = json.loads(self.queue_path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return
        except (OSError, ValueError) as exc:
            log.error(
                "The download queue %s could not be read (%s); starting empty", self.queue_path, exc
            )
            self._set_aside()
            return
        entries = body.get("transfers", []) if isinstance(body, dict) else None
        if not isinstance(entries, list):
            log.error("The download queue %s has no list of transfers", self.queue_path)
            self._set_aside()
            return
        rejected = 0
        for obj in entries:
            try:
                transfer = Transfer.from_json(obj)
            except QueueEntryRejected as exc:
                rejected += 1
                log.warning("Rejected an entry of the download queue: %s", exc)
                continue
            if transfer.id in self._transfers or self.find(*transfer.key) is not None:
                rejected += 1
                log.warning("Rejected a second entry for the download %s", transfer.id)
                continue
            self._transfers[transfer.id] = transfer
            if transfer.legacy_part is not None:
                self._move_legacy_part(transfer.legacy_part, transfer)
        if rejected:
            self._set_aside(copy=True)

    def _set_aside(self, copy: bool = False) -> None:
        """Keep the queue file as it was, beside the new one, for a person to look at."""
        spare = self.queue_path.with_name(self.queue_path.name + ".bad")
        with contextlib.suppress(OSError):
            if copy:
                shutil.copyfile(self.queue_path, spare)
            else:
                os.replace(self.queue_path, spare)

    def _move_legacy_part(self, legacy: Path, transfer: Transfer) -> bool:
        """Move a .part kept beside finished files (earlier versions) into the private folder."""
        target = transfer.part_path
        if target.exists() or not legacy.is_file() or legacy.is_symlink():
            return False
        try:
            target.parent.mkdir(exist_ok=True)
            old_state = layout.state_path_for(legacy)
            if old_state.is_file():
                os.replace(old_state, layout.state_path_for(target))
            os.replace(legacy, target)
        except OSError as exc:
            log.warning("Could not move %s into %s: %s", legacy, target.parent, exc)
            return False
        log.info("Moved the unfinished download %s to %s", legacy, target)
        return True

    def _adopt_leftovers(self) -> None:
        """Queue every unfinished download on disk that has no queue entry.

        Looks in the download folders for ``.part``-like files of earlier versions (any name
        with an intact piece state beside it) and in their incomplete folders.
        """
        folders = {self.download_folder, *(t.folder for t in self._transfers.values())}
        changed = False
        for folder in folders:
            for path, state in _legacy_leftovers(folder):
                # Earlier versions named it "<name>.part" (or, by mistake, "<name>.part_").
                state.name = state.name or path.name.rsplit(PART_SUFFIX, 1)[0]
                transfer = self.find(state.hash, state.size) or self._adopt(folder, state)
                changed = True
                if not self._move_legacy_part(path, transfer):
                    log.warning("Left %s where it is: its download already has data", path)
            incomplete = layout.incomplete_folder(folder)
            try:
                names = os.listdir(incomplete)
            except OSError:
                continue
            for name in names:
                if name.endswith(TMP_SUFFIX):
                    with contextlib.suppress(OSError):
                        (incomplete / name).unlink()
                    continue
                key = layout.parse_part_name(name)
                if key is None or self.find(*key) is not None:
                    continue
                state = PartState.load(layout.state_path_for(incomplete / name), *key)
                if state is None:
                    state = PartState(key[0], key[1], (), "")
                self._adopt(folder, state)
                changed = True
        if changed:
            self._save()

    def _adopt(self, folder: Path, state: PartState) -> Transfer:
        name = state.name or f"{state.hash[:16]}"
        transfer = Transfer(
            id=uuid.uuid4().hex[:12],
            hash=state.hash,
            size=state.size,
            name=safe_filename(name),
            remote_name=name,
            folder=folder,
            done_bytes=state.verified_bytes() if state.digests else 0,
        )
        self._transfers[transfer.id] = transfer
        log.info("Found the unfinished download %s in %s; queued it again", name, folder)
        return transfer

    def start(self) -> None:
        """Start the queued downloads (call once the app is up)."""
        self._schedule()


def _legacy_leftovers(folder: Path) -> list[tuple[Path, PartState]]:
    """Files beside finished ones with an intact piece state: earlier versions' .part files."""
    found = []
    try:
        names = os.listdir(folder)
    except OSError:
        return found
    for name in names:
        if not name.endswith(STATE_SUFFIX):
            continue
        part = folder / name[: -len(STATE_SUFFIX)]
        if not part.is_file() or part.is_symlink():
            continue
        state = PartState.load(folder / name)
        if state is not None:
            found.append((part, state))
    return found


def _unique(sources: list[p.PeerAddress]) -> list[p.PeerAddress]:
    """One entry per address, in first-seen order, with the latest fingerprint given."""
    seen: dict[str, p.PeerAddress] = {}
    for source in sources:
        if str(source) not in seen or source.fingerprint is not None:
            seen[str(source)] = source
    return list(seen.values())


def _pins(sources: list[p.PeerAddress]) -> list[tuple[str, str | None]]:
    """Addresses with their fingerprints (``PeerAddress`` equality leaves them out)."""
    return [(str(s), s.fingerprint) for s in sources]
