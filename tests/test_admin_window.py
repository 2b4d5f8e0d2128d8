"""The index server's admin window, driven by real peers over loopback sockets."""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
import time
from pathlib import Path

import psycopg
import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QKeySequence

from server_app.__main__ import build_admin_window, parse_args
from server_app.index_server import IndexServer
from server_app.index_store import SqliteIndexStore
from server_app.log_handler import LogBuffer, LogEntry, QtLogHandler
from server_app.ui.admin_window import AdminWindow
from server_app.ui.formatting import format_size
from server_app.ui.models import LogTableModel, PeerTableModel
from server_app.ui.traffic import TrafficStats
from tests.wire_client import WireClient

H1, H2, H3 = "1" * 64, "2" * 64, "3" * 64
BIG = 12_400_000_000


def file(name: str, size: int, hash_: str) -> dict:
    return {"name": name, "size": size, "hash": hash_}


class FakePrompts:
    """Answers the window's questions without a dialog and keeps what was asked."""

    def __init__(self) -> None:
        self.answer = True
        self.asked: list[tuple[str, str]] = []

    def confirm(self, title: str, question: str) -> bool:
        self.asked.append((title, question))
        return self.answer

    def confirm_disconnect(self, peers: int, quitting: bool) -> bool:
        self.asked.append(("quit" if quitting else "stop", str(peers)))
        return self.answer


class Harness:
    """An admin window on a real IndexServer listening on 127.0.0.1, and its peers."""

    def __init__(self, qtbot, db: str = ":memory:") -> None:
        self.qtbot = qtbot
        self.store = SqliteIndexStore(db)
        self.prompts = FakePrompts()
        self.window = AdminWindow(IndexServer(self.store), database=db, prompts=self.prompts)
        self.clients: list[WireClient] = []
        assert self.window.start_listening("127.0.0.1", 0)
        self.port = self.window.server.serverPort()

    def connect(self, source: str | None = None) -> WireClient:
        client = WireClient(self.port, source=source)
        self.clients.append(client)
        return client

    def join(self, port: int, files: list[dict], source: str | None = None) -> WireClient:
        client = self.connect(source)
        reply = client.request(
            self.qtbot, {"op": "JOIN", "id": 1, "port": port, "files": files, "agent": "test/1"}
        )
        assert reply["op"] == "JOIN_OK", reply
        return client

    def wait_for_peer(self, address: str, present: bool = True) -> None:
        self.qtbot.waitUntil(lambda: (address in self.window.peer_addresses()) == present)

    def close(self) -> None:
        for client in self.clients:
            client.close()
        self.window.shutdown()
        self.window.close()
        self.store.close()


@pytest.fixture
def harness(qtbot):
    made: list[Harness] = []

    def make(db: str = ":memory:") -> Harness:
        made.append(Harness(qtbot, db))
        return made[-1]

    yield make
    for each in made:
        each.close()


def test_a_join_appears_in_the_table_the_counters_and_the_log(qtbot, harness):
    h = harness()
    window = h.window
    h.join(8776, [file("aula1.mp4", BIG, H1), file("aula2.mp4", 1_000, H2)])
    h.wait_for_peer("127.0.0.1:8776")
    row = window.peer_model.peer_at(0).display
    assert row[PeerTableModel.AGENT] == "test/1"
    assert row[PeerTableModel.FILES] == "2"
    assert row[PeerTableModel.SHARED] == "12.4 GB"
    qtbot.waitUntil(lambda: window.counter("JOIN") == "1")
    assert window.counter("peers") == "1"
    assert window.counter("files") == "2"
    assert window.counter("bytes") == format_size(BIG + 1_000) == "12.4 GB"

    searcher = h.join(8777, [])
    searcher.request(qtbot, {"op": "SEARCH", "id": 2, "query": "aula"})
    qtbot.waitUntil(lambda: window.counter("SEARCH") == "1")
    messages = window.log_pane.visible_messages
    qtbot.waitUntil(
        lambda: "Peer 127.0.0.1:8776 joined with files aula1.mp4 aula2.mp4" in messages()
    )
    qtbot.waitUntil(lambda: "Peer 127.0.0.1:8777 searched for aula" in messages())


