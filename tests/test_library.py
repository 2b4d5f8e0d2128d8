"""The shared library on real temporary folders: scanning, hashing, the cache and the watcher."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

import app.sharing.jobs as jobs_module
from app.network.pieces import HashCancelled, hash_file
from app.network.protocol import PIECE_SIZE, FileInfo
from app.sharing.catalog import SharedFile
from app.sharing.library import BATCH_FILES, Library
from app.sharing.policy import SharePolicy

WAIT_MS = 10_000


class Recorder:
    """Everything a library emits, in order."""

    def __init__(self, library: Library) -> None:
        self.events: list[tuple[str, object]] = []
        self.batches: list[list[SharedFile]] = []
        self.removed: list[str] = []
        self.progress: list[tuple[int, int, str]] = []
        self.failed: list[tuple[str, str]] = []
        library.files_added.connect(self._on_added)
        library.files_removed.connect(self._on_removed)
        library.hashing_progress.connect(lambda *args: self.progress.append(args))
        library.file_failed.connect(lambda *args: self.failed.append(args))

    def _on_added(self, files: list[SharedFile]) -> None:
        self.batches.append(list(files))
        self.events.append(("added", list(files)))

    def _on_removed(self, hashes: list[str]) -> None:
        self.removed.extend(hashes)
        self.events.append(("removed", list(hashes)))

    @property
    def added(self) -> list[SharedFile]:
        return [shared for batch in self.batches for shared in batch]


def fd_path(fd: int) -> str:
    """The path an open descriptor was reached by (the library hashes descriptors)."""
    return os.readlink(f"/proc/self/fd/{fd}")


class HashCounter:
    """Stands in for ``hash_file`` in the library and counts the files it hashes."""

    def __init__(self) -> None:
        self.paths: list[str] = []
        self.lock = threading.Lock()

    def __call__(self, path, progress=None, piece_size=PIECE_SIZE):
        with self.lock:
            self.paths.append(fd_path(path))
        return hash_file(path, progress, piece_size)


def write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def names(library: Library) -> set[str]:
    return {shared.name for shared in library.files()}


def by_name(library: Library) -> dict[str, SharedFile]:
    return {shared.name: shared for shared in library.files()}


@pytest.fixture
def share(tmp_path: Path) -> Path:
    folder = tmp_path / "share"
    folder.mkdir()
    return folder


@pytest.fixture
def cache_path(tmp_path: Path) -> Path:
    return tmp_path / "state" / "hashes.db"


@pytest.fixture
def make_library(cache_path: Path):
    libraries: list[Library] = []

    def make(folders, cache: Path | None = None, debounce_ms: int = 50, **kwargs) -> Library:
        library = Library(folders, cache or cache_path, debounce_ms=debounce_ms, **kwargs)
        libraries.append(library)
        return library

    yield make
    for library in libraries:
        library.stop()


def start(qtbot, library: Library) -> None:
    with qtbot.waitSignal(library.hashing_finished, timeout=WAIT_MS):
        library.start()


def test_shares_nested_files_with_the_digests_of_hash_file(qtbot, share, make_library):
    small = write(share / "a.txt", b"hello")
    big = write(share / "sub" / "deeper" / "b.bin", os.urandom(2 * PIECE_SIZE + 1))
    empty = write(share / "sub" / "empty.dat", b"")
    library = make_library([share])
    recorder = Recorder(library)

    start(qtbot, library)

    shared = by_name(library)
    assert set(shared) == {"a.txt", "b.bin", "empty.dat"}
    for path in (small, big, empty):
        entry = shared[path.name]
        digest = hash_file(path)
        assert entry.path == path.resolve()
        assert entry.path.is_absolute()
        assert (entry.size, entry.hash, entry.pieces) == (digest.size, digest.hash, digest.pieces)
        assert entry.mtime_ns == path.stat().st_mtime_ns
        assert library.lookup(digest.hash) == entry
        assert entry.info() == FileInfo(path.name, digest.size, digest.hash)
    assert len(shared["b.bin"].pieces) == 3
    assert shared["empty.dat"].pieces == ()
    assert sorted(recorder.added, key=lambda s: s.name) == sorted(
        library.files(), key=lambda s: s.name
    )
    assert sorted(library.infos(), key=lambda i: i.name) == [
        shared[name].info() for name in ("a.txt", "b.bin", "empty.dat")
    ]
    assert recorder.progress[-1] == (3, 3, "")
    assert {name for _done, _total, name in recorder.progress[:-1]} <= {
        "a.txt",
        "b.bin",
        "empty.dat",
    }
    assert recorder.progress[0][2] != ""
    assert not library.is_hashing
    assert library.lookup("0" * 64) is None


def test_skips_hidden_private_special_and_outside_files(qtbot, tmp_path, share, make_library):
    write(share / "visible.txt", b"visible")
    real = write(share / "sub" / "real.txt", b"real")
    write(share / ".hidden.txt", b"hidden")
    write(share / ".hidden-dir" / "inside.txt", b"inside a hidden folder")
    write(share / "movie.mp4.part", b"partial")
    write(share / "movie.mp4.napster-state", b"state")
    write(share / "upload.napster-tmp", b"temporary")
    write(share / "settings.ini", b"[peer]")
    os.mkfifo(share / "pipe")
    outside = write(tmp_path / "outside" / "secret.txt", b"secret")
    (share / "link-out.txt").symlink_to(outside)
    (share / "dir-out").symlink_to(outside.parent, target_is_directory=True)
    (share / "link-in.txt").symlink_to(real)
    (share / "dir-in").symlink_to(real.parent, target_is_directory=True)
    (share / "link-to-hidden.txt").symlink_to(share / ".hidden-dir" / "inside.txt")
    (share / "broken").symlink_to(share / "nowhere")
    # The peer's own database sits in the shared folder, as when the user shares its parent.
    library = make_library(
        [share], cache=share / "hashes.db", excluded_files=[share / "settings.ini"]
    )

    start(qtbot, library)

    for own_file in ("hashes.db", "hashes.db-wal", "hashes.db-shm"):
        assert (share / own_file).exists()
    files = library.files()
    assert sorted(shared.name for shared in files) == ["real.txt", "visible.txt"]
    assert by_name(library)["real.txt"].path == real.resolve()
    assert all(shared.path.is_relative_to(share.resolve()) for shared in files)


def test_symlink_loops_do_not_hang(qtbot, share, make_library):
    write(share / "a" / "b" / "file.txt", b"data")
    (share / "a" / "b" / "up").symlink_to(share, target_is_directory=True)
    (share / "a" / "self").symlink_to(share / "a", target_is_directory=True)
    (share / "ping").symlink_to(share / "pong")
    (share / "pong").symlink_to(share / "ping")
    (share / "itself").symlink_to(share / "itself")
    library = make_library([share])

    start(qtbot, library)

    assert [shared.name for shared in library.files()] == ["file.txt"]


def test_restart_takes_unchanged_files_from_the_cache(qtbot, share, make_library, monkeypatch):
    for index in range(5):
        write(share / f"file{index}.bin", os.urandom(1000 + index))
    first = make_library([share])
    start(qtbot, first)
    expected = {shared.path: shared for shared in first.files()}
    first.stop()

    counter = HashCounter()
    monkeypatch.setattr(jobs_module, "hash_file", counter)
    second = make_library([share])
    recorder = Recorder(second)
    start(qtbot, second)

    assert counter.paths == []
    assert recorder.progress == []
    assert {shared.path: shared for shared in recorder.added} == expected
    second.stop()

    changed = write(share / "file3.bin", b"changed")
    third = make_library([share])
    start(qtbot, third)
    assert counter.paths == [str(changed.resolve())]
    assert by_name(third)["file3.bin"].hash == hash_file(changed).hash


def test_damaged_cache_is_replaced(qtbot, share, cache_path, make_library, monkeypatch):
    write(share / "a.txt", b"a")
    write(cache_path, b"this is not an SQLite database" * 100)
    first = make_library([share])
    start(qtbot, first)
    assert names(first) == {"a.txt"}
    first.stop()

    counter = HashCounter()
    monkeypatch.setattr(jobs_module, "hash_file", counter)
    second = make_library([share])
    start(qtbot, second)
    assert names(second) == {"a.txt"}
    assert counter.paths == []


def test_modified_file_is_hashed_again(qtbot, share, make_library):
    path = write(share / "video.mp4", b"first version")
    library = make_library([share])
    recorder = Recorder(library)
    start(qtbot, library)
    old = by_name(library)["video.mp4"]
    assert library.is_unchanged(old)

    before = path.stat()
    path.write_bytes(b"other version")  # same size
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns + 2_000_000_000))
    assert not library.is_unchanged(old)
    recorder.events.clear()
    library.rescan()

    new_hash = hash_file(path).hash
    qtbot.waitUntil(lambda: library.lookup(new_hash) is not None, timeout=WAIT_MS)
    assert library.lookup(old.hash) is None
    assert recorder.events[0] == ("removed", [old.hash])
    assert [s.hash for kind, files in recorder.events[1:] if kind == "added" for s in files] == [
        new_hash
    ]
    assert library.is_unchanged(library.lookup(new_hash))


def test_deleted_file_is_removed(qtbot, share, make_library):
    path = write(share / "gone.txt", b"soon gone")
    write(share / "kept.txt", b"kept")
    library = make_library([share])
    start(qtbot, library)
    gone = by_name(library)["gone.txt"]

    path.unlink()
    with qtbot.waitSignal(
        library.files_removed, timeout=WAIT_MS, check_params_cb=lambda h: gone.hash in h
    ):
        library.rescan()

    assert library.lookup(gone.hash) is None
    assert names(library) == {"kept.txt"}
    assert not library.is_unchanged(gone)


def test_watcher_notices_new_files_and_folders(qtbot, share, make_library):
    write(share / "old.txt", b"old")
    library = make_library([share])
    start(qtbot, library)

    write(share / "new.txt", b"new")
    qtbot.waitUntil(lambda: "new.txt" in names(library), timeout=WAIT_MS)

    write(share / "season1" / "episode1.mkv", b"episode 1")
    qtbot.waitUntil(lambda: "episode1.mkv" in names(library), timeout=WAIT_MS)

    # The folder made after start is watched too.
    write(share / "season1" / "episode2.mkv", b"episode 2")
    qtbot.waitUntil(lambda: "episode2.mkv" in names(library), timeout=WAIT_MS)
    assert names(library) == {"old.txt", "new.txt", "episode1.mkv", "episode2.mkv"}


def test_mark_changed_from_a_plain_thread(qtbot, share, make_library):
    path = write(share / "talk.mp4", b"version one")
    library = make_library([share])
    recorder = Recorder(library)
    start(qtbot, library)
    old = by_name(library)["talk.mp4"]

    path.write_bytes(b"version two, longer")
    worker = threading.Thread(target=lambda: library.mark_changed(library.lookup(old.hash)))
    worker.start()
    worker.join()
    assert library.lookup(old.hash) is None  # forgotten before the library thread hears of it

    new_hash = hash_file(path).hash
    qtbot.waitUntil(lambda: library.lookup(new_hash) is not None, timeout=WAIT_MS)
    assert recorder.removed == [old.hash]
    assert names(library) == {"talk.mp4"}


def test_lookup_from_threads_while_the_library_changes(qtbot, share, make_library):
    paths = [write(share / f"f{index:02}.bin", os.urandom(64)) for index in range(40)]
    library = make_library([share])
    start(qtbot, library)
    hashes = [shared.hash for shared in library.files()]
    stop_readers = threading.Event()
    errors: list[BaseException] = []
    wrong: list[tuple[str, SharedFile]] = []
    lookups = [0]

    def read() -> None:
        try:
            while not stop_readers.is_set():
                for file_hash in hashes:
                    found = library.lookup(file_hash)
                    if found is not None and found.hash != file_hash:
                        wrong.append((file_hash, found))
                    if found is not None:
                        library.is_unchanged(found)
                    lookups[0] += 1
                library.files()
                library.infos()
        except BaseException as exc:
            errors.append(exc)

    readers = [threading.Thread(target=read) for _ in range(4)]
    for reader in readers:
        reader.start()
    try:
        for path in paths[:20]:
            path.unlink()
        for index in range(20):
            write(share / f"new{index:02}.bin", os.urandom(64))
        library.rescan()
        qtbot.waitUntil(
            lambda: (
                names(library)
                == {p.name for p in paths[20:]} | {f"new{i:02}.bin" for i in range(20)}
            ),
            timeout=WAIT_MS,
        )
    finally:
        stop_readers.set()
        for reader in readers:
            reader.join()
    assert errors == []
    assert wrong == []
    assert lookups[0] > len(hashes)


def test_add_downloaded_shares_without_hashing(qtbot, tmp_path, share, make_library, monkeypatch):
    downloaded = write(share / "downloads" / "movie.mkv", os.urandom(PIECE_SIZE + 10))
    digest = hash_file(downloaded)
    counter = HashCounter()
    monkeypatch.setattr(jobs_module, "hash_file", counter)
    library = make_library([share], debounce_ms=60_000)
    recorder = Recorder(library)
    start(qtbot, library)
    assert by_name(library)["movie.mkv"].hash == digest.hash  # found by the first scan
    assert len(counter.paths) == 1

    second = write(share / "downloads" / "second.mkv", os.urandom(3000))
    second_digest = hash_file(second)
    counter.paths.clear()
    recorder.batches.clear()
    library.add_downloaded(second, second_digest)
    assert [s.name for s in recorder.added] == ["second.mkv"]  # announced at once
    entry = library.lookup(second_digest.hash)
    assert entry is not None and entry.pieces == second_digest.pieces
    assert library.is_unchanged(entry)

    third = write(share / "third.mkv", b"from another thread")
    worker = threading.Thread(target=library.add_downloaded, args=(third, hash_file(third)))
    worker.start()
    worker.join()
    qtbot.waitUntil(lambda: "third.mkv" in names(library), timeout=WAIT_MS)

    outside = write(tmp_path / "elsewhere" / "outside.mkv", b"not shared")
    library.add_downloaded(outside, hash_file(outside))
    assert "outside.mkv" not in names(library)
    assert counter.paths == []
    library.stop()

    restarted = make_library([share])
    start(qtbot, restarted)
    assert names(restarted) == {"movie.mkv", "second.mkv", "third.mkv"}
    assert counter.paths == []


def test_file_deleted_between_scan_and_hash_is_reported(qtbot, share, make_library, monkeypatch):
    doomed = write(share / "doomed.bin", b"about to vanish")
    write(share / "fine.bin", b"fine")

    real_open = SharePolicy.open

    def delete_then_open(policy: SharePolicy, path: str) -> int:
        if Path(path).name == "doomed.bin":
            os.unlink(path)
        return real_open(policy, path)

    monkeypatch.setattr(SharePolicy, "open", delete_then_open)
    library = make_library([share])
    recorder = Recorder(library)
    start(qtbot, library)

    assert len(recorder.failed) == 1
    failed_path, reason = recorder.failed[0]
    assert failed_path == str(doomed.resolve())
    assert "vanished" in reason
    assert names(library) == {"fine.bin"}
    assert recorder.progress[-1] == (2, 2, "")


def test_file_changing_while_hashed_is_hashed_again(qtbot, share, make_library, monkeypatch):
    growing = write(share / "growing.log", b"first line\n")
    calls: list[str] = []

    def hash_then_append(path, progress=None, piece_size=PIECE_SIZE):
        calls.append(fd_path(path))
        digest = hash_file(path, progress, piece_size)
        if len(calls) == 1:
            with open(calls[0], "ab") as f:
                f.write(b"second line\n")
        return digest

    monkeypatch.setattr(jobs_module, "hash_file", hash_then_append)
    library = make_library([share])
    recorder = Recorder(library)
    start(qtbot, library)

    assert len(calls) == 2
    assert recorder.failed == []
    assert by_name(library)["growing.log"].hash == hash_file(growing).hash


def test_stop_while_hashing_a_big_file_returns_promptly(qtbot, share, make_library, monkeypatch):
    big = share / "big.bin"
    with open(big, "wb") as f:
        f.write(bytes(64 * 1024 * 1024))
    hashing = threading.Event()
    outcome: list[BaseException | None] = []

    def held_hash(path, progress=None, piece_size=PIECE_SIZE):
        # Hold the hash after its first piece until the library says stop.
        def hold(done: int, total: int) -> bool:
            hashing.set()
            while progress(done, total) is not False:
                threading.Event().wait(0.005)
            return False

        try:
            digest = hash_file(path, hold, piece_size)
        except BaseException as exc:
            outcome.append(exc)
            raise
        outcome.append(None)
        return digest

    monkeypatch.setattr(jobs_module, "hash_file", held_hash)
    library = make_library([share])
    recorder = Recorder(library)
    library.start()
    qtbot.waitUntil(hashing.is_set, timeout=WAIT_MS)
    assert library.is_hashing

    began = time.monotonic()
    library.stop()
    assert time.monotonic() - began < 5
    assert len(outcome) == 1 and isinstance(outcome[0], HashCancelled)
    assert not library.is_hashing
    assert library.files() == []
    assert recorder.added == []


def test_set_folders_switches_what_is_shared(qtbot, tmp_path, make_library):
    first = write(tmp_path / "first" / "one.txt", b"one")
    write(tmp_path / "second" / "two.txt", b"two")
    library = make_library([first.parent])
    recorder = Recorder(library)
    start(qtbot, library)
    one = by_name(library)["one.txt"]

    library.set_folders([tmp_path / "second"])
    qtbot.waitUntil(lambda: names(library) == {"two.txt"}, timeout=WAIT_MS)
    assert one.hash in recorder.removed
    assert not library.is_unchanged(one)
    assert library.folders == ((tmp_path / "second").resolve(),)


def test_is_unchanged_rejects_a_file_swapped_for_a_link(qtbot, tmp_path, share, make_library):
    path = write(share / "doc.txt", b"shared text")
    outside = write(tmp_path / "private" / "doc.txt", b"secret text")
    library = make_library([share])
    start(qtbot, library)
    shared = by_name(library)["doc.txt"]
    assert library.is_unchanged(shared)

    mtime_ns = path.stat().st_mtime_ns
    os.utime(outside, ns=(mtime_ns, mtime_ns))
    path.unlink()
    path.symlink_to(outside)
    assert os.stat(path).st_size == shared.size and os.stat(path).st_mtime_ns == shared.mtime_ns
    assert not library.is_unchanged(shared)


def test_duplicates_keep_every_name_announced(qtbot, share, make_library):
    content = b"same bytes under two names"
    one = write(share / "one.bin", content)
    write(share / "sub" / "two.bin", content)
    write(share / "bad\nname.txt", b"a name the protocol cannot carry")
    library = make_library([share])
    recorder = Recorder(library)
    start(qtbot, library)
    file_hash = hash_file(one).hash

    assert names(library) == {"one.bin", "two.bin", "bad\nname.txt"}
    assert sorted((i.name, i.hash) for i in library.infos() if i.hash == file_hash) == [
        ("one.bin", file_hash),
        ("two.bin", file_hash),
    ]
    assert len(library.infos()) == 2

    recorder.events.clear()
    one.unlink()
    library.rescan()
    qtbot.waitUntil(lambda: "one.bin" not in names(library), timeout=WAIT_MS)
    assert recorder.events[0] == ("removed", [file_hash])
    kind, files = recorder.events[1]
    assert kind == "added" and [s.name for s in files] == ["two.bin"]
    assert library.lookup(file_hash).name == "two.bin"


def test_renamed_file_keeps_its_digest(qtbot, share, make_library, monkeypatch):
    old = write(share / "draft.mp4", os.urandom(5000))
    library = make_library([share])
    recorder = Recorder(library)
    start(qtbot, library)
    file_hash = by_name(library)["draft.mp4"].hash
    counter = HashCounter()
    monkeypatch.setattr(jobs_module, "hash_file", counter)

    recorder.events.clear()
    old.rename(share / "final.mp4")
    qtbot.waitUntil(lambda: names(library) == {"final.mp4"}, timeout=WAIT_MS)

    assert counter.paths == []
    assert recorder.events[0] == ("removed", [file_hash])
    assert [(s.name, s.hash) for s in recorder.events[1][1]] == [("final.mp4", file_hash)]


def test_files_arrive_in_batches(qtbot, share, make_library):
    count = 2 * BATCH_FILES + 100
    for index in range(count):
        write(share / f"d{index % 7}" / f"file{index}.txt", str(index).encode())
    first = make_library([share])
    start(qtbot, first)
    first.stop()

    second = make_library([share])
    recorder = Recorder(second)
    start(qtbot, second)

    assert len(recorder.batches) >= 3
    assert all(0 < len(batch) <= BATCH_FILES for batch in recorder.batches)
    assert len({shared.path for shared in recorder.added}) == count
    assert len(second.files()) == count
