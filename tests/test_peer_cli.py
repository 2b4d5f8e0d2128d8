"""``napster-peer --headless`` and ``--cli`` as real processes against a real server process."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.test_server_cli import ROOT, ServerProcess


class PeerProcess:
    """A peer process whose stdout lines arrive on a queue."""

    def __init__(self, *args: str, home: Path) -> None:
        env = {
            **os.environ,
            "HOME": str(home),
            "XDG_DATA_HOME": str(home / "data"),
            "XDG_CONFIG_HOME": str(home / "config"),
            "QT_QPA_PLATFORM": "offscreen",
        }
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "app", *args],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))

    def expect(self, text: str, timeout: float = 20.0) -> str:
        """The first output line containing ``text`` (the test fails after ``timeout``)."""
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"no line with {text!r}; saw:\n" + "\n".join(self.seen))
            try:
                line = self.lines.get(timeout=remaining)
            except queue.Empty:
                continue
            self.seen.append(line)
            if text in line:
                return line

    def type(self, line: str) -> None:
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=20)


@pytest.fixture
def server(tmp_path):
    process = ServerProcess("--host", "127.0.0.1", "--port", "0", "--db", str(tmp_path / "i.db"))
    assert process.ready.wait(20) and process.port
    yield process
    process.stop()


def test_headless_peer_shares_and_cli_peer_downloads(tmp_path, server):
    share_a = tmp_path / "a" / "share"
    share_a.mkdir(parents=True)
    (share_a / "aula1.mp4").write_bytes(os.urandom(5 * 1024 * 1024 + 3))
    (share_a / "aula2.mp4").write_bytes(os.urandom(1000))
    address = f"127.0.0.1:{server.port}"
    a = PeerProcess(
        "--headless",
        "--server",
        address,
        "--share",
        str(share_a),
        "--downloads",
        str(tmp_path / "a" / "downloads"),
        "--port",
        "0",
        home=tmp_path / "a" / "home",
    )
    share_b, downloads_b = tmp_path / "b" / "share", tmp_path / "b" / "downloads"
    share_b.mkdir(parents=True)
    b = PeerProcess(
        "--cli",
        "--server",
        address,
        "--share",
        str(share_b),
        "--downloads",
        str(downloads_b),
        "--port",
        "0",
        home=tmp_path / "b" / "home",
    )
    try:
        a.expect("napster-peer joined as 127.0.0.1:")
        # The headless peer announces its files once hashed; wait for the server to log them.
        b.expect("4 QUIT")
        b.type("JOIN")
        b.type("")  # default server
        b.type("")  # default shared folder
        joined = b.expect("I am peer 127.0.0.1:")
        assert joined.endswith(" with files")  # B shares nothing yet
        deadline = time.monotonic() + 20
        while True:
            b.type("SEARCH")
            b.type("aula1.mp4")
            line = b.expect("requested file")
            if "peers with the requested file: 127.0.0.1:" in line or time.monotonic() > deadline:
                break
        assert "peers with the requested file: 127.0.0.1:" in line
        b.type("DOWNLOAD")
        b.type("aula1.mp4")
        b.type("")
        done = b.expect("downloaded successfully", timeout=30)
        assert done.endswith(f"File aula1.mp4 downloaded successfully to folder {downloads_b}")
        assert (downloads_b / "aula1.mp4").read_bytes() == (share_a / "aula1.mp4").read_bytes()
        b.type("QUIT")
        assert b.proc.wait(timeout=20) == 0
    finally:
        b.stop()
        assert a.stop() == 0


def test_headless_peer_needs_its_folders():
    result = subprocess.run(
        [sys.executable, "-m", "app", "--headless", "--server", "127.0.0.1:1099"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2 and "--share" in result.stderr


def test_bad_server_address_is_a_clear_error():
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "app",
            "--headless",
            "--server",
            "host:notaport",
            "--share",
            ".",
            "--downloads",
            ".",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2 and "'notaport' is not a port number" in result.stderr


def test_headless_peer_given_two_servers_moves_to_the_other_when_its_server_stops(tmp_path):
    servers = [
        ServerProcess("--host", "127.0.0.1", "--port", "0", "--db", str(tmp_path / f"{n}.db"))
        for n in range(2)
    ]
    share = tmp_path / "share"
    share.mkdir()
    (share / "aula.mp4").write_bytes(b"x" * 1000)
    peer = None
    try:
        for server in servers:
            assert server.ready.wait(20) and server.port
        addresses = {f"127.0.0.1:{server.port}": server for server in servers}
        listed = tmp_path / "servers.txt"
        listed.write_text("# both index servers\n" + "\n".join(addresses) + "\n", "utf-8")
        peer = PeerProcess(
            "--headless",
            "--servers-file",
            str(listed),
            "--share",
            str(share),
            "--downloads",
            str(tmp_path / "downloads"),
            "--port",
            "0",
            home=tmp_path / "home",
        )
        joined = peer.expect("napster-peer joined as 127.0.0.1:")
        first = joined.rsplit("(index server ", 1)[1].rstrip(")")
        (other,) = set(addresses) - {first}
        addresses[first].stop()
        peer.expect(f"napster-peer: lost the index server at {first}: ")
        peer.expect(f"napster-peer: trying the index server at {other}")
        again = peer.expect("napster-peer joined as 127.0.0.1:")
        assert again.endswith(f"(index server {other})")
    finally:
        if peer is not None:
            assert peer.stop() == 0
        for server in servers:
            server.stop()
