"""TransferManager: the queue, pause/resume/cancel, retries, hostile names, restart."""

from __future__ import annotations

import json
import random

import pytest

from app.download import engine as fp
from app.download.manager import TransferManager, retry_delay
from app.download.transfer import TransferState
from app.network import protocol as p
from app.network.upload_server import UploadServer
from tests.catalog import Catalog
from tests.test_transfer import PIECE, make_file

FAST = fp.Timeouts(connect=2.0, stall=1.0, tick=0.05)


@pytest.fixture
def setup(tmp_path, qtbot):
    share, downloads = tmp_path / "share", tmp_path / "downloads"
    share.mkdir()
    downloads.mkdir()
    catalog = Catalog()
    server = UploadServer(catalog)
    server.start("127.0.0.1", 0)
    managers = []

    def manager(**kwargs) -> TransferManager:
        kwargs.setdefault("timeouts", FAST)
        made = TransferManager(tmp_path / "queue.json", downloads, **kwargs)
        managers.append(made)
        return made

    source = p.PeerAddress("127.0.0.1", server.serverPort())
    yield share, downloads, catalog, source, manager, tmp_path
    for made in managers:
        made.shutdown()
    server.stop()


def wait_state(qtbot, manager, transfer_id, state, timeout=20000):
    qtbot.waitUntil(lambda: manager.get(transfer_id).state is state, timeout=timeout)


def test_download_finishes_and_reports(qtbot, setup):
    share, downloads, catalog, source, manager, _ = setup
    shared = catalog.share(make_file(share / "aula.mp4", 2 * PIECE + 5))
    transfers = manager()
    with qtbot.waitSignal(transfers.transfer_finished, timeout=20000) as finished:
        transfer_id = transfers.add(shared.hash, shared.size, "aula.mp4", [source])
    assert finished.args[:2] == [transfer_id, str(downloads / "aula.mp4")]
    transfer = transfers.get(transfer_id)
    assert transfer.state is TransferState.DONE and transfer.done_bytes == shared.size
    assert finished.args[2].hash == shared.hash  # the verified digest comes with the signal
    assert (downloads / "aula.mp4").read_bytes() == shared.path.read_bytes()


@pytest.mark.parametrize(
    "remote_name",
    ["../../evil", "CON", "x" * 300 + ".mp4", "bad\x1b[31m\u202ename.mp4", "..", "sub/../../x"],
)
def test_hostile_result_names_land_safely_inside_the_download_folder(qtbot, setup, remote_name):
    share, downloads, catalog, source, manager, tmp_path = setup
    shared = catalog.share(make_file(share / "v.bin", 1000))
    transfers = manager()
    with qtbot.waitSignal(transfers.transfer_finished, timeout=20000) as finished:
        transfers.add(shared.hash, shared.size, remote_name, [source])
    final = downloads / finished.args[1].rsplit("/", 1)[1]
    assert str(final) == finished.args[1]
    assert final.parent == downloads and final.read_bytes() == shared.path.read_bytes()
    assert len(final.name.encode()) <= 255
    assert not any(ch in final.name for ch in "\x1b\u202e/\\")
    assert final.name.upper() != "CON"
    # Nothing was written anywhere else.
    transfers.flush_saves()
    assert sorted(x.name for x in tmp_path.iterdir()) == ["downloads", "queue.json", "share"]
    assert sorted(x.name for x in downloads.iterdir()) == [".napster-incomplete", final.name]


def test_pause_and_resume(qtbot, setup):
    share, downloads, catalog, source, manager, _ = setup
    shared = catalog.share(make_file(share / "v.mp4", 3 * PIECE))
    transfers = manager()
    transfer_id = transfers.add(shared.hash, shared.size, "v.mp4", [p.PeerAddress("127.0.0.1", 9)])
    transfers.pause(transfer_id)
    assert transfers.get(transfer_id).state is TransferState.PAUSED
    transfers.add_sources(shared.hash, shared.size, [source])
    with qtbot.waitSignal(transfers.transfer_finished, timeout=20000):
        transfers.resume(transfer_id)
    assert (downloads / "v.mp4").read_bytes() == shared.path.read_bytes()


def test_queue_survives_a_restart_and_resumes(qtbot, setup):
    share, _downloads, catalog, source, manager, tmp_path = setup
    shared = catalog.share(make_file(share / "v.mp4", 3 * PIECE))
    first = manager()
    transfer_id = first.add(shared.hash, shared.size, "v.mp4", [source])
    first.pause(transfer_id)
    first.shutdown()
    saved = json.loads((tmp_path / "queue.json").read_text())
    assert saved["transfers"][0]["hash"] == shared.hash
    second = manager()
    assert second.get(transfer_id).state is TransferState.PAUSED
    with qtbot.waitSignal(second.transfer_finished, timeout=20000):
        second.resume(transfer_id)


