"""Many index servers, one PostgreSQL index: shared peers, leases, sweeping, re-assert."""

from __future__ import annotations

import hashlib
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest

from app.network.protocol import FileInfo
from server_app.postgres_store import PostgresIndexStore
from server_app.store import IndexUnavailable
from tests.postgres_server import ThrowawayPostgres
from tests.waiting import poll

ROOT = Path(__file__).resolve().parent.parent
LEASE = 2.0
HEARTBEAT = 0.25


def info(name: str) -> FileInfo:
    return FileInfo(name, 100, hashlib.sha256(name.encode()).hexdigest())


def wait_until(condition: Callable[[], object], timeout: float) -> float:
    """Poll ``condition`` until true (the store may be away meanwhile); returns the seconds
    it took (fails after ``timeout``)."""

    def holds() -> bool:
        try:
            return bool(condition())
        except IndexUnavailable:
            return False

    start = time.monotonic()
    assert poll(holds, timeout), "condition not met in time"
    return time.monotonic() - start


def found(store: PostgresIndexStore, query: str) -> list[str]:
    return sorted(result.name for result in store.search(query))


@pytest.fixture
def make_store(postgres_url):
    opened: list[PostgresIndexStore] = []

    def make(name: str, url: str = postgres_url) -> PostgresIndexStore:
        store = PostgresIndexStore(
            url, server_name=name, lease_seconds=LEASE, heartbeat_seconds=HEARTBEAT
        )
        opened.append(store)
        return store

    yield make
    for store in opened:
        store.close()


def test_every_server_sees_every_peer_and_a_leave_is_gone_at_once(make_store):
    stores = [make_store(f"127.0.0.1:{8000 + n}") for n in range(3)]
    ids = [
        store.add_peer("10.0.0.1", 6000 + n, "t", [info(f"song {n}.mp3"), info("common.mkv")])
        for n, store in enumerate(stores)
    ]
    for store in stores:
        assert found(store, "song") == ["song 0.mp3", "song 1.mp3", "song 2.mp3"]
        assert [(r.peer_id, r.server) for r in store.peers()] == [
            (ids[0], "127.0.0.1:8000"),
            (ids[1], "127.0.0.1:8001"),
            (ids[2], "127.0.0.1:8002"),
        ]
        assert store.counters().peers == 3
        assert len(store.search("common", exclude_peer=ids[0])[0].peers) == 2
    stores[1].remove_peer(ids[1])
    assert all(found(store, "song") == ["song 0.mp3", "song 2.mp3"] for store in stores)
    assert stores[0].browse("10.0.0.1", 6001).results == []
    with pytest.raises(KeyError):  # a server changes only its own peers
        stores[0].update_files(ids[2], [info("x")], [])
    stores[2].ban("203.0.113.9", "spam")
    assert stores[0].is_banned("203.0.113.9")
    stores[0].unban("203.0.113.9")
    assert stores[2].bans() == []


def test_a_closed_server_takes_its_peers_with_it(make_store):
    one, two = make_store("a:1"), make_store("b:2")
    one.add_peer("10.0.0.1", 1, "t", [info("movie.mkv")])
    two.add_peer("10.0.0.2", 1, "t", [info("movie.mkv")])
    one.close()
    assert [r.server for r in two.peers()] == ["b:2"]
    assert two.search("movie")[0].peers == (two.peers()[0].address,)


SERVER_PROCESS = """
import sys
from app.network.protocol import FileInfo
from server_app.postgres_store import PostgresIndexStore
store = PostgresIndexStore(sys.argv[1], server_name="doomed:1", lease_seconds=2,
                           heartbeat_seconds=0.25)
store.add_peer("10.9.9.9", 1, "t", [FileInfo("doomed file.iso", 1, "ab" * 32)])
print("ready", flush=True)
sys.stdin.read()
"""


