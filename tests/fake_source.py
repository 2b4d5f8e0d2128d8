"""A misbehaving sharing peer for fault tests: a TLS socket server in a thread."""

from __future__ import annotations

import contextlib
import socket
import ssl
import threading

from app.network import protocol as p
from app.network import tls
from app.network.identity import PeerIdentity
from app.network.pieces import FileDigest

#: One identity for every fake source of a test run (making one takes a few ms).
FAKE_IDENTITY = PeerIdentity.generate("fake source")


class FakeSource:
    """Serves one file like a peer would, then breaks in the way it is told to.

    ``cut_after``: close the connection after sending that many file bytes.
    ``corrupt_piece``: flip one byte inside that piece.
    ``stall_after``: stop sending (but keep the connection) after that many bytes.
    Subclasses change how a range's bytes go out by overriding ``send_body``.
    """

    #: Answer each connection on its own thread (else one connection at a time).
    concurrent = False

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
        self.context = tls.server_context(FAKE_IDENTITY)
        self.address = p.PeerAddress("127.0.0.1", self.port, FAKE_IDENTITY.fingerprint)
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
            if self.concurrent:
                threading.Thread(target=self._handle, args=(conn,), daemon=True).start()
            else:
                self._handle(conn)

    def _handle(self, raw: socket.socket) -> None:
        reader = p.LineReader()
        raw.settimeout(5)
        try:
            conn = self.context.wrap_socket(raw, server_side=True)
        except (OSError, ssl.SSLError):
            raw.close()
            return
        with conn, contextlib.suppress(OSError):
            while not self.closing.is_set():
                data = conn.recv(65536)
                if not data:
                    return
                for request in reader.feed(data):
                    if isinstance(request, p.Pieces):
                        reply = p.PiecesOk(
                            id=request.id,
                            hash=self.digest.hash,
                            name=self.name,
                            size=self.digest.size,
                            pieces=self.piece_list or self.digest.pieces_hex,
                        )
                        conn.sendall(p.encode(reply))
                    elif isinstance(request, p.Download):
                        offset = request.offset
                        length = request.length
                        if length is None:
                            length = self.digest.size - offset
                        header = p.DownloadOk(
                            id=request.id, hash=request.hash, offset=offset, length=length
                        )
                        conn.sendall(p.encode(header))
                        if not self.send_body(conn, offset, length):
                            return

    def send_body(self, conn: socket.socket, offset: int, length: int) -> bool:
        """Send the file's bytes at ``offset``; False closes the connection afterwards."""
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