def test_leave_and_a_dropped_connection_remove_the_row(qtbot, harness):
    h = harness()
    leaver = h.join(8776, [file("a.mp4", 1, H1)])
    dropper = h.join(8777, [file("b.mp4", 1, H2)])
    h.wait_for_peer("127.0.0.1:8776")
    h.wait_for_peer("127.0.0.1:8777")
    with qtbot.assertNotEmitted(h.window.peer_model.modelReset):
        assert leaver.request(qtbot, {"op": "LEAVE", "id": 3})["op"] == "LEAVE_OK"
        h.wait_for_peer("127.0.0.1:8776", present=False)
        dropper.close()
        h.wait_for_peer("127.0.0.1:8777", present=False)
    qtbot.waitUntil(lambda: h.window.counter("peers") == "0")
    assert h.window.counter("files") == "0"


def test_selecting_a_peer_shows_its_files_as_plain_text(qtbot, harness):
    h = harness()
    names = ["<b>bold <i>lecture.mp4", "evil\u202egnp.exe", "Aula 01 - Introdução.mkv"]
    h.join(8776, [file(name, 10, f"{i:064x}") for i, name in enumerate(names)])
    h.wait_for_peer("127.0.0.1:8776")
    assert h.window.select_peer(h.window.peer_model.peer_at(0).peer_id)
    shown = {
        h.window.peer_files_model.index(row, 0).data()
        for row in range(h.window.peer_files_model.rowCount())
    }
    assert shown == {"<b>bold <i>lecture.mp4", "evil\\u202egnp.exe", "Aula 01 - Introdução.mkv"}
    assert "127.0.0.1:8776 (test/1) shares 3 files" in h.window.detail_title.text()
    assert h.window.detail_title.textFormat() == Qt.TextFormat.PlainText


