"""The index server's relay: the last resort when neither peer can reach the other (no Qt).

When a downloader and a holder are both behind NATs or firewalls, the downloader asks the
index for a relay (``RELAY``). If the operator enabled it, the index registers the token
here (``Relay.expect``) with the IP addresses of both peers, answers the downloader
``RELAY_OK`` with this relay's address and tells the holder ``RELAY_REQUEST``. Both connect
to the relay port and send one plaintext ``RELAYED`` line with the token; the relay pairs
the two connections (same token, within ``pair_timeout``, from the two expected IPs; a
token is single use) and then copies bytes both ways, under a per-transfer and a total
rate limit, until either side closes. What it copies is the two peers' own TLS 1.3
session (the holder is the TLS server, pinned by the downloader to its fingerprint), so the
relay sees only TLS records. Python threads, one accept loop and two per relay; the admin
window polls ``snapshot()``.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import logging
import select
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, replace

from app.network import protocol as p
from app.network.push import read_first_line
from app.network.rate_limit import RateLimiter, parse_rate

log = logging.getLogger("napster.server.relay")

DEFAULT_RELAY_PORT = 1100
#: Relays (running and awaited) at once, unless the operator says otherwise.
DEFAULT_MAX_RELAYS = 8
#: Seconds the two connections of one token have to arrive (from the RELAY on).
PAIR_TIMEOUT = 15.0
#: The longest first line a relayed connection may send (a RELAYED line is about 60 bytes).
RELAYED_LINE_LIMIT = 256
#: Seconds a connection has to send that line.
RELAYED_LINE_TIMEOUT = 5.0
#: A relay where nothing moved either way for this long is closed.
IDLE_TIMEOUT = 120.0
#: When the cap is reached, the downloader is told to ask again after this many seconds.
BUSY_RETRY_AFTER = 30
BUFFER = 64 * 1024
#: How often blocking calls look at the stop flag.
TICK = 0.25
#: Relays one downloader's address may hold (awaited or running): one peer cannot fill
#: the relay's cap for everyone else.
MAX_RELAYS_PER_ASKER = 2
#: Connections that have not yet said RELAYED, in all and per address; more are closed.
MAX_ARRIVING = 64
MAX_ARRIVING_PER_IP = 4

OFF_MESSAGE = "this index server does not relay transfers; the holder and you are both unreachable"


@dataclass(frozen=True)
class RelaySettings:
    """What the operator chose (``napster-server --relay ...`` or the admin window)."""

    enabled: bool = False
    host: str = "0.0.0.0"
    port: int = DEFAULT_RELAY_PORT
    #: The address peers are told to connect to; None: the address the asking peer used to
    #: reach the index (right on one network; set it behind a port forward).
    advertise_host: str | None = None
    #: Bytes per second per relayed transfer, both directions together (0 = no limit).
    rate: int = 0
    #: Bytes per second over all relays (0 = no limit).
    total_rate: int = 0
    max_relays: int = DEFAULT_MAX_RELAYS
    pair_timeout: float = PAIR_TIMEOUT


class RelayRefused(Exception):
    """The relay cannot take this transfer: ``code`` and ``message`` go to the asker."""

    def __init__(self, code: p.ErrorCode, message: str, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.retry_after = retry_after


@dataclass(frozen=True)
class RelayInfo:
    """One relay, for the admin window: who, since when, bytes each way and the rate."""

    id: int
    downloader: str
    holder: str
    started: float
    #: bytes piped, both ways together (mostly the file, towards the downloader)
    bytes: int
    rate: float


def plain_ip(host: str) -> str:
    """An IPv4-mapped IPv6 address as plain IPv4; anything else unchanged."""
    return host[7:] if host.startswith("::ffff:") and "." in host else host


class _Expected:
    """A token the index handed out: the two peers' IPs and the first connection."""

    def __init__(self, downloader: str, holder: str, expires_at: float) -> None:
        self.downloader = downloader  # "ip:port" labels
        self.holder = holder
        self.ips = Counter(
            [plain_ip(downloader.rsplit(":", 1)[0]), plain_ip(holder.rsplit(":", 1)[0])]
        )
        self.expires_at = expires_at
        self.first: socket.socket | None = None
        self.first_ip = ""


class _Piped:
    """A running relay: two sockets and what has crossed."""

    def __init__(self, relay_id: int, expected: _Expected, rate: int) -> None:
        self.id = relay_id
        self.downloader = expected.downloader
        self.holder = expected.holder
        self.started = time.monotonic()
        self.started_wall = time.time()
        self.limiter = RateLimiter(rate)
        self.counts = [0, 0]  # bytes first->second, second->first (arrival order)
        self.ended = 0  # directions finished
        self.last_moved = self.started
        self.sockets: list[socket.socket] = []
        self.done = threading.Event()
        self.shown = (self.started, 0)  # (time, bytes) at the last snapshot


