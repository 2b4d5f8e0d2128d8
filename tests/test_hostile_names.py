"""Every hostile file name, in both directions, through the real server, client and downloader.

Offered in JOIN and UPDATE: a name PROTOCOL.md forbids is refused with BAD_REQUEST and the
connection closed; any other name is stored exactly as sent. Received in a search result and
downloaded: nothing is written outside the download folder, nothing existing is overwritten
(not even a name differing only in case), and the file lands under a name that is safe on
every file system. Every log line shows names escaped.
"""

from __future__ import annotations

import hashlib
import json
import logging
import unicodedata
from pathlib import Path

import pytest

from app.download.manager import TransferManager
from app.filenames import is_windows_reserved
from app.network import protocol as p
from app.network.index_client import IndexClient
from app.network.upload_server import UploadServer
from server_app.index_server import IndexServer
from server_app.index_store import SqliteIndexStore
from tests.catalog import Catalog
from tests.test_transfer import FAST
from tests.wire_client import WireClient

# (label, name, PROTOCOL.md accepts it). A bytes name travels as raw bytes on the wire.
HOSTILE_NAMES: list[tuple[str, str | bytes, bool]] = [
    ("parent", "../x", False),
    ("nested parent", "sub/../../x", False),
    ("dot dot", "..", False),
    ("dot", ".", False),
    ("absolute", "/etc/passwd", False),
    ("drive", "C:\\x", False),
    ("backslash parents", "..\\..\\evil.exe", False),
    ("trailing slash", "foo/", False),
    ("dot slash", "./foo", False),
    ("NFD accent", "e\u0301cole.txt", True),
    ("angstrom sign", "\u212b.txt", True),
    ("fullwidth", "\uff21\uff55\uff4c\uff41.mp4", True),
    ("NUL", "a\x00b.txt", False),
    ("tab", "tab\tname.txt", False),
    ("newline", "new\nline.txt", False),
    ("DEL", "del\x7f.txt", False),
    ("C1 control", "nel\x85.txt", False),
    ("ANSI escape", "\x1b[31mred\x1b[0m.txt", False),
    ("right-to-left override", "evil\u202egpj.exe", True),
    ("zero-width space", "zero\u200bwidth.mp4", True),
    ("byte order mark", "\ufeffbom.txt", True),
    ("line separator", "line\u2028sep.txt", True),
    ("CON", "CON", True),
    ("con.txt", "con.txt", True),
    ("COM1 space", "COM1 ", True),
    ("LPT9 extension", "lpt9.log", True),
    ("trailing dots", "dots...", True),
    ("trailing spaces", "spaces  ", True),
    ("only dots and spaces", ". . .", True),
    ("leading dot", ".hidden", True),
    ("Windows forbidden", '<>:"|?*.txt', True),
    ("our part suffix", "movie.mp4.part", True),
    ("our state suffix", "x.napster-state", True),
    ("invalid UTF-8", b"bad\xff\xfe.txt", False),
    ("lone surrogate", "bad\udcff.txt", False),
    ("255 bytes cut in a character", ("\u00e9" * 127).encode() + b"\xc3", False),
    ("255 bytes of two-byte characters", "\u00e9" * 127 + "x", True),
    ("256 bytes", "\u00e9" * 128, False),
    ("empty", "", False),
    ("case-only collision", "MOVIE.mp4", True),
    ("exact collision", "precious.txt", True),
]

UNSAFE_CATEGORIES = {"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"}
PAYLOAD = b"the real bytes " * 70


def wire_name(name: str | bytes) -> bytes:
    """The JSON string of a name as a hostile peer would send it."""
    if isinstance(name, bytes):
        return b'"' + name + b'"'
    return json.dumps(name).encode()


def file_json(name: str | bytes, file_hash: str) -> bytes:
    return (
        b'{"name":' + wire_name(name) + b',"size":' + str(len(PAYLOAD)).encode()
        + b',"hash":"' + file_hash.encode() + b'"}'
    )  # fmt: skip


def shown_safely(text: str) -> bool:
    return not any(unicodedata.category(ch) in UNSAFE_CATEGORIES for ch in text)


def snapshot(root: Path, skip: Path) -> dict[Path, str]:
    """Every file under ``root`` (but ``skip``) with a digest of its bytes."""
    return {
        path: hashlib.sha256(path.read_bytes()).hexdigest()
        for path in root.rglob("*")
        if path.is_file() and skip not in path.parents
    }


@pytest.fixture
def network(qtbot, tmp_path):
    """An index server, a sharing peer's upload server, and a searcher's index client."""
    share = tmp_path / "share"
    share.mkdir()
    (share / "payload.bin").write_bytes(PAYLOAD)
    catalog = Catalog()
    shared = catalog.share(share / "payload.bin")
    uploads = UploadServer(catalog)
    uploads.start("127.0.0.1", 0)
    server = IndexServer(SqliteIndexStore())
    server.start("127.0.0.1", 0)
    searcher = IndexClient([("127.0.0.1", server.serverPort())], 1, lambda: [])
    with qtbot.waitSignal(searcher.joined, timeout=5000):
        searcher.start()
    yield server, uploads, shared, searcher
    with qtbot.waitSignal(searcher.stopped, timeout=5000):
        searcher.stop()
    uploads.stop()
    server.stop()
    server.store.close()


