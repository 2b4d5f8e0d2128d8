"""The admin window's poll thread: it survives a failed read and reports what changed."""

from __future__ import annotations

from server_app.store import IndexUnavailable, PeerRecord
from server_app.ui.peer_poller import SharedPeerPoller


def record(peer_id: int, files: int = 1) -> PeerRecord:
    return PeerRecord(peer_id, "10.0.0.1", 6000 + peer_id, "test/1", files, 100, 1.0, 1.0)


class ScriptedReader:
    """Answers each read with the next of ``answers`` (an exception is raised)."""

    def __init__(self, answers: list) -> None:
        self.answers = answers
        self.closed = False

    def peers(self) -> list[PeerRecord]:
        answer = self.answers.pop(0)
        if isinstance(answer, BaseException):
            raise answer
        return answer

    def close(self) -> None:
        self.closed = True


def test_the_poll_thread_goes_on_after_a_failed_read_and_reports_only_changes(qtbot):
    reader = ScriptedReader(
        [
            [record(1), record(2)],
            IndexUnavailable("the database is away"),
            RuntimeError("a bug in a read"),
            [record(2, files=5), record(3)],
        ]
    )
    poller = SharedPeerPoller(lambda: reader)
    try:
        with qtbot.waitSignal(poller.changed) as first:
            poller.poll()
        assert [r.peer_id for r in first.args[0].joined] == [1, 2]
        with qtbot.waitSignal(poller.unavailable) as away:
            poller.poll()
        assert away.args == ["the database is away"]
        qtbot.waitUntil(lambda: len(reader.answers) == 2)
        poller.poll()  # the bug is logged; the thread lives on
        qtbot.waitUntil(lambda: len(reader.answers) == 1)
        with qtbot.waitSignal(poller.changed) as later:
            poller.poll()
        changes = later.args[0]
        assert [r.peer_id for r in changes.joined] == [3]
        assert [(r.peer_id, r.files) for r in changes.updated] == [(2, 5)]
        assert changes.left == [1]
        assert poller.is_running()
    finally:
        assert poller.stop()
    assert reader.closed
