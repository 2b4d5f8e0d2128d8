"""IndexClient against the real IndexServer (and a few fake servers) over loopback sockets."""

from __future__ import annotations

import contextlib
import json
import random
import socket
import ssl
import time

import pytest
from PySide6.QtCore import QTimer

from app.network import protocol as p
from app.network import tls
from app.network.identity import PeerIdentity
from app.network.index_client import (
    ClientState,
    IndexClient,
    backoff_delay,
    shareable,
    update_batches,
)
from server_app.index_server import IndexServer, ServerLimits
from tests.test_index_server import AwayStore

MIN_BACKOFF = 0.05
MAX_BACKOFF = 0.2
WAIT_MS = 5000


def file_info(number: int, name: str | None = None) -> p.FileInfo:
    return p.FileInfo(name or f"file{number}.bin", number, f"{number:064x}")


@pytest.fixture
def make_server(make_index_server):
    def make(port: int = 0, limits: ServerLimits | None = None) -> IndexServer:
        return make_index_server(limits, port=port)

    return make


@pytest.fixture
def server(make_server):
    return make_server()


@pytest.fixture
def make_client(qtbot, make_server):
    clients = []

    def make(
        port: int | list[int],
        files: list[p.FileInfo] | None = None,
        listen_port: int = 6001,
        **options,
    ) -> IndexClient:
        shared = files if files is not None else []
        options.setdefault("min_backoff", MIN_BACKOFF)
        options.setdefault("max_backoff", MAX_BACKOFF)
        ports = port if isinstance(port, list) else [port]
        servers = [("127.0.0.1", each) for each in ports]
        client = IndexClient(servers, listen_port, lambda: list(shared), **options)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.stop_and_wait(1000)


def start_and_join(qtbot, client: IndexClient) -> list:
    with qtbot.waitSignal(client.joined, timeout=WAIT_MS) as blocker:
        client.start()
    return blocker.args


def peer_by_port(server: IndexServer, port: int):
    return next((peer for peer in server.store.peers() if peer.port == port), None)


def recorder(signal) -> list:
    calls: list = []
    signal.connect(lambda *args: calls.append(args))
    return calls


#: The fake servers' TLS identity (the client remembers it on first use).
FAKE_SERVER = PeerIdentity.generate("fake index server")


def accept_connection(qtbot, listener: socket.socket) -> ssl.SSLSocket:
    """Accept one connection and do the server's side of TLS without blocking the Qt loop
    the client runs in; the socket is left non-blocking."""
    accepted: list[ssl.SSLSocket] = []

    def check() -> None:
        try:
            connection, _ = listener.accept()
        except BlockingIOError:
            raise AssertionError("no connection yet") from None
        connection.setblocking(False)
        accepted.append(
            tls.server_context(FAKE_SERVER).wrap_socket(
                connection, server_side=True, do_handshake_on_connect=False
            )
        )

    qtbot.waitUntil(check, timeout=WAIT_MS)
    connection = accepted[0]

    def handshake_done() -> None:
        try:
            connection.do_handshake()
        except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
            raise AssertionError("handshake under way") from None

    qtbot.waitUntil(handshake_done, timeout=WAIT_MS)
    return connection


def read_line(qtbot, connection: socket.socket) -> dict:
    received = bytearray()

    def check() -> None:
        try:
            chunk = connection.recv(65536)
        except (BlockingIOError, ssl.SSLWantReadError):
            chunk = b""
        received.extend(chunk)
        assert b"\n" in received

    qtbot.waitUntil(check, timeout=WAIT_MS)
    return json.loads(received.split(b"\n", 1)[0])


