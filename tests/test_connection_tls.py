"""The index server's connection over TLS: replies flow, a version-1 client is refused."""

from __future__ import annotations

import contextlib
import select
import socket
import ssl
import threading

import pytest
from PySide6.QtCore import QTimer

from app.network import tls
from app.network.identity import PeerIdentity
from server_app.connection import Connection

REFUSAL = b'{"op":"ERROR","code":"BAD_REQUEST","message":"speak TLS"}\n'


@pytest.fixture(scope="module")
def server_context() -> ssl.SSLContext:
    return tls.server_context(PeerIdentity.generate("test server"))


def client_context() -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    return context


class EchoServer:
    """Accepts one connection as a TLS ``Connection`` and echoes every byte it reads."""

    def __init__(self, context: ssl.SSLContext, read_limit: int = 1 << 20) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.context = context
        self.read_limit = read_limit
        self.connection: Connection | None = None
        self.ended = False

    def accept(self) -> Connection:
        sock, _ = self.listener.accept()
        self.connection = Connection(sock, self.read_limit, self.context, REFUSAL)
        self.connection.ready_read.connect(self._echo)
        self.connection.input_finished.connect(self._ended)
        return self.connection

    def _echo(self) -> None:
        assert self.connection is not None
        self.connection.write(self.connection.read(1 << 20))

    def _ended(self) -> None:
        self.ended = True
        assert self.connection is not None
        self.connection.close()


def run_client(port: int, work) -> dict:
    outcome: dict = {}

    def body() -> None:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
                outcome["value"] = work(raw)
        except Exception as exc:  # reported to the test thread
            outcome["error"] = exc

    thread = threading.Thread(target=body, daemon=True)
    thread.start()
    outcome["thread"] = thread
    return outcome


def receive(sock: socket.socket, wanted: int) -> bytes:
    data = bytearray()
    while len(data) < wanted:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return bytes(data)


def test_bytes_cross_tls_both_ways_and_the_end_is_seen(qtbot, server_context) -> None:
    server = EchoServer(server_context, read_limit=64 * 1024)
    payload = bytes(range(256)) * 4096  # 1 MiB: more than the read limit, so reads resume

    def client(raw: socket.socket) -> bytes:
        # One thread sends and reads (an SSL socket is not safe for two threads at once).
        with client_context().wrap_socket(raw) as tls:
            tls.setblocking(False)
            sent, echoed = 0, bytearray()
            while len(echoed) < len(payload):
                if sent < len(payload):
                    with contextlib.suppress(ssl.SSLWantWriteError, ssl.SSLWantReadError):
                        sent += tls.send(payload[sent : sent + 16384])
                try:
                    echoed += tls.recv(65536)
                except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
                    select.select([tls], [], [], 0.01)  # until the echo has more
            return bytes(echoed)

    outcome = run_client(server.port, client)
    server.accept()
    qtbot.waitUntil(lambda: not outcome["thread"].is_alive(), timeout=15000)
    assert "error" not in outcome, outcome.get("error")
    assert outcome["value"] == payload
    qtbot.waitUntil(lambda: server.ended, timeout=5000)


def test_a_version_1_client_gets_the_refusal_in_plain_text_and_a_close(
    qtbot, server_context
) -> None:
    server = EchoServer(server_context)

    def client(raw: socket.socket) -> bytes:
        raw.sendall(b'{"op":"JOIN","id":1,"port":6699,"files":[]}\n')
        return receive(raw, 1 << 16)  # up to the close

    outcome = run_client(server.port, client)
    connection = server.accept()
    qtbot.waitUntil(lambda: not outcome["thread"].is_alive(), timeout=5000)
    assert outcome["value"] == REFUSAL
    assert connection.refused_plaintext
    assert not connection.is_open


def test_replies_written_before_the_handshake_wait_for_it(qtbot, server_context) -> None:
    server = EchoServer(server_context)

    def client(raw: socket.socket) -> bytes:
        with client_context().wrap_socket(raw) as tls:
            return receive(tls, len(b"welcome\n"))

    outcome = run_client(server.port, client)
    connection = server.accept()
    connection.write(b"welcome\n")
    qtbot.waitUntil(lambda: not outcome["thread"].is_alive(), timeout=5000)
    assert outcome.get("value") == b"welcome\n", outcome.get("error")


def test_tls_1_2_is_refused(qtbot, server_context) -> None:
    server = EchoServer(server_context)

    def client(raw: socket.socket) -> str:
        context = client_context()
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.maximum_version = ssl.TLSVersion.TLSv1_2
        try:
            context.wrap_socket(raw).close()
        except (ssl.SSLError, OSError) as exc:
            return type(exc).__name__
        return "connected"

    outcome = run_client(server.port, client)
    connection = server.accept()
    qtbot.waitUntil(lambda: not outcome["thread"].is_alive(), timeout=5000)
    assert outcome["value"] != "connected"
    qtbot.waitUntil(lambda: not connection.is_open, timeout=5000)


class SlowReader:
    """Takes at most ``bite`` bytes a turn, a turn per pass of the loop while bytes wait, as
    a server busy with other connections does."""

    def __init__(self, context: ssl.SSLContext, read_limit: int, bite: int) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.context, self.read_limit, self.bite = context, read_limit, bite
        self.got = bytearray()
        self.ended = False
        self.connection: Connection | None = None

    def accept(self) -> None:
        sock, _ = self.listener.accept()
        self.connection = Connection(sock, self.read_limit, self.context, REFUSAL)
        self.connection.ready_read.connect(self._bite)
        self.connection.input_finished.connect(self._end)

    def _bite(self) -> None:
        assert self.connection is not None
        self.got += self.connection.read(self.bite)
        if self.connection.bytes_available():
            QTimer.singleShot(0, self.connection, self._bite)  # its next turn

    def _end(self) -> None:
        self._bite()
        self.ended = True


@pytest.mark.parametrize("then", ["wait", "close_notify", "tcp_close"])
def test_a_record_bigger_than_the_read_limit_is_all_delivered_and_the_end_after_it(
    qtbot, server_context, then
):
    reader = SlowReader(server_context, read_limit=1000, bite=300)
    payload = bytes(range(250)) * 20  # 5,000 bytes in one TLS record
    finished = threading.Event()

    def client(raw: socket.socket) -> None:
        tls = client_context().wrap_socket(raw)
        tls.sendall(payload)
        if then == "close_notify":
            tls.setblocking(False)
            with contextlib.suppress(ssl.SSLWantReadError):
                tls.unwrap()
        elif then == "tcp_close":
            tls.shutdown(socket.SHUT_WR)  # a FIN without close_notify (closing would reset)
        finished.wait(10)  # keep the connection until the test has looked

    outcome = run_client(reader.port, client)
    reader.accept()
    qtbot.waitUntil(lambda: len(reader.got) == len(payload), timeout=5000)
    assert bytes(reader.got) == payload
    if then != "wait":
        qtbot.waitUntil(lambda: reader.ended, timeout=5000)
        assert bytes(reader.got) == payload  # nothing dropped at the end of the input
    else:
        assert not reader.ended
    finished.set()
    outcome["thread"].join(5)
