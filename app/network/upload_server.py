"""UploadServer: serves PIECES and DOWNLOAD to other peers from worker threads.

The QTcpServer only accepts; each connection's descriptor is handed to a
Python worker thread that owns a blocking socket with deadlines and streams
file ranges with ``socket.sendfile`` (zero copy on Linux). Only files in the
shared catalog are served, found by hash; a request never names a path. The
bytes come from the file the catalog opens beneath its shared folder
(``SharedCatalog.open_shared``), checked against what was hashed by ``fstat``.

An upload slot belongs to one DOWNLOAD while its bytes are being sent: it is
taken before ``DOWNLOAD_OK`` and given back when the range is sent or the
downloader stalls. A connection between transfers holds none.

Every connection is TLS 1.3 with the peer's identity (protocol version 2); the worker
thread does the handshake. A version-1 client (a plaintext JSON line) gets one plaintext
ERROR saying so and is closed. Only tests and benchmarks may serve plaintext.

Push: a connection whose first line is a ``PUSHED`` with a token this peer's ``PushBroker``
waits for is handed, raw, to the download waiting for it (any other first line gets the
version-1 refusal). ``answer_push`` is the holder's side: it connects out to a downloader,
sends ``PUSHED`` and serves that connection exactly as an accepted one, as the TLS server.
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import logging
import os
import socket
import ssl
import stat
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol

from PySide6.QtCore import QObject, Signal
from PySide6.QtNetwork import QHostAddress, QTcpServer

from app.network import protocol as p
from app.network import push, tls
from app.network.identity import PeerIdentity
from app.network.rate_limit import RateLimiter
from app.network.relay_client import relay_out

log = logging.getLogger("napster.upload")

#: Bytes handed to one sendfile() call; progress is reported between calls.
SEND_CHUNK = 16 * 1024 * 1024
#: Bytes read from the file and encrypted per send over TLS (no sendfile through TLS).
TLS_BLOCK = 1024 * 1024
PROGRESS_INTERVAL = 0.1


class SharedEntry(Protocol):
    path: Path
    name: str
    size: int
    mtime_ns: int
    hash: str
    pieces: tuple[bytes, ...]


class SharedCatalog(Protocol):
    """What the upload server needs from the library (thread-safe methods)."""

    def lookup(self, hash: str) -> SharedEntry | None: ...

    def open_shared(self, shared: SharedEntry) -> BinaryIO:
        """The file opened for reading beneath its shared folder; raises OSError if it cannot."""
        ...

    def mark_changed(self, shared: SharedEntry) -> None: ...


@dataclass(frozen=True)
class UploadLimits:
    """Upload slots and deadlines (seconds)."""

    slots: int = 4
    max_connections: int = 64
    max_connections_per_ip: int = 8
    idle_timeout: float = 60.0
    request_timeout: float = 10.0
    send_stall_timeout: float = 30.0
    retry_after: int = 10
    #: Pushes (connecting out to a downloader) in progress at once; more are ignored.
    max_pushes: int = 8


class _Closed(Exception):
    """The other side went away or broke a deadline."""


class UploadConnection:
    """One downloader's connection, served on its own thread."""

    def __init__(
        self, server: UploadServer, sock: socket.socket, remote: str, pushed: bool = False
    ) -> None:
        self.server = server
        self.sock = sock
        self.remote = remote
        #: We connected out to the downloader (push): no first-byte sniff, straight to TLS.
        self.pushed = pushed
        #: The socket went to a download waiting for it (a PUSHED line): not ours to close.
        self.handed_off = False
        self.ip = remote.rsplit(":", 1)[0]
        self.has_slot = False
        self.request_id: int | None = None
        self.reader = p.LineReader()
        self.pending: list[p.Message] = []

    # ---------------------------------------------------------------- reading

    def _next_request(self) -> p.Message:
        limits = self.server.limits
        idle_deadline = time.monotonic() + limits.idle_timeout
        line_deadline: float | None = None
        while not self.pending:
            if self.server.stopping.is_set():
                raise _Closed("server stopping")
            now = time.monotonic()
            deadline = min(idle_deadline, line_deadline or idle_deadline)
            if now >= deadline:
                raise _Closed("idle" if line_deadline is None else "request too slow")
            self.sock.settimeout(min(deadline - now, 1.0))
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                continue
            except OSError as exc:
                raise _Closed(str(exc)) from None
            if not data:
                raise _Closed("closed by the downloader")
            self.pending.extend(self.reader.feed(data))
            if self.reader.buffered and line_deadline is None:
                line_deadline = time.monotonic() + limits.request_timeout
            elif not self.reader.buffered:
                line_deadline = None
        return self.pending.pop(0)

    def send(self, message: p.Message) -> None:
        self.sock.settimeout(self.server.limits.send_stall_timeout)
        try:
            self.sock.sendall(p.encode(message))
        except OSError as exc:
            raise _Closed(str(exc)) from None

    # ---------------------------------------------------------------- serving

    def _secure(self) -> bool:
        """Complete the TLS handshake; False if the connection ended (v1 client refused)."""
        context = self.server._tls_context
        if context is None:
            return True
        stopping = self.server.stopping
        timeout = self.server.limits.request_timeout
        if not self.pushed:
            try:
                first = tls.sniff(self.sock, timeout, stopping)
            except OSError as exc:
                raise _Closed(f"before TLS: {exc}") from None
            if first is tls.FirstBytes.CLOSED:
                raise _Closed("closed before TLS")
            if first is tls.FirstBytes.PLAINTEXT:
                if self.server.push_broker is not None:
                    self._take_pushed()
                    return False
                log.info("Refused a version-1 (plaintext) download connection from %s", self.remote)
                tls.refuse_plaintext(self.sock)
                return False
        try:
            secure = context.wrap_socket(self.sock, server_side=True, do_handshake_on_connect=False)
        except OSError as exc:
            raise _Closed(f"TLS: {exc}") from None
        self.sock = secure
        try:
            tls.handshake(secure, timeout, stopping)
        except (OSError, tls.HandshakeStopped) as exc:
            raise _Closed(f"TLS handshake failed: {exc}") from None
        secure.setblocking(True)
        return True

    def _take_pushed(self) -> None:
        """A plaintext first line: a PUSHED we wait for goes to its download, else refusal."""
        broker = self.server.push_broker
        assert broker is not None
        try:
            line = push.read_first_line(self.sock, stop=self.server.stopping)
        except OSError as exc:
            raise _Closed(f"before TLS: {exc}") from None
        token = None if line is None else push.pushed_token(line)
        if token is not None and broker.deliver(token, self.sock):
            self.handed_off = True
            log.info("Pushed connection from %s handed to its download", self.remote)
            return
        if token is not None:
            log.info("Refused a pushed connection from %s: unknown or used token", self.remote)
        else:
            log.info("Refused a version-1 (plaintext) download connection from %s", self.remote)
        tls.refuse_plaintext(self.sock, read_request=False)

    def run(self) -> None:
        try:
            if not self._secure():
                return
            while True:
                try:
                    request = self._next_request()
                except p.ProtocolError as exc:
                    for message in exc.preceding:
                        self.pending.append(message)
                    while self.pending:
                        self._handle(self.pending.pop(0))
                    self.send(exc.to_message())
                    return
                self._handle(request)
        except _Closed as exc:
            log.debug("Upload connection %s closed: %s", self.remote, exc)
        except p.ProtocolError as exc:
            with contextlib.suppress(_Closed):
                self.send(exc.to_message())
        except Exception:
            # Whatever went wrong, the downloader hears why and the thread ends cleanly.
            log.exception("Upload connection %s failed", self.remote)
            if not self._speaks_protocol():
                return  # failed before TLS: nothing may go out in plaintext
            with contextlib.suppress(_Closed):
                self.send(
                    p.Error(
                        id=self.request_id,
                        code=p.ErrorCode.NOT_FOUND,
                        message="the sharer could not serve that",
                    )
                )
        finally:
            self.server._release(self)
            if not self.handed_off:
                with contextlib.suppress(OSError):
                    self.sock.close()

    def _speaks_protocol(self) -> bool:
        """True once messages may be sent: over TLS after the handshake, or in plaintext."""
        return self.server._tls_context is None or isinstance(self.sock, ssl.SSLSocket)

    def _handle(self, request: p.Message) -> None:
        self.request_id = getattr(request, "id", None)
        if isinstance(request, p.Pieces):
            self._serve_pieces(request)
        elif isinstance(request, p.Download):
            self._serve_download(request)
        elif isinstance(request, p.Ping):
            self.send(p.Pong(id=request.id))
        else:
            raise p.ProtocolError(
                p.ErrorCode.BAD_REQUEST, f"{request.OP} is not a transfer request", request.id
            )

    def _not_found(self, request_id: int | None, message: str) -> None:
        self.send(p.Error(id=request_id, code=p.ErrorCode.NOT_FOUND, message=message))

    def _open(self, file_hash: str, request_id: int | None) -> tuple[SharedEntry, BinaryIO] | None:
        """The shared file with that hash, opened and still as hashed; or NOT_FOUND sent."""
        catalog = self.server.catalog
        shared = catalog.lookup(file_hash)
        if shared is None:
            self._not_found(request_id, "no shared file has that hash")
            return None
        try:
            file = catalog.open_shared(shared)
        except OSError:
            catalog.mark_changed(shared)
            self._not_found(request_id, "that file cannot be read any more")
            return None
        try:
            st = os.fstat(file.fileno())
        except OSError:
            file.close()
            raise
        if (
            not stat.S_ISREG(st.st_mode)
            or st.st_size != shared.size
            or st.st_mtime_ns != shared.mtime_ns
        ):
            file.close()
            catalog.mark_changed(shared)
            self._not_found(request_id, "that file changed on disk since it was shared")
            return None
        return shared, file

    def _serve_pieces(self, request: p.Pieces) -> None:
        found = self._open(request.hash, request.id)
        if found is None:
            return
        shared, file = found
        file.close()
        self.send(
            p.PiecesOk(
                id=request.id,
                hash=shared.hash,
                name=shared.name,
                size=shared.size,
                pieces=tuple(d.hex() for d in shared.pieces),
            )
        )

    def _serve_download(self, request: p.Download) -> None:
        found = self._open(request.hash, request.id)
        if found is None:
            return
        shared, file = found
        with file:
            size = shared.size
            length = size - request.offset if request.length is None else request.length
            if request.offset > size or length < 0 or request.offset + length > size:
                self.send(
                    p.Error(
                        id=request.id,
                        code=p.ErrorCode.BAD_RANGE,
                        message=f"the file has {size} bytes",
                    )
                )
                return
            if not self.server._take_slot(self):
                self.send(
                    p.Error(
                        id=request.id,
                        code=p.ErrorCode.BUSY,
                        message="every upload slot is sending",
                        retry_after=self.server.limits.retry_after,
                    )
                )
                return
            try:
                self.send(
                    p.DownloadOk(
                        id=request.id, hash=shared.hash, offset=request.offset, length=length
                    )
                )
                self._stream(file, shared, request.offset, length)
            finally:
                self.server._release_slot(self)

    def _stream(self, file, shared: SharedEntry, offset: int, length: int) -> None:
        server = self.server
        upload_id = server._start_upload(self, shared, offset, length)
        sent = 0
        last_report = time.monotonic()
        self.sock.settimeout(server.limits.send_stall_timeout)
        # TLS encrypts in user space, so the bytes go through a buffer instead of sendfile.
        buffer = bytearray(TLS_BLOCK) if server._tls_context is not None else None
        view = memoryview(buffer) if buffer is not None else memoryview(b"")
        block = SEND_CHUNK if buffer is None else TLS_BLOCK
        try:
            while sent < length:
                if server.stopping.is_set():
                    raise _Closed("server stopping")
                count = server.limiter.chunk(min(block, length - sent))
                if not server.limiter.consume(count, server.stopping):
                    raise _Closed("server stopping")
                if buffer is None:
                    done = self.sock.sendfile(file, offset + sent, count)
                else:
                    done = _read_at(file, view[:count], offset + sent)
                    self.sock.sendall(view[:done])
                if done == 0:
                    raise _Closed("the file got shorter while sending")
                sent += done
                now = time.monotonic()
                if now - last_report >= PROGRESS_INTERVAL:
                    last_report = now
                    server.upload_progress.emit(upload_id, sent)
        except (OSError, _Closed) as exc:
            reason = "stalled" if isinstance(exc, TimeoutError) else str(exc) or type(exc).__name__
            server.upload_progress.emit(upload_id, sent)  # what did go out counts in the totals
            server.upload_failed.emit(upload_id, f"{self.remote}: {reason}")
            raise _Closed(reason) from None
        server.upload_progress.emit(upload_id, sent)
        server.upload_finished.emit(upload_id)


