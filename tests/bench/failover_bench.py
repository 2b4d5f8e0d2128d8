"""Failover bench (not run by CI): how long a peer stays on a frozen index server.

Two ``napster-server --headless`` processes (each its own SQLite index) on 127.0.0.1; one of
them is frozen with SIGSTOP (a hung process, or a host that stops answering while the TCP
connection stays up) and each case times how long until the peer is JOINed at the other:

- ``idle``: a ``napster-peer --headless`` process given both servers, doing nothing;
- ``pending``: an ``IndexClient`` in this process sends a SEARCH as the server freezes;
  also how long until that search ends (it fails: its server never answers);
- ``big-join``: no freeze: a PING sent right after a JOIN of ``--files`` files (JOIN plus
  UPDATE batches, pipelined) on one server, and the longest silence between its replies
  (what a deadline must allow a slow but live server);
- ``crowd``: no freeze: ``--crowd`` connections JOIN ``--crowd-files`` files each at once (as
  peers do when their server died), asking for heartbeats: per connection, when its first
  line came, the longest wait between two replies, and between two lines of any kind.

    .venv/bin/python tests/bench/failover_bench.py                  # every case, 3 runs each
    .venv/bin/python tests/bench/failover_bench.py --cases idle --runs 5
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import re
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from PySide6.QtCore import QCoreApplication, QEventLoop  # noqa: E402

from app.network import protocol as p  # noqa: E402
from app.network.index_client import IndexClient  # noqa: E402
from tests.system.conftest import Program  # noqa: E402
from tests.test_server_cli import ServerProcess  # noqa: E402
from tests.wire_client import tls_connect  # noqa: E402

#: Longer than any failover this bench expects (the old code's idle case: up to 50 s).
GIVE_UP = 90.0


def start_servers(folder: Path) -> list[ServerProcess]:
    servers = [
        ServerProcess("--host", "127.0.0.1", "--port", "0", "--db", str(folder / f"{name}.db"))
        for name in ("a", "b")
    ]
    for server in servers:
        if not (server.ready.wait(30) and server.port):
            raise SystemExit("an index server did not start")
    return servers


def stop_servers(servers: list[ServerProcess]) -> None:
    for server in servers:
        if server.proc.poll() is None:
            server.proc.send_signal(signal.SIGCONT)
        server.stop()


def by_port(servers: list[ServerProcess], address: str) -> ServerProcess:
    port = int(address.rsplit(":", 1)[1])
    return next(server for server in servers if server.port == port)


def idle_run(folder: Path) -> float:
    """Seconds from SIGSTOP of the peer's server to its JOIN at the other."""
    servers = start_servers(folder)
    share = folder / "share"
    share.mkdir()
    (share / "video.mkv").write_bytes(b"x" * 1000)
    peer = Program(
        folder / "peer",
        "--headless",
        *(arg for server in servers for arg in ("--server", f"127.0.0.1:{server.port}")),
        "--share",
        str(share),
        "--downloads",
        str(folder / "downloads"),
        "--port",
        "0",
        "--data-dir",
        str(folder / "state"),
    )
    try:
        line = peer.expect("joined as", 60)
        frozen = by_port(servers, re.search(r"index server (\S+)\)", line).group(1))
        frozen.proc.send_signal(signal.SIGSTOP)
        started = time.monotonic()
        other = next(server for server in servers if server is not frozen)
        peer.expect(f"(index server 127.0.0.1:{other.port})", GIVE_UP)
        return time.monotonic() - started
    finally:
        peer.terminate()
        stop_servers(servers)


