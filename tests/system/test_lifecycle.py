"""The lifecycle a person lives through, with real processes (issue 11).

Start the programs, download part of a file, quit or crash (kill -9) at a random point,
start again: the download resumes, the bytes the sharer sent in all are at most the file
plus one piece per interruption, nothing unfinished is ever announced to the index, nothing
is left over once the file is in place, and every clean exit is status 0 without a Qt
warning.
"""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest

from tests.system.conftest import (
    PIECE,
    Program,
    Sharer,
    get_args,
    verified_pieces,
    wait_until,
)
from tests.test_transfer import make_file

PIECES = 12
#: The sharer's upload limit: the whole file takes about three seconds, so a random point
#: falls inside the download and little is in flight when it is interrupted.
RATE = "16M"


@pytest.fixture
def shared_file(tmp_path):
    from app.network import pieces as pc

    share = tmp_path / "share"
    share.mkdir()
    path = make_file(share / "lecture2 — aula de redes 720p.mp4", PIECES * PIECE + 4321)
    return path, pc.hash_file(path)


def assert_finished_cleanly(downloads: Path, source: Path) -> None:
    final = downloads / source.name
    assert final.read_bytes() == source.read_bytes()
    assert sorted(os.listdir(downloads)) == [".napster-incomplete", source.name]
    assert os.listdir(downloads / ".napster-incomplete") == []


def interrupt_at_random_piece(program: Program, downloads: Path, digest, rng) -> None:
    """Wait until a random number of pieces is verified and saved, then kill -9."""
    done = verified_pieces(downloads, digest.hash, digest.size)
    target = min(PIECES - 1, done + rng.randint(1, 4))
    wait_until(
        lambda: (
            verified_pieces(downloads, digest.hash, digest.size) >= target
            or program.proc.poll() is not None
        ),
        60,
        f"{target} verified pieces",
    )
    assert program.kill() == -9, program.stderr[-20:]


def test_get_killed_at_random_points_resumes_and_fetches_each_byte_about_once(
    tmp_path, index_server, watcher, shared_file
):
    source, digest = shared_file
    seed = random.randrange(1 << 30)
    rng = random.Random(seed)
    sharer = Sharer(tmp_path / "sharer", index_server.port, source.parent, RATE)
    downloads, data = tmp_path / "downloads", tmp_path / "downloader-state"
    args = get_args(index_server.port, source.name, downloads, data)
    kills = 3
    for _ in range(kills):
        run = Program(tmp_path / "downloader", *args)
        interrupt_at_random_piece(run, downloads, digest, rng)
    final = Program(tmp_path / "downloader", *args)
    assert final.finish() == 0, (seed, final.stdout, final.stderr[-20:])
    assert f"Downloaded {downloads / source.name}" in final.stdout
    assert final.qt_warnings() == []
    assert_finished_cleanly(downloads, source)
    sent = sharer.uploaded()
    assert digest.size <= sent <= digest.size + kills * PIECE, (seed, sent, digest.size)


def test_window_quit_mid_download_exits_0_and_the_next_start_resumes(
    tmp_path, index_server, watcher, shared_file
):
    source, digest = shared_file
    rng = random.Random()
    sharer = Sharer(tmp_path / "sharer", index_server.port, source.parent, RATE)
    downloads, data = tmp_path / "downloads", tmp_path / "downloader-state"
    first = Program(
        tmp_path / "downloader", *get_args(index_server.port, source.name, downloads, data)
    )
    interrupt_at_random_piece(first, downloads, digest, rng)
    before = verified_pieces(downloads, digest.hash, digest.size)
    window = Program(
        tmp_path / "downloader",
        "--server",
        f"127.0.0.1:{index_server.port}",
        "--share",
        str(tmp_path / "nothing"),
        "--downloads",
        str(downloads),
        "--port",
        "0",
        "--data-dir",
        str(data),
    )
    # The window resumes the queued download by itself; quit it part-way.
    wait_until(
        lambda: (
            verified_pieces(downloads, digest.hash, digest.size) >= before + 2
            or window.proc.poll() is not None
        ),
        60,
        "the window to resume the download",
    )
    assert window.terminate() == 0, window.stderr[-20:]
    assert window.qt_warnings() == []
    last = Program(
        tmp_path / "downloader", *get_args(index_server.port, source.name, downloads, data)
    )
    assert last.finish() == 0, last.stderr[-20:]
    assert_finished_cleanly(downloads, source)
    assert digest.size <= sharer.uploaded() <= digest.size + 2 * PIECE


def test_console_quit_during_a_download_asks_saves_and_the_next_start_resumes(
    tmp_path, index_server, watcher, shared_file
):
    source, digest = shared_file
    sharer = Sharer(tmp_path / "sharer", index_server.port, source.parent, RATE)
    downloads, data = tmp_path / "downloads", tmp_path / "downloader-state"
    empty = tmp_path / "empty"
    empty.mkdir()
    console = Program(
        tmp_path / "downloader",
        "--cli",
        "--server",
        f"127.0.0.1:{index_server.port}",
        "--share",
        str(empty),
        "--downloads",
        str(downloads),
        "--port",
        "0",
        "--data-dir",
        str(data),
        stdin=True,
    )
    for line in ("1", "", ""):
        console.type(line)
    console.expect("I am peer")
    console.type("2")
    console.type(source.name)
    console.expect("peers with the requested file")
    console.type("3")
    console.type(source.name)
    console.type("")
    console.expect("Downloading")
    wait_until(lambda: verified_pieces(downloads, digest.hash, digest.size) >= 3, 60, "3 pieces")
    console.type("4")
    console.type("y")
    assert console.finish() == 0, console.stderr[-20:]
    assert any("Quit now?" in line for line in console.stdout)
    assert console.qt_warnings() == []
    assert not (downloads / source.name).exists()
    last = Program(
        tmp_path / "downloader", *get_args(index_server.port, source.name, downloads, data)
    )
    assert last.finish() == 0, last.stderr[-20:]
    assert_finished_cleanly(downloads, source)
    assert digest.size <= sharer.uploaded() <= digest.size + PIECE


def test_a_read_only_download_folder_is_told_at_once_not_retried(
    tmp_path, index_server, shared_file, read_only_folder
):
    source, _digest = shared_file
    Sharer(tmp_path / "sharer", index_server.port, source.parent)
    run = Program(
        tmp_path / "downloader",
        *get_args(index_server.port, source.name, read_only_folder, tmp_path / "state"),
    )
    assert run.finish(30) == 1
    message = "\n".join(run.stderr)
    assert str(read_only_folder) in message and "read-only file system" in message
    assert "Settings" in message


def test_the_headless_peer_says_at_start_that_its_download_folder_is_unusable(
    tmp_path, index_server, read_only_folder
):
    share = tmp_path / "share"
    share.mkdir()
    peer = Program(
        tmp_path / "peer",
        "--headless",
        "--server",
        f"127.0.0.1:{index_server.port}",
        "--share",
        str(share),
        "--downloads",
        str(read_only_folder),
        "--port",
        "0",
    )
    peer.expect("joined as")
    assert peer.terminate() == 0
    assert any(str(read_only_folder) in line and "read-only" in line for line in peer.stderr), (
        peer.stderr
    )
