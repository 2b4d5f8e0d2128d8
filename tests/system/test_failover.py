"""A peer leaves a frozen index server within seconds, idle or waiting, and keeps a slow one.

The index servers are real processes; SIGSTOP freezes one (a hung process, or a host that
stops answering while its TCP connections stay up). The peer's ``IndexClient`` runs in the
test with its default deadlines, as every front end uses them.
"""

from __future__ import annotations

import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.network import protocol as p
from app.network.index_client import ClientState, IndexClient
from tests.system.conftest import search_index
from tests.test_server_cli import ServerProcess

#: Seconds to JOIN another server once the first froze: the defaults allow 3 s idle before
#: a PING and 5 s for its answer (or 5 s of silence under a request), then the new JOIN.
FROZEN_BOUND = 10.0
#: The client's default deadline for a word from a server that sends heartbeats.
LIVENESS = 5.0


@pytest.fixture
def start_server(tmp_path: Path) -> Iterator:
    started: list[ServerProcess] = []

    def start(name: str, held: bool = False) -> ServerProcess:
        def holding(argv: list[str]) -> list[str]:
            return [sys.executable, "-m", "tests.held_index_server", *argv[4:]]

        server = ServerProcess(
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--db",
            str(tmp_path / f"{name}.db"),
            "--identity-dir",
            str(tmp_path / name),
            wrap=holding if held else None,
            stdin=held,
        )
        started.append(server)
        return server

    yield start
    for server in started:
        if server.proc.poll() is None:
            server.proc.send_signal(signal.SIGCONT)
        server.stop()


@pytest.fixture
def make_client(qtbot) -> Iterator:
    clients: list[IndexClient] = []

    def make(servers: list[ServerProcess], port: int, files: list[p.FileInfo]) -> IndexClient:
        for server in servers:
            assert server.ready.wait(30) and server.port, server.lines
        order = [("127.0.0.1", server.port) for server in servers]
        client = IndexClient(order, port, lambda: files, shuffle=False)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.stop_and_wait(1000)


def on(client: IndexClient, server: ServerProcess) -> bool:
    return client.state == ClientState.JOINED and client.server_address.endswith(f":{server.port}")


def test_a_frozen_index_server_is_left_within_seconds_idle_or_with_a_search_waiting(
    qtbot, start_server, make_client
):
    first, second = start_server("first"), start_server("second")
    idle = make_client([first, second], 6001, [p.FileInfo("holiday video.mkv", 1000, "ab" * 32)])
    searching = make_client([first, second], 6002, [])
    failed: list[tuple] = []
    found: list[tuple] = []
    searching.search_failed.connect(lambda *args: failed.append(args))
    searching.search_finished.connect(lambda *args: found.append(args))
    for client in (idle, searching):
        client.start()
    qtbot.waitUntil(lambda: on(idle, first) and on(searching, first), timeout=15_000)

    first.proc.send_signal(signal.SIGSTOP)
    frozen_at = time.monotonic()
    search_id = searching.search("holiday")
    qtbot.waitUntil(
        lambda: on(idle, second) and on(searching, second), timeout=int(FROZEN_BOUND * 1000)
    )
    took = time.monotonic() - frozen_at
    assert took < FROZEN_BOUND
    # The search its server never answered is answered by the other, under the same id,
    # and the idle peer's files are found through the server that is still there.
    qtbot.waitUntil(lambda: bool(found), timeout=5_000)
    assert [search for search, _results in found] == [search_id]
    assert failed == []
    assert search_index(second.port, "holiday") == ["holiday video.mkv"]


def test_a_busy_index_server_answering_a_big_join_is_kept(qtbot, start_server, make_client):
    # The server holds the 8,000-file JOIN in its turn queue, as when busy with other
    # peers, for longer than the client waits for a word from a server with heartbeats.
    busy = start_server("busy", held=True)
    files = [p.FileInfo(f"lecture {n}.mkv", n + 1, f"{n + 1:064x}") for n in range(8_000)]
    client = make_client([busy], 6001, files)
    with qtbot.assertNotEmitted(client.connection_lost, wait=int((LIVENESS + 1.5) * 1000)):
        client.start()
    assert client.state is ClientState.JOINING
    with qtbot.waitSignal(client.joined, timeout=30_000) as joined:
        busy.proc.stdin.write("go\n")
        busy.proc.stdin.flush()
    assert joined.args[1] == 8_000
