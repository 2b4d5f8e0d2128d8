"""Protocol clients for tests over TLS 1.3 (deliberately not the app's own client).

``WireClient`` talks to an index server on this thread's Qt loop; ``tls_connect`` to a
server in another process (a blocking handshake is fine there).
"""

from __future__ import annotations

import contextlib
import json
import socket
import ssl
import time

from PySide6.QtCore import QCoreApplication

from app.network import tls
from tests.tls_client import handshake_while_serving


def tls_connect(
    port: int,
    host: str = "127.0.0.1",
    timeout: float = 10.0,
    source_address: tuple[str, int] | None = None,
) -> ssl.SSLSocket:
    """A blocking TLS 1.3 connection to a server in another process (any certificate)."""
    raw = socket.create_connection((host, port), timeout=timeout, source_address=source_address)
    try:
        return tls.shared_client_context().wrap_socket(raw)
    except BaseException:
        raw.close()
        raise


class WireClient:
    """Speaks raw JSON lines over TLS to a server running on this thread's Qt loop.

    The handshake runs the Qt loop meanwhile; reads never block and are polled from
    ``qtbot.waitUntil``; sends run the loop while TLS waits for room.
    """

    def __init__(self, port: int, host: str = "127.0.0.1", source: str | None = None) -> None:
        """``source``: connect from that local address (another loopback one, 127.0.0.2...)."""
        raw = socket.create_connection(
            (host, port), timeout=5, source_address=(source, 0) if source else None
        )
        self.sock = handshake_while_serving(raw)  # left non-blocking
        self.fingerprint = tls.peer_fingerprint(self.sock)
        self.buffer = b""
        self.lines: list[dict] = []
        self.closed = False

    def send_raw(self, data: bytes) -> None:
        view = memoryview(data)
        deadline = time.monotonic() + 30
        while view:
            try:
                sent = self.sock.send(view[: 256 * 1024])
            except (ssl.SSLWantWriteError, ssl.SSLWantReadError, BlockingIOError):
                if time.monotonic() > deadline:
                    raise TimeoutError("the server does not read") from None
                QCoreApplication.processEvents()
                continue
            view = view[sent:]

    def send(self, obj: dict) -> None:
        self.send_raw(json.dumps(obj).encode() + b"\n")

    def shutdown_write(self) -> None:
        """Say we will send nothing more (TLS close_notify), and go on reading replies."""
        # Wanting to read means our close_notify is out; the server's answers may still come.
        with contextlib.suppress(ssl.SSLWantReadError, ssl.SSLWantWriteError):
            self.sock.unwrap()

    def poll(self) -> None:
        while not self.closed:
            try:
                chunk = self.sock.recv(65536)
            except (ssl.SSLWantReadError, ssl.SSLWantWriteError, BlockingIOError):
                return
            except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
                self.closed = True
                return
            except (ConnectionResetError, BrokenPipeError, ssl.SSLError, OSError):
                self.closed = True
                return
            if not chunk:
                self.closed = True
                return
            self.buffer += chunk
            while b"\n" in self.buffer:
                line, self.buffer = self.buffer.split(b"\n", 1)
                self.lines.append(json.loads(line))

    def has_line(self) -> bool:
        self.poll()
        return bool(self.lines)

    def is_closed(self) -> bool:
        self.poll()
        return self.closed

    def reply(self, qtbot, timeout: int = 5000) -> dict:
        qtbot.waitUntil(self.has_line, timeout=timeout)
        return self.lines.pop(0)

    def request(self, qtbot, obj: dict, timeout: int = 5000) -> dict:
        self.send(obj)
        return self.reply(qtbot, timeout)

    def close(self) -> None:
        self.sock.close()
