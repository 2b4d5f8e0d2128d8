"""One file from every source at once (issue 14), over real sockets: each source is a real
upload server with its own upload limit, so the sources are the bottleneck, as on the
internet."""

from __future__ import annotations

import time

import pytest

from app.download import engine as fp
from app.network import pieces as pc
from app.network.upload_server import UploadLimits
from tests.catalog import Catalog
from tests.fake_source import FakeSource
from tests.test_transfer import (
    PIECE,
    address,
    folders,  # noqa: F401 (fixture)
    make_file,
    run_download,
    same_bytes,
    spec_for,
    uploads,  # noqa: F401 (fixture)
)

FAST = fp.Timeouts(connect=2.0, stall=2.0, tick=0.05)
RATE = 8_000_000  # each source's upload limit, bytes per second
PIECES = 12


@pytest.fixture
def shared(folders):  # noqa: F811
    share, downloads = folders
    catalog = Catalog()
    entry = catalog.share(make_file(share / "film.mkv", PIECES * PIECE + 123))
    return catalog, entry, downloads


def capped(uploads, catalog, rate=RATE, **limits):  # noqa: F811
    server = uploads(catalog, UploadLimits(**limits) if limits else None)
    server.limiter.set_rate(rate)
    sent = {"pieces": 0}
    server.upload_started.connect(lambda *_: sent.__setitem__("pieces", sent["pieces"] + 1))
    server.sent = sent
    return server


def details_of(downloader):
    seen = {}

    def record(states, stats, known):
        seen["states"], seen["stats"], seen["known"] = states, stats, known

    downloader._on_details = record
    return seen


def test_three_capped_sources_share_the_file_and_beat_the_fastest_alone(
    qtbot,
    shared,
    uploads,  # noqa: F811
):
    catalog, entry, downloads = shared
    servers = [capped(uploads, catalog) for _ in range(3)]
    downloader = fp.PieceDownloader(
        spec_for(entry, downloads, [address(s) for s in servers]), timeouts=FAST
    )
    seen = details_of(downloader)
    started = time.monotonic()
    final = run_download(qtbot, downloader)
    elapsed = time.monotonic() - started
    assert same_bytes(final, entry.path)
    alone = entry.size / RATE  # the fastest single source, at best
    assert elapsed < 0.7 * alone, (elapsed, alone)
    assert all(s.sent["pieces"] > 0 for s in servers), [s.sent for s in servers]
    # Endgame copies (a slower source's piece fetched again by an idle one): a few at most.
    assert downloader.received_bytes <= entry.size + 2 * len(servers) * PIECE
    assert seen["states"] == b"\x02" * PIECES + b"\x02"  # the piece map: all done
    assert sum(s.pieces for s in seen["stats"]) == PIECES + 1


def test_a_source_that_vanishes_mid_file_does_not_stop_the_others(
    qtbot,
    shared,
    uploads,  # noqa: F811
):
    catalog, entry, downloads = shared
    servers = [capped(uploads, catalog) for _ in range(3)]
    downloader = fp.PieceDownloader(
        spec_for(entry, downloads, [address(s) for s in servers]), timeouts=FAST
    )
    vanished = []

    def progress(done, total, speed, received):
        if done >= 3 * PIECE and not vanished:
            vanished.append(done)
            servers[0].stopping.set()  # its uploads end mid-piece, its connections drop

    downloader._on_progress = progress
    final = run_download(qtbot, downloader)
    assert vanished and same_bytes(final, entry.path)


def test_a_source_that_turns_corrupt_is_the_only_one_not_trusted(
    qtbot,
    shared,
    uploads,  # noqa: F811
):
    catalog, entry, downloads = shared
    honest = [capped(uploads, catalog) for _ in range(2)]
    liar = FakeSource(entry.path, pc.hash_file(entry.path), "film.mkv", corrupt_piece=1)
    liar.concurrent = True
    bad = []
    try:
        downloader = fp.PieceDownloader(
            spec_for(entry, downloads, [liar.address, *map(address, honest)]),
            timeouts=FAST,
            on_bad_source=lambda source, reason: bad.append(source),
        )
        downloader.max_sources = 3
        final = run_download(qtbot, downloader)
    finally:
        liar.close()
    assert same_bytes(final, entry.path)
    assert set(bad) <= {str(liar.address)}
    assert not downloader.sources.bad() - {str(liar.address)}


def test_a_busy_source_is_waited_for_while_the_others_go_on(
    qtbot,
    shared,
    uploads,  # noqa: F811
):
    catalog, entry, downloads = shared
    busy = capped(uploads, catalog, slots=0, retry_after=1)
    free = capped(uploads, catalog)
    downloader = fp.PieceDownloader(
        spec_for(entry, downloads, [address(busy), address(free)]), timeouts=FAST
    )
    seen = details_of(downloader)
    final = run_download(qtbot, downloader)
    assert same_bytes(final, entry.path)
    assert busy.sent["pieces"] == 0 and free.sent["pieces"] > 0
    states = {s.address: s for s in seen["stats"]}
    assert states[str(address(busy))].pieces == 0


def test_a_very_slow_source_never_holds_up_the_end(qtbot, shared, uploads):  # noqa: F811
    catalog, entry, downloads = shared
    slow = capped(uploads, catalog, rate=200_000)  # a piece takes 20 s from it
    fast = [capped(uploads, catalog) for _ in range(2)]
    downloader = fp.PieceDownloader(
        spec_for(entry, downloads, [address(slow), *map(address, fast)]), timeouts=FAST
    )
    started = time.monotonic()
    final = run_download(qtbot, downloader)
    elapsed = time.monotonic() - started
    assert same_bytes(final, entry.path)
    # Without the endgame the slow source's first piece alone would take 20 s.
    assert elapsed < 10, elapsed


def test_a_source_that_appears_mid_download_is_used(qtbot, shared, uploads):  # noqa: F811
    catalog, entry, downloads = shared
    first = capped(uploads, catalog, rate=4_000_000)
    late = capped(uploads, catalog)
    downloader = fp.PieceDownloader(spec_for(entry, downloads, [address(first)]), timeouts=FAST)
    added = []

    def progress(done, total, speed, received):
        if done >= PIECE and not added:
            added.append(done)
            downloader.sources.add([address(late)])

    downloader._on_progress = progress
    final = run_download(qtbot, downloader)
    assert added and same_bytes(final, entry.path)
    assert late.sent["pieces"] > 0
