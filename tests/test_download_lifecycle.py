"""Issue 11 at the queue's depth: a saved queue reloads exactly, leftovers are adopted,
partial data stays private, folder problems fail at once, quitting stops every pump."""

from __future__ import annotations

import errno
import json
import logging
import os

import pytest

from app.download import layout
from app.download.part_state import PartState
from app.download.problems import Problem, writable_folder_problem
from app.download.transfer import TransferState
from app.network import pieces as pc
from app.network import protocol as p
from app.network.rate_limit import RateLimiter, parse_rate
from tests import test_transfer_manager as _manager_tests
from tests.test_transfer import PIECE, make_file
from tests.test_transfer_manager import wait_state

setup = _manager_tests.setup  # the same fixture: a share, downloads, an upload server


def half_downloaded(source_path, folder, part_name, state_name=None, name=""):
    """A .part with its first pieces verified, the way an earlier version left it."""
    digest = pc.hash_file(source_path)
    data = source_path.read_bytes()
    part = folder / part_name
    part.write_bytes(data[: 2 * PIECE])
    state = PartState(digest.hash, digest.size, digest.pieces, name)
    state.verified[0] = state.verified[1] = 1
    state.save(folder / (state_name or part_name + ".napster-state"))
    return digest


def entry(downloads, digest, **overrides):
    body = {
        "id": "abc123",
        "hash": digest.hash,
        "size": digest.size,
        "name": "x.mp4",
        "remote_name": "x.mp4",
        "folder": str(downloads),
        "part_name": "x.mp4.part",
        "sources": [],
        "state": "downloading",
        "done_bytes": 2 * PIECE,
    }
    body.update(overrides)
    return body


def write_queue(tmp_path, *entries):
    (tmp_path / "queue.json").write_text(json.dumps({"version": 1, "transfers": list(entries)}))


def test_a_saved_queue_reloads_exactly_and_its_part_moves_into_the_private_folder(qtbot, setup):
    """The finding: the name "x.mp4.part" went through safe_filename and became
    "x.mp4.part_", so the restart downloaded from byte 0 into a new file."""
    share, downloads, catalog, source, manager, tmp_path = setup
    shared = catalog.share(make_file(share / "x.mp4", 5 * PIECE + 7))
    digest = half_downloaded(shared.path, downloads, "x.mp4.part")
    write_queue(tmp_path, entry(downloads, digest, sources=[source.to_json()]))
    transfers = manager()
    transfer = transfers.get("abc123")
    assert transfer.name == "x.mp4" and transfer.state is TransferState.QUEUED
    assert not (downloads / "x.mp4.part").exists()
    assert transfer.part_path.read_bytes() == shared.path.read_bytes()[: 2 * PIECE]
    fetched = []
    transfers.bytes_received.connect(fetched.append)
    with qtbot.waitSignal(transfers.transfer_finished, timeout=20000) as finished:
        transfers.start()
    assert finished.args[1] == str(downloads / "x.mp4")
    assert sum(fetched) == shared.size - 2 * PIECE  # only what was missing
    assert sorted(os.listdir(downloads)) == [".napster-incomplete", "x.mp4"]
    assert os.listdir(downloads / ".napster-incomplete") == []


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("name", "../../evil.mp4"),
        ("name", "x.mp4.part"),
        ("part_name", "../outside.part"),
        ("part_name", "sub/x.part"),
        ("part_name", "x.mp4"),
        ("folder", "relative/folder"),
        ("hash", "XYZ"),
        ("id", "../../x"),
        ("done_bytes", -5),
    ],
)
def test_an_entry_the_app_would_not_write_is_rejected_not_renamed(
    qtbot, setup, caplog, field, value
):
    _share, downloads, _catalog, _source, manager, tmp_path = setup
    digest = pc.FileDigest(10, (b"\0" * 32,), "c" * 64)
    write_queue(
        tmp_path,
        entry(downloads, digest, **{field: value}),
        entry(downloads, digest, id="good1", hash="d" * 64, part_name=None, done_bytes=0),
    )
    with caplog.at_level(logging.WARNING, "napster.transfers"):
        transfers = manager()
    assert [t.id for t in transfers.transfers()] == ["good1"]
    assert "Rejected an entry of the download queue" in caplog.text
    assert (tmp_path / "queue.json.bad").exists()  # what was rejected is kept for a person


