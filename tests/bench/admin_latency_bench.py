"""How late the admin window's event loop runs while 10,000 peers join and leave.

Not run by CI. Usage (from the project folder):

    .venv/bin/python tests/bench/admin_latency_bench.py [--peers 10000] [--files-per-peer 10]

The window (offscreen unless QT_QPA_PLATFORM says otherwise) runs a real IndexServer
on 127.0.0.1. A child process opens the peer connections over real sockets from
127.0.0.2 upwards and sends JOINs (with some SEARCHes, and some peers leaving again,
by LEAVE or by dropping the connection); at the end it drops every connection at once.
A 10 ms QTimer probe measures how late the event loop runs: first idle (the baseline),
then while peers join, then while they all disconnect. Also reported: the longest time
spent in the window's own slots, to tell the window's share from the server's.
"""

from __future__ import annotations

import argparse
import functools
import gc
import json
import logging
import os
import random
import resource
import selectors
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from app.network import tls  # noqa: E402

PROBE_MS = 10
SOURCES = 40  # client addresses 127.0.0.2 ... 127.0.0.41


def raise_fd_limit() -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


# ---------------------------------------------------------------------------- the peers


def join_line(index: int, files: int, rng: random.Random) -> bytes:
    entries = [
        {
            "name": f"peer {index:05d} lecture {n:03d} - a rather long title for a video.mp4",
            "size": rng.randrange(1, 20_000_000_000),
            "hash": f"{index * files + n + 1:064x}",
        }
        for n in range(files)
    ]
    message = {"op": "JOIN", "id": 1, "port": 6000 + index % 50000, "files": entries}
    message["agent"] = "bench-peer/1.0"
    return json.dumps(message).encode() + b"\n"


def run_peers(args: argparse.Namespace) -> None:
    """The child process: join ``--peers`` peers, with churn, then wait for stdin to close."""
    raise_fd_limit()
    rng = random.Random(7)
    selector = selectors.DefaultSelector()
    joined: list[socket.socket] = []
    started = 0
    leaves = 0
    in_flight = 0
    begin = time.perf_counter()
    while len(joined) + leaves < args.peers:
        allowed = args.peers if not args.rate else int((time.perf_counter() - begin) * args.rate)
        while in_flight < args.in_flight and started < min(args.peers, allowed + 1):
            sock = socket.socket()
            sock.bind((f"127.0.0.{2 + started % SOURCES}", 0))
            sock.setblocking(False)
            sock.connect_ex(("127.0.0.1", args.port))
            selector.register(sock, selectors.EVENT_WRITE, [started, b""])
            started += 1
            in_flight += 1
        for key, events in selector.select(timeout=0.01 if args.rate else 5):
            sock = key.fileobj
            state = key.data
            if events & selectors.EVENT_WRITE:
                selector.unregister(sock)
                sock.setblocking(True)
                sock = tls.shared_client_context().wrap_socket(sock)  # protocol version 2
                sock.sendall(join_line(state[0], args.files_per_peer, rng))
                sock.setblocking(False)
                selector.register(sock, selectors.EVENT_READ, state)
                continue
            try:
                chunk = sock.recv(65536)
            except ssl.SSLWantReadError:
                continue
            if not chunk:
                raise SystemExit(f"peer {state[0]} was disconnected before JOIN_OK")
            state[1] += chunk
            if b"\n" not in state[1]:
                continue
            reply = json.loads(state[1].split(b"\n", 1)[0])
            if reply.get("op") != "JOIN_OK":
                raise SystemExit(f"peer {state[0]} got {reply}")
            selector.unregister(sock)
            in_flight -= 1
            joined.append(sock)
            if rng.random() < args.search_share:
                # A narrow query (one peer's titles): a term in every name costs the
                # store a scan of the whole index, which is the store's benchmark's business.
                query = f"{rng.randrange(started):05d}"
                search = {"op": "SEARCH", "id": 2, "query": query, "limit": 20}
                sock.sendall(json.dumps(search).encode() + b"\n")
            if rng.random() < args.churn and len(joined) > 10:
                leaver = joined.pop(rng.randrange(len(joined)))
                if leaves % 2:
                    leaver.sendall(b'{"op":"LEAVE","id":3}\n')
                leaver.close()
                leaves += 1
    took = time.perf_counter() - begin
    print(json.dumps({"online": len(joined), "left": leaves, "seconds": took}), flush=True)
    sys.stdin.read()  # the parent closes our stdin: drop every connection at once
    for sock in joined:
        sock.close()


