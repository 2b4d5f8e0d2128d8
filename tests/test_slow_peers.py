"""Slow and stuck connections are dropped within their deadlines, and nobody else waits.

Short deadlines come from ``ServerLimits``, ``UploadLimits`` and ``Timeouts``. Slow clients
are paced by Qt timers (the event loop keeps serving meanwhile); each test measures when the
connection was dropped and how quickly a well-behaved peer was served during the attack.
"""

from __future__ import annotations

import json
import logging
import socket
import time

import pytest
from PySide6.QtCore import QTimer

from app.download import engine as fp
from app.network import pieces as pc
from app.network import protocol as p
from app.network.upload_server import UploadLimits, UploadServer
from server_app.index_server import IndexServer, ServerLimits
from tests.catalog import Catalog
from tests.fake_source import FakeSource
from tests.test_fuzz_upload_server import RawWire
from tests.test_transfer import PIECE, make_file, run_download, same_bytes, spec_for
from tests.wire_client import WireClient

DEADLINE = 0.6
#: Scheduling slack on a loaded two-core CI machine.
SLACK = 1.5
#: A well-behaved peer is answered within this while others attack.
FAST_ANSWER = 0.2


class Trickler:
    """Sends ``data`` one byte per ``interval_ms`` from a Qt timer, until told to stop."""

    def __init__(self, sock: socket.socket, data: bytes, interval_ms: int = 100) -> None:
        self.sock = sock
        self.data = data
        self.sent = 0
        self.timer = QTimer()
        self.timer.setInterval(interval_ms)
        self.timer.timeout.connect(self._send_one)
        self.timer.start()

    def _send_one(self) -> None:
        if self.sent >= len(self.data):
            self.timer.stop()
            return
        try:
            # A non-blocking socket (over TLS, each byte goes as a record of its own).
            self.sock.send(self.data[self.sent : self.sent + 1])
            self.sent += 1
        except OSError:
            self.timer.stop()  # dropped by the other side

    def stop(self) -> None:
        self.timer.stop()


def wait_for_drop(qtbot, is_closed, serve_good_peer) -> tuple[float, list[float]]:
    """Run good requests until ``is_closed()``; the time it took and each request's latency."""
    started = time.monotonic()
    latencies: list[float] = []
    while not is_closed():
        assert time.monotonic() - started < DEADLINE + SLACK, "the slow connection is still open"
        begun = time.monotonic()
        serve_good_peer()
        latencies.append(time.monotonic() - begun)
    return time.monotonic() - started, latencies


# ------------------------------------------------------------------ the index server


@pytest.fixture
def index_server(make_index_server):
    return make_index_server


def good_searcher(qtbot, server: IndexServer):
    """A joined peer whose every SEARCH must find the other peer's file."""
    sharer, good = WireClient(server.serverPort()), WireClient(server.serverPort())
    files = [{"name": "aula.mp4", "size": 5, "hash": "a" * 64}]
    assert sharer.request(qtbot, {"op": "JOIN", "port": 7001, "files": files})["op"] == "JOIN_OK"
    assert good.request(qtbot, {"op": "JOIN", "port": 7002, "files": []})["op"] == "JOIN_OK"

    def search() -> None:
        reply = good.request(qtbot, {"op": "SEARCH", "query": "aula"}, timeout=1000)
        assert [r["name"] for r in reply["results"]] == ["aula.mp4"]

    return search, [sharer, good]


def test_slowloris_before_join_is_dropped_at_the_join_deadline(qtbot, index_server):
    server = index_server(ServerLimits(join_timeout=DEADLINE, idle_timeout=30))
    search, clients = good_searcher(qtbot, server)
    join = b'{"op":"JOIN","port":7003,"files":[]}\n'
    slow = [WireClient(server.serverPort()) for _ in range(10)]
    tricklers = [Trickler(client.sock, join) for client in slow]
    try:
        took, latencies = wait_for_drop(
            qtbot, lambda: all(client.is_closed() for client in slow), search
        )
    finally:
        for trickler in tricklers:
            trickler.stop()
        for client in slow + clients:
            client.close()
    assert DEADLINE * 0.8 <= took <= DEADLINE + SLACK
    assert max(latencies) < FAST_ANSWER, latencies
    assert server.store.counters().peers == 2


