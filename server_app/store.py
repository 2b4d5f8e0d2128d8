"""What every index store offers the index server, and the values they share; no Qt.

Two engines implement ``IndexStore``: ``SqliteIndexStore`` (``server_app.index_store``,
the embedded default: one server's own index) and ``PostgresIndexStore``
(``server_app.postgres_store``: one index shared by many servers). ``open_index_store``
picks one from a location. Both follow the same query rules (``server_app.search_terms``)
and give the same results.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from app.network.protocol import ErrorCode, FileInfo, PeerAddress, SearchResult
from server_app.search_terms import fold

__all__ = [
    "MAX_FILES",
    "MAX_FILES_PER_ADDRESS",
    "MAX_SOURCE_RESULTS",
    "CapacityExceeded",
    "IndexLimitError",
    "IndexStore",
    "IndexUnavailable",
    "IndexedFile",
    "PeerRecord",
    "RankedGroup",
    "SearchPage",
    "StoreCounters",
    "fold",
    "normalize_address",
    "open_index_store",
]

#: Server-wide and per-address (every connection from one IP) limits on indexed files.
MAX_FILES = 5_000_000
MAX_FILES_PER_ADDRESS = 1_000_000
MAX_FILES_PER_PEER = 200_000


#: Results one SOURCES answer holds at most (names a file is shared under).
MAX_SOURCE_RESULTS = 20


class IndexLimitError(Exception):
    """A peer would share more files than ``max_files_per_peer``; nothing was changed.

    ``code`` is the PROTOCOL.md error code to answer with.
    """

    code: ErrorCode = ErrorCode.TOO_LARGE

    def __init__(self, files: int, limit: int) -> None:
        super().__init__(f"{files} files is more than the {limit} files a peer may share")
        self.files = files
        self.limit = limit


class CapacityExceeded(IndexLimitError):
    """The index, or the files of one address, would grow past its limit; nothing changed."""

    code = ErrorCode.LIMIT

    def __init__(self, message: str, files: int, limit: int) -> None:
        Exception.__init__(self, message)
        self.files = files
        self.limit = limit


@dataclass(frozen=True)
class StoreCounters:
    """Totals over the whole index; ``files`` and ``bytes`` count every (peer, file) entry."""

    peers: int
    files: int
    bytes: int


@dataclass(frozen=True)
class PeerRecord:
    """One online peer as the admin window shows it."""

    peer_id: int
    host: str
    port: int
    agent: str
    files: int
    bytes: int
    joined_at: float
    last_seen: float
    #: The index server the peer is connected to ("host:port" as that server names itself).
    server: str = ""

    @property
    def address(self) -> PeerAddress:
        return PeerAddress(self.host, self.port)


@dataclass(frozen=True)
class SearchPage:
    """A SEARCH's results and whether more names matched than were returned."""

    results: list[SearchResult]
    more: bool


@dataclass(frozen=True)
class IndexedFile:
    """One distinct (hash, name) in the index and how many online peers hold that hash."""

    name: str
    size: int
    hash: str
    peers: int


def normalize_address(address: str) -> str:
    """One spelling per IP address: ``::ffff:1.2.3.4`` is ``1.2.3.4``, without ``%zone``.

    Text that is no IP address comes back as given (stripped).
    """
    text = address.strip()
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    text = text.split("%", 1)[0]
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        return address.strip()
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return str(ip.ipv4_mapped)
    return str(ip)


@dataclass
class RankedGroup:
    """A distinct (hash, size, name) candidate while a search is ranked: both engines rank
    results by this one rule (an exact name first, then most holders, then by name)."""

    hash: bytes
    name: str
    size: int
    exact: bool
    holders: int = 0

    @property
    def key(self) -> tuple[bytes, int]:
        """The file: its hash and its size together."""
        return (self.hash, self.size)

    def rank_key(self) -> tuple[bool, int, str, str, bytes]:
        return (not self.exact, -self.holders, fold(self.name), self.name, self.hash)


class IndexUnavailable(Exception):
    """The index's database cannot be reached now; nothing was changed by this call.

    Raised within about two seconds, never after a hang. The store reconnects by itself
    on a later call; the caller answers the request with an error and keeps its sessions.
    """