def run_loop_until(condition: Callable[[], object], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        QCoreApplication.processEvents(QEventLoop.ProcessEventsFlag.AllEvents, 50)
    return True


def pending_run(folder: Path) -> tuple[float, float, str]:
    """Seconds from SIGSTOP (and a SEARCH sent with it) to the search's end and to the
    client's JOIN at the other server, and how the search ended ("answered": asked again
    of the other server, or "failed")."""
    servers = start_servers(folder)
    files = [p.FileInfo("video.mkv", 1000, "ab" * 32)]
    client = IndexClient([("127.0.0.1", server.port) for server in servers], 6001, lambda: files)
    joined: list[str] = []
    ended: list[float] = []
    how: list[str] = []
    client.joined.connect(lambda *_: joined.append(client.server_address))
    client.search_failed.connect(lambda *_: (ended.append(time.monotonic()), how.append("failed")))
    client.search_finished.connect(
        lambda *_: (ended.append(time.monotonic()), how.append("answered"))
    )
    try:
        client.start()
        if not run_loop_until(lambda: joined, 30):
            raise SystemExit("the client did not join")
        frozen = by_port(servers, joined[0])
        frozen.proc.send_signal(signal.SIGSTOP)
        started = time.monotonic()
        client.search("video")
        if not run_loop_until(lambda: len(joined) > 1 and ended, GIVE_UP):
            raise SystemExit("the client did not move to the other server")
        return ended[0] - started, time.monotonic() - started, how[0]
    finally:
        client.stop_and_wait(1000)
        stop_servers(servers)


def join_lines(count: int, port: int, heartbeat: bool = False) -> list[dict]:
    """A JOIN of ``count`` files as a peer sends it (JOIN, then UPDATE batches), and a PING."""
    files = [
        {
            "name": f"video {port} {number} 1080p.mkv",
            "size": 1_000_000 + number,
            "hash": hashlib.sha256(f"{port} {number}".encode()).hexdigest(),
        }
        for number in range(count)
    ]
    batch = p.MAX_FILES_PER_MESSAGE
    join = {"op": "JOIN", "id": 1, "port": port, "files": files[:batch]}
    lines = [{**join, "heartbeat": True} if heartbeat else join]
    for start in range(batch, count, batch):
        lines.append({"op": "UPDATE", "id": len(lines) + 1, "add": files[start : start + batch]})
    lines.append({"op": "PING", "id": len(lines) + 1})
    return lines


def start_one_server(folder: Path) -> ServerProcess:
    server = ServerProcess("--host", "127.0.0.1", "--port", "0", "--db", str(folder / "i.db"))
    if not (server.ready.wait(30) and server.port):
        raise SystemExit("the index server did not start")
    return server


def big_join_run(folder: Path, count: int) -> tuple[float, float, float]:
    """A PING pipelined right after a JOIN of ``count`` files: seconds to its PONG, to the
    first reply, and the longest silence between two replies."""
    server = start_one_server(folder)
    lines = join_lines(count, 7001)
    data = b"".join(json.dumps(line).encode() + b"\n" for line in lines)
    arrivals: list[float] = []
    try:
        with tls_connect(server.port, timeout=GIVE_UP) as sock:
            started = time.monotonic()
            sender = threading.Thread(target=sock.sendall, args=(data,))
            sender.start()
            reader = sock.makefile("rb")
            while len(arrivals) < len(lines):
                line = reader.readline()
                if not line:
                    raise SystemExit("the server closed:\n" + "\n".join(server.lines[-10:]))
                reply = json.loads(line)
                if reply.get("id") is not None:  # not a server's unasked message
                    arrivals.append(time.monotonic())
            sender.join()
    finally:
        server.stop()
    times = [started, *arrivals]
    gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
    return arrivals[-1] - started, arrivals[0] - started, max(gaps)


def crowd_run(folder: Path, peers: int, count: int) -> list[tuple[float, float, float]]:
    """``peers`` connections JOIN ``count`` files each at once, asking for heartbeats; for
    each, seconds to its first line, the longest gap between two replies and between two
    lines of any kind after the first."""
    server = start_one_server(folder)
    payloads = [
        b"".join(json.dumps(line).encode() + b"\n" for line in join_lines(count, 7001 + k, True))
        for k in range(peers)
    ]
    results: list[tuple[float, float, float]] = []
    gate = threading.Barrier(peers)

    def peer(data: bytes) -> None:
        with tls_connect(server.port, timeout=GIVE_UP) as sock:
            gate.wait()
            started = time.monotonic()
            sender = threading.Thread(target=sock.sendall, args=(data,))
            sender.start()
            reader = sock.makefile("rb")
            lines: list[float] = []
            replies: list[float] = [started]
            expected = data.count(b"\n")
            while len(replies) <= expected:
                line = reader.readline()
                if not line:
                    raise SystemExit("the server closed:\n" + "\n".join(server.lines[-10:]))
                lines.append(time.monotonic())
                if json.loads(line).get("id") is not None:
                    replies.append(lines[-1])
            sender.join()
        reply_gap = max(b - a for a, b in itertools.pairwise(replies))
        line_gap = max((b - a for a, b in itertools.pairwise(lines)), default=0.0)
        results.append((lines[0] - started, reply_gap, line_gap))

    try:
        threads = [threading.Thread(target=peer, args=(data,)) for data in payloads]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        server.stop()
    return results


def spread(values: list[float]) -> str:
    return f"{min(values):.1f}-{max(values):.1f} s (runs: {', '.join(f'{v:.1f}' for v in values)})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", default="idle,pending,big-join,crowd")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--files", type=int, default=200_000, help="files in the big JOIN")
    parser.add_argument("--crowd", type=int, default=30, help="peers JOINing at once")
    parser.add_argument("--crowd-files", type=int, default=30_000, help="files each")
    args = parser.parse_args()
    QCoreApplication.instance() or QCoreApplication(sys.argv[:1])
    cases = args.cases.split(",")
    if "idle" in cases:
        runs = []
        for _ in range(args.runs):
            with tempfile.TemporaryDirectory() as tmp:
                runs.append(idle_run(Path(tmp)))
        print(f"idle peer process: JOINed at the other server {spread(runs)}", flush=True)
    if "pending" in cases:
        ends, moves, hows = [], [], set()
        for _ in range(args.runs):
            with tempfile.TemporaryDirectory() as tmp:
                end, moved, how = pending_run(Path(tmp))
            ends.append(end)
            moves.append(moved)
            hows.add(how)
        print(f"pending SEARCH: {'/'.join(sorted(hows))} after {spread(ends)}", flush=True)
        print(f"pending SEARCH: JOINed at the other server {spread(moves)}", flush=True)
    if "big-join" in cases:
        with tempfile.TemporaryDirectory() as tmp:
            pong, first, silence = big_join_run(Path(tmp), args.files)
        print(
            f"{args.files:,} files JOINed, then PING: PONG after {pong:.2f} s, first reply after"
            f" {first:.2f} s, longest silence between replies {silence:.2f} s",
            flush=True,
        )
    if "crowd" in cases:
        with tempfile.TemporaryDirectory() as tmp:
            results = crowd_run(Path(tmp), args.crowd, args.crowd_files)
        first, replies, lines = zip(*results, strict=True)
        print(
            f"{args.crowd} peers JOINing {args.crowd_files:,} files each at once: first line after"
            f" {min(first):.2f}-{max(first):.2f} s; longest wait for a reply"
            f" {min(replies):.2f}-{max(replies):.2f} s; longest wait for any line after the first"
            f" {min(lines):.2f}-{max(lines):.2f} s",
            flush=True,
        )


if __name__ == "__main__":
    main()