def test_kick_closes_that_peers_connection(qtbot, harness):
    h = harness()
    victim = h.join(8776, [file("a.mp4", 1, H1)])
    bystander = h.join(8777, [])
    h.wait_for_peer("127.0.0.1:8776")
    h.wait_for_peer("127.0.0.1:8777")
    peer_id = next(
        h.window.peer_model.peer_at(row).peer_id
        for row in range(2)
        if h.window.peer_model.peer_at(row).display[0] == "127.0.0.1:8776"
    )
    assert h.window.select_peer(peer_id)
    assert h.window.kick_button.isEnabled()
    qtbot.mouseClick(h.window.kick_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(victim.is_closed)
    h.wait_for_peer("127.0.0.1:8776", present=False)
    assert not bystander.is_closed()
    assert h.window.peer_addresses() == ["127.0.0.1:8777"]


def expect_refused(qtbot, client: WireClient) -> None:
    reply = client.reply(qtbot)
    assert reply["op"] == "ERROR" and reply["code"] == "LIMIT", reply
    assert "banned" in reply["message"]
    qtbot.waitUntil(client.is_closed)


def test_a_ban_applies_at_once_survives_a_restart_and_can_be_lifted(
    qtbot, harness, tmp_path, monkeypatch
):
    db = str(tmp_path / "index.sqlite3")
    h = harness(db)
    banned = h.join(8776, [file("a.mp4", 1, H1)], source="127.0.0.2")
    lurker = h.connect(source="127.0.0.2")  # connected, not joined yet: closed too
    friend = h.join(8777, [], source="127.0.0.1")
    h.wait_for_peer("127.0.0.2:8776")
    h.wait_for_peer("127.0.0.1:8777")
    assert h.window.select_peer(h.window.peer_model.peer_at(0).peer_id)
    questions = []
    monkeypatch.setattr(h.window, "confirm", lambda title, text: questions.append(text) or True)
    qtbot.mouseClick(h.window.ban_button, Qt.MouseButton.LeftButton)
    assert "127.0.0.2" in questions[0]
    qtbot.waitUntil(banned.is_closed)
    qtbot.waitUntil(lurker.is_closed)
    h.wait_for_peer("127.0.0.2:8776", present=False)
    assert not friend.is_closed()
    assert h.window.ban_model.addresses() == ["127.0.0.2"]
    expect_refused(qtbot, h.connect(source="127.0.0.2"))
    qtbot.waitUntil(lambda: h.window.counter("refused") == "1")

    h.close()
    h2 = harness(db)  # a new SqliteIndexStore and server on the same database file
    again = h2.window
    assert again.ban_model.addresses() == ["127.0.0.2"]
    expect_refused(qtbot, h2.connect(source="127.0.0.2"))
    qtbot.waitUntil(
        lambda: any(
            "Refused connection from 127.0.0.2" in m for m in again.log_pane.visible_messages()
        )
    )

    again.tabs.setCurrentIndex(2)
    again.bans_view.selectRow(0)
    assert again.unban_button.isEnabled()
    qtbot.mouseClick(again.unban_button, Qt.MouseButton.LeftButton)
    assert again.ban_model.addresses() == []
    h2.join(8778, [], source="127.0.0.2")
    h2.wait_for_peer("127.0.0.2:8778")


def test_bans_typed_on_the_bans_tab_are_checked(qtbot, harness):
    window = harness().window
    window.ban_address_edit.setText("not an address")
    window.ban_address_edit.returnPressed.emit()
    assert "is not an IP address" in window.ban_error.text()
    assert window.ban_model.addresses() == []
    window.ban_address_edit.setText("::ffff:203.0.113.7")
    window.ban_reason_edit.setText("flooding")
    window.ban_address_edit.returnPressed.emit()
    assert window.ban_model.addresses() == ["203.0.113.7"]
    assert window.store.is_banned("203.0.113.7")
    assert window.ban_error.text() == ""


def test_the_file_search_finds_what_peers_shared(qtbot, harness):
    h = harness()
    window = h.window
    shared = [file("Aula 01 - Intro.mp4", BIG, H1), file("concert.mkv", 5, H2)]
    h.join(8776, shared)
    h.join(8777, [file("Aula 01 - Intro.mp4", BIG, H1), file("notes.txt", 5, H3)])
    qtbot.waitUntil(lambda: window.counter("peers") == "2")
    window.tabs.setCurrentWidget(window.files_page)
    window.file_search.setText("AULA mp4")
    qtbot.waitUntil(lambda: window.file_names() == ["Aula 01 - Intro.mp4"])
    row = [window.file_model.index(0, column).data() for column in range(3)]
    assert row == ["Aula 01 - Intro.mp4", "12.4 GB", "2"]
    assert "1 file match" in window.file_note.text()

    window.file_search.setText("")
    window.run_file_search()
    assert sorted(window.file_names()) == ["Aula 01 - Intro.mp4", "concert.mkv", "notes.txt"]
    window.file_search.setText("nothing like this")
    window.run_file_search()
    assert window.file_names() == []
    assert "No file name contains every word" in window.files_view.empty_text()


def test_port_in_use_is_shown_in_the_window(qtbot, harness):
    window = harness().window
    window.stop_listening()
    assert "Stopped" in window.listen_state_text()
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert not window.start_listening("127.0.0.1", port)
    assert "already in use" in window.listen_state_text()
    assert str(port) in window.listen_state_text()
    assert window.listen_button.text() == "Start"
    assert window.host_edit.isEnabled()
    qtbot.waitUntil(lambda: any("already in use" in m for m in window.log_pane.visible_messages()))
    window.port_box.setValue(0)
    qtbot.mouseClick(window.listen_button, Qt.MouseButton.LeftButton)
    assert window.server.isListening()
    assert "Listening on 127.0.0.1:" in window.listen_state_text()


def test_stop_disconnects_every_peer(qtbot, harness):
    h = harness()
    client = h.join(8776, [file("a.mp4", 1, H1)])
    h.wait_for_peer("127.0.0.1:8776")
    qtbot.mouseClick(h.window.listen_button, Qt.MouseButton.LeftButton)
    assert not h.window.server.isListening()
    qtbot.waitUntil(client.is_closed)
    h.wait_for_peer("127.0.0.1:8776", present=False)
    assert "not listening" in h.window.peers_view.empty_text()


def test_peer_filter_box(qtbot, harness):
    h = harness()
    h.join(8776, [])
    h.join(8777, [])
    h.wait_for_peer("127.0.0.1:8776")
    h.wait_for_peer("127.0.0.1:8777")
    h.window.peer_filter.setText(":8777")
    assert h.window.peer_proxy.rowCount() == 1
    assert h.window.peer_count.text() == "1 of 2 online"
    h.window.peer_filter.setText("nobody")
    assert h.window.peer_proxy.rowCount() == 0
    assert "No online peer matches" in h.window.peers_view.empty_text()


def test_a_burst_of_joins_and_leaves_is_applied_incrementally(qtbot, harness):
    """Signals as the server emits them; a peer that comes and goes between ticks is skipped."""
    window = harness().window
    server, store, model = window.server, window.store, window.peer_model
    window.server.close()  # no real peers in this test
    ids = [store.add_peer("10.0.0.1", 1000 + n, "bulk/1", []) for n in range(600)]
    inserted = []
    model.rowsInserted.connect(lambda _parent, first, last: inserted.append(last - first + 1))
    with qtbot.assertNotEmitted(model.modelReset):
        for peer_id in ids:
            server.peer_joined.emit(peer_id, "10.0.0.1:x", 0)
        for peer_id in ids[:100]:  # gone before the table saw them
            store.remove_peer(peer_id)
            server.peer_left.emit(peer_id, "10.0.0.1:x")
        qtbot.waitUntil(lambda: model.rowCount() == 500)
        assert sum(inserted) == 500
        for peer_id in ids[100:400:2]:
            store.remove_peer(peer_id)
            server.peer_left.emit(peer_id, "10.0.0.1:x")
        qtbot.waitUntil(lambda: model.rowCount() == 350)
    assert sorted(model.peer_ids()) == sorted(record.peer_id for record in store.peers())
    assert all(model.row_of(peer_id) == row for row, peer_id in enumerate(model.peer_ids()))


def test_log_pane_takes_records_from_any_thread_and_filters_them(qtbot, harness):
    window = harness().window
    pane = window.log_pane
    logger = logging.getLogger("napster.test")
    worker = threading.Thread(target=logger.warning, args=("disk nearly full on \x1b[31m",))
    worker.start()
    worker.join()
    logger.info("an ordinary line")
    qtbot.waitUntil(lambda: "an ordinary line" in pane.visible_messages())
    assert "disk nearly full on \\x1b[31m" in pane.visible_messages()
    pane.level_box.setCurrentIndex(1)  # warnings and errors
    assert "an ordinary line" not in pane.visible_messages()
    assert "disk nearly full on \\x1b[31m" in pane.visible_messages()
    pane.level_box.setCurrentIndex(0)
    pane.filter_edit.setText("ORDINARY")
    qtbot.waitUntil(lambda: pane.visible_messages() == ["an ordinary line"])
    pane.follow_box.setChecked(False)
    logger.info("after pausing")
    pane.filter_edit.setText("")
    qtbot.waitUntil(lambda: "after pausing" in pane.visible_messages())


def test_log_buffer_and_table_are_capped():
    buffer = LogBuffer(capacity=3)
    handler = QtLogHandler(buffer)
    for n in range(5):
        handler.emit(logging.LogRecord("napster.x", logging.INFO, "", 0, f"line {n}", None, None))
    entries = buffer.take_new()
    assert [entry.message for entry in entries] == ["line 2", "line 3", "line 4"]
    assert buffer.take_new() == []
    model = LogTableModel(capacity=4)
    model.append(entries)
    model.append([LogEntry(0.0, logging.INFO, "INFO", "x", f"more {n}") for n in range(3)])
    assert model.messages() == ["line 4", "more 0", "more 1", "more 2"]


def test_request_rates_cover_the_last_minute():
    stats = TrafficStats()
    stats.note_request("JOIN", 1000.0)
    stats.note_request("JOIN", 1030.5)
    stats.note_request("SEARCH", 1059.0)
    assert stats.per_minute("JOIN", 1059.9) == 2
    assert stats.per_minute("JOIN", 1061.0) == 1
    assert stats.per_minute(None, 1061.0) == 2
    assert stats.sample(1061.0, peers=7).requests_per_minute == 2


def test_napster_server_without_flags_builds_the_admin_window(qtbot, isolated_home):
    window = build_admin_window(parse_args([]))
    try:
        assert isinstance(window, AdminWindow)
        assert window.host_edit.text() == "0.0.0.0"
        assert window.port_box.value() == 1099
        database = Path(window.database_label.text().removeprefix("Index database: "))
        assert database.name == "index.sqlite3" and isolated_home in database.parents
        # Port 1099 may be taken on this machine: then the window says so instead of failing.
        state = window.listen_state_text()
        assert "Listening on 0.0.0.0:1099" in state or "already in use" in state
    finally:
        window.shutdown()
        window.store.close()


def test_command_line_options_set_the_window_and_it_listens_at_once(qtbot, tmp_path):
    args = parse_args(["--host", "127.0.0.1", "--port", "0", "--db", str(tmp_path / "i.db")])
    window = build_admin_window(args)
    try:
        assert window.server.isListening()
        assert (
            window.listen_state_text() == f"● Listening on 127.0.0.1:{window.server.serverPort()}"
        )
        assert not window.host_edit.isEnabled()
        assert (tmp_path / "i.db").exists()
    finally:
        window.shutdown()
        window.store.close()


# ------------------------------------------------------------------ safety


def test_stop_with_peers_online_asks_first_and_no_keeps_them(qtbot, harness):
    h = harness()
    client = h.join(8776, [])
    h.wait_for_peer("127.0.0.1:8776")
    h.prompts.answer = False
    qtbot.mouseClick(h.window.listen_button, Qt.MouseButton.LeftButton)
    assert h.prompts.asked == [("stop", "1")]
    assert h.window.server.isListening() and not client.is_closed()
    h.prompts.answer = True
    qtbot.mouseClick(h.window.listen_button, Qt.MouseButton.LeftButton)
    assert not h.window.server.isListening()
    qtbot.waitUntil(client.is_closed)


def test_stop_without_peers_does_not_ask(qtbot, harness):
    h = harness()
    qtbot.mouseClick(h.window.listen_button, Qt.MouseButton.LeftButton)
    assert not h.window.server.isListening() and h.prompts.asked == []


@pytest.mark.qt_log_ignore("This plugin does not support propagateSizeHints")
def test_closing_the_window_with_peers_online_asks_first(qtbot, harness):
    h = harness()
    h.window.show()
    client = h.join(8776, [])
    h.wait_for_peer("127.0.0.1:8776")
    h.prompts.answer = False
    assert h.window.close() is False
    assert h.window.isVisible() and h.window.server.isListening() and not client.is_closed()
    h.prompts.answer = True
    assert h.window.close() is True
    assert h.prompts.asked == [("quit", "1"), ("quit", "1")]
    qtbot.waitUntil(client.is_closed)


@pytest.mark.qt_log_ignore("This plugin does not support propagateSizeHints")
def test_file_quit_is_ctrl_q_and_goes_through_the_same_question(qtbot, harness):
    h = harness()
    h.window.show()
    qtbot.waitExposed(h.window)
    menus = [action.text() for action in h.window.menuBar().actions()]
    assert menus == ["&File"]
    assert h.window.quit_action in h.window.menuBar().actions()[0].menu().actions()
    assert h.window.quit_action.shortcut() == QKeySequence(QKeySequence.StandardKey.Quit)
    h.join(8776, [])
    h.wait_for_peer("127.0.0.1:8776")
    h.prompts.answer = False
    h.window.quit_action.trigger()
    assert h.prompts.asked == [("quit", "1")] and h.window.isVisible()
    h.prompts.answer = True
    h.window.quit_action.trigger()
    assert not h.window.isVisible() and not h.window.server.isListening()


def test_the_files_tab_shows_the_index_when_first_opened(qtbot, harness):
    h = harness()
    h.join(8776, [file("lecture one.mkv", 1, H1), file("lecture two.mkv", 2, H2)])
    h.wait_for_peer("127.0.0.1:8776")
    assert h.window.file_names() == []  # the window opened on an empty index
    h.window.tabs.setCurrentWidget(h.window.files_page)
    # At once, not at the next periodic refresh.
    assert sorted(h.window.file_names()) == ["lecture one.mkv", "lecture two.mkv"]


def test_a_kicked_peer_stays_out_for_ten_minutes_unless_unbanned(qtbot, harness):
    h = harness()
    h.join(8776, [], source="127.0.0.3")
    h.wait_for_peer("127.0.0.3:8776")
    assert h.window.select_peer(h.window.peer_model.peer_at(0).peer_id)
    assert h.window.kick_selected() == 1
    h.wait_for_peer("127.0.0.3:8776", present=False)
    expect_refused(qtbot, h.connect(source="127.0.0.3"))
    assert h.window.ban_model.addresses() == ["127.0.0.3"]
    ends = h.window.ban_model.index(0, 3).data()
    assert ends == "in 10 min", ends
    # Eight minutes and twenty seconds later it is still out, and the Bans tab says so.
    server = h.window.server
    start = time.time()
    server.now = lambda: start + 500
    h.window.reload_bans()
    assert h.window.ban_model.index(0, 3).data() == "in 2 min"
    expect_refused(qtbot, h.connect(source="127.0.0.3"))
    # Unban lifts it at once.
    h.window.unban_address("127.0.0.3")
    assert h.window.ban_model.addresses() == []
    h.join(8776, [], source="127.0.0.3")
    h.wait_for_peer("127.0.0.3:8776")


def test_a_kick_ban_runs_out_by_itself(qtbot, harness):
    h = harness()
    client = h.join(8776, [], source="127.0.0.3")
    h.wait_for_peer("127.0.0.3:8776")
    server = h.window.server
    assert server.kick(server.sessions.copy().pop().peer_id)
    qtbot.waitUntil(client.is_closed)
    assert server.is_banned("127.0.0.3")
    start = time.time()
    server.now = lambda: start + 601
    assert not server.is_banned("127.0.0.3")
    qtbot.waitUntil(lambda: h.window.ban_model.addresses() == [])
    h.join(8776, [], source="127.0.0.3")


def test_window_titles_carry_the_address_they_listen_on(qtbot, harness):
    first, second = harness().window, harness().window
    assert f"127.0.0.1:{first.server.serverPort()}" in first.windowTitle()
    assert first.windowTitle() != second.windowTitle()
    first.stop_listening()
    assert "stopped" in first.windowTitle()


# ------------------------------------------------------------------ Brazilian Portuguese

ADMIN_CONTEXTS = {
    "server_app/ui/admin_window.py": "AdminWindow",
    "server_app/ui/log_pane.py": "AdminLog",
    "server_app/ui/traffic_chart.py": "AdminChart",
    "server_app/ui/models.py": "AdminTables",
    "server_app/ui/relay_panel.py": "RelayPanel",
}


def admin_sources() -> dict[str, set[str]]:
    """Every text the admin modules pass to tr()/translate(), by context (and table headers)."""
    import ast

    root = Path(__file__).resolve().parent.parent
    found: dict[str, set[str]] = {}
    for relative, context in ADMIN_CONTEXTS.items():
        tree = ast.parse((root / relative).read_text(encoding="utf-8"))
        constants = {}
        for node in ast.walk(tree):
            if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name):
                with contextlib.suppress(ValueError, TypeError, SyntaxError):
                    constants[node.targets[0].id] = ast.literal_eval(node.value)
        texts = found.setdefault(context, set())
        texts.update(constants.get("HEADERS", ()))
        texts.update(label for label, _level in constants.get("LEVELS", ()))
        texts.update(constants.get("LEVEL_NAMES", ()))
        texts.update(constants.get("captions", {}).values())
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            name = getattr(node.func, "id", getattr(node.func, "attr", ""))
            args = node.args[:1] if name == "tr" else node.args[1:2] if name == "translate" else []
            for arg in args:
                for part in (arg.body, arg.orelse) if isinstance(arg, ast.IfExp) else (arg,):
                    if isinstance(part, ast.Constant) and isinstance(part.value, str):
                        texts.add(part.value)
                    elif isinstance(part, ast.Name) and isinstance(constants.get(part.id), str):
                        texts.add(constants[part.id])
    return found


