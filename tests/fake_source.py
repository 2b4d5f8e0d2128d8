"""A misbehaving sharing peer for fault tests: a plain socket server in a thread."""

from __future__ import annotations

import contextlib
import socket
import threading

from app.network import protocol as p
from app.network.pieces import FileDigest


class FakeSource:
    """Serves one file like a peer would, then breaks in the way it is told to.

    ``cut_after``: close the connection after sending that many file bytes.
    ``corrupt_piece``: flip one byte inside that piece.
    ``stall_after``: stop sending (but keep the connection) after that many bytes.
    """

    def __init__(
        self,
        data_path,
        digest: FileDigest,
        name: str,
        cut_after: int | None = None,
        corrupt_piece: int | None = None,
        stall_after: int | None = None,
        piece_list: tuple[str, ...] | None = None,
    ) -> None:
        self.data_path = data_path
        self.digest = digest
        self.name = name
        self.cut_after = cut_after
        self.corrupt_piece = corrupt_piece
        self.stall_after = stall_after
        self.piece_list = piece_list
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.address = p.PeerAddress("127.0.0.1", self.port)
        self.bytes_sent = 0
        self.closing = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.closing.set()
        with contextlib.suppress(OSError):
            self.listener.close()
        self.thread.join(5)

    def _serve(self) -> None:
        self.listener.settimeout(0.1)
        while not self.closing.is_set():
            try:
                conn, _ = self.listener.accept()
            except (TimeoutError, OSError):
                continue
            with conn, contextlib.suppress(OSError):
                self._handle(conn)

    def _handle(self, conn: socket.socket) -> None:
        conn.settimeout(5)
        buffer = b""
        while not self.closing.is_set():
            while b"\n" not in buffer:
                chunk = conn.recv(65536)
                if not chunk:
                    return
                buffer += chunk
            line, buffer = buffer.split(b"\n", 1)
            request = p.decode_line(line)
            if isinstance(request, p.Pieces):
                pieces = self.piece_list or self.digest.pieces_hex
                conn.sendall(
                    p.encode(
                        p.PiecesOk(
                            id=request.id,
                            hash=self.digest.hash,
                            name=self.name,
                            size=self.digest.size,
                            pieces=pieces,
                        )
                    )
                )
            elif isinstance(request, p.Download):
                length = (
                    self.digest.size - request.offset if request.length is None else request.length
                )
                conn.sendall(
                    p.encode(
                        p.DownloadOk(
                            id=request.id, hash=request.hash, offset=request.offset, length=length
                        )
                    )
                )
                if not self._send_range(conn, request.offset, length):
                    return

    def _send_range(self, conn: socket.socket, offset: int, length: int) -> bool:
        with open(self.data_path, "rb") as f:
            f.seek(offset)
            position = offset
            while position < offset + length:
                block = bytearray(f.read(min(256 * 1024, offset + length - position)))
                if self.corrupt_piece is not None:
                    start = self.corrupt_piece * p.PIECE_SIZE + 10
                    if position <= start < position + len(block):
                        block[start - position] ^= 0xFF
                if self.cut_after is not None and self.bytes_sent + len(block) >= self.cut_after:
                    conn.sendall(block[: max(0, self.cut_after - self.bytes_sent)])
                    return False
                if (
                    self.stall_after is not None
                    and self.bytes_sent + len(block) >= self.stall_after
                ):
                    conn.sendall(block[: max(0, self.stall_after - self.bytes_sent)])
                    self.closing.wait(30)
                    return False
                conn.sendall(block)
                self.bytes_sent += len(block)
                position += len(block)
        return True
