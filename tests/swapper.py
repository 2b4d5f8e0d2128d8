"""Swap a folder and a symbolic link back and forth, atomically, as fast as possible (Linux).

``renameat2(RENAME_EXCHANGE)`` through ctypes: at every instant one of the two names is the
real folder and the other the link, which is what an attacker racing a sharer does.
"""

from __future__ import annotations

import ctypes
import errno
import os
import threading
from pathlib import Path

import pytest

AT_FDCWD = -100
RENAME_EXCHANGE = 2


def _libc_exchange():
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        function = libc.renameat2
    except (OSError, AttributeError):
        return None
    function.argtypes = [
        ctypes.c_int,
        ctypes.c_char_p,
        ctypes.c_int,
        ctypes.c_char_p,
        ctypes.c_uint,
    ]
    return function


_renameat2 = _libc_exchange()


def exchange(a: Path, b: Path) -> None:
    """Swap the names ``a`` and ``b`` in one step."""
    if _renameat2 is None:
        raise OSError(errno.ENOSYS, "renameat2 is not available")
    if _renameat2(AT_FDCWD, os.fsencode(a), AT_FDCWD, os.fsencode(b), RENAME_EXCHANGE) != 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code))


class Swapper:
    """A thread exchanging two names until stopped; ``swaps`` counts the exchanges."""

    def __init__(self, a: Path, b: Path) -> None:
        try:
            exchange(a, b)
            exchange(a, b)
        except OSError as exc:
            pytest.skip(f"cannot exchange names atomically here: {exc}")
        self.a, self.b = a, b
        self.swaps = 0
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="swapper", daemon=True)

    def __enter__(self) -> Swapper:
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._stop.set()
        self._thread.join()
        if self.error is not None:
            raise self.error

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                exchange(self.a, self.b)
                self.swaps += 1
        except BaseException as exc:
            self.error = exc
