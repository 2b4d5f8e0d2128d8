"""``Swarm``: the missing pieces of one file from every usable source at once (blocking, no Qt).

One connection and one worker thread per source, each with two 4 MiB buffers: a piece is
verified and written (``_Delivery``, on its own thread) while the next one is received, so
receiving (over TLS: decrypting) and hashing and writing use two cores (memory grows with
sources, not with pieces in flight). Each worker keeps about three
seconds of its own measured rate in flight as pipelined one-piece DOWNLOADs (at least one,
at most ``MAX_PIPELINE``), so a source is never idle between pieces; the ``PiecePicker``
gives each the next piece in order, then, once everything missing is being fetched, a copy
of a piece a slower source still owes (the endgame): the first copy that verifies wins and
the other is dropped. A corrupt piece marks only the source that sent it; a source that
answers ``BUSY`` waits ``retry_after`` while the others go on; one that stalls or fails is
dropped for this attempt; one far slower than the best is dropped when others can do its
share. Sources that appear meanwhile join at once.
"""

from __future__ import annotations

import contextlib
import logging
import math
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from app.download.picker import PiecePicker
from app.download.problems import Problem
from app.download.source import DownloadStopped, Route, SourceFailed
from app.network import pieces as pc
from app.network import protocol as p

if TYPE_CHECKING:
    from app.download.engine import PieceDownloader

log = logging.getLogger("napster.download")

#: Seconds of a source's measured rate kept in flight.
PIPELINE_SECONDS = 3.0
MAX_PIPELINE = 8
#: A source slower than this share of the best for ``SLOW_GRACE`` seconds is dropped.
SLOW_SHARE = 0.1
SLOW_GRACE = 15.0
#: How often the swarm looks at its sources and reports details (seconds).
TICK = 0.25
DETAILS_INTERVAL = 0.5
#: BUSY answers in a row after which a source is given up for this attempt.
MAX_BUSY = 20


@dataclass(frozen=True)
class SourceStats:
    """One source as the user sees it in the details pane."""

    address: str
    state: str = "connecting"  # connecting, downloading, busy, done, failed, dropped
    pieces: int = 0
    bytes: int = 0
    rate: float = 0.0
    detail: str = ""
    #: How the connection was made (None until it is): a relayed one is as fast as the
    #: index server's operator allows.
    route: Route | None = None


class _Delivery:
    """Verifies and writes one worker's received piece on its own thread while the worker
    receives the next one into the other buffer.

    One piece at most is in flight: handing over the next waits for it, and its error (a
    corrupt piece, a write that failed) is raised in the worker there or at ``close``.
    """

    def __init__(self, swarm: Swarm, worker: _Worker) -> None:
        self._swarm = swarm
        self._worker = worker
        self._buffers = [memoryview(bytearray(p.PIECE_SIZE)) for _ in range(2)]
        self._turn = 0
        self._executor: ThreadPoolExecutor | None = None
        self._pending: Future | None = None

    def buffer(self, length: int) -> memoryview:
        """Where to receive the next piece: never the buffer of the piece in flight."""
        return self._buffers[self._turn][:length]

    def hand_over(self, index: int, offset: int, piece: memoryview) -> bool:
        """Deliver ``piece`` (received into ``buffer()``) in the background; False when the
        previous delivery found the worker has nothing useful left to fetch."""
        useful = self.settle()
        if self._executor is None:
            self._executor = ThreadPoolExecutor(1, f"deliver {self._worker.address}")
        self._pending = self._executor.submit(
            self._swarm.deliver, self._worker, index, offset, piece
        )
        self._turn ^= 1
        return useful

    def settle(self) -> bool:
        """Wait for the piece in flight (raising its error); False as ``hand_over``."""
        pending, self._pending = self._pending, None
        return True if pending is None else pending.result()

    def close(self) -> None:
        """Wait for the piece in flight and end the thread; the piece's error is raised."""
        try:
            self.settle()
        finally:
            if self._executor is not None:
                self._executor.shutdown(wait=True)


