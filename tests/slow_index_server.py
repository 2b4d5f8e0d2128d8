"""``napster-server --headless`` with a slow index, for tests/system/test_failover.py.

    python -m tests.slow_index_server SECONDS [napster-server arguments]

Each step of a JOIN or UPDATE (up to 1,000 files into the SQLite index) takes SECONDS more,
on the server's own thread as a real store call does: a server that is alive but slow on
a big JOIN (a slow disk, a huge index, a crowd of peers JOINing at once). Everything else
is the real server.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any

from server_app.__main__ import main
from server_app.index_store import SqliteIndexStore


def slowed(method: Callable[..., Any], seconds: float) -> Callable[..., Any]:
    def slow(*args: Any, **kwargs: Any) -> Any:
        time.sleep(seconds)  # the slow disk this process stands for
        return method(*args, **kwargs)

    return slow


if __name__ == "__main__":
    delay = float(sys.argv[1])
    for name in ("add_peer", "update_files"):
        setattr(SqliteIndexStore, name, slowed(getattr(SqliteIndexStore, name), delay))
    sys.exit(main(["--headless", *sys.argv[2:]]))
