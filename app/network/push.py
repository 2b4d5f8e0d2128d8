"""Push: a firewalled holder connects out to the downloader (no Qt).

The downloader makes a fresh token, registers it with its ``PushBroker`` and asks the index
to relay a push request (``PushRequester``). The holder connects to the downloader's listen
port and sends one plaintext ``PUSHED`` line with the token (``push_out``); the downloader's
upload server reads that line and hands the raw socket to whoever waits for the token
(``PushBroker.deliver``). TLS then runs with the holder as the server, so the downloader
pins the holder's fingerprint exactly as on a direct connection.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import select
import socket
import threading
import time
from typing import Protocol

from app.network import protocol as p

#: The longest first line a pushed connection may send (a PUSHED line is about 60 bytes).
PUSHED_LINE_LIMIT = 256
#: How long the listen port waits for that first line to end (seconds).
PUSHED_LINE_TIMEOUT = 3.0
#: A waiter nobody delivered to is forgotten after this long, whatever its own timeout.
DEFAULT_EXPIRY = 60.0


def new_token() -> str:
    """128 random bits as 32 lowercase hex characters: one per push attempt."""
    return secrets.token_hex(16)


class PushRequester(Protocol):
    """Asks the index to relay a push request to a holder (the peer implements it)."""

    def request_push(self, holder: p.PeerAddress, token: str) -> None:
        """Thread-safe and fire-and-forget: called from download worker threads."""
        ...


def wait_interruptibly(
    event: threading.Event, timeout: float, stop: threading.Event | None, tick: float = 0.25
) -> bool:
    """True once ``event`` is set; False after ``timeout`` or once ``stop`` is set (looked at
    every ``tick`` seconds)."""
    deadline = time.monotonic() + timeout
    while True:
        if stop is not None and stop.is_set():
            return False
        remaining = deadline - time.monotonic()
        if event.wait(max(0.0, min(tick, remaining))):
            return True
        if remaining <= 0:
            return False


class PushWait:
    """One expected pushed connection; ``wait`` returns its socket, ``cancel`` gives up."""

    def __init__(self, broker: PushBroker, token: str, expires_at: float) -> None:
        self.token = token
        self.expires_at = expires_at
        self._broker = broker
        self._arrived = threading.Event()
        self._sock: socket.socket | None = None
        self._taken = False
        self._cancelled = False

    def _offer(self, sock: socket.socket) -> bool:
        with self._broker._lock:
            if self._cancelled:
                return False
            self._sock = sock
        self._arrived.set()
        return True

    def wait(
        self, timeout: float, stop: threading.Event | None = None, tick: float = 0.25
    ) -> socket.socket | None:
        """The pushed socket, or None after ``timeout`` or once ``stop`` is set."""
        if not wait_interruptibly(self._arrived, timeout, stop, tick):
            return None
        with self._broker._lock:
            if self._sock is None or self._taken:
                return None
            self._taken = True
            return self._sock

    def cancel(self) -> None:
        """Stop waiting; a socket delivered but not taken is closed."""
        with self._broker._lock:
            self._cancelled = True
            self._broker._waits.pop(self.token, None)
            orphan = self._sock if not self._taken else None
            self._taken = True
        if orphan is not None:
            with contextlib.suppress(OSError):
                orphan.close()


class PushBroker:
    """Tokens this peer waits for, and the pushed sockets its listen port hands over."""

    def __init__(self, expiry: float = DEFAULT_EXPIRY) -> None:
        self.expiry = expiry
        self._lock = threading.Lock()
        self._waits: dict[str, PushWait] = {}

    def expect(self, token: str, expiry: float | None = None) -> PushWait:
        """Register a waiter for ``token`` (single use; forgotten after ``expiry`` s)."""
        p.check_token(token)
        now = time.monotonic()
        wait = PushWait(self, token, now + (self.expiry if expiry is None else expiry))
        with self._lock:
            self._purge(now)
            if token in self._waits:
                raise ValueError("that push token is already expected")
            self._waits[token] = wait
        return wait

    def expects(self, token: str) -> bool:
        with self._lock:
            wait = self._waits.get(token)
            return wait is not None and wait.expires_at > time.monotonic()

    def deliver(self, token: str, sock: socket.socket) -> bool:
        """Hand ``sock`` to the waiter for ``token``; False if none (the caller closes it)."""
        with self._lock:
            self._purge(time.monotonic())
            wait = self._waits.pop(token, None)  # single use, whatever happens next
        return wait is not None and wait._offer(sock)

    def pending(self) -> int:
        with self._lock:
            self._purge(time.monotonic())
            return len(self._waits)

    def _purge(self, now: float) -> None:
        for token in [t for t, w in self._waits.items() if w.expires_at <= now]:
            del self._waits[token]


class PushStopped(Exception):
    """The push was abandoned because ``stop`` was set."""


def push_out(
    host: str,
    port: int,
    token: str,
    timeout: float = 10.0,
    stop: threading.Event | None = None,
    tick: float = 0.25,
) -> socket.socket:
    """Connect to a downloader at host:port and send the PUSHED line; the socket, blocking.

    Raises OSError (TimeoutError after ``timeout``) or PushStopped. TLS is the caller's
    next step, as the server.
    """
    return connect_and_announce(
        host, port, p.Pushed(token=p.check_token(token)), timeout, stop, tick
    )


def connect_and_announce(
    host: str,
    port: int,
    first: p.Message,
    timeout: float,
    stop: threading.Event | None,
    tick: float,
) -> socket.socket:
    """Connect with a deadline and send ``first`` as the one plaintext line before TLS."""
    sock = connect_with_deadline(host, port, timeout, stop, tick)
    try:
        sock.settimeout(timeout)
        sock.sendall(p.encode(first))
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except BaseException:
        sock.close()
        raise
    return sock


def connect_with_deadline(
    host: str,
    port: int,
    timeout: float,
    stop: threading.Event | None = None,
    tick: float = 0.25,
) -> socket.socket:
    """A connected blocking socket within ``timeout``; PushStopped as soon as ``stop`` is set."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    deadline = time.monotonic() + timeout
    last: OSError = TimeoutError("timed out")
    for family, kind, proto, _name, sockaddr in infos:
        sock = socket.socket(family, kind, proto)
        sock.setblocking(False)
        try:
            code = sock.connect_ex(sockaddr)
            while code in (errno.EINPROGRESS, errno.EWOULDBLOCK):
                if stop is not None and stop.is_set():
                    raise PushStopped()
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                _, writable, _ = select.select([], [sock], [], min(tick, remaining))
                if writable:
                    code = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if code == 0:
                sock.setblocking(True)
                return sock
            if code not in (errno.EINPROGRESS, errno.EWOULDBLOCK):
                last = OSError(code, os.strerror(code))
        except BaseException:
            sock.close()
            raise
        sock.close()
    raise last


def read_first_line(
    sock: socket.socket,
    limit: int = PUSHED_LINE_LIMIT,
    timeout: float = PUSHED_LINE_TIMEOUT,
    stop: threading.Event | None = None,
) -> bytes | None:
    """The first line (with its newline) and not one byte more; None if it does not end
    within ``limit`` bytes and ``timeout`` seconds, or the other side closed first."""
    deadline = time.monotonic() + timeout
    line = b""
    while len(line) < limit:
        if stop is not None and stop.is_set():
            return None
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return None
        sock.settimeout(min(remaining, 0.5))
        try:
            # Peek, then take only up to the newline: what follows belongs to TLS.
            peeked = sock.recv(limit - len(line), socket.MSG_PEEK)
        except TimeoutError:
            continue
        if not peeked:
            return None
        end = peeked.find(b"\n")
        take = len(peeked) if end < 0 else end + 1
        line += sock.recv(take)
        if line.endswith(b"\n"):
            return line
    return None


def pushed_token(line: bytes) -> str | None:
    """The token of a PUSHED line, or None for any other line."""
    try:
        message = p.decode_line(line, frozenset())
    except p.ProtocolError:
        return None
    return message.token if isinstance(message, p.Pushed) else None