def test_slowloris_after_join_is_dropped_at_the_request_deadline(qtbot, index_server):
    server = index_server(ServerLimits(request_timeout=DEADLINE, idle_timeout=30))
    search, clients = good_searcher(qtbot, server)
    slow = WireClient(server.serverPort())
    assert slow.request(qtbot, {"op": "JOIN", "port": 7003, "files": []})["op"] == "JOIN_OK"
    # One byte every 100 ms keeps the idle timer happy but never finishes the line in time.
    trickler = Trickler(slow.sock, b'{"op":"SEARCH","query":"aula"}\n')
    try:
        took, latencies = wait_for_drop(qtbot, slow.is_closed, search)
    finally:
        trickler.stop()
        for client in [slow, *clients]:
            client.close()
    assert DEADLINE * 0.8 <= took <= DEADLINE + SLACK
    assert max(latencies) < FAST_ANSWER, latencies
    assert server.store.counters().peers == 2


def test_a_big_line_that_keeps_arriving_is_not_cut_by_the_request_deadline(qtbot, index_server):
    server = index_server(ServerLimits(request_timeout=0.3, idle_timeout=30))
    client = WireClient(server.serverPort())
    files = [{"name": f"video {i:05d}.mp4", "size": i, "hash": f"{i:064x}"} for i in range(4000)]
    line = json.dumps({"op": "JOIN", "port": 7001, "files": files}).encode() + b"\n"
    chunks = [line[i : i + 100_000] for i in range(0, len(line), 100_000)]
    assert len(chunks) >= 3
    sent = []
    timer = QTimer()
    timer.setInterval(200)  # the whole line takes longer than the deadline, but keeps coming

    def send_next() -> None:
        client.sock.sendall(chunks[len(sent)])
        sent.append(True)
        if len(sent) == len(chunks):
            timer.stop()

    timer.timeout.connect(send_next)
    timer.start()
    try:
        reply = client.reply(qtbot, timeout=5000)
    finally:
        timer.stop()
        client.close()
    assert reply["op"] == "JOIN_OK" and reply["files"] == 4000


def answered(clients: list[WireClient]) -> int:
    for client in clients:
        client.poll()
    return sum(len(client.lines) for client in clients)


def test_peers_flooding_searches_do_not_hold_up_one_that_searches_now_and_then(
    qtbot, index_server, caplog
):
    server = index_server(ServerLimits())
    flooders = [WireClient(server.serverPort()) for _ in range(10)]
    for port, flooder in enumerate(flooders, 7100):
        assert flooder.request(qtbot, {"op": "JOIN", "port": port, "files": []})["op"] == "JOIN_OK"
    search, clients = good_searcher(qtbot, server)
    caplog.set_level(logging.INFO, logger="napster.server")
    # 50 pipelined SEARCHes each: all of them arrive before the server reads the good one.
    flood = b"".join(b'{"op":"SEARCH","id":%d,"query":"aula"}\n' % i for i in range(50))
    for flooder in flooders:
        flooder.send_raw(flood)
    try:
        search()
        qtbot.waitUntil(lambda: answered(flooders) == 500)
    finally:
        for client in [*flooders, *clients]:
            client.close()
    # The good SEARCH went ahead of nearly all of the 500 waiting ones (the order the
    # server answered them in, from its log).
    searchers = [r.getMessage().split()[1] for r in caplog.records if "searched for" in r.message]
    assert len(searchers) == 501
    assert searchers.index("127.0.0.1:7002") < 30, searchers[:40]


# ------------------------------------------------------------------ a peer's upload server


@pytest.fixture
def upload_server(qtbot, tmp_path):
    servers = []

    def start(limits: UploadLimits) -> tuple[UploadServer, Catalog]:
        catalog = Catalog()
        server = UploadServer(catalog, limits)
        server.start("127.0.0.1", 0)
        servers.append(server)
        return server, catalog

    yield start
    for server in servers:
        server.stop()


def test_slowloris_against_a_peer_is_dropped_at_the_request_deadline(
    qtbot, tmp_path, upload_server
):
    server, catalog = upload_server(UploadLimits(request_timeout=DEADLINE, idle_timeout=30))
    shared = catalog.share(make_file(tmp_path / "v.mp4", 1000))
    request = p.encode(p.Pieces(id=1, hash=shared.hash))
    slow = [RawWire(server.serverPort()) for _ in range(6)]
    tricklers = [Trickler(wire.sock, request) for wire in slow]

    def download_a_range() -> None:
        good = RawWire(server.serverPort())
        try:
            good.send(p.encode(p.Download(id=2, hash=shared.hash, offset=0, length=1000)))
            qtbot.waitUntil(lambda: good.has_bytes(1001) and good.has_line(), timeout=1000)
            assert good.pop_line()["op"] == "DOWNLOAD_OK"
            assert good.pop_bytes(1000) == shared.path.read_bytes()
        finally:
            good.close()

    try:
        took, latencies = wait_for_drop(
            qtbot, lambda: all(wire.is_closed() for wire in slow), download_a_range
        )
    finally:
        for trickler in tricklers:
            trickler.stop()
        for wire in slow:
            wire.close()
    assert DEADLINE * 0.8 <= took <= DEADLINE + SLACK
    assert max(latencies) < FAST_ANSWER, latencies
    qtbot.waitUntil(lambda: server.connection_count == 0, timeout=3000)


