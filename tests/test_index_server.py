"""The index server over real loopback sockets, driven by plain socket clients."""

from __future__ import annotations

import contextlib
import json
import logging
import socket
import ssl
import time

import pytest

from server_app import index_requests, turns
from server_app.index_server import IndexServer, ServerLimits, ServerStartError
from server_app.index_store import SqliteIndexStore
from server_app.store import IndexUnavailable
from tests.wire_client import WireClient

H1, H2, H3 = "1" * 64, "2" * 64, "3" * 64


def file(name: str, size: int, hash_: str) -> dict:
    return {"name": name, "size": size, "hash": hash_}


@pytest.fixture
def make_server(make_index_server):
    return make_index_server


@pytest.fixture
def server(make_server):
    return make_server()


@pytest.fixture
def connect(server):
    clients = []

    def make(port: int | None = None) -> WireClient:
        client = WireClient(port or server.serverPort())
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


def join(qtbot, client, port, files, request_id=1):
    reply = client.request(qtbot, {"op": "JOIN", "id": request_id, "port": port, "files": files})
    assert reply["op"] == "JOIN_OK", reply
    return reply


def assert_still_serving(qtbot, server):
    """A well-behaved peer still gets answers."""
    client = WireClient(server.serverPort())
    try:
        join(qtbot, client, 7777, [file("probe.bin", 1, "f" * 64)])
        assert client.request(qtbot, {"op": "PING", "id": 9}) == {"op": "PONG", "id": 9}
    finally:
        client.close()


def test_a_session_keeps_nothing_of_a_join_once_it_is_answered(qtbot, server, connect):
    client = connect()
    join(qtbot, client, 7001, [file(f"clip {n}.mp4", n, f"{n + 1:064x}") for n in range(50)])
    session = next(iter(server.sessions))
    # Kept, the JOIN's entries cost 17 MB over 1,000 peers of 50 files in the load bench.
    assert session._job is None and session._job_message is None and not session._held


def test_two_peers_join_and_find_each_others_files(qtbot, server, connect):
    a, b = connect(), connect()
    reply = join(qtbot, a, 8776, [file("aula1.mp4", 10, H1), file("aula2.mp4", 20, H2)])
    assert reply == {"op": "JOIN_OK", "id": 1, "peer": "127.0.0.1:8776", "files": 2}
    join(qtbot, b, 8777, [file("other.mkv", 5, H3)])

    found = b.request(qtbot, {"op": "SEARCH", "id": 2, "query": "AULA mp4", "limit": 100})
    assert found["op"] == "SEARCH_OK" and found["id"] == 2
    assert sorted(r["name"] for r in found["results"]) == ["aula1.mp4", "aula2.mp4"]
    assert all(r["peers"] == [{"host": "127.0.0.1", "port": 8776}] for r in found["results"])
    # The asker is left out: A does not find its own files.
    mine = a.request(qtbot, {"op": "SEARCH", "id": 3, "query": "aula"})
    assert mine["results"] == []
    theirs = a.request(qtbot, {"op": "SEARCH", "id": 4, "query": "other"})
    assert theirs["results"][0]["peers"] == [{"host": "127.0.0.1", "port": 8777}]


def test_update_adds_and_removes(qtbot, server, connect):
    a, b = connect(), connect()
    join(qtbot, a, 8776, [file("old.mp4", 1, H1)])
    join(qtbot, b, 8777, [])
    reply = a.request(
        qtbot, {"op": "UPDATE", "id": 5, "add": [file("new.mp4", 2, H2)], "remove": [H1]}
    )
    assert reply == {"op": "UPDATE_OK", "id": 5, "files": 1}
    assert b.request(qtbot, {"op": "SEARCH", "id": 6, "query": "old"})["results"] == []
    assert [r["name"] for r in b.request(qtbot, {"op": "SEARCH", "query": "new"})["results"]] == [
        "new.mp4"
    ]


def test_leave_removes_the_peer_at_once(qtbot, server, connect):
    a, b = connect(), connect()
    join(qtbot, a, 8776, [file("aula.mp4", 1, H1)])
    join(qtbot, b, 8777, [])
    with qtbot.waitSignal(server.peer_left, timeout=3000):
        assert a.request(qtbot, {"op": "LEAVE", "id": 7}) == {"op": "LEAVE_OK", "id": 7}
    qtbot.waitUntil(a.is_closed, timeout=3000)
    assert b.request(qtbot, {"op": "SEARCH", "query": "aula"})["results"] == []
    assert server.store.counters().peers == 1


def test_dropped_connection_removes_the_peer_at_once(qtbot, server, connect):
    a, b = connect(), connect()
    join(qtbot, a, 8776, [file("aula.mp4", 1, H1)])
    join(qtbot, b, 8777, [])
    with qtbot.waitSignal(server.peer_left, timeout=3000) as left:
        a.close()
    assert left.args[1] == "127.0.0.1:8776"
    assert b.request(qtbot, {"op": "SEARCH", "query": "aula"})["results"] == []


def test_join_and_search_are_logged(qtbot, server, connect, caplog):
    caplog.set_level(logging.INFO, logger="napster.server")
    a = connect()
    join(qtbot, a, 8776, [file("aula1.mp4", 1, H1), file("aula2.mp4", 1, H2)])
    a.request(qtbot, {"op": "SEARCH", "query": "aula.mp4"})
    messages = [r.getMessage() for r in caplog.records]
    assert "Peer 127.0.0.1:8776 joined with files aula1.mp4 aula2.mp4" in messages
    assert "Peer 127.0.0.1:8776 searched for aula.mp4" in messages


