"""Load benchmark for the index server (not run by CI).

One ``napster-server --headless`` process; 1,000 concurrent control connections, each a
peer that JOINed with a few files; 200 of them SEARCH as fast as they can (one request in
flight each, the next sent when the reply arrives) for 60 s. Meanwhile a well-behaved peer
on its own thread SEARCHes twice a second and must be answered within 200 ms.

Prints requests per second, p50/p99/max latency, errors (target: none), the well-behaved
peer's worst answer time and the server's peak RSS. The server allows 32 connections per
IP address, so clients are spread over 127.0.0.2-127.0.0.x source addresses.

    .venv/bin/python tests/bench/load_bench.py [--connections 1000] [--searchers 200]
        [--seconds 60] [--files 50]
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import selectors
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tests.bench.index_bench import (  # noqa: E402
    make_names,
    peak_rss_mb,
    read_line,
    start_server,
    stop_server,
    words,
)
from tests.wire_client import tls_connect  # noqa: E402

PER_ADDRESS = 25  # below the server's 32 connections per IP
PROBE_BUDGET_MS = 200.0
#: The first seconds of the flood, while the server learns who searches non-stop.
WARM_UP = 5.0
REPLY_DEADLINE = 10.0


class Peer:
    """One control connection driven by the shared selector loop."""

    def __init__(self, sock: socket.socket, searcher: bool) -> None:
        self.sock = sock
        self.searcher = searcher
        self.buffer = bytearray()
        self.sent_at: float | None = None
        self.next_id = 1


def connect_and_join(port: int, index: int, files: list[dict]) -> socket.socket:
    source = f"127.0.0.{2 + index // PER_ADDRESS}"
    sock = tls_connect(port, source_address=(source, 0))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    join = {"op": "JOIN", "id": 0, "port": 6000 + index, "files": files}
    sock.sendall(json.dumps(join).encode() + b"\n")
    reply = read_line(sock, bytearray())
    if reply.get("op") != "JOIN_OK":
        raise SystemExit(f"JOIN refused: {reply}")
    return sock


def probe(port: int, seconds: float, vocabulary: list[str]) -> None:
    """A well-behaved peer (its own process): one SEARCH every half second, each timed."""
    stop = threading.Event()
    threading.Timer(seconds, stop.set).start()
    times: list[tuple[float, float]] = []  # (time.time() when sent, milliseconds)
    sock = tls_connect(port, source_address=("127.0.0.254", 0))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.settimeout(REPLY_DEADLINE)
    buffer = bytearray()
    sock.sendall(b'{"op":"JOIN","id":0,"port":5999,"files":[]}\n')
    read_line(sock, buffer)
    print("joined", flush=True)  # the flood starts now: the first SEARCH lands in its first round
    rng = random.Random(99)
    request_id = 1
    while not stop.wait(0.5):
        query = rng.choice(vocabulary)
        started = time.perf_counter()
        sock.sendall(
            json.dumps({"op": "SEARCH", "id": request_id, "query": query}).encode() + b"\n"
        )
        reply = read_line(sock, buffer)
        took = (time.perf_counter() - started) * 1000
        if reply.get("op") != "SEARCH_OK" or reply.get("id") != request_id:
            took = float("inf")
        times.append((time.time() - took / 1000, took))
        request_id += 1
    sock.close()
    print(json.dumps(times), flush=True)


def start_probe(port: int, seconds: float) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, __file__, "--probe", str(port), "--seconds", str(seconds)],
        stdout=subprocess.PIPE,
        text=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--connections", type=int, default=1000)
    parser.add_argument("--searchers", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--files", type=int, default=50, help="files per peer")
    parser.add_argument("--probe", type=int, help=argparse.SUPPRESS)  # the probe's process
    args = parser.parse_args()
    vocabulary = words(random.Random(7), 2000)
    if args.probe:
        probe(args.probe, args.seconds, vocabulary)
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = min(hard, max(soft, args.connections * 2 + 200))
    resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))  # the server inherits it

    server, port, _log = start_server(Path(tempfile.mkdtemp()) / "load.sqlite3")
    rng = random.Random(7)
    words(rng, 2000)  # the same random sequence as the vocabulary above
    # A few hashes shared by many peers, so results list several holders.
    popular = [f"{rng.getrandbits(256):064x}" for _ in range(200)]
    peers: list[Peer] = []
    selector = selectors.DefaultSelector()
    try:
        started = time.perf_counter()
        for index in range(args.connections):
            files = [
                {
                    "name": name,
                    "size": rng.randint(10**8, 10**10),
                    "hash": rng.choice(popular)
                    if rng.random() < 0.2
                    else f"{rng.getrandbits(256):064x}",
                }
                for name in make_names(rng, vocabulary, args.files)
            ]
            sock = connect_and_join(port, index, files)
            sock.setblocking(False)
            peer = Peer(sock, searcher=index < args.searchers)
            peers.append(peer)
            selector.register(sock, selectors.EVENT_READ, peer)
        join_seconds = time.perf_counter() - started
        rss_after_join = peak_rss_mb(server.pid)
        print(
            f"{args.connections} peers joined with {args.connections * args.files:,} files "
            f"in {join_seconds:.1f} s; server RSS {rss_after_join:.0f} MB",
            flush=True,
        )

        prober = start_probe(port, args.seconds)
        assert prober.stdout.readline().strip() == "joined"

        latencies: list[float] = []
        errors: dict[str, int] = {}
        results = 0
        query_rng = random.Random(11)

        def send_search(peer: Peer) -> None:
            kind = peer.next_id % 3
            if kind == 0:
                query = query_rng.choice(vocabulary)
            elif kind == 1:
                query = f"{query_rng.choice(vocabulary)} {query_rng.choice(['1080p', 'mkv'])}"
            else:
                query = query_rng.choice(vocabulary)[:3]
            message = {"op": "SEARCH", "id": peer.next_id, "query": query}
            peer.sock.sendall(json.dumps(message).encode() + b"\n")
            peer.sent_at = time.perf_counter()

        begin = time.perf_counter()
        flood_started = time.time()
        end = begin + args.seconds
        last_ping = begin
        for peer in peers:
            if peer.searcher:
                send_search(peer)
        while True:
            now = time.perf_counter()
            if now >= end:
                break
            if now - last_ping > 20:  # idle peers keep their connection alive (90 s limit)
                last_ping = now
                for peer in peers:
                    if not peer.searcher:
                        peer.sock.sendall(b'{"op":"PING"}\n')
            for key, _ in selector.select(timeout=0.5):
                peer = key.data
                try:
                    chunk = peer.sock.recv(1 << 20)
                except (BlockingIOError, ssl.SSLWantReadError):
                    continue
                except OSError as exc:
                    errors[type(exc).__name__] = errors.get(type(exc).__name__, 0) + 1
                    selector.unregister(peer.sock)
                    continue
                if not chunk:
                    errors["closed by server"] = errors.get("closed by server", 0) + 1
                    selector.unregister(peer.sock)
                    continue
                peer.buffer += chunk
                while (end_of_line := peer.buffer.find(b"\n")) >= 0:
                    line = bytes(peer.buffer[:end_of_line])
                    del peer.buffer[: end_of_line + 1]
                    if line == b'{"op":"PONG"}':
                        continue
                    # Only the head is parsed: the client must not be what limits the rate.
                    expected = b'{"op":"SEARCH_OK","id":%d,"results":[' % peer.next_id
                    if not line.startswith(expected):
                        reply = json.loads(line)
                        key_name = f"{reply.get('op')} {reply.get('code', '')}".strip()
                        errors[key_name] = errors.get(key_name, 0) + 1
                    else:
                        results += line.count(b'"hash":')
                    latencies.append((time.perf_counter() - peer.sent_at) * 1000)
                    peer.next_id += 1
                    if time.perf_counter() < end:
                        send_search(peer)
            stalled = [
                p for p in peers if p.searcher and p.sent_at and now - p.sent_at > REPLY_DEADLINE
            ]
            if stalled:
                errors["no reply within 10 s"] = len(stalled)
                break
        elapsed = time.perf_counter() - begin
        probe_times = [  # (seconds into the flood, milliseconds)
            (sent - flood_started, ms)
            for sent, ms in json.loads(prober.communicate(timeout=30)[0].splitlines()[-1])
        ]

        latencies.sort()
        p50 = statistics.median(latencies)
        p99 = latencies[max(0, int(len(latencies) * 0.99) - 1)]
        steady = sorted(ms for at, ms in probe_times if at >= WARM_UP)
        slow_probes = sum(1 for ms in steady if ms > PROBE_BUDGET_MS)
        for at, ms in probe_times:
            if at >= WARM_UP and ms > PROBE_BUDGET_MS:
                print(f"  slow well-behaved SEARCH at {at:.1f} s: {ms:.0f} ms")
        print(
            f"load: {args.connections} connections, {args.searchers} searching as fast as they "
            f"can for {elapsed:.0f} s"
        )
        print(
            f"SEARCH: {len(latencies):,} answered, {len(latencies) / elapsed:,.0f} requests/s, "
            f"p50 {p50:.1f} ms, p99 {p99:.1f} ms, max {latencies[-1]:.1f} ms, "
            f"avg {results / max(1, len(latencies)):.1f} results"
        )
        print(f"errors: {sum(errors.values())} {errors if errors else ''}".rstrip())
        if steady:
            steady_p99 = steady[max(0, int(len(steady) * 0.99) - 1)]
            after = (
                f"p50 {statistics.median(steady):.1f} ms, p99 {steady_p99:.1f} ms, "
                f"max {steady[-1]:.1f} ms, {slow_probes} over {PROBE_BUDGET_MS:.0f} ms"
            )
        else:
            after = "none (a run shorter than that)"
        print(
            f"well-behaved peer: {len(steady)} SEARCHes after the first {WARM_UP:.0f} s: "
            f"{after}; in the first {WARM_UP:.0f} s, in order: "
            + ", ".join(f"{ms:.0f} ms at {at:.1f} s" for at, ms in probe_times if at < WARM_UP)
        )
        print(f"server peak RSS: {peak_rss_mb(server.pid):.0f} MB")
    finally:
        for peer in peers:
            peer.sock.close()
        stop_server(server)


if __name__ == "__main__":
    main()
