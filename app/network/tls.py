"""TLS 1.3 for transfer connections, pinned by certificate fingerprint (no Qt).

Certificates are self-signed, so no certificate authority or host name is checked: a
downloader learns the sharer's fingerprint from the index server and compares it with the
certificate the sharer presents, before it sends a single byte of a request
(``connect_pinned``). A sharer tells a version-1 client (plaintext JSON) apart from a TLS
ClientHello by the first byte (``sniff``) and answers the former with one plaintext ERROR.
"""

from __future__ import annotations

import contextlib
import hmac
import select
import socket
import ssl
import tempfile
import threading
import time
from enum import Enum
from pathlib import Path

from app.network import protocol as p
from app.network.identity import PeerIdentity, fingerprint_of

#: The first byte of a TLS record carrying a handshake (a ClientHello).
TLS_HANDSHAKE = 0x16

VERSION_1_REFUSAL = (
    "this peer speaks Napster P2P protocol version 2: transfers use TLS 1.3; "
    "please upgrade to download from it"
)


class FingerprintMismatch(ssl.SSLError):
    """The peer's certificate is not the one the index server said it has."""

    def __init__(self, expected: str, actual: str) -> None:
        super().__init__(
            f"the peer's certificate {actual[:16]}… is not the expected {expected[:16]}…"
        )
        self.expected = expected
        self.actual = actual


class HandshakeStopped(Exception):
    """The handshake was abandoned because ``stop`` was set."""


class FirstBytes(Enum):
    """What a new connection to a sharer began with."""

    TLS = "tls"
    PLAINTEXT = "plaintext"  # a version-1 JSON line, or anything else that is not TLS
    CLOSED = "closed"


def server_context(identity: PeerIdentity) -> ssl.SSLContext:
    """Accepts TLS 1.3 only, presenting ``identity``'s certificate; asks for none back."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    context.options |= ssl.OP_NO_COMPRESSION
    # ssl loads certificates from files only: a private folder (beside the identity's own
    # files when it has them), removed at once; the identity in memory is the one that counts.
    home = identity.key_path.parent if identity.key_path is not None else None
    with tempfile.TemporaryDirectory(prefix=".napster-tls-", dir=home) as folder:
        cert, key = Path(folder) / "cert.pem", Path(folder) / "key.pem"
        cert.write_bytes(identity.cert_pem)
        key.touch(mode=0o600)
        key.write_bytes(identity.key_pem)
        context.load_cert_chain(cert, key)
    return context


def client_context() -> ssl.SSLContext:
    """TLS 1.3 only; the certificate is checked by its pinned fingerprint, not by a CA."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.options |= ssl.OP_NO_COMPRESSION
    return context


_client_context: ssl.SSLContext | None = None
_client_lock = threading.Lock()


def shared_client_context() -> ssl.SSLContext:
    """One client context for the whole process (contexts are thread-safe once set up)."""
    global _client_context
    with _client_lock:
        if _client_context is None:
            _client_context = client_context()
        return _client_context


def connect_pinned(
    sock_or_addr: socket.socket | tuple[str, int],
    expected_fingerprint: str | None,
    timeout: float,
    stop: threading.Event | None = None,
    tick: float = 0.25,
    context: ssl.SSLContext | None = None,
) -> ssl.SSLSocket:
    """A TLS 1.3 connection whose peer certificate has ``expected_fingerprint``.

    The handshake completes within ``timeout`` (``socket.timeout`` otherwise), looking at
    ``stop`` every ``tick`` (``HandshakeStopped``). If the certificate's SHA-256 differs
    from the expected one the connection is closed and ``FingerprintMismatch`` raised:
    nothing of the application was sent. ``None`` accepts any certificate (unpinned).
    On any failure the socket is closed.
    """
    if isinstance(sock_or_addr, tuple):
        raw = socket.create_connection(sock_or_addr, timeout=timeout)
    else:
        raw = sock_or_addr
    try:
        tls = (context or shared_client_context()).wrap_socket(
            raw, server_side=False, do_handshake_on_connect=False
        )
    except BaseException:
        raw.close()
        raise
    try:
        handshake(tls, timeout, stop, tick)
        actual = fingerprint_of(tls.getpeercert(binary_form=True) or b"")
        if expected_fingerprint is not None and not hmac.compare_digest(
            actual.encode(), expected_fingerprint.encode()
        ):
            raise FingerprintMismatch(expected_fingerprint, actual)
    except BaseException:
        tls.close()
        raise
    tls.setblocking(True)
    return tls


def peer_fingerprint(tls: ssl.SSLSocket) -> str:
    """The fingerprint of the certificate the other side presented."""
    return fingerprint_of(tls.getpeercert(binary_form=True) or b"")


def handshake(
    tls: ssl.SSLSocket, timeout: float, stop: threading.Event | None = None, tick: float = 0.25
) -> None:
    """Complete the handshake within ``timeout``, looking at ``stop`` every ``tick``."""
    deadline = time.monotonic() + timeout
    tls.setblocking(False)
    while True:
        try:
            tls.do_handshake()
            return
        except ssl.SSLWantReadError:
            wanted = ([tls], [])
        except ssl.SSLWantWriteError:
            wanted = ([], [tls])
        while True:
            if stop is not None and stop.is_set():
                raise HandshakeStopped()
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("the TLS handshake timed out")
            readable, writable, _ = select.select(*wanted, [], min(tick, remaining))
            if readable or writable:
                break


def sniff(sock: socket.socket, timeout: float, stop: threading.Event | None = None) -> FirstBytes:
    """Wait (up to ``timeout``) for the first byte of a new connection, without reading it."""
    deadline = time.monotonic() + timeout
    while True:
        if stop is not None and stop.is_set():
            return FirstBytes.CLOSED
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("nothing was sent")
        sock.settimeout(min(remaining, 1.0))
        try:
            first = sock.recv(1, socket.MSG_PEEK)
        except TimeoutError:
            continue
        if not first:
            return FirstBytes.CLOSED
        return FirstBytes.TLS if first[0] == TLS_HANDSHAKE else FirstBytes.PLAINTEXT


def refuse_plaintext(sock: socket.socket, timeout: float = 2.0, read_request: bool = True) -> None:
    """Answer a version-1 (plaintext) client with one ERROR line and close, within ``timeout``.

    Its request is read first (unless the caller already read its first line) and what it
    sends after is drained until it closes: closing with unread bytes would reset the
    connection and could lose the ERROR before it is read.
    """
    deadline = time.monotonic() + timeout
    line = p.encode(p.Error(code=p.ErrorCode.BAD_REQUEST, message=VERSION_1_REFUSAL))
    with contextlib.suppress(OSError):
        received = b"" if read_request else b"\n"
        while b"\n" not in received and len(received) < p.MAX_LINE:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            sock.settimeout(remaining)
            chunk = sock.recv(65536)
            if not chunk:
                break
            received += chunk
        sock.settimeout(max(0.1, deadline - time.monotonic()))
        sock.sendall(line)
        sock.shutdown(socket.SHUT_WR)
        while time.monotonic() < deadline:
            sock.settimeout(max(0.01, deadline - time.monotonic()))
            if not sock.recv(65536):
                break
    with contextlib.suppress(OSError):
        sock.close()