@pytest.fixture
def other_server(postgres_url):
    """A store in another process (another index server), killed afterwards."""
    process = subprocess.Popen(
        [sys.executable, "-c", SERVER_PROCESS, postgres_url],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    assert process.stdout.readline().strip() == "ready"
    yield process
    process.kill()
    process.wait()


def test_a_killed_server_s_peers_are_swept_within_moments(make_store, other_server):
    survivor = make_store("a:1")
    assert found(survivor, "doomed") == ["doomed file.iso"]
    other_server.kill()  # kill -9: PostgreSQL sees its connections close, its lock is free
    other_server.wait()
    took = wait_until(lambda: found(survivor, "doomed") == [], timeout=LEASE + 3)
    # The survivor judges others only one lease after it connected.
    assert took < LEASE + 1.5
    assert [r.server for r in survivor.peers()] == []


def test_a_frozen_server_is_swept_when_its_heartbeat_is_older_than_the_lease(
    make_store, other_server
):
    survivor = make_store("a:1")
    other_server.send_signal(signal.SIGSTOP)  # holds its lock, but heartbeats no more
    try:
        stopped = time.monotonic()
        wait_until(lambda: found(survivor, "doomed") == [], timeout=LEASE * 3)
        assert time.monotonic() - stopped > LEASE - 0.5
    finally:
        other_server.send_signal(signal.SIGCONT)


@pytest.fixture(scope="module")
def own_postgres():
    """A PostgreSQL of its own, to restart and kill."""
    server = ThrowawayPostgres().start()
    yield server
    server.stop()


def test_after_a_postgres_restart_every_server_reconnects_and_keeps_its_peers(
    own_postgres, make_store
):
    url = own_postgres.create_database()
    one, two = make_store("a:1", url), make_store("b:2", url)
    first = one.add_peer("10.0.0.1", 1, "t", [info("alpha.mkv")])
    two.add_peer("10.0.0.2", 1, "t", [info("beta.mkv")])

    own_postgres.stop(remove=False)
    started = time.monotonic()
    with pytest.raises(IndexUnavailable):
        one.search("alpha")
    with pytest.raises(IndexUnavailable):
        one.add_peer("10.0.0.3", 1, "t", [info("gamma.mkv")])
    assert time.monotonic() - started < 2.5
    own_postgres.start()

    for store in (one, two):
        wait_until(lambda s=store: found(s, "mkv") == ["alpha.mkv", "beta.mkv"], timeout=5)
    assert one.update_files(first, [info("alpha 2.mkv")], []) == 2  # the same peer id
    assert found(two, "alpha") == ["alpha 2.mkv", "alpha.mkv"]


def test_a_server_whose_rows_were_lost_re_inserts_them_with_the_same_peer_ids(
    own_postgres, make_store
):
    url = own_postgres.create_database()
    one, two = make_store("a:1", url), make_store("b:2", url)
    first = one.add_peer("10.0.0.1", 1, "t", [info("alpha.mkv"), info("alpha b.mkv")])
    one.update_files(first, [info("alpha c.mkv")], [info("alpha b.mkv").hash])
    second = two.add_peer("10.0.0.2", 1, "t", [info("beta.mkv")])

    own_postgres.kill()  # a power cut, and then the whole index is lost as well
    own_postgres.start()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS files, peers, servers, bans, schema_version")

    wait_until(lambda: found(one, "mkv") == ["alpha c.mkv", "alpha.mkv", "beta.mkv"], timeout=5)
    assert {r.peer_id: r.server for r in one.peers()} == {first: "a:1", second: "b:2"}
    assert one.replace_files(first, [info("alpha d.mkv")]) == 1
    two.remove_peer(second)
    assert found(one, "mkv") == ["alpha d.mkv"]
    third = two.add_peer("10.0.0.3", 1, "t", [])
    assert third not in (first, second)


def test_a_newer_schema_than_the_code_knows_is_a_clear_error(postgres_url):
    PostgresIndexStore(postgres_url, server_name="a:1").close()
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute("INSERT INTO schema_version (version) VALUES (99)")
    with pytest.raises(RuntimeError, match="schema version 99"):
        PostgresIndexStore(postgres_url, server_name="a:1")


def test_an_unreachable_database_fails_within_two_seconds():
    started = time.monotonic()
    with pytest.raises(IndexUnavailable):
        # TEST-NET-1: nothing answers there, so only the connect timeout ends the wait.
        PostgresIndexStore("postgresql://postgres@192.0.2.1:5432/x", server_name="a:1")
    assert time.monotonic() - started < 3


def test_a_push_for_a_peer_on_another_server_reaches_that_server(make_store):
    near, far = make_store("127.0.0.1:8000"), make_store("127.0.0.1:8001")
    holder = far.add_peer("10.0.0.9", 6009, "t", [info("film.mkv")], fingerprint="ab" * 32)
    far.set_reachable(holder, False)
    [result] = near.search("film")
    assert [(peer.fingerprint, peer.reachable) for peer in result.peers] == [("ab" * 32, False)]

    request = {"host": "10.0.0.1", "port": 6001, "token": "0f" * 16}
    assert near.forward_push("10.0.0.9", 6009, request)
    taken: list = []
    wait_until(lambda: taken.extend(far.take_forwarded()) or taken, 5)
    assert taken == [(holder, request)]
    assert near.take_forwarded() == []
    # Nobody at that address, or only on the asking server itself: nothing to forward.
    assert not near.forward_push("10.0.0.9", 7777, request)
    own = near.add_peer("10.0.0.5", 6005, "t", [])
    assert not near.forward_push("10.0.0.5", 6005, request) and own


def test_fingerprint_and_reachability_survive_updates_and_a_re_insert(make_store, postgres_url):
    store = make_store("127.0.0.1:8000")
    peer = store.add_peer("10.0.0.9", 6009, "t", [info("a.mkv")], fingerprint="ab" * 32)
    store.set_reachable(peer, False)
    store.update_files(peer, [info("b.mkv")], [])
    store.replace_files(peer, [info("a.mkv"), info("c.mkv")])
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute("DELETE FROM servers")  # swept while cut off: the store re-inserts

    def holders() -> list:
        return [(p.fingerprint, p.reachable) for r in store.search("mkv") for p in r.peers]

    wait_until(lambda: len(holders()) == 2, 10)
    assert holders() == [("ab" * 32, False)] * 2
