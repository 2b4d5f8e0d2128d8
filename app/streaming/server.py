"""``StreamServer``: the peer's own files and downloads over HTTP/1.1 on 127.0.0.1 only.

A player (mpv, VLC, ffmpeg) reads a URL like ``http://127.0.0.1:PORT/TOKEN/KEY/name.mp4``.
``HEAD`` and ``GET`` with one byte range (200, 206, 416, ``Content-Length``,
``Accept-Ranges``, a content type from the name). Only verified bytes are served: a read of a
piece that is not there yet waits for it (and its reader's position makes the download fetch
it first); if the download fails or is cancelled, or nothing arrives for ``STALL_SECONDS``,
the response ends early and the connection closes. Several readers at once, each on its own
thread. Safe by default: loopback only, a random port, an unguessable token in every URL
(checked in constant time), the ``Host`` header must name loopback (against DNS rebinding),
and only files published by the peer itself (its downloads and shared files) have a key.

Standard library only (``http.server``), no Qt.
"""

from __future__ import annotations

import contextlib
import hmac
import logging
import mimetypes
import os
import re
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import quote, unquote

from app.download.watch import PieceWatch, TransferGone
from app.network import protocol as p

log = logging.getLogger("napster.stream")

#: A reader waiting this long for one piece gives up (the connection closes).
STALL_SECONDS = 60.0
SEND_CHUNK = 256 * 1024
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")
_LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "[::1]")
_EXTRA_TYPES = {
    ".mkv": "video/x-matroska",
    ".webm": "video/webm",
    ".mp4": "video/mp4",
    ".m4v": "video/mp4",
    ".avi": "video/x-msvideo",
    ".flac": "audio/flac",
}


@dataclass
class StreamTarget:
    """One file a stream may read: where its bytes are and, while unfinished, its watch."""

    name: str
    size: int
    path: Path  # the unfinished data, or the finished file
    watch: PieceWatch | None = None  # None: every byte is there
    #: set when the download finishes: later requests read the finished file
    final_path: Path | None = None
    #: opens the file another way (a shared file is reached beneath its shared folder)
    opener: Callable[[], int] | None = None

    def open(self) -> int:
        if self.opener is not None:
            return self.opener()
        flags = os.O_RDONLY | getattr(os, "O_BINARY", 0)
        if self.final_path is not None:
            with contextlib.suppress(FileNotFoundError):
                return os.open(self.final_path, flags)
        if self.watch is not None:
            # A stream may start before the download has made its file: make it (empty) now;
            # only verified bytes are ever read from it.
            self.path.parent.mkdir(exist_ok=True)
            return os.open(self.path, flags | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o644)
        return os.open(self.path, flags)

    @property
    def content_type(self) -> str:
        suffix = Path(self.name).suffix.lower()
        return (
            _EXTRA_TYPES.get(suffix)
            or mimetypes.guess_type(self.name)[0]
            or ("application/octet-stream")
        )


def parse_range(header: str | None, size: int) -> tuple[int, int] | str | None:
    """(first, last) byte of a single range; None for no (or an ignored) range;
    "unsatisfiable" for a range past the end."""
    if not header:
        return None
    match = _RANGE.match(header.strip())
    if match is None:
        return None  # several ranges or another unit: the whole file (allowed by RFC 9110)
    start, end = match.groups()
    if not start and not end:
        return None
    if not start:  # the last N bytes
        length = int(end)
        if length == 0:
            return "unsatisfiable"
        return max(0, size - length), size - 1
    first = int(start)
    last = min(int(end), size - 1) if end else size - 1
    if first >= size or (end and int(end) < first):
        return "unsatisfiable"
    return first, last


