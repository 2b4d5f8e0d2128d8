"""The frozen programs, NapsterPeer and NapsterServer, run the way a person runs them.

A session fixture builds both with ``build_scripts/build.py`` (under a minute on two cores; an
up-to-date build in ``dist/`` is reused) and every test starts the executables, never the
source. Each run gets its own home and XDG folders, so the programs find nothing of the
developer's and leave nothing behind. Waits read the programs' output against deadlines.

The window tests turn on Qt's ``qt.widgets.painting`` debug category: its "Flushing ... of
MainWindow" line is the moment the first frame of the window reaches the (offscreen) screen.
"""

from __future__ import annotations

import faulthandler
import importlib.util
import json
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

import pytest

from app.network.pieces import file_hash_from_hex, hash_file, piece_range, verify_piece
from app.network.protocol import PIECE_SIZE
from tests.wire_client import tls_connect

ROOT = Path(__file__).resolve().parent.parent
BUILD_TIMEOUT = 600  # seconds; a cold build of both takes 30 to 45 s on two cores
START_DEADLINE = 20  # seconds for a frozen program to print that it is listening
WINDOW_DEADLINE = 5  # seconds from start to the first frame of a window (about 0.3 s here)
EXCHANGE_DEADLINE = 20  # seconds for the index to list a shared file, and for each socket read
STOP_DEADLINE = 15  # seconds for a program to exit after SIGTERM

NEEDED_QT_PLUGINS = {"qoffscreen", "qsvgicon", "qsvg"} | {
    "linux": {"qxcb", "qwayland", "composeplatforminputcontextplugin", "qopensslbackend"},
    "win32": {"qwindows", "qschannelbackend"},
    "darwin": {"qcocoa", "qsecuretransportbackend"},
}.get(sys.platform, set())

PAINT_PROBE = {
    "QT_LOGGING_RULES": "qt.widgets.painting.debug=true",
    "QT_MESSAGE_PATTERN": "%{type} %{category}: %{message}",
}
PROBE_PREFIX = "debug qt.widgets.painting: "
# Qt's offscreen platform plugin lacks propagateSizeHints() and says so once per window; the
# real platforms (xcb, wayland, windows, cocoa) implement it, so a person never sees this line.
OFFSCREEN_ONLY_MESSAGES = {"warning default: This plugin does not support propagateSizeHints()"}

pytestmark = pytest.mark.timeout(BUILD_TIMEOUT + 120)


def load_build_script(name: str):
    """A module of build_scripts/ (a folder of scripts, not a package)."""
    path = ROOT / "build_scripts" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"build_scripts_{name}", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


build_script = load_build_script("build")
bundle_config = load_build_script("bundle_config")


@pytest.fixture(scope="session")
def frozen() -> dict[str, Path]:
    """The two executables by key ("peer", "server"), built or found up to date."""
    faulthandler.cancel_dump_traceback_later()  # a cold build outlasts faulthandler_timeout
    result = subprocess.run(
        [sys.executable, str(build_script.__file__)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=BUILD_TIMEOUT,
        check=False,
    )
    assert result.returncode == 0, f"build failed:\n{result.stdout}\n{result.stderr}"
    return {program.key: program.executable for program in build_script.PROGRAMS}


def user_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """The environment of a person's session, with a fresh home and offscreen Qt."""
    home = tmp_path / "home"
    runtime = tmp_path / "runtime"
    home.mkdir(exist_ok=True)
    runtime.mkdir(mode=0o700, exist_ok=True)
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("QT_", "PYTHON", "XDG_")) and key not in ("LANGUAGE", "LC_ALL")
    }
    env.update(
        HOME=str(home),
        USERPROFILE=str(home),
        APPDATA=str(home / "AppData" / "Roaming"),
        LOCALAPPDATA=str(home / "AppData" / "Local"),
        XDG_CONFIG_HOME=str(home / ".config"),
        XDG_DATA_HOME=str(home / ".local" / "share"),
        XDG_CACHE_HOME=str(home / ".cache"),
        XDG_RUNTIME_DIR=str(runtime),
        QT_QPA_PLATFORM="offscreen",
    )
    env.update(extra)
    return env


