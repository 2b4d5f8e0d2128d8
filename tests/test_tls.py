"""Protocol version 2: transfer connections are TLS 1.3, pinned by certificate fingerprint."""

from __future__ import annotations

import contextlib
import logging
import os
import selectors
import socket
import ssl
import stat
import threading
import time

import pytest

from app.download import engine as fp
from app.download import source
from app.download.source import SourceConnection, SourceFailed
from app.network import protocol as p
from app.network import tls
from app.network.identity import PeerIdentity, fingerprint_of
from app.network.upload_server import UploadLimits, UploadServer
from tests.catalog import Catalog
from tests.test_transfer import (
    FAST,
    PIECE,
    folders,  # noqa: F401  (fixture)
    in_thread,
    make_file,
    run_download,
    same_bytes,
    spec_for,
    uploads,  # noqa: F401  (fixture)
)
from tests.tls_client import RecordingTlsServer

# ------------------------------------------------------------------ identity


def test_identity_is_made_once_private_and_reused(tmp_path):
    first = PeerIdentity.load_or_create(tmp_path / "data")
    key, cert = tmp_path / "data" / "peer-key.pem", tmp_path / "data" / "peer-cert.pem"
    for path in (key, cert):
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert first.key_path == key and first.cert_path == cert
    again = PeerIdentity.load_or_create(tmp_path / "data")
    assert again.fingerprint == first.fingerprint
    assert len(first.fingerprint) == 64 and p.check_fingerprint(first.fingerprint)
    assert "PRIVATE" not in repr(first)
    # The fingerprint is the SHA-256 of the certificate's DER bytes.
    assert first.fingerprint == fingerprint_of(ssl.PEM_cert_to_DER_cert(cert.read_text()))
    assert not [n for n in os.listdir(tmp_path / "data") if n.endswith(".tmp")]


@pytest.mark.parametrize(
    "damage",
    [
        lambda key, cert: cert.write_bytes(b"-----BEGIN CERTIFICATE-----\ngarbage\n"),
        lambda key, cert: key.write_bytes(b""),
        lambda key, cert: cert.unlink(),
        # A certificate for another key.
        lambda key, cert: cert.write_bytes(PeerIdentity.generate().cert_pem),
    ],
)
def test_a_damaged_identity_is_replaced_with_a_warning(tmp_path, caplog, damage):
    old = PeerIdentity.load_or_create(tmp_path)
    damage(tmp_path / "peer-key.pem", tmp_path / "peer-cert.pem")
    with caplog.at_level(logging.WARNING, logger="napster.identity"):
        new = PeerIdentity.load_or_create(tmp_path)
    assert new.fingerprint != old.fingerprint
    assert "damaged" in caplog.text
    assert PeerIdentity.load_or_create(tmp_path).fingerprint == new.fingerprint
    tls.server_context(new)  # and it serves


def test_an_identity_for_the_index_server_lives_beside_the_peers(tmp_path):
    peer = PeerIdentity.load_or_create(tmp_path)
    server = PeerIdentity.load_or_create(tmp_path, stem="server", common_name="napster index")
    assert (tmp_path / "server-cert.pem").exists()
    assert server.fingerprint != peer.fingerprint


# ------------------------------------------------------------------ helpers


class TlsListener(RecordingTlsServer):
    """A TLS 1.3 server with its own certificate that records the application bytes it gets."""

    def __init__(self, identity: PeerIdentity) -> None:
        super().__init__(identity)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        self.listener.settimeout(10)
        try:
            raw, _ = self.listener.accept()
        except OSError:
            self.done.set()
            return
        self.serve(raw, 10)

    def close(self) -> None:
        self.listener.close()
        self.thread.join(5)