def test_long_file_lists_are_shortened_in_the_log(qtbot, server, connect, caplog):
    caplog.set_level(logging.INFO, logger="napster.server")
    files = [file(f"v{i}.mp4", 1, f"{i:064x}") for i in range(25)]
    join(qtbot, connect(), 8776, files)
    line = next(r.getMessage() for r in caplog.records if "joined" in r.getMessage())
    assert line.endswith("v9.mp4 and 15 more")


def test_request_signal_reports_op_and_time(qtbot, server, connect):
    a = connect()
    with qtbot.waitSignal(server.request_handled, timeout=3000) as handled:
        join(qtbot, a, 8776, [])
    op, millis = handled.args
    assert op == "JOIN" and millis >= 0


def test_peer_address_comes_from_the_socket_not_the_message(qtbot, server, connect):
    a = connect()
    a.send({"op": "JOIN", "id": 1, "port": 9000, "files": [], "host": "6.6.6.6"})
    assert a.reply(qtbot)["peer"] == "127.0.0.1:9000"
    assert [(p.host, p.port) for p in server.store.peers()] == [("127.0.0.1", 9000)]


def test_rejoin_on_the_same_connection_replaces_the_list(qtbot, server, connect):
    a, b = connect(), connect()
    join(qtbot, a, 8776, [file("first.mp4", 1, H1)])
    join(qtbot, a, 8776, [file("second.mp4", 1, H2)], request_id=2)
    join(qtbot, b, 8777, [])
    assert b.request(qtbot, {"op": "SEARCH", "query": "first"})["results"] == []
    assert len(b.request(qtbot, {"op": "SEARCH", "query": "second"})["results"]) == 1
    assert server.store.counters().peers == 2


def test_pipelined_requests_are_answered_in_order_with_their_ids(qtbot, server, connect):
    a = connect()
    a.send_raw(
        b'{"op":"JOIN","id":10,"port":8776,"files":[]}\n{"op":"PING","id":11}\n'
        b'{"op":"SEARCH","id":12,"query":"x"}\n'
    )
    ids = [a.reply(qtbot)["id"] for _ in range(3)]
    assert ids == [10, 11, 12]


def test_search_reply_stays_within_the_line_limit(qtbot, server, connect):
    a, b = connect(), connect()
    long_names = [file(("n" * 240) + f"{i:05d}.mkv", 1, f"{i:064x}") for i in range(500)]
    join(qtbot, a, 8776, long_names)
    join(qtbot, b, 8777, [])
    b.send({"op": "SEARCH", "id": 3, "query": "nnn", "limit": 500})
    qtbot.waitUntil(lambda: b"\n" in b.buffer or b.has_line(), timeout=5000)
    reply = b.lines.pop(0)
    assert 0 < len(reply["results"]) < 500
    assert len(json.dumps(reply, separators=(",", ":"), ensure_ascii=False)) <= 64 * 1024


# ------------------------------------------------------------------ hostile input

H = "a" * 64


@pytest.mark.parametrize(
    "raw, code",
    [
        (b"this is not json\n", "BAD_REQUEST"),
        (b"[1,2]\n", "BAD_REQUEST"),
        (b'{"op":"HELLO","id":3}\n', "BAD_REQUEST"),
        (b'{"op":"JOIN","id":3,"files":[]}\n', "BAD_REQUEST"),
        (b'{"op":"JOIN","id":3,"port":"6001","files":[]}\n', "BAD_REQUEST"),
        (
            b'{"op":"JOIN","id":3,"port":6001,"files":[{"name":"a","size":-1,"hash":"'
            + H.encode()
            + b'"}]}\n',
            "BAD_REQUEST",
        ),
        (
            b'{"op":"JOIN","id":3,"port":6001,"files":[{"name":"a/b","size":1,"hash":"'
            + H.encode()
            + b'"}]}\n',
            "BAD_REQUEST",
        ),
        (
            b'{"op":"JOIN","id":3,"port":6001,"files":[{"name":"a\\\\b","size":1,"hash":"'
            + H.encode()
            + b'"}]}\n',
            "BAD_REQUEST",
        ),
        (
            b'{"op":"JOIN","id":3,"port":6001,"files":[{"name":"..","size":1,"hash":"'
            + H.encode()
            + b'"}]}\n',
            "BAD_REQUEST",
        ),
        (
            b'{"op":"JOIN","id":3,"port":6001,"files":[{"name":"a\\u0000b","size":1,"hash":"'
            + H.encode()
            + b'"}]}\n',
            "BAD_REQUEST",
        ),
        (
            b'{"op":"JOIN","id":3,"port":6001,"files":[{"name":"'
            + b"x" * 300
            + b'","size":1,"hash":"'
            + H.encode()
            + b'"}]}\n',
            "BAD_REQUEST",
        ),
        (
            b'{"op":"JOIN","id":3,"port":6001,"files":[{"name":"a","size":1,"hash":"xyz"}]}\n',
            "BAD_REQUEST",
        ),
        (b'{"op":"SEARCH","id":3,"query":"' + b"q" * (65 * 1024) + b'"}\n', "TOO_LARGE"),
    ],
)
def test_hostile_input_gets_the_right_error_and_is_closed(qtbot, server, connect, raw, code):
    client = connect()
    client.send_raw(raw)
    reply = client.reply(qtbot)
    assert reply["op"] == "ERROR" and reply["code"] == code, reply
    if code == "BAD_REQUEST" and b'"id":3' in raw[:40]:
        assert reply.get("id") == 3
    qtbot.waitUntil(client.is_closed, timeout=3000)
    assert_still_serving(qtbot, server)