# ---------------------------------------------------------------------------- the window


class Probe:
    """Records how late a precise 10 ms timer fires, per named phase."""

    def __init__(self) -> None:
        from PySide6.QtCore import Qt, QTimer

        self.phase = "idle"
        self.lateness: dict[str, list[float]] = {}
        self._last = time.perf_counter()
        self.timer = QTimer(interval=PROBE_MS)
        self.timer.setTimerType(Qt.TimerType.PreciseTimer)
        self.timer.timeout.connect(self._tick)

    def start(self) -> None:
        self._last = time.perf_counter()
        self.timer.start()

    def _tick(self) -> None:
        now = time.perf_counter()
        late = max(0.0, (now - self._last) * 1000 - PROBE_MS)
        self._last = now
        self.lateness.setdefault(self.phase, []).append(late)


slot_times: dict[str, float] = {}


def timed(name: str, method: Callable) -> Callable:
    """Wrap a window method to record the longest call (it must be patched before use)."""

    @functools.wraps(method)
    def wrapper(*args, **kwargs):
        start = time.perf_counter()
        try:
            return method(*args, **kwargs)
        finally:
            took = (time.perf_counter() - start) * 1000
            slot_times[name] = max(slot_times.get(name, 0.0), took)

    return wrapper


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * share))] if ordered else 0.0


