"""One download from several real sharing peers at once (issue 14), as real processes."""

from __future__ import annotations

import time

from tests.system.conftest import PIECE, Program, Sharer, get_args, wait_for_holders
from tests.test_transfer import make_file

RATE = 6_000_000  # each sharer's --max-upload-rate


def test_three_capped_peers_each_send_pieces_and_the_download_beats_any_one_of_them(
    tmp_path, index_server, watcher
):
    share = tmp_path / "share"
    share.mkdir()
    source = make_file(share / "aula final.mp4", 9 * PIECE + 77)
    sharers = [
        Sharer(tmp_path / f"sharer{i}", index_server.port, share, str(RATE)) for i in range(3)
    ]
    wait_for_holders(index_server.port, source.name, len(sharers))
    downloads = tmp_path / "downloads"
    started = time.monotonic()
    run = Program(
        tmp_path / "downloader",
        *get_args(index_server.port, source.name, downloads, tmp_path / "state"),
    )
    assert run.finish(120) == 0, run.stderr[-20:]
    elapsed = time.monotonic() - started
    assert (downloads / source.name).read_bytes() == source.read_bytes()
    sent = [sharer.uploaded() for sharer in sharers]
    assert all(s >= PIECE for s in sent), sent  # every source sent pieces
    assert sum(sent) <= source.stat().st_size + 2 * PIECE
    alone = source.stat().st_size / RATE  # the fastest single source, at best (6.3 s)
    assert elapsed < 0.8 * alone, (elapsed, alone)