class Running:
    """A program started in the background, its output gathered line by line as it comes."""

    def __init__(self, command: list[str | Path], env: dict[str, str]) -> None:
        self.process = subprocess.Popen(
            [str(part) for part in command],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            encoding="utf-8",
            errors="replace",
        )
        self.lines: dict[str, list[str]] = {"stdout": [], "stderr": []}
        self.open_streams = 2
        self.changed = threading.Condition()
        self.readers = [
            threading.Thread(target=self._read, args=(name, stream), daemon=True)
            for name, stream in (("stdout", self.process.stdout), ("stderr", self.process.stderr))
        ]
        for reader in self.readers:
            reader.start()

    def _read(self, name: str, stream) -> None:
        for line in stream:
            with self.changed:
                self.lines[name].append(line.rstrip("\n"))
                self.changed.notify_all()
        with self.changed:
            self.open_streams -= 1
            self.changed.notify_all()

    def line_count(self, stream: str = "stdout") -> int:
        with self.changed:
            return len(self.lines[stream])

    def wait_for(
        self, pattern: str, stream: str = "stdout", timeout: float = START_DEADLINE, start: int = 0
    ) -> re.Match:
        """The first line from ``start`` on that matches ``pattern``, waiting up to ``timeout``."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        checked = start
        with self.changed:
            while True:
                lines = self.lines[stream]
                for line in lines[checked:]:
                    match = regex.search(line)
                    if match:
                        return match
                checked = max(checked, len(lines))
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self.open_streams == 0:
                    break
                self.changed.wait(remaining)
        pytest.fail(f"no line matching {pattern!r} on {stream} within {timeout} s\n{self.report()}")

    def stop(self) -> int:
        """Ask the program to quit (SIGTERM, as a session logout does); its exit code."""
        if self.process.poll() is None:
            self.process.terminate()
        code = self.process.wait(timeout=STOP_DEADLINE)
        for reader in self.readers:
            reader.join(timeout=STOP_DEADLINE)
        return code

    def report(self) -> str:
        with self.changed:
            out, err = "\n".join(self.lines["stdout"]), "\n".join(self.lines["stderr"])
        return f"--- stdout\n{out}\n--- stderr\n{err}"

    def __enter__(self) -> Running:
        return self

    def __exit__(self, *exc_info) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(timeout=STOP_DEADLINE)


class Wire:
    """The protocol's JSON lines over a plain blocking socket; every read has a deadline."""

    def __init__(self, port: int) -> None:
        self.sock = tls_connect(port, timeout=EXCHANGE_DEADLINE)
        self.reader = self.sock.makefile("rb")
        self.next_id = 1

    def request(self, op: str, **fields) -> dict:
        message = {"op": op, "id": self.next_id, **fields}
        self.next_id += 1
        self.sock.sendall(json.dumps(message).encode() + b"\n")
        line = self.reader.readline()
        assert line.endswith(b"\n"), f"connection closed while waiting for the reply to {op}"
        reply = json.loads(line)
        assert reply.get("id") == message["id"], reply
        return reply

    def receive(self, length: int, into: BinaryIO) -> None:
        """Exactly ``length`` raw bytes into ``into``."""
        remaining = length
        while remaining:
            chunk = self.reader.read(min(remaining, 1 << 20))
            assert chunk, f"connection closed with {remaining} bytes still to come"
            into.write(chunk)
            remaining -= len(chunk)

    def close(self) -> None:
        self.reader.close()
        self.sock.close()


@contextmanager
def headless_server(frozen: dict[str, Path], tmp_path: Path) -> Iterator[tuple[Running, int]]:
    """The frozen index server, headless on a free loopback port: (program, port)."""
    command = [frozen["server"], "--headless", "--host", "127.0.0.1", "--port", "0"]
    command += ["--db", tmp_path / "index.sqlite3"]
    with Running(command, user_env(tmp_path)) as server:
        match = server.wait_for(r"^napster-server listening on 127\.0\.0\.1:(\d+)$")
        yield server, int(match.group(1))
        assert server.stop() == 0, server.report()


