"""``napster-server --headless`` that answers nothing until told, for tests/system/test_failover.py.

    python -m tests.held_index_server [napster-server arguments]

Every request read waits for its turn, as on a server busy with other peers' work (a crowd
JOINing at once, a slow disk), until a line arrives on standard input; then the server goes
on as the real one. Its loop stays free meanwhile, so it sends heartbeats as a busy server
does.
"""

from __future__ import annotations

import sys

from PySide6.QtCore import QSocketNotifier

from server_app.__main__ import main
from server_app.index_server import IndexServer


def hold_turns_until_stdin() -> None:
    """No turn is given until standard input has a line (then the held work starts)."""
    next_turns, start = IndexServer._next_turns, IndexServer.start

    def held_next_turns(self: IndexServer) -> None:
        if not getattr(self, "held", True):
            next_turns(self)

    def start_held(self: IndexServer, *args, **kwargs) -> int:
        port = start(self, *args, **kwargs)
        self.held = True
        notifier = QSocketNotifier(sys.stdin.fileno(), QSocketNotifier.Type.Read, self)

        def release() -> None:
            notifier.setEnabled(False)
            sys.stdin.readline()
            self.held = False
            self._turn_timer.start()

        notifier.activated.connect(release)
        return port

    IndexServer._next_turns = held_next_turns
    IndexServer.start = start_held


if __name__ == "__main__":
    hold_turns_until_stdin()
    sys.exit(main(["--headless", *sys.argv[1:]]))