def test_leftovers_of_earlier_versions_are_adopted_by_name_and_moved(qtbot, setup):
    """A "<name>.part_" with its state beside it, no queue entry: queued again, not lost."""
    share, downloads, catalog, source, manager, _tmp = setup
    shared = catalog.share(make_file(share / "lecture.mp4", 4 * PIECE + 3))
    digest = half_downloaded(shared.path, downloads, "lecture.mp4.part_")
    transfers = manager()
    (transfer,) = transfers.transfers()
    assert transfer.key == (digest.hash, digest.size) and transfer.name == "lecture.mp4"
    assert not (downloads / "lecture.mp4.part_").exists()
    assert transfer.part_path.exists() and transfer.done_bytes == 2 * PIECE
    transfers.add_sources(digest.hash, digest.size, [source])
    with qtbot.waitSignal(transfers.transfer_finished, timeout=20000):
        transfers.start()
    assert (downloads / "lecture.mp4").read_bytes() == shared.path.read_bytes()


def test_an_unqueued_part_in_the_private_folder_is_adopted_and_can_be_deleted(qtbot, setup):
    share, downloads, catalog, _source, manager, _tmp = setup
    shared = catalog.share(make_file(share / "film.mkv", 3 * PIECE))
    incomplete = layout.incomplete_folder(downloads)
    incomplete.mkdir()
    digest = pc.hash_file(shared.path)
    name = layout.part_name(digest.hash, digest.size)
    half_downloaded(shared.path, incomplete, name, name=".. film.mkv")
    (incomplete / "junk.napster-tmp").write_bytes(b"x")
    transfers = manager()
    (transfer,) = transfers.transfers()
    assert transfer.remote_name == ".. film.mkv" and transfer.name == "film.mkv"
    assert not (incomplete / "junk.napster-tmp").exists()
    with qtbot.waitSignal(transfers.transfer_removed, timeout=5000):
        transfers.cancel(transfer.id, delete_partial=True)
    assert os.listdir(incomplete) == []


def test_a_part_is_never_beside_finished_files(qtbot, setup):
    share, downloads, catalog, _source, manager, _tmp = setup
    shared = catalog.share(make_file(share / "v.mp4", 3 * PIECE))
    transfers = manager()
    transfer_id = transfers.add(
        shared.hash, shared.size, "v.mp4.part", [p.PeerAddress("127.0.0.1", 9)]
    )
    wait_state(qtbot, transfers, transfer_id, TransferState.WAITING, timeout=10000)
    assert os.listdir(downloads) == [".napster-incomplete"]
    assert transfers.get(transfer_id).name == "v.mp4.part_"  # the finished name, made safe


def test_a_missing_download_folder_fails_at_once_with_a_sentence(qtbot, setup):
    share, downloads, catalog, source, manager, _tmp_path = setup
    shared = catalog.share(make_file(share / "v.mp4", PIECE))
    transfers = manager()
    os.rmdir(downloads)
    transfer_id = transfers.add(shared.hash, shared.size, "v.mp4", [source])
    wait_state(qtbot, transfers, transfer_id, TransferState.FAILED, timeout=5000)
    transfer = transfers.get(transfer_id)
    assert transfer.error_code == Problem.FOLDER_MISSING.value
    assert str(downloads) in transfer.error and "Settings" in transfer.error


