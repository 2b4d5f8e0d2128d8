"""Nothing outside the shared index is served, asked for by hash over a real socket.

A real ``Library`` (or a whole ``PeerNode``) with its ``UploadServer``: a symlink leading out
of the shared folder, a file that is not a regular file (also when one is swapped in between
the server's check and its open), and the peer's own settings, queue and databases kept inside
the shared folder are never served; a plain shared file still is.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from PySide6.QtCore import QCoreApplication, QSettings

import app.sharing.jobs as jobs_module
from app.filenames import INCOMPLETE_FOLDER
from app.network import protocol as p
from app.network.pieces import hash_file
from app.network.protocol import PIECE_SIZE
from app.network.upload_server import UploadServer
from app.peer import PeerConfig, PeerNode
from app.settings import Settings
from app.sharing.library import Library
from app.sharing.policy import private_folder
from tests.swapper import Swapper
from tests.test_fuzz_index_server import wait_until
from tests.test_fuzz_upload_server import RawWire

WAIT_MS = 10_000
RACE_SECONDS = 4.0


def ask(qtbot, port: int, request: p.Message) -> dict:
    """One request on a fresh connection; the reply line."""
    wire = RawWire(port)
    try:
        wire.send(p.encode(request))
        wait_until(qtbot, wire.has_line, timeout=5)
        return wire.pop_line()
    finally:
        wire.close()


def served(qtbot, port: int, file_hash: str) -> bool:
    """True when PIECES and DOWNLOAD both answer; False when both are NOT_FOUND."""
    pieces = ask(qtbot, port, p.Pieces(id=1, hash=file_hash))
    download = ask(qtbot, port, p.Download(id=2, hash=file_hash))
    if pieces["op"] == "PIECES_OK" and download["op"] == "DOWNLOAD_OK":
        return True
    assert pieces["code"] == download["code"] == "NOT_FOUND", (pieces, download)
    return False


def write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


@pytest.fixture
def library_server(qtbot, tmp_path):
    """Start a Library over ``tmp_path/share`` and an UploadServer serving it."""
    made = []

    def start() -> tuple[Library, UploadServer]:
        library = Library([tmp_path / "share"], tmp_path / "state" / "hashes.db", debounce_ms=50)
        uploads = UploadServer(library)
        uploads.start("127.0.0.1", 0)
        made.append((library, uploads))
        with qtbot.waitSignal(library.hashing_finished, timeout=WAIT_MS):
            library.start()
        return library, uploads

    yield start
    for library, uploads in made:
        uploads.stop()
        library.stop()


def swap_after_check(monkeypatch, library: Library, swap) -> None:
    """Run ``swap(path)`` right after the server found the file by hash, before it opens it."""
    lookup = library.lookup

    def lookup_then_swap(file_hash: str):
        shared = lookup(file_hash)
        if shared is not None:
            swap(shared.path)
        return shared

    monkeypatch.setattr(library, "lookup", lookup_then_swap)


def test_symlinks_leading_out_are_never_served(qtbot, tmp_path, library_server, monkeypatch):
    share = tmp_path / "share"
    secret = write(tmp_path / "outside" / "secret.txt", b"a private letter")
    write(share / "visible.txt", b"for everyone")
    write(share / "twin.txt", b"for everyone too")
    (share / "link-out.txt").symlink_to(secret)
    (share / "folder-out").symlink_to(secret.parent, target_is_directory=True)
    library, uploads = library_server()
    port = uploads.serverPort()

    assert {shared.name for shared in library.files()} == {"visible.txt", "twin.txt"}
    assert not served(qtbot, port, hash_file(secret).hash)
    visible = next(s for s in library.files() if s.name == "visible.txt")
    assert served(qtbot, port, visible.hash)

    # The shared file becomes a link to an outside file of the same size and time.
    mtime_ns = visible.path.stat().st_mtime_ns
    lookalike = write(tmp_path / "outside" / "lookalike.txt", b"private text")
    os.utime(lookalike, ns=(mtime_ns, mtime_ns))
    visible.path.unlink()
    visible.path.symlink_to(lookalike)
    assert not served(qtbot, port, visible.hash)

    # The same swap between the server's check and its open.
    twin = next(s for s in library.files() if s.name == "twin.txt")
    twin_mtime = twin.path.stat().st_mtime_ns
    lookalike.write_bytes(b"private text too")  # the twin's size
    os.utime(lookalike, ns=(twin_mtime, twin_mtime))

    def to_link(path: Path) -> None:
        path.unlink()
        path.symlink_to(lookalike)

    swap_after_check(monkeypatch, library, to_link)
    reply = ask(qtbot, port, p.Download(id=3, hash=twin.hash))
    assert reply["op"] == "ERROR" and reply["code"] == "NOT_FOUND", reply


def test_files_that_are_not_regular_are_never_served(qtbot, tmp_path, library_server, monkeypatch):
    share = tmp_path / "share"
    write(share / "song.mp3", b"la la la")
    os.mkfifo(share / "pipe.mp4")
    write(share / "other.mp3", b"tra la la")
    library, uploads = library_server()
    port = uploads.serverPort()
    assert {shared.name for shared in library.files()} == {"song.mp3", "other.mp3"}

    # A shared file replaced by a pipe: refused at once, nobody blocks on the pipe.
    song = next(s for s in library.files() if s.name == "song.mp3")
    song.path.unlink()
    os.mkfifo(song.path)
    assert not served(qtbot, port, song.hash)

    # The same swap between the server's check and its open.
    other = next(s for s in library.files() if s.name == "other.mp3")

    def to_pipe(path: Path) -> None:
        path.unlink()
        os.mkfifo(path)

    swap_after_check(monkeypatch, library, to_pipe)
    reply = ask(qtbot, port, p.Download(id=3, hash=other.hash))
    assert reply["op"] == "ERROR" and reply["code"] == "NOT_FOUND", reply
    wait_until(qtbot, lambda: uploads.connection_count == 0, timeout=5)


def start_peer(qtbot, share: Path, downloads: Path, data_dir: Path) -> PeerNode:
    """A whole peer (no index server to reach) once it has hashed its shared folders."""
    config = PeerConfig(
        server_host="127.0.0.1",
        server_port=1,
        share_dir=share,
        download_dir=downloads,
        listen_host="127.0.0.1",
        listen_port=0,
        data_dir=data_dir,
    )
    node = PeerNode(config, min_backoff=60)
    node.start()
    qtbot.waitUntil(
        lambda: not node.library.is_hashing and bool(node.library.files()), timeout=WAIT_MS
    )
    return node


@pytest.fixture
def settings_in():
    """Put the user's settings folder at the given path, with the names main() sets."""
    old_names = QCoreApplication.organizationName(), QCoreApplication.applicationName()
    ini, user = QSettings.Format.IniFormat, QSettings.Scope.UserScope
    old_folder = Path(QSettings(ini, user, "o", "a").fileName()).parent.parent
    QCoreApplication.setOrganizationName("NapsterP2P")
    QCoreApplication.setApplicationName("napster-peer")
    yield lambda folder: QSettings.setPath(ini, user, str(folder))
    QSettings.setPath(ini, user, str(old_folder))
    QCoreApplication.setOrganizationName(old_names[0])
    QCoreApplication.setApplicationName(old_names[1])


