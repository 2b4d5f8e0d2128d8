"""Three index server processes over one PostgreSQL, with real peers spread across them.

A search through any server finds every peer's files; a server killed with -9 loses its
peers from the others' results within its lease and they come back once they have failed
over; LEAVE and dropped connections remove rows at once; a PostgreSQL restart costs no
peer more than the reconnect, and requests in the gap get ``UNAVAILABLE``.
"""

from __future__ import annotations

import json
import signal
from pathlib import Path

import psycopg
import pytest

from tests.postgres_server import ThrowawayPostgres
from tests.system.conftest import Program, search_index, wait_until
from tests.test_server_cli import ServerProcess
from tests.wire_client import tls_connect

#: The store's lease (server_app.postgres_store.LEASE_SECONDS) and a sweep period after it.
LEASE = 5.0
SWEEP_SLACK = 5.0


class WirePeer:
    """A peer over a plain socket that never fails over: it stays where it joined."""

    def __init__(self, server_port: int, port: int, files: list[dict]) -> None:
        self.sock = tls_connect(server_port)
        self.reader = self.sock.makefile("rb")
        self.port = port
        reply = self.ask({"op": "JOIN", "id": 1, "port": port, "files": files})
        assert reply["op"] == "JOIN_OK", reply

    def ask(self, message: dict) -> dict:
        self.sock.sendall(json.dumps(message).encode() + b"\n")
        return json.loads(self.reader.readline())

    def close(self) -> None:
        self.reader.close()
        self.sock.close()


def wire_file(name: str, number: int) -> dict:
    return {"name": name, "size": 1000 + number, "hash": f"{number:064x}"}


def ask_once(server_port: int, message: dict) -> dict:
    """One request from a fresh peer sharing nothing (its JOIN may itself be refused)."""
    with tls_connect(server_port) as sock:
        reader = sock.makefile("rb")
        sock.sendall(json.dumps({"op": "JOIN", "id": 1, "port": 5999, "files": []}).encode())
        sock.sendall(b"\n")
        joined = json.loads(reader.readline())
        if joined["op"] != "JOIN_OK":
            return joined
        sock.sendall(json.dumps(message).encode() + b"\n")
        return json.loads(reader.readline())


def where_peers_are(url: str) -> dict[int, str]:
    """Listen port of every peer in the shared index -> the name of its server."""
    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT p.port, s.name FROM peers p JOIN servers s USING (server_id)"
        ).fetchall()
    return {port: name for port, name in rows}


@pytest.fixture
def own_postgres():
    """A PostgreSQL of this test's own: the test stops and starts it."""
    server = ThrowawayPostgres().start()
    yield server
    server.stop()


@pytest.fixture
def postgres_url(own_postgres) -> str:
    return own_postgres.create_database()


@pytest.fixture
def servers(postgres_url):
    started = [ServerProcess("--port", "0", "--db", postgres_url) for _ in range(3)]
    for server in started:
        assert server.ready.wait(60) and server.port, server.lines
    yield started
    for server in started:
        if server.proc.poll() is None:
            server.stop()


def start_peer(tmp_path: Path, index: int, servers: list[ServerProcess]) -> Program:
    profile = tmp_path / f"peer{index}"
    share = profile / "share"
    share.mkdir(parents=True)
    (share / f"scaleout-{index}.mp4").write_bytes(bytes([index]) * 50_000)
    server_args = [arg for server in servers for arg in ("--server", f"127.0.0.1:{server.port}")]
    return Program(
        profile,
        "--headless",
        *server_args,
        "--share",
        str(share),
        "--downloads",
        str(profile / "downloads"),
        "--port",
        str(7100 + index),
        "--data-dir",
        str(profile / "state"),
    )


def everyone_found_through(servers: list[ServerProcess], names: list[str]) -> bool:
    return all(set(names) <= set(search_index(server.port, "scaleout")) for server in servers)


def test_three_servers_share_one_index_through_a_kill_and_a_database_restart(
    tmp_path, servers, own_postgres, postgres_url
):
    postgres = own_postgres
    peers = [start_peer(tmp_path, index, servers) for index in range(4)]
    for peer in peers:
        peer.expect("joined as", 60)
    names = [f"scaleout-{index}.mp4" for index in range(4)]
    wait_until(lambda: everyone_found_through(servers, names), 60, "every file on every server")

    # A wire peer on each server: these never fail over, so their rows show the sweeps.
    wire = [
        WirePeer(server.port, 7200 + n, [wire_file(f"scaleout wire{n}.mkv", n + 1)])
        for n, server in enumerate(servers)
    ]
    wait_until(
        lambda: all(
            {f"scaleout wire{n}.mkv" for n in range(3)} <= set(search_index(s.port, "wire"))
            for s in servers
        ),
        10,
        "the wire peers on every server",
    )

    # LEAVE and a dropped connection take a peer out of every server's results at once.
    leaver = WirePeer(servers[0].port, 7301, [wire_file("scaleout leaver.mkv", 90)])
    dropper = WirePeer(servers[1].port, 7302, [wire_file("scaleout dropper.mkv", 91)])
    assert "scaleout leaver.mkv" in search_index(servers[2].port, "leaver")
    assert leaver.ask({"op": "LEAVE", "id": 2})["op"] == "LEAVE_OK"
    assert search_index(servers[2].port, "leaver") == []
    dropper.close()
    wait_until(lambda: search_index(servers[2].port, "dropper") == [], 2, "the dropper gone")
    leaver.close()

    # kill -9 the server with the most real peers.
    placed = where_peers_are(postgres_url)
    # A server names itself host:port (this machine's name with the default --host).
    names_of = {name: s for name in placed.values() for s in servers if name.endswith(f":{s.port}")}
    counts = {server: 0 for server in servers}
    for port, name in placed.items():
        if 7100 <= port < 7200:
            counts[names_of[name]] += 1
    victim = max(servers, key=lambda server: counts[server])
    survivors = [server for server in servers if server is not victim]
    victim_wire = wire[servers.index(victim)]
    victim_name = f"scaleout wire{servers.index(victim)}.mkv"
    victim.stop(signal.SIGKILL)
    wait_until(
        lambda: all(victim_name not in search_index(s.port, "wire") for s in survivors),
        LEASE + SWEEP_SLACK,
        "the killed server's peers gone from the others' results",
    )
    # Its real peers failed over: every file is found again, through both survivors.
    wait_until(lambda: everyone_found_through(survivors, names), 30, "the peers back")
    assert {name.rsplit(":", 1)[1] for name in where_peers_are(postgres_url).values()} <= {
        str(server.port) for server in survivors
    }
    victim_wire.close()

    # PostgreSQL goes away: requests are refused with UNAVAILABLE, nobody hangs...
    postgres.stop(remove=False)
    reply = ask_once(survivors[0].port, {"op": "SEARCH", "id": 2, "query": "scaleout"})
    assert reply["op"] == "ERROR" and reply["code"] == "UNAVAILABLE", reply
    # ...and once it is back, every peer is found again without anyone re-joining.
    postgres.start()
    wait_until(lambda: everyone_found_through(survivors, names), 30, "the index after restart")
    for peer in peers:
        assert peer.proc.poll() is None, peer.stderr[-20:]
    for peer in peers:
        assert peer.terminate() == 0, peer.stderr[-20:]
        assert peer.qt_warnings() == []
    for each in wire:
        each.close()
