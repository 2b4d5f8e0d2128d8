"""PeerNode: the peer's adapters wired together (library, index client, uploads, downloads).

The headless peer, the console menu and the desktop window all drive one of
these; none of them talks to sockets or files directly.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import QObject, QStandardPaths, Signal

from app.filenames import INCOMPLETE_FOLDER
from app.network import protocol as p
from app.network.file_pump import Timeouts
from app.network.index_client import IndexClient
from app.network.upload_server import UploadLimits, UploadServer
from app.settings import Settings
from app.sharing.catalog import SharedFile
from app.sharing.library import Library
from app.sharing.policy import private_folder
from app.transfers import TransferManager

log = logging.getLogger("napster.peer")


def default_data_dir() -> Path:
    return Path(QStandardPaths.writableLocation(QStandardPaths.StandardLocation.AppDataLocation))


@dataclass
class PeerConfig:
    """Where the peer connects, what it shares and where downloads go."""

    server_host: str = "127.0.0.1"
    server_port: int = p.DEFAULT_SERVER_PORT
    share_dir: Path = Path.home() / "Napster" / "Shared"
    download_dir: Path = Path.home() / "Napster" / "Downloads"
    listen_host: str = "0.0.0.0"
    listen_port: int = p.DEFAULT_PEER_PORT
    upload_slots: int = 4
    max_downloads: int = 3
    data_dir: Path | None = None


def parse_host_port(text: str, default_port: int = p.DEFAULT_SERVER_PORT) -> tuple[str, int]:
    """``"host:port"`` or ``"host"`` -> (host, port); raises ValueError with a clear message."""
    text = text.strip()
    if not text:
        raise ValueError("the server address is empty")
    host, sep, port_text = text.rpartition(":")
    if not sep:
        return text, default_port
    if not host:
        raise ValueError(f"{text!r} has no host name before the ':'")
    try:
        port = int(port_text)
    except ValueError:
        raise ValueError(f"{port_text!r} is not a port number") from None
    if not 1 <= port <= 65535:
        raise ValueError(f"port {port} is outside 1-65535")
    return host.strip("[]"), port


class PeerNode(QObject):
    """One peer: shares a folder, answers other peers, searches and downloads."""

    #: the listen port actually used (after port 0 picked one)
    listening = Signal(int)
    #: a search's request id and its results, with this peer's own files left out
    search_finished = Signal(int, list)
    search_failed = Signal(int, str)

    def __init__(
        self,
        config: PeerConfig,
        timeouts: Timeouts | None = None,
        parent: QObject | None = None,
        **client_options: float,
    ) -> None:
        super().__init__(parent)
        self.config = config
        data_dir = config.data_dir or default_data_dir()
        data_dir.mkdir(parents=True, exist_ok=True)
        self.data_dir = data_dir
        for folder in (config.share_dir, config.download_dir):
            folder.mkdir(parents=True, exist_ok=True)
        queue_path = data_dir / "queue.json"
        self.library = Library(
            self._shared_folders(),
            data_dir / "hashes.sqlite3",
            parent=self,
            # The peer's own data folder (queue, hash cache, a damaged queue set aside) and
            # its settings file are never shared, even from inside a shared folder.
            excluded_files=[
                queue_path,
                queue_path.with_name("queue.json.napster-tmp"),
                queue_path.with_name("queue.json.bad"),
                data_dir,
                Settings.for_app().fileName(),
            ],
            # Unfinished downloads belong to the transfer manager, never to the share. (The hook
            # holds the config, not the node: a cycle through the node would leave it to the
            # garbage collector, on whatever thread that runs.)
            is_private=private_folder(lambda: config.download_dir / INCOMPLETE_FOLDER),
        )
        self.uploads = UploadServer(self.library, UploadLimits(slots=config.upload_slots), self)
        self.client = IndexClient(
            config.server_host,
            config.server_port,
            max(1, config.listen_port),
            self.library.infos,
            parent=self,
            **client_options,
        )
        self.transfers = TransferManager(
            queue_path, config.download_dir, config.max_downloads, timeouts, self
        )
        self._source_searches: dict[int, str] = {}
        self.library.files_added.connect(self._on_files_added)
        self.library.files_removed.connect(self._on_files_removed)
        self.transfers.transfer_finished.connect(self._on_transfer_finished)
        self.transfers.sources_wanted.connect(self._on_sources_wanted)
        self.client.search_finished.connect(self._on_search_finished)
        self.client.search_failed.connect(self._on_search_failed)

    def _shared_folders(self) -> list[Path]:
        folders = [self.config.share_dir]
        if self.config.download_dir.resolve() != self.config.share_dir.resolve():
            folders.append(self.config.download_dir)
        return folders

    # ------------------------------------------------------------ life cycle

    def start(self) -> int:
        """Listen for other peers, start hashing, join the index, resume downloads.

        Returns the listen port; raises OSError when the port cannot be used.
        """
        port = self.uploads.start(self.config.listen_host, self.config.listen_port)
        self.client.set_listen_port(port)
        self.library.start()
        self.client.start()
        self.transfers.start()
        self.listening.emit(port)
        return port

    def stop(self) -> None:
        """Leave the index, save the queue, stop serving and hashing."""
        self.client.stop_and_wait(2000)
        self.transfers.shutdown()
        self.uploads.stop()
        self.library.stop()

    @property
    def listen_port(self) -> int:
        return self.uploads.serverPort()

    # ------------------------------------------------------------ commands

    def search(self, query: str, limit: int = p.DEFAULT_SEARCH_LIMIT) -> int:
        return self.client.search(query, limit)

    def download(self, result: p.SearchResult) -> str:
        """Queue a search result with all its peers as sources; returns the transfer id."""
        return self.transfers.add(result.hash, result.size, result.name, list(result.peers))

    def set_server(self, host: str, port: int) -> None:
        self.config.server_host, self.config.server_port = host, port
        self.client.set_server(host, port)

    def set_folders(self, share_dir: Path, download_dir: Path) -> None:
        for folder in (share_dir, download_dir):
            folder.mkdir(parents=True, exist_ok=True)
        self.config.share_dir, self.config.download_dir = share_dir, download_dir
        self.transfers.set_download_folder(download_dir)
        self.library.set_folders(self._shared_folders())

    def set_upload_slots(self, slots: int) -> None:
        self.config.upload_slots = slots
        self.uploads.set_slots(slots)

    def set_max_downloads(self, count: int) -> None:
        self.config.max_downloads = count
        self.transfers.set_max_active(count)

    # ------------------------------------------------------------ wiring

    def _on_files_added(self, files: list[SharedFile]) -> None:
        self.client.announce([f.info() for f in files], [])

    def _on_files_removed(self, hashes: list[str]) -> None:
        self.client.announce([], hashes)

    def _on_transfer_finished(self, transfer_id: str, path: str) -> None:
        digest = self.transfers.digest_of(transfer_id)
        if digest is not None:
            # A verified download is shared at once, without hashing it again.
            self.library.add_downloaded(Path(path), digest)

    def _on_sources_wanted(self, file_hash: str, name: str) -> None:
        query = name[: p.MAX_QUERY_CHARS]
        if self.client.state == "joined" and query.strip():
            self._source_searches[self.client.search(query, p.MAX_SEARCH_LIMIT)] = file_hash

    def _on_search_finished(self, request_id: int, results: list) -> None:
        wanted_hash = self._source_searches.pop(request_id, None)
        if wanted_hash is None:
            self.search_finished.emit(request_id, results)
            return
        sources = [peer for r in results if r.hash == wanted_hash for peer in r.peers]
        if sources:
            self.transfers.add_sources(wanted_hash, sources)

    def _on_search_failed(self, request_id: int, message: str) -> None:
        if self._source_searches.pop(request_id, None) is None:
            self.search_failed.emit(request_id, message)