def test_own_settings_queue_and_databases_are_never_served(qtbot, tmp_path, settings_in):
    share = tmp_path / "share"
    data_dir, downloads, config = share / "napster-data", share / "downloads", share / "config"
    # The user shares a folder that also holds the peer's data, downloads and settings.
    settings_in(config)
    settings = Settings()
    settings.server_address = "10.1.2.3:1099"
    settings.sync()
    assert Path(settings.fileName()).is_relative_to(share)
    write(share / "visible.txt", b"for everyone")
    write(data_dir / "queue.json", b"{ damaged")  # set aside as queue.json.bad at start
    write(downloads / "film.mkv.part", b"half a film")
    write(downloads / "film.mkv.part.napster-state", b"{}")
    node = start_peer(qtbot, share, downloads, data_dir)
    try:
        port = node.listen_port
        private = [path for path in share.rglob("*") if path.is_file()]
        private.remove(share / "visible.txt")
        names = {path.name for path in private}
        assert {"queue.json.bad", "hashes.sqlite3", "napster-peer.ini", "film.mkv.part"} <= names
        assert [shared.name for shared in node.library.files()] == ["visible.txt"]
        assert [info.name for info in node.library.infos()] == ["visible.txt"]
        for path in private:
            assert not served(qtbot, port, hash_file(path).hash), path
        assert served(qtbot, port, node.library.files()[0].hash)
    finally:
        node.stop()


