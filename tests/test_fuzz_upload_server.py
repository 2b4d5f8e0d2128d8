"""Stateful fuzzing of a peer's UploadServer over real loopback sockets.

Hypothesis opens connections and sends random PIECES and DOWNLOAD requests (inside and past
the file, unknown hashes, a file changed on disk), pipelined batches, other ops, random
bytes, lines cut short by a close. A model predicts each reply and the exact bytes of each
range. After every step the server's connection count matches the model, no upload slot is
held (a slot belongs to a DOWNLOAD while it is sent, and every range here is read to the end)
and a fresh well-behaved downloader is served.

The budget and the long run are those of ``tests/test_fuzz_index_server.py``.
"""

from __future__ import annotations

import contextlib
import json
import socket
import ssl
from dataclasses import dataclass, field
from pathlib import Path

from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test

from app.network import protocol as p
from app.network.upload_server import UploadLimits, UploadServer
from tests.catalog import Catalog
from tests.test_fuzz_index_server import fuzz_settings, wait_until, with_id
from tests.test_transfer import PIECE, make_file
from tests.tls_client import handshake_while_serving

SLOTS = 2
MAX_CONNS = 4
UNKNOWN_HASH = "e" * 64


class RawWire:
    """A non-blocking loopback client that reads JSON lines and raw file bytes."""

    def __init__(self, port: int, receive_buffer: int | None = None) -> None:
        raw = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if receive_buffer is not None:
            raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
        raw.settimeout(5)
        raw.connect(("127.0.0.1", port))
        self.local_port = raw.getsockname()[1]
        self.sock = handshake_while_serving(raw)
        self.buffer = bytearray()
        self.closed = False

    def send(self, data: bytes) -> None:
        """Send all of ``data``; a server that closes on us part way is its right."""
        self.sock.setblocking(True)
        try:
            self.sock.sendall(data)
        except OSError:
            pass
        finally:
            self.sock.setblocking(False)

    def poll(self) -> None:
        while not self.closed:
            try:
                chunk = self.sock.recv(1 << 20)
            except (BlockingIOError, ssl.SSLWantReadError):
                return
            except OSError:
                self.closed = True
                return
            if not chunk:
                self.closed = True
                return
            self.buffer += chunk

    def has_line(self) -> bool:
        self.poll()
        return b"\n" in self.buffer

    def has_bytes(self, count: int) -> bool:
        self.poll()
        return len(self.buffer) >= count

    def is_closed(self) -> bool:
        self.poll()
        return self.closed and not self.buffer

    def pop_line(self) -> dict:
        end = self.buffer.index(b"\n")
        line = bytes(self.buffer[:end])
        del self.buffer[: end + 1]
        return json.loads(line)

    def pop_bytes(self, count: int) -> bytes:
        data = bytes(self.buffer[:count])
        del self.buffer[:count]
        return data

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()


@dataclass
class SharedFile:
    path: Path
    hash: str
    data: bytes
    pieces: list[str]
    changed_on_disk: bool = False  # the next request finds out and the catalog drops it
    gone: bool = False


@dataclass
class Conn:
    wire: RawWire


@dataclass
class Expect:
    """One reply: an exact JSON line, or an ERROR code, then maybe raw bytes."""

    reply: dict | None = None
    error: str | None = None
    error_id: int | None = None
    raw: bytes = b""
    closes: bool = False
    extra: dict = field(default_factory=dict)


# Lines the upload server must refuse and close on: bytes, code, id echoed.
INVALID_LINES: list[tuple[bytes, str, int | None]] = [
    (b"garbage\n", "BAD_REQUEST", None),
    (b"\n", "BAD_REQUEST", None),
    (b'{"op":"JOIN","id":4,"port":1,"files":[]}\n', "BAD_REQUEST", 4),
    (b'{"op":"SEARCH","id":4,"query":"x"}\n', "BAD_REQUEST", 4),
    (b'{"op":"PIECES_OK","id":4,"hash":"' + b"a" * 64 + b'"}\n', "BAD_REQUEST", 4),
    (b'{"op":"PIECES","id":4}\n', "BAD_REQUEST", 4),
    (b'{"op":"PIECES","id":4,"hash":"../../etc/passwd"}\n', "BAD_REQUEST", 4),
    (b'{"op":"DOWNLOAD","id":4,"hash":"' + b"a" * 64 + b'","offset":-1}\n', "BAD_REQUEST", 4),
    (b'{"op":"DOWNLOAD","id":4,"hash":"' + b"a" * 64 + b'","length":-5}\n', "BAD_REQUEST", 4),
    (b'{"op":"DOWNLOAD","id":4,"hash":"' + b"a" * 64 + b'","offset":"0"}\n', "BAD_REQUEST", 4),
    (b'{"op":"DOWNLOAD","id":4,"hash":"' + b"a" * 64 + b'","offset":1e3}\n', "BAD_REQUEST", 4),
    (b'{"op":"DOWNLOAD","id":4,"path":"/etc/passwd"}\n', "BAD_REQUEST", 4),
    (
        b'{"op":"DOWNLOAD","id":4,"hash":"' + b"a" * 64 + b'","offset":9223372036854775808}\n',
        "BAD_REQUEST",
        4,
    ),
    (b'{"op":"PIECES","id":4,"hash":"' + b"a" * (p.MAX_LINE + 1) + b'"}\n', "TOO_LARGE", None),
    (b"\xff" * 70_000, "TOO_LARGE", None),
]