def test_a_downloader_that_never_reads_is_dropped_and_others_are_not_slowed(
    qtbot, tmp_path, upload_server
):
    server, catalog = upload_server(UploadLimits(slots=2, send_stall_timeout=DEADLINE))
    shared = catalog.share(make_file(tmp_path / "big.bin", 8 * PIECE + 3))
    failed: list[tuple[float, str]] = []
    server.upload_failed.connect(lambda _id, reason: failed.append((time.monotonic(), reason)))
    stuck = RawWire(server.serverPort(), receive_buffer=4096)
    stuck.send(p.encode(p.Download(id=1, hash=shared.hash)))
    asked = time.monotonic()
    qtbot.waitUntil(lambda: server.active_uploads == 1, timeout=3000)

    downloads = tmp_path / "downloads"
    downloads.mkdir()
    good = fp.PieceDownloader(
        spec_for(
            shared,
            downloads,
            [p.PeerAddress("127.0.0.1", server.serverPort(), server.fingerprint)],
        ),
        timeouts=fp.Timeouts(connect=2.0, stall=DEADLINE, tick=0.05),
    )
    started = time.monotonic()
    final = run_download(qtbot, good, timeout=10000)
    good_took = time.monotonic() - started
    try:
        qtbot.waitUntil(lambda: bool(failed), timeout=int((DEADLINE + SLACK) * 1000) + 1000)
    finally:
        stuck.close()
    dropped_after = failed[0][0] - asked
    assert "stalled" in failed[0][1]
    assert DEADLINE * 0.8 <= dropped_after <= DEADLINE + SLACK + 1.0
    # 32 MiB over loopback while the stuck one holds a slot: well under the stall deadline.
    assert same_bytes(final, shared.path) and good_took < 3.0
    qtbot.waitUntil(lambda: server.active_uploads == 0, timeout=3000)


# ------------------------------------------------------------------ a stalling uploader


class StallingSource(FakeSource):
    """Serves one file, then in the middle of a piece stops (or trickles one byte at a time)."""

    def __init__(self, path, digest: pc.FileDigest, stop_after: int, trickle: bool) -> None:
        self.data = path.read_bytes()
        self.stop_after = stop_after
        self.trickle = trickle
        self.stalled_at: float | None = None
        super().__init__(path, digest, "v.mp4")

    def send_body(self, conn: socket.socket, offset: int, length: int) -> bool:
        end = offset + length
        conn.sendall(self.data[offset : min(end, self.stop_after)])
        self.stalled_at = time.monotonic()
        position = self.stop_after
        # A slow peer's pace, not a wait for anything: one byte every 50 ms, or nothing.
        while self.trickle and position < end and not self.closing.wait(0.05):
            conn.sendall(self.data[position : position + 1])
            position += 1
        self.closing.wait(30)
        return False


@pytest.mark.parametrize("trickle", [False, True], ids=["stalls", "trickles"])
def test_an_uploader_that_stalls_mid_piece_is_dropped_for_another_source(
    qtbot, tmp_path, upload_server, trickle
):
    server, catalog = upload_server(UploadLimits())
    shared = catalog.share(make_file(tmp_path / "v.mp4", 4 * PIECE + 99))
    bad = StallingSource(
        shared.path, pc.hash_file(shared.path), stop_after=PIECE + PIECE // 2, trickle=trickle
    )
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    good = p.PeerAddress("127.0.0.1", server.serverPort(), server.fingerprint)
    downloader = fp.PieceDownloader(
        spec_for(shared, downloads, [bad.address, good]),
        timeouts=fp.Timeouts(connect=2.0, stall=DEADLINE, tick=0.05),
    )
    try:
        final = run_download(qtbot, downloader, timeout=15000)
        finished = time.monotonic()
    finally:
        bad.close()
    assert same_bytes(final, shared.path)
    assert bad.stalled_at is not None
    # A trickle is dropped at the end of the first stall period without enough progress.
    assert finished - bad.stalled_at <= (2 if trickle else 1) * DEADLINE + SLACK
    # The first piece came from the stalling source and was kept; the rest came from the good one.
    assert downloader.received_bytes <= shared.size + PIECE
