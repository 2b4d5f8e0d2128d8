"""Upload slots belong to DOWNLOADs being sent, not to connections (real loopback sockets).

A slot is taken while a DOWNLOAD's bytes are being sent and given back when that range is sent
or the downloader stalls; a connection between transfers, kept open by PINGs, holds none. And
an error inside an upload thread is an ``ERROR`` reply and a closed connection.
"""

from __future__ import annotations

import pytest

from app.network import protocol as p
from app.network.upload_server import UploadLimits, UploadServer
from tests.catalog import Catalog
from tests.test_fuzz_index_server import wait_until
from tests.test_fuzz_upload_server import RawWire
from tests.test_transfer import PIECE, make_file


class NarrowWire(RawWire):
    """A downloader with a tiny receive window: it stops the sender until it reads."""

    def __init__(self, port: int) -> None:
        super().__init__(port, receive_buffer=4096)


@pytest.fixture
def serve(tmp_path):
    servers: list[UploadServer] = []
    wires: list[RawWire] = []

    def start(limits: UploadLimits, size: int) -> tuple[UploadServer, str, bytes]:
        catalog = Catalog()
        shared = catalog.share(make_file(tmp_path / "film.bin", size))
        server = UploadServer(catalog, limits)
        server.start("127.0.0.1", 0)
        servers.append(server)
        return server, shared.hash, shared.path.read_bytes()

    def connect(server: UploadServer, narrow: bool = False) -> RawWire:
        wire = (NarrowWire if narrow else RawWire)(server.serverPort())
        wires.append(wire)
        return wire

    yield start, connect
    for wire in wires:
        wire.close()
    for server in servers:
        server.stop()


def reply(qtbot, wire: RawWire, request: p.Message) -> dict:
    wire.send(p.encode(request))
    wait_until(qtbot, wire.has_line, timeout=5)
    return wire.pop_line()


def download(qtbot, wire: RawWire, file_hash: str, data: bytes, request_id: int) -> None:
    """A whole-file DOWNLOAD on ``wire``, read to the last byte."""
    ok = reply(qtbot, wire, p.Download(id=request_id, hash=file_hash))
    assert ok["op"] == "DOWNLOAD_OK", ok
    wait_until(qtbot, lambda: wire.has_bytes(len(data)), timeout=20)
    assert wire.pop_bytes(len(data)) == data


def test_connections_kept_alive_between_transfers_hold_no_slot(qtbot, serve):
    start, connect = serve
    server, file_hash, data = start(UploadLimits(slots=4), 5000)
    idle = [connect(server) for _ in range(4)]
    for index, wire in enumerate(idle):
        empty = reply(qtbot, wire, p.Download(id=index, hash=file_hash, offset=0, length=0))
        assert empty["op"] == "DOWNLOAD_OK", empty
        download(qtbot, wire, file_hash, data, request_id=100 + index)
        assert reply(qtbot, wire, p.Ping(id=200 + index))["op"] == "PONG"
    wait_until(qtbot, lambda: server.active_uploads == 0)

    # Four connections open and pinging, and a fifth downloader is served at once.
    newcomer = connect(server)
    download(qtbot, newcomer, file_hash, data, request_id=1)
    for index, wire in enumerate(idle):
        assert reply(qtbot, wire, p.Ping(id=300 + index))["op"] == "PONG"
    assert server.connection_count == 5
    wait_until(qtbot, lambda: server.active_uploads == 0)


def test_busy_only_while_every_slot_is_sending(qtbot, serve):
    start, connect = serve
    size = 8 * PIECE + 3
    server, file_hash, data = start(UploadLimits(slots=2, send_stall_timeout=2.0), size)
    first, second = connect(server, narrow=True), connect(server, narrow=True)
    for index, wire in enumerate((first, second)):
        wire.send(p.encode(p.Download(id=index, hash=file_hash)))
    wait_until(qtbot, lambda: server.active_uploads == 2)

    third = connect(server)
    busy = reply(qtbot, third, p.Download(id=7, hash=file_hash))
    assert busy["op"] == "ERROR" and busy["code"] == "BUSY" and busy["id"] == 7, busy
    assert busy["retry_after"] > 0

    # The first downloader reads its range to the end: its slot is free again although its
    # connection stays open, and the third is served.
    wait_until(qtbot, first.has_line, timeout=5)
    assert first.pop_line()["op"] == "DOWNLOAD_OK"
    wait_until(qtbot, lambda: first.has_bytes(size), timeout=20)
    assert first.pop_bytes(size) == data
    assert reply(qtbot, first, p.Ping(id=8))["op"] == "PONG"
    download(qtbot, third, file_hash, data, request_id=9)

    # The second never reads: it stalls, and its slot goes back when the send deadline passes.
    wait_until(qtbot, lambda: server.active_uploads == 0, timeout=10)
    assert reply(qtbot, first, p.Ping(id=10))["op"] == "PONG"


class FailingCatalog(Catalog):
    """A catalog whose file opening fails in a way nobody planned for."""

    def open_shared(self, entry):
        raise RuntimeError("something nobody planned for")

    def is_unchanged(self, entry) -> bool:
        raise RuntimeError("something nobody planned for")


def test_an_error_in_an_upload_thread_is_an_error_reply_and_a_close(qtbot, tmp_path):
    catalog = FailingCatalog()
    shared = catalog.share(make_file(tmp_path / "film.bin", 1000))
    server = UploadServer(catalog, UploadLimits())
    server.start("127.0.0.1", 0)
    wire = RawWire(server.serverPort())
    try:
        answer = reply(qtbot, wire, p.Download(id=1, hash=shared.hash))
        assert answer["op"] == "ERROR" and answer["id"] == 1, answer
        wait_until(qtbot, wire.is_closed, timeout=5)
        wait_until(qtbot, lambda: server.connection_count == 0 and not server._threads)
        assert server.active_uploads == 0
    finally:
        wire.close()
        server.stop()