def test_nine_mib_join_is_too_large(qtbot, server, connect):
    client = connect()
    payload = b'{"op":"JOIN","id":1,"port":6001,"files":[],"pad":"' + b"x" * (9 * 1024 * 1024)

    # The server runs on this thread's event loop: send a piece whenever TLS has room.
    unsent = memoryview(payload + b'"}\n')

    def send_some_then_look() -> bool:
        nonlocal unsent
        try:
            unsent = unsent[client.sock.send(unsent[:65536]) :]
        except (ssl.SSLWantWriteError, ssl.SSLWantReadError, BlockingIOError):
            pass
        except OSError:
            unsent = unsent[:0]  # the server closed: what it said is still read
        return client.has_line() or client.is_closed()

    qtbot.waitUntil(send_some_then_look, timeout=10000)
    assert client.lines and client.lines[0]["code"] == "TOO_LARGE"
    assert server.store.counters().peers == 0
    assert_still_serving(qtbot, server)


def test_10001_files_in_one_join_is_too_large(qtbot, server, connect):
    client = connect()
    files = [file(f"f{i}", 1, H) for i in range(10_001)]
    client.send({"op": "JOIN", "id": 1, "port": 6001, "files": files})
    assert client.reply(qtbot, timeout=10000)["code"] == "TOO_LARGE"
    qtbot.waitUntil(client.is_closed, timeout=3000)
    assert server.store.counters().peers == 0
    assert_still_serving(qtbot, server)


def test_files_per_peer_limit_is_enforced(qtbot, make_server):
    server = make_server(ServerLimits(max_files_per_peer=3))
    client = WireClient(server.serverPort())
    join(qtbot, client, 6001, [file(f"f{i}", 1, f"{i:064x}") for i in range(3)])
    reply = client.request(qtbot, {"op": "UPDATE", "id": 2, "add": [file("x", 1, H)]})
    assert reply["code"] == "TOO_LARGE" and reply["id"] == 2
    client.close()


@pytest.mark.parametrize("op", ["SEARCH", "UPDATE"])
def test_requests_before_join_are_not_joined_and_kept(qtbot, server, connect, op):
    client = connect()
    body = {"op": op, "id": 4, "query": "x"} if op == "SEARCH" else {"op": op, "id": 4, "add": []}
    reply = client.request(qtbot, body)
    assert reply == {
        "op": "ERROR",
        "id": 4,
        "code": "NOT_JOINED",
        "message": f"send JOIN before {op}",
    }
    join(qtbot, client, 6001, [])  # the connection was kept
    assert client.request(qtbot, {"op": "PING", "id": 5})["op"] == "PONG"


def test_silent_connection_is_closed_after_the_join_deadline(qtbot, make_server):
    server = make_server(ServerLimits(join_timeout=0.3))
    silent = WireClient(server.serverPort())
    qtbot.waitUntil(silent.is_closed, timeout=3000)
    assert_still_serving(qtbot, server)
    silent.close()


def test_idle_connection_is_closed(qtbot, make_server):
    server = make_server(ServerLimits(idle_timeout=0.4))
    client = WireClient(server.serverPort())
    join(qtbot, client, 6001, [])
    with qtbot.waitSignal(server.peer_left, timeout=3000):
        pass
    qtbot.waitUntil(client.is_closed, timeout=3000)
    client.close()


def test_33rd_connection_from_one_address_is_refused(qtbot, server, connect):
    clients = [connect() for _ in range(32)]
    qtbot.waitUntil(lambda: len(server.sessions) == 32, timeout=5000)
    extra = connect()
    reply = extra.reply(qtbot)
    assert reply["op"] == "ERROR" and reply["code"] == "LIMIT"
    qtbot.waitUntil(extra.is_closed, timeout=3000)
    clients[0].close()
    qtbot.waitUntil(lambda: len(server.sessions) == 31, timeout=5000)
    join(qtbot, connect(), 6001, [])  # a slot freed up


def test_one_byte_at_a_time_still_works(qtbot, server, connect):
    client = connect()
    line = json.dumps({"op": "JOIN", "id": 1, "port": 6001, "files": [file("a.mp4", 1, H)]})
    for byte in line.encode() + b"\n":
        client.send_raw(bytes([byte]))
    assert client.reply(qtbot)["op"] == "JOIN_OK"


def test_banned_address_is_refused(qtbot, server, connect):
    server.store.ban("127.0.0.1", "testing")
    client = connect()
    reply = client.reply(qtbot)
    assert reply["code"] == "LIMIT" and "banned" in reply["message"]
    qtbot.waitUntil(client.is_closed, timeout=3000)


