"""A shared speed limit for transfers (pure, thread-safe, no Qt).

One ``RateLimiter`` is shared by every transfer in one direction: each asks for the bytes
it is about to move, in chunks of at most ``CHUNK`` bytes, so concurrent transfers share
the limit about equally. The rate can change at any time and takes effect at once.
"""

from __future__ import annotations

import re
import threading
import time

#: Largest amount a transfer asks for at once while a limit is on.
CHUNK = 64 * 1024
#: Longest sleep between looks at the stop flag and at a changed rate.
TICK = 0.05

_RATE = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*([kKmMgG]?)(?:i?[bB](?:/s)?)?\s*$")
_UNITS = {"": 1, "k": 1000, "m": 1000**2, "g": 1000**3}


def parse_rate(text: str) -> int:
    """``"10M"`` -> 10,000,000 bytes per second; ``"0"`` means no limit. ValueError if unclear."""
    match = _RATE.match(text)
    if match is None:
        raise ValueError(f"{text!r} is not a rate (examples: 500K, 10M, 1.5G; 0 = no limit)")
    value = float(match.group(1)) * _UNITS[match.group(2).lower()]
    if value != 0 and value < 1000:
        raise ValueError(f"{text!r} is below the smallest limit, 1K (1 KB/s)")
    return int(value)


class RateLimiter:
    """A token bucket of ``rate`` bytes per second (0 = unlimited) with a short burst."""

    def __init__(self, rate: int = 0, burst_seconds: float = 0.1) -> None:
        self._lock = threading.Lock()
        self._rate = max(0, int(rate))
        self._burst_seconds = burst_seconds
        self._tokens = 0.0
        self._stamp = time.monotonic()

    @property
    def rate(self) -> int:
        return self._rate

    def set_rate(self, rate: int) -> None:
        with self._lock:
            self._refill(time.monotonic())
            self._rate = max(0, int(rate))
            self._tokens = min(self._tokens, self._capacity())

    def chunk(self, wanted: int) -> int:
        """How much to move in one step: all of it when unlimited, else at most ``CHUNK``."""
        return wanted if self._rate == 0 else max(1, min(wanted, CHUNK))

    def consume(self, amount: int, stop: threading.Event | None = None) -> bool:
        """Wait until ``amount`` bytes may move; False if ``stop`` was set meanwhile."""
        while True:
            with self._lock:
                if self._rate == 0:
                    return True
                now = time.monotonic()
                self._refill(now)
                if self._tokens >= min(amount, self._capacity()) or self._tokens >= amount:
                    self._tokens -= amount
                    return True
                wait = (min(amount, self._capacity()) - self._tokens) / self._rate
            if stop is not None:
                if stop.wait(min(wait, TICK)):
                    return False
            else:
                time.sleep(min(wait, TICK))

    def _capacity(self) -> float:
        return max(CHUNK, self._rate * self._burst_seconds)

    def _refill(self, now: float) -> None:
        if self._rate:
            self._tokens = min(self._capacity(), self._tokens + (now - self._stamp) * self._rate)
        self._stamp = now
