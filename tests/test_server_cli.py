"""``napster-server --headless`` as a real process: starts, answers, stops cleanly."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.wire_client import tls_connect

ROOT = Path(__file__).resolve().parents[1]


class ServerProcess:
    def __init__(self, *args: str, env: dict | None = None, wrap=None, stdin: bool = False) -> None:
        """``wrap``: how to run the command elsewhere (a network namespace's host);
        ``stdin``: give it a pipe to write to (``self.proc.stdin``)."""
        argv = [sys.executable, "-m", "server_app", "--headless", *args]
        self.proc = subprocess.Popen(
            wrap(argv) if wrap else argv,
            cwd=ROOT,
            stdin=subprocess.PIPE if stdin else None,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, **(env or {})},
        )
        self.lines: list[str] = []
        self.port: int | None = None
        self.ready = threading.Event()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))
            if line.startswith("napster-server listening on"):
                self.port = int(line.rsplit(":", 1)[1])
                self.ready.set()
        self.ready.set()

    def stop(self, signum: int = signal.SIGTERM) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signum)
        code = self.proc.wait(timeout=15)
        self.reader.join(5)
        return code


def exchange(port: int, *messages: dict) -> list[dict]:
    with tls_connect(port) as sock:
        replies = []
        buffer = b""
        for message in messages:
            sock.sendall(json.dumps(message).encode() + b"\n")
            while b"\n" not in buffer:
                buffer += sock.recv(65536)
            line, buffer = buffer.split(b"\n", 1)
            replies.append(json.loads(line))
        return replies


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_headless_server_answers_and_stops_cleanly(tmp_path, signum):
    server = ServerProcess("--host", "127.0.0.1", "--port", "0", "--db", str(tmp_path / "i.db"))
    try:
        assert server.ready.wait(20) and server.port, server.proc.stderr.read()
        join, pong = exchange(
            server.port,
            {
                "op": "JOIN",
                "id": 1,
                "port": 8776,
                "files": [{"name": "aula1.mp4", "size": 1, "hash": "a" * 64}],
            },
            {"op": "PING", "id": 2},
        )
        assert join == {"op": "JOIN_OK", "id": 1, "peer": "127.0.0.1:8776", "files": 1}
        assert pong == {"op": "PONG", "id": 2}
    finally:
        code = server.stop(signum)
    assert code == 0
    assert any("Peer 127.0.0.1:8776 joined with files aula1.mp4" in line for line in server.lines)
    assert any("Shutting down" in line for line in server.lines)


def test_port_in_use_is_explained_in_one_line(tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "server_app",
                "--headless",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--db",
                str(tmp_path / "i.db"),
            ],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=30,
        )
    assert result.returncode != 0
    errors = result.stderr.strip().splitlines()
    assert len(errors) == 1 and "already in use" in errors[0] and str(port) in errors[0]


def test_default_database_lives_in_the_user_data_folder(tmp_path):
    home = tmp_path / "home"
    env = {"HOME": str(home), "XDG_DATA_HOME": str(home / "data")}
    server = ServerProcess("--host", "127.0.0.1", "--port", "0", env=env)
    try:
        assert server.ready.wait(20)
    finally:
        server.stop()
    assert list((home / "data").rglob("index.sqlite3"))


def test_after_a_restart_no_peer_is_online_until_it_joins(tmp_path):
    db = str(tmp_path / "i.db")
    first = ServerProcess("--host", "127.0.0.1", "--port", "0", "--db", db)
    try:
        assert first.ready.wait(20)
        with tls_connect(first.port) as sock:
            sock.sendall(
                b'{"op":"JOIN","id":1,"port":8776,"files":[{"name":"x.mp4","size":1,"hash":"'
                + b"b" * 64
                + b'"}]}\n'
            )
            sock.recv(1000)
            first.proc.kill()  # a crash: the peer never left
            first.proc.wait(10)
    finally:
        first.stop()
    second = ServerProcess("--host", "127.0.0.1", "--port", "0", "--db", db)
    try:
        assert second.ready.wait(20)
        _, found = exchange(
            second.port,
            {"op": "JOIN", "id": 1, "port": 9000, "files": []},
            {"op": "SEARCH", "id": 2, "query": "x.mp4"},
        )
        assert found["results"] == []
    finally:
        second.stop()


def test_full_collections_only_look_at_what_is_new_since_the_last_one():
    import gc

    from server_app import __main__ as server_main

    kept = [[n] for n in range(1000)]  # long-lived state
    try:
        server_main.keep_full_collections_short()
        server_main.keep_full_collections_short()  # installing twice is harmless
        assert gc.callbacks.count(server_main._freeze_survivors) == 1
        gc.collect()
        assert gc.get_freeze_count() >= len(kept)
        gc.collect(1)  # a younger generation's collection freezes nothing new
        frozen = gc.get_freeze_count()
        gc.collect(1)
        assert gc.get_freeze_count() == frozen
    finally:
        gc.callbacks.remove(server_main._freeze_survivors)
        gc.unfreeze()


def test_the_server_prefers_qts_own_event_loop(monkeypatch):
    from server_app import __main__ as server_main

    monkeypatch.setenv("QT_NO_GLIB", "")  # so monkeypatch puts the original back
    monkeypatch.delenv("QT_NO_GLIB")
    server_main.prefer_plain_event_loop()
    assert os.environ["QT_NO_GLIB"] == "1"


def test_the_admin_window_quits_on_sigterm_even_with_peers_online(tmp_path):
    """The window asks before disconnecting peers when a person closes it; a signal (the
    service manager, Ctrl+C) has already decided and must not leave the server running."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "HOME": str(tmp_path)}
    argv = [sys.executable, "-m", "server_app", "--host", "127.0.0.1", "--port", str(port)]
    argv += ["--db", str(tmp_path / "i.db"), "--identity-dir", str(tmp_path / "id")]
    window = subprocess.Popen(argv, cwd=ROOT, env=env, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                peer = tls_connect(port)
                break
            except OSError:
                assert time.monotonic() < deadline, "the admin window never listened"
                assert window.poll() is None, window.stderr.read()
                threading.Event().wait(0.1)
        with peer:
            peer.sendall(b'{"op":"JOIN","id":1,"port":7001,"files":[]}\n')
            assert json.loads(peer.makefile("rb").readline())["op"] == "JOIN_OK"
            window.send_signal(signal.SIGTERM)
            assert window.wait(timeout=20) == 0
    finally:
        if window.poll() is None:
            window.kill()
            window.wait()