def test_every_admin_text_has_a_brazilian_portuguese_translation():
    from app import i18n

    _language, messages = i18n.read_ts(i18n.i18n_dir() / "napster_pt_BR.ts")
    translated = {(m.context, m.source) for m in messages if m.translation}
    sources = admin_sources()
    assert len(sources["AdminWindow"]) > 60
    missing = {(c, text) for c, texts in sources.items() for text in texts} - translated
    assert not missing, sorted(missing)


@pytest.mark.qt_log_ignore("This plugin does not support propagateSizeHints")
def test_the_admin_window_speaks_brazilian_portuguese(qtbot, harness):
    from app.i18n import Translations

    translations = Translations()
    try:
        assert translations.apply("pt_BR") == "pt_BR"
        h = harness()
        window = h.window
        window.show()
        assert window.windowTitle().endswith("Servidor de índice Napster P2P")
        assert [window.tabs.tabText(i) for i in range(3)] == ["Peers", "Arquivos", "Banimentos"]
        assert window.menuBar().actions()[0].text() == "&Arquivo"
        assert window.quit_action.text() == "&Sair"
        assert window.listen_button.text() == "Parar"
        assert window.listen_state_text().startswith("● Escutando em 127.0.0.1:")
        assert window.ban_model.headerData(0, Qt.Orientation.Horizontal) == "Endereço"
        assert window.log_pane.follow_box.text() == "Seguir novas linhas"
        assert window.counter("peers") == "0"
        assert window.tiles["peers"].caption_label.text() == "Peers online"
        # Numbers as the peer window writes them in Portuguese ("12.4 GB" read as 12,4 there).
        h.join(8776, [file("aula1.mp4", BIG, H1), file("aula2.mp4", 1_000, H2)])
        h.wait_for_peer("127.0.0.1:8776")
        assert window.peer_model.peer_at(0).display[PeerTableModel.SHARED] == "12,4 GB"
        qtbot.waitUntil(lambda: window.counter("bytes") == "12,4 GB")
        assert window.tiles["bytes"].toolTip() == "12.400.001.000 bytes"
        # Every column title fits ("Visto por último", "Quem tem o arquivo" were cut).
        for view in (
            window.peers_view,
            window.files_view,
            window.bans_view,
            window.relay_panel.table,
        ):
            header = view.horizontalHeader()
            for column in range(header.count()):
                qtbot.waitUntil(
                    lambda header=header, column=column: (
                        header.sectionSize(column) >= header.sectionSizeFromContents(column).width()
                    )
                )
    finally:
        translations.apply("en")


