"""PeerNode: the peer's adapters wired together (library, index client, uploads, downloads).

The headless peer, the console menu and the desktop window all drive one of
these; none of them talks to sockets or files directly.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from PySide6.QtCore import QObject, QStandardPaths, QTimer, Signal

from app.config import PeerConfig, parse_host_port
from app.download.manager import TransferManager
from app.download.problems import Problem, writable_folder_problem
from app.download.source import PushRoute, RelayRoute, Timeouts
from app.download.transfer import TransferState
from app.filenames import INCOMPLETE_FOLDER
from app.network import protocol as p
from app.network.identity import PeerIdentity
from app.network.index_client import IndexClient
from app.network.known_servers import KnownServers
from app.network.push import PushBroker
from app.network.rate_limit import RateLimiter
from app.network.relay_client import RelayBroker
from app.network.upload_server import UploadLimits, UploadServer
from app.settings import Settings
from app.sharing.catalog import SharedFile
from app.sharing.library import Library
from app.sharing.policy import private_folder
from app.streaming.server import StreamServer, StreamTarget

log = logging.getLogger("napster.peer")

#: How often running downloads ask the index for new holders (a peer that finished the
#: same file meanwhile becomes a source).
SOURCES_INTERVAL_MS = 3 * 60 * 1000
#: The index servers' fingerprints this peer remembered, in its data folder.
KNOWN_SERVERS_FILE = "known_servers.json"

__all__ = ["PeerConfig", "PeerNode", "SessionTotals", "default_data_dir", "parse_host_port"]


def default_data_dir() -> Path:
    return Path(QStandardPaths.writableLocation(QStandardPaths.StandardLocation.AppDataLocation))


class SessionTotals(QObject):
    """Bytes uploaded and downloaded since the app started (over the network)."""

    changed = Signal()

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.uploaded = 0
        self.downloaded = 0
        self._upload_sent: dict[int, int] = {}

    def add_received(self, count: int) -> None:
        self.downloaded += count
        self.changed.emit()

    def upload_started(self, upload_id: int, *_details: object) -> None:
        self._upload_sent[upload_id] = 0

    def upload_progress(self, upload_id: int, sent: int) -> None:
        fresh = sent - self._upload_sent.get(upload_id, 0)
        self._upload_sent[upload_id] = sent
        if fresh > 0:
            self.uploaded += fresh
            self.changed.emit()

    def upload_ended(self, upload_id: int, *_details: object) -> None:
        self._upload_sent.pop(upload_id, None)


class PeerNode(QObject):
    """One peer: shares a folder, answers other peers, searches and downloads."""

    #: the listen port actually used (after port 0 picked one)
    listening = Signal(int)
    #: a search's request id and its results, with this peer's own files left out
    search_finished = Signal(int, object)
    search_failed = Signal(int, str)

    def __init__(
        self,
        config: PeerConfig,
        timeouts: Timeouts | None = None,
        parent: QObject | None = None,
        **client_options: float | bool,
    ) -> None:
        super().__init__(parent)
        self.config = config
        data_dir = config.data_dir or default_data_dir()
        data_dir.mkdir(parents=True, exist_ok=True)
        self.data_dir = data_dir
        for folder in (config.share_dir, config.download_dir):
            try:
                folder.mkdir(parents=True, exist_ok=True)
            except OSError as exc:  # told to the user by folder_problems()
                log.warning("Cannot create %s: %s", folder, exc)
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
                # The TLS identity: its private key must never leave this machine.
                *PeerIdentity.paths(data_dir),
                data_dir / KNOWN_SERVERS_FILE,
                data_dir,
                Settings.for_app().fileName(),
            ],
            # Unfinished downloads belong to the transfer manager, never to the share. (The hook
            # holds the config, not the node: a cycle through the node would leave it to the
            # garbage collector, on whatever thread that runs.)
            is_private=private_folder(lambda: config.download_dir / INCOMPLETE_FOLDER),
        )
        # The peer's long-lived TLS identity, in its data folder (never shared: excluded
        # above). Its fingerprint goes out in JOIN; downloaders pin our uploads to it.
        try:
            self.identity = PeerIdentity.load_or_create(data_dir)
        except OSError as exc:
            log.warning("No TLS identity kept in %s (%s): one for this run only", data_dir, exc)
            self.identity = PeerIdentity.generate()
        #: Pushed connections our downloads wait for arrive on the listen port.
        self.push_broker = PushBroker()
        self.uploads = UploadServer(
            self.library,
            UploadLimits(slots=config.upload_slots),
            self,
            identity=self.identity,
            push_broker=self.push_broker,
        )
        self.uploads.limiter.set_rate(config.max_upload_rate)
        self.client = IndexClient(
            config.servers,
            max(1, config.listen_port),
            self.library.infos,
            parent=self,
            fingerprint=self.identity.fingerprint,
            known_servers=KnownServers(data_dir / KNOWN_SERVERS_FILE),
            **client_options,
        )
        self.client.push_requested.connect(self._on_push_requested)
        #: Answers to this peer's RELAY requests (the last resort when both are unreachable).
        self.relay_broker = RelayBroker()
        self.client.relay_broker = self.relay_broker
        self.client.relay_requested.connect(self._on_relay_requested)
        self.transfers = TransferManager(
            queue_path,
            config.download_dir,
            config.max_downloads,
            timeouts,
            self,
            limiter=RateLimiter(config.max_download_rate),
            max_sources=config.max_sources,
            push=PushRoute(
                self.client, self.push_broker, relay=RelayRoute(self.client, self.relay_broker)
            ),
        )
        self.totals = SessionTotals(self)
        self.transfers.bytes_received.connect(self.totals.add_received)
        self.uploads.upload_started.connect(self.totals.upload_started)
        self.uploads.upload_progress.connect(self.totals.upload_progress)
        self.uploads.upload_finished.connect(self.totals.upload_ended)
        self.uploads.upload_failed.connect(self.totals.upload_ended)
        self._stopped = False
        self._source_searches: dict[int, tuple[str, int]] = {}
        self.library.files_added.connect(self._on_files_added)
        self.library.files_removed.connect(self._on_files_removed)
        self.transfers.transfer_finished.connect(self._on_transfer_finished)
        #: local HTTP streams of downloads and shared files (listens once a stream is asked)
        self.streams = StreamServer()
        self.transfers.transfer_finished.connect(self._on_transfer_done_for_streams)
        self.transfers.transfer_removed.connect(lambda tid: self.streams.withdraw(f"t-{tid}"))
        self.transfers.sources_wanted.connect(self._on_sources_wanted)
        self.transfers.transfer_added.connect(self._on_transfer_added)
        self._sources_timer = QTimer(self)
        self._sources_timer.setInterval(SOURCES_INTERVAL_MS)
        self._sources_timer.timeout.connect(self._ask_for_more_sources)
        self.client.joined.connect(lambda *_: self._ask_for_more_sources())
        self.client.search_finished.connect(self._on_search_finished)
        self.client.search_failed.connect(self._on_search_failed)

    def _on_push_requested(self, host: str, port: int, token: str) -> None:
        """A downloader cannot reach us: connect out to it and serve it there."""
        if not self.uploads.answer_push(host, port, token):
            log.info("Not connecting out to %s:%d for a push (stopping or too many)", host, port)

    def _on_relay_requested(self, host: str, port: int, token: str) -> None:
        """A downloader and we cannot reach each other: meet it at the index's relay."""
        if not self.uploads.answer_relay(host, port, token):
            log.info("Not connecting to the relay at %s:%d (stopping or too many)", host, port)

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
        self._sources_timer.start()
        self.client.set_listen_port(port)
        self.library.start()
        self.client.start()
        self.transfers.start()
        self.listening.emit(port)
        return port

    def stop(self) -> None:
        """Stop the downloads (their state saved), leave the index, stop serving and hashing.

        Safe to call more than once; every front end calls it before any QObject goes.
        """
        if self._stopped:
            return
        self._stopped = True
        self._sources_timer.stop()
        self.transfers.shutdown()
        self.streams.stop()
        self.client.stop_and_wait(2000)
        self.uploads.stop()
        self.library.stop()

    def folder_problems(self) -> list[tuple[Problem, Path, str]]:
        """What is wrong with the configured folders: (problem, folder, OS error text)."""
        found = []
        share = self.config.share_dir
        if not share.is_dir():
            found.append((Problem.SHARE_MISSING, share, ""))
        elif not os.access(share, os.R_OK | os.X_OK):
            found.append((Problem.SHARE_UNREADABLE, share, ""))
        problem = writable_folder_problem(self.config.download_dir)
        if problem is not None:
            found.append((problem[0], self.config.download_dir, problem[1]))
        return found

    @property
    def listen_port(self) -> int:
        return self.uploads.serverPort()

    # ------------------------------------------------------------ commands

    def search(self, query: str, limit: int = p.DEFAULT_SEARCH_LIMIT) -> int:
        return self.client.search(query, limit)

    def browse(self, address: p.PeerAddress) -> int:
        """Ask the index for everything one peer shares; answered through search_finished."""
        return self.client.browse(address)

    def download(self, result: p.SearchResult) -> str:
        """Queue a search result with all its peers as sources; returns the transfer id."""
        return self.transfers.add(result.hash, result.size, result.name, list(result.peers))

    def set_server(self, host: str, port: int) -> None:
        self.set_servers([(host, port)])

    def set_servers(self, servers: list[tuple[str, int]]) -> None:
        """Use these index servers (the client stays on its server if it is still listed)."""
        self.config.set_servers(servers)
        self.client.set_servers(self.config.servers)

    def set_folders(self, share_dir: Path, download_dir: Path) -> None:
        for folder in (share_dir, download_dir):
            folder.mkdir(parents=True, exist_ok=True)
        self.config.share_dir, self.config.download_dir = share_dir, download_dir
        self.transfers.set_download_folder(download_dir)
        self.library.set_folders(self._shared_folders())

    def set_upload_slots(self, slots: int) -> None:
        self.config.upload_slots = slots
        self.uploads.set_slots(slots)

    # ------------------------------------------------------------ streams

    def stream_url(self, transfer_id: str) -> str | None:
        """A local URL a player can read the download from while it downloads (or after)."""
        transfer = self.transfers.get(transfer_id)
        if transfer is None:
            return None
        key = f"t-{transfer.id}"
        target = self.streams.target(key)
        if target is None:
            final = Path(transfer.final_path) if transfer.final_path else None
            target = StreamTarget(
                name=transfer.name,
                size=transfer.size,
                path=transfer.part_path,
                watch=None if final is not None else self.transfers.watch(transfer.id),
                final_path=final,
            )
        return self.streams.publish(key, target)

    def stream_url_of_shared(self, file_hash: str) -> str | None:
        """A local URL of one of this peer's shared files."""
        shared = self.library.lookup(file_hash)
        if shared is None:
            return None
        library = self.library

        def open_confined() -> int:  # never through a link, like an upload
            with library.open_shared(shared) as file:
                return os.dup(file.fileno())

        target = StreamTarget(
            name=shared.name, size=shared.size, path=Path(shared.path), opener=open_confined
        )
        return self.streams.publish(f"f-{file_hash}", target)

    def _on_transfer_done_for_streams(self, transfer_id: str, path: str, _digest: object) -> None:
        target = self.streams.target(f"t-{transfer_id}")
        if target is not None:
            target.final_path = Path(path)

    def set_rate_limits(self, upload: int, download: int) -> None:
        """Speed limits in bytes per second for all uploads / all downloads (0 = none);
        applied at once to the transfers already running."""
        self.config.max_upload_rate, self.config.max_download_rate = upload, download
        self.uploads.limiter.set_rate(upload)
        self.transfers.set_rate_limit(download)

    def set_max_downloads(self, count: int) -> None:
        self.config.max_downloads = count
        self.transfers.set_max_active(count)

    # ------------------------------------------------------------ wiring

    def _on_files_added(self, files: list[SharedFile]) -> None:
        self.client.announce([f.info() for f in files], [])

    def _on_files_removed(self, hashes: list[str]) -> None:
        self.client.announce([], hashes)

    def _on_transfer_finished(self, _transfer_id: str, path: str, digest: object) -> None:
        # A verified download is shared at once, without hashing it again.
        self.library.add_downloaded(Path(path), digest)

    def _on_transfer_added(self, transfer_id: str) -> None:
        transfer = self.transfers.get(transfer_id)
        if transfer is not None:
            self._on_sources_wanted(transfer.hash, transfer.size, transfer.remote_name)

    def _on_sources_wanted(self, file_hash: str, size: int, name: str) -> None:
        """Ask the index who holds the file (SOURCES), or search its name on an older one."""
        if self.client.state != "joined":
            return
        if self.client.sources_supported:
            request_id = self.client.sources(file_hash, size)
        elif name[: p.MAX_QUERY_CHARS].strip():
            request_id = self.client.search(name[: p.MAX_QUERY_CHARS], p.MAX_SEARCH_LIMIT)
        else:
            return
        self._source_searches[request_id] = (file_hash, size)

    def _ask_for_more_sources(self) -> None:
        """Every few minutes, and when a download starts: new holders join at once."""
        for transfer in self.transfers.transfers():
            if transfer.state.is_active or transfer.state is TransferState.WAITING:
                self._on_sources_wanted(transfer.hash, transfer.size, transfer.remote_name)

    def _on_search_finished(self, request_id: int, results: list) -> None:
        wanted = self._source_searches.pop(request_id, None)
        if wanted is None:
            self.search_finished.emit(request_id, results)
            return
        sources = [peer for r in results if (r.hash, r.size) == wanted for peer in r.peers]
        if sources:
            self.transfers.add_sources(*wanted, sources)

    def _on_search_failed(self, request_id: int, message: str) -> None:
        if self._source_searches.pop(request_id, None) is None:
            self.search_failed.emit(request_id, message)