class RecordingProxy:
    """Forwards TCP connections to ``port`` and keeps every byte in both directions."""

    def __init__(self, port: int) -> None:
        self.target = port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.upstream = bytearray()  # downloader to sharer
        self.downstream = bytearray()
        self.lock = threading.Lock()
        self.threads: list[threading.Thread] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        with contextlib.suppress(OSError):
            while True:
                client, _ = self.listener.accept()
                thread = threading.Thread(target=self._forward, args=(client,), daemon=True)
                self.threads.append(thread)
                thread.start()

    def _forward(self, client: socket.socket) -> None:
        with contextlib.suppress(OSError):
            server = socket.create_connection(("127.0.0.1", self.target), timeout=10)
            pairs = {client: (server, self.upstream), server: (client, self.downstream)}
            with selectors.DefaultSelector() as selector, client, server:
                for sock in pairs:
                    selector.register(sock, selectors.EVENT_READ)
                while True:
                    for key, _ in selector.select(10):
                        data = key.fileobj.recv(1 << 20)
                        other, record = pairs[key.fileobj]
                        if not data:
                            return
                        with self.lock:
                            record += data
                        other.sendall(data)

    def close(self) -> None:
        self.listener.close()
        for thread in self.threads:
            thread.join(10)


def pinned(server, fingerprint: str | None = "same") -> p.PeerAddress:
    chosen = server.fingerprint if fingerprint == "same" else fingerprint
    return p.PeerAddress("127.0.0.1", server.serverPort(), chosen)


# ------------------------------------------------------------------ the downloader's side


def test_a_pinned_source_is_reached_and_serves(qtbot, folders, uploads):  # noqa: F811
    share, _ = folders
    catalog = Catalog()
    shared = catalog.share(make_file(share / "v.mp4", PIECE + 5))
    server = uploads(catalog)

    def talk():
        conn = SourceConnection(pinned(server), FAST, threading.Event())
        try:
            return conn.pinned, conn.fetch_pieces(shared.hash, shared.size)
        finally:
            conn.close()

    was_pinned, digests = in_thread(qtbot, talk)
    assert was_pinned and len(digests) == 2


def test_a_source_with_another_certificate_is_refused_before_any_request():
    impostor = TlsListener(PeerIdentity.generate())
    expected = PeerIdentity.generate().fingerprint
    address = p.PeerAddress("127.0.0.1", impostor.port, expected)
    try:
        with pytest.raises(SourceFailed) as failure:
            SourceConnection(address, FAST, threading.Event())
        assert "certificate" in failure.value.reason and not failure.value.corrupt
        assert impostor.done.wait(5)
    finally:
        impostor.close()
    assert impostor.handshakes == 1  # the handshake happened, and then nothing at all
    assert impostor.received == b""


def test_connect_pinned_raises_a_typed_mismatch():
    impostor = TlsListener(PeerIdentity.generate())
    try:
        with pytest.raises(tls.FingerprintMismatch) as mismatch:
            tls.connect_pinned(("127.0.0.1", impostor.port), "0" * 64, timeout=5)
        assert mismatch.value.expected == "0" * 64 and len(mismatch.value.actual) == 64
        assert impostor.done.wait(5)
    finally:
        impostor.close()
    assert impostor.received == b""


def test_a_source_listed_without_a_fingerprint_is_fetched_over_tls_and_said_so(
    qtbot,
    folders,  # noqa: F811
    uploads,  # noqa: F811
    caplog,
    monkeypatch,
):
    monkeypatch.setattr(source, "_warned_unpinned", set())  # said once per address per run
    share, downloads = folders
    catalog = Catalog()
    shared = catalog.share(make_file(share / "v.mp4", PIECE + 5, seed=4))
    server = uploads(catalog)
    downloader = fp.PieceDownloader(
        spec_for(shared, downloads, [pinned(server, None)]), timeouts=FAST
    )
    with caplog.at_level(logging.WARNING, logger="napster.download"):
        final = run_download(qtbot, downloader)
    assert same_bytes(final, shared.path)
    assert "without a pinned certificate" in caplog.text


