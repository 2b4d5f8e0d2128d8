"""The local stream server (issue 15): HTTP semantics, safety, and only verified bytes, over
real sockets, while a real download runs from a rate-limited source."""

from __future__ import annotations

import http.client
import time

import pytest

from app.download import engine as fp
from app.download.manager import TransferManager
from app.download.transfer import TransferState
from app.streaming.server import StreamServer, StreamTarget, parse_range
from tests.catalog import Catalog
from tests.test_transfer import (
    PIECE,
    address,
    folders,  # noqa: F401 (fixture)
    in_thread,
    make_file,
    uploads,  # noqa: F401 (fixture)
)

FAST = fp.Timeouts(connect=2.0, stall=5.0, tick=0.05)


@pytest.fixture
def streams():
    server = StreamServer()
    yield server
    server.stop()


def request(server: StreamServer, url: str, method="GET", headers=None, host=None):
    path = url.split(f":{server.port}", 1)[1]
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    conn.putrequest(method, path, skip_host=True)
    conn.putheader("Host", host or f"127.0.0.1:{server.port}")
    for name, value in (headers or {}).items():
        conn.putheader(name, value)
    conn.endheaders()
    return conn, conn.getresponse()


def test_ranges_and_headers_on_a_finished_file(tmp_path, streams):
    path = make_file(tmp_path / "aula.mp4", 100_000)
    data = path.read_bytes()
    url = streams.publish("f-1", StreamTarget("aula.mp4", len(data), path))
    _c, head = request(streams, url, "HEAD")
    assert head.status == 200 and head.read() == b""
    assert head.getheader("Content-Length") == "100000"
    assert head.getheader("Accept-Ranges") == "bytes"
    assert head.getheader("Content-Type") == "video/mp4"
    _c, whole = request(streams, url)
    assert whole.status == 200 and whole.read() == data
    _c, part = request(streams, url, headers={"Range": "bytes=10-19"})
    assert part.status == 206 and part.read() == data[10:20]
    assert part.getheader("Content-Range") == "bytes 10-19/100000"
    _c, tail = request(streams, url, headers={"Range": "bytes=-5"})
    assert tail.status == 206 and tail.read() == data[-5:]
    _c, open_ended = request(streams, url, headers={"Range": "bytes=99990-"})
    assert open_ended.read() == data[99990:]
    _c, past = request(streams, url, headers={"Range": "bytes=100000-"})
    assert past.status == 416 and past.getheader("Content-Range") == "bytes */100000"


def test_requests_without_the_token_or_from_another_host_are_refused(tmp_path, streams):
    path = make_file(tmp_path / "aula.mp4", 1000)
    url = streams.publish("f-1", StreamTarget("aula.mp4", 1000, path))
    _c, ok = request(streams, url, host=f"localhost:{streams.port}")
    assert ok.status == 200 and len(ok.read()) == 1000
    no_token = url.replace(streams.token, "")
    wrong_token = url.replace(streams.token, "x" * len(streams.token))
    unknown_key = url.replace("/f-1/", "/f-2/")
    for bad in (no_token, wrong_token, unknown_key):
        _c, refused = request(streams, bad)
        assert refused.status == 403 and refused.read() == b""
    # DNS rebinding: a page on evil.example resolving to 127.0.0.1 sends its own Host.
    _c, rebound = request(streams, url, host=f"evil.example:{streams.port}")
    assert rebound.status == 403


def test_parse_range():
    assert parse_range("bytes=0-", 10) == (0, 9)
    assert parse_range("bytes=2-100", 10) == (2, 9)
    assert parse_range("bytes=-3", 10) == (7, 9)
    assert parse_range("bytes=10-", 10) == "unsatisfiable"
    assert parse_range("bytes=5-2", 10) == "unsatisfiable"
    assert parse_range("bytes=0-1,5-6", 10) is None  # several ranges: the whole file
    assert parse_range(None, 10) is None


@pytest.fixture
def slow_download(folders, uploads, qtbot):  # noqa: F811
    """A 12-piece file downloading from one source at about one piece a second."""
    share, downloads = folders
    catalog = Catalog()
    entry = catalog.share(make_file(share / "film.mkv", 12 * PIECE + 99))
    server = uploads(catalog)
    server.limiter.set_rate(PIECE)
    manager = TransferManager(downloads.parent / "queue.json", downloads, timeouts=FAST)
    yield manager, entry, server
    manager.shutdown()