def test_kick_closes_the_peer_connection(qtbot, server, connect):
    client = connect()
    join(qtbot, client, 6001, [file("a.mp4", 1, H)])
    peer_id = server.store.peers()[0].peer_id
    with qtbot.waitSignal(server.peer_left, timeout=3000):
        assert server.kick(peer_id)
    qtbot.waitUntil(client.is_closed, timeout=3000)
    assert server.store.counters().peers == 0


def test_port_in_use_is_one_clear_error(server):
    other = IndexServer(SqliteIndexStore())
    with pytest.raises(ServerStartError, match="already in use"):
        other.start("127.0.0.1", server.serverPort())
    other.store.close()


def test_a_client_that_never_reads_is_dropped(qtbot, server, connect):
    a, b = connect(), connect()
    join(qtbot, a, 8776, [file(("n" * 200) + f"{i}.mkv", 1, f"{i:064x}") for i in range(300)])
    b.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    join(qtbot, b, 8777, [])
    search = (json.dumps({"op": "SEARCH", "query": "nnn", "limit": 500}) + "\n").encode()
    left = []
    server.peer_left.connect(lambda *args: left.append(args))

    def flood_until_dropped() -> bool:
        with contextlib.suppress(
            BlockingIOError, BrokenPipeError, ConnectionResetError, ssl.SSLError
        ):
            b.sock.send(search * 10)
        return bool(left)

    qtbot.waitUntil(flood_until_dropped, timeout=20000)
    assert left[0][1] == "127.0.0.1:8777"
    assert_still_serving(qtbot, server)


def test_last_seen_reaches_the_store_in_one_batch(qtbot, server, connect):
    client = connect()
    join(qtbot, client, 6001, [])
    peer_id = server.store.peers()[0].peer_id
    joined_at = server.store.peer(peer_id).last_seen
    client.request(qtbot, {"op": "PING", "id": 2})
    assert server.seen[peer_id] >= joined_at
    server.flush_last_seen()
    assert server.store.peer(peer_id).last_seen == server.session_for(peer_id).last_seen
    assert server.seen == {}


# ------------------------------------------------------------------ turns and upkeep


def test_index_work_past_the_pass_budget_waits_its_turn_and_all_is_answered(
    qtbot, server, connect, monkeypatch
):
    monkeypatch.setattr(server.turns, "budget", 0.0)  # one index request per pass
    pop = server.turns.pop
    # No turn for anyone until every client's requests are read (which connection the loop
    # reads first is up to it: under load one client's requests all came first).
    monkeypatch.setattr(server.turns, "pop", lambda now: None)
    clients = [connect() for _ in range(4)]
    for number, client in enumerate(clients):
        joins = b"".join(
            json.dumps(
                {"op": "JOIN", "id": n, "port": 7000 + number, "files": [file(f"c{number}", 1, H1)]}
            ).encode()
            + b"\n"
            for n in range(3)
        )
        searches = b"".join(
            b'{"op":"SEARCH","id":%d,"query":"c"}\n{"op":"PING","id":%d}\n' % (n, n + 100)
            for n in range(3, 8)
        )
        client.send_raw(joins + searches)
    qtbot.waitUntil(lambda: server.turns.waiting == 4)
    monkeypatch.setattr(server.turns, "pop", pop)
    for client in clients:
        replies = [client.reply(qtbot) for _ in range(13)]
        assert [r["op"] for r in replies[:3]] == ["JOIN_OK"] * 3
        assert [r["id"] for r in replies[3:]] == [i for n in range(3, 8) for i in (n, n + 100)]
        assert all(r["op"] == "SEARCH_OK" for r in replies[3::2])
    # Every search was answered after all four JOINs had waited their turn or not at all.
    assert len(replies[-2]["results"][0]["peers"]) == 3
    assert server.turns.waiting == 0


def test_a_peer_that_searches_now_and_then_goes_before_peers_that_never_stop(
    qtbot, server, connect, monkeypatch, caplog
):
    monkeypatch.setattr(server.turns, "budget", 0.0)  # one index request per pass
    holder, newcomer = connect(), connect()
    flooders = [connect() for _ in range(8)]
    join(qtbot, holder, 7001, [file("talk.mp4", 1, H1)])
    join(qtbot, newcomer, 7002, [])
    for port, flooder in enumerate(flooders, 7100):
        join(qtbot, flooder, port, [])
    caplog.set_level(logging.INFO, logger="napster.server")

    def searches() -> list[str]:
        return [r.getMessage() for r in caplog.records if "searched for" in r.getMessage()]

    flood = 300
    for flooder in flooders:
        flooder.send_raw(
            b"".join(b'{"op":"SEARCH","id":%d,"query":"talk"}\n' % n for n in range(flood))
        )
    qtbot.waitUntil(lambda: len(searches()) >= 10 * len(flooders))
    before = len(searches())  # the loop only runs inside qtbot's waits
    newcomer.send({"op": "SEARCH", "id": 1, "query": "talk"})
    assert newcomer.reply(qtbot)["results"][0]["name"] == "talk.mp4"
    logged = searches()
    newcomer_at = next(i for i, text in enumerate(logged) if "127.0.0.1:7002" in text)
    # Each flooder has a SEARCH queued ahead of the newcomer's; first come, first served
    # would answer all eight first. The newcomer goes next (or right after the one
    # already running).
    assert newcomer_at <= before + 2, (before, newcomer_at)
    assert newcomer_at < flood * len(flooders) - 50  # while the flood was still on