def offer(qtbot, server: IndexServer, name, file_hash: str, port: int, wire_ok: bool) -> list:
    """Offer the name in a JOIN and, on another connection, in an UPDATE; return the clients."""
    joining, updating = WireClient(server.serverPort()), WireClient(server.serverPort())
    entry = file_json(name, file_hash)
    joining.send_raw(b'{"op":"JOIN","id":1,"port":' + str(port).encode() + b',"files":[')
    joining.send_raw(entry + b"]}\n")
    reply = joining.reply(qtbot)
    assert updating.request(qtbot, {"op": "JOIN", "id": 1, "port": 9, "files": []})["op"] == (
        "JOIN_OK"
    )
    updating.send_raw(b'{"op":"UPDATE","id":2,"add":[' + entry + b"]}\n")
    update_reply = updating.reply(qtbot)
    if wire_ok:
        assert reply == {"op": "JOIN_OK", "id": 1, "peer": f"127.0.0.1:{port}", "files": 1}
        assert update_reply == {"op": "UPDATE_OK", "id": 2, "files": 1}
        for peer in server.store.peers():
            if peer.port in (port, 9):
                assert [f.name for f in server.store.peer_files(peer.peer_id)] == [name]
    else:
        for client, answer in ((joining, reply), (updating, update_reply)):
            assert answer["op"] == "ERROR" and answer["code"] == "BAD_REQUEST", answer
            qtbot.waitUntil(client.is_closed, timeout=3000)
        assert server.store.counters().files == 0
    return [joining, updating]


def receive(qtbot, searcher: IndexClient, name, file_hash: str, wire_ok: bool) -> p.SearchResult:
    """The search result as the downloader gets it (or would, from a hostile server)."""
    result_line = b'{"op":"SEARCH_OK","id":1,"results":[' + file_json(name, file_hash)[:-1]
    result_line += b',"peers":[{"host":"127.0.0.1","port":9}]}]}'
    if not wire_ok:
        with pytest.raises(p.ProtocolError):
            p.decode_line(result_line, p.DOWNLOADER_BULK_OPS)
        text = name.decode("utf-8", "surrogateescape") if isinstance(name, bytes) else name
        return p.SearchResult(text, len(PAYLOAD), file_hash)
    with qtbot.waitSignal(searcher.search_finished, timeout=5000) as found:
        searcher.search(name)
    results = [r for r in found.args[1] if r.hash == file_hash]
    assert [r.name for r in results] == [name]
    return results[0]


@pytest.mark.parametrize(
    "name, wire_ok",
    [(name, ok) for _, name, ok in HOSTILE_NAMES],
    ids=[label for label, *_ in HOSTILE_NAMES],
)
def test_hostile_name_is_refused_or_stored_exactly_and_lands_safely(
    qtbot, tmp_path, caplog, network, name, wire_ok
):
    caplog.set_level(logging.INFO)
    server, uploads, shared, searcher = network
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    (downloads / "movie.mp4").write_bytes(b"an existing movie")
    (downloads / "precious.txt").write_bytes(b"an existing document")
    for sentinel in ("x", "evil.exe", "foo", "passwd"):
        (tmp_path / sentinel).write_bytes(b"outside the download folder")
    data_dir = tmp_path / "data"
    before = snapshot(tmp_path, skip=data_dir)

    announcers = offer(qtbot, server, name, shared.hash, uploads.serverPort(), wire_ok)
    result = receive(qtbot, searcher, name, shared.hash, wire_ok)
    sources = list(result.peers) or [p.PeerAddress("127.0.0.1", uploads.serverPort())]
    transfers = TransferManager(data_dir / "queue.json", downloads, timeouts=FAST)
    try:
        with qtbot.waitSignal(transfers.transfer_finished, timeout=10000) as finished:
            transfers.add(result.hash, result.size, result.name, sources)
    finally:
        transfers.shutdown()
        for client in announcers:
            client.close()

    final = Path(finished.args[1])
    after = snapshot(tmp_path, skip=data_dir)
    assert {path: after[path] for path in before} == before, "an existing file changed"
    assert set(after) - set(before) == {final}, "something was written outside the download"
    assert final.parent == downloads and final.read_bytes() == PAYLOAD
    existing = {path.name.lower() for path in before if path.parent == downloads}
    assert final.name.lower() not in existing, "a name differing only in case was reused"
    local = final.name
    assert p.name_problem(local) is None and shown_safely(local)
    assert local == unicodedata.normalize("NFC", local)
    assert not is_windows_reserved(local) and not set(local) & set('<>:"|?*')
    assert local == local.strip(" ").rstrip(".") and not local.startswith(".")
    assert not local.endswith((".part", ".napster-state"))
    for record in caplog.records:
        assert shown_safely(record.getMessage()), record.getMessage()


def test_a_placed_file_takes_a_free_name_and_never_replaces_one(tmp_path):
    from app.filenames import place_without_overwriting

    (tmp_path / "Film.mkv").write_bytes(b"mine")
    (tmp_path / "film (1).mkv").write_bytes(b"mine too")
    arrived = tmp_path / "incoming.tmp"
    arrived.write_bytes(b"new")
    final = place_without_overwriting(arrived, tmp_path, "film.mkv")
    assert final == tmp_path / "film (2).mkv" and final.read_bytes() == b"new"
    assert not arrived.exists()
    assert (tmp_path / "Film.mkv").read_bytes() == b"mine"
    another = tmp_path / "another.tmp"
    another.write_bytes(b"x")
    assert place_without_overwriting(another, tmp_path, "film (2).mkv", attempts=0) is None
    assert another.exists()