def test_running_download_is_queued_again_after_restart(qtbot, setup):
    _share, downloads, _catalog, _source, manager, tmp_path = setup
    queue = {
        "version": 1,
        "transfers": [
            {
                "id": "abc",
                "hash": "c" * 64,
                "size": 10,
                "name": "x.mp4",
                "folder": str(downloads),
                "part_name": "x.mp4.part",
                "sources": [],
                "state": "downloading",
            }
        ],
    }
    (tmp_path / "queue.json").write_text(json.dumps(queue))
    transfers = manager()
    assert transfers.get("abc").state is TransferState.QUEUED


def test_damaged_queue_file_is_set_aside_not_fatal(qtbot, setup):
    *_, manager, tmp_path = setup
    (tmp_path / "queue.json").write_text("{not json")
    transfers = manager()
    assert transfers.transfers() == []
    assert (tmp_path / "queue.json.bad").exists()


def test_cancel_can_delete_the_partial_file(qtbot, setup):
    share, _downloads, catalog, _source, manager, _ = setup
    shared = catalog.share(make_file(share / "v.mp4", 3 * PIECE))
    transfers = manager()
    transfer_id = transfers.add(shared.hash, shared.size, "v.mp4", [p.PeerAddress("127.0.0.1", 9)])
    qtbot.waitUntil(
        lambda: transfers.get(transfer_id).state is TransferState.WAITING, timeout=10000
    )
    part = transfers.get(transfer_id).part_path
    part.write_bytes(b"partial")
    with qtbot.waitSignal(transfers.transfer_removed, timeout=5000):
        transfers.cancel(transfer_id, delete_partial=True)
    assert not part.exists()
    assert transfers.get(transfer_id) is None


def test_every_source_failing_waits_and_retries(qtbot, setup):
    share, _downloads, catalog, source, manager, _ = setup
    shared = catalog.share(make_file(share / "v.mp4", 1000))
    transfers = manager()
    wanted = []
    transfers.sources_wanted.connect(lambda h, size, name: wanted.append((h, size)))
    transfer_id = transfers.add(shared.hash, shared.size, "v.mp4", [p.PeerAddress("127.0.0.1", 9)])
    wait_state(qtbot, transfers, transfer_id, TransferState.WAITING)
    transfer = transfers.get(transfer_id)
    assert "Every source failed" in transfer.error and wanted == [(shared.hash, shared.size)]
    assert transfer.error_code == "sources_failed"
    # A new source arrives (as a SEARCH would find); retry now rather than wait out the backoff.
    transfers.add_sources(shared.hash, shared.size, [source])
    with qtbot.waitSignal(transfers.transfer_finished, timeout=20000):
        transfers.retry(transfer_id)


def test_retry_delay_grows_and_is_capped():
    rng = random.Random(1)
    delays = [retry_delay(n, rng) for n in range(1, 12)]
    assert delays[0] <= 5 and delays[3] > delays[0]
    assert max(delays) <= 300


def test_adding_the_same_file_twice_reuses_the_transfer(qtbot, setup):
    _share, _downloads, _catalog, _source, manager, _ = setup
    transfers = manager()
    dead = p.PeerAddress("127.0.0.1", 9)
    first = transfers.add("d" * 64, 10, "x.mp4", [dead])
    transfers.pause(first)
    second = transfers.add("d" * 64, 10, "x.mp4", [p.PeerAddress("127.0.0.1", 10)])
    assert first == second and len(transfers.get(first).sources) == 2


def test_two_downloads_with_the_same_name_get_different_parts(qtbot, setup):
    *_, manager, _ = setup
    transfers = manager()
    dead = [p.PeerAddress("127.0.0.1", 9)]
    a = transfers.add("e" * 64, 10, "same.mp4", dead)
    b = transfers.add("f" * 64, 10, "same.mp4", dead)
    assert transfers.get(a).part_path != transfers.get(b).part_path


def test_at_most_max_active_run_at_once(qtbot, setup):
    share, _downloads, catalog, source, manager, _ = setup
    transfers = manager(max_active=1)
    files = [catalog.share(make_file(share / f"f{i}.bin", 2 * PIECE, seed=i)) for i in range(3)]
    seen_active = []
    transfers.transfer_changed.connect(
        lambda _id: seen_active.append(sum(t.state.is_active for t in transfers.transfers()))
    )
    for shared in files:
        transfers.add(shared.hash, shared.size, shared.name, [source])
    qtbot.waitUntil(
        lambda: all(t.state is TransferState.DONE for t in transfers.transfers()), timeout=30000
    )
    assert max(seen_active) == 1