def test_a_departed_peers_rows_are_cleared_in_the_background(qtbot, server, connect):
    leaver, stayer = connect(), connect()
    join(qtbot, leaver, 7001, [file(f"lecture {n}.mkv", 1, f"{n + 1:064x}") for n in range(300)])
    join(qtbot, stayer, 7002, [])
    leaver.close()
    qtbot.waitUntil(lambda: server.store.counters().peers == 1)
    reply = stayer.request(qtbot, {"op": "SEARCH", "id": 2, "query": "lecture"})
    assert reply["results"] == []
    qtbot.waitUntil(lambda: not server.store.upkeep_due)
    assert server.store._db.execute("SELECT count(*) FROM files").fetchone()[0] == 0
    server.store.check_index()


def test_a_big_join_goes_in_by_steps_and_others_are_served_in_between(
    qtbot, server, connect, monkeypatch
):
    monkeypatch.setattr(server.turns, "budget", 0.0)  # one step per pass
    monkeypatch.setattr(index_requests, "STEP_FILES", 5)
    monkeypatch.setattr(turns, "QUIET_GAP", 0.0)  # other's JOIN is not its busy time
    big, other = connect(), connect()
    join(qtbot, other, 7002, [])
    store = server.store
    calls: list[str] = []
    for name in ("add_peer", "update_files", "search_page"):
        method = getattr(store, name)
        monkeypatch.setattr(
            store, name, lambda *a, _m=method, _n=name, **k: calls.append(_n) or _m(*a, **k)
        )
    add_peer = store.add_peer

    def first_step(*args, **kwargs):
        other.send({"op": "SEARCH", "id": 2, "query": "clip"})  # arrives mid-JOIN
        return add_peer(*args, **kwargs)

    monkeypatch.setattr(store, "add_peer", first_step)
    files = [file(f"clip {n:03d}.mp4", n, f"{n + 1:064x}") for n in range(95)]
    files.append(files[3])  # listed twice: counted once, as in one step
    big.send({"op": "JOIN", "id": 1, "port": 7001, "files": files})
    assert other.reply(qtbot)["id"] == 2
    assert big.reply(qtbot) == {"op": "JOIN_OK", "id": 1, "peer": "127.0.0.1:7001", "files": 95}
    assert calls.count("add_peer") == 1 and calls.count("update_files") == 19
    assert calls.index("search_page") < len(calls) - 1  # answered between two steps
    reply = other.request(qtbot, {"op": "SEARCH", "id": 3, "query": "clip", "limit": 500})
    assert len(reply["results"]) == 95


def test_a_peer_that_drops_in_the_middle_of_a_big_join_leaves_nothing(
    qtbot, server, connect, monkeypatch
):
    monkeypatch.setattr(server.turns, "budget", 0.0)
    monkeypatch.setattr(index_requests, "STEP_FILES", 5)
    big = connect()
    files = [file(f"clip {n:03d}.mp4", n, f"{n + 1:064x}") for n in range(500)]
    big.send({"op": "JOIN", "id": 1, "port": 7001, "files": files})
    qtbot.waitUntil(lambda: server.store.counters().files > 0)
    big.close()
    qtbot.waitUntil(lambda: server.store.counters().peers == 0 and not server.sessions)
    assert server.store.counters().files == 0


def test_a_big_join_over_the_files_limit_adds_nothing(qtbot, make_server, connect, monkeypatch):
    monkeypatch.setattr(index_requests, "STEP_FILES", 5)
    server = make_server(ServerLimits(max_files_per_peer=20))
    client = WireClient(server.serverPort())
    try:
        files = [file(f"clip {n}.mp4", n, f"{n + 1:064x}") for n in range(21)]
        reply = client.request(qtbot, {"op": "JOIN", "id": 1, "port": 7001, "files": files})
        assert reply["code"] == "TOO_LARGE"
        assert server.store.counters().peers == 0
    finally:
        client.close()


def test_a_big_update_goes_in_by_steps_unless_it_could_break_the_limit(
    qtbot, make_server, monkeypatch
):
    monkeypatch.setattr(index_requests, "STEP_FILES", 5)
    server = make_server(ServerLimits(max_files_per_peer=30))
    client = WireClient(server.serverPort())
    try:
        join(qtbot, client, 7001, [file("old.mp4", 1, H1)])
        add = [file(f"new {n}.mp4", n, f"{n + 10:064x}") for n in range(22)]
        reply = client.request(qtbot, {"op": "UPDATE", "id": 2, "add": add, "remove": [H1]})
        assert reply == {"op": "UPDATE_OK", "id": 2, "files": 22}
        too_many = [file(f"more {n}.mp4", n, f"{n + 100:064x}") for n in range(9)]
        reply = client.request(qtbot, {"op": "UPDATE", "id": 3, "add": too_many, "remove": []})
        assert reply["code"] == "TOO_LARGE"  # in one transaction: refused as a whole
        qtbot.waitUntil(client.is_closed)
    finally:
        client.close()