def test_a_data_folder_that_is_the_shared_folder_still_shares_the_rest(qtbot, tmp_path):
    share = tmp_path / "share"
    write(share / "visible.txt", b"for everyone")
    write(share / "queue.json", b'{"version": 1, "transfers": []}')
    node = start_peer(qtbot, share, share, data_dir=share)
    try:
        assert [shared.name for shared in node.library.files()] == ["visible.txt"]
        for own in ("queue.json", "hashes.sqlite3", "peer-key.pem", "peer-cert.pem"):
            assert not served(qtbot, node.listen_port, hash_file(share / own).hash), own
    finally:
        node.stop()


# ------------------------------------------------------------------ folders swapped for links


def inodes(folder: Path) -> set[tuple[int, int]]:
    return {(path.lstat().st_dev, path.lstat().st_ino) for path in folder.rglob("*")}


def test_a_refused_download_never_rehashes_through_a_link(qtbot, tmp_path, library_server):
    share, outside = tmp_path / "share", tmp_path / "outside"
    write(share / "sub" / "letter.txt", b"an inside letter")
    secret = write(outside / "letter.txt", b"a private letter, outside")
    library, uploads = library_server()
    announced: list = []
    library.files_added.connect(announced.extend)
    letter = next(s for s in library.files() if s.name == "letter.txt")

    # One swap, no race: the folder becomes a link to a folder outside with the same name in it.
    (share / "sub").rename(tmp_path / "sub-away")
    (share / "sub").symlink_to(outside, target_is_directory=True)
    with qtbot.waitSignal(library.file_failed, timeout=WAIT_MS) as failed:
        reply = ask(qtbot, uploads.serverPort(), p.Download(id=1, hash=letter.hash))
    assert reply["op"] == "ERROR" and reply["code"] == "NOT_FOUND", reply
    assert failed.args[0] == str(letter.path)
    qtbot.waitUntil(lambda: not library.is_hashing, timeout=WAIT_MS)
    secret_hash = hash_file(secret).hash
    assert library.lookup(secret_hash) is None
    assert secret_hash not in {shared.hash for shared in announced}
    assert not served(qtbot, uploads.serverPort(), secret_hash)


