"""One accepted TCP connection on a non-blocking Python socket, driven by Qt notifiers.

The index server's sessions use this rather than ``QTcpSocket`` because a
QTcpSocket closes the whole connection when the peer shuts down its sending side:
a client that sends its requests and then ``shutdown(SHUT_WR)`` got no replies.
Here the end of the peer's input is a signal of its own (``input_finished``) and
the replies still go out. Reading stops while ``read_limit`` bytes wait unread, so
a client that pipelines faster than it is served is held back by TCP.

With a TLS context the connection is TLS (protocol version 2): the first byte tells a
TLS ClientHello (0x16) from a version-1 client's plaintext JSON, which gets the
``plaintext_refusal`` line and a close. TLS runs over memory buffers (``ssl.MemoryBIO``),
so the notifiers keep watching the raw socket and no decrypted byte waits unseen inside
an ``SSLSocket``.
"""

from __future__ import annotations

import contextlib
import socket
import ssl

from PySide6.QtCore import QObject, QSocketNotifier, QTimer, Signal

#: Bytes taken from the kernel per recv() call.
RECV_CHUNK = 64 * 1024
#: The first byte of a TLS handshake record.
TLS_HANDSHAKE = 0x16


class Connection(QObject):
    """A connected socket: buffered reads up to ``read_limit``, buffered writes, close."""

    #: New bytes wait in the read buffer.
    ready_read = Signal()
    #: The peer will send nothing more (it closed or shut down its side); replies may go on.
    input_finished = Signal()
    #: The socket is closed (by us, by the peer's reset, or by an error); emitted once.
    disconnected = Signal()

    def __init__(
        self,
        sock: socket.socket,
        read_limit: int,
        tls: ssl.SSLContext | None = None,
        plaintext_refusal: bytes = b"",
    ) -> None:
        """Take ``sock`` (connected); raises OSError if the peer is already gone.

        With ``tls`` (a server context) the peer must speak TLS; what is written before
        the handshake ends waits for it.
        """
        super().__init__()
        host, port = sock.getpeername()[:2]
        self.peer_host: str = host
        self.peer_port: int = port
        sock.setblocking(False)
        self._sock = sock
        self.read_limit = read_limit
        self._in = bytearray()
        self._out = bytearray()
        self.at_eof = False
        self.is_open = True
        self._closing = False
        self._tls_context = tls
        self._plaintext_refusal = plaintext_refusal
        #: TLS state: None before the first byte (or without TLS), then the SSLObject.
        self._tls: ssl.SSLObject | None = None
        self._tls_in = ssl.MemoryBIO()
        self._tls_out = ssl.MemoryBIO()
        self._handshaking = tls is not None
        #: The peer's TCP end was seen (TLS): what is left in the buffers is still read.
        self._raw_eof = False
        #: The peer's close_notify was read: it sends nothing more.
        self._tls_closed = False
        #: Application bytes written before the handshake finished.
        self._early = bytearray()
        #: The peer spoke plain text (a version-1 client) and was refused.
        self.refused_plaintext = False
        fd = sock.fileno()
        self._read_notifier = QSocketNotifier(fd, QSocketNotifier.Type.Read, self)
        self._read_notifier.activated.connect(self._on_readable)
        self._write_notifier = QSocketNotifier(fd, QSocketNotifier.Type.Write, self)
        self._write_notifier.setEnabled(False)
        self._write_notifier.activated.connect(self._on_writable)

    # ------------------------------------------------------------ reading

    @property
    def local_host(self) -> str:
        """The address of this end (the one the peer reached), "" once closed."""
        try:
            return str(self._sock.getsockname()[0])
        except OSError:
            return ""

    def bytes_available(self) -> int:
        return len(self._in)

    def read(self, max_bytes: int) -> bytes:
        """Take up to ``max_bytes`` of what has arrived."""
        data = bytes(self._in[:max_bytes])
        del self._in[:max_bytes]
        if (
            self.is_open
            and not self.at_eof
            and not self._closing
            and len(self._in) < self.read_limit
        ):
            if not self._raw_eof and not self._read_notifier.isEnabled():
                self._read_notifier.setEnabled(True)
            if self._tls is not None and (self._tls_in.pending or self._tls.pending()):
                # Records taken from the kernel, or bytes the TLS object has decrypted
                # already, wait past the read limit: no notifier will say so.
                QTimer.singleShot(0, self, self._drain_tls)
        return data

    def _on_readable(self) -> None:
        if not self.is_open:
            return
        if self._tls_context is not None:
            self._on_tls_readable()
            return
        got = False
        while len(self._in) < self.read_limit:
            wanted = min(RECV_CHUNK, self.read_limit - len(self._in))
            try:
                data = self._sock.recv(wanted)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:
                self.abort()
                return
            if not data:
                self._input_ended(got)
                return
            self._in += data
            got = True
            if len(data) < wanted:
                break  # drained for now (level-triggered: the notifier fires again for more)
        if len(self._in) >= self.read_limit:
            self._read_notifier.setEnabled(False)
        if got:
            self.ready_read.emit()

    def _input_ended(self, got: bool) -> None:
        self.at_eof = True
        self._read_notifier.setEnabled(False)
        if got:
            self.ready_read.emit()
        if self.is_open:
            self.input_finished.emit()

    # ------------------------------------------------------------ TLS

    def _on_tls_readable(self) -> None:
        """Raw records in (bounded), then handshake or decrypted bytes out."""
        while (
            not self._raw_eof
            and self._tls_in.pending < RECV_CHUNK * 4
            and len(self._in) < self.read_limit
        ):
            try:
                data = self._sock.recv(RECV_CHUNK)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:
                self.abort()
                return
            if not data:
                self._raw_eof = True
                self._read_notifier.setEnabled(False)
                self._tls_in.write_eof()
                break
            if self._tls is None and not self._start_tls(data):
                return
            self._tls_in.write(data)
            if len(data) < RECV_CHUNK:
                break
        if self._tls is None:
            if self._raw_eof:
                self._input_ended(False)
            return
        self._drain_tls()

    def _drain_tls(self) -> None:
        """Handshake, or decrypt what waits (up to ``read_limit``); the input has ended once
        the peer's close_notify came, or its TCP end and nothing is left to decrypt."""
        if not self.is_open or self._tls is None or self.at_eof:
            return
        try:
            if self._handshaking and not self._finish_handshake():
                if self._raw_eof:
                    self.abort()
                return
            got, closed = self._decrypt()
        except ssl.SSLError:
            self.abort()  # not TLS we accept (an old version, garbage): nothing to answer
            return
        self._tls_closed = self._tls_closed or closed
        if len(self._in) >= self.read_limit:
            self._read_notifier.setEnabled(False)
        drained = not self._tls_in.pending and not self._tls.pending()
        if self._tls_closed or (self._raw_eof and drained):
            self._input_ended(bool(got))
        elif got:
            self.ready_read.emit()

    def _start_tls(self, first: bytes) -> bool:
        """Decide from the first bytes: TLS goes on; anything else is refused."""
        if first[0] != TLS_HANDSHAKE:
            self.refused_plaintext = True
            self._tls_context = None  # the refusal itself goes out in plain text
            self._out.clear()
            self._early.clear()
            if self._plaintext_refusal:
                self.write(self._plaintext_refusal)
            self.close()
            return False
        assert self._tls_context is not None
        self._tls = self._tls_context.wrap_bio(self._tls_in, self._tls_out, server_side=True)
        return True

    def _finish_handshake(self) -> bool:
        assert self._tls is not None
        try:
            self._tls.do_handshake()
        except ssl.SSLWantReadError:
            self._flush_tls()
            return False
        self._handshaking = False
        self._flush_tls()
        if self._early:
            early, self._early = bytes(self._early), bytearray()
            self.write(early)
        if self._closing and not self._out:
            self._shut()
        return True

    def _decrypt(self) -> tuple[int, bool]:
        """Decrypted bytes added to the read buffer, and whether the peer closed TLS."""
        assert self._tls is not None
        got = 0
        closed = False
        while len(self._in) < self.read_limit:
            try:
                data = self._tls.read(min(RECV_CHUNK, self.read_limit - len(self._in)))
            except ssl.SSLWantReadError:
                break
            except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
                closed = True  # close_notify, or the socket's end without one (most clients)
                break
            if not data:  # what read() returns for a close_notify
                closed = True
                break
            self._in += data
            got += len(data)
        self._flush_tls()  # TLS 1.3 may answer (key updates, session tickets)
        return got, closed

    def _flush_tls(self) -> None:
        if self._tls_out.pending:
            self._send_raw(self._tls_out.read())

    def peer_gone(self) -> bool:
        """True if the peer has closed or reset the connection, even if we have not seen it yet."""
        if self.at_eof or not self.is_open:
            return True
        try:
            return self._sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
        except (BlockingIOError, InterruptedError):
            return False
        except OSError:
            return True

    # ------------------------------------------------------------ writing

    def bytes_to_write(self) -> int:
        return len(self._out) + len(self._early)

    def write(self, data: bytes) -> None:
        """Queue ``data``; it goes out when the socket can take it."""
        if not self.is_open:
            return
        if self._tls_context is not None:
            if self._handshaking:
                self._early += data
                return
            assert self._tls is not None
            self._tls.write(data)
            data = self._tls_out.read()
        self._send_raw(data)

    def _send_raw(self, data: bytes) -> None:
        if not self.is_open:
            return
        if not self._out:
            # Straight to the kernel: a notifier round trip per reply cost ~12% of the
            # SEARCH throughput in tests/bench/load_bench.py.
            try:
                sent = self._sock.send(data)
            except (BlockingIOError, InterruptedError):
                sent = 0
            except OSError:
                self.abort()
                return
            if sent == len(data):
                return
            data = data[sent:]
        self._out += data
        if not self._write_notifier.isEnabled():
            self._write_notifier.setEnabled(True)

    def _on_writable(self) -> None:
        try:
            sent = self._sock.send(self._out)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self.abort()
            return
        del self._out[:sent]
        if not self._out:
            self._write_notifier.setEnabled(False)
            if self._closing:
                self._shut()

    # ------------------------------------------------------------ closing

    def close(self) -> None:
        """Read no more; close once what is queued is sent."""
        if not self.is_open:
            return
        self._closing = True
        if self._handshaking and self._early:
            return  # the replies wait for the handshake; the caller's deadline bounds it
        self._read_notifier.setEnabled(False)
        if self._tls is not None and not self._handshaking:
            with contextlib.suppress(ssl.SSLError):
                self._tls.unwrap()  # close_notify: the peer can tell an end from a cut
            self._flush_tls()
        if not self._out:
            self._shut()

    def abort(self) -> None:
        """Close at once; whatever is queued is dropped."""
        self._out.clear()
        self._shut()

    def _shut(self) -> None:
        if not self.is_open:
            return
        self.is_open = False
        self._read_notifier.setEnabled(False)
        self._write_notifier.setEnabled(False)
        self._sock.close()
        self.disconnected.emit()
