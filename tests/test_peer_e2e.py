"""End to end on loopback: the real index server and real peers (PeerNode) in one process."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import server_app.reachability as reachability
from app.download import engine as fp
from app.download.transfer import TransferState
from app.network import protocol as p
from app.network.pieces import hash_file
from app.peer import PeerConfig, PeerNode
from server_app.index_server import IndexServer
from server_app.index_store import SqliteIndexStore
from tests.test_transfer import PIECE, make_file

FAST = fp.Timeouts(connect=2.0, stall=2.0, tick=0.05)
QUICK_RECONNECT = {"min_backoff": 0.05, "max_backoff": 0.2}


@pytest.fixture
def index_server(make_index_server):
    return make_index_server()


@pytest.fixture
def make_peer(tmp_path, index_server, qtbot):
    nodes = []

    def make(
        name: str, files: dict[str, int] | None = None, port: int | None = None, start: bool = True
    ) -> PeerNode:
        root = tmp_path / name
        share = root / "share"
        share.mkdir(parents=True)
        for index, (file_name, size) in enumerate((files or {}).items()):
            make_file(share / file_name, size, seed=index + len(nodes) * 100)
        config = PeerConfig(
            server_host="127.0.0.1",
            server_port=port or index_server.serverPort(),
            share_dir=share,
            download_dir=root / "downloads",
            listen_host="127.0.0.1",
            listen_port=0,
            data_dir=root / "data",
        )
        node = PeerNode(config, FAST, **QUICK_RECONNECT)
        nodes.append(node)
        if start:
            node.start()
        return node

    yield make
    for node in nodes:
        node.stop()


def indexed(server: IndexServer, name: str) -> int:
    """How many online peers the index lists for a file name."""
    return sum(len(r.peers) for r in server.store.search(name, 10) if r.name == name)


def search(qtbot, node: PeerNode, query: str) -> list:
    with qtbot.waitSignal(node.search_finished, timeout=5000) as found:
        node.search(query)
    return found.args[1]


def test_share_search_download_and_become_a_source(qtbot, index_server, make_peer):
    a = make_peer("a", {"aula.mp4": 2 * PIECE + 77, "notes.txt": 10})
    qtbot.waitUntil(lambda: indexed(index_server, "aula.mp4") == 1, timeout=10000)
    b = make_peer("b")
    qtbot.waitUntil(lambda: b.client.state == "joined", timeout=5000)

    results = search(qtbot, b, "AULA")
    assert [r.name for r in results] == ["aula.mp4"]
    assert [peer.port for peer in results[0].peers] == [a.listen_port]

    with qtbot.waitSignal(b.transfers.transfer_finished, timeout=20000) as done:
        b.download(results[0])
    downloaded = done.args[1]
    original = a.config.share_dir / "aula.mp4"
    assert Path(downloaded).read_bytes() == original.read_bytes()

    # B announced the file: a third peer now finds both A and B and can download from B alone.
    qtbot.waitUntil(lambda: indexed(index_server, "aula.mp4") == 2, timeout=10000)
    c = make_peer("c")
    qtbot.waitUntil(lambda: c.client.state == "joined", timeout=5000)
    result = search(qtbot, c, "aula.mp4")[0]
    assert {peer.port for peer in result.peers} == {a.listen_port, b.listen_port}
    only_b = type(result)(
        result.name,
        result.size,
        result.hash,
        tuple(peer for peer in result.peers if peer.port == b.listen_port),
    )
    a.uploads.stop()  # A is gone: only B can serve it now
    with qtbot.waitSignal(c.transfers.transfer_finished, timeout=20000) as done:
        c.download(only_b)
    assert hash_file(done.args[1]).hash == result.hash


def test_server_restart_brings_both_peers_back_without_anyone_acting(
    qtbot, index_server, make_peer
):
    port = index_server.serverPort()
    a = make_peer("a", {"one.mkv": 1000})
    b = make_peer("b", {"two.mkv": 2000})
    qtbot.waitUntil(lambda: index_server.store.counters().peers == 2, timeout=10000)
    qtbot.waitUntil(lambda: index_server.store.counters().files == 2, timeout=10000)

    index_server.stop()
    qtbot.waitUntil(
        lambda: a.client.state == "waiting" and b.client.state == "waiting", timeout=5000
    )
    restarted = IndexServer(SqliteIndexStore(), identity=index_server.identity)
    restarted.start("127.0.0.1", port)
    try:
        qtbot.waitUntil(lambda: restarted.store.counters().peers == 2, timeout=10000)
        qtbot.waitUntil(lambda: restarted.store.counters().files == 2, timeout=10000)
    finally:
        restarted.stop()
        restarted.store.close()


def test_file_changed_while_shared_is_refused_and_reindexed(qtbot, index_server, make_peer):
    a = make_peer("a", {"clip.mp4": PIECE + 5})
    qtbot.waitUntil(lambda: indexed(index_server, "clip.mp4") == 1, timeout=10000)
    b = make_peer("b")
    qtbot.waitUntil(lambda: b.client.state == "joined", timeout=5000)
    result = search(qtbot, b, "clip")[0]
    path = a.config.share_dir / "clip.mp4"
    with open(path, "r+b") as f:
        f.write(b"edited!")
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 10**9))

    transfer_id = b.download(result)
    qtbot.waitUntil(
        lambda: b.transfers.get(transfer_id).state in (TransferState.WAITING, TransferState.FAILED),
        timeout=10000,
    )
    assert "changed on disk" in b.transfers.get(transfer_id).error
    new_hash = hash_file(path).hash
    qtbot.waitUntil(
        lambda: [r.hash for r in index_server.store.search("clip.mp4", 10)] == [new_hash],
        timeout=10000,
    )


def test_a_new_holder_is_found_by_sources_during_the_download(qtbot, index_server, make_peer):
    """Issue 14: sources found during a download. C starts from A alone (slow); B comes
    online with the same file meanwhile; C's next SOURCES question finds B, and B sends C
    pieces (a peer that finishes a download announces it the same way)."""
    import shutil

    a = make_peer("a", {"film.mkv": 10 * PIECE + 5})
    a.uploads.limiter.set_rate(PIECE // 2)  # two seconds a piece
    qtbot.waitUntil(lambda: indexed(index_server, "film.mkv") == 1, timeout=10000)
    c = make_peer("c")
    qtbot.waitUntil(lambda: c.client.state == "joined", timeout=5000)
    (result,) = search(qtbot, c, "film.mkv")
    c._sources_timer.setInterval(300)  # "every few minutes", in a test's time
    c.download(result)
    b = make_peer("b")
    shutil.copyfile(a.config.share_dir / "film.mkv", b.config.share_dir / "film.mkv")
    b.library.rescan()
    qtbot.waitUntil(lambda: indexed(index_server, "film.mkv") == 2, timeout=10000)
    with qtbot.waitSignal(c.transfers.transfer_finished, timeout=30000) as done:
        pass
    assert hash_file(done.args[1]).hash == result.hash
    (transfer,) = c.transfers.transfers()
    assert any(peer.port == b.listen_port for peer in transfer.sources)
    assert b.totals.uploaded > 0  # B did send C pieces


def test_sources_before_join_is_not_joined_and_after_lists_holders(qtbot, index_server, make_peer):
    a = make_peer("a", {"clip.mp4": 1000})
    qtbot.waitUntil(lambda: indexed(index_server, "clip.mp4") == 1, timeout=10000)
    digest = hash_file(a.config.share_dir / "clip.mp4")
    c = make_peer("c")
    qtbot.waitUntil(lambda: c.client.state == "joined", timeout=5000)
    with qtbot.waitSignal(c.client.search_finished, timeout=5000) as found:
        c.client.sources(digest.hash, digest.size)
    (result,) = found.args[1]
    assert result.name == "clip.mp4" and [x.port for x in result.peers] == [a.listen_port]


def test_the_server_saying_there_are_more_results_reaches_the_peer(qtbot, index_server, make_peer):
    make_peer("a", {f"aula {i}.mp4": 10 + i for i in range(5)})
    qtbot.waitUntil(lambda: indexed(index_server, "aula 4.mp4") == 1, timeout=10000)
    b = make_peer("b")
    qtbot.waitUntil(lambda: b.client.state == "joined", timeout=5000)
    with qtbot.waitSignal(b.search_finished, timeout=5000) as few:
        b.search("aula", limit=3)
    assert len(few.args[1]) == 3 and few.args[1].more is True
    with qtbot.waitSignal(b.search_finished, timeout=5000) as all_of_them:
        b.search("aula", limit=10)
    assert len(all_of_them.args[1]) == 5 and all_of_them.args[1].more is False


# ---------------------------------------------------------------- protocol version 2
# JOIN carries each peer's fingerprint and results carry it back; the index's connect-back
# tells each peer whether others can reach it; a holder the index could not reach is
# downloaded from by push (the index relays PUSH as PUSH_REQUEST, the holder connects out).


def test_results_carry_each_holders_fingerprint_and_the_index_says_it_is_reachable(
    qtbot, index_server, make_peer
):
    a = make_peer("a", {"aula.mp4": PIECE + 5})
    qtbot.waitUntil(lambda: a.client.reachable is True, timeout=10000)
    qtbot.waitUntil(lambda: indexed(index_server, "aula.mp4") == 1, timeout=10000)
    b = make_peer("b")
    qtbot.waitUntil(lambda: b.client.state == "joined", timeout=5000)
    [result] = search(qtbot, b, "aula")
    [holder] = result.peers
    assert holder.fingerprint == a.identity.fingerprint == a.uploads.fingerprint
    assert holder.reachable is True


@pytest.fixture
def unreachable_ports(monkeypatch):
    """Peers (by fingerprint) whose port the index's connect-back finds closed, as behind
    a NAT: the index answers their JOIN before it connects back, so a port is known late."""
    closed: set[str] = set()
    real = reachability.port_answers

    def port_answers(host: str, port: int, fingerprint: str, timeout: float = 1.0) -> bool:
        return False if fingerprint in closed else real(host, port, fingerprint, timeout)

    monkeypatch.setattr(reachability, "port_answers", port_answers)
    return closed


def test_a_holder_the_index_cannot_reach_is_downloaded_from_by_push(
    qtbot, index_server, make_peer, unreachable_ports
):
    a = make_peer("a", {"film.mkv": 3 * PIECE + 11}, start=False)
    unreachable_ports.add(a.identity.fingerprint)
    a.start()
    qtbot.waitUntil(lambda: a.client.reachable is False, timeout=10000)
    qtbot.waitUntil(lambda: indexed(index_server, "film.mkv") == 1, timeout=10000)
    b = make_peer("b")
    qtbot.waitUntil(lambda: b.client.state == "joined", timeout=5000)
    [result] = search(qtbot, b, "film")
    assert [peer.reachable for peer in result.peers] == [False]

    with qtbot.waitSignal(b.transfers.transfer_finished, timeout=30000) as done:
        b.download(result)
    original = a.config.share_dir / "film.mkv"
    assert Path(done.args[1]).read_bytes() == original.read_bytes()
    assert a.uploads.accepted_total == 0  # nothing came in directly...
    assert a.uploads.pushed_total >= 1  # ...it all went over connections A opened


def test_a_push_to_nobody_online_is_not_found(qtbot, index_server, make_peer):
    b = make_peer("b")
    qtbot.waitUntil(lambda: b.client.state == "joined", timeout=5000)
    with qtbot.waitSignal(b.client.server_error, timeout=5000, raising=False) as told:
        b.client.request_push(p.PeerAddress("127.0.0.1", 9, "ab" * 32), "0f" * 16)
    assert not told.signal_triggered  # a failed push is logged, not shown as a server error
    assert b.client.state == "joined"
