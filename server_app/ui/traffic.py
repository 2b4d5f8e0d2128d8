"""Request rates and the last hour's history for the admin window's counters and chart.

Pure Python (no Qt): the window feeds it the server's signals and a clock.
"""

from __future__ import annotations

from collections import Counter, deque
from dataclasses import dataclass

RATE_WINDOW_SECONDS = 60
HISTORY_SECONDS = 3600
SAMPLE_SECONDS = 10


@dataclass(frozen=True)
class TrafficSample:
    """One point of the chart: online peers and requests in the minute before ``at``."""

    at: float
    peers: int
    requests_per_minute: int


class TrafficStats:
    """Counts requests per op in one-second buckets and keeps an hour of samples."""

    def __init__(self) -> None:
        self._seconds: deque[tuple[int, Counter[str]]] = deque()
        self.samples: deque[TrafficSample] = deque(maxlen=HISTORY_SECONDS // SAMPLE_SECONDS)
        self.protocol_errors = 0
        self.refused_connections = 0

    def note_request(self, op: str, now: float) -> None:
        second = int(now)
        if not self._seconds or self._seconds[-1][0] != second:
            self._seconds.append((second, Counter()))
            self._forget_before(second - RATE_WINDOW_SECONDS)
        self._seconds[-1][1][op] += 1

    def per_minute(self, op: str | None, now: float) -> int:
        """Requests of ``op`` (every op when None) in the last minute."""
        since = int(now) - RATE_WINDOW_SECONDS
        self._forget_before(since)
        if op is None:
            return sum(sum(counts.values()) for _, counts in self._seconds)
        return sum(counts[op] for _, counts in self._seconds)

    def sample(self, now: float, peers: int) -> TrafficSample:
        point = TrafficSample(now, peers, self.per_minute(None, now))
        self.samples.append(point)
        return point

    def _forget_before(self, second: int) -> None:
        while self._seconds and self._seconds[0][0] <= second:
            self._seconds.popleft()