def find_in_index(searcher: Wire, server: Running, query: str, file_hash: str, port: int) -> dict:
    """The SEARCH result for ``file_hash`` held by the peer on ``port``, once the index has it.

    The peer hashes its files after it joins and announces them with UPDATE; between searches
    this waits for the server to log something about that peer.
    """
    deadline = time.monotonic() + EXCHANGE_DEADLINE
    while True:
        seen = server.line_count()
        reply = searcher.request("SEARCH", query=query, limit=10)
        assert reply["op"] == "SEARCH_OK", reply
        for result in reply["results"]:
            if result["hash"] == file_hash and any(p["port"] == port for p in result["peers"]):
                return result
        remaining = deadline - time.monotonic()
        assert remaining > 0, f"the index never listed the shared file\n{server.report()}"
        server.wait_for(rf"127\.0\.0\.1:{port}\b", timeout=remaining, start=seen)


def unexpected_stderr(program: Running) -> list[str]:
    """What the program wrote to stderr besides the paint probe and offscreen-only notes."""
    return [
        line
        for line in program.lines["stderr"]
        if not line.startswith(PROBE_PREFIX) and line not in OFFSCREEN_ONLY_MESSAGES
    ]


def bundle_files(executable: Path) -> set[str]:
    folder = executable.parent
    return {path.relative_to(folder).as_posix() for path in folder.rglob("*")}


# ---------------------------------------------------------------- tests


@pytest.mark.parametrize(
    "key, program_name", [("peer", "napster-peer"), ("server", "napster-server")]
)
def test_version_is_the_package_version(frozen, tmp_path, key, program_name):
    result = subprocess.run(
        [str(frozen[key]), "--version"],
        env=user_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=START_DEADLINE,
        check=False,
    )
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout == f"{program_name} {bundle_config.project_version()}\n"


def test_bundles_carry_their_resources_and_leave_out_what_they_do_not_use(frozen):
    for key, executable in frozen.items():
        internal = executable.parent / "_internal"
        names = bundle_files(executable)
        assert f"_internal/resources/icons/napster-{key}-256.png" in names
        catalogs = sorted(internal.glob("resources/i18n/*.ts"))
        assert catalogs, "no translations in the bundle"
        for source in catalogs:
            compiled = source.with_suffix(".qm")
            assert compiled.is_file(), f"{compiled.name} is missing"
            assert compiled.stat().st_mtime_ns >= source.stat().st_mtime_ns, "stale-looking .qm"
        plugins = {
            path.name.split(".")[0].removeprefix("lib")
            for path in internal.glob("PySide6/**/plugins/*/*")
        }
        assert not NEEDED_QT_PLUGINS - plugins, f"{key}: missing {NEEDED_QT_PLUGINS - plugins}"
        unused = re.compile(
            r"tkinter|tcl|Qt6?(Qml|Quick|Pdf|WebEngine|OpenGLWidgets)|libqgtk3|qcertonlybackend"
            r"|platforms/[^/]*(eglfs|vnc|linuxfb)",
            re.IGNORECASE,
        )
        assert sorted(name for name in names if unused.search(name)) == []
        qt_catalogs = {path.name for path in internal.glob("PySide6/Qt/translations/*.qm")}
        assert qt_catalogs <= {f"qtbase_{code}.qm" for code in bundle_config.shipped_languages()}
        dangling = [name for name in names if not (executable.parent / name).exists()]
        assert dangling == [], "symbolic links to files left out"


def test_frozen_server_answers_a_join(frozen, tmp_path):
    with headless_server(frozen, tmp_path) as (_server, port):
        client = Wire(port)
        files = [{"name": "lecture.mp4", "size": 5, "hash": "ab" * 32}]
        reply = client.request("JOIN", port=6001, files=files, agent="test-frozen/1")
        assert reply["op"] == "JOIN_OK"
        assert (reply["peer"], reply["files"]) == ("127.0.0.1:6001", 1)
        assert client.request("PING") == {"op": "PONG", "id": 2}
        client.close()


