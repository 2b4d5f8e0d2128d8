"""Real programs for system tests: an index server, sharing peers, a downloading peer.

Each program is its own process with its own profile (HOME, XDG folders, data folder), run
the way a person runs it; the tests quit, kill -9 and start them again, and count the bytes
that crossed the wire at the sharer.
"""

from __future__ import annotations

import json
import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from app.download import layout
from tests.test_server_cli import ROOT, ServerProcess
from tests.waiting import wait_until
from tests.wire_client import tls_connect

PIECE = 4 * 1024 * 1024


class Program:
    """A napster-peer process with its own profile; output lines are collected.

    Every program a test starts is stopped when the test ends (``stop_programs``), whatever
    the test did: none outlives it.
    """

    running: list[Program] = []

    def __init__(
        self,
        profile: Path,
        *args: str,
        stdin: bool = False,
        wrap: Callable[[list[str]], list[str]] | None = None,
    ) -> None:
        """``wrap``: how to run the command elsewhere (a network namespace's host)."""
        profile.mkdir(parents=True, exist_ok=True)
        env = {
            **os.environ,
            "HOME": str(profile),
            "XDG_DATA_HOME": str(profile / "data"),
            "XDG_CONFIG_HOME": str(profile / "config"),
            "XDG_CACHE_HOME": str(profile / "cache"),
            "QT_QPA_PLATFORM": "offscreen",
            "PYTHONUNBUFFERED": "1",
        }
        self.args = args
        argv = [sys.executable, "-m", "app", *args]
        self.proc = subprocess.Popen(
            wrap(argv) if wrap else argv,
            cwd=ROOT,
            stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        Program.running.append(self)
        self.out: queue.Queue[str] = queue.Queue()
        self.stdout: list[str] = []
        self.stderr: list[str] = []
        self._readers = [
            threading.Thread(target=self._read, args=(self.proc.stdout, self.stdout), daemon=True),
            threading.Thread(target=self._read, args=(self.proc.stderr, self.stderr), daemon=True),
        ]
        for reader in self._readers:
            reader.start()

    def _read(self, stream, lines: list[str]) -> None:
        for line in stream:
            lines.append(line.rstrip("\n"))
            if lines is self.stdout:
                self.out.put(line.rstrip("\n"))

    def expect(self, text: str, timeout: float = 30.0) -> str:
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or (self.proc.poll() is not None and self.out.empty()):
                raise AssertionError(
                    f"no line with {text!r}; stdout:\n"
                    + "\n".join(self.stdout)
                    + "\nstderr:\n"
                    + "\n".join(self.stderr[-30:])
                )
            try:
                line = self.out.get(timeout=min(remaining, 0.2))
            except queue.Empty:
                continue
            if text in line:
                return line

    def type(self, line: str) -> None:
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def finish(self, timeout: float = 60.0) -> int:
        code = self.proc.wait(timeout=timeout)
        for reader in self._readers:
            reader.join(5)
        return code

    def terminate(self, timeout: float = 30.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.finish(timeout)

    def kill(self) -> int:
        self.proc.kill()
        return self.finish(10)

    def qt_warnings(self) -> list[str]:
        """Lines on stderr that come from Qt or from a crash, not from our logging."""
        patterns = ("QThread", "QObject", "QSocketNotifier", "Traceback", "Fatal Python", "qt.")
        return [line for line in self.stderr if any(p in line for p in patterns)]


class Sharer(Program):
    """A headless sharing peer; ``uploaded()`` is what it sent, read when it quits."""

    def __init__(self, profile: Path, server_port: int, share: Path, rate: str | None = None):
        args = [
            "--headless",
            "--server",
            f"127.0.0.1:{server_port}",
            "--share",
            str(share),
            "--downloads",
            str(profile / "downloads"),
            "--port",
            "0",
            "--data-dir",
            str(profile / "state"),
        ]
        if rate:
            args += ["--max-upload-rate", rate]
        super().__init__(profile, *args)
        self.expect("joined as", 60)
        self._uploaded: int | None = None
        for name in [path.name for path in share.iterdir() if path.is_file()]:
            wait_until(lambda n=name: n in search_index(server_port, n), 600, f"{name} indexed")

    def uploaded(self) -> int:
        """Quit (SIGTERM) and return the file bytes it sent in its whole run."""
        if self._uploaded is None:
            assert self.terminate() == 0, self.stderr[-20:]
            line = next(x for x in self.stdout if "uploaded" in x and "this session" in x)
            self._uploaded = int(re.search(r"uploaded (\d+) bytes", line).group(1))
        return self._uploaded


def get_args(server_port: int, query: str, downloads: Path, data: Path, *extra: str) -> list:
    return [
        "--get",
        query,
        "--server",
        f"127.0.0.1:{server_port}",
        "--downloads",
        str(downloads),
        "--data-dir",
        str(data),
        *extra,
    ]


def verified_pieces(downloads: Path, file_hash: str, size: int) -> int:
    """How many pieces the saved piece state of that download marks verified (0 if none)."""
    state = layout.state_path_for(layout.part_path(downloads, file_hash, size))
    try:
        return len(json.loads(state.read_text())["verified"])
    except (OSError, ValueError, KeyError):
        return 0


def join_line(sock: socket.socket) -> bytes:
    """A JOIN sharing nothing; its port is the connection's own (a port two peers of one
    address both claim is refused)."""
    return (
        json.dumps({"op": "JOIN", "id": 1, "port": sock.getsockname()[1], "files": []}).encode()
        + b"\n"
    )


def search_index(port: int, query: str) -> list[str]:
    """The names a SEARCH finds, asked over a plain socket by a peer that shares nothing."""
    with tls_connect(port) as sock:
        reader = sock.makefile("rb")
        sock.sendall(join_line(sock))
        reader.readline()
        message = {"op": "SEARCH", "id": 2, "query": query[:256], "limit": 500}
        sock.sendall(json.dumps(message).encode() + b"\n")
        return [result["name"] for result in json.loads(reader.readline()).get("results", [])]


def holders(port: int, name: str) -> int:
    """How many peers the index lists for the file called exactly ``name``."""
    with tls_connect(port) as sock:
        reader = sock.makefile("rb")
        sock.sendall(join_line(sock))
        reader.readline()
        message = {"op": "SEARCH", "id": 2, "query": name[:256], "limit": 500}
        sock.sendall(json.dumps(message).encode() + b"\n")
        results = json.loads(reader.readline()).get("results", [])
    return max((len(r["peers"]) for r in results if r["name"] == name), default=0)


def wait_for_holders(port: int, name: str, count: int, timeout: float = 600) -> None:
    """Until ``count`` peers have announced ``name`` (each hashes it first)."""
    wait_until(lambda: holders(port, name) >= count, timeout, f"{count} holders of {name}")


class IndexWatcher:
    """A plain-socket client that keeps searching the index for names that must never be
    there (unfinished data), for as long as the test runs."""

    FORBIDDEN = re.compile(r"\.part|\.napster-|\.napster-incomplete", re.IGNORECASE)

    def __init__(self, port: int, queries: tuple[str, ...] = ("part", "napster")) -> None:
        self.port = port
        self.queries = queries
        self.seen: list[str] = []
        self.searches = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        with tls_connect(self.port) as sock:
            reader = sock.makefile("rb")
            sock.sendall(join_line(sock))
            reader.readline()
            request = 2
            while not self._stop.wait(0.1):
                for query in self.queries:
                    message = {"op": "SEARCH", "id": request, "query": query, "limit": 500}
                    sock.sendall(json.dumps(message).encode() + b"\n")
                    reply = json.loads(reader.readline())
                    request += 1
                    for result in reply.get("results", []):
                        if self.FORBIDDEN.search(result["name"]):
                            self.seen.append(result["name"])
                self.searches += 1

    def stop(self) -> list[str]:
        self._stop.set()
        self._thread.join(10)
        return self.seen


@pytest.fixture(autouse=True)
def stop_programs():
    """Stop every program the test started (SIGTERM, then SIGKILL)."""
    yield
    for program in Program.running:
        if program.proc.poll() is None:
            program.proc.terminate()
    for program in Program.running:
        try:
            program.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            program.proc.kill()
            program.proc.wait(timeout=10)
    Program.running.clear()


@pytest.fixture
def index_server(tmp_path):
    process = ServerProcess("--host", "127.0.0.1", "--port", "0", "--db", str(tmp_path / "i.db"))
    assert process.ready.wait(30) and process.port, process.lines
    yield process
    process.stop()


@pytest.fixture
def watcher(index_server):
    watch = IndexWatcher(index_server.port)
    yield watch
    assert watch.stop() == [], "unfinished data was announced to the index"
    assert watch.searches > 0
