"""A plain-socket protocol client for tests (deliberately not the app's own client)."""

from __future__ import annotations

import json
import socket


class WireClient:
    """Speaks raw JSON lines over a non-blocking loopback socket.

    Reads never block (MSG_DONTWAIT) and are polled from ``qtbot.waitUntil``, so the
    Qt loop under test keeps running; sends block, which is fine for small messages.
    """

    def __init__(self, port: int, host: str = "127.0.0.1") -> None:
        self.sock = socket.create_connection((host, port), timeout=5)
        self.sock.settimeout(None)
        self.buffer = b""
        self.lines: list[dict] = []
        self.closed = False

    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def send(self, obj: dict) -> None:
        self.send_raw(json.dumps(obj).encode() + b"\n")

    def poll(self) -> None:
        while not self.closed:
            try:
                chunk = self.sock.recv(65536, socket.MSG_DONTWAIT)
            except BlockingIOError:
                return
            except (ConnectionResetError, BrokenPipeError):
                self.closed = True
                return
            if not chunk:
                self.closed = True
                return
            self.buffer += chunk
            while b"\n" in self.buffer:
                line, self.buffer = self.buffer.split(b"\n", 1)
                self.lines.append(json.loads(line))

    def has_line(self) -> bool:
        self.poll()
        return bool(self.lines)

    def is_closed(self) -> bool:
        self.poll()
        return self.closed

    def reply(self, qtbot, timeout: int = 5000) -> dict:
        qtbot.waitUntil(self.has_line, timeout=timeout)
        return self.lines.pop(0)

    def request(self, qtbot, obj: dict, timeout: int = 5000) -> dict:
        self.send(obj)
        return self.reply(qtbot, timeout)

    def close(self) -> None:
        self.sock.close()