@pytest.mark.qt_log_ignore("This plugin does not support propagateSizeHints")
@pytest.mark.parametrize("language", ["en", "pt_BR"])
def test_the_status_bar_shows_the_whole_fingerprint_and_shortens_the_path(
    qtbot, harness, tmp_path, language
):
    from app.i18n import Translations

    folder = tmp_path / ("a folder with a rather long name " * 3).strip()
    folder.mkdir()
    translations = Translations()
    try:
        translations.apply(language)
        window = harness(str(folder / "index.sqlite3")).window
        window.show()
        # The listening state is above; a copy of it was squeezed beside the path ("Listening or").
        assert window.statusBar().currentMessage() == ""
        label = window.fingerprint_label
        qtbot.waitUntil(
            lambda: label.width() >= label.fontMetrics().horizontalAdvance(label.text())
        )
        database = window.database_label
        assert database.toolTip() == str(folder / "index.sqlite3")
        assert "…" in database.shown_text() and database.shown_text() != database.text()
    finally:
        translations.apply("en")


def test_on_a_shared_index_the_window_shows_every_servers_peers_and_their_server(
    qtbot, postgres_url, monkeypatch
):
    """Two servers over one PostgreSQL index: this window lists the other server's peer too,
    with the server each peer is on, and drops it when it leaves there."""
    from server_app.postgres_store import PostgresIndexStore
    from server_app.ui import peer_feed

    monkeypatch.setattr(peer_feed, "POLL_MS", 100)
    mine = PostgresIndexStore(postgres_url, server_name="index-1:1099")
    other = PostgresIndexStore(postgres_url, server_name="index-2:1099")
    window = AdminWindow(IndexServer(mine), database="postgresql://…", prompts=FakePrompts())
    client = None
    try:
        assert window.start_listening("127.0.0.1", 0)
        client = WireClient(window.server.serverPort())
        reply = client.request(qtbot, {"op": "JOIN", "id": 1, "port": 7001, "files": []})
        assert reply["op"] == "JOIN_OK"
        elsewhere = other.add_peer("10.9.9.9", 6001, "far/1", [], now=1000.0)
        qtbot.waitUntil(lambda: len(window.peer_addresses()) == 2, timeout=5000)
        servers = {
            row.display[PeerTableModel.ADDRESS]: row.display[PeerTableModel.SERVER]
            for row in map(window.peer_model.peer_at, range(window.peer_model.rowCount()))
        }
        assert servers == {"127.0.0.1:7001": "index-1:1099", "10.9.9.9:6001": "index-2:1099"}
        other.remove_peer(elsewhere)
        qtbot.waitUntil(lambda: window.peer_addresses() == ["127.0.0.1:7001"], timeout=5000)
    finally:
        if client:
            client.close()
        window.shutdown()
        window.close()
        mine.close()
        other.close()