def test_a_seek_far_ahead_is_answered_before_the_pieces_before_it(qtbot, streams, slow_download):
    manager, entry, server = slow_download
    transfer_id = manager.add(entry.hash, entry.size, "film.mkv", [address(server)])
    transfer = manager.get(transfer_id)
    watch = manager.watch(transfer_id)
    url = streams.publish("t-1", StreamTarget("film.mkv", entry.size, transfer.part_path, watch))
    start = 9 * PIECE + 10

    def seek():
        _c, response = request(streams, url, headers={"Range": f"bytes={start}-{start + 999}"})
        body = response.read()
        return response.status, body, [watch.is_verified(i) for i in range(12)]

    status, body, verified = in_thread(qtbot, seek)
    assert status == 206 and body == entry.path.read_bytes()[start : start + 1000]
    # The stream's piece came first: most pieces before it are still missing.
    assert verified[9] and sum(verified[1:9]) <= 4, verified

    def from_the_start():
        _c, first = request(streams, url, headers={"Range": "bytes=0-99"})
        return first.read()

    # A second reader at the start is served while the download goes on.
    assert in_thread(qtbot, from_the_start) == entry.path.read_bytes()[:100]
    assert manager.get(transfer_id).state is not TransferState.DONE


def test_a_cancelled_download_ends_the_open_request_cleanly(qtbot, streams, slow_download):
    manager, entry, server = slow_download
    transfer_id = manager.add(entry.hash, entry.size, "film.mkv", [address(server)])
    transfer = manager.get(transfer_id)
    watch = manager.watch(transfer_id)
    url = streams.publish("t-1", StreamTarget("film.mkv", entry.size, transfer.part_path, watch))
    conn, response = request(streams, url)  # the whole file: it cannot all be there yet
    assert response.status == 200
    got = in_thread(qtbot, lambda: response.read(PIECE))  # the first piece arrives
    assert got == entry.path.read_bytes()[:PIECE]
    with qtbot.waitSignal(manager.transfer_removed, timeout=5000):
        manager.cancel(transfer_id, delete_partial=True)
    started = time.monotonic()
    with pytest.raises(http.client.IncompleteRead):
        in_thread(qtbot, response.read, timeout=10000)
    assert time.monotonic() - started < 5
    conn.close()


def test_the_player_is_the_one_chosen_or_the_first_usual_one_found(tmp_path, monkeypatch):
    from app.streaming import player

    installed = {"vlc": "/usr/bin/vlc", "celluloid": "/usr/bin/celluloid"}
    monkeypatch.setattr(player.shutil, "which", lambda name: installed.get(name))
    assert player.player_command("") == ["/usr/bin/vlc"]  # mpv is missing, VLC comes next
    assert player.player_command("celluloid --new-window") == ["celluloid", "--new-window"]
    assert player.player_command("not-installed --x") is None
    fake = tmp_path / "my player"
    fake.write_text("")
    assert player.player_command(f'"{fake}" --fs') == [str(fake), "--fs"]
    installed.clear()
    monkeypatch.setattr(player.sys, "platform", "linux")
    assert player.player_command("") is None


def test_what_a_stream_needs_comes_first():
    from app.download.watch import PieceWatch
    from app.network import protocol as p

    # 10 whole pieces and a short last one: the index of a video sits in the last two.
    watch = PieceWatch("a" * 64, 10 * PIECE + 100)
    assert watch.priority() == [0, 10, 9]  # before Play: the start and the very end
    reader = watch.open_reader(5 * PIECE + 7)
    assert watch.priority()[:4] == [5, 0, 10, 9]  # what it reads, then start and end
    assert watch.priority()[4:] == [6, 7, 8]  # then the window ahead (at least 4 pieces)
    watch.piece_verified(5)
    watch.move_reader(reader, 6 * PIECE)  # a seek (or reading on) moves the window
    assert watch.priority()[0] == 6 and 5 not in watch.priority()
    watch.set_rate(p.PIECE_SIZE)  # a piece a second: 20 s of rate, capped by the file
    assert sorted(watch.priority()) == [0, 6, 7, 8, 9, 10]
    assert watch.stream_lead() == 0
    watch.close_reader(reader)
    assert watch.stream_lead() is None