class UploadServer(QTcpServer):
    """Listens for downloaders and serves shared files by hash."""

    #: upload id, remote "host:port", file name, offset, length
    upload_started = Signal(int, str, str, "qint64", "qint64")
    #: upload id, bytes sent of this request
    upload_progress = Signal(int, "qint64")
    upload_finished = Signal(int)
    #: upload id, reason
    upload_failed = Signal(int, str)

    def __init__(
        self,
        catalog: SharedCatalog,
        limits: UploadLimits | None = None,
        parent: QObject | None = None,
        *,
        identity: PeerIdentity | None = None,
        plaintext_for_tests: bool = False,
        push_broker: push.PushBroker | None = None,
    ) -> None:
        """``identity`` is the peer's long-lived one (None: a new one kept in memory, so
        nobody can pin it). ``plaintext_for_tests`` serves version 1 without TLS: only
        for tests and benchmarks, never offered to a user. ``push_broker`` holds the tokens
        this peer's downloads wait for: a PUSHED connection with one goes to its download."""
        super().__init__(parent)
        self.catalog = catalog
        self.limits = limits or UploadLimits()
        if identity is None and not plaintext_for_tests:
            identity = PeerIdentity.generate()
            log.info("Upload server uses a TLS identity kept in memory only")
        self.identity = identity
        self._tls_context = None if plaintext_for_tests else tls.server_context(identity)
        #: shared by every upload: all of them together stay under its rate (0 = no limit)
        self.limiter = RateLimiter()
        self.stopping = threading.Event()
        self._lock = threading.Lock()
        self._connections: set[UploadConnection] = set()
        self._threads: set[threading.Thread] = set()
        self._slot_holders: set[UploadConnection] = set()
        self._upload_ids = itertools.count(1)
        self.push_broker = push_broker
        self._pushes = 0  # answer_push threads still connecting out
        #: Connections accepted on the listen port, and pushed ones served (totals).
        self.accepted_total = 0
        self.pushed_total = 0

    def start(self, host: str = "0.0.0.0", port: int = p.DEFAULT_PEER_PORT) -> int:
        """Listen (port 0 picks a free one); return the port or raise OSError with a reason."""
        self.stopping.clear()
        if not self.listen(QHostAddress(host), port):
            raise OSError(f"cannot listen for downloads on {host}:{port}: {self.errorString()}")
        log.info("Serving shared files on %s:%d", host, self.serverPort())
        return self.serverPort()

    @property
    def fingerprint(self) -> str | None:
        """What downloaders pin (the JOIN carries it); None when serving plaintext."""
        return (
            None
            if self._tls_context is None or self.identity is None
            else (self.identity.fingerprint)
        )

    def set_slots(self, slots: int) -> None:
        self.limits = dataclasses.replace(self.limits, slots=max(1, slots))

    @property
    def active_uploads(self) -> int:
        with self._lock:
            return len(self._slot_holders)

    @property
    def connection_count(self) -> int:
        with self._lock:
            return len(self._connections)

    def stop(self, timeout: float = 5.0) -> None:
        """Stop accepting, end every connection and wait for the workers."""
        self.close()
        self.stopping.set()
        with self._lock:
            connections = list(self._connections)
            threads = list(self._threads)
        for connection in connections:
            with contextlib.suppress(OSError):
                # The plain socket's shutdown: SSLSocket.shutdown would drop its TLS state
                # under the worker thread, which then could write in plaintext.
                socket.socket.shutdown(connection.sock, socket.SHUT_RDWR)
        deadline = time.monotonic() + timeout
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))

    def answer_push(self, host: str, port: int, token: str) -> bool:
        """A PUSH_REQUEST: connect out to the downloader at host:port, send PUSHED and serve
        that connection as the TLS server. Returns at once (any thread); False if refused
        (plaintext server, stopping, too many pushes in progress)."""
        if self._tls_context is None or self.stopping.is_set():
            return False
        with self._lock:
            if self._pushes >= self.limits.max_pushes:
                log.info("Ignored a push request to %s:%d: too many in progress", host, port)
                return False
            self._pushes += 1
        thread = threading.Thread(
            target=self._push_out, args=(host, port, token), name=f"push {host}:{port}", daemon=True
        )
        with self._lock:
            self._threads.add(thread)
        thread.start()
        return True

    def _push_out(self, host: str, port: int, token: str) -> None:
        try:
            try:
                sock = push.push_out(host, port, token, self.limits.request_timeout, self.stopping)
            except (OSError, push.PushStopped) as exc:
                log.info("Could not push to %s:%d: %s", host, port, exc)
                return
            finally:
                with self._lock:
                    self._pushes -= 1
            log.info("Pushed a connection to %s:%d", host, port)
            self.serve_pushed(sock, f"{_plain_ip(host)}:{port}")
        finally:
            with self._lock:
                self._threads.discard(threading.current_thread())

    def answer_relay(self, host: str, port: int, token: str) -> bool:
        """A RELAY_REQUEST: connect to the index's relay at host:port, send RELAYED and serve
        that connection as the TLS server, as a pushed one (the relay pipes it to the
        downloader). Returns at once; False if refused, as ``answer_push``."""
        if self._tls_context is None or self.stopping.is_set():
            return False
        with self._lock:
            if self._pushes >= self.limits.max_pushes:
                log.info("Ignored a relay request to %s:%d: too many in progress", host, port)
                return False
            self._pushes += 1
        thread = threading.Thread(
            target=self._relay_out,
            args=(host, port, token),
            name=f"relay {host}:{port}",
            daemon=True,
        )
        with self._lock:
            self._threads.add(thread)
        thread.start()
        return True

    def _relay_out(self, host: str, port: int, token: str) -> None:
        try:
            try:
                sock = relay_out(host, port, token, self.limits.request_timeout, self.stopping)
            except (OSError, push.PushStopped) as exc:
                log.info("Could not reach the index's relay at %s:%d: %s", host, port, exc)
                return
            finally:
                with self._lock:
                    self._pushes -= 1
            log.info("Serving a download through the index's relay at %s:%d", host, port)
            self.serve_pushed(sock, f"relay {_plain_ip(host)}:{port}")
        finally:
            with self._lock:
                self._threads.discard(threading.current_thread())

    def serve_pushed(self, sock: socket.socket, remote: str) -> bool:
        """Serve a connection we opened to a downloader, as an accepted one minus the sniff
        (same limits, slots and rate; ``stop`` ends it). False (and closed) if refused."""
        sock.setblocking(True)
        connection = UploadConnection(self, sock, remote, pushed=True)
        refusal = "stopping" if self.stopping.is_set() else self._admit(connection)
        if refusal:
            log.info("Dropped a pushed connection to %s: %s", remote, refusal)
            with contextlib.suppress(OSError):
                sock.close()
            return False
        with self._lock:
            self.pushed_total += 1
        self._spawn(connection)
        return True

    def incomingConnection(self, handle: int) -> None:
        try:
            sock = socket.socket(fileno=handle)
        except OSError as exc:
            log.warning("Could not take an incoming connection: %s", exc)
            return
        sock.setblocking(True)
        try:
            host, port = sock.getpeername()[:2]
        except OSError:
            sock.close()
            return
        remote = f"{_plain_ip(host)}:{port}"
        connection = UploadConnection(self, sock, remote)
        refusal = self._admit(connection)
        if refusal:
            log.info("Refused upload connection from %s: %s", remote, refusal)
            if self._tls_context is None:
                with contextlib.suppress(OSError):
                    sock.settimeout(1.0)
                    sock.sendall(p.encode(p.Error(code=p.ErrorCode.LIMIT, message=refusal)))
            # Over TLS the refusal is the close itself: a handshake per refused connection
            # on the GUI thread, or a thread for each, would be what a flood wants.
            sock.close()
            return
        with self._lock:
            self.accepted_total += 1
        self._spawn(connection)

    def _spawn(self, connection: UploadConnection) -> None:
        thread = threading.Thread(
            target=self._run_connection,
            args=(connection,),
            name=f"upload {connection.remote}",
            daemon=True,
        )
        with self._lock:
            self._threads.add(thread)
        thread.start()

    def _run_connection(self, connection: UploadConnection) -> None:
        try:
            connection.run()
        finally:
            with self._lock:
                self._threads.discard(threading.current_thread())

    def _admit(self, connection: UploadConnection) -> str | None:
        with self._lock:
            if len(self._connections) >= self.limits.max_connections:
                return "too many download connections"
            same_ip = sum(1 for c in self._connections if c.ip == connection.ip)
            if same_ip >= self.limits.max_connections_per_ip:
                return f"too many connections from {connection.ip}"
            self._connections.add(connection)
        return None

    def _take_slot(self, connection: UploadConnection) -> bool:
        """A slot for the DOWNLOAD this connection is about to send, if one is free."""
        with self._lock:
            if len(self._slot_holders) >= self.limits.slots:
                return False
            self._slot_holders.add(connection)
            connection.has_slot = True
            return True

    def _release_slot(self, connection: UploadConnection) -> None:
        with self._lock:
            self._slot_holders.discard(connection)
            connection.has_slot = False

    def _release(self, connection: UploadConnection) -> None:
        with self._lock:
            self._connections.discard(connection)
            self._slot_holders.discard(connection)

    def _start_upload(
        self, connection: UploadConnection, shared: SharedEntry, offset: int, length: int
    ) -> int:
        upload_id = next(self._upload_ids)
        log.info(
            "Uploading %s [%d+%d] to %s",
            p.printable(shared.name),
            offset,
            length,
            connection.remote,
        )
        self.upload_started.emit(upload_id, connection.remote, shared.name, offset, length)
        return upload_id


def _read_at(file: BinaryIO, view: memoryview, offset: int) -> int:
    """Fill ``view`` from ``file`` at ``offset`` as far as the file goes; bytes read."""
    file.seek(offset)
    filled = 0
    while filled < len(view):
        n = file.readinto(view[filled:])
        if not n:
            break
        filled += n
    return filled


def _plain_ip(host: str) -> str:
    if host.startswith("::ffff:") and "." in host:
        return host[7:]
    return host