def test_a_join_that_asked_for_heartbeats_gets_unasked_pongs_while_it_waits_its_turn(
    qtbot, make_server, monkeypatch
):
    server = make_server(ServerLimits(heartbeat=0.05))
    monkeypatch.setattr(index_requests, "STEP_FILES", 5)  # a JOIN of 20 files: 4 turns
    ticks = []
    server._heartbeat_timer.timeout.connect(lambda: ticks.append(1))
    pop = server.turns.pop
    files = [file(f"clip {n:02d}.mp4", n, f"{n + 1:064x}") for n in range(20)]
    for port, asks in ((7001, False), (7002, True)):
        client = WireClient(server.serverPort())
        try:
            monkeypatch.setattr(server.turns, "pop", lambda now: None)  # no turn for anyone
            join_line = {"op": "JOIN", "id": 1, "port": port, "files": files}
            client.send({**join_line, "heartbeat": True} if asks else join_line)
            # Read, its first step done, the rest of the JOIN waits for turns.
            qtbot.waitUntil(lambda: server.turns.waiting == 1)
            seen = len(ticks)
            qtbot.waitUntil(lambda n=seen: len(ticks) >= n + 3)
            client.poll()
            if asks:
                assert len(client.lines) >= 2 and all(
                    line == {"op": "PONG"} for line in client.lines
                ), client.lines
            else:
                assert client.lines == []
            client.lines.clear()
            monkeypatch.setattr(server.turns, "pop", pop)
            reply = client.reply(qtbot)
            while reply == {"op": "PONG"}:  # one may have gone out just before the turn
                reply = client.reply(qtbot)
            expected = {"op": "JOIN_OK", "id": 1, "peer": f"127.0.0.1:{port}", "files": 20}
            assert reply == ({**expected, "heartbeat": True} if asks else expected)
            # Answered, it waits for nothing: no more heartbeats.
            assert client.request(qtbot, {"op": "PING", "id": 2}) == {"op": "PONG", "id": 2}
        finally:
            client.close()


def test_an_idle_connection_that_asked_for_heartbeats_gets_one_after_a_quiet_spell(
    qtbot, make_server
):
    server = make_server(ServerLimits(heartbeat=0.05, idle_heartbeat=0.2))
    asking, not_asking = WireClient(server.serverPort()), WireClient(server.serverPort())
    try:
        join = {"op": "JOIN", "id": 1, "files": []}
        assert asking.request(qtbot, {**join, "port": 7001, "heartbeat": True})["heartbeat"]
        assert "heartbeat" not in not_asking.request(qtbot, {**join, "port": 7002})
        started = time.monotonic()
        assert asking.reply(qtbot) == {"op": "PONG"}  # nothing asked: the idle heartbeat
        assert asking.reply(qtbot) == {"op": "PONG"}
        assert time.monotonic() - started >= 0.2  # two, each after a quiet spell
        not_asking.poll()
        assert not_asking.lines == []
    finally:
        asking.close()
        not_asking.close()


@pytest.mark.parametrize(
    "ending",
    ["leave", "drop", "bad line", "too large", "kick", "drop mid-join"],
)
def test_a_closed_session_is_freed_without_the_garbage_collector(
    qtbot, server, connect, monkeypatch, ending
):
    # napster-server freezes what survives a full collection (server_app/__main__.py), so
    # a session kept alive by a reference cycle would never be freed.
    import gc
    import weakref

    monkeypatch.setattr(index_requests, "STEP_FILES", 2)
    monkeypatch.setattr(server.turns, "budget", 0.0)
    client = connect()
    if ending == "drop mid-join":
        files = [file(f"clip {n}.mp4", n, f"{n + 1:064x}") for n in range(400)]
        client.send({"op": "JOIN", "id": 1, "port": 7001, "files": files})
        qtbot.waitUntil(lambda: server.store.counters().files > 0)
    else:
        join(qtbot, client, 7001, [file("a.mp4", 1, H1)])
    session = weakref.ref(next(iter(server.sessions)))
    gc.disable()
    try:
        if ending == "leave":
            client.send({"op": "LEAVE", "id": 2})
        elif ending == "bad line":
            client.send_raw(b"not json\n")
        elif ending == "too large":
            client.send_raw(b'{"op":"SEARCH","query":"' + b"x" * 70_000 + b'"}\n')
        elif ending == "kick":
            server.kick(session().peer_id)
        else:
            client.close()
        qtbot.waitUntil(lambda: not server.sessions and session() is None)
    finally:
        gc.enable()


def test_a_silent_connection_is_closed_at_the_join_deadline_while_the_server_is_busy(
    qtbot, make_server
):
    server = make_server(ServerLimits(join_timeout=0.5))
    flooder, silent = WireClient(server.serverPort()), None
    try:
        join(qtbot, flooder, 7001, [])
        flooder.send_raw(b'{"op":"SEARCH","query":"nothing here"}\n' * 30_000)
        silent = WireClient(server.serverPort())
        qtbot.waitUntil(silent.is_closed, timeout=1500)  # the deadline and some slack
        assert server.store.counters().peers == 1
    finally:
        flooder.close()
        if silent is not None:
            silent.close()


def test_sessions_closed_for_a_bad_line_after_other_requests_are_freed_without_the_collector(
    qtbot, server
):
    import gc
    import weakref

    clients = [WireClient(server.serverPort()) for _ in range(20)]
    qtbot.waitUntil(lambda: len(server.sessions) == 20)
    sessions = [weakref.ref(session) for session in server.sessions]
    gc.disable()
    try:
        for port, client in enumerate(clients, 7000):
            join = {"op": "JOIN", "id": 1, "port": port, "files": [file("a.mp4", 1, H1)]}
            client.send_raw(
                json.dumps(join).encode() + b'\n{"op":"SEARCH","id":2,"query":"a"}\nnot json\n'
            )
        qtbot.waitUntil(lambda: not server.sessions)
        qtbot.waitUntil(lambda: all(session() is None for session in sessions))
    finally:
        gc.enable()
        for client in clients:
            client.close()