def fake_server_socket():
    """A plain listening socket and the connections it took (closed after the test)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    sock.setblocking(False)
    connections: list[socket.socket] = []
    yield sock, connections
    for connection in connections:
        connection.close()
    sock.close()


@pytest.fixture
def listener():
    """A plain listening socket: a server that accepts and then does what the test says."""
    yield from fake_server_socket()


# ---------------------------------------------------------------- pure helpers


def test_backoff_delay_doubles_with_jitter_and_is_capped():
    rng = random.Random(1234)
    delays = [backoff_delay(attempt, 1.0, 60.0, rng) for attempt in range(12)]
    bases = [1, 2, 4, 8, 16, 32, 60, 60, 60, 60, 60, 60]
    for delay, base in zip(delays, bases, strict=True):
        assert 0.5 * base <= delay <= base
    assert max(delays) <= 60.0
    assert delays[5] > delays[0] * 8  # it grows
    assert len({round(d, 6) for d in delays[6:]}) == 6  # jittered even when capped
    other_rng = random.Random(99)
    assert [backoff_delay(a, 1.0, 60.0, other_rng) for a in range(12)] != delays
    assert backoff_delay(10_000, 1.0, 60.0, rng) <= 60.0


def test_backoff_delay_is_reproducible_with_a_seed():
    first = [backoff_delay(a, 0.5, 30.0, random.Random(7)) for a in range(8)]
    second = [backoff_delay(a, 0.5, 30.0, random.Random(7)) for a in range(8)]
    assert first == second


def test_update_batches_split_at_the_limit_with_removals_first():
    add = [file_info(i) for i in range(7)]
    remove = [f"{i:064x}" for i in range(100, 105)]
    batches = update_batches(add, remove, batch_size=4)
    assert [(len(a), len(r)) for a, r in batches] == [(0, 4), (3, 1), (4, 0)]
    assert [f for a, _ in batches for f in a] == add
    assert [h for _, r in batches for h in r] == remove
    assert update_batches([], []) == []
    big = update_batches([file_info(i) for i in range(25_000)], [])
    assert [len(a) for a, _ in big] == [10_000, 10_000, 5_000]


def test_shareable_leaves_out_what_the_protocol_cannot_carry():
    good = file_info(1, "aula.mp4")
    bad = [
        p.FileInfo("a/b.mp4", 1, "1" * 64),
        p.FileInfo("", 1, "1" * 64),
        p.FileInfo("x.mp4", 1, "XYZ"),
        p.FileInfo("y.mp4", -1, "1" * 64),
    ]
    assert shareable([good, *bad]) == [good]


# ---------------------------------------------------------------- joining and searching


def test_joins_and_the_server_indexes_the_files(qtbot, server, make_client):
    files = [file_info(1, "aula1.mp4"), file_info(2, "aula2.mp4"), file_info(3, "bad/name")]
    client = make_client(server.serverPort(), files, listen_port=6001)
    states = recorder(client.state_changed)
    assert client.state == ClientState.OFFLINE

    assert start_and_join(qtbot, client) == ["127.0.0.1:6001", 2]
    assert client.state == ClientState.JOINED
    assert client.peer_address == "127.0.0.1:6001"
    assert client.server_address == f"127.0.0.1:{server.serverPort()}"
    assert [s for (s,) in states] == ["connecting", "joining", "joined"]
    peer = peer_by_port(server, 6001)
    assert peer is not None and peer.host == "127.0.0.1"
    assert server.store.peer_files(peer.peer_id) == files[:2]


def test_search_finds_the_other_peers_file(qtbot, server, make_client):
    sharer = make_client(server.serverPort(), [file_info(1, "aula completa.mp4")], 6001)
    asker = make_client(server.serverPort(), [file_info(2, "other.mkv")], 6002)
    start_and_join(qtbot, sharer)
    start_and_join(qtbot, asker)

    with qtbot.waitSignal(asker.search_finished, timeout=WAIT_MS) as blocker:
        search_id = asker.search("AULA mp4")
    assert blocker.args[0] == search_id
    assert blocker.args[1] == [
        p.SearchResult("aula completa.mp4", 1, f"{1:064x}", (p.PeerAddress("127.0.0.1", 6001),))
    ]
    # The asker is left out of its own results.
    with qtbot.waitSignal(sharer.search_finished, timeout=WAIT_MS) as blocker:
        sharer.search("aula")
    assert blocker.args[1] == []


def test_concurrent_searches_are_matched_by_id(qtbot, server, make_client):
    names = ["alpha.mp4", "beta.mp4", "gamma.mp4"]
    sharer = make_client(server.serverPort(), [file_info(i, n) for i, n in enumerate(names)], 6001)
    asker = make_client(server.serverPort(), [], 6002)
    start_and_join(qtbot, sharer)
    start_and_join(qtbot, asker)

    finished = recorder(asker.search_finished)
    ids = {asker.search(query): query for query in ["gamma", "alpha", "beta", "zeta"]}
    assert len(ids) == 4
    qtbot.waitUntil(lambda: len(finished) == 4, timeout=WAIT_MS)
    answers = {ids[search_id]: [r.name for r in results] for search_id, results in finished}
    assert answers == {
        "gamma": ["gamma.mp4"],
        "alpha": ["alpha.mp4"],
        "beta": ["beta.mp4"],
        "zeta": [],
    }


def test_search_while_not_joined_fails_after_returning(qtbot, server, make_client):
    client = make_client(server.serverPort())
    failed = recorder(client.search_failed)
    search_id = client.search("aula")
    assert failed == []  # queued: the caller holds the id before the answer comes
    qtbot.waitUntil(lambda: len(failed) == 1, timeout=WAIT_MS)
    assert failed[0][0] == search_id
    assert "Not connected to the index server" in failed[0][1]

    empty_id = client.search("   ")
    qtbot.waitUntil(lambda: len(failed) == 2, timeout=WAIT_MS)
    assert failed[1] == (empty_id, "Type something to search for")
    assert empty_id == search_id + 1


def test_search_while_connecting_fails_with_still_connecting(qtbot, server, make_client):
    client = make_client(server.serverPort())
    client.start()
    assert client.state == ClientState.CONNECTING
    with qtbot.waitSignal(client.search_failed, timeout=WAIT_MS) as blocker:
        search_id = client.search("aula")
    assert blocker.args == [
        search_id,
        f"Still connecting to the index server at 127.0.0.1:{server.serverPort()}",
    ]


# ---------------------------------------------------------------- announcing


def test_announce_adds_and_removes(qtbot, server, make_client):
    old, kept, new = file_info(1, "old.mp4"), file_info(2, "kept.mp4"), file_info(3, "new.mp4")
    client = make_client(server.serverPort(), [old, kept])
    start_and_join(qtbot, client)

    with qtbot.waitSignal(client.update_finished, timeout=WAIT_MS) as blocker:
        client.announce([new], [old.hash])
    assert blocker.args == [2]
    peer = peer_by_port(server, 6001)
    assert sorted(f.name for f in server.store.peer_files(peer.peer_id)) == ["kept.mp4", "new.mp4"]


def test_announce_while_offline_is_dropped_and_the_next_join_sends_everything(
    qtbot, server, make_client
):
    files = [file_info(1, "one.mp4")]
    client = make_client(server.serverPort(), files)
    updates = recorder(client.update_finished)
    client.announce([file_info(2, "two.mp4")], [])  # not connected: nothing to send it on
    files.append(file_info(2, "two.mp4"))
    assert start_and_join(qtbot, client) == ["127.0.0.1:6001", 2]
    assert updates == []


def test_more_than_10000_files_go_as_join_then_update_batches(qtbot, server, make_client):
    files = [file_info(i, f"f{i}") for i in range(10_500)]
    client = make_client(server.serverPort(), files)
    ops = recorder(server.request_handled)
    with qtbot.waitSignal(client.update_finished, timeout=20_000) as updated:
        assert start_and_join(qtbot, client) == ["127.0.0.1:6001", 10_000]
    assert updated.args == [10_500]
    assert [op for op, _ in ops] == ["JOIN", "UPDATE"]
    peer = peer_by_port(server, 6001)
    assert peer.files == 10_500
    assert {f.hash for f in server.store.peer_files(peer.peer_id)} == {f.hash for f in files}

    ops.clear()
    more = [file_info(i, f"g{i}") for i in range(20_000, 32_000)]
    finished = recorder(client.update_finished)
    client.announce(more, [f.hash for f in files[:500]])
    qtbot.waitUntil(lambda: len(finished) == 2, timeout=20_000)
    assert finished[-1] == (10_500 + 12_000 - 500,)
    assert [op for op, _ in ops] == ["UPDATE", "UPDATE"]


# ---------------------------------------------------------------- listen port and server changes


def test_set_listen_port_joins_again_with_the_new_port(qtbot, server, make_client):
    client = make_client(server.serverPort(), [file_info(1, "aula.mp4")], listen_port=6001)
    start_and_join(qtbot, client)
    with qtbot.waitSignal(client.joined, timeout=WAIT_MS) as blocker:
        client.set_listen_port(6002)
    assert blocker.args == ["127.0.0.1:6002", 1]
    assert client.peer_address == "127.0.0.1:6002"
    assert [(peer.port, peer.files) for peer in server.store.peers()] == [(6002, 1)]


def test_set_server_moves_to_another_server(qtbot, make_server, make_client):
    first, second = make_server(), make_server()
    client = make_client(first.serverPort(), [file_info(1, "aula.mp4")])
    start_and_join(qtbot, client)
    with qtbot.waitSignal(client.joined, timeout=WAIT_MS):
        client.set_server("127.0.0.1", second.serverPort())
    assert client.server_address == f"127.0.0.1:{second.serverPort()}"
    assert second.store.counters().peers == 1
    qtbot.waitUntil(lambda: first.store.counters().peers == 0, timeout=WAIT_MS)


# ---------------------------------------------------------------- losing the server


def test_server_stop_is_reported_and_pending_searches_fail_when_none_comes_back(
    qtbot, server, make_client
):
    port = server.serverPort()
    client = make_client(port, [file_info(1, "aula.mp4")], resend_window=0.5)
    start_and_join(qtbot, client)
    lost, scheduled = recorder(client.connection_lost), recorder(client.reconnect_scheduled)
    failed = recorder(client.search_failed)

    search_id = client.search("anything")
    server.stop()  # before the server could read the search
    lost_at = time.monotonic()
    qtbot.waitUntil(lambda: len(scheduled) >= 1, timeout=WAIT_MS)
    assert lost[0][0].startswith(f"Lost the connection to 127.0.0.1:{port}: ")
    assert failed == []  # it waits for a server to ask again
    assert 0.5 * MIN_BACKOFF <= scheduled[0][0] <= MIN_BACKOFF
    assert client.state in (ClientState.WAITING, ClientState.CONNECTING)
    assert client.peer_address == ""
    # Nothing listens any more: the next attempts cannot reach it.
    qtbot.waitUntil(lambda: len(lost) >= 2, timeout=WAIT_MS)
    assert lost[1][0] == (f"Cannot reach the index server at 127.0.0.1:{port}: connection refused")
    # No server within the resend window: the search fails as it did at once before.
    qtbot.waitUntil(lambda: bool(failed), timeout=WAIT_MS)
    assert time.monotonic() - lost_at >= 0.45
    assert failed == [(search_id, "Lost the connection to the index server before it answered")]


def test_client_joins_a_restarted_server_by_itself(qtbot, make_server, make_client):
    files = [file_info(1, "aula.mp4"), file_info(2, "prova.pdf")]
    first = make_server()
    port = first.serverPort()
    client = make_client(port, files, stable_after=0)  # a JOIN counts as success at once
    start_and_join(qtbot, client)
    lost, scheduled = recorder(client.connection_lost), recorder(client.reconnect_scheduled)
    states = recorder(client.state_changed)

    first.stop()
    qtbot.waitUntil(lambda: len(lost) >= 3, timeout=WAIT_MS)  # lost, then two failed retries
    assert ("waiting",) in states
    files.append(file_info(3, "new.mkv"))  # the re-JOIN asks for the library again

    with qtbot.waitSignal(client.joined, timeout=WAIT_MS) as blocker:
        second = make_server(port)
    assert blocker.args == ["127.0.0.1:6001", 3]
    peer = peer_by_port(second, 6001)
    assert peer is not None
    assert server_names(second, peer) == ["aula.mp4", "new.mkv", "prova.pdf"]

    # A JOIN that lasted resets the backoff: the next delay starts small again.
    scheduled.clear()
    second.stop()
    qtbot.waitUntil(lambda: len(scheduled) >= 1, timeout=WAIT_MS)
    assert scheduled[0][0] <= MIN_BACKOFF


def server_names(server: IndexServer, peer) -> list[str]:
    return sorted(f.name for f in server.store.peer_files(peer.peer_id))


def test_nothing_listening_says_cannot_reach_and_retries_with_growing_delays(qtbot, make_client):
    closed = socket.socket()  # bound but not listening: connections are refused
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    try:
        client = make_client(port)
        lost, scheduled = recorder(client.connection_lost), recorder(client.reconnect_scheduled)
        client.start()
        qtbot.waitUntil(lambda: len(scheduled) >= 5, timeout=WAIT_MS)
    finally:
        closed.close()
    assert lost[0] == (f"Cannot reach the index server at 127.0.0.1:{port}: connection refused",)
    assert len(lost) >= 5
    bases = [0.05, 0.1, 0.2, 0.2, 0.2]
    for (delay,), base in zip(scheduled, bases, strict=False):
        assert 0.5 * base <= delay <= base
    assert client.state in (ClientState.WAITING, ClientState.CONNECTING)


def test_server_error_that_closes_is_reported_and_retried(qtbot, make_server, make_client):
    server = make_server(limits=ServerLimits(max_connections_per_ip=0))
    client = make_client(server.serverPort())
    errors, lost = recorder(client.server_error), recorder(client.connection_lost)
    scheduled = recorder(client.reconnect_scheduled)
    client.start()
    qtbot.waitUntil(lambda: len(scheduled) >= 2, timeout=WAIT_MS)
    assert errors[0][0] == "LIMIT"
    assert "too many connections" in errors[0][1]
    assert lost[0][0].startswith(f"Lost the connection to 127.0.0.1:{server.serverPort()}: ")
    assert "the server said: too many connections" in lost[0][0]


# ---------------------------------------------------------------- dead and broken servers


def test_a_server_that_never_answers_times_out_and_the_client_reconnects(
    qtbot, listener, make_client
):
    sock, connections = listener
    client = make_client(sock.getsockname()[1], [file_info(1, "aula.mp4")], reply_timeout=0.3)
    lost = recorder(client.connection_lost)
    client.start()
    connections.append(accept_connection(qtbot, sock))
    assert read_line(qtbot, connections[0])["op"] == "JOIN"
    qtbot.waitUntil(lambda: len(lost) == 1, timeout=WAIT_MS)
    assert lost[0][0] == (
        f"Lost the connection to 127.0.0.1:{sock.getsockname()[1]}: no reply within 0.3 s"
    )
    connections.append(accept_connection(qtbot, sock))  # it came back
    assert read_line(qtbot, connections[1])["op"] == "JOIN"


def test_garbage_from_the_server_is_a_protocol_error_and_the_client_reconnects(
    qtbot, listener, make_client
):
    sock, connections = listener
    client = make_client(sock.getsockname()[1])
    lost = recorder(client.connection_lost)
    client.start()
    connections.append(accept_connection(qtbot, sock))
    connections[0].sendall(b'{"op":"JOIN_OK","id":1,"peer":"x:1","files":0}\nnot json\n')
    qtbot.waitUntil(lambda: len(lost) == 1, timeout=WAIT_MS)
    assert "the server sent an invalid message (BAD_REQUEST" in lost[0][0]
    connections.append(accept_connection(qtbot, sock))


# ---------------------------------------------------------------- keep-alive and leaving


def test_ping_keeps_the_connection_alive(qtbot, server, make_client):
    client = make_client(server.serverPort(), ping_interval=0.05, reply_timeout=1.0)
    start_and_join(qtbot, client)
    ops = recorder(server.request_handled)
    qtbot.waitUntil(lambda: [op for op, _ in ops].count("PING") >= 3, timeout=WAIT_MS)
    assert client.state == ClientState.JOINED
    assert {op for op, _ in ops} == {"PING"}


def fake_join(qtbot, listener, client: IndexClient, heartbeat: bool) -> ssl.SSLSocket:
    """Be the client's server: accept it and answer its JOIN, granting the heartbeat it asks
    for, or not (as an older server, which knows no such field)."""
    sock, connections = listener
    client.start()
    connection = accept_connection(qtbot, sock)
    connections.append(connection)
    join = read_line(qtbot, connection)
    assert join["op"] == "JOIN" and join["heartbeat"] is True
    reply = {"op": "JOIN_OK", "id": join["id"], "peer": "127.0.0.1:6001", "files": 0}
    if heartbeat:
        reply["heartbeat"] = True
    with qtbot.waitSignal(client.joined, timeout=WAIT_MS):
        connection.sendall(json.dumps(reply).encode() + b"\n")
    return connection


def keep_busy(qtbot, connection: ssl.SSLSocket, seconds: float, heartbeat: bool) -> None:
    """Let ``seconds`` pass as a server working on a request: a heartbeat every 50 ms, or
    (an older server) not a word."""
    ticks: list[int] = []

    def tick() -> None:
        ticks.append(1)
        if heartbeat:
            connection.sendall(b'{"op":"PONG"}\n')

    timer = QTimer()
    timer.setInterval(50)
    timer.timeout.connect(tick)
    timer.start()
    qtbot.waitUntil(lambda: len(ticks) >= seconds / 0.05, timeout=WAIT_MS)
    timer.stop()


def answer_search(connection: ssl.SSLSocket, request_id: int) -> None:
    connection.sendall(json.dumps({"op": "SEARCH_OK", "id": request_id, "results": []}).encode())
    connection.sendall(b"\n")


SHORT_DEADLINES = {"liveness_timeout": 0.3, "reply_timeout": 60.0, "ping_interval": 60.0}


def test_a_server_with_heartbeats_that_goes_quiet_under_a_search_is_left_within_seconds(
    qtbot, listener, make_client
):
    port = listener[0].getsockname()[1]
    client = make_client(port, **SHORT_DEADLINES)
    connection = fake_join(qtbot, listener, client, heartbeat=True)
    lost, failed = recorder(client.connection_lost), recorder(client.search_failed)
    search_id = client.search("aula")
    assert read_line(qtbot, connection)["op"] == "SEARCH"
    started = time.monotonic()
    qtbot.waitUntil(lambda: len(lost) == 1, timeout=WAIT_MS)
    assert time.monotonic() - started < 3  # the liveness deadline, not the reply deadline
    assert lost[0][0] == f"Lost the connection to 127.0.0.1:{port}: no reply within 0.3 s"
    assert failed == []  # held for the next server (see the resend tests below)
    client.stop()
    assert failed == [(search_id, "The search was cancelled: leaving the index server")]


def test_heartbeats_keep_a_busy_server_past_the_liveness_deadline(qtbot, listener, make_client):
    client = make_client(listener[0].getsockname()[1], **SHORT_DEADLINES)
    connection = fake_join(qtbot, listener, client, heartbeat=True)
    lost = recorder(client.connection_lost)
    search_id = client.search("aula")
    search = read_line(qtbot, connection)
    keep_busy(qtbot, connection, 1.0, heartbeat=True)  # three liveness deadlines
    with qtbot.waitSignal(client.search_finished, timeout=WAIT_MS) as finished:
        answer_search(connection, search["id"])
    assert finished.args == [search_id, []]
    assert lost == []


def test_a_join_on_a_server_that_sent_a_heartbeat_has_the_liveness_deadline(
    qtbot, listener, make_client
):
    sock, connections = listener
    client = make_client(sock.getsockname()[1], **SHORT_DEADLINES)
    lost = recorder(client.connection_lost)
    client.start()
    connections.append(accept_connection(qtbot, sock))
    assert read_line(qtbot, connections[0])["op"] == "JOIN"
    connections[0].sendall(b'{"op":"PONG"}\n')  # working on it; then it freezes
    qtbot.waitUntil(lambda: len(lost) == 1, timeout=WAIT_MS)
    assert lost[0][0].endswith(": no reply within 0.3 s")


def test_an_older_server_without_heartbeats_gets_the_reply_deadline(qtbot, listener, make_client):
    port = listener[0].getsockname()[1]
    client = make_client(port, liveness_timeout=0.2, reply_timeout=1.0, ping_interval=60.0)
    connection = fake_join(qtbot, listener, client, heartbeat=False)
    lost = recorder(client.connection_lost)
    first = client.search("aula")
    search = read_line(qtbot, connection)
    keep_busy(qtbot, connection, 0.5, heartbeat=False)  # silent past the liveness deadline
    with qtbot.waitSignal(client.search_finished, timeout=WAIT_MS) as finished:
        answer_search(connection, search["id"])
    assert finished.args == [first, []] and lost == []
    client.search("prova")
    assert read_line(qtbot, connection)["op"] == "SEARCH"
    qtbot.waitUntil(lambda: len(lost) == 1, timeout=WAIT_MS)
    assert lost[0][0] == f"Lost the connection to 127.0.0.1:{port}: no reply within 1 s"


def test_an_idle_client_pings_and_leaves_a_server_that_does_not_answer_within_seconds(
    qtbot, listener, make_client
):
    port = listener[0].getsockname()[1]
    client = make_client(port, liveness_timeout=0.3, reply_timeout=60.0, ping_interval=0.2)
    connection = fake_join(qtbot, listener, client, heartbeat=False)  # even an older server
    lost = recorder(client.connection_lost)
    assert read_line(qtbot, connection)["op"] == "PING"  # after 0.2 s without a word
    started = time.monotonic()
    qtbot.waitUntil(lambda: len(lost) == 1, timeout=WAIT_MS)
    assert time.monotonic() - started < 3
    assert lost[0][0] == f"Lost the connection to 127.0.0.1:{port}: no reply within 0.3 s"


def test_an_idle_client_leaves_a_server_with_heartbeats_that_goes_quiet_without_pinging(
    qtbot, listener, make_client
):
    port = listener[0].getsockname()[1]
    client = make_client(port, liveness_timeout=0.3, reply_timeout=60.0, ping_interval=60.0)
    connection = fake_join(qtbot, listener, client, heartbeat=True)
    lost = recorder(client.connection_lost)
    keep_busy(qtbot, connection, 1.0, heartbeat=True)  # idle, its heartbeats keep it
    assert lost == [] and client.state == ClientState.JOINED
    started = time.monotonic()  # then the server goes quiet
    qtbot.waitUntil(lambda: len(lost) == 1, timeout=WAIT_MS)
    assert time.monotonic() - started < 3
    assert lost[0][0] == f"Lost the connection to 127.0.0.1:{port}: no reply within 0.3 s"
    connection.setblocking(False)
    with contextlib.suppress(ssl.SSLWantReadError, OSError):
        assert b"PING" not in connection.recv(65536)  # the client sent no PING meanwhile


def test_stop_sends_leave_and_the_server_removes_the_peer(qtbot, server, make_client):
    client = make_client(server.serverPort(), [file_info(1, "aula.mp4")], leave_timeout=5.0)
    start_and_join(qtbot, client)
    ops, lost = recorder(server.request_handled), recorder(client.connection_lost)
    with (
        qtbot.waitSignal(server.peer_left, timeout=WAIT_MS),
        qtbot.waitSignal(client.stopped, timeout=WAIT_MS),
    ):
        client.stop()
        assert client.state == ClientState.OFFLINE
    assert [op for op, _ in ops] == ["LEAVE"]
    assert server.store.counters().peers == 0
    assert lost == []
    assert client.peer_address == ""


def test_stop_and_wait_returns_once_the_server_answered(qtbot, server, make_client):
    client = make_client(server.serverPort(), [file_info(1, "aula.mp4")])
    start_and_join(qtbot, client)
    assert client.stop_and_wait(3000) is True
    assert server.store.counters().peers == 0
    assert client.state == ClientState.OFFLINE
    # A stopped client can start again.
    assert start_and_join(qtbot, client) == ["127.0.0.1:6001", 1]


# ---------------------------------------------------------------- several index servers


@pytest.fixture
def closed_ports():
    """Ports with nothing listening (bound, so no one else takes them): connections refused."""
    sockets: list[socket.socket] = []

    def make(count: int) -> list[int]:
        for _ in range(count):
            sock = socket.socket()
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
        return [sock.getsockname()[1] for sock in sockets[-count:]]

    def release(port: int) -> None:
        for sock in sockets:
            if sock.fileno() != -1 and sock.getsockname()[1] == port:
                sock.close()

    make.release = release
    yield make
    for sock in sockets:
        sock.close()


def test_a_server_not_listening_is_skipped_at_once_for_the_next(
    qtbot, make_server, make_client, closed_ports
):
    second, third = make_server(), make_server()
    (dead,) = closed_ports(1)
    ports = [dead, second.serverPort(), third.serverPort()]
    client = make_client(ports, [file_info(1, "aula.mp4")], shuffle=False)
    changed, scheduled = recorder(client.server_changed), recorder(client.reconnect_scheduled)
    problems = recorder(client.connection_problem)

    start_and_join(qtbot, client)
    assert client.server_address == f"127.0.0.1:{second.serverPort()}"
    assert changed == [(f"127.0.0.1:{dead}",), (f"127.0.0.1:{second.serverPort()}",)]
    assert problems == [("cannot_reach", f"127.0.0.1:{dead}", "connection refused")]
    assert scheduled == []  # one server down while another works: no backoff
    assert second.store.counters().peers == 1
    assert third.store.counters().peers == 0


def test_a_joined_client_whose_server_stops_joins_another_and_searches_there(
    qtbot, make_server, make_client
):
    first, second = make_server(), make_server()
    sharer = make_client(second.serverPort(), [file_info(7, "aula completa.mp4")], 6007)
    start_and_join(qtbot, sharer)
    files = [file_info(1, "mine.mkv")]
    client = make_client([first.serverPort(), second.serverPort()], files, shuffle=False)
    start_and_join(qtbot, client)
    assert client.server_address == f"127.0.0.1:{first.serverPort()}"
    failed, scheduled = recorder(client.search_failed), recorder(client.reconnect_scheduled)
    changed = recorder(client.server_changed)

    found_again, ops = recorder(client.search_finished), recorder(second.request_handled)
    waiting = client.search("aula")
    with qtbot.waitSignal(client.joined, timeout=WAIT_MS) as blocker:
        first.stop()
    assert blocker.args == ["127.0.0.1:6001", 1]
    # The search the first server never answered is answered by the second, same id.
    qtbot.waitUntil(lambda: bool(found_again), timeout=WAIT_MS)
    assert [(i, [r.name for r in results]) for i, results in found_again] == [
        (waiting, ["aula completa.mp4"])
    ]
    assert failed == []
    assert [op for op, _ in ops] == ["JOIN", "SEARCH"]
    assert changed == [(f"127.0.0.1:{second.serverPort()}",)]
    assert client.server_address == f"127.0.0.1:{second.serverPort()}"
    assert scheduled == []
    peer = peer_by_port(second, 6001)
    assert peer is not None and server_names(second, peer) == ["mine.mkv"]

    with qtbot.waitSignal(client.search_finished, timeout=WAIT_MS) as found:
        client.search("aula")
    assert [r.name for r in found.args[1]] == ["aula completa.mp4"]


def test_when_every_server_is_down_it_backs_off_by_rounds_and_joins_the_first_back(
    qtbot, make_server, make_client, closed_ports
):
    ports = closed_ports(3)
    client = make_client(ports, [file_info(1, "aula.mp4")], shuffle=False)
    lost, scheduled = recorder(client.connection_lost), recorder(client.reconnect_scheduled)
    client.start()
    qtbot.waitUntil(lambda: len(scheduled) >= 3, timeout=WAIT_MS)
    # Each round tries all three, then waits: 0.05 s, 0.1 s, 0.2 s (each a random 0.5x-1x).
    assert len(lost) >= 9
    assert [text.split(": ")[0] for (text,) in lost[:3]] == [
        f"Cannot reach the index server at 127.0.0.1:{port}" for port in ports
    ]
    for (delay,), base in zip(scheduled, [0.05, 0.1, 0.2], strict=False):
        assert 0.5 * base <= delay <= base
    assert client.state in (ClientState.WAITING, ClientState.CONNECTING)

    closed_ports.release(ports[2])
    with qtbot.waitSignal(client.joined, timeout=WAIT_MS):
        back = make_server(ports[2])
    assert client.server_address == f"127.0.0.1:{ports[2]}"
    assert back.store.counters().peers == 1


def test_a_server_that_refuses_the_peer_sends_it_to_the_next(qtbot, make_server, make_client):
    refusing = make_server(limits=ServerLimits(max_connections_per_ip=0))
    working = make_server()
    client = make_client([refusing.serverPort(), working.serverPort()], shuffle=False)
    errors, scheduled = recorder(client.server_error), recorder(client.reconnect_scheduled)
    start_and_join(qtbot, client)
    assert errors[0][0] == "LIMIT"
    assert client.server_address == f"127.0.0.1:{working.serverPort()}"
    assert scheduled == []


def test_a_server_whose_index_database_is_away_sends_the_peer_to_the_next(
    qtbot, make_index_server, make_server, make_client
):
    away_store = AwayStore()
    away_store.away = True
    away = make_index_server(store=away_store)
    working = make_server()
    client = make_client([away.serverPort(), working.serverPort()], shuffle=False)
    errors = recorder(client.server_error)
    start_and_join(qtbot, client)
    assert errors[0][0] == "UNAVAILABLE"
    assert client.server_address == f"127.0.0.1:{working.serverPort()}"


def test_each_client_tries_the_servers_in_its_own_random_order(qtbot):
    servers = [("127.0.0.1", port) for port in (1001, 1002, 1003)]
    firsts = set()
    for seed in range(20):
        client = IndexClient(servers, 6001, lambda: [], rng=random.Random(seed))
        assert sorted(client.order) == servers
        assert client.servers == servers
        firsts.add(client.server)
    assert firsts == set(servers)  # peers spread over every server


def test_set_servers_keeps_a_server_still_listed_and_leaves_one_that_is_not(
    qtbot, make_server, make_client
):
    first, second = make_server(), make_server()
    client = make_client([first.serverPort()], [file_info(1, "aula.mp4")])
    start_and_join(qtbot, client)
    states = recorder(client.state_changed)
    client.set_servers([("127.0.0.1", second.serverPort()), ("127.0.0.1", first.serverPort())])
    assert client.state == ClientState.JOINED and states == []
    assert client.server_address == f"127.0.0.1:{first.serverPort()}"

    with qtbot.waitSignal(client.joined, timeout=WAIT_MS):
        client.set_servers([("127.0.0.1", second.serverPort())])
    assert client.server_address == f"127.0.0.1:{second.serverPort()}"
    with pytest.raises(ValueError):
        client.set_servers([])


def test_servers_that_accept_a_join_and_drop_it_at_once_still_get_backoff(
    qtbot, listener, make_client
):
    sock, connections = listener
    client = make_client(sock.getsockname()[1])  # a JOIN counts once it lasted 10 s
    scheduled = recorder(client.reconnect_scheduled)
    joined = recorder(client.joined)
    client.start()
    for before in range(3):
        connection = accept_connection(qtbot, sock)
        connections.append(connection)
        join = read_line(qtbot, connection)
        reply = {"op": "JOIN_OK", "id": join["id"], "peer": "127.0.0.1:6001", "files": 0}
        connection.sendall(json.dumps(reply).encode() + b"\n")
        qtbot.waitUntil(lambda n=before: len(joined) > n, timeout=WAIT_MS)
        connection.close()
    qtbot.waitUntil(lambda: len(scheduled) == 3, timeout=WAIT_MS)
    for (delay,), base in zip(scheduled, [0.05, 0.1, 0.2], strict=True):
        assert 0.5 * base <= delay <= base


# ---------------------------------------------------------------- the server's identity


def test_a_server_with_another_identity_than_remembered_is_refused_before_anything_is_sent(
    qtbot, make_index_server, make_client
):
    first = make_index_server()
    port = first.serverPort()
    client = make_client(port)
    start_and_join(qtbot, client)
    assert client.server_fingerprint == first.fingerprint
    client.stop_and_wait(1000)
    first.stop()

    impostor = make_index_server(port=port, identity=PeerIdentity.generate("impostor"))
    changed, problems = (
        recorder(client.server_identity_changed),
        recorder(client.connection_problem),
    )
    client.start()
    qtbot.waitUntil(lambda: len(changed) >= 1, timeout=WAIT_MS)
    assert changed[0] == (f"127.0.0.1:{port}", first.fingerprint, impostor.fingerprint)
    assert problems[0][0] == "identity_changed"
    assert impostor.store.counters().peers == 0 and client.state != "joined"
    assert not any(session.peer_id for session in impostor.sessions)

    # The user accepts the identity shown: it is remembered, and the next attempt joins.
    client.trust_server_identity(f"127.0.0.1:{port}", impostor.fingerprint)
    qtbot.waitUntil(lambda: client.state == "joined", timeout=WAIT_MS)
    assert client.known_servers.fingerprint_of(f"127.0.0.1:{port}") == impostor.fingerprint


def test_a_server_that_does_not_speak_tls_is_told_as_an_older_server(qtbot, listener, make_client):
    sock, connections = listener
    client = make_client(sock.getsockname()[1])
    problems = recorder(client.connection_problem)
    client.start()
    qtbot.waitUntil(lambda: accept_plain(sock, connections), timeout=WAIT_MS)
    connections[0].sendall(b'{"op":"ERROR","code":"BAD_REQUEST","message":"bad json"}\n')
    connections[0].close()
    qtbot.waitUntil(lambda: len(problems) >= 1, timeout=WAIT_MS)
    assert problems[0][0] == "cannot_reach"
    assert "TLS" in problems[0][2] or "closed" in problems[0][2]


def accept_plain(listener: socket.socket, into: list) -> bool:
    try:
        connection, _ = listener.accept()
    except BlockingIOError:
        return False
    into.append(connection)
    return True


def test_remembered_fingerprints_survive_a_restart(tmp_path):
    from app.network.known_servers import KnownServers, Verdict

    path = tmp_path / "known_servers.json"
    known = KnownServers(path)
    assert known.check("index.example:1099", "ab" * 32) is Verdict.NEW
    again = KnownServers(path)
    assert again.check("index.example:1099", "ab" * 32) is Verdict.KNOWN
    assert again.check("index.example:1099", "cd" * 32) is Verdict.CHANGED
    again.forget("index.example:1099")
    assert KnownServers(path).check("index.example:1099", "cd" * 32) is Verdict.NEW
    path.write_text("not json")
    assert KnownServers(path).fingerprint_of("index.example:1099") is None


# ---------------------------------------------------------------- questions asked again


class Lines:
    """What a fake server reads from one connection, line by line, in order."""

    def __init__(self, connection: ssl.SSLSocket) -> None:
        self.connection = connection
        self.buffer = bytearray()

    def next(self, qtbot) -> dict:
        def check() -> None:
            if b"\n" not in self.buffer:
                with contextlib.suppress(BlockingIOError, ssl.SSLWantReadError):
                    self.buffer.extend(self.connection.recv(65536))
            assert b"\n" in self.buffer

        qtbot.waitUntil(check, timeout=WAIT_MS)
        line, _, rest = bytes(self.buffer).partition(b"\n")
        self.buffer[:] = rest
        return json.loads(line)


@pytest.fixture
def other_listener():
    """A second fake server, like ``listener``."""
    yield from fake_server_socket()


def fake_accept_join(qtbot, listener, client: IndexClient) -> tuple[ssl.SSLSocket, Lines]:
    """Take the client's next connection at this fake server and answer its JOIN (and
    nothing before it: the JOIN is the first line)."""
    sock, connections = listener
    connection = accept_connection(qtbot, sock)
    connections.append(connection)
    lines = Lines(connection)
    join = lines.next(qtbot)
    assert join["op"] == "JOIN"
    reply = {"op": "JOIN_OK", "id": join["id"], "peer": "127.0.0.1:6001", "files": 0}
    with qtbot.waitSignal(client.joined, timeout=WAIT_MS):
        connection.sendall(json.dumps(reply).encode() + b"\n")
    return connection, lines


def send(connection: ssl.SSLSocket, message: dict) -> None:
    connection.sendall(json.dumps(message).encode() + b"\n")


def two_fake_servers_and_a_question(qtbot, listener, other_listener, make_client):
    """A client JOINed at the first fake server with an UPDATE and a SEARCH out there."""
    ports = [listener[0].getsockname()[1], other_listener[0].getsockname()[1]]
    client = make_client(ports, [file_info(1, "mine.mkv")], shuffle=False)
    client.start()
    first, first_lines = fake_accept_join(qtbot, listener, client)
    client.announce([file_info(2, "new.mkv")], [])
    search_id = client.search("aula")
    assert first_lines.next(qtbot)["op"] == "UPDATE"
    assert first_lines.next(qtbot)["query"] == "aula"
    return client, first, search_id


def test_a_search_out_when_the_server_drops_is_asked_again_of_the_next_after_its_join_ok(
    qtbot, listener, other_listener, make_client
):
    client, first, search_id = two_fake_servers_and_a_question(
        qtbot, listener, other_listener, make_client
    )
    failed, finished = recorder(client.search_failed), recorder(client.search_finished)
    first.close()  # the server goes away with the UPDATE and the SEARCH unanswered
    second, lines = fake_accept_join(qtbot, other_listener, client)
    # Right after JOIN_OK: the SEARCH again (a new request id), not the UPDATE.
    again = lines.next(qtbot)
    assert (again["op"], again["query"]) == ("SEARCH", "aula")
    result = {
        "name": "aula.mp4",
        "size": 5,
        "hash": "ab" * 32,
        "peers": [{"host": "127.0.0.1", "port": 6002}],
    }
    send(second, {"op": "SEARCH_OK", "id": again["id"], "results": [result]})
    qtbot.waitUntil(lambda: bool(finished), timeout=WAIT_MS)
    assert [(i, [r.name for r in results]) for i, results in finished] == [
        (search_id, ["aula.mp4"])
    ]
    assert failed == []
    # Nothing else was sent again: the next line is the next question.
    client.search("next")
    assert lines.next(qtbot)["query"] == "next"


def test_a_search_out_when_both_servers_drop_fails_and_is_not_asked_a_third_time(
    qtbot, listener, other_listener, make_client
):
    client, first, search_id = two_fake_servers_and_a_question(
        qtbot, listener, other_listener, make_client
    )
    failed = recorder(client.search_failed)
    first.close()
    second, lines = fake_accept_join(qtbot, other_listener, client)
    assert lines.next(qtbot)["query"] == "aula"
    assert failed == []
    second.close()  # the next server goes too before answering
    qtbot.waitUntil(lambda: bool(failed), timeout=WAIT_MS)
    assert failed == [(search_id, "Lost the connection to the index server before it answered")]
    # Back at the first server: the search is not sent again.
    _third, lines = fake_accept_join(qtbot, listener, client)
    client.search("next")
    assert lines.next(qtbot)["query"] == "next"