class UploadServerMachine(RuleBasedStateMachine):
    """A live UploadServer over a small catalog, its model, and hostile downloaders."""

    def __init__(self, qtbot, folder: Path) -> None:
        super().__init__()
        self.qtbot = qtbot
        self.catalog = Catalog()
        self.files: list[SharedFile] = []
        for index, (name, size) in enumerate(
            [("empty.bin", 0), ("small.bin", 1000), ("two-pieces.bin", PIECE + 777)]
        ):
            self.files.append(self._share(make_file(folder / name, size, seed=index)))
        # Rewritten on disk by a rule; the others stay as they are.
        self.volatile = self._share(make_file(folder / "volatile.bin", 4000, seed=9))
        self.files.append(self.volatile)
        self.server = UploadServer(
            self.catalog,
            UploadLimits(
                slots=SLOTS,
                idle_timeout=30,
                request_timeout=30,
                send_stall_timeout=5,
                max_connections_per_ip=MAX_CONNS + 2,
            ),
        )
        self.server.start("127.0.0.1", 0)
        self.conns: list[Conn] = []

    def _share(self, path: Path) -> SharedFile:
        entry = self.catalog.share(path)
        return SharedFile(path, entry.hash, path.read_bytes(), [d.hex() for d in entry.pieces])

    def teardown(self) -> None:
        for conn in self.conns:
            conn.wire.close()
        self.server.stop()

    # ------------------------------------------------------------ the model

    def _open(self) -> Conn:
        conn = Conn(RawWire(self.server.serverPort()))
        self.conns.append(conn)
        return conn

    def _drop(self, conn: Conn) -> None:
        """Close our end and wait until the server has let the connection (and slot) go."""
        conn.wire.close()
        if conn in self.conns:
            self.conns.remove(conn)
        wait_until(self.qtbot, lambda: self._buffered_by_server(conn) == -1)

    def _lookup(self, file_hash: str, request_id) -> SharedFile | Expect:
        shared = next((f for f in self.files if f.hash == file_hash and not f.gone), None)
        if shared is None:
            return Expect(error="NOT_FOUND", error_id=request_id)
        if shared.changed_on_disk:
            shared.gone = True
            return Expect(error="NOT_FOUND", error_id=request_id)
        return shared

    def _model(self, conn: Conn, request: dict) -> Expect:
        op, request_id = request["op"], request.get("id")
        if op == "PING":
            return Expect(reply=with_id({"op": "PONG"}, request_id))
        found = self._lookup(request["hash"], request_id)
        if isinstance(found, Expect):
            return found
        if op == "PIECES":
            reply = with_id({"op": "PIECES_OK"}, request_id)
            reply.update(
                hash=found.hash,
                name=found.path.name,
                size=len(found.data),
                piece_size=PIECE,
                pieces=found.pieces,
            )
            return Expect(reply=reply)
        size, offset = len(found.data), request.get("offset", 0)
        length = request.get("length", size - offset)
        if offset > size or length < 0 or offset + length > size:
            return Expect(error="BAD_RANGE", error_id=request_id)
        reply = with_id({"op": "DOWNLOAD_OK"}, request_id)
        reply.update(hash=found.hash, offset=offset, length=length)
        return Expect(reply=reply, raw=found.data[offset : offset + length])

    def _check(self, conn: Conn, expect: Expect) -> None:
        wire = conn.wire
        wait_until(self.qtbot, wire.has_line)
        reply = wire.pop_line()
        if expect.reply is not None:
            assert reply == expect.reply
        else:
            assert reply["op"] == "ERROR" and reply["code"] == expect.error, reply
            assert reply.get("id") == expect.error_id, reply
            for key, value in expect.extra.items():
                assert reply[key] == value, reply
        if expect.raw:
            wait_until(self.qtbot, lambda: wire.has_bytes(len(expect.raw)))
            assert wire.pop_bytes(len(expect.raw)) == expect.raw
        if expect.closes:
            wait_until(self.qtbot, wire.is_closed)
            self._drop(conn)

    def _requests(self, conn: Conn, batch: list[dict]) -> None:
        expected = [self._model(conn, request) for request in batch]
        conn.wire.send(b"".join(json.dumps(r).encode() + b"\n" for r in batch))
        for expect in expected:
            self._check(conn, expect)

    # ------------------------------------------------------------ rules

    def _pick(self, data) -> Conn:
        """An open connection, or a new one (rules run in random subsets: none must be first)."""
        choices = self.conns + ([None] if len(self.conns) < MAX_CONNS else [])
        conn = data.draw(st.sampled_from(choices), label="connection")
        return conn or self._open()

    def _draw_request(self, data) -> dict:
        op = data.draw(st.sampled_from(["PIECES", "DOWNLOAD", "DOWNLOAD", "PING"]), label="op")
        request_id = data.draw(st.none() | st.integers(0, p.MAX_INT), label="id")
        if op == "PING":
            return with_id({"op": "PING"}, request_id)
        target = data.draw(st.sampled_from([*self.files, None]), label="file")
        file_hash = UNKNOWN_HASH if target is None else target.hash
        request = with_id({"op": op, "hash": file_hash}, request_id)
        if op == "DOWNLOAD":
            size = 5000 if target is None else len(target.data)
            edges = st.sampled_from([0, 1, size - 1, size, size + 1, PIECE, p.MAX_INT])
            offset = data.draw(st.none() | edges | st.integers(0, size + 2), label="offset")
            length = data.draw(st.none() | edges | st.integers(0, size + 2), label="length")
            if offset is not None:
                request["offset"] = max(0, offset)
            if length is not None:
                request["length"] = max(0, length)
        return request

    @rule(data=st.data(), count=st.integers(1, 3))
    def requests(self, data, count) -> None:
        """One to three transfer requests in one write, answered in order."""
        conn = self._pick(data)
        self._requests(conn, [self._draw_request(data) for _ in range(count)])

    @rule(data=st.data(), cut=st.integers(1, 60))
    def split_request(self, data, cut) -> None:
        """A request in two writes with the server reading the first part alone."""
        conn = self._pick(data)
        request = self._draw_request(data)
        raw = json.dumps(request).encode() + b"\n"
        cut = min(cut, len(raw) - 1)
        expect = self._model(conn, request)
        conn.wire.send(raw[:cut])
        wait_until(self.qtbot, lambda: self._buffered_by_server(conn) == cut)
        conn.wire.send(raw[cut:])
        self._check(conn, expect)

    def _buffered_by_server(self, conn: Conn) -> int:
        """Bytes of an unfinished line the server holds for this connection."""
        remote = f"127.0.0.1:{conn.wire.local_port}"
        with self.server._lock:
            held = [c.reader.buffered for c in self.server._connections if c.remote == remote]
        return held[0] if held else -1

    @rule()
    def change_the_volatile_file_on_disk(self) -> None:
        if not self.volatile.changed_on_disk and not self.volatile.gone:
            with open(self.volatile.path, "ab") as f:
                f.write(b"!")
            self.volatile.changed_on_disk = True

    @rule(
        data=st.data(),
        kind=st.sampled_from(["invalid", "garbage", "truncated", "close"]),
        template=st.sampled_from(INVALID_LINES),
        garbage=st.binary(max_size=300),
        cut=st.integers(0, 80),
    )
    def hostile(self, data, kind, template, garbage, cut) -> None:
        """An invalid request, random bytes, a line cut short by a close, or a plain close."""
        conn = self._pick(data)
        if kind == "invalid":
            raw, code, request_id = template
            conn.wire.send(raw)
            self._check(conn, Expect(error=code, error_id=request_id, closes=True))
        elif kind == "garbage":
            conn.wire.send(garbage + b"\n")
            self._check(conn, Expect(error="BAD_REQUEST", closes=True))
        elif kind == "truncated":
            raw = json.dumps({"op": "DOWNLOAD", "id": 1, "hash": self.files[1].hash}).encode()
            conn.wire.send(raw[: min(cut, len(raw) - 1)])
            self._drop(conn)
        else:
            self._drop(conn)

    # ------------------------------------------------------------ invariants

    @invariant()
    def connections_and_slots_match_the_model(self) -> None:
        wait_until(
            self.qtbot,
            lambda: (
                self.server.connection_count == len(self.conns) and self.server.active_uploads == 0
            ),
        )

    @invariant()
    def a_well_behaved_downloader_is_served(self) -> None:
        small = self.files[1]
        probe = Conn(RawWire(self.server.serverPort()))
        self.conns.append(probe)
        self._requests(
            probe,
            [
                {"op": "PIECES", "id": 1, "hash": small.hash},
                {"op": "DOWNLOAD", "id": 2, "hash": small.hash, "offset": 10, "length": 500},
            ],
        )
        self._drop(probe)


def test_upload_server_survives_random_request_sequences(qtbot, tmp_path_factory):
    def new_machine() -> UploadServerMachine:
        return UploadServerMachine(qtbot, tmp_path_factory.mktemp("share"))

    run_state_machine_as_test(new_machine, settings=fuzz_settings())