class Relay:
    """The relay port: pairs two RELAYED connections by token and pipes them."""

    def __init__(self, settings: RelaySettings | None = None) -> None:
        self.settings = settings or RelaySettings()
        self._lock = threading.Lock()
        self._expected: dict[str, _Expected] = {}
        self._running: dict[int, _Piped] = {}
        self._ids = itertools.count(1)
        self._total = RateLimiter(self.settings.total_rate)
        self._listener: socket.socket | None = None
        self._stop = threading.Event()
        self._threads: set[threading.Thread] = set()
        #: Connections still to say RELAYED, by source address.
        self._arriving: Counter[str] = Counter()
        #: Sees every chunk piped (direction, bytes), on the relay's threads: tests only.
        self.tap: Callable[[int, bytes], None] | None = None
        #: Totals since start: relays paired, bytes piped, connections refused.
        self.relayed_total = 0
        self.bytes_total = 0
        self.refused_total = 0

    # ------------------------------------------------------------ life cycle

    @property
    def port(self) -> int:
        """The port listened on (0 when not listening)."""
        return 0 if self._listener is None else self._listener.getsockname()[1]

    @property
    def listening(self) -> bool:
        return self._listener is not None

    def start(self) -> int:
        """Listen on the settings' host and port (0 picks one); the port. OSError if taken."""
        if self._listener is not None:
            return self.port
        host = self.settings.host
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        listener = socket.socket(family, socket.SOCK_STREAM)
        try:
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.bind((host, self.settings.port))
            listener.listen(64)
            listener.settimeout(TICK)
        except OSError:
            listener.close()
            raise
        self._stop.clear()
        self._listener = listener
        self._spawn(self._accept_loop, "relay accept")
        log.info("Relay listening on %s:%d", host, self.port)
        return self.port

    def stop(self, timeout: float = 5.0) -> None:
        """Stop listening, refuse what is awaited and end every relay."""
        self._stop.set()
        listener, self._listener = self._listener, None
        if listener is not None:
            with contextlib.suppress(OSError):
                listener.close()
        with self._lock:
            expected = list(self._expected.values())
            self._expected.clear()
            running = list(self._running.values())
            threads = list(self._threads)
        for item in expected:
            if item.first is not None:
                _close(item.first)
        for piped in running:
            for sock in piped.sockets:
                _shut(sock)
        deadline = time.monotonic() + timeout
        for thread in threads:
            if thread is not threading.current_thread():
                thread.join(max(0.0, deadline - time.monotonic()))

    def configure(self, settings: RelaySettings) -> None:
        """New limits (and on/off) at once; a changed port takes effect on the next start.
        Relays already running keep their per-transfer rate."""
        self.settings = settings
        self._total.set_rate(settings.total_rate)

    # ------------------------------------------------------------ the index's side

    def expect(self, token: str, downloader: str, holder: str) -> None:
        """Await the two connections of ``token`` ("ip:port" of each peer, as the index
        knows them); RelayRefused when relaying is off or the cap is reached."""
        p.check_token(token)
        if not self.settings.enabled or self._listener is None:
            raise RelayRefused(p.ErrorCode.NOT_FOUND, OFF_MESSAGE)
        now = time.monotonic()
        with self._lock:
            self._purge(now)
            if len(self._expected) + len(self._running) >= self.settings.max_relays:
                raise RelayRefused(
                    p.ErrorCode.BUSY,
                    f"the index server is relaying as many transfers as it allows "
                    f"({self.settings.max_relays}); try again later",
                    BUSY_RETRY_AFTER,
                )
            asker = plain_ip(downloader.rsplit(":", 1)[0])
            mine = sum(
                1
                for waiting in self._expected.values()
                if plain_ip(waiting.downloader.rsplit(":", 1)[0]) == asker
            ) + sum(
                1
                for piped in self._running.values()
                if plain_ip(piped.downloader.rsplit(":", 1)[0]) == asker
            )
            if mine >= MAX_RELAYS_PER_ASKER:
                raise RelayRefused(
                    p.ErrorCode.BUSY,
                    f"this address already has {mine} relayed transfers; try again later",
                    BUSY_RETRY_AFTER,
                )
            if token in self._expected:
                raise RelayRefused(p.ErrorCode.BAD_REQUEST, "that relay token is already in use")
            self._expected[token] = _Expected(downloader, holder, now + self.settings.pair_timeout)

    def withdraw(self, token: str) -> None:
        """Forget an awaited token (the holder could not be told)."""
        with self._lock:
            expected = self._expected.pop(token, None)
        if expected is not None and expected.first is not None:
            _close(expected.first)

    def snapshot(self) -> list[RelayInfo]:
        """The running relays, with each one's rate since the last snapshot (bytes/s)."""
        now = time.monotonic()
        infos = []
        with self._lock:
            for piped in self._running.values():
                moved = sum(piped.counts)
                then, before = piped.shown
                rate = (moved - before) / (now - then) if now > then else 0.0
                piped.shown = (now, moved)
                infos.append(
                    RelayInfo(
                        piped.id,
                        piped.downloader,
                        piped.holder,
                        piped.started_wall,
                        moved,
                        rate,
                    )
                )
        return infos

    def awaited(self) -> int:
        """Tokens handed out whose connections have not both arrived."""
        with self._lock:
            self._purge(time.monotonic())
            return len(self._expected)

    def half_paired(self) -> int:
        """Tokens whose first connection arrived and waits for the other one."""
        with self._lock:
            return sum(1 for expected in self._expected.values() if expected.first is not None)

    def running(self) -> int:
        with self._lock:
            return len(self._running)

    # ------------------------------------------------------------ threads

    def _spawn(self, target, name: str, *args: object) -> None:
        def run() -> None:
            try:
                target(*args)
            except Exception:
                log.exception("Relay thread %s failed", name)
            finally:
                with self._lock:
                    self._threads.discard(threading.current_thread())

        thread = threading.Thread(target=run, name=name, daemon=True)
        with self._lock:
            self._threads.add(thread)
        try:
            thread.start()
        except RuntimeError:
            with self._lock:
                self._threads.discard(thread)  # never started: stop() must not join it
            raise

    def _accept_loop(self) -> None:
        while not self._stop.is_set():
            listener = self._listener
            if listener is None:
                return
            with self._lock:
                self._purge(time.monotonic())
            try:
                sock, address = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                if self._stop.is_set():
                    return
                time.sleep(TICK)  # e.g. out of descriptors: do not spin
                continue
            sock.settimeout(None)
            ip = plain_ip(address[0])
            with self._lock:
                crowded = (
                    sum(self._arriving.values()) >= MAX_ARRIVING
                    or self._arriving[ip] >= MAX_ARRIVING_PER_IP
                )
                if not crowded:
                    self._arriving[ip] += 1
            if crowded:
                _close(sock)  # relays are asked for through the index, not by connecting
                continue
            try:
                self._spawn(self._arrive_counted, f"relay {address[0]}", sock, ip)
            except RuntimeError:  # no thread to be had: refuse this one, keep accepting
                with self._lock:
                    self._arriving[ip] -= 1
                _close(sock)

    def _arrive_counted(self, sock: socket.socket, ip: str) -> None:
        try:
            self._arrive(sock, ip)
        finally:
            with self._lock:
                self._arriving[ip] -= 1
                if self._arriving[ip] <= 0:
                    del self._arriving[ip]

    def _arrive(self, sock: socket.socket, ip: str) -> None:
        """Read the RELAYED line; the first of a pair waits, the second starts the pipe."""
        line = read_first_line(sock, RELAYED_LINE_LIMIT, RELAYED_LINE_TIMEOUT, self._stop)
        token = None
        if line is not None:
            try:
                message = p.decode_line(line, frozenset())
            except p.ProtocolError:
                message = None
            if isinstance(message, p.Relayed):
                token = message.token
        with self._lock:
            expected = None if token is None else self._expected.get(token)
            refusal = self._refusal(expected, ip)
            if refusal is None:
                assert expected is not None and token is not None
                if expected.first is None:
                    expected.first, expected.first_ip = sock, ip
                    expected.ips[ip] -= 1
                    return  # the other one pairs it
                del self._expected[token]  # single use
                piped = _Piped(next(self._ids), expected, self.settings.rate)
                piped.sockets = [expected.first, sock]
                self._running[piped.id] = piped
                self.relayed_total += 1
            else:
                self.refused_total += 1
        if refusal is not None:
            log.info("Relay refused a connection from %s: %s", ip, refusal)
            _close(sock)
            return
        for each in piped.sockets:
            each.settimeout(None)  # blocking, no timeout: the pipes wait in select()
        log.info("Relaying %s <-> %s (relay %d)", piped.downloader, piped.holder, piped.id)
        self._spawn(self._pipe, f"relay {piped.id} b->a", piped, 1)
        self._pipe(piped, 0)

    def _refusal(self, expected: _Expected | None, ip: str) -> str | None:
        if expected is None or expected.expires_at <= time.monotonic():
            return "no such relay token (unknown, used or expired)"
        if expected.ips[ip] <= 0:
            return "it does not come from either peer of that relay"
        return None

    def _pipe(self, piped: _Piped, direction: int) -> None:
        """Copy one direction until either side ends; then end both.

        Both directions share each socket, so neither touches its timeout or blocking mode
        (one direction's setting would be the other's): each waits in select() and then
        reads or writes with MSG_DONTWAIT."""
        source, sink = piped.sockets[direction], piped.sockets[1 - direction]
        buffer = bytearray(BUFFER)
        view = memoryview(buffer)
        try:
            while not piped.done.is_set() and not self._stop.is_set():
                readable, _, _ = select.select([source], [], [], TICK)
                if not readable:
                    if time.monotonic() - piped.last_moved > IDLE_TIMEOUT:
                        break
                    continue
                wanted = self._total.chunk(piped.limiter.chunk(BUFFER))
                try:
                    n = source.recv_into(view[:wanted], 0, socket.MSG_DONTWAIT)
                except BlockingIOError:
                    continue
                if n == 0:
                    break
                if not piped.limiter.consume(n, self._stop) or not self._total.consume(
                    n, self._stop
                ):
                    break
                if self.tap is not None:
                    self.tap(direction, bytes(view[:n]))
                self._send_all(piped, sink, view[:n])
                with self._lock:
                    piped.counts[direction] += n
                    self.bytes_total += n
                piped.last_moved = time.monotonic()
        except OSError:
            pass
        finally:
            piped.done.set()
            for sock in piped.sockets:
                _shut(sock)
            with self._lock:
                piped.ended += 1
                last = piped.ended == 2
            if last:
                for sock in piped.sockets:
                    _close(sock)
                with self._lock:
                    self._running.pop(piped.id, None)
                log.info("Relay %d ended after %d bytes", piped.id, sum(piped.counts))

    def _send_all(self, piped: _Piped, sink: socket.socket, data: memoryview) -> None:
        """Send ``data`` as the other side takes it; OSError when the relay ends first or
        nothing could be sent for IDLE_TIMEOUT."""
        deadline = time.monotonic() + IDLE_TIMEOUT
        while data:
            if piped.done.is_set() or self._stop.is_set():
                raise OSError("the relay ended")
            _, writable, _ = select.select([], [sink], [], TICK)
            if not writable:
                if time.monotonic() > deadline:
                    raise TimeoutError("the other side takes nothing")
                continue
            try:
                data = data[sink.send(data, socket.MSG_DONTWAIT) :]
            except BlockingIOError:
                continue
            deadline = time.monotonic() + IDLE_TIMEOUT

    def _purge(self, now: float) -> None:
        """Forget expired tokens (lock held), closing a first connection left waiting."""
        for token in [t for t, e in self._expected.items() if e.expires_at <= now]:
            expected = self._expected.pop(token)
            if expected.first is not None:
                log.info("Relay token expired: the other peer never came")
                _close(expected.first)


