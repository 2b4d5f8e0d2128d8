"""The index server's JOIN, SEARCH and UPDATE: what each does to the index and replies.

No sockets and no Qt: a session hands a validated request and its ``PeerEntry`` to
``IndexRequests`` and gets back the reply, or a job (a generator) that does a big
JOIN or UPDATE ``STEP_FILES`` files per step and returns the reply when it is done.
Broken limits raise ``ProtocolError`` with the PROTOCOL.md code.
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass

from app.network import protocol as p
from server_app.store import IndexLimitError, IndexStore

#: A JOIN or UPDATE listing more files than this goes into the index this many at a
#: time, one turn each (a 10,000-file JOIN is about a tenth of a second of work).
STEP_FILES = 1000

#: A big JOIN or UPDATE under way: one step per ``next()``, the reply at StopIteration.
Job = Generator[None, None, p.Message]


@dataclass(eq=False)
class PeerEntry:
    """What the index knows of one connection: its IP and, once joined, its peer row."""

    ip: str
    peer_id: int | None = None
    port: int | None = None

    @property
    def address(self) -> str | None:
        """``ip:port`` once joined."""
        return None if self.port is None else f"{self.ip}:{self.port}"


def _too_large(exc: IndexLimitError, request_id: int | None) -> p.ProtocolError:
    """A refused JOIN or UPDATE: TOO_LARGE for one peer's share, LIMIT for the index's."""
    return p.ProtocolError(exc.code, str(exc), request_id)


class IndexRequests:
    """Answers the requests that use the index, against one ``IndexStore``."""

    def __init__(self, store: IndexStore) -> None:
        self.store = store

    def join(self, peer: PeerEntry, message: p.Join) -> p.JoinOk | Job:
        """Replace the peer's list, or enter it (the caller has made it leave a different port)."""
        if peer.peer_id is not None and peer.port == message.port:
            try:
                total = self.store.replace_files(peer.peer_id, message.files)
            except IndexLimitError as exc:
                raise _too_large(exc, message.id) from None
            return p.JoinOk(id=message.id, peer=f"{peer.ip}:{message.port}", files=total)
        return self._join_in_steps(peer, message)

    def _join_in_steps(self, peer: PeerEntry, message: p.Join) -> Job:
        store = self.store
        files = message.files
        try:
            store.check_file_count(files, peer.ip)
            peer.peer_id = store.add_peer(
                peer.ip,
                message.port,
                message.agent,
                files[:STEP_FILES],
                fingerprint=message.fingerprint,
            )
            peer.port = message.port
            for start in range(STEP_FILES, len(files), STEP_FILES):
                yield
                store.update_files(peer.peer_id, files[start : start + STEP_FILES], ())
        except IndexLimitError as exc:
            raise _too_large(exc, message.id) from None
        return p.JoinOk(
            id=message.id, peer=f"{peer.ip}:{message.port}", files=store.file_count(peer.peer_id)
        )

    def search(self, peer: PeerEntry, message: p.Search) -> bytes:
        """The SEARCH_OK line (results past the 64 KiB line limit are left out)."""
        page = self.store.search_page(message.query, message.limit, peer.peer_id)
        # Results past the 64 KiB line limit are left out (and "more" is sent).
        return p.encode_search_ok(message.id, page.results, more=page.more)[0]

    def sources(self, peer: PeerEntry, message: p.Sources) -> p.SourcesOk:
        """Who holds a file (by hash, and size when given); the asker is left out."""
        results = self.store.sources(message.hash, message.size, peer.peer_id)
        return p.SourcesOk(id=message.id, results=tuple(results))

    def browse(self, _peer: PeerEntry, message: p.Browse) -> p.BrowseOk:
        """Everything one online peer shares."""
        page = self.store.browse(message.host, message.port, message.limit)
        return p.BrowseOk(id=message.id, results=tuple(page.results), more=page.more)

    def update(self, peer: PeerEntry, message: p.Update) -> p.UpdateOk | Job:
        assert peer.peer_id is not None
        store = self.store
        add = message.add
        # In steps only when no step can break the files-per-peer limit (else one
        # transaction, so a refused UPDATE changes nothing).
        if len(add) > STEP_FILES and (
            store.file_count(peer.peer_id) + len(add) <= store.max_files_per_peer
        ):
            return self._update_in_steps(peer, message)
        try:
            total = store.update_files(peer.peer_id, add, message.remove)
        except IndexLimitError as exc:
            raise _too_large(exc, message.id) from None
        return p.UpdateOk(id=message.id, files=total)

    def _update_in_steps(self, peer: PeerEntry, message: p.Update) -> Job:
        store = self.store
        assert peer.peer_id is not None
        total = store.update_files(peer.peer_id, message.add[:STEP_FILES], message.remove)
        for start in range(STEP_FILES, len(message.add), STEP_FILES):
            yield
            total = store.update_files(peer.peer_id, message.add[start : start + STEP_FILES], ())
        return p.UpdateOk(id=message.id, files=total)

    def leave(self, peer: PeerEntry) -> int | None:
        """The peer leaves the index (its rows go at once); returns its old peer id."""
        peer_id, peer.peer_id, peer.port = peer.peer_id, None, None
        if peer_id is not None:
            self.store.remove_peer(peer_id)
        return peer_id