class _Worker:
    """One source's connection, pipeline and figures."""

    def __init__(self, swarm: Swarm, address: p.PeerAddress) -> None:
        self.swarm = swarm
        self.address = address
        self.halt = threading.Event()
        self.outstanding: set[int] = set()  # pieces asked of it (guarded by the swarm lock)
        self.stats = SourceStats(str(address))
        self.rate = 0.0
        self.started_at = time.monotonic()  # when it began fetching (connected)
        self.slow_since: float | None = None
        self.ended = False
        self.outcome = ""  # "done", "failed", "dropped", "stopped", "corrupt"
        self.thread = threading.Thread(target=self._run, name=f"source {address}", daemon=True)

    def depth(self) -> int:
        watch = self.swarm.engine.watch
        if watch is not None and watch.readers():
            # A stream reads: a piece it needs (a seek) waits for at most the one in transit.
            # Measured with tests/bench/stream_bench.py: a seek to 80 % took 5.3 s with two
            # pieces queued ahead at 2.9 MB/s.
            return 1
        if self.rate <= 0:
            return 2
        wanted = math.ceil(self.rate * PIPELINE_SECONDS / p.PIECE_SIZE)
        return max(1, min(MAX_PIPELINE, wanted))

    def _run(self) -> None:
        swarm = self.swarm
        try:
            busy = 0
            while not self.halt.is_set():
                try:
                    self._serve()
                    self.outcome = self.outcome or "done"
                    return
                except SourceFailed as exc:
                    swarm.release_all(self)
                    if exc.retry_after is not None and busy < MAX_BUSY and not exc.corrupt:
                        busy += 1
                        swarm.set_stats(self, state="busy", detail=f"busy: {exc.retry_after} s")
                        if self.halt.wait(max(0.5, float(exc.retry_after))):
                            break
                        continue
                    swarm.source_failed(self, exc)
                    self.outcome = "corrupt" if exc.corrupt else "failed"
                    return
            self.outcome = self.outcome or "stopped"
        except DownloadStopped:
            self.outcome = self.outcome or "stopped"
        except BaseException as exc:  # a write error or a bug: the whole download stops
            swarm.fatal_error(exc)
            self.outcome = "failed"
        finally:
            swarm.release_all(self)
            self.ended = True
            swarm.worker_ended(self)

    def _serve(self) -> None:
        swarm = self.swarm
        engine = swarm.engine
        state = engine.state
        by_push = engine.push is not None and not self.address.reachable
        swarm.set_stats(
            self,
            state="connecting",
            detail="asked to connect to us" if by_push else "",
            route=None,
        )
        conn = engine._connect(self.address, engine.timeouts, self.halt, engine.limiter)
        self.started_at = time.monotonic()
        delivery = _Delivery(swarm, self)
        try:
            swarm.set_stats(self, state="downloading", route=getattr(conn, "route", None))
            swarm.report_downloading()
            pipeline: list[tuple[int, int, int, int]] = []  # request id, piece, offset, length
            last = time.monotonic()
            while True:
                for index in swarm.assign(self, len(pipeline)):
                    offset, length = pc.piece_range(index, state.size)
                    request_id = conn.next_request_id()
                    conn.send_download(request_id, state.hash, offset, length)
                    pipeline.append((request_id, index, offset, length))
                if not pipeline:
                    if not delivery.settle():
                        return  # only copies others already delivered were left: cancelled
                    if swarm.wait_for_work(self):
                        return
                    continue
                request_id, index, offset, length = pipeline[0]
                conn.read_download_ok(request_id, state.hash, offset, length)
                piece = delivery.buffer(length)
                conn.read_exact(piece)
                pipeline.pop(0)
                now = time.monotonic()
                if length >= p.PIECE_SIZE // 4:  # a tiny last piece says nothing of the rate
                    instant = length / max(now - last, 1e-6)
                    self.rate = instant if not self.rate else 0.7 * self.rate + 0.3 * instant
                last = now
                if not delivery.hand_over(index, offset, piece):
                    return  # only copies others already delivered were left: cancelled
        finally:
            try:
                delivery.close()
            finally:
                conn.close()