def test_the_transfer_connection_carries_no_plaintext(qtbot, folders, uploads):  # noqa: F811
    share, downloads = folders
    catalog = Catalog()
    shared = catalog.share(make_file(share / "v.mp4", 2 * PIECE + 77, seed=9))
    server = uploads(catalog)
    proxy = RecordingProxy(server.serverPort())
    through = p.PeerAddress("127.0.0.1", proxy.port, server.fingerprint)
    downloader = fp.PieceDownloader(spec_for(shared, downloads, [through]), timeouts=FAST)
    final = run_download(qtbot, downloader)
    proxy.close()
    assert same_bytes(final, shared.path)
    assert len(proxy.downstream) > 2 * PIECE  # the file did go through the proxy
    wire = bytes(proxy.upstream) + bytes(proxy.downstream)
    for plain in (b"DOWNLOAD", b'{"op"', b"PIECES", shared.hash.encode(), b"v.mp4"):
        assert plain not in wire, plain
    data = shared.path.read_bytes()
    for offset in range(0, len(data) - 64, len(data) // 16):
        assert data[offset : offset + 64] not in wire


# ------------------------------------------------------------------ the sharer's side


def test_a_version_1_client_gets_a_clear_refusal_and_a_close(qtbot, folders, uploads):  # noqa: F811
    share, _ = folders
    catalog = Catalog()
    shared = catalog.share(make_file(share / "v.mp4", 100))
    server = uploads(catalog, UploadLimits(request_timeout=5))

    def version_1_client():
        started = time.monotonic()
        with socket.create_connection(("127.0.0.1", server.serverPort()), timeout=5) as sock:
            sock.sendall(p.encode(p.Pieces(id=1, hash=shared.hash)))
            received = b""
            while chunk := sock.recv(65536):
                received += chunk
        return received, time.monotonic() - started

    received, took = in_thread(qtbot, version_1_client, timeout=10000)
    assert took < 3.0  # answered and closed, not left to a deadline
    assert received.endswith(b"\n") and received.count(b"\n") == 1
    reply = p.decode_line(received)
    assert isinstance(reply, p.Error) and reply.code is p.ErrorCode.BAD_REQUEST
    assert "version 2" in reply.message and "TLS" in reply.message and "upgrade" in reply.message
    qtbot.waitUntil(lambda: server.connection_count == 0, timeout=3000)


def test_a_tls_1_2_client_is_refused(qtbot, folders, uploads):  # noqa: F811
    server = uploads(Catalog())
    old = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    old.check_hostname = False
    old.verify_mode = ssl.CERT_NONE
    old.maximum_version = ssl.TLSVersion.TLSv1_2

    def handshake():
        return tls.connect_pinned(("127.0.0.1", server.serverPort()), None, 5, context=old)

    with pytest.raises(ssl.SSLError):
        in_thread(qtbot, handshake, timeout=10000)
    qtbot.waitUntil(lambda: server.connection_count == 0, timeout=3000)


def test_a_client_that_never_finishes_its_handshake_is_dropped(qtbot, folders, uploads):  # noqa: F811
    server = uploads(Catalog(), UploadLimits(request_timeout=0.5))
    with socket.create_connection(("127.0.0.1", server.serverPort()), timeout=5) as sock:
        sock.sendall(bytes([tls.TLS_HANDSHAKE, 3, 1]))  # a ClientHello that never goes on
        qtbot.waitUntil(lambda: server.connection_count == 1, timeout=3000)
        qtbot.waitUntil(lambda: server.connection_count == 0, timeout=3000)


def test_the_server_names_its_fingerprint_only_when_it_speaks_tls(qtbot):
    identity = PeerIdentity.generate()
    served = UploadServer(Catalog(), identity=identity)
    assert served.fingerprint == identity.fingerprint
    assert UploadServer(Catalog(), plaintext_for_tests=True).fingerprint is None
