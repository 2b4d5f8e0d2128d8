"""How long the admin window's poll of a shared index holds the GUI thread (not run by CI).

    .venv/bin/python tests/bench/admin_poll_bench.py [--peers 20000 50000] [--rounds 5]

Starts a throw-away PostgreSQL (tests/postgres_server.py), two stores on one index and a
``PeerFeed`` over the first one's ``IndexServer``; the second server's ``--peers`` peers are
inserted in one statement. The feed's own poll timer is off: the bench fills the table
(``load_current``), then runs ``--rounds`` polls, each after 100 peers left, 150 joined and
200 changed. For the fill and each poll it prints how long the ``load_current``/``poll`` call
took, the worst lateness of a 5 ms QTimer probe (how long the event loop was held at once)
from the call until the table matched the database, and that whole time. Full garbage
collections are kept short as ``napster-server`` keeps them (``gc.freeze``).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import psycopg  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402

from server_app.__main__ import keep_full_collections_short  # noqa: E402
from server_app.index_server import IndexServer  # noqa: E402
from server_app.postgres_store import PostgresIndexStore  # noqa: E402
from server_app.ui import peer_feed  # noqa: E402
from server_app.ui.models import PeerTableModel  # noqa: E402
from tests.bench.event_loop import Probe, run_until  # noqa: E402
from tests.postgres_server import ThrowawayPostgres  # noqa: E402

PROBE_MS = 5


def measure(feed: peer_feed.PeerFeed, call: Callable[[], None], rows: int) -> tuple[float, ...]:
    """(call ms, worst probe lateness ms, ms until the table holds ``rows`` and is settled)."""
    probe = Probe(PROBE_MS)
    probe.start()
    start = time.perf_counter()
    call()
    called = time.perf_counter()
    run_until(lambda: feed.model.rowCount() == rows and not feed.pending(), 120, check_ms=5)
    done = time.perf_counter()
    return (called - start) * 1000, max(probe.stop()), (done - start) * 1000


def bench(postgres: ThrowawayPostgres, peers: int, rounds: int) -> None:
    url = postgres.create_database()
    mine = PostgresIndexStore(url, server_name="index-1:1099")
    other = PostgresIndexStore(url, server_name="index-2:1099")
    side = psycopg.connect(url, autocommit=True)
    next_id = [0]

    def insert(count: int) -> None:
        first = next_id[0] + 1
        next_id[0] += count
        side.execute(
            "INSERT INTO peers (server_id, host, port, agent, files, bytes, joined_at, last_seen)"
            " SELECT %s, '10.' || (g / 65536) || '.' || (g / 256 %% 256) || '.' || (g %% 256),"
            " 6000 + g %% 1000, 'bench/1', g %% 100, g * 1000, 1000.0, 1000.0"
            " FROM generate_series(%s::bigint, %s::bigint) AS g",
            (other.server_id, first, next_id[0]),
        )

    insert(peers)
    server = IndexServer(mine)
    feed = peer_feed.PeerFeed(server, PeerTableModel())
    rows = peers
    call, late, total = measure(feed, feed.load_current, rows)
    print(
        f"{peers:>6} peers  fill: call {call:7.1f} ms, worst lateness {late:7.1f} ms,"
        f" table complete after {total:7.1f} ms"
    )
    calls, lates, totals = [], [], []
    for number in range(1, rounds + 1):
        side.execute(
            "DELETE FROM peers WHERE peer_id IN"
            " (SELECT peer_id FROM peers ORDER BY random() LIMIT 100)"
        )
        side.execute(
            "UPDATE peers SET last_seen = last_seen + %s WHERE peer_id IN"
            " (SELECT peer_id FROM peers ORDER BY random() LIMIT 200)",
            (number,),
        )
        insert(150)
        rows += 50
        call, late, total = measure(feed, feed.poll, rows)
        calls.append(call)
        lates.append(late)
        totals.append(total)
    print(
        f"{peers:>6} peers  poll ({rounds} rounds, median/max): call"
        f" {statistics.median(calls):7.1f}/{max(calls):7.1f} ms, worst lateness"
        f" {statistics.median(lates):7.1f}/{max(lates):7.1f} ms, settled after"
        f" {statistics.median(totals):7.1f}/{max(totals):7.1f} ms"
    )
    feed.disconnect_server()
    side.close()
    mine.close()
    other.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--peers", type=int, nargs="+", default=[20_000, 50_000])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    keep_full_collections_short()  # as napster-server does
    QApplication.instance() or QApplication([])
    peer_feed.POLL_MS = 1_000_000_000  # the bench polls; the feed's timer stays quiet
    with ThrowawayPostgres() as postgres:
        for peers in args.peers:
            bench(postgres, peers, args.rounds)


if __name__ == "__main__":
    main()