class StreamServer:
    """Serves published files to local players; start() once, publish() per file."""

    def __init__(self) -> None:
        self.token = secrets.token_urlsafe(24)
        self._targets: dict[str, StreamTarget] = {}
        self._lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.open_streams = 0

    @property
    def port(self) -> int:
        return self._httpd.server_address[1] if self._httpd else 0

    def start(self) -> int:
        """Listen on 127.0.0.1, a random port (once); returns the port."""
        if self._httpd is None:
            handler = type("Handler", (_Handler,), {"streams": self})
            self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
            self._httpd.daemon_threads = True
            self._thread = threading.Thread(
                target=self._httpd.serve_forever, name="stream server", daemon=True
            )
            self._thread.start()
            log.info("Stream server on 127.0.0.1:%d", self.port)
        return self.port

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def publish(self, key: str, target: StreamTarget) -> str:
        """Make ``target`` readable under ``key``; returns its URL."""
        self.start()
        with self._lock:
            self._targets[key] = target
        return f"http://127.0.0.1:{self.port}/{self.token}/{quote(key)}/{quote(target.name)}"

    def count_stream(self, change: int) -> None:
        with self._lock:
            self.open_streams += change

    def withdraw(self, key: str) -> None:
        with self._lock:
            self._targets.pop(key, None)

    def target(self, key: str) -> StreamTarget | None:
        with self._lock:
            return self._targets.get(key)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    streams: StreamServer  # set on the subclass the server makes

    def log_message(self, format: str, *args: object) -> None:
        log.debug("%s %s", self.address_string(), format % args)

    def do_HEAD(self) -> None:
        self._serve(body=False)

    def do_GET(self) -> None:
        self._serve(body=True)

    def _refuse(self, status: HTTPStatus, extra: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for name, value in (extra or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", "0")
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True

    def _target(self) -> StreamTarget | None:
        host = (self.headers.get("Host") or "").strip().lower()
        if ":" in host and not host.endswith("]"):
            name, _, port = host.rpartition(":")
        else:
            name, port = host, ""
        if name not in _LOOPBACK_HOSTS or (port and port != str(self.streams.port)):
            return None
        parts = self.path.split("?", 1)[0].split("/")
        if len(parts) < 3 or not hmac.compare_digest(parts[1], self.streams.token):
            return None
        return self.streams.target(unquote(parts[2]))

    def _serve(self, body: bool) -> None:
        target = self._target()
        if target is None:
            self._refuse(HTTPStatus.FORBIDDEN)
            return
        wanted = parse_range(self.headers.get("Range"), target.size)
        if wanted == "unsatisfiable":
            self._refuse(
                HTTPStatus.REQUESTED_RANGE_NOT_SATISFIABLE,
                {"Content-Range": f"bytes */{target.size}", "Accept-Ranges": "bytes"},
            )
            return
        first, last = wanted if wanted else (0, target.size - 1)
        length = max(0, last - first + 1)
        try:
            fd = target.open()
        except OSError:
            self._refuse(HTTPStatus.NOT_FOUND)
            return
        try:
            self.send_response(HTTPStatus.PARTIAL_CONTENT if wanted else HTTPStatus.OK)
            self.send_header("Content-Type", target.content_type)
            self.send_header("Accept-Ranges", "bytes")
            self.send_header("Content-Length", str(length))
            if wanted:
                self.send_header("Content-Range", f"bytes {first}-{last}/{target.size}")
            self.end_headers()
            if body and length:
                self._send_verified(target, fd, first, length)
        finally:
            os.close(fd)

    def _send_verified(self, target: StreamTarget, fd: int, first: int, length: int) -> None:
        watch = target.watch
        reader = watch.open_reader(first) if watch is not None else None
        self.streams.count_stream(+1)
        position, end = first, first + length
        try:
            while position < end:
                index = position // p.PIECE_SIZE
                piece_end = min(end, (index + 1) * p.PIECE_SIZE)
                if watch is not None:
                    watch.move_reader(reader, position)
                    if not watch.wait_for(index, STALL_SECONDS):
                        log.info("Stream of %s: piece %d did not come", target.name, index)
                        self.close_connection = True
                        return
                while position < piece_end:
                    data = os.pread(fd, min(SEND_CHUNK, piece_end - position), position)
                    if not data:
                        self.close_connection = True
                        return
                    self.wfile.write(data)
                    position += len(data)
        except TransferGone as exc:
            log.info("Stream of %s ended: %s", target.name, exc)
            self.close_connection = True
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the player closed it (a seek, or it quit)
        finally:
            self.streams.count_stream(-1)
            if watch is not None:
                watch.close_reader(reader)