def insert_peers(url: str, server_id: int, first: int, count: int) -> None:
    """``count`` peers of another server, straight into its rows (10.x.y.z:6000-6999)."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO peers (server_id, host, port, agent, files, bytes, joined_at, last_seen)"
            " SELECT %s, '10.' || (g / 65536) || '.' || (g / 256 %% 256) || '.' || (g %% 256),"
            " 6000 + g %% 1000, 'many/1', 1, 1000, 1000.0, 1000.0"
            " FROM generate_series(%s::bigint, %s::bigint) AS g",
            (server_id, first, first + count - 1),
        )


def admin_connections(url: str) -> int:
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'napster-admin'"
        ).fetchone()
    return row[0] if row else 0


def test_polling_a_shared_index_of_many_peers_leaves_the_gui_thread_free(
    qtbot, postgres_url, monkeypatch
):
    """20,000 peers of another server: the window never reads them on the GUI thread (doing
    so held it 0.7 s a poll: tests/bench/admin_poll_bench.py); the changes arrive by signal."""
    from server_app.postgres_store import PostgresIndexStore
    from server_app.ui import peer_feed

    monkeypatch.setattr(peer_feed, "POLL_MS", 3_600_000)  # only the polls below
    mine = PostgresIndexStore(postgres_url, server_name="index-1:1099")
    other = PostgresIndexStore(postgres_url, server_name="index-2:1099")
    gui_reads: list[str] = []
    monkeypatch.setattr(mine, "peers", lambda: gui_reads.append("peers") or [])
    read_on: list[threading.Thread] = []
    open_reader = mine.open_reader

    def recording_reader():
        reader = open_reader()
        peers = reader.peers

        def read():
            read_on.append(threading.current_thread())
            return peers()

        reader.peers = read
        return reader

    monkeypatch.setattr(mine, "open_reader", recording_reader)
    insert_peers(postgres_url, other.server_id, 1, 20_000)
    window = AdminWindow(IndexServer(mine), database="postgresql://…", prompts=FakePrompts())
    feed = window.peer_feed
    try:
        assert feed.poller is not None
        qtbot.waitUntil(lambda: window.peer_model.rowCount() > 0, timeout=10_000)
        with psycopg.connect(postgres_url, autocommit=True) as conn:
            conn.execute("DELETE FROM peers WHERE peer_id <= 100")
            conn.execute("UPDATE peers SET files = 2 WHERE peer_id BETWEEN 101 AND 300")
        insert_peers(postgres_url, other.server_id, 20_001, 100)

        with qtbot.waitSignal(feed.poller.changed, timeout=10_000) as blocker:
            feed.poll()
        changes = blocker.args[0]
        assert (len(changes.joined), len(changes.updated), len(changes.left)) == (100, 200, 100)
        assert gui_reads == []
        assert read_on and threading.main_thread() not in read_on
        assert admin_connections(postgres_url) == 1
    finally:
        window.shutdown()
        window.close()
        mine.close()
        other.close()
    assert not feed.poller.is_running()
    qtbot.waitUntil(lambda: admin_connections(postgres_url) == 0, timeout=5000)


@pytest.fixture(scope="module")
def own_postgres():
    """A PostgreSQL of its own, to stop and start again."""
    from tests.postgres_server import ThrowawayPostgres

    server = ThrowawayPostgres().start()
    yield server
    server.stop()


def test_a_shared_index_away_during_a_poll_keeps_the_table_and_the_next_poll_catches_up(
    qtbot, own_postgres, monkeypatch
):
    from server_app.postgres_store import PostgresIndexStore
    from server_app.store import IndexUnavailable
    from server_app.ui import peer_feed

    monkeypatch.setattr(peer_feed, "POLL_MS", 3_600_000)  # only the polls below
    url = own_postgres.create_database()
    mine = PostgresIndexStore(url, server_name="index-1:1099")
    other = PostgresIndexStore(url, server_name="index-2:1099")
    elsewhere = other.add_peer("10.9.9.9", 6001, "far/1", [], now=1000.0)
    window = AdminWindow(IndexServer(mine), database="postgresql://…", prompts=FakePrompts())
    feed = window.peer_feed
    try:
        assert feed.poller is not None
        qtbot.waitUntil(lambda: window.peer_addresses() == ["10.9.9.9:6001"], timeout=5000)

        own_postgres.stop(remove=False)
        with qtbot.waitSignal(feed.poller.unavailable, timeout=10_000):
            feed.poll()
        assert window.peer_addresses() == ["10.9.9.9:6001"]
        assert feed.poller.is_running()

        own_postgres.start()

        def removed() -> bool:
            try:
                other.remove_peer(elsewhere)
            except IndexUnavailable:
                return False
            return True

        qtbot.waitUntil(removed, timeout=10_000)

        def caught_up() -> bool:
            feed.poll()
            return window.peer_addresses() == []

        qtbot.waitUntil(caught_up, timeout=10_000)
    finally:
        window.shutdown()
        window.close()
        mine.close()
        other.close()
    assert not feed.poller.is_running()