def run_window(args: argparse.Namespace) -> int:
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    sys.path.insert(0, str(ROOT))
    from server_app.__main__ import keep_full_collections_short, prefer_plain_event_loop

    prefer_plain_event_loop()  # as napster-server does
    keep_full_collections_short()
    fd_limit = raise_fd_limit()
    from PySide6.QtCore import QEventLoop, QTimer
    from PySide6.QtWidgets import QApplication

    from server_app.index_server import IndexServer, ServerLimits
    from server_app.index_store import SqliteIndexStore
    from server_app.ui import admin_window, log_pane, peer_feed

    app = QApplication.instance() or QApplication([])
    feed_cls, window_cls, pane_cls = peer_feed.PeerFeed, admin_window.AdminWindow, log_pane.LogPane
    feed_cls.apply = timed("peer table batch", feed_cls.apply)
    window_cls.refresh_counters = timed("counters", window_cls.refresh_counters)
    window_cls._refresh_visible_peers = timed("last seen", window_cls._refresh_visible_peers)
    pane_cls.drain = timed("log batch", pane_cls.drain)

    store = SqliteIndexStore(":memory:")
    limits = ServerLimits(
        max_connections_per_ip=args.peers * 2, join_timeout=600, idle_timeout=3600
    )
    server = IndexServer(store, limits)
    if args.without_window:  # the same server as --headless would run it, for comparison
        window = None
        logger = logging.getLogger("napster")
        logger.setLevel(logging.INFO)
        logger.addHandler(logging.StreamHandler(open(os.devnull, "w")))  # noqa: SIM115
        server.start("127.0.0.1", 0)

        def shown() -> int:
            return store.counters().peers
    else:
        window = window_cls(server, database=":memory:")
        window.show()
        assert window.start_listening("127.0.0.1", 0)

        def shown() -> int:
            return -1 if window.peer_feed.pending() else window.peer_model.rowCount()

    port = server.serverPort()
    probe = Probe()
    probe.start()
    gc_pauses: dict[int, float] = {}
    gc_started = [0.0]

    def time_gc(phase: str, info: dict) -> None:
        if phase == "start":
            gc_started[0] = time.perf_counter()
        else:
            took = (time.perf_counter() - gc_started[0]) * 1000
            gc_pauses[info["generation"]] = max(gc_pauses.get(info["generation"], 0.0), took)

    gc.callbacks.append(time_gc)

    def wait(seconds: float = 0.0, until: Callable[[], bool] | None = None) -> None:
        deadline = time.perf_counter() + (seconds if until is None else 600)
        while time.perf_counter() < deadline and not (until and until()):
            loop = QEventLoop()
            QTimer.singleShot(50, loop.quit)
            loop.exec()

    what = "server alone (no window)" if window is None else "admin window"
    print(f"{what}; {args.peers} peers x {args.files_per_peer} files; fd limit {fd_limit}")
    wait(args.idle)
    probe.phase = "join"
    child = subprocess.Popen(
        [
            sys.executable,
            __file__,
            "--peers-process",
            "--port",
            str(port),
            *("--peers", str(args.peers), "--files-per-peer", str(args.files_per_peer)),
            *("--churn", str(args.churn), "--in-flight", str(args.in_flight)),
            *("--search-share", str(args.search_share), "--rate", str(args.rate)),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    os.set_blocking(child.stdout.fileno(), False)
    lines: list[str] = []

    def summary() -> dict | None:
        try:
            text = os.read(child.stdout.fileno(), 65536).decode()
        except BlockingIOError:
            text = ""
        lines.extend(line for line in text.splitlines() if line)
        if child.poll() not in (None, 0):
            raise SystemExit(f"the peers process failed: {lines}")
        return next((json.loads(line) for line in lines if line.startswith("{")), None)

    join_started = time.perf_counter()
    wait(until=lambda: summary() is not None)
    result = summary()
    assert result is not None
    online = result["online"]
    wait(until=lambda: shown() == online)
    shown_after = time.perf_counter() - join_started
    counters = store.counters()
    tracked = len(gc.get_objects())
    wait(1.0)

    probe.phase = "disconnect"
    leave_started = time.perf_counter()
    child.stdin.close()
    wait(until=lambda: shown() == 0)
    gone_after = time.perf_counter() - leave_started
    child.wait(30)
    wait(0.5)
    probe.timer.stop()

    print(
        f"joins: {args.peers} sent in {result['seconds']:.1f} s, {result['left']} left again; "
        f"table showed all {online} online peers ({counters.files:,} files) "
        f"{shown_after:.1f} s after the first connection"
    )
    print(f"disconnect: all {online} rows gone {gone_after:.1f} s after the peers dropped")
    print(f"event-loop lateness of a {PROBE_MS} ms timer (ms):")
    print(f"  {'phase':<12}{'ticks':>7}{'p50':>8}{'p99':>8}{'max':>8}")
    for phase in ("idle", "join", "disconnect"):
        values = probe.lateness.get(phase, [])
        print(
            f"  {phase:<12}{len(values):>7}{percentile(values, 0.5):>8.1f}"
            f"{percentile(values, 0.99):>8.1f}{max(values, default=0):>8.1f}"
        )
    print(
        f"{tracked:,} objects tracked by the garbage collector with every peer online; "
        "longest garbage collection (ms): "
        + ", ".join(f"generation {g}: {ms:.1f}" for g, ms in sorted(gc_pauses.items()))
    )
    print("longest single call in the window's own code (ms):")
    for name, took in sorted(slot_times.items()):
        print(f"  {name:<18}{took:>8.1f}")
    if window is not None:
        window.shutdown()
    server.stop()
    store.close()
    app.processEvents()
    worst = max(max(probe.lateness.get(p, [0])) for p in ("join", "disconnect"))
    return 0 if worst < 100 else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--peers", type=int, default=10_000)
    parser.add_argument("--files-per-peer", type=int, default=10)
    parser.add_argument(
        "--churn", type=float, default=0.2, help="share of joins followed by a leave"
    )
    parser.add_argument("--search-share", type=float, default=0.1)
    parser.add_argument(
        "--rate", type=float, default=0, help="JOINs started per second (0: as fast as possible)"
    )
    parser.add_argument("--in-flight", type=int, default=64, help="JOINs awaiting their reply")
    parser.add_argument("--idle", type=float, default=3.0, help="seconds of idle baseline")
    parser.add_argument(
        "--without-window", action="store_true", help="run the server alone, for comparison"
    )
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--peers-process", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.peers_process:
        run_peers(args)
        return 0
    return run_window(args)


if __name__ == "__main__":
    sys.exit(main())
