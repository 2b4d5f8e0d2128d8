"""Screenshots of the peer window for the docs: ``python scripts/peer_screenshots.py``.

Runs offscreen against a real index server on loopback, stages realistic data (long names,
a 12.4 GB file, a failed download, uploads, files being copied and hashed) in the window's
models, and writes ``docs/screenshots/peer-*.png``, plus the empty pages a new user sees.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from PySide6.QtCore import QCoreApplication, QElapsedTimer  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402

from app.download.swarm import SourceStats  # noqa: E402
from app.download.transfer import TransferState  # noqa: E402
from app.network import protocol as p  # noqa: E402
from app.peer import PeerConfig, PeerNode  # noqa: E402
from app.settings import Settings  # noqa: E402
from app.sharing.catalog import SharedFile  # noqa: E402
from app.ui.dialogs import SettingsDialog, SettingsValues  # noqa: E402
from app.ui.main_window import MainWindow  # noqa: E402
from server_app.index_server import IndexServer  # noqa: E402
from server_app.index_store import SqliteIndexStore  # noqa: E402

OUT = ROOT / "docs" / "screenshots"
GB = 1_000_000_000
MB = 1_000_000
LONG_NAME = (
    "Curso completo de Redes de Computadores — Aula 01 a 40 (1080p, legendado em português).mkv"
)


class Silent:
    """Prompts that never open a dialog (the script only takes pictures)."""

    def confirm_quit(self, *_args) -> bool:
        return True

    def __getattr__(self, _name):
        return lambda *args, **kwargs: None


def settle(ms: int = 400) -> None:
    timer = QElapsedTimer()
    timer.start()
    while timer.elapsed() < ms:
        QCoreApplication.processEvents()
        time.sleep(0.01)


def fake_hash(seed: int) -> str:
    return f"{seed:064x}"


def peers(count: int, base: int = 7000) -> tuple[p.PeerAddress, ...]:
    hosts = ["192.168.0.12", "10.0.0.7", "172.16.4.20", "192.168.1.33", "10.1.2.3", "10.9.8.7"]
    return tuple(p.PeerAddress(hosts[i % len(hosts)], base + i) for i in range(count))


def write_queue(data_dir: Path, downloads: Path) -> None:
    """A download queue as the app saves it: paused, done, failed and queued files."""
    entries = [
        (LONG_NAME, 12_400_000_000, "paused", 5_332_000_000, ""),
        ("aula2.mp4", 734_003_200, "done", 734_003_200, ""),
        (
            "Entrevista com a professora Ana Lima — gravação original sem cortes.mov",
            3_100_000_000,
            "failed",
            1_210_000_000,
            "Not enough free disk space in /home/ana/Downloads: the file needs 1.9 GB more, "
            "1.2 GB is free.",
        ),
        ("trilha sonora — faixa 07.flac", 41_200_000, "paused", 12_000_000, ""),
        ("slides-aula-03.pdf", 8_400_000, "failed", 0, ""),
        ("aula1.mp4", 702_000_000, "paused", 0, ""),
    ]
    transfers = []
    for index, (name, size, state, done, error) in enumerate(entries):
        transfers.append(
            {
                "id": f"t{index}",
                "hash": fake_hash(100 + index),
                "size": size,
                "name": name,
                "remote_name": name,
                "folder": str(downloads),
                "sources": [s.to_json() for s in peers(5 - index % 4)],
                "bad_sources": [],
                "state": state,
                "error": error,
                # What the engine reports: a code and its parameters; the window translates it.
                "error_code": "not_enough_space" if error else "",
                "error_params": {
                    "folder": "/home/ana/Downloads",
                    "needed": 1_890_000_000,
                    "free": 1_200_000_000,
                }
                if error
                else {},
                "done_bytes": done,
                "final_path": str(downloads / name) if state == "done" else "",
                "added_at": 1_700_000_000 + index,
            }
        )
    data_dir.mkdir(parents=True, exist_ok=True)
    (data_dir / "queue.json").write_text(json.dumps({"version": 1, "transfers": transfers}))


def make_window(root: Path, server: IndexServer, with_queue: bool, language: str = "en"):
    config = PeerConfig(
        server_host="127.0.0.1",
        server_port=server.serverPort(),
        share_dir=root / "Napster" / "Shared",
        download_dir=root / "Napster" / "Downloads",
        listen_host="127.0.0.1",
        listen_port=0,
        data_dir=root / "data",
    )
    if with_queue:
        write_queue(config.data_dir, config.download_dir)
    node = PeerNode(config)
    settings = Settings.from_file(root / "settings.ini")
    window = MainWindow(node, settings, prompts=Silent())
    window.resize(1180, 720)
    window.show()
    window.start()
    window.set_language(language)
    deadline = time.monotonic() + 5
    while node.client.state != "joined" and time.monotonic() < deadline:
        settle(50)
    return window


def stage_transfers(window: MainWindow) -> None:
    transfers = window.node.transfers
    running = transfers.get("t0")
    running.state = TransferState.DOWNLOADING
    running.speed = 48_200_000
    running.current_source = str(running.sources[0])
    count = -(-running.size // p.PIECE_SIZE)
    done = int(count * running.progress)
    states = bytearray([2] * done + [0] * (count - done))
    for index in (done, done + 1, done + 2, done + 5, done + 9, count - 1):
        if index < count:
            states[index] = 1
    for index in range(done + 20, min(count, done + 26)):
        states[index] = 2  # a stream's window, fetched first
    running.piece_states = bytes(states)
    running.source_stats = [
        SourceStats(str(running.sources[0]), "downloading", 61, 61 * p.PIECE_SIZE, 21_400_000),
        SourceStats(str(running.sources[1]), "downloading", 44, 44 * p.PIECE_SIZE, 15_900_000),
        SourceStats(str(running.sources[2]), "downloading", 20, 20 * p.PIECE_SIZE, 10_900_000),
        SourceStats(str(running.sources[3]), "busy", 0, 0, 0.0, "busy: 10 s"),
    ]
    waiting = transfers.get("t4")
    waiting.state = TransferState.WAITING
    waiting.error = "No peer has this file right now."
    waiting.error_code = "no_sources"
    waiting.next_retry_at = time.monotonic() + 42
    verifying = transfers.get("t5")
    verifying.state = TransferState.VERIFYING
    verifying.done_bytes = 210_000_000
    for transfer in transfers.transfers():
        transfers.transfer_changed.emit(transfer.id)
    stage_uploads(window)
    window._ticker.stop()  # the staged speeds stay as staged
    window.transfers_page.splitter.setSizes([300, 170, 230])


CHUNK = 128 * 1024 * 1024
UPLOAD_SIZES = {
    "aula2.mp4": 734_003_200,
    LONG_NAME: 12_400_000_000,
    "trilha sonora — faixa 07.flac": 41_200_000,
    "aula1.mp4": 702_000_000,
    "slides-aula-03.pdf": 8_400_000,
}


def stage_uploads(window: MainWindow) -> None:
    """Downloaders asking in 128 MiB requests, each on a new port, as real ones do."""
    uploads = window.transfers_page.uploads
    uploads.size_of = lambda name, at_least: UPLOAD_SIZES.get(name, at_least)
    ids = iter(range(1, 10_000))

    def requests(remote_ip: str, name: str, upto: int, running: int = 0, fail: str = "") -> None:
        size = UPLOAD_SIZES[name]
        offset = 0
        while offset < min(upto, size):
            upload_id = next(ids)
            length = min(CHUNK, size - offset)
            uploads.on_started(upload_id, f"{remote_ip}:{40000 + upload_id}", name, offset, length)
            uploads.on_finished(upload_id)
            offset += length
        if running:
            upload_id = next(ids)
            length = min(CHUNK, size - offset)
            uploads.on_started(upload_id, f"{remote_ip}:{40000 + upload_id}", name, offset, length)
            uploads.on_progress(upload_id, running)
            if fail:
                uploads.on_failed(upload_id, fail)

    requests("192.168.0.12", "aula2.mp4", 4 * CHUNK, running=61_000_000)
    requests("10.0.0.7", LONG_NAME, 14 * CHUNK, running=20_000_000)
    requests("172.16.4.20", "trilha sonora — faixa 07.flac", 41_200_000)
    requests("10.1.2.3", "aula1.mp4", 2 * CHUNK)
    requests("192.168.1.33", "slides-aula-03.pdf", 0, running=3_100_000, fail="connection reset")
    for row in uploads.rows():
        row.speed = {"aula2.mp4": 21_400_000, LONG_NAME: 9_800_000}.get(row.name, 0.0)
    uploads.refresh_all()


def stage_search(window: MainWindow) -> None:
    page = window.search_page
    page.field.setText("aula")
    results = [
        p.SearchResult(LONG_NAME, 12_400_000_000, fake_hash(100), peers(5)),
        p.SearchResult("aula1.mp4", 702_000_000, fake_hash(105), peers(6)),
        p.SearchResult("aula2.mp4", 734_003_200, fake_hash(101), peers(4)),
        p.SearchResult("aula3.mp4", 688_100_000, fake_hash(200), peers(3)),
        p.SearchResult(
            "aula 04 - protocolos de transporte (TCP e UDP).mp4",
            1_240_000_000,
            fake_hash(201),
            peers(2),
        ),
        p.SearchResult("aula-05-audio.m4a", 58_300_000, fake_hash(202), peers(1)),
        p.SearchResult("exercícios da aula 05.pdf", 2_100_000, fake_hash(203), peers(2)),
        p.SearchResult(
            "aula 06 — gravação ao vivo, parte 1 de 3.webm", 2_950_000_000, fake_hash(204), peers(1)
        ),
    ]
    # A full first page: the server may have more, and the window says so.
    results += [
        p.SearchResult(
            f"aula {n:02d} — exercícios resolvidos.mp4",
            90_000_000 + n,
            fake_hash(400 + n),
            peers(1 + n % 3),
        )
        for n in range(7, 7 + p.DEFAULT_SEARCH_LIMIT - len(results))
    ]
    page._query = "aula"
    page._limit = p.DEFAULT_SEARCH_LIMIT
    page._more = True
    page.model.set_results(results)
    page._show_state()
    page.table.selectRow(0)


def stage_shared(window: MainWindow) -> None:
    model = window.shared_page.model
    share = window.node.config.share_dir
    downloads = window.node.config.download_dir
    files = [
        (share / "aula1.mp4", 702_000_000),
        (share / "aula2.mp4", 734_003_200),
        (
            share / "Semestre 2024-2" / "aula 04 - protocolos de transporte (TCP e UDP).mp4",
            1_240_000_000,
        ),
        (share / "Semestre 2024-2" / "exercícios da aula 05.pdf", 2_100_000),
        (share / "Música" / "trilha sonora — faixa 07.flac", 41_200_000),
        (downloads / "aula2.mp4", 734_003_200),
    ]
    model.add_files(
        [
            SharedFile(path, path.name, size, 0, fake_hash(300 + i), ())
            for i, (path, size) in enumerate(files)
        ]
    )
    model.copy_queued(1, LONG_NAME)
    model.copy_started(1, LONG_NAME, 12_400_000_000)
    model.copy_progress(1, 3_968_000_000, 12_400_000_000)
    model.copy_finished(2, [(str(share / "entrevista completa.mov"), 3_100_000_000)])
    model.mark_hashing("entrevista completa.mov")
    model.mark_failed(str(share / "backup antigo.iso"), "permission denied")
    window.status.set_copying(LONG_NAME, 3_968_000_000, 12_400_000_000, 0)


def fake_status(window: MainWindow, hashing: bool = False) -> None:
    window.node.totals.downloaded = 5_332_000_000
    window.node.totals.uploaded = 2_410_000_000
    window.status._shared = (1234, 87_200_000_000)
    window.status._hashing = (2, 10) if hashing else None
    window.status.set_upload_speed(31_200_000)
    window.status.refresh()


def set_limits(window: MainWindow) -> None:
    """Usual limits of 10 MB/s down and 2 MB/s up; the alternative pair 500/100 KB/s."""
    values = window.current_values()
    window.apply_settings(
        replace(
            values,
            max_download_rate=10_000_000,
            max_upload_rate=2_000_000,
            alt_download_rate=500_000,
            alt_upload_rate=100_000,
        )
    )


def shoot(window, name: str) -> Path:
    settle(150)
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / f"peer-{name}.png"
    window.grab().save(str(path))
    print(f"wrote {path.relative_to(ROOT)}")
    return path


def shoot_settings(window: MainWindow, suffix: str) -> None:
    """The Settings dialog as it opens, and refusing an address typed with a semicolon."""
    dialog = SettingsDialog(window.current_values(), parent=window)
    dialog.show()
    shoot(dialog, f"settings{suffix}")
    dialog.servers.setPlainText("127.0.0.1;21099")
    shoot(dialog, f"settings-invalid-address{suffix}")
    dialog.close()


def main() -> int:
    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationDisplayName("Napster P2P")
    server = IndexServer(SqliteIndexStore())
    server.start("127.0.0.1", p.DEFAULT_SERVER_PORT if _port_free() else 0)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        fresh = make_window(root / "fresh", server, with_queue=False)
        settle()
        fresh.show_page(fresh.search_page)
        shoot(fresh, "search-empty")
        fresh.show_page(fresh.transfers_page)
        shoot(fresh, "transfers-empty")
        fresh.show_page(fresh.shared_page)
        shoot(fresh, "shared-empty")
        fresh.shutdown()
        fresh.close()

        window = make_window(root / "busy", server, with_queue=True)
        settle()
        stage_transfers(window)
        stage_search(window)
        stage_shared(window)
        window.show_page(window.search_page)
        settle()
        fake_status(window)
        window.status.set_copying("", 0, 0, 0)
        fake_status(window)
        shoot(window, "search")
        window.actions["details"].trigger()
        window.details_dialog.show_result(window.search_page.model.result_at(0))
        shoot(window.details_dialog, "search-details")
        window.details_dialog.close()
        set_limits(window)
        window.show_page(window.transfers_page)
        window.transfers_page.select_transfer("t0")
        fake_status(window)
        shoot(window, "transfers")
        window.set_alternative_limits(True)
        fake_status(window)
        shoot(window, "transfers-alternative-limits")
        window.set_alternative_limits(False)
        window.show_page(window.shared_page)
        window.status.set_copying(LONG_NAME, 3_968_000_000, 12_400_000_000, 1)
        fake_status(window)
        shoot(window, "shared")

        window.set_language("pt_BR")
        window.show_page(window.transfers_page)
        fake_status(window, hashing=True)
        window.status.set_copying("", 0, 0, 0)
        fake_status(window, hashing=True)
        shoot(window, "transfers-pt_BR")
        window.show_page(window.search_page)
        fake_status(window)
        shoot(window, "search-pt_BR")
        window.details_dialog.show_result(window.search_page.model.result_at(0))
        window.details_dialog.show()
        shoot(window.details_dialog, "search-details-pt_BR")
        window.details_dialog.close()
        shoot_settings(window, "-pt_BR")
        window.set_language("en")
        shoot_settings(window, "")
        first = SettingsDialog(SettingsValues.load(Settings.from_file(root / "new.ini")), True)
        first.show()
        shoot(first, "first-run")
        first.close()
        window.shutdown()
        window.close()
    server.stop()
    return 0


def _port_free() -> bool:
    import socket

    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", p.DEFAULT_SERVER_PORT))
        except OSError:
            return False
    return True


if __name__ == "__main__":
    sys.exit(main())
