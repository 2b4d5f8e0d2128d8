"""Scale-out benchmark (not run by CI): several index servers over one PostgreSQL index.

Starts a throw-away PostgreSQL, ``--servers`` napster-server processes on it, and simulated
peers over real sockets spread across them until the index holds ``--peers`` x ``--files``
entries. Prints JOIN throughput, SEARCH p50/p99 through each server for selective and
common-term queries, and how long a killed server's peers stay in the other servers'
results. Then the same queries on one SQLite server at each size of ``--sqlite-files``.

    .venv/bin/python tests/bench/scale_out_bench.py                      # 10 M files
    .venv/bin/python tests/bench/scale_out_bench.py --peers 100 --files 1000 --sqlite-files 100000

Targets (issue #16): SEARCH p99 under 50 ms for selective queries at 10 M files; a dead
server's peers gone within 10 s.
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import socket
import ssl
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.bench.index_bench import (
    peak_rss_mb,
    read_line,
    start_server,
    stop_server,
    words,
)
from tests.postgres_server import ThrowawayPostgres
from tests.wire_client import tls_connect

QUALITIES = ("720p", "1080p", "2160p")
EXTENSIONS = ("mkv", "mp4", "avi")
#: Peers per source address: the server accepts 32 connections from one address.
PEERS_PER_ADDRESS = 30


@dataclass
class Names:
    """File names like a video library: common title words, one rarer word, episode, quality.

    A rare word is held by about ``files / rare_words`` names: a selective query. Three
    common terms together match many names: the expensive case for a trigram index.
    """

    rng: random.Random
    common: list[str]
    rare: list[str]

    @classmethod
    def make(cls, seed: int, rare_words: int) -> Names:
        rng = random.Random(seed)
        common = words(rng, 3000)
        seen = set(common)
        rare = []
        while len(rare) < rare_words:
            word = "".join(rng.choice("bcdfghjklmnprstvz") + rng.choice("aeiou") for _ in range(4))
            if word not in seen:
                seen.add(word)
                rare.append(word)
        return cls(rng, common, rare)

    def name(self) -> str:
        rng = self.rng
        title = " ".join(rng.choice(self.common) for _ in range(rng.randint(1, 3)))
        episode = f"S{rng.randint(1, 9):02d}E{rng.randint(1, 24):02d}"
        return (
            f"{title} {rng.choice(self.rare)} {episode} {rng.choice(QUALITIES)}"
            f".{rng.choice(EXTENSIONS)}"
        )

    def selective_query(self) -> str:
        return self.rng.choice(self.rare)

    def common_query(self) -> str:
        return f"{self.rng.choice(self.common)} {self.rng.choice(QUALITIES)} mkv"


@dataclass
class Peer:
    sock: socket.socket
    server: int
    port: int
    lock: threading.Lock = field(default_factory=threading.Lock)


def join_peer(server_port: int, peer: int, files: list[dict]) -> socket.socket:
    group = peer // PEERS_PER_ADDRESS
    source = f"127.0.{2 + group // 250}.{2 + group % 250}"
    sock = tls_connect(server_port, source_address=(source, 0))
    sock.sendall(
        json.dumps({"op": "JOIN", "id": 1, "port": 6000 + peer, "files": files}).encode() + b"\n"
    )
    reply = read_line(sock, bytearray())
    if reply.get("op") != "JOIN_OK":
        raise SystemExit(f"peer {peer}: JOIN refused: {reply}")
    return sock


def fill(
    ports: list[int], peers: int, files: int, names: Names, joined: list[Peer]
) -> tuple[list[Peer], float]:
    """JOIN ``peers`` peers of ``files`` files each, round-robin over the servers, one
    thread per server, into ``joined`` (kept alive meanwhile by the caller); returns the
    peers and the seconds it took."""
    lock = threading.Lock()

    def files_of() -> list[dict]:
        with lock:
            return [
                {
                    "name": names.name(),
                    "size": names.rng.randint(10**8, 2 * 10**10),
                    "hash": f"{names.rng.getrandbits(256):064x}",
                }
                for _ in range(files)
            ]

    failures: list[BaseException] = []

    def run(server: int) -> None:
        try:
            for peer in range(server, peers, len(ports)):
                sock = join_peer(ports[server], peer, files_of())
                with lock:
                    joined.append(Peer(sock, server, 6000 + peer))
                    if len(joined) % 100 == 0:
                        print(f"  {len(joined):,} peers joined", flush=True)
        except BaseException as exc:  # SystemExit too: a thread would swallow it
            failures.append(exc)

    started = time.perf_counter()
    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(ports))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failures:
        raise SystemExit(f"JOIN failed: {failures[0]}")
    return joined, time.perf_counter() - started


class Searcher:
    """A peer sharing nothing that SEARCHes and BROWSEs through one server."""

    def __init__(self, port: int, own_port: int) -> None:
        self.sock = tls_connect(port, source_address=("127.0.1.250", 0))
        self.buffer = bytearray()
        reply = self.ask({"op": "JOIN", "id": 1, "port": own_port, "files": []})
        if reply.get("op") != "JOIN_OK":
            raise SystemExit(f"the searcher's JOIN failed: {reply}")

    def ask(self, message: dict) -> dict:
        self.sock.sendall(json.dumps(message).encode() + b"\n")
        while True:
            reply = read_line(self.sock, self.buffer)
            if reply.get("op") != "PONG":
                return reply

    def latencies(self, queries: list[str]) -> list[float]:
        out = []
        for index, query in enumerate(queries):
            started = time.perf_counter()
            reply = self.ask({"op": "SEARCH", "id": index, "query": query, "limit": 100})
            out.append((time.perf_counter() - started) * 1000)
            if reply.get("op") != "SEARCH_OK":
                raise SystemExit(f"SEARCH {query!r} failed: {reply}")
        return out

    def close(self) -> None:
        self.sock.close()


def keep_alive(peers: list[Peer], stop: threading.Event) -> None:
    """PING every peer now and then: a server drops a peer silent for 90 s."""
    while not stop.wait(20):
        for peer in peers:
            try:
                peer.sock.sendall(b'{"op":"PING"}\n')
                peer.sock.setblocking(False)
                try:
                    while peer.sock.recv(65536):
                        pass
                except (BlockingIOError, ssl.SSLWantReadError, OSError):
                    pass
                finally:
                    peer.sock.setblocking(True)
            except OSError:
                pass


def summary(latencies: list[float]) -> str:
    ordered = sorted(latencies)
    p99 = ordered[max(0, int(len(ordered) * 0.99) - 1)]
    return f"p50 {statistics.median(ordered):6.2f} ms  p99 {p99:7.2f} ms  max {ordered[-1]:7.1f} ms"


def measure_queries(
    searchers: list[Searcher], names: Names, count: int, label: Callable[[int], str]
) -> None:
    for kind, make in (("selective", names.selective_query), ("common", names.common_query)):
        queries = [make() for _ in range(count)]
        for index, searcher in enumerate(searchers):
            print(f"  {label(index)}  {kind:9}  {summary(searcher.latencies(queries))}")


def wait_gone(searcher: Searcher, peer: Peer, timeout: float = 60.0) -> float:
    """Seconds until BROWSE of ``peer`` through ``searcher`` comes back empty."""
    started = time.perf_counter()
    while time.perf_counter() - started < timeout:
        reply = searcher.ask(
            {"op": "BROWSE", "id": 5, "host": peer_host(peer), "port": peer.port, "limit": 1}
        )
        if reply.get("op") == "BROWSE_OK" and not reply["results"]:
            return time.perf_counter() - started
        time.sleep(0.05)  # a poll of the index, not a wait for a result of ours
    return float("inf")


def peer_host(peer: Peer) -> str:
    return peer.sock.getsockname()[0]


def run_postgres(args: argparse.Namespace, names: Names) -> None:
    total = args.peers * args.files
    print(f"PostgreSQL: {args.servers} servers, {args.peers:,} peers x {args.files:,} files")
    with ThrowawayPostgres() as postgres:
        with psycopg.connect(postgres.url, autocommit=True) as conn:
            for setting, value in POSTGRES_SETTINGS.items():
                conn.execute(f"ALTER SYSTEM SET {setting} = '{value}'")
        postgres.restart()
        servers = [
            start_server(postgres.url, "--max-files", str(total * 2)) for _ in range(args.servers)
        ]
        ports = [port for _, port, _ in servers]
        stop = threading.Event()
        peers: list[Peer] = []
        searchers: list[Searcher] = []
        try:
            # Peers that joined first are idle for minutes while the rest join: ping them.
            threading.Thread(target=keep_alive, args=(peers, stop), daemon=True).start()
            peers, seconds = fill(ports, args.peers, args.files, names, peers)
            print(f"  JOIN: {total / seconds:,.0f} files/s ({seconds:.0f} s for {total:,} files)")
            searchers = [Searcher(port, 5900 + i) for i, port in enumerate(ports)]
            measure_queries(searchers, names, args.searches, lambda i: f"server {i + 1}")
            for index, (process, _, _) in enumerate(servers):
                print(f"  server {index + 1} peak RSS {peak_rss_mb(process.pid):.0f} MB")
            victim = next(peer for peer in peers if peer.server == 0)
            servers[0][0].kill()
            gone = wait_gone(searchers[1], victim)
            print(f"  server 1 killed (-9): its peers gone from server 2's results in {gone:.2f} s")
        finally:
            stop.set()
            for searcher in searchers:
                searcher.close()
            for peer in peers:
                peer.sock.close()
            for process, _, _ in servers:
                if process.poll() is None:
                    stop_server(process)


def run_sqlite(args: argparse.Namespace, names: Names, total: int) -> None:
    files = min(args.files, total)
    peers = max(1, total // files)
    print(f"SQLite: 1 server, {peers:,} peers x {files:,} files")
    db = Path(tempfile.mkdtemp()) / "bench.sqlite3"
    process, port, log = start_server(db, "--max-files", str(total * 2))
    stop = threading.Event()
    joined: list[Peer] = []
    searcher = None
    try:
        threading.Thread(target=keep_alive, args=(joined, stop), daemon=True).start()
        try:
            joined, seconds = fill([port], peers, files, names, joined)
        except SystemExit:
            print("".join(list(log)[-40:]))  # the server's last words
            raise
        print(f"  JOIN: {total / seconds:,.0f} files/s ({seconds:.0f} s for {total:,} files)")
        searcher = Searcher(port, 5900)
        measure_queries([searcher], names, args.searches, lambda _: "sqlite  ")
        print(f"  server peak RSS {peak_rss_mb(process.pid):.0f} MB")
    finally:
        stop.set()
        if searcher:
            searcher.close()
        for peer in joined:
            peer.sock.close()
        stop_server(process)


#: A bench-sized PostgreSQL: the index of 10 M names is about 0.7 GB and should stay cached.
POSTGRES_SETTINGS = {
    "shared_buffers": "2GB",
    "maintenance_work_mem": "512MB",
    "max_connections": "200",
    "synchronous_commit": "off",
}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--servers", type=int, default=3)
    parser.add_argument("--peers", type=int, default=1000)
    parser.add_argument("--files", type=int, default=10_000, help="files per peer")
    parser.add_argument("--searches", type=int, default=300, help="queries per kind and server")
    parser.add_argument("--rare-words", type=int, default=100_000)
    parser.add_argument(
        "--sqlite-files",
        default="1000000,10000000",
        help="comma-separated index sizes for the SQLite comparison ('' for none)",
    )
    parser.add_argument("--skip-postgres", action="store_true", help="only the SQLite runs")
    args = parser.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, args.peers * 2 + 200)), hard))
    if not args.skip_postgres:
        run_postgres(args, Names.make(7, args.rare_words))
    for size in filter(None, args.sqlite_files.split(",")):
        run_sqlite(args, Names.make(7, args.rare_words), int(size))
    print("targets: selective SEARCH p99 < 50 ms at 10 M files; dead server's peers gone < 10 s")


if __name__ == "__main__":
    main()