def test_frozen_peer_shares_a_file_that_downloads_intact(frozen, tmp_path):
    shared, downloads = tmp_path / "shared", tmp_path / "downloads"
    shared.mkdir()
    downloads.mkdir()
    original = shared / "frozen build check.mp4"
    original.write_bytes(os.urandom(2 * PIECE_SIZE + 12345))  # three pieces, the last one short
    size = original.stat().st_size
    expected = hash_file(original)
    with headless_server(frozen, tmp_path) as (server, server_port):
        command = [frozen["peer"], "--headless", "--server", f"127.0.0.1:{server_port}"]
        command += ["--share", shared, "--downloads", downloads, "--port", "0"]
        with Running(command, user_env(tmp_path)) as peer:
            peer_port = int(peer.wait_for(r"^napster-peer listening on port (\d+)$").group(1))
            peer.wait_for(r"^napster-peer joined as ")
            searcher = Wire(server_port)
            assert searcher.request("JOIN", port=9, files=[], agent="test-frozen/1")["op"] == (
                "JOIN_OK"
            )
            result = find_in_index(searcher, server, "frozen build", expected.hash, peer_port)
            assert (result["name"], result["size"]) == (original.name, size)
            searcher.close()

            source = Wire(peer_port)
            pieces = source.request("PIECES", hash=expected.hash)
            assert pieces["op"] == "PIECES_OK", pieces
            assert (pieces["size"], pieces["piece_size"]) == (size, PIECE_SIZE)
            assert file_hash_from_hex(pieces["pieces"]) == expected.hash
            header = source.request("DOWNLOAD", hash=expected.hash, offset=0, length=size)
            assert (header["op"], header["offset"], header["length"]) == ("DOWNLOAD_OK", 0, size)
            copy = tmp_path / "downloaded.mp4"
            with copy.open("wb") as out:
                source.receive(size, out)
            source.close()
            assert peer.stop() == 0, peer.report()

    data = copy.read_bytes()
    for index, digest in enumerate(pieces["pieces"]):
        offset, length = piece_range(index, size)
        assert verify_piece(data[offset : offset + length], digest), f"piece {index}"
    assert hash_file(copy).hash == expected.hash
    assert data == original.read_bytes()


def test_frozen_peer_window_shows_offscreen_without_warnings(frozen, tmp_path):
    shared, downloads = tmp_path / "shared", tmp_path / "downloads"
    shared.mkdir()
    downloads.mkdir()
    bundle_before = bundle_files(frozen["peer"])
    # Brazilian Portuguese exercises the bundled catalogs (app.i18n would otherwise compile one).
    env = user_env(tmp_path, LANGUAGE="pt_BR", **PAINT_PROBE)
    with headless_server(frozen, tmp_path) as (_server, server_port):
        command = [frozen["peer"], "--server", f"127.0.0.1:{server_port}", "--port", "0"]
        command += ["--share", shared, "--downloads", downloads]
        with Running(command, env) as window:
            pattern = rf"^{re.escape(PROBE_PREFIX)}Flushing .* of MainWindow\("
            window.wait_for(pattern, stream="stderr", timeout=WINDOW_DEADLINE)
            assert window.process.poll() is None, window.report()
            assert window.stop() == 0, window.report()
    assert unexpected_stderr(window) == [], window.report()
    assert not list((tmp_path / "home").rglob("*.qm")), "a translation was compiled at run time"
    assert bundle_files(frozen["peer"]) == bundle_before, "files written beside the program"


def test_frozen_admin_window_shows_offscreen_without_warnings(frozen, tmp_path):
    bundle_before = bundle_files(frozen["server"])
    command = [frozen["server"], "--host", "127.0.0.1", "--port", "0"]
    with Running(command, user_env(tmp_path, **PAINT_PROBE)) as window:
        pattern = rf"^{re.escape(PROBE_PREFIX)}Flushing .* of AdminWindow\("
        window.wait_for(pattern, stream="stderr", timeout=WINDOW_DEADLINE)
        assert window.process.poll() is None, window.report()
        assert window.stop() == 0, window.report()
    assert unexpected_stderr(window) == [], window.report()
    assert (tmp_path / "home" / ".local" / "share").is_dir(), "no index in the user's data folder"
    assert bundle_files(frozen["server"]) == bundle_before, "files written beside the program"
