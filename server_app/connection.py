"""One accepted TCP connection on a non-blocking Python socket, driven by Qt notifiers.

The index server's sessions use this rather than ``QTcpSocket`` because a
QTcpSocket closes the whole connection when the peer shuts down its sending side:
a client that sends its requests and then ``shutdown(SHUT_WR)`` got no replies.
Here the end of the peer's input is a signal of its own (``input_finished``) and
the replies still go out. Reading stops while ``read_limit`` bytes wait unread, so
a client that pipelines faster than it is served is held back by TCP.
"""

from __future__ import annotations

import socket

from PySide6.QtCore import QObject, QSocketNotifier, Signal

#: Bytes taken from the kernel per recv() call.
RECV_CHUNK = 64 * 1024


class Connection(QObject):
    """A connected socket: buffered reads up to ``read_limit``, buffered writes, close."""

    #: New bytes wait in the read buffer.
    ready_read = Signal()
    #: The peer will send nothing more (it closed or shut down its side); replies may go on.
    input_finished = Signal()
    #: The socket is closed (by us, by the peer's reset, or by an error); emitted once.
    disconnected = Signal()

    def __init__(self, sock: socket.socket, read_limit: int) -> None:
        """Take ``sock`` (connected); raises OSError if the peer is already gone."""
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
        fd = sock.fileno()
        self._read_notifier = QSocketNotifier(fd, QSocketNotifier.Type.Read, self)
        self._read_notifier.activated.connect(self._on_readable)
        self._write_notifier = QSocketNotifier(fd, QSocketNotifier.Type.Write, self)
        self._write_notifier.setEnabled(False)
        self._write_notifier.activated.connect(self._on_writable)

    # ------------------------------------------------------------ reading

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
            and not self._read_notifier.isEnabled()
        ):
            self._read_notifier.setEnabled(True)
        return data

    def _on_readable(self) -> None:
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
                self.at_eof = True
                self._read_notifier.setEnabled(False)
                if got:
                    self.ready_read.emit()
                if self.is_open:
                    self.input_finished.emit()
                return
            self._in += data
            got = True
            if len(data) < wanted:
                break  # drained for now (level-triggered: the notifier fires again for more)
        if len(self._in) >= self.read_limit:
            self._read_notifier.setEnabled(False)
        if got:
            self.ready_read.emit()

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
        return len(self._out)

    def write(self, data: bytes) -> None:
        """Queue ``data``; it goes out when the socket can take it."""
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
        self._read_notifier.setEnabled(False)
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
