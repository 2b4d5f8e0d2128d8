"""Index server benchmark (not run by CI).

Simulated peers over real sockets JOIN until the index holds N files, then one
peer runs a few thousand varied SEARCHes. Prints JOIN throughput, SEARCH
latency p50/p99/max and the server's peak RSS.

    .venv/bin/python tests/bench/index_bench.py [--peers 1000] [--files 1000] [--searches 3000]

``--flood`` runs the flood-and-empty scenario instead: several connections fill the
index with about ``--flood-files`` entries, all leave, fill it again and all leave
again; it prints the server's RSS after each step and SEARCH latencies on the
emptied index.

    .venv/bin/python tests/bench/index_bench.py --flood [--flood-files 1000000]
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tests.wire_client import tls_connect  # noqa: E402

SYLLABLES = [
    "ka",
    "lo",
    "mi",
    "ra",
    "su",
    "te",
    "vo",
    "ni",
    "pa",
    "ze",
    "do",
    "ru",
    "fi",
    "go",
    "ha",
    "je",
    "ma",
    "no",
    "pe",
    "qu",
    "sa",
    "ti",
    "vu",
    "we",
    "xa",
    "yo",
]


def words(rng: random.Random, count: int) -> list[str]:
    return ["".join(rng.choice(SYLLABLES) for _ in range(rng.randint(2, 4))) for _ in range(count)]


def make_names(rng: random.Random, vocabulary: list[str], count: int) -> list[str]:
    names = []
    for _ in range(count):
        title = " ".join(rng.choice(vocabulary) for _ in range(rng.randint(2, 4)))
        episode = f"S{rng.randint(1, 9):02d}E{rng.randint(1, 24):02d}"
        quality = rng.choice(["720p", "1080p", "2160p"])
        names.append(f"{title} {episode} {quality}.{rng.choice(['mkv', 'mp4', 'avi'])}")
    return names


def read_line(sock: socket.socket, buffer: bytearray) -> dict:
    while b"\n" not in buffer:
        chunk = sock.recv(1 << 20)
        if not chunk:
            raise ConnectionError("the server closed the connection")
        buffer += chunk
    line, _, rest = bytes(buffer).partition(b"\n")
    buffer[:] = rest
    return json.loads(line)


class KeepAlive:
    """PINGs every peer socket now and then: the server drops a peer silent for 90 s."""

    def __init__(self, sockets: list[socket.socket], every: float = 20.0) -> None:
        self.sockets = sockets
        self.every = every
        self.last = time.monotonic()

    def tick(self) -> None:
        if time.monotonic() - self.last < self.every:
            return
        self.last = time.monotonic()
        for sock in self.sockets:
            sock.sendall(b'{"op":"PING"}\n')
            # Read the PONGs that came back since the last round so nothing piles up.
            sock.setblocking(False)
            try:
                while sock.recv(65536):
                    pass
            except (BlockingIOError, ssl.SSLWantReadError):
                pass
            finally:
                sock.setblocking(True)


def stop_server(server: subprocess.Popen) -> None:
    """Ask the server to quit (SIGTERM); kill it if it has not within 30 s."""
    server.terminate()
    try:
        server.wait(30)
    except subprocess.TimeoutExpired:
        server.kill()


def start_server(db: Path | str, *extra: str) -> tuple[subprocess.Popen, int, deque[str]]:
    """A headless napster-server on ``db`` (a SQLite file or a PostgreSQL URL)."""
    server = subprocess.Popen(
        [
            *(sys.executable, "-m", "server_app", "--headless"),
            *("--host", "127.0.0.1", "--port", "0", "--db", str(db), *extra),
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    port = None
    for line in server.stdout:
        if line.startswith("napster-server listening on"):
            port = int(line.rsplit(":", 1)[1])
            break
    if port is None:
        raise SystemExit("the server did not start")
    lines: deque[str] = deque(maxlen=300)

    def drain() -> None:  # the server logs every request; its pipe must never fill
        for line in server.stdout:
            lines.append(line)

    threading.Thread(target=drain, daemon=True).start()
    return server, port, lines


def peak_rss_mb(pid: int, field: str = "VmHWM") -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def rss_mb(pid: int) -> float:
    return peak_rss_mb(pid, "VmRSS")


def request(sock: socket.socket, buffer: bytearray, message: dict) -> dict:
    sock.sendall(json.dumps(message).encode() + b"\n")
    return read_line(sock, buffer)


def search_latencies(sock: socket.socket, buffer: bytearray, queries: list[str]) -> list[float]:
    """Milliseconds per SEARCH, in order."""
    latencies = []
    for index, query in enumerate(queries):
        started = time.perf_counter()
        reply = request(sock, buffer, {"op": "SEARCH", "id": index, "query": query})
        assert reply["op"] == "SEARCH_OK", reply
        latencies.append((time.perf_counter() - started) * 1000)
    return latencies


def flood(server: subprocess.Popen, port: int, total: int, round_: int) -> list[socket.socket]:
    """Connections from 10 addresses JOIN with ``total`` entries in all (JOIN plus UPDATEs)."""
    connections = 10
    per_connection = total // connections
    sockets = []
    for index in range(connections):
        source = f"127.0.1.{10 + index}"
        sock = tls_connect(port, source_address=(source, 0))
        buffer = bytearray()
        rng = random.Random(round_ * 100 + index)
        files = [
            {
                "name": f"flood{round_} peer{index} {n} common.mkv",
                "size": n,
                "hash": f"{rng.getrandbits(256):064x}",
            }
            for n in range(per_connection)
        ]
        batch = 10_000
        reply = request(sock, buffer, {"op": "JOIN", "id": 1, "port": 7000, "files": files[:batch]})
        assert reply["op"] == "JOIN_OK", reply
        for start in range(batch, per_connection, batch):
            update = {"op": "UPDATE", "id": 2, "add": files[start : start + batch], "remove": []}
            reply = request(sock, buffer, update)
            assert reply["op"] == "UPDATE_OK", reply
        sockets.append(sock)
    return sockets


def run_flood(args: argparse.Namespace) -> None:
    """Fill, empty, fill, empty: the server's memory and SEARCH time after each."""
    db = Path(tempfile.mkdtemp()) / "bench.sqlite3"
    server, port, _log_lines = start_server(db)
    searcher = tls_connect(port, source_address=("127.0.0.250", 0))
    buffer = bytearray()
    try:
        request(searcher, buffer, {"op": "JOIN", "id": 1, "port": 5999, "files": []})
        print(f"server RSS at start: {rss_mb(server.pid):.0f} MB")
        queries = ["common", "flood0 common", "mkv", "peer3 12", "zq", "1 2"]
        for round_ in range(2):
            started = time.perf_counter()
            flooders = flood(server, port, args.flood_files, round_)
            took = time.perf_counter() - started
            full = search_latencies(searcher, buffer, queries)
            print(
                f"fill {round_ + 1}: {args.flood_files:,} entries in {took:.1f} s;"
                f" RSS {rss_mb(server.pid):.0f} MB; SEARCH on the full index:"
                f" max {max(full):.1f} ms"
            )
            for sock in flooders:
                sock.close()
            left = time.perf_counter()
            first = search_latencies(searcher, buffer, queries)
            # Until the server has noticed every departure, the flooders' names still match.
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                reply = request(searcher, buffer, {"op": "SEARCH", "id": 9, "query": "common"})
                if not reply["results"]:
                    break
            gone = time.perf_counter() - left
            emptied = search_latencies(searcher, buffer, queries * 5)
            print(
                f"all left {round_ + 1}: every flooder gone after {gone:.2f} s;"
                f" SEARCH right after they closed: max {max(first):.1f} ms;"
                f" on the emptied index: p50 {statistics.median(emptied):.2f} ms,"
                f" max {max(emptied):.1f} ms; RSS {rss_mb(server.pid):.0f} MB"
            )
        print(f"server peak RSS: {peak_rss_mb(server.pid):.0f} MB")
    finally:
        searcher.close()
        stop_server(server)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--peers", type=int, default=1000)
    parser.add_argument("--files", type=int, default=1000)
    parser.add_argument("--searches", type=int, default=3000)
    parser.add_argument("--flood", action="store_true", help="the flood-and-empty scenario")
    parser.add_argument("--flood-files", type=int, default=1_000_000)
    args = parser.parse_args()
    if args.flood:
        run_flood(args)
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, args.peers * 2 + 100)), hard))

    db = Path(tempfile.mkdtemp()) / "bench.sqlite3"
    server, port, _log_lines = start_server(db)
    rng = random.Random(7)
    vocabulary = words(rng, 3000)
    baseline_rss = peak_rss_mb(server.pid)
    sockets: list[socket.socket] = []
    keep_alive = KeepAlive(sockets)
    started = time.perf_counter()
    try:
        for peer in range(args.peers):
            keep_alive.tick()
            # 32 connections per address is the server's limit: spread over 127.0.0.x.
            source = f"127.0.0.{2 + peer // 30}"
            sock = tls_connect(port, source_address=(source, 0))
            files = [
                {
                    "name": name,
                    "size": rng.randint(10**8, 2 * 10**10),
                    "hash": f"{rng.getrandbits(256):064x}",
                }
                for name in make_names(rng, vocabulary, args.files)
            ]
            sock.sendall(
                json.dumps({"op": "JOIN", "id": 1, "port": 6000 + peer, "files": files}).encode()
                + b"\n"
            )
            reply = read_line(sock, bytearray())
            assert reply["op"] == "JOIN_OK", reply
            sockets.append(sock)
        join_seconds = time.perf_counter() - started
        total = args.peers * args.files

        searcher = tls_connect(port, source_address=("127.0.0.250", 0))
        buffer = bytearray()
        searcher.sendall(b'{"op":"JOIN","id":1,"port":5999,"files":[]}\n')
        read_line(searcher, buffer)
        latencies = []
        hits = 0
        for index in range(args.searches):
            keep_alive.tick()
            kind = index % 3
            if kind == 0:
                query = rng.choice(vocabulary)
            elif kind == 1:
                query = f"{rng.choice(vocabulary)} {rng.choice(['1080p', 'mkv', 'S01'])}"
            else:
                query = rng.choice(vocabulary)[:4]
            t0 = time.perf_counter()
            searcher.sendall(
                json.dumps({"op": "SEARCH", "id": index, "query": query}).encode() + b"\n"
            )
            reply = read_line(searcher, buffer)
            latencies.append((time.perf_counter() - t0) * 1000)
            hits += len(reply["results"])
        latencies.sort()
        p50 = statistics.median(latencies)
        p99 = latencies[int(len(latencies) * 0.99) - 1]
        print(f"index size: {total:,} files from {args.peers:,} peers")
        print(f"JOIN: {total / join_seconds:,.0f} files/s ({join_seconds:.1f} s in all)")
        print(
            f"SEARCH over {args.searches:,} queries: p50 {p50:.2f} ms, p99 {p99:.2f} ms, "
            f"max {latencies[-1]:.1f} ms, avg results {hits / args.searches:.1f}"
        )
        print(
            f"server peak RSS: {peak_rss_mb(server.pid):.0f} MB (at start: {baseline_rss:.0f} MB)"
        )
        print("targets: SEARCH p99 <= 20 ms, RSS < 1024 MB")
    finally:
        for sock in sockets:
            sock.close()
        stop_server(server)


if __name__ == "__main__":
    main()