def test_a_folder_flipped_with_a_link_outside_leaks_nothing(qtbot, tmp_path, monkeypatch):
    """The done-when test: flip, rescan and ask for everything for seconds; nothing leaks."""
    share, outside = tmp_path / "share", tmp_path / "outside"
    marker = b"OUTSIDE-MARKER-" + os.urandom(8).hex().encode()
    write(share / "films" / "a.txt", b"inside a, inside a")
    write(share / "films" / "deeper" / "b.txt", b"inside b")
    write(share / "plain.txt", b"plain and inside")
    write(outside / "a.txt", marker + b" a")
    write(outside / "marker.txt", marker)
    write(outside / "deeper" / "b.txt", marker + b" b")
    (share / "door").symlink_to(outside, target_is_directory=True)
    outside_hashes = {hash_file(path).hash for path in outside.rglob("*") if path.is_file()}
    inside_hashes = {hash_file(path).hash for path in share.rglob("*") if path.is_file()}
    outside_inodes = inodes(outside)

    hashed: list[tuple[int, int]] = []
    real_hash_file = jobs_module.hash_file

    def recording_hash_file(fd, progress=None, piece_size=PIECE_SIZE):
        st = os.fstat(fd)
        hashed.append((st.st_dev, st.st_ino))
        return real_hash_file(fd, progress, piece_size)

    monkeypatch.setattr(jobs_module, "hash_file", recording_hash_file)
    library = Library(
        [share], tmp_path / "state" / "hashes.db", debounce_ms=5, rescan_interval_ms=50
    )
    announced: list = []
    library.files_added.connect(announced.extend)
    uploads = UploadServer(library)
    port = uploads.start("127.0.0.1", 0)
    served_bytes = refused = 0
    try:
        with qtbot.waitSignal(library.hashing_finished, timeout=WAIT_MS):
            library.start()
        wire = RawWire(port)
        with Swapper(share / "films", share / "door") as swapper:
            deadline = time.monotonic() + RACE_SECONDS
            while time.monotonic() < deadline:
                library.rescan()
                wanted = [shared.hash for shared in library.files()] + sorted(outside_hashes)
                for request_id, file_hash in enumerate(wanted):
                    if wire.is_closed():
                        wire.close()
                        wire = RawWire(port)
                    wire.send(p.encode(p.Download(id=request_id, hash=file_hash)))
                    wait_until(qtbot, wire.has_line, timeout=5)
                    reply = wire.pop_line()
                    if reply["op"] != "DOWNLOAD_OK":
                        assert reply["code"] in ("NOT_FOUND", "BUSY"), reply
                        refused += 1
                        continue
                    assert file_hash not in outside_hashes
                    length = reply["length"]
                    wait_until(qtbot, lambda w=wire, n=length: w.has_bytes(n), timeout=5)
                    body = wire.pop_bytes(length)
                    assert marker not in body
                    served_bytes += len(body)
        wire.close()
        qtbot.waitUntil(lambda: not library.is_hashing, timeout=WAIT_MS)
    finally:
        uploads.stop()
        library.stop()
    assert swapper.swaps > 100, swapper.swaps
    assert served_bytes > 0 and refused > 0, (served_bytes, refused)
    assert not set(hashed) & outside_inodes
    assert not {shared.hash for shared in announced} & outside_hashes
    assert {shared.hash for shared in announced} <= inside_hashes


# ------------------------------------------------------------------ partial downloads


def test_unfinished_downloads_are_never_shared(qtbot, tmp_path):
    share, downloads = tmp_path / "share", tmp_path / "downloads"
    write(share / "visible.txt", b"for everyone")
    incomplete = downloads / INCOMPLETE_FOLDER
    private = [
        write(incomplete / "film.mkv", b"half a film, under an ordinary name"),
        write(incomplete / "film.mkv.part", b"half a film"),
        write(incomplete / "deep" / "song.mp3", b"half a song"),
        write(downloads / "clip.mp4.part_", b"a partial file with a tail on its suffix"),
        write(downloads / "clip.mp4.part.napster-state.napster-tmp", b"{}"),
        write(share / "other.mp4.napster-tmp.1", b"a temporary file"),
    ]
    write(downloads / "finished.mkv", b"a finished film")
    node = start_peer(qtbot, share, downloads, tmp_path / "data")
    try:
        qtbot.waitUntil(lambda: len(node.library.files()) == 2, timeout=WAIT_MS)
        assert sorted(s.name for s in node.library.files()) == ["finished.mkv", "visible.txt"]
        for path in private:
            assert not served(qtbot, node.listen_port, hash_file(path).hash), path
        # A finished download announced into the incomplete folder is still refused.
        node.library.add_downloaded(private[0], hash_file(private[0]))
        assert node.library.lookup(hash_file(private[0]).hash) is None
    finally:
        node.stop()


def test_folders_the_transfer_manager_owns_are_never_shared(qtbot, tmp_path):
    share = tmp_path / "share"
    owned = share / "incoming"
    write(share / "visible.txt", b"for everyone")
    inside = write(owned / "deep" / "film.mkv", b"the transfer manager's")
    library = Library(
        [share],
        tmp_path / "state" / "hashes.db",
        debounce_ms=50,
        is_private=private_folder(lambda: owned),
    )
    uploads = UploadServer(library)
    uploads.start("127.0.0.1", 0)
    try:
        with qtbot.waitSignal(library.hashing_finished, timeout=WAIT_MS):
            library.start()
        assert [shared.name for shared in library.files()] == ["visible.txt"]
        library.add_downloaded(inside, hash_file(inside))
        assert library.lookup(hash_file(inside).hash) is None
        assert not served(qtbot, uploads.serverPort(), hash_file(inside).hash)
    finally:
        uploads.stop()
        library.stop()
