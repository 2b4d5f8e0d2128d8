"""Waiting in tests without fixed sleeps: poll a condition until it holds or a deadline.

For code with no Qt loop to spin (threads, other processes); tests on a Qt loop use
``qtbot.waitUntil``. Between two looks the caller's thread waits on an event nobody sets,
``POLL`` at a time, so a condition that holds early is seen early.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

POLL = 0.02


def poll(condition: Callable[[], object], timeout: float) -> bool:
    """True as soon as ``condition()`` is true; False if it is still false at ``timeout``."""
    deadline = time.monotonic() + timeout
    pause = threading.Event()
    while not condition():
        if time.monotonic() >= deadline:
            return bool(condition())
        pause.wait(POLL)
    return True


def wait_until(condition: Callable[[], object], timeout: float, what: str) -> object:
    """Poll ``condition`` until it is true and return its value; fail with ``what`` after
    ``timeout`` seconds."""
    found: list[object] = []

    def holds() -> bool:
        value = condition()
        if value:
            found.append(value)
        return bool(value)

    if not poll(holds, timeout):
        raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
    return found[-1]
