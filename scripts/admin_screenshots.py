"""Screenshots of the index server's admin window with realistic data.

    QT_QPA_PLATFORM=offscreen .venv/bin/python scripts/admin_screenshots.py [pt_BR]

Starts a real IndexServer in an admin window, lets a handful of plain-socket peers
JOIN from 127.0.0.2 upwards, search, update and misbehave (one is kicked), then saves
docs/screenshots/admin-*.png, or admin-*-pt_BR.png in Brazilian Portuguese.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import socket
import ssl
import sys
import time
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from PySide6.QtCore import QEventLoop, QTimer  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402

from app.i18n import Translations  # noqa: E402
from server_app.index_server import IndexServer  # noqa: E402
from server_app.index_store import SqliteIndexStore  # noqa: E402
from server_app.ui.admin_window import AdminWindow  # noqa: E402
from server_app.ui.traffic import HISTORY_SECONDS, SAMPLE_SECONDS, TrafficSample  # noqa: E402
from tests.tls_client import handshake_while_serving  # noqa: E402

OUT = ROOT / "docs" / "screenshots"
#: "" for English, else the language of the window (the file names get "-<language>").
SUFFIX = ""
GB = 1_000_000_000

PEERS = [
    (
        "napster-p2p/1.0 (Linux)",
        [
            ("Aula 01 - Introdução à Física Quântica (1080p, legendado).mp4", int(1.2 * GB)),
            ("Aula 02 - O experimento da dupla fenda e a interferência.mp4", int(1.4 * GB)),
            ("Big Buck Bunny - 4K HDR remaster (director's cut).mkv", int(12.4 * GB)),
        ],
    ),
    (
        "napster-p2p/1.0 (Windows 11)",
        [
            ("Big Buck Bunny - 4K HDR remaster (director's cut).mkv", int(12.4 * GB)),
            ("Sintel (2010) open movie 2160p.mkv", int(5.6 * GB)),
        ],
    ),
    (
        "napster-p2p/1.1 (macOS 14)",
        [
            ("Aula 01 - Introdução à Física Quântica (1080p, legendado).mp4", int(1.2 * GB)),
            ("Conference talk - Designing protocols that survive the internet.webm", 780_000_000),
            ("family holiday 2023 - raw camera footage, day 3 of 7 (unedited).mov", 31 * GB),
        ],
    ),
    ("napster-p2p/1.0 (Linux)", [("Tears of Steel 4K.mov", int(6.3 * GB))]),
    (
        "napster-p2p/1.0 (Windows 10)",
        [
            (f"Lecture {n:02d} - Linear algebra, MIT 18.06.mp4", 420_000_000 + n)
            for n in range(1, 9)
        ],
    ),
    ("napster-p2p/1.0 (Linux)", [("Cosmos Laundromat.mkv", int(2.1 * GB))]),
    (
        "napster-p2p/0.9-beta (FreeBSD)",
        [("日本語の講義 第3回 - 量子力学入門.mp4", 950_000_000)],
    ),
    ("napster-p2p/1.0 (Linux)", []),
]


def pump(until: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not until():
        if time.monotonic() > deadline:
            raise TimeoutError("the window did not catch up in time")
        loop = QEventLoop()
        QTimer.singleShot(20, loop.quit)
        loop.exec()


class Peer:
    """A TLS peer over a plain socket, from its own loopback address."""

    def __init__(self, port: int, source: str) -> None:
        raw = socket.create_connection(("127.0.0.1", port), source_address=(source, 0))
        self.sock = handshake_while_serving(raw)  # left non-blocking
        self.buffer = b""

    def request(self, message: dict) -> dict:
        self.sock.sendall(json.dumps(message).encode() + b"\n")
        pump(self._has_line)
        line, self.buffer = self.buffer.split(b"\n", 1)
        return json.loads(line)

    def _has_line(self) -> bool:
        with contextlib.suppress(BlockingIOError, ssl.SSLWantReadError):
            self.buffer += self.sock.recv(65536)
        return b"\n" in self.buffer


def file_hash(name: str) -> str:
    return hashlib.sha256(name.encode()).hexdigest()


def fill_history(window: AdminWindow, peers_now: int) -> None:
    """An hour of plausible history so the chart has something to show."""
    now = time.monotonic()
    window.stats.samples.clear()
    count = HISTORY_SECONDS // SAMPLE_SECONDS
    for step in range(count):
        at = now - (count - 1 - step) * SAMPLE_SECONDS
        progress = step / count
        peers = round(2 + (peers_now - 2) * progress + 1.5 * math.sin(step / 17))
        requests = round(20 + 35 * progress + 18 * math.sin(step / 7) ** 2)
        window.stats.samples.append(TrafficSample(at, max(peers, 0), requests))
    window.chart.set_samples(window.stats.samples, now)


def save(window: AdminWindow, name: str) -> None:
    pump(lambda: not window.peer_feed.pending(), 5)
    QApplication.processEvents()
    path = OUT / f"admin-{name}{SUFFIX}.png"
    window.grab().save(str(path))
    print(path.relative_to(ROOT))


def start(window: AdminWindow) -> None:
    if not window.start_listening("0.0.0.0", 1099):
        window.start_listening("127.0.0.1", 0)


def main() -> int:
    global SUFFIX
    OUT.mkdir(parents=True, exist_ok=True)
    app = QApplication.instance() or QApplication([])
    app.setApplicationName("napster-server")
    language = sys.argv[1] if len(sys.argv) > 1 else "en"
    translations = Translations(app)
    if translations.apply(language) != "en":
        SUFFIX = f"-{language}"

    # 1. A fresh server: every empty table says what will appear in it.
    empty_store = SqliteIndexStore(":memory:")
    empty = AdminWindow(
        IndexServer(empty_store), database="~/.local/share/napster-server/index.sqlite3"
    )
    start(empty)
    empty.show()
    pump(lambda: bool(empty.log_pane.visible_messages()))
    save(empty, "empty")

    # 2. The same port again from a second window: the error is shown, not raised.
    busy_store = SqliteIndexStore(":memory:")
    busy = AdminWindow(IndexServer(busy_store), database="/srv/napster/index.sqlite3")
    busy.start_listening(empty.host_edit.text(), empty.server.serverPort())
    busy.show()
    pump(lambda: bool(busy.log_pane.visible_messages()))
    save(busy, "port-in-use")
    busy.shutdown()
    busy.close()
    busy_store.close()
    empty.shutdown()
    empty.close()
    empty_store.close()

    # 3. A running server with peers, searches, an update, a protocol error and a ban.
    store = SqliteIndexStore(":memory:")
    window = AdminWindow(IndexServer(store), database="/srv/napster/index.sqlite3")
    start(window)
    window.show()
    port = window.server.serverPort()
    peers = []
    for number, (agent, files) in enumerate(PEERS):
        peer = Peer(port, f"127.0.0.{10 + number * 7}")
        listing = [{"name": n, "size": s, "hash": file_hash(n)} for n, s in files]
        reply = peer.request(
            {"op": "JOIN", "id": 1, "port": 6699 + number, "agent": agent, "files": listing}
        )
        assert reply["op"] == "JOIN_OK", reply
        peers.append(peer)
    for peer, query in zip(peers, ["aula física", "bunny 4k", "lecture", "sintel"], strict=False):
        peer.request({"op": "SEARCH", "id": 2, "query": query, "limit": 50})
    new = "Aula 03 - Emaranhamento e o teorema de Bell.mp4"
    peers[0].request(
        {
            "op": "UPDATE",
            "id": 3,
            "add": [{"name": new, "size": 1_300_000_000, "hash": file_hash(new)}],
            "remove": [],
        }
    )
    rude = Peer(port, "127.0.0.66")  # over TLS, then HTTP: a protocol error
    rude.sock.sendall(b"GET / HTTP/1.1\r\n\r\n")
    pump(lambda: window.stats.protocol_errors >= 1)
    window.ban_address("127.0.0.66", "sent HTTP requests to the index port")
    window.ban_address("198.51.100.23", "flooded SEARCH requests")
    refused = socket.create_connection(("127.0.0.1", port), source_address=("127.0.0.66", 0))
    pump(lambda: window.stats.refused_connections >= 1)
    pump(lambda: window.peer_model.rowCount() == len(PEERS))
    window.refresh_counters()
    fill_history(window, len(PEERS))

    window.peer_proxy.sort(0)
    window.select_peer(window.peer_model.peer_at(2).peer_id)  # the one with long names
    save(window, "peers")

    window.tabs.setCurrentWidget(window.files_page)  # filled as it opens: no Refresh
    save(window, "files")
    window.file_search.setText("aula mp4")
    window.run_file_search()
    save(window, "files-search")

    kicked = window.peer_model.peer_at(window.peer_model.rowCount() - 1)
    window.server.kick(kicked.peer_id)
    pump(lambda: window.peer_model.rowCount() == len(PEERS) - 1)
    window.tabs.setCurrentIndex(2)
    window.log_pane.level_box.setCurrentIndex(1)
    save(window, "bans")

    for peer in peers:
        peer.sock.close()
    rude.sock.close()
    refused.close()
    window.shutdown()
    window.close()
    store.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
