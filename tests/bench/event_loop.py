"""What the UI benchmarks share: a probe of the event loop's lateness and running the loop
until a condition holds (as the app runs it, not with pytest-qt)."""

from __future__ import annotations

import time
from collections.abc import Callable

from PySide6.QtCore import QEventLoop, Qt, QTimer


class Probe:
    """Records how late a precise timer of ``interval_ms`` fires: how long the loop was busy."""

    def __init__(self, interval_ms: int = 10) -> None:
        self.interval_ms = interval_ms
        self.late_ms: list[float] = []
        self._last = 0.0
        self._timer = QTimer()
        self._timer.setTimerType(Qt.TimerType.PreciseTimer)
        self._timer.setInterval(interval_ms)
        self._timer.timeout.connect(self._tick)

    def start(self) -> None:
        self.late_ms = []
        self._last = time.perf_counter()
        self._timer.start()

    def stop(self) -> list[float]:
        """Every lateness recorded since ``start`` (the time up to now counts too)."""
        self._timer.stop()
        self._tick()
        return self.late_ms

    def _tick(self) -> None:
        now = time.perf_counter()
        self.late_ms.append(max(0.0, (now - self._last) * 1000 - self.interval_ms))
        self._last = now


def run_until(condition: Callable[[], bool], timeout_s: float, check_ms: int = 50) -> None:
    """Run the event loop until ``condition()`` holds; TimeoutError after ``timeout_s``."""
    if condition():
        return
    loop = QEventLoop()
    deadline = time.monotonic() + timeout_s

    def check() -> None:
        if condition() or time.monotonic() > deadline:
            loop.quit()

    timer = QTimer(interval=check_ms)
    timer.timeout.connect(check)
    timer.start()
    loop.exec()
    timer.stop()
    if not condition():
        raise TimeoutError(f"not done within {timeout_s:g} s")
