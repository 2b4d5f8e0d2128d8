"""One blocking transfer connection to a sharing peer (plain Python, any thread, no Qt).

The connection is TLS 1.3 (protocol version 2). When the index server gave the holder's
certificate fingerprint, the certificate must match it before any request goes out; a
holder listed without one (an older index server) is still reached over TLS, unpinned,
and the log says so once per address. Never plaintext, except in tests and benchmarks.

With a ``PushRoute`` a holder can also be reached by push (it connects out to our listen
port): a holder the index calls unreachable by push only, any other pinned one directly
first and, if that has not connected within ``race_delay``, by push too; the first TLS
handshake that proves the holder's fingerprint wins. A pushed connection must be pinned.

With a ``RelayRoute`` too, the last resort joins the race: when both this peer and the
holder are known unreachable it is asked for at once (a push cannot reach us then), else
when a push has not connected within ``RelayRoute.delay``. Both peers meet at the index's
relay, which pipes their TLS session; the holder is pinned exactly as on a push.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import socket
import ssl
import threading
import time
from dataclasses import dataclass
from enum import Enum

from app.network import pieces as pc
from app.network import protocol as p
from app.network import push, tls
from app.network.rate_limit import RateLimiter
from app.network.relay_client import RelayBroker, RelayDenied, RelayRequester, relay_out

log = logging.getLogger("napster.download")

#: Begins the reason of a source the index would not relay to (see problems.NO_RELAY).
NO_RELAY_REASON = "both you and this source are unreachable and the index server will not relay"

#: Addresses already reported as reached without a pinned certificate (bounded).
_warned_unpinned: set[str] = set()


class Route(str, Enum):
    """How the connection to a source was made (the transfer details show it)."""

    #: We connected to the source.
    DIRECT = "direct"
    #: The source connected to us, asked through the index: it is behind a firewall.
    PUSHED = "pushed"
    #: Both met at the index server's relay, which limits the speed its operator set.
    RELAYED = "relayed"


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
        return push.connect_with_deadline(
            address.host, address.port, timeouts.connect, stop, timeouts.tick
        )
    except push.PushStopped:
        raise DownloadStopped() from None
    except OSError as exc:
        raise SourceFailed(f"cannot connect: {exc.strerror or exc}") from None


@dataclass(frozen=True)
class RelayRoute:
    """How this peer meets a holder at the index's relay: ``delay``: a push not connected
    by then is raced by a relay; ``answer_wait``: how long the index may take to answer."""

    requester: RelayRequester
    broker: RelayBroker
    delay: float = 5.0
    answer_wait: float = 10.0


@dataclass(frozen=True)
class PushRoute:
    """How this peer gets holders to connect to it: the index relay and its listen port's
    broker. ``race_delay``: a direct connection not up by then is raced by a push;
    ``wait``: how long a pushed connection may take to arrive after it was asked for."""

    requester: push.PushRequester
    broker: push.PushBroker
    race_delay: float = 1.0
    wait: float = 15.0
    #: The index's relay, the last resort (None: no relay is asked for).
    relay: RelayRoute | None = None


class _Race:
    """Connection attempts to one holder on their own threads; the first to finish its
    pinned handshake wins and any later one is closed."""

    def __init__(self, stop: threading.Event) -> None:
        self.stop = stop
        self.results: queue.Queue[tuple[str, ssl.SSLSocket | None, BaseException | None]] = (
            queue.Queue()
        )
        self.lock = threading.Lock()
        self.over = False
        self.halts: list[threading.Event] = []
        self.threads: list[threading.Thread] = []
        self.running = 0

    def start(self, kind: str, attempt) -> None:
        halt = threading.Event()
        self.halts.append(halt)
        self.running += 1

        def run() -> None:
            try:
                sock, error = attempt(halt), None
            except BaseException as exc:  # reported to the racing thread, never lost
                sock, error = None, exc
            with self.lock:
                late = self.over
                if not late:
                    self.results.put((kind, sock, error))
            if late and sock is not None:
                with contextlib.suppress(OSError):
                    sock.close()

        thread = threading.Thread(target=run, name=f"{kind} connect", daemon=True)
        self.threads.append(thread)
        thread.start()

    def finish(self, linger: float = 1.0) -> None:
        """No result is wanted any more: halt the attempts, close what already arrived.

        The attempts look at their halt every tick, so they are waited for (a little): a
        push wait withdrawn by then can no longer take a connection nobody would use."""
        with self.lock:
            self.over = True
        for halt in self.halts:
            halt.set()
        deadline = time.monotonic() + linger
        for thread in self.threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        while True:
            try:
                _kind, sock, _error = self.results.get_nowait()
            except queue.Empty:
                return
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.close()


def _secure(
    raw: socket.socket,
    address: p.PeerAddress,
    timeouts: Timeouts,
    stop: threading.Event,
    how: str = "",
) -> ssl.SSLSocket:
    """The pinned TLS handshake over ``raw`` (closed on failure), as SourceFailed."""
    try:
        return tls.connect_pinned(raw, address.fingerprint, timeouts.connect, stop, timeouts.tick)
    except tls.HandshakeStopped:
        raise DownloadStopped() from None
    except tls.FingerprintMismatch:
        # Not marked bad: the index may list the peer's new identity later.
        raise SourceFailed(
            f"its {how}certificate is not the one the index server listed for it "
            "(refused before sending anything)"
        ) from None
    except TimeoutError:
        raise SourceFailed(
            "no TLS handshake (it may run a version of Napster P2P before 2)"
        ) from None
    except OSError as exc:
        raise SourceFailed(f"TLS handshake failed: {exc.strerror or exc}") from None


def _direct(address: p.PeerAddress, timeouts: Timeouts, stop: threading.Event) -> ssl.SSLSocket:
    raw = connect_interruptibly(address, timeouts, stop)
    raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return _secure(raw, address, timeouts, stop)


def _pushed(
    address: p.PeerAddress, timeouts: Timeouts, route: PushRoute, stop: threading.Event
) -> ssl.SSLSocket:
    """Ask the holder (through the index) to connect to us; pin it when it does."""
    token = push.new_token()
    wait = route.broker.expect(token, route.wait + timeouts.connect)
    try:
        try:
            route.requester.request_push(address, token)
        except Exception as exc:  # the requester is the peer's: its failure fails this push
            raise SourceFailed(f"could not ask for a push: {exc}") from None
        raw = wait.wait(route.wait, stop, timeouts.tick)
    finally:
        wait.cancel()
    if raw is None:
        if stop.is_set():
            raise DownloadStopped()
        raise SourceFailed(f"it did not connect to us by push within {route.wait:.0f} s")
    raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return _secure(raw, address, timeouts, stop, "pushed connection's ")


def _relayed(
    address: p.PeerAddress, timeouts: Timeouts, relay: RelayRoute, stop: threading.Event
) -> ssl.SSLSocket:
    """Ask the index for a relay; meet the holder there and pin it."""
    token = push.new_token()
    wait = relay.broker.expect(token)
    try:
        try:
            relay.requester.request_relay(address, token)
        except Exception as exc:  # the requester is the peer's: its failure fails this relay
            raise SourceFailed(f"could not ask for a relay: {exc}") from None
        try:
            where = wait.wait(relay.answer_wait, stop, timeouts.tick)
        except RelayDenied as denied:
            if denied.busy:
                raise SourceFailed(
                    f"the index server's relay is busy: {denied.reason}",
                    retry_after=denied.retry_after,
                ) from None
            raise SourceFailed(f"{NO_RELAY_REASON} ({denied.reason})") from None
    finally:
        wait.cancel()
    if where is None:
        if stop.is_set():
            raise DownloadStopped()
        raise SourceFailed("the index server did not answer the relay request")
    try:
        raw = relay_out(where[0], where[1], token, timeouts.connect, stop, timeouts.tick)
    except push.PushStopped:
        raise DownloadStopped() from None
    except OSError as exc:
        raise SourceFailed(f"cannot connect to the index's relay: {exc.strerror or exc}") from None
    return _secure(raw, address, timeouts, stop, "relayed connection's ")


def reach(
    address: p.PeerAddress,
    timeouts: Timeouts,
    stop: threading.Event,
    route: PushRoute | None,
) -> tuple[ssl.SSLSocket, Route]:
    """A pinned TLS connection to the holder and how it was made; SourceFailed or
    DownloadStopped (as soon as ``stop`` is set) otherwise."""
    if route is None or (address.reachable and address.fingerprint is None):
        return _direct(address, timeouts, stop), Route.DIRECT
    if address.fingerprint is None:
        raise SourceFailed(
            "it can only be reached by push, and the index server gave no certificate "
            "fingerprint to check it by"
        )
    race = _Race(stop)
    failures: dict[str, str] = {}
    relay = route.relay
    # Both unreachable: a push needs the holder to reach us, so only the relay can help.
    hopeless_push = (
        relay is not None and not address.reachable and relay.requester.reachable is False
    )
    try:
        if address.reachable:
            race.start("direct", lambda halt: _direct(address, timeouts, halt))
            push_at = time.monotonic() + route.race_delay
        else:
            push_at = time.monotonic()
        pushing = hopeless_push  # never pushed then
        relay_at = time.monotonic() if hopeless_push else None
        relaying = relay is None
        while True:
            if stop.is_set():
                raise DownloadStopped()
            now = time.monotonic()
            if not pushing and (now >= push_at or race.running == 0):
                pushing = True
                relay_at = now + (relay.delay if relay is not None else 0.0)
                race.start("push", lambda halt: _pushed(address, timeouts, route, halt))
            if (
                not relaying
                and relay is not None
                and relay_at is not None
                and (now >= relay_at or race.running == 0)
            ):
                relaying = True
                race.start("relay", lambda halt: _relayed(address, timeouts, relay, halt))
            if race.running == 0:
                raise SourceFailed("; ".join(f"{k}: {r}" for k, r in failures.items()))
            try:
                kind, sock, error = race.results.get(timeout=timeouts.tick)
            except queue.Empty:
                continue
            race.running -= 1
            if sock is not None:
                log.debug("Reached %s %s", address, _HOW[kind])
                return sock, _ROUTES[kind]
            if isinstance(error, SourceFailed):
                failures[kind] = error.reason
            elif not isinstance(error, DownloadStopped):
                failures[kind] = f"{type(error).__name__}: {error}"
    finally:
        race.finish()


_HOW = {"direct": "directly", "push": "by push", "relay": "through the index's relay"}
_ROUTES = {"direct": Route.DIRECT, "push": Route.PUSHED, "relay": Route.RELAYED}


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
        push: PushRoute | None = None,
    ):
        """Connect (directly, or by ``push``) and, unless ``plaintext_for_tests``, complete
        the pinned TLS handshake."""
        self.address = address
        self.timeouts = timeouts
        self.stop = stop
        self.limiter = limiter or RateLimiter()
        self.inbox = bytearray()
        self.next_id = 1
        self._window_start = time.monotonic()
        self._window_bytes = 0
        #: True when the source's certificate was checked against its fingerprint.
        self.pinned = False
        #: Direct, pushed (the holder connected to us) or relayed (through the index).
        self.route = Route.DIRECT
        if plaintext_for_tests:
            self.sock: socket.socket = connect_interruptibly(address, timeouts, stop)
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            return
        self.sock, self.route = reach(address, timeouts, stop, push)
        self._note_pinning()

    def _note_pinning(self) -> None:
        expected = self.address.fingerprint
        self.pinned = expected is not None
        if not self.pinned and str(self.address) not in _warned_unpinned:
            if len(_warned_unpinned) < 10_000:
                _warned_unpinned.add(str(self.address))
            log.warning(
                "Downloading from %s over TLS without a pinned certificate: the index "
                "server did not give its fingerprint, so it cannot be told from an impostor",
                self.address,
            )

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
