"""``PieceWatch``: what a running download has verified, for readers that cannot wait for the
end (a video stream), and where those readers are (so the engine fetches their pieces first).

Thread-safe, no Qt: the engine's threads mark pieces, the stream server's threads wait.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from app.network import pieces as pc
from app.network import protocol as p

#: Pieces fetched ahead of a reader at least, and at most (the window widens with the rate).
MIN_WINDOW = 4
MAX_WINDOW = 32
#: Seconds of download rate the window holds.
WINDOW_SECONDS = 20.0
#: When a stream starts: the first piece and the last 1 % (a video's index often sits at the
#: end of the file), at least one piece.
TAIL_SHARE = 0.01
#: Before any stream, only the very end comes early (the rest of the tail waits for Play).
TAIL_SHARE_BEFORE_PLAY = 0.0


class TransferGone(Exception):
    """The download failed or was cancelled: a reader waiting for its pieces gives up."""


@dataclass
class _Reader:
    position: int  # byte offset it reads next


class PieceWatch:
    """Verified pieces of one file, readers' positions, and a condition to wait on."""

    def __init__(self, file_hash: str, size: int) -> None:
        self.hash = file_hash
        self.size = size
        self.count = pc.piece_count(size)
        self._cond = threading.Condition()
        self._verified = bytearray(self.count)
        self._readers: dict[int, _Reader] = {}
        self._next_reader = 0
        self._gone: str | None = None
        self._rate = 0.0
        #: grows whenever the priority list may have changed
        self.version = 0

    # ------------------------------------------------------------ the engine's side

    def set_verified(self, verified: bytes | bytearray) -> None:
        with self._cond:
            self._verified[:] = verified
            self._gone = None
            self._cond.notify_all()

    def piece_verified(self, index: int) -> None:
        with self._cond:
            self._verified[index] = 1
            self.version += 1
            self._cond.notify_all()

    def set_rate(self, bytes_per_second: float) -> None:
        self._rate = bytes_per_second

    def gone(self, reason: str) -> None:
        """The download will not deliver more pieces (failed, cancelled)."""
        with self._cond:
            self._gone = reason
            self._cond.notify_all()

    def revive(self) -> None:
        """The download runs again (resumed, retried)."""
        with self._cond:
            self._gone = None

    def priority(self) -> list[int]:
        """Pieces readers need soon, most urgent first (the engine fetches these first)."""
        with self._cond:
            readers = list(self._readers.values())
            verified = bytes(self._verified)
        window = int(self._rate * WINDOW_SECONDS / p.PIECE_SIZE)
        window = max(MIN_WINDOW, min(MAX_WINDOW, window))
        wanted: list[int] = []
        for reader in readers:
            if not self.count:
                break
            first = min(reader.position // p.PIECE_SIZE, self.count - 1)
            # The piece it reads now, then the first piece and the last 1 % (a video's index
            # often sits at the end), then the window ahead of it.
            # The very end first (most of a video's index), then the next piece to read, then
            # the rest of the last 1 % and the window: a player reading on never waits
            # behind a tail it may not need (measured: a 1.65 s stall without it).
            tail = self._tail()
            end = (
                tail[:2]
                if len(tail) > 1 and tail[1] == self.count - 2 and self._short_last()
                else tail[:1]
            )
            wanted.extend([first, 0, *end, first + 1, *tail])
            wanted.extend(range(first + 1, min(self.count, first + window)))
        if not readers and self.count:
            # No stream yet: the first and the last piece first, the rest in order (what a
            # player reads before anything else), so Play starts at once when pressed.
            wanted = [0, *self._tail(TAIL_SHARE_BEFORE_PLAY)]
        seen: set[int] = set()
        return [
            i
            for i in wanted
            if i < self.count and not verified[i] and not (i in seen or seen.add(i))
        ]

    def _short_last(self) -> bool:
        """The last piece is under half a piece: a video's index then spans two pieces."""
        return self.count > 1 and self.size - (self.count - 1) * p.PIECE_SIZE < p.PIECE_SIZE // 2

    def _tail(self, share: float = TAIL_SHARE) -> list[int]:
        """The last ``share`` of the pieces, at least one; the last piece first. A short last
        piece holds only part of a video's index, so then the one before it too (measured
        with tests/bench/stream_bench.py: first frame 2.6 s with four sources without it)."""
        count = max(1, round(self.count * share))
        if self._short_last():
            count = max(count, 2)
        return list(range(self.count - 1, max(-1, self.count - 1 - count), -1))

    # ------------------------------------------------------------ the readers' side

    def open_reader(self, position: int = 0) -> int:
        with self._cond:
            self._next_reader += 1
            self._readers[self._next_reader] = _Reader(position)
            self.version += 1
            return self._next_reader

    def move_reader(self, reader: int, position: int) -> None:
        with self._cond:
            state = self._readers.get(reader)
            if state is not None and state.position // p.PIECE_SIZE != position // p.PIECE_SIZE:
                self.version += 1
            if state is not None:
                state.position = position

    def close_reader(self, reader: int) -> None:
        with self._cond:
            self._readers.pop(reader, None)
            self.version += 1

    def readers(self) -> int:
        with self._cond:
            return len(self._readers)

    def lead(self, reader_position: int) -> int:
        """Verified bytes from ``reader_position`` on, without a gap (how far ahead we are)."""
        with self._cond:
            index = reader_position // p.PIECE_SIZE
            while index < self.count and self._verified[index]:
                index += 1
        return max(0, min(self.size, index * p.PIECE_SIZE) - reader_position)

    def stream_lead(self) -> int | None:
        """None without readers; else how many verified bytes the slowest reader has ahead."""
        with self._cond:
            positions = [reader.position for reader in self._readers.values()]
        return min(self.lead(position) for position in positions) if positions else None

    def wait_for(self, index: int, timeout: float) -> bool:
        """Wait until piece ``index`` is verified; False on timeout; TransferGone if the
        download will not deliver it."""
        with self._cond:
            return self._cond.wait_for(
                lambda: self._verified[index] or self._gone is not None, timeout
            ) and self._check(index)

    def _check(self, index: int) -> bool:
        if self._verified[index]:
            return True
        raise TransferGone(self._gone or "the download stopped")

    def is_verified(self, index: int) -> bool:
        with self._cond:
            return bool(self._verified[index])