# ------------------------------------------------------------------ every input is answered

LONE = b"\\ud800"  # a JSON escape that decodes to a lone surrogate


def test_a_join_whose_agent_is_a_lone_surrogate_is_refused_and_closed(qtbot, server, connect):
    limit = server.limits.max_connections_per_ip
    for _ in range(limit + 1):  # none of them may stay open and lock the address out
        client = connect()
        client.send_raw(b'{"op":"JOIN","id":1,"port":7001,"files":[],"agent":"' + LONE + b'"}\n')
        reply = client.reply(qtbot)
        assert (reply["op"], reply["code"], reply["id"]) == ("ERROR", "BAD_REQUEST", 1)
        qtbot.waitUntil(client.is_closed, timeout=3000)
    qtbot.waitUntil(lambda: not server.sessions)
    assert server.store.counters().peers == 0
    assert_still_serving(qtbot, server)


def test_a_search_for_a_lone_surrogate_is_answered(qtbot, server, connect):
    client = connect()
    join(qtbot, client, 7001, [file("aula.mp4", 1, H1)])
    client.send_raw(b'{"op":"SEARCH","id":2,"query":"aula ' + LONE + b'"}\n')
    reply = client.reply(qtbot)
    assert (reply["op"], reply["code"], reply["id"]) == ("ERROR", "BAD_REQUEST", 2)
    qtbot.waitUntil(client.is_closed, timeout=3000)


def test_a_fault_of_the_server_in_a_request_is_an_error_and_a_close(
    qtbot, server, connect, monkeypatch, caplog
):
    def broken(*_args, **_kwargs):
        raise RuntimeError("a bug")

    client = connect()
    join(qtbot, client, 7001, [])
    monkeypatch.setattr(server.store, "search_page", broken)
    with caplog.at_level(logging.ERROR, logger="napster.server"):
        reply = client.request(qtbot, {"op": "SEARCH", "id": 2, "query": "x"})
    assert (reply["op"], reply["code"], reply["id"]) == ("ERROR", "BAD_REQUEST", 2)
    qtbot.waitUntil(client.is_closed, timeout=3000)
    assert "RuntimeError: a bug" in caplog.text
    qtbot.waitUntil(lambda: not server.sessions)
    assert server.store.counters().peers == 0


