"""One blocking transfer connection to a sharing peer (plain Python, any thread, no Qt).

The connection is TLS 1.3 (protocol version 2). When the index server gave the holder's
certificate fingerprint, the certificate must match it before any request goes out; a
holder listed without one (an older index server) is still reached over TLS, unpinned,
and the log says so once per address. Never plaintext, except in tests and benchmarks.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import select
import socket
import threading
import time
from dataclasses import dataclass

from app.network import pieces as pc
from app.network import protocol as p
from app.network import tls
from app.network.rate_limit import RateLimiter

log = logging.getLogger("napster.download")

#: Addresses already reported as reached without a pinned certificate (bounded).
_warned_unpinned: set[str] = set()


class DownloadStopped(Exception):
    """The download was paused, cancelled or the app is quitting; its .part and state stay."""


class SourceFailed(Exception):
    """One source could not help (gone, stalled, refused, or lying)."""

    def __init__(self, reason: str, corrupt: bool = False, retry_after: float | None = None):
        super().__init__(reason)
        self.reason = reason
        self.corrupt = corrupt
        self.retry_after = retry_after


@dataclass(frozen=True)
class Timeouts:
    """How long a source may keep us waiting."""

    connect: float = 10.0
    stall: float = 20.0
    tick: float = 0.25  # how often a blocked connect or read looks at the stop flag
    #: Bytes a source must send per ``stall`` period while we wait: a trickle is a stall too.
    min_progress: int = 64 * 1024


def connect_interruptibly(
    address: p.PeerAddress, timeouts: Timeouts, stop: threading.Event
) -> socket.socket:
    """A connected socket, or SourceFailed; DownloadStopped as soon as ``stop`` is set.

    A plain ``create_connection`` blocks for its whole timeout, which would hold up quitting.
    """
    try:
        infos = socket.getaddrinfo(address.host, address.port, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise SourceFailed(f"cannot connect: {exc.strerror or exc}") from None
    deadline = time.monotonic() + timeouts.connect
    last_error = "timed out"
    for family, kind, proto, _name, sockaddr in infos:
        sock = socket.socket(family, kind, proto)
        sock.setblocking(False)
        try:
            code = sock.connect_ex(sockaddr)
            while code in (errno.EINPROGRESS, errno.EWOULDBLOCK):
                if stop.is_set():
                    raise DownloadStopped()
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                _, writable, _ = select.select([], [sock], [], min(timeouts.tick, remaining))
                if writable:
                    code = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if code == 0:
                sock.setblocking(True)
                return sock
            if code not in (errno.EINPROGRESS, errno.EWOULDBLOCK):
                last_error = os.strerror(code)
        except BaseException:
            sock.close()
            raise
        sock.close()
    raise SourceFailed(f"cannot connect: {last_error}")


class SourceConnection:
    """A blocking transfer connection to one sharing peer."""

    def __init__(
        self,
        address: p.PeerAddress,
        timeouts: Timeouts,
        stop: threading.Event,
        limiter: RateLimiter | None = None,
        *,
        plaintext_for_tests: bool = False,
    ):
        """Connect and (unless ``plaintext_for_tests``) complete the pinned TLS handshake."""
        self.address = address
        self.timeouts = timeouts
        self.stop = stop
        self.limiter = limiter or RateLimiter()
        self.inbox = bytearray()
        self.next_id = 1
        self._window_start = time.monotonic()
        self._window_bytes = 0
        raw = connect_interruptibly(address, timeouts, stop)
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        #: True when the source's certificate was checked against its fingerprint.
        self.pinned = False
        self.sock: socket.socket = raw if plaintext_for_tests else self._secure(raw)

    def _secure(self, raw: socket.socket) -> socket.socket:
        expected = self.address.fingerprint
        try:
            secure = tls.connect_pinned(
                raw, expected, self.timeouts.connect, self.stop, self.timeouts.tick
            )
        except tls.HandshakeStopped:
            raise DownloadStopped() from None
        except tls.FingerprintMismatch:
            # Not marked bad: the index may list the peer's new identity later.
            raise SourceFailed(
                "its certificate is not the one the index server listed for it "
                "(refused before sending anything)"
            ) from None
        except TimeoutError:
            raise SourceFailed(
                "no TLS handshake (it may run a version of Napster P2P before 2)"
            ) from None
        except OSError as exc:
            raise SourceFailed(f"TLS handshake failed: {exc.strerror or exc}") from None
        self.pinned = expected is not None
        if not self.pinned and str(self.address) not in _warned_unpinned:
            if len(_warned_unpinned) < 10_000:
                _warned_unpinned.add(str(self.address))
            log.warning(
                "Downloading from %s over TLS without a pinned certificate: the index "
                "server did not give its fingerprint, so it cannot be told from an impostor",
                self.address,
            )
        return secure

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()

    def _recv_into(self, view: memoryview) -> int:
        """Block until some bytes arrive, checking for stop; drop a stalled source."""
        waited = 0.0
        self.sock.settimeout(self.timeouts.tick)
        view = view[: self.limiter.chunk(len(view))]
        while True:
            if self.stop.is_set():
                raise DownloadStopped()
            try:
                n = self.sock.recv_into(view)
            except TimeoutError:
                waited += self.timeouts.tick
                if waited >= self.timeouts.stall:
                    raise SourceFailed(f"stalled for {self.timeouts.stall:.0f} s") from None
                continue
            except OSError as exc:
                raise SourceFailed(f"connection lost: {exc.strerror or exc}") from None
            if n == 0:
                raise SourceFailed("the source closed the connection")
            if not self.limiter.consume(n, self.stop):
                raise DownloadStopped()
            self._check_progress(n)
            return n

    def _check_progress(self, received: int) -> None:
        """Drop a source that sends, but less than ``min_progress`` bytes per stall period."""
        self._window_bytes += received
        now = time.monotonic()
        if now - self._window_start < self.timeouts.stall:
            return
        if self._window_bytes < self.timeouts.min_progress:
            raise SourceFailed(
                f"too slow: {self._window_bytes} bytes in {now - self._window_start:.0f} s"
            )
        self._window_start, self._window_bytes = now, 0

    def request(self, message: p.Message) -> p.Message:
        self.sock.settimeout(self.timeouts.stall)
        try:
            self.sock.sendall(p.encode(message))
        except OSError as exc:
            raise SourceFailed(f"connection lost: {exc.strerror or exc}") from None
        reply = self._read_message()
        if reply.id not in (None, message.id):
            raise SourceFailed("the source answered another request")
        if isinstance(reply, p.Error):
            if reply.code is p.ErrorCode.BUSY:
                raise SourceFailed("busy", retry_after=reply.retry_after)
            raise SourceFailed(f"{reply.code.value}: {p.printable(reply.message, 120)}")
        return reply

    def _read_message(self) -> p.Message:
        chunk = bytearray(65536)
        view = memoryview(chunk)
        while True:
            newline = self.inbox.find(b"\n")
            if newline >= 0:
                line = bytes(self.inbox[:newline])
                del self.inbox[: newline + 1]
                try:
                    return p.decode_line(line, p.DOWNLOADER_BULK_OPS)
                except p.ProtocolError as exc:
                    raise SourceFailed(f"protocol error: {exc.message}") from None
            if len(self.inbox) > p.MAX_BULK_LINE:
                raise SourceFailed("protocol error: reply line too long")
            n = self._recv_into(view)
            self.inbox += view[:n]

    def next_request_id(self) -> int:
        self.next_id += 1
        return self.next_id

    def fetch_pieces(self, file_hash: str, size: int) -> tuple[bytes, ...]:
        """The piece digests of the file (``file_hash``, ``size``), checked against the hash.

        A source whose copy of that hash has another size holds another file, not a lie
        about this one: it fails for this download without being marked corrupt.
        """
        reply = self.request(p.Pieces(id=self.next_request_id(), hash=file_hash))
        if not isinstance(reply, p.PiecesOk) or reply.hash != file_hash:
            raise SourceFailed("unexpected reply to PIECES")
        if reply.size != size:
            raise SourceFailed(f"its file with this hash has another size ({reply.size} bytes)")
        if reply.piece_size != p.PIECE_SIZE:
            raise SourceFailed(f"unsupported piece size {reply.piece_size}")
        digests = tuple(bytes.fromhex(d) for d in reply.pieces)
        if len(digests) != pc.piece_count(reply.size):
            raise SourceFailed("piece list does not match the file size", corrupt=True)
        if pc.file_hash_from_digests(digests) != file_hash:
            raise SourceFailed("piece list does not match the file hash", corrupt=True)
        return digests

    def start_download(self, file_hash: str, offset: int, length: int) -> None:
        reply = self.request(
            p.Download(id=self.next_request_id(), hash=file_hash, offset=offset, length=length)
        )
        if (
            not isinstance(reply, p.DownloadOk)
            or reply.hash != file_hash
            or reply.offset != offset
            or reply.length != length
        ):
            raise SourceFailed("unexpected reply to DOWNLOAD")

    def send_download(self, request_id: int, file_hash: str, offset: int, length: int) -> None:
        """Ask for a range without waiting for the answer (requests are pipelined)."""
        self.sock.settimeout(self.timeouts.stall)
        message = p.Download(id=request_id, hash=file_hash, offset=offset, length=length)
        try:
            self.sock.sendall(p.encode(message))
        except OSError as exc:
            raise SourceFailed(f"connection lost: {exc.strerror or exc}") from None

    def read_download_ok(self, request_id: int, file_hash: str, offset: int, length: int) -> None:
        """The answer to a pipelined DOWNLOAD: its raw bytes follow, or SourceFailed."""
        reply = self._read_message()
        if isinstance(reply, p.Error):
            if reply.code is p.ErrorCode.BUSY:
                raise SourceFailed("busy", retry_after=reply.retry_after)
            raise SourceFailed(f"{reply.code.value}: {p.printable(reply.message, 120)}")
        if (
            not isinstance(reply, p.DownloadOk)
            or reply.id != request_id
            or reply.hash != file_hash
            or reply.offset != offset
            or reply.length != length
        ):
            raise SourceFailed("unexpected reply to DOWNLOAD")

    def read_exact(self, view: memoryview) -> None:
        """Fill ``view`` with the next raw bytes of the current DOWNLOAD."""
        filled = 0
        if self.inbox:
            take = min(len(self.inbox), len(view))
            view[:take] = self.inbox[:take]
            del self.inbox[:take]
            filled = take
        while filled < len(view):
            filled += self._recv_into(view[filled:])
