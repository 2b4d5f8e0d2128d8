"""Whether a peer's listen port answers from outside: the index's connect-back at JOIN.

As eD2k's servers do, the index connects to the address it saw the peer come from and the
port the peer announced. Here the check is a TLS handshake pinned to the fingerprint the
peer announced, so a port that answers for someone else (another program, or a router
forwarding it elsewhere) does not count. A peer that cannot be reached is still indexed:
downloaders are told ``reachable: false`` and ask it to connect out (push).
"""

from __future__ import annotations

import contextlib
import logging
import ssl
from concurrent.futures import ThreadPoolExecutor

from PySide6.QtCore import QObject, Signal

from app.network import tls

log = logging.getLogger("napster.server")

#: Seconds a connect-back may take (connect and handshake) before the port counts as closed.
CHECK_SECONDS = 4.0
#: Connect-backs under way at once; more wait their turn (a burst of JOINs after a restart).
MAX_CHECKS = 16


def port_answers(host: str, port: int, fingerprint: str, timeout: float = CHECK_SECONDS) -> bool:
    """True if ``host:port`` completes a TLS handshake with the certificate ``fingerprint``."""
    try:
        with tls.connect_pinned((host, port), fingerprint, timeout):
            return True
    except (OSError, ssl.SSLError, tls.HandshakeStopped) as exc:
        log.debug("Connect-back to %s:%d failed: %s", host, port, exc)
        return False


class ReachabilityChecker(QObject):
    """Runs connect-backs on a few threads; ``checked`` comes back on the owner's thread."""

    #: peer id, host, port, reachable
    checked = Signal(int, str, int, bool)

    def __init__(self, timeout: float = CHECK_SECONDS, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.timeout = timeout
        self._pool = ThreadPoolExecutor(MAX_CHECKS, thread_name_prefix="connect-back")
        self._closed = False

    def check(self, peer_id: int, host: str, port: int, fingerprint: str) -> None:
        if self._closed:
            return
        self._pool.submit(self._run, peer_id, host, port, fingerprint)

    def _run(self, peer_id: int, host: str, port: int, fingerprint: str) -> None:
        reachable = port_answers(host, port, fingerprint, self.timeout)
        if not self._closed:
            # RuntimeError: the server is gone (the program is ending).
            with contextlib.suppress(RuntimeError):
                self.checked.emit(peer_id, host, port, reachable)

    def close(self) -> None:
        """No more checks; those under way end within ``timeout`` and report nothing."""
        self._closed = True
        self._pool.shutdown(wait=False, cancel_futures=True)