def _shut(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)


def _close(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.close()


def with_enabled(settings: RelaySettings, enabled: bool) -> RelaySettings:
    """The same settings, switched on or off."""
    return replace(settings, enabled=enabled)


def add_relay_arguments(parser: argparse.ArgumentParser) -> None:
    """``--relay`` and its limits on napster-server's command line."""
    group = parser.add_argument_group("relay (the last resort for two unreachable peers)")
    group.add_argument(
        "--relay",
        action="store_true",
        help="relay transfers between peers that cannot reach each other (default: off)",
    )
    group.add_argument(
        "--relay-port",
        type=int,
        default=DEFAULT_RELAY_PORT,
        help=f"TCP port of the relay (default: {DEFAULT_RELAY_PORT}; 0 picks a free one)",
    )
    group.add_argument(
        "--relay-host",
        metavar="ADDRESS",
        help="the address peers are told to reach the relay at (default: the one they "
        "reached this server at)",
    )
    group.add_argument(
        "--relay-rate",
        default="0",
        metavar="RATE",
        help="speed limit per relayed transfer, e.g. 500K, 2M (default: 0, none)",
    )
    group.add_argument(
        "--relay-total-rate",
        default="0",
        metavar="RATE",
        help="speed limit over all relayed transfers (default: 0, none)",
    )
    group.add_argument(
        "--max-relays",
        type=int,
        default=DEFAULT_MAX_RELAYS,
        help=f"relayed transfers at once (default: {DEFAULT_MAX_RELAYS})",
    )


def relay_settings_from_args(args: argparse.Namespace, host: str) -> RelaySettings:
    """The relay settings the command line asked for; ValueError says what is wrong."""
    if not 0 <= args.relay_port <= 65535:
        raise ValueError(f"--relay-port must be between 0 and 65535, not {args.relay_port}")
    if args.max_relays < 1:
        raise ValueError("--max-relays must be at least 1")
    try:
        rate, total = parse_rate(args.relay_rate), parse_rate(args.relay_total_rate)
    except ValueError as exc:
        raise ValueError(f"--relay-rate / --relay-total-rate: {exc}") from None
    return RelaySettings(
        enabled=args.relay,
        host=host,
        port=args.relay_port,
        advertise_host=args.relay_host,
        rate=rate,
        total_rate=total,
        max_relays=args.max_relays,
    )