class IndexStore(Protocol):
    """What the index server, its requests and the admin window use of an index.

    Peer ids are the ones ``add_peer`` returned; they stay valid while the peer is
    connected to this server. ``shared`` is True when other servers change the index
    too (so a view of it must poll ``peers()`` rather than follow its own server's
    events); ``server_name`` is how this server is named in ``PeerRecord.server``.
    Any call may raise ``IndexUnavailable`` (only a shared store does).
    """

    max_files_per_peer: int
    max_files: int
    max_files_per_address: int
    shared: bool
    server_name: str

    def add_peer(
        self,
        host: str,
        port: int,
        agent: str,
        files: Sequence[FileInfo],
        now: float | None = None,
        fingerprint: str | None = None,
    ) -> int: ...
    def set_reachable(self, peer_id: int, reachable: bool) -> None: ...
    def forward_push(self, host: str, port: int, request: dict[str, object]) -> bool: ...
    def take_forwarded(self) -> list[tuple[int, dict[str, object]]]: ...
    def replace_files(self, peer_id: int, files: Sequence[FileInfo]) -> int: ...
    def update_files(self, peer_id: int, add: Sequence[FileInfo], remove: Sequence[str]) -> int: ...
    def remove_peer(self, peer_id: int) -> None: ...
    @property
    def upkeep_due(self) -> bool: ...
    def upkeep(self, seconds: float) -> bool: ...
    def touch(self, peer_id: int, now: float | None = None) -> None: ...
    def touch_many(self, seen: dict[int, float]) -> None: ...
    def check_file_count(self, files: Sequence[FileInfo], host: str | None = None) -> None: ...
    def counters(self) -> StoreCounters: ...
    def peers(self) -> list[PeerRecord]: ...
    def peer(self, peer_id: int) -> PeerRecord | None: ...
    def peer_files(self, peer_id: int) -> list[FileInfo]: ...
    def file_count(self, peer_id: int) -> int: ...
    def search(
        self, query: str, limit: int = 100, exclude_peer: int | None = None
    ) -> list[SearchResult]: ...
    def search_page(
        self, query: str, limit: int = 100, exclude_peer: int | None = None
    ) -> SearchPage: ...
    def sources(
        self, file_hash: str, size: int | None = None, exclude_peer: int | None = None
    ) -> list[SearchResult]: ...
    def browse(self, host: str, port: int, limit: int = 500) -> SearchPage: ...
    def search_files(self, query: str, limit: int = 1000) -> list[IndexedFile]: ...
    def ban(self, address: str, reason: str = "") -> None: ...
    def unban(self, address: str) -> None: ...
    def is_banned(self, address: str) -> bool: ...
    def bans(self) -> list[tuple[str, str, float]]: ...
    def rename(self, server_name: str) -> None: ...
    def close(self) -> None: ...


class PeerReader(Protocol):
    """Reads every online peer on a database connection of its own (``open_reader``).

    Made for one thread other than the server's: ``peers`` and ``close`` are called from
    that thread only. ``peers`` may raise ``IndexUnavailable`` and reconnects by itself
    on a later call.
    """

    def peers(self) -> list[PeerRecord]: ...
    def close(self) -> None: ...


class SharedIndexStore(IndexStore, Protocol):
    """A store whose ``shared`` is True: a view polls the whole index through a reader."""

    def open_reader(self) -> PeerReader: ...


def is_postgres_url(location: str) -> bool:
    """True for a ``postgresql://`` or ``postgres://`` URL."""
    return location.startswith(("postgresql://", "postgres://"))


def open_index_store(
    location: str | os.PathLike[str], *, server_name: str, **limits: Any
) -> IndexStore:
    """A PostgreSQL URL opens a shared ``PostgresIndexStore``; anything else is the path of
    a SQLite database file (or ``":memory:"``) for a ``SqliteIndexStore``.

    ``limits``: ``max_files_per_peer``, ``max_files``, ``max_files_per_address`` and the
    engine's own options. May raise ``IndexUnavailable`` (PostgreSQL not reachable).
    """
    text = os.fspath(location)
    if is_postgres_url(text):
        from server_app.postgres_store import PostgresIndexStore

        return PostgresIndexStore(text, server_name=server_name, **limits)
    from server_app.index_store import SqliteIndexStore

    return SqliteIndexStore(text, server_name=server_name, **limits)