def test_a_fault_in_the_middle_of_a_big_join_is_an_error_and_a_close(
    qtbot, server, connect, monkeypatch
):
    monkeypatch.setattr(index_requests, "STEP_FILES", 5)
    update_files = server.store.update_files
    calls = []

    def broken_later(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise RuntimeError("a bug")
        return update_files(*args, **kwargs)

    monkeypatch.setattr(server.store, "update_files", broken_later)
    client = connect()
    files = [file(f"clip {n}.mp4", n, f"{n + 1:064x}") for n in range(40)]
    reply = client.request(qtbot, {"op": "JOIN", "id": 1, "port": 7001, "files": files})
    assert (reply["op"], reply["code"], reply["id"]) == ("ERROR", "BAD_REQUEST", 1)
    qtbot.waitUntil(client.is_closed, timeout=3000)
    qtbot.waitUntil(lambda: not server.sessions and server.store.counters().peers == 0)


# ------------------------------------------------------------------ half-close


def test_a_client_that_shuts_its_sending_side_gets_its_replies_then_the_close(
    qtbot, server, connect
):
    client = connect()
    join_line = {"op": "JOIN", "id": 1, "port": 7001, "files": [file("aula.mp4", 1, H1)]}
    client.send_raw(
        json.dumps(join_line).encode()
        + b'\n{"op":"SEARCH","id":2,"query":"aula"}\n{"op":"PING","id":3}\n'
    )
    client.shutdown_write()
    replies = [client.reply(qtbot) for _ in range(3)]
    assert [(r["op"], r["id"]) for r in replies] == [
        ("JOIN_OK", 1),
        ("SEARCH_OK", 2),
        ("PONG", 3),
    ]
    qtbot.waitUntil(client.is_closed, timeout=3000)
    qtbot.waitUntil(lambda: not server.sessions and server.store.counters().peers == 0)


def test_a_half_closed_client_waiting_its_turn_still_gets_every_reply(
    qtbot, server, connect, monkeypatch
):
    monkeypatch.setattr(server.turns, "budget", 0.0)  # one step per pass
    monkeypatch.setattr(index_requests, "STEP_FILES", 5)
    client = connect()
    files = [file(f"clip {n}.mp4", n, f"{n + 1:064x}") for n in range(60)]
    searches = b"".join(b'{"op":"SEARCH","id":%d,"query":"clip"}\n' % n for n in range(2, 12))
    join_line = {"op": "JOIN", "id": 1, "port": 7001, "files": files}
    client.send_raw(json.dumps(join_line).encode() + b"\n" + searches)
    client.shutdown_write()
    replies = [client.reply(qtbot) for _ in range(11)]
    assert [r["id"] for r in replies] == list(range(1, 12))
    assert replies[0]["files"] == 60
    qtbot.waitUntil(client.is_closed, timeout=3000)


def test_a_client_that_stops_in_the_middle_of_a_line_is_closed(qtbot, server, connect):
    client = connect()
    client.send_raw(b'{"op":"PING","id":1}\n{"op":"PI')
    client.shutdown_write()
    assert client.reply(qtbot) == {"op": "PONG", "id": 1}
    qtbot.waitUntil(client.is_closed, timeout=3000)
    qtbot.waitUntil(lambda: not server.sessions)


# ------------------------------------------------------------------ port claims


def test_a_peer_cannot_list_files_at_another_peers_port(qtbot, server, connect):
    owner, intruder, other = connect(), connect(), connect()
    join(qtbot, owner, 7001, [file("real.mp4", 1, H1)])
    join(qtbot, other, 7003, [])
    reply = intruder.request(
        qtbot, {"op": "JOIN", "id": 1, "port": 7001, "files": [file("fake.mp4", 1, H2)]}
    )
    assert (reply["op"], reply["code"], reply["id"]) == ("ERROR", "BAD_REQUEST", 1)
    assert "7001" in reply["message"]
    qtbot.waitUntil(intruder.is_closed, timeout=3000)
    results = other.request(qtbot, {"op": "SEARCH", "id": 2, "query": "mp4"})["results"]
    assert [r["name"] for r in results] == ["real.mp4"]
    # The owner may JOIN again on its own connection, at the same port or another.
    assert join(qtbot, owner, 7001, [file("real2.mp4", 1, H2)], 3)["files"] == 1
    assert join(qtbot, owner, 7002, [], 4)["peer"] == "127.0.0.1:7002"
    # Port 7001 is free again.
    assert join(qtbot, connect(), 7001, [])["peer"] == "127.0.0.1:7001"


def test_the_same_peer_back_on_a_new_connection_takes_its_port_back(qtbot, server, connect):
    old = connect()
    join(qtbot, old, 7001, [file("aula.mp4", 1, H1)])
    old.close()  # the server may not have noticed when the new JOIN comes
    new = connect()
    reply = join(qtbot, new, 7001, [file("aula.mp4", 1, H1)])
    assert reply["peer"] == "127.0.0.1:7001"
    qtbot.waitUntil(lambda: len(server.sessions) == 1)
    assert server.store.counters().peers == 1


class AwayStore(SqliteIndexStore):
    """A SQLite store whose database can be 'away', as a shared PostgreSQL can."""

    away = False

    def __getattribute__(self, name: str):
        if name in _STORE_CALLS and object.__getattribute__(self, "away"):
            raise IndexUnavailable("the database is away")
        return object.__getattribute__(self, name)


_STORE_CALLS = {"add_peer", "search_page", "remove_peer", "update_files", "is_banned", "sources"}


def test_requests_while_the_index_database_is_away_get_unavailable_and_keep_the_connection(
    qtbot, make_server, connect
):
    store = AwayStore()
    server = make_server(store=store)
    sharer, searcher = connect(server.serverPort()), connect(server.serverPort())
    join(qtbot, sharer, 7101, [file("aula1.mp4", 10, H1)])
    join(qtbot, searcher, 7102, [])
    store.away = True
    reply = searcher.request(qtbot, {"op": "SEARCH", "id": 5, "query": "aula"})
    assert reply["op"] == "ERROR" and reply["code"] == "UNAVAILABLE", reply
    assert reply["id"] == 5 and reply["retry_after"] > 0
    late = connect(server.serverPort())  # a JOIN in the gap is refused the same way
    reply = late.request(qtbot, {"op": "JOIN", "id": 1, "port": 7103, "files": []})
    assert reply["op"] == "ERROR" and reply["code"] == "UNAVAILABLE", reply
    store.away = False
    reply = searcher.request(qtbot, {"op": "SEARCH", "id": 6, "query": "aula"})
    assert [r["name"] for r in reply["results"]] == ["aula1.mp4"]
    join(qtbot, late, 7103, [], request_id=2)
    assert server.online_peers() == 3


def test_a_version_1_client_in_plain_text_gets_a_clear_refusal_and_a_close(qtbot, server):
    raw = socket.create_connection(("127.0.0.1", server.serverPort()), timeout=5)
    raw.setblocking(False)
    raw.sendall(b'{"op":"JOIN","id":1,"port":6001,"files":[]}\n')
    received = bytearray()

    def closed() -> bool:
        try:
            chunk = raw.recv(65536)
        except BlockingIOError:
            return False
        received.extend(chunk)
        return not chunk

    qtbot.waitUntil(closed, timeout=5000)
    raw.close()
    reply = json.loads(received)
    assert reply["op"] == "ERROR" and reply["code"] == "BAD_REQUEST"
    assert "protocol version 2" in reply["message"] and "TLS" in reply["message"]
    assert server.store.counters().peers == 0


def test_a_refused_address_is_told_why_over_tls(qtbot, server, connect):
    server.ban("127.0.0.1", "testing")
    client = WireClient(server.serverPort())
    reply = client.reply(qtbot)
    assert reply["code"] == "LIMIT" and "banned" in reply["message"]
    qtbot.waitUntil(client.is_closed, timeout=5000)
    client.close()