def test_an_unwritable_folder_fails_at_once_not_retries(qtbot, setup, monkeypatch):
    share, downloads, catalog, source, manager, _tmp = setup
    shared = catalog.share(make_file(share / "v.mp4", PIECE))
    real_mkdir = os.mkdir

    def read_only(path, *args, **kwargs):
        if str(path).endswith(".napster-incomplete"):
            raise OSError(errno.EROFS, "Read-only file system")
        return real_mkdir(path, *args, **kwargs)

    monkeypatch.setattr(os, "mkdir", read_only)
    assert writable_folder_problem(downloads) == (Problem.FOLDER_READ_ONLY, "Read-only file system")
    transfers = manager()
    transfer_id = transfers.add(shared.hash, shared.size, "v.mp4", [source])
    wait_state(qtbot, transfers, transfer_id, TransferState.FAILED, timeout=5000)
    transfer = transfers.get(transfer_id)
    assert transfer.error_code == Problem.FOLDER_READ_ONLY.value
    assert "read-only" in transfer.error and str(downloads) in transfer.error


def test_shutdown_stops_every_pump_within_its_deadline_and_keeps_the_state(qtbot, setup):
    share, _downloads, catalog, source, manager, tmp_path = setup
    files = [catalog.share(make_file(share / f"f{i}.bin", 6 * PIECE, seed=i)) for i in range(2)]
    transfers = manager(limiter=RateLimiter(2 * PIECE))  # slow enough to be mid-file
    ids = [transfers.add(f.hash, f.size, f.name, [source]) for f in files]
    qtbot.waitUntil(lambda: any(transfers.get(i).done_bytes > 0 for i in ids), timeout=10000)
    assert transfers.shutdown(deadline_ms=5000) is True
    assert transfers.shutdown() is True  # a second quit is harmless
    saved = json.loads((tmp_path / "queue.json").read_text())
    assert {t["state"] for t in saved["transfers"]} == {"queued"}
    assert all(not transfers.get(i).state.is_active for i in ids)


def test_parse_rate():
    assert parse_rate("10M") == 10_000_000 and parse_rate("500k") == 500_000
    assert parse_rate("1.5G") == 1_500_000_000 and parse_rate("0") == 0
    assert parse_rate("2MB/s") == 2_000_000
    for bad in ("fast", "-1M", "10X", "12"):
        with pytest.raises(ValueError):
            parse_rate(bad)


def test_a_false_size_is_another_file_that_fails_alone(qtbot, setup):
    """The finding: a peer announced a real file's hash with a false size; downloading that
    result marked the honest holder bad and poisoned the honest download (same hash)."""
    share, downloads, catalog, honest, manager, _tmp = setup
    shared = catalog.share(make_file(share / "real.mp4", 3 * PIECE + 9))
    liar = p.PeerAddress("127.0.0.1", 9)  # announces the hash, serves nothing
    transfers = manager()
    lie = transfers.add(shared.hash, shared.size + 12345, "other name.mp4", [liar, honest])
    qtbot.waitUntil(
        lambda: transfers.get(lie).state in (TransferState.WAITING, TransferState.FAILED),
        timeout=10000,
    )
    poisoned = transfers.get(lie)
    assert poisoned.bad_sources == set()  # the honest holder sent nothing false
    assert "another size" in poisoned.error
    with qtbot.waitSignal(transfers.transfer_finished, timeout=20000) as finished:
        real = transfers.add(shared.hash, shared.size, "real.mp4", [honest])
    assert real != lie and finished.args[0] == real
    assert (downloads / "real.mp4").read_bytes() == shared.path.read_bytes()
    with qtbot.waitSignal(transfers.transfer_removed, timeout=5000):
        transfers.cancel(lie, delete_partial=True)  # and the lie can always be cancelled


def test_a_shared_folder_that_cannot_exist_is_told_as_the_shared_folder(qtbot, tmp_path):
    from app.config import PeerConfig
    from app.download.problems import describe_folder_problem
    from app.peer import PeerNode

    blocker = tmp_path / "a file"
    blocker.write_text("not a folder")
    config = PeerConfig(
        share_dir=blocker / "share",  # cannot be made: its parent is a file
        download_dir=tmp_path / "downloads",
        listen_port=0,
        data_dir=tmp_path / "data",
    )
    node = PeerNode(config)
    try:
        ((problem, folder, error),) = node.folder_problems()
        assert problem is Problem.SHARE_MISSING and folder == blocker / "share"
        assert describe_folder_problem(problem, folder, error).startswith("The shared folder")
    finally:
        node.stop()
