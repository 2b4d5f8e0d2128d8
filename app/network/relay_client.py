"""The peers' side of the index's relay (no Qt): the last resort when both are unreachable.

The downloader makes a fresh token, registers it with its ``RelayBroker`` and asks the index
for a relay (``RelayRequester.request_relay``, fire and forget). The index client settles the
waiter when the answer comes: ``RELAY_OK`` gives the relay's address (``answer``), an
``ERROR`` the reason it will not (``refuse``). Both peers then connect to the relay and send
the plaintext ``RELAYED`` line (``relay_out``); after it the holder is the TLS server, exactly
as on a pushed connection, and the downloader pins the holder's fingerprint.
"""

from __future__ import annotations

import socket
import threading
import time
from typing import Protocol

from app.network import protocol as p
from app.network.push import PushStopped, connect_and_announce, wait_interruptibly

#: An answer nobody waited for is forgotten after this long.
DEFAULT_EXPIRY = 60.0


class RelayRequester(Protocol):
    """Asks the index for a relay (the peer's index client implements it)."""

    #: What the index said of this peer's reachability (None: not told yet).
    reachable: bool | None

    def request_relay(self, holder: p.PeerAddress, token: str) -> None:
        """Thread-safe and fire-and-forget; the answer settles the broker's waiter."""
        ...


class RelayDenied(Exception):
    """The index will not relay (off, busy, holder gone): ``reason`` says it to a person."""

    def __init__(self, reason: str, busy: bool = False, retry_after: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.busy = busy
        self.retry_after = retry_after


class RelayWait:
    """One awaited answer to a RELAY: the relay's address, or why not."""

    def __init__(self, broker: RelayBroker, token: str, expires_at: float) -> None:
        self.token = token
        self.expires_at = expires_at
        self._broker = broker
        self._settled = threading.Event()
        self._address: tuple[str, int] | None = None
        self._denied: RelayDenied | None = None

    def wait(
        self, timeout: float, stop: threading.Event | None = None, tick: float = 0.25
    ) -> tuple[str, int] | None:
        """The relay's (host, port); None after ``timeout`` or once ``stop`` is set;
        RelayDenied when the index refused."""
        if not wait_interruptibly(self._settled, timeout, stop, tick):
            return None
        if self._denied is not None:
            raise self._denied
        return self._address

    def cancel(self) -> None:
        with self._broker._lock:
            self._broker._waits.pop(self.token, None)


class RelayBroker:
    """Tokens whose RELAY answer this peer's downloads wait for (thread-safe)."""

    def __init__(self, expiry: float = DEFAULT_EXPIRY) -> None:
        self.expiry = expiry
        self._lock = threading.Lock()
        self._waits: dict[str, RelayWait] = {}

    def expect(self, token: str) -> RelayWait:
        p.check_token(token)
        now = time.monotonic()
        wait = RelayWait(self, token, now + self.expiry)
        with self._lock:
            for old in [t for t, w in self._waits.items() if w.expires_at <= now]:
                del self._waits[old]
            if token in self._waits:
                raise ValueError("that relay token is already expected")
            self._waits[token] = wait
        return wait

    def answer(self, token: str, host: str, port: int) -> bool:
        """RELAY_OK: the relay is at host:port. False if nobody waits for ``token``."""
        wait = self._take(token)
        if wait is None:
            return False
        wait._address = (host, port)
        wait._settled.set()
        return True

    def refuse(self, token: str, reason: str, busy: bool = False, retry: int | None = None) -> bool:
        """The index refused the RELAY (or could not be asked). False if nobody waits."""
        wait = self._take(token)
        if wait is None:
            return False
        wait._denied = RelayDenied(reason, busy, retry)
        wait._settled.set()
        return True

    def pending(self) -> int:
        with self._lock:
            return len(self._waits)

    def _take(self, token: str) -> RelayWait | None:
        with self._lock:
            return self._waits.pop(token, None)


def relay_out(
    host: str,
    port: int,
    token: str,
    timeout: float = 10.0,
    stop: threading.Event | None = None,
    tick: float = 0.25,
) -> socket.socket:
    """Connect to the relay at host:port and send the RELAYED line; the socket, blocking.

    Raises OSError (TimeoutError after ``timeout``) or PushStopped. TLS follows on it.
    """
    return connect_and_announce(
        host, port, p.Relayed(token=p.check_token(token)), timeout, stop, tick
    )


__all__ = [
    "PushStopped",
    "RelayBroker",
    "RelayDenied",
    "RelayRequester",
    "RelayWait",
    "relay_out",
]
