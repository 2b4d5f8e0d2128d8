"""TransferManager: the download queue, its pumps, retries, and its state kept on disk."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import random
import threading
import time
import uuid
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path

from PySide6.QtCore import QObject, QTimer, Signal

from app.filenames import (
    PART_STEM_BYTES,
    PART_SUFFIX,
    STATE_SUFFIX,
    TMP_SUFFIX,
    fit_name,
    free_name,
    safe_filename,
)
from app.network import protocol as p
from app.network.file_pump import DownloadSpec, FilePump, Timeouts
from app.network.pieces import FileDigest

log = logging.getLogger("napster.transfers")

QUEUE_VERSION = 1
MIN_RETRY_DELAY = 5.0
MAX_RETRY_DELAY = 300.0


class TransferState(str, Enum):
    """Where a download stands."""

    QUEUED = "queued"
    CONNECTING = "connecting"
    VERIFYING = "verifying"
    DOWNLOADING = "downloading"
    PAUSED = "paused"
    WAITING = "waiting"  # failed for now; retries by itself
    DONE = "done"
    FAILED = "failed"

    @property
    def is_active(self) -> bool:
        return self in (self.CONNECTING, self.VERIFYING, self.DOWNLOADING)


@dataclass
class Transfer:
    """One download in the queue."""

    id: str
    hash: str
    size: int
    name: str  # the safe local name
    remote_name: str  # the name as the network gave it
    folder: Path
    part_name: str
    sources: list[p.PeerAddress] = field(default_factory=list)
    bad_sources: set[str] = field(default_factory=set)
    state: TransferState = TransferState.QUEUED
    error: str = ""
    done_bytes: int = 0
    speed: float = 0.0
    current_source: str = ""
    final_path: str = ""
    retries: int = 0
    next_retry_at: float = 0.0
    added_at: float = field(default_factory=time.time)

    @property
    def eta_seconds(self) -> float | None:
        if self.state is not TransferState.DOWNLOADING or self.speed <= 0:
            return None
        return max(0.0, (self.size - self.done_bytes) / self.speed)

    @property
    def progress(self) -> float:
        return 1.0 if self.size == 0 else self.done_bytes / self.size

    @property
    def usable_sources(self) -> int:
        return sum(1 for s in self.sources if str(s) not in self.bad_sources)

    def to_json(self) -> dict:
        return {
            "id": self.id,
            "hash": self.hash,
            "size": self.size,
            "name": self.name,
            "remote_name": self.remote_name,
            "folder": str(self.folder),
            "part_name": self.part_name,
            "sources": [s.to_json() for s in self.sources],
            "bad_sources": sorted(self.bad_sources),
            "state": self.state.value,
            "error": self.error,
            "done_bytes": self.done_bytes,
            "final_path": self.final_path,
            "retries": self.retries,
            "added_at": self.added_at,
        }

    @classmethod
    def from_json(cls, obj: dict) -> Transfer:
        state = TransferState(obj["state"])
        if state.is_active or state is TransferState.WAITING:
            state = TransferState.QUEUED  # it was running when the app stopped: resume it
        return cls(
            id=str(obj["id"]),
            hash=p.check_hash(obj["hash"]),
            size=p.check_int(obj["size"], "size"),
            name=safe_filename(obj["name"]),
            remote_name=str(obj.get("remote_name", obj["name"])),
            folder=Path(obj["folder"]),
            part_name=safe_filename(obj["part_name"]),
            sources=[p.PeerAddress.from_json(s) for s in obj.get("sources", [])],
            bad_sources=set(obj.get("bad_sources", [])),
            state=state,
            error=str(obj.get("error", "")),
            done_bytes=int(obj.get("done_bytes", 0)),
            final_path=str(obj.get("final_path", "")),
            retries=int(obj.get("retries", 0)),
            added_at=float(obj.get("added_at", time.time())),
        )


class QueueWriter:
    """Writes the queue file on its own thread: the latest text wins, each write atomic."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Condition()
        self._pending: str | None = None
        self._busy = False
        self._thread = threading.Thread(target=self._run, name="queue writer", daemon=True)
        self._thread.start()

    def write(self, text: str) -> None:
        with self._lock:
            self._pending = text
            self._lock.notify_all()

    def flush(self, timeout: float = 10.0) -> None:
        """Wait until everything handed over is on disk."""
        with self._lock:
            self._lock.wait_for(lambda: self._pending is None and not self._busy, timeout)

    def _run(self) -> None:
        while True:
            with self._lock:
                self._lock.wait_for(lambda: self._pending is not None)
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
    """Keeps the download queue: runs up to ``max_active`` pumps, pauses, retries, saves."""

    transfer_added = Signal(str)
    transfer_changed = Signal(str)
    transfer_removed = Signal(str)
    #: transfer id, final path (the file is verified and in place)
    transfer_finished = Signal(str, str)
    #: transfer id, reason (failed for good, or waiting to retry)
    transfer_failed = Signal(str, str)
    #: hash, remote name: more sources would help (the peer may SEARCH for them)
    sources_wanted = Signal(str, str)

    def __init__(
        self,
        queue_path: Path,
        download_folder: Path,
        max_active: int = 3,
        timeouts: Timeouts | None = None,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self.queue_path = Path(queue_path)
        self.download_folder = Path(download_folder)
        self.max_active = max(1, max_active)
        self.timeouts = timeouts or Timeouts()
        self._transfers: dict[str, Transfer] = {}
        self._pumps: dict[str, FilePump] = {}
        self._digests: dict[str, FileDigest] = {}
        self._cancel_delete: dict[str, bool] = {}
        self._retry_timer = QTimer(self)
        self._retry_timer.setSingleShot(True)
        self._retry_timer.timeout.connect(self._on_retry_timer)
        # Finished pumps are released from a zero-delay timer, never inside their own signals.
        self._finished_pumps: list[FilePump] = []
        self._reaper = QTimer(self)
        self._reaper.setSingleShot(True)
        self._reaper.setInterval(0)
        self._reaper.timeout.connect(self._finished_pumps.clear)
        self._writer = QueueWriter(self.queue_path)
        self._load()

    # ------------------------------------------------------------ queries

    def transfers(self) -> list[Transfer]:
        return list(self._transfers.values())

    def get(self, transfer_id: str) -> Transfer | None:
        return self._transfers.get(transfer_id)

    def find_by_hash(self, file_hash: str) -> Transfer | None:
        """The newest transfer of that file, if any."""
        matches = [t for t in self._transfers.values() if t.hash == file_hash]
        return max(matches, key=lambda t: t.added_at) if matches else None

    def has_running(self) -> bool:
        return any(t.state.is_active or t.state is TransferState.QUEUED for t in self.transfers())

    def digest_of(self, transfer_id: str) -> FileDigest | None:
        return self._digests.get(transfer_id)

    # ------------------------------------------------------------ commands

    def add(self, file_hash: str, size: int, remote_name: str, sources: list[p.PeerAddress]) -> str:
        """Queue a download (or give more sources to one already queued); return its id."""
        existing = self.find_by_hash(file_hash)
        if existing and existing.state is not TransferState.DONE:
            self.add_sources(file_hash, sources)
            if existing.state in (TransferState.FAILED, TransferState.WAITING):
                self.retry(existing.id)
            return existing.id
        name = safe_filename(remote_name)
        reserved = {t.part_name for t in self._transfers.values()} | {
            t.name for t in self._transfers.values() if t.state is not TransferState.DONE
        }
        part_stem = fit_name(name, PART_STEM_BYTES - 8)  # room for a " (123)" number
        part_name = free_name(self.download_folder, part_stem, reserved) + PART_SUFFIX
        transfer = Transfer(
            id=uuid.uuid4().hex[:12],
            hash=file_hash,
            size=size,
            name=name,
            remote_name=remote_name,
            folder=self.download_folder,
            part_name=part_name,
            sources=_unique(sources),
        )
        self._transfers[transfer.id] = transfer
        log.info("Queued %s (%d bytes) from %d sources", p.printable(name), size, len(sources))
        self._save()
        self.transfer_added.emit(transfer.id)
        self._schedule()
        return transfer.id

    def add_sources(self, file_hash: str, sources: list[p.PeerAddress]) -> None:
        for transfer in self._transfers.values():
            if transfer.hash != file_hash or transfer.state is TransferState.DONE:
                continue
            merged = _unique(transfer.sources + list(sources))
            if merged != transfer.sources:
                transfer.sources = merged
                pump = self._pumps.get(transfer.id)
                if pump is not None:
                    pump.spec.sources[:] = merged
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
        self._save()
        self.transfer_changed.emit(transfer_id)
        self._schedule()

    def retry(self, transfer_id: str) -> None:
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

    def shutdown(self, timeout_ms: int = 10000) -> None:
        """Stop every pump (their .part and state stay) and save the queue."""
        self._retry_timer.stop()
        for pump in list(self._pumps.values()):
            pump.stop()
        for transfer_id, pump in list(self._pumps.items()):
            pump.wait(timeout_ms)
            transfer = self._transfers.get(transfer_id)
            if transfer is not None and transfer.state.is_active:
                transfer.state = TransferState.QUEUED  # resumes at the next start
        self._pumps.clear()
        self._save(wait=True)

    # ------------------------------------------------------------ running

    def _schedule(self) -> None:
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
            part_name=transfer.part_name,
            sources=list(transfer.sources),
            bad_sources=set(transfer.bad_sources),
        )
        pump = FilePump(spec, self.timeouts, self)
        transfer_id = transfer.id
        pump.progress.connect(
            lambda done, total, speed: self._on_progress(transfer_id, done, speed)
        )
        pump.state_changed.connect(
            lambda state, detail: pump.stop_requested or self._on_state(transfer_id, state, detail)
        )
        pump.bad_source.connect(lambda source, reason: self._on_bad_source(transfer_id, source))
        pump.finished.connect(lambda path: self._on_finished(transfer_id, path))
        pump.failed.connect(
            lambda reason, retryable, after: (
                pump.stop_requested or self._on_failed(transfer_id, reason, retryable, after)
            )
        )
        pump.done.connect(lambda: self._on_pump_done(transfer_id))
        self._pumps[transfer_id] = pump
        transfer.state = TransferState.CONNECTING
        transfer.error = ""
        self.transfer_changed.emit(transfer_id)
        pump.start()

    def _on_progress(self, transfer_id: str, done: int, speed: float) -> None:
        transfer = self._transfers.get(transfer_id)
        if transfer is None:
            return
        transfer.done_bytes = done
        transfer.speed = speed
        self.transfer_changed.emit(transfer_id)

    def _on_state(self, transfer_id: str, state: str, detail: str) -> None:
        transfer = self._transfers.get(transfer_id)
        if transfer is None or transfer.state is TransferState.PAUSED:
            return
        transfer.state = TransferState(state)
        if state in ("connecting", "downloading"):
            transfer.current_source = detail
        self.transfer_changed.emit(transfer_id)

    def _on_bad_source(self, transfer_id: str, source: str) -> None:
        transfer = self._transfers.get(transfer_id)
        if transfer is not None:
            transfer.bad_sources.add(source)
            self._save()

    def _on_finished(self, transfer_id: str, path: str) -> None:
        transfer = self._transfers.get(transfer_id)
        pump = self._pumps.get(transfer_id)
        if transfer is None:
            return
        if pump is not None and pump.digest is not None:
            self._digests[transfer_id] = pump.digest
        transfer.state = TransferState.DONE
        transfer.final_path = path
        transfer.done_bytes = transfer.size
        transfer.speed = 0.0
        transfer.error = ""
        log.info("File %s downloaded to %s", p.printable(transfer.name), path)
        self._save()
        self.transfer_changed.emit(transfer_id)
        self.transfer_finished.emit(transfer_id, path)

    def _on_failed(self, transfer_id: str, reason: str, retryable: bool, after: float) -> None:
        transfer = self._transfers.get(transfer_id)
        if transfer is None:
            return
        transfer.speed = 0.0
        transfer.error = reason
        if retryable and transfer.state is not TransferState.PAUSED:
            transfer.retries += 1
            delay = max(after, retry_delay(transfer.retries))
            transfer.state = TransferState.WAITING
            transfer.next_retry_at = time.monotonic() + delay
            log.info("Download of %s will retry in %.0f s: %s", transfer.name, delay, reason)
            self.sources_wanted.emit(transfer.hash, transfer.remote_name)
        elif transfer.state is not TransferState.PAUSED:
            transfer.state = TransferState.FAILED
            log.warning("Download of %s failed: %s", transfer.name, reason)
        self._save()
        self.transfer_changed.emit(transfer_id)
        self.transfer_failed.emit(transfer_id, reason)

    def _on_pump_done(self, transfer_id: str) -> None:
        pump = self._pumps.pop(transfer_id, None)
        if pump is not None:
            self._finished_pumps.append(pump)
            self._reaper.start()
        transfer = self._transfers.get(transfer_id)
        if transfer is not None and transfer.state.is_active:
            # Stopped without pause or cancel (shutdown): run again later.
            transfer.state = TransferState.QUEUED
        self._arm_retry_timer()
        self._schedule()

    def _arm_retry_timer(self) -> None:
        waiting = [
            t.next_retry_at for t in self._transfers.values() if t.state is TransferState.WAITING
        ]
        if not waiting:
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
        transfer = self._transfers.pop(transfer_id, None)
        pump = self._pumps.pop(transfer_id, None)
        if pump is not None:
            self._finished_pumps.append(pump)
            self._reaper.start()
        if transfer is None:
            return
        if self._cancel_delete.pop(transfer_id, False) and transfer.state is not TransferState.DONE:
            for path in (
                transfer.folder / transfer.part_name,
                transfer.folder / (transfer.part_name + STATE_SUFFIX),
            ):
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
            with contextlib.suppress(OSError):
                os.replace(
                    self.queue_path, self.queue_path.with_name(self.queue_path.name + ".bad")
                )
            return
        for obj in body.get("transfers", []) if isinstance(body, dict) else []:
            try:
                transfer = Transfer.from_json(obj)
            except (KeyError, TypeError, ValueError, p.ProtocolError) as exc:
                log.warning("Skipping a damaged entry of the download queue: %s", exc)
                continue
            self._transfers[transfer.id] = transfer

    def start(self) -> None:
        """Start the queued downloads (call once the app is up)."""
        self._schedule()


def _unique(sources: list[p.PeerAddress]) -> list[p.PeerAddress]:
    seen: dict[str, p.PeerAddress] = {}
    for source in sources:
        seen.setdefault(str(source), source)
    return list(seen.values())