class Swarm:
    """Runs one worker per usable source until every piece is verified (or none can help)."""

    def __init__(self, engine: PieceDownloader, fd: int, max_sources: int = 8) -> None:
        self.engine = engine
        self.fd = fd
        self.max_sources = max(1, max_sources)
        self.picker = PiecePicker(engine.state.verified)
        self.lock = threading.Condition()
        self.workers: dict[p.PeerAddress, _Worker] = {}
        self.given_up: set[p.PeerAddress] = set()
        self.failures: list[str] = []
        self.retry_after: float | None = None
        self.fatal: BaseException | None = None
        self._last_details = 0.0
        self._watch_version = -1

    # ------------------------------------------------------------ supervisor

    def run(self) -> None:
        """Until done; raises DownloadStopped, the fatal error, or returns with pieces missing."""
        engine = self.engine
        try:
            while True:
                with self.lock:
                    if self.picker.finished() or self.fatal is not None:
                        break
                if engine.stop.is_set():
                    raise DownloadStopped()
                self._start_workers()
                if not self._live():
                    break
                self._drop_slow()
                self._report_details()
                engine._report()  # a piece's progress skipped as too soon is told now
                with self.lock:
                    self.lock.wait(TICK)
        finally:
            for worker in list(self.workers.values()):
                worker.halt.set()
            for worker in list(self.workers.values()):
                worker.thread.join()
            self._report_details(force=True)
        if self.fatal is not None:
            raise self.fatal
        if engine.stop.is_set() and not self.picker.finished():
            raise DownloadStopped()

    def _live(self) -> list[_Worker]:
        return [w for w in self.workers.values() if not w.ended]

    def _start_workers(self) -> None:
        live = self._live()
        for address in self.engine.sources.usable():
            if len(live) >= self.max_sources:
                return
            worker = self.workers.get(address)
            if address in self.given_up or (worker is not None and not worker.ended):
                continue
            if (
                worker is not None
                and worker.outcome in ("done", "cancelled")
                and not self.picker.has_unassigned()
            ):
                continue  # it left for want of work: back only when there is some
            worker = _Worker(self, address)
            self.workers[address] = worker
            live.append(worker)
            worker.thread.start()

    def _drop_slow(self) -> None:
        now = time.monotonic()
        with self.lock:
            active = [w for w in self._live() if w.rate > 0 and w.stats.state == "downloading"]
            if len(active) < 2:
                return
            best = max(w.rate for w in active)
            for worker in active:
                if worker.rate >= best * SLOW_SHARE:
                    worker.slow_since = None
                    continue
                worker.slow_since = worker.slow_since or now
                if now - worker.slow_since >= SLOW_GRACE:
                    log.info("Dropping %s: %.0f B/s, best %.0f", worker.address, worker.rate, best)
                    self.given_up.add(worker.address)
                    worker.outcome = "dropped"
                    self._set_stats_locked(worker, state="dropped", detail="far slower than others")
                    worker.halt.set()

    # ------------------------------------------------------------ workers call these

    def assign(self, worker: _Worker, in_pipeline: int) -> list[int]:
        """Pieces to add to ``worker``'s pipeline now (copies only when it has nothing else)."""
        watch = self.engine.watch
        with self.lock:
            if watch is not None and watch.version != self._watch_version:
                self._watch_version = watch.version
                self.picker.set_priority(watch.priority())
            live = max(1, len(self._live()))
            alone = live <= 1
            streaming = watch is not None and watch.readers() > 0
            # No source queues more than its share of what is left: a deep pipeline at one
            # source near the end would leave the others nothing but copies (measured: 3 of
            # 13 pieces fetched twice with three equal sources).
            depth = min(worker.depth(), max(1, math.ceil(self.picker.missing_count() / live)))
            chosen = []
            while in_pipeline + len(chosen) < depth:
                idle = in_pipeline + len(chosen) == 0
                index = self.picker.next_for(
                    worker.address,
                    endgame=idle,
                    worth_copying=lambda piece: self._worth_copying(worker, piece),
                    # The urgent pieces (first, last, a stream's) each go to a source with
                    # nothing queued, so they come in parallel, not one behind another.
                    urgent=idle or alone,
                    help_late=streaming,
                )
                if index is None:
                    break
                worker.outstanding.add(index)
                chosen.append(index)
            return chosen

    def _worth_copying(self, worker: _Worker, index: int) -> bool:
        """Whether ``worker`` would deliver ``index`` much sooner than those fetching it.

        Each holder is expected to deliver it after the pieces it owes before it, at its own
        rate; a copy is asked for only when ``worker`` would take less than half that time
        (so equal sources do not waste each other's bandwidth at the end).
        """
        if worker.rate <= 0:
            return False
        mine = p.PIECE_SIZE / worker.rate
        for other in self.workers.values():
            if other is worker or index not in other.outstanding:
                continue
            ahead = sum(1 for i in other.outstanding if i <= index)
            if other.rate > 0:
                theirs = ahead * p.PIECE_SIZE / other.rate
            elif time.monotonic() - other.started_at > 2 * mine:
                theirs = float("inf")  # no piece yet in twice the time we need for one
            else:
                return False  # just started (or started again): give it a chance
            if mine >= 0.5 * theirs:
                return False
        return True

    def wait_for_work(self, worker: _Worker) -> bool:
        """Nothing to ask for now: True when the file is complete, else wait a little."""
        with self.lock:
            if self.picker.finished():
                return True
            self.lock.wait(TICK)
        if worker.halt.is_set() or self.engine.stop.is_set():
            raise DownloadStopped()
        return False

    def deliver(self, worker: _Worker, index: int, offset: int, piece: memoryview) -> bool:
        """A piece arrived; False when ``worker`` has nothing useful left to fetch."""
        engine = self.engine
        with self.lock:
            engine.received_bytes += len(piece)
            stats = worker.stats
            self._set_stats_locked(worker, bytes=stats.bytes + len(piece), rate=worker.rate)
            duplicate = self.picker.is_done(index)
        if not duplicate:
            if not pc.verify_piece(piece, engine.state.digests[index]):
                raise SourceFailed(f"piece {index} failed verification", corrupt=True)
            engine._write(self.fd, piece, offset)
        with self.lock:
            worker.outstanding.discard(index)
            # Two copies may verify at once in the endgame: only the first one counts.
            duplicate = duplicate or self.picker.is_done(index)
            if duplicate:
                log.debug("Piece %d from %s came second: not used", index, worker.address)
                self.picker.release(index, worker.address)
            else:
                others = self.picker.complete(index) - {worker.address}
                engine.state.verified[index] = 1
                engine.done_bytes += len(piece)
                if engine.watch is not None:
                    engine.watch.piece_verified(index)
                self._set_stats_locked(worker, pieces=worker.stats.pieces + 1)
                for other in others:
                    self._cancel_copy(other, index)
            self.lock.notify_all()
        engine._report()
        engine._maybe_save_state()
        return not worker.halt.is_set()

    def _cancel_copy(self, address: p.PeerAddress, index: int) -> None:
        """Another source delivered ``index`` first: the slower copy is not wanted any more.
        The protocol cannot cancel one request, so a source owing only such copies is
        disconnected (it may be asked again if pieces go missing)."""
        worker = self.workers.get(address)
        if worker is None:
            return
        if worker.outstanding and all(self.picker.is_done(i) for i in worker.outstanding):
            worker.outcome = "cancelled"
            self._set_stats_locked(worker, state="done", detail="its copies arrived first")
            worker.halt.set()

    def release_all(self, worker: _Worker) -> None:
        with self.lock:
            for index in worker.outstanding:
                self.picker.release(index, worker.address)
            worker.outstanding.clear()
            self.lock.notify_all()

    def source_failed(self, worker: _Worker, exc: SourceFailed) -> None:
        engine = self.engine
        with self.lock:
            self.failures.append(f"{worker.address}: {exc.reason}")
            if exc.retry_after is not None:
                self.retry_after = exc.retry_after
            self.given_up.add(worker.address)
            self._set_stats_locked(
                worker, state="corrupt" if exc.corrupt else "failed", detail=exc.reason
            )
        if exc.corrupt:
            engine._mark_bad(worker.address, exc.reason)
        log.info("Source %s dropped: %s", worker.address, exc.reason)
        engine._report(force=True)  # its last pieces may not have been reported yet

    def fatal_error(self, exc: BaseException) -> None:
        from app.download.engine import DownloadFailed

        if not isinstance(exc, DownloadFailed):
            log.error("Source worker crashed", exc_info=exc)
            exc = DownloadFailed(Problem.UNEXPECTED, error=str(exc))
        with self.lock:
            if self.fatal is None:
                self.fatal = exc
            self.lock.notify_all()
        for worker in list(self.workers.values()):
            worker.halt.set()

    def worker_ended(self, worker: _Worker) -> None:
        with self.lock:
            if worker.stats.state in ("connecting", "downloading", "busy"):
                state = "done" if worker.outcome == "done" else "idle"
                self._set_stats_locked(worker, state=state)
            self.lock.notify_all()

    def report_downloading(self) -> None:
        """The engine's phase: downloading, from these sources."""
        from app.download.engine import Phase

        with self.lock:
            names = [str(w.address) for w in self._live() if w.stats.state == "downloading"]
        self.engine._on_phase(Phase.DOWNLOADING, ", ".join(names))

    def set_stats(self, worker: _Worker, **changes) -> None:
        with self.lock:
            self._set_stats_locked(worker, **changes)

    def _set_stats_locked(self, worker: _Worker, **changes) -> None:
        worker.stats = replace(worker.stats, **changes)

    # ------------------------------------------------------------ reporting

    def _report_details(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last_details < DETAILS_INTERVAL:
            return
        self._last_details = now
        with self.lock:
            stats = [w.stats for w in self.workers.values()]
            states = self.picker.states()
        known = self.engine.sources.known()
        with contextlib.suppress(Exception):
            self.engine._on_details(states, stats, known)
