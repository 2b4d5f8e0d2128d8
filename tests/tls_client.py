"""A test client's side of the TLS handshake with an upload server on this thread's Qt loop."""

from __future__ import annotations

import select
import socket
import ssl
import threading
import time

from PySide6.QtCore import QCoreApplication

from app.network import tls
from app.network.identity import PeerIdentity


def handshake_while_serving(
    raw: socket.socket, expected_fingerprint: str | None = None, timeout: float = 5.0
) -> ssl.SSLSocket:
    """``raw`` wrapped in TLS 1.3 and pinned, running the Qt loop meanwhile: an upload
    server accepts connections on this (the GUI) thread. The socket is left non-blocking."""
    secure = tls.shared_client_context().wrap_socket(
        raw, server_side=False, do_handshake_on_connect=False
    )
    secure.setblocking(False)
    deadline = time.monotonic() + timeout
    while True:
        try:
            secure.do_handshake()
            break
        except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
            if time.monotonic() > deadline:
                secure.close()
                raise TimeoutError("no TLS handshake") from None
            QCoreApplication.processEvents()  # the server may run on this thread's loop
            select.select([secure], [], [], 0.005)  # or on its own: until it answers
    actual = tls.peer_fingerprint(secure)
    if expected_fingerprint is not None and actual != expected_fingerprint:
        secure.close()
        raise tls.FingerprintMismatch(expected_fingerprint, actual)
    return secure


class RecordingTlsServer:
    """The TLS 1.3 server end of connections, with its own certificate, recording what the
    other side sends after the handshake (``handshakes``, ``received``; ``done`` once over)."""

    def __init__(self, identity: PeerIdentity) -> None:
        self.context = tls.server_context(identity)
        self.handshakes = 0
        self.received = bytearray()
        self.done = threading.Event()

    def serve(self, raw: socket.socket, timeout: float) -> None:
        """Be the TLS server on ``raw`` until the other side goes (quietly on any failure)."""
        try:
            raw.settimeout(timeout)
            with self.context.wrap_socket(raw, server_side=True) as conn:
                self.handshakes += 1
                while chunk := conn.recv(65536):
                    self.received += chunk
        except (OSError, ssl.SSLError):
            pass
        finally:
            self.done.set()
