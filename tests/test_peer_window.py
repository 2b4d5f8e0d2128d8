"""The peer's desktop window against a real index server and a real second peer on loopback."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import pytest
from PySide6.QtCore import QMimeData, QPoint, QPointF, QRect, Qt, QUrl
from PySide6.QtGui import QDragEnterEvent, QDropEvent
from PySide6.QtWidgets import QApplication

from app.download import engine as fp
from app.download.problems import describe
from app.download.transfer import TransferState
from app.file_copier import FileCopier
from app.network import protocol as p
from app.network.pieces import hash_file
from app.peer import PeerConfig, PeerNode
from app.settings import Settings
from app.ui.dialogs import CancelAnswer, SettingsDialog, SettingsValues
from app.ui.formatting import format_count
from app.ui.main_window import DEFAULT_SIZE, MainWindow
from app.ui.models import (
    DownloadsModel,
    SearchResultsModel,
    SharedFilesModel,
    UploadsModel,
    UploadState,
)
from app.ui.search_page import has_more, next_limit
from server_app.index_server import IndexServer
from server_app.index_store import SqliteIndexStore
from tests.fake_source import FakeSource
from tests.test_transfer import PIECE, in_thread, make_file

# The offscreen platform says this once per shown main window; it is not about our code.
pytestmark = pytest.mark.qt_log_ignore(
    "This plugin does not support propagateSizeHints", "This plugin does not support raise"
)

#: A long stall deadline, so a test can pause a download while its source stalls.
TIMEOUTS = fp.Timeouts(connect=2.0, stall=10.0, tick=0.05)
QUICK_RECONNECT = {"min_backoff": 0.05, "max_backoff": 0.2}


class FakePrompts:
    """Answers the window's questions without a modal dialog, and remembers them."""

    def __init__(self) -> None:
        self.quit_answer = True
        self.cancel_answer = CancelAnswer.CANCEL_DELETE_PARTIAL
        self.settings_answer: SettingsValues | None = None
        self.trust_answer = False
        self.asked: list[tuple] = []

    def confirm_quit(self, downloads: int, uploads: int, copies: int) -> bool:
        self.asked.append(("quit", downloads, uploads, copies))
        return self.quit_answer

    def ask_cancel(self, names: list[str]) -> CancelAnswer:
        self.asked.append(("cancel", names))
        return self.cancel_answer

    def edit_settings(self, values: SettingsValues) -> SettingsValues | None:
        self.asked.append(("settings", values))
        return self.settings_answer

    def trust_new_server_identity(self, server: str, known: str, presented: str) -> bool:
        self.asked.append(("identity", server, known, presented))
        return self.trust_answer

    def choose_files(self, folder: Path) -> list[Path]:
        return []

    def show_error(self, title: str, text: str) -> None:
        self.asked.append(("error", title, text))

    def warn(self, title: str, text: str) -> None:
        self.asked.append(("warn", title, text))

    def show_stream_url(self, url: str) -> None:
        self.asked.append(("stream_url", url))

    def show_about(self) -> None:
        self.asked.append(("about",))


@pytest.fixture
def index_server(make_index_server):
    return make_index_server()


def peer_config(root: Path, server_port: int) -> PeerConfig:
    return PeerConfig(
        server_host="127.0.0.1",
        server_port=server_port,
        share_dir=root / "share",
        download_dir=root / "downloads",
        listen_host="127.0.0.1",
        listen_port=0,
        data_dir=root / "data",
    )


@pytest.fixture
def source_peer(tmp_path, index_server, qtbot):
    """Peer A, sharing a video, a song and a document."""
    root = tmp_path / "a"
    (root / "share").mkdir(parents=True)
    make_file(root / "share" / "lecture one.mp4", 2 * PIECE + 77, seed=1)
    make_file(root / "share" / "movie.mkv", 3 * PIECE, seed=2)
    make_file(root / "share" / "song.mp3", 1000, seed=3)
    node = PeerNode(peer_config(root, index_server.serverPort()), TIMEOUTS, **QUICK_RECONNECT)
    node.start()
    qtbot.waitUntil(lambda: indexed(index_server, "song.mp3") == 1, timeout=10000)
    yield node
    node.stop()


@pytest.fixture
def make_window(tmp_path, index_server, qtbot):
    windows = []

    def make(name: str = "b", settings_file: Path | None = None) -> MainWindow:
        node = PeerNode(
            peer_config(tmp_path / name, index_server.serverPort()), TIMEOUTS, **QUICK_RECONNECT
        )
        settings = Settings.from_file(settings_file or tmp_path / f"{name}.ini")
        window = MainWindow(node, settings, prompts=FakePrompts())
        window.opened = []
        window.open_url = lambda url: window.opened.append(url.toLocalFile()) or True
        window.show()
        window.start()
        windows.append(window)
        qtbot.waitUntil(lambda: node.client.state == "joined", timeout=5000)
        return window

    yield make
    for window in windows:
        window.prompts.quit_answer = True
        window.close()
        assert window._stopped
        window.deleteLater()


@pytest.fixture
def window(make_window, source_peer):
    return make_window()


def only_these_sources(window: MainWindow) -> None:
    """Keep a download on the sources it was given: the peer otherwise asks the index who
    else holds the file (SOURCES) as it starts, and the honest source would finish it at once
    (these tests need a download that keeps running)."""
    window.node.transfers.transfer_added.disconnect(window.node._on_transfer_added)


def indexed(server: IndexServer, name: str) -> int:
    """How many online peers the index lists for a file name."""
    return sum(len(r.peers) for r in server.store.search(name, 10) if r.name == name)


def cell(model, row: int, column: int) -> str:
    return model.data(model.index(row, column), Qt.ItemDataRole.DisplayRole)


def search(qtbot, window: MainWindow, text: str) -> SearchResultsModel:
    page = window.search_page
    page.field.clear()
    qtbot.keyClicks(page.field, text)
    qtbot.keyClick(page.field, Qt.Key.Key_Return)
    assert page.busy.isVisibleTo(page)
    qtbot.waitUntil(lambda: not page.searching, timeout=5000)
    return page.model


def downloads_row(window: MainWindow, transfer_id: str) -> int:
    return window.transfers_page.downloads.row_of(transfer_id)


def state_of(window: MainWindow, transfer_id: str) -> str:
    return cell(
        window.transfers_page.downloads, downloads_row(window, transfer_id), DownloadsModel.STATE
    )


# ---------------------------------------------------------------- search and download


def test_search_shows_results_and_a_download_goes_to_done_with_the_file_on_disk(
    qtbot, window, source_peer
):
    page = window.search_page
    assert page.stack.currentWidget() is page.hint
    assert "press Enter" in page.hint.text()
    assert window.status.connection_label.text().startswith("Connected to 127.0.0.1:")

    model = search(qtbot, window, "nothing-like-this")
    assert model.rowCount() == 0
    assert "No peer shares a file matching “nothing-like-this”" in page.hint.text()

    model = search(qtbot, window, "lecture")
    assert model.rowCount() == 1
    assert page.stack.currentWidget() is page.table
    assert cell(model, 0, SearchResultsModel.NAME) == "lecture one.mp4"
    assert cell(model, 0, SearchResultsModel.SIZE) == "8.4 MB"
    assert cell(model, 0, SearchResultsModel.SOURCES) == "1"
    assert cell(model, 0, SearchResultsModel.STATUS) == ""
    assert page.count_label.text() == "1 result"

    index = page.proxy.index(0, 0)
    rect = page.table.visualRect(index)
    qtbot.mouseClick(page.table.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    assert window.actions["download"].isEnabled()
    qtbot.mouseDClick(page.table.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())

    downloads = window.transfers_page.downloads
    assert downloads.rowCount() == 1
    transfer_id = downloads.transfer_ids()[0]
    qtbot.waitUntil(lambda: state_of(window, transfer_id) == "Done", timeout=20000)
    row = downloads_row(window, transfer_id)
    assert cell(downloads, row, DownloadsModel.SIZE) == "8.4 MB"
    assert cell(downloads, row, DownloadsModel.PROGRESS) == "100 %"
    downloaded = window.node.config.download_dir / "lecture one.mp4"
    original = source_peer.config.share_dir / "lecture one.mp4"
    assert downloaded.read_bytes() == original.read_bytes()

    # The result is marked, the tray (or status bar) said so, and the file opens.
    qtbot.waitUntil(lambda: cell(model, 0, SearchResultsModel.STATUS) == "Downloaded")
    assert window.notifications[-1][0] == "Download finished"
    assert "lecture one.mp4" in window.notifications[-1][1]
    window.show_page(window.transfers_page)
    window.transfers_page.select_transfer(transfer_id)
    assert window.actions["open_file"].isEnabled()
    assert not window.actions["pause"].isEnabled()
    window.actions["open_file"].trigger()
    window.actions["show_in_folder"].trigger()
    assert window.opened == [str(downloaded), str(downloaded.parent)]

    # Queuing it again does not download a second copy.
    assert window.queue_downloads([model.result_at(0)]) == []


def test_every_source_is_shown_in_the_tooltip_and_the_details_window(qtbot, window, source_peer):
    model = search(qtbot, window, "song")
    source = f"127.0.0.1:{source_peer.listen_port}"
    tooltip = model.data(model.index(0, SearchResultsModel.SOURCES), Qt.ItemDataRole.ToolTipRole)
    assert tooltip == source
    window.search_page.table.selectRow(0)
    assert window.actions["details"].isEnabled()
    window.actions["details"].trigger()
    details = window.details_dialog
    assert details is not None and details.isVisible()
    assert details.source_lines() == [source]
    assert details.name.text() == "song.mp3"
    assert details.size.text() == f"1.0 KB ({format_count(1000)} bytes)"
    assert details.sources_label.text() == "Sources (1):"
    window.actions["copy_sources"].trigger()
    assert QApplication.clipboard().text() == source

    many = p.SearchResult(
        "popular.mp4", 10, "c" * 64, tuple(p.PeerAddress("10.0.0.1", 7000 + n) for n in range(40))
    )
    model.set_results([many])
    tooltip = model.data(model.index(0, SearchResultsModel.SOURCES), Qt.ItemDataRole.ToolTipRole)
    assert tooltip.splitlines()[0] == "10.0.0.1:7000"
    assert tooltip.splitlines()[-1] == "…and 10 more"
    window.search_page.table.selectRow(0)  # the open details window follows the selection
    assert len(details.source_lines()) == 40
    assert details.source_lines()[-1] == "10.0.0.1:7039"


def test_show_more_asks_for_the_next_larger_page_up_to_the_protocols_most():
    assert [next_limit(n) for n in (100, 200, 500)] == [200, 500, 500]
    assert has_more([object()] * 100, 100) and not has_more([object()] * 99, 100)


def test_a_full_page_of_results_offers_to_show_more(qtbot, make_window, index_server, tmp_path):
    root = tmp_path / "many"
    (root / "share").mkdir(parents=True)
    for number in range(130):
        (root / "share" / f"track {number:03}.mp3").write_bytes(number.to_bytes(2) * 50)
    sharer = PeerNode(peer_config(root, index_server.serverPort()), TIMEOUTS, **QUICK_RECONNECT)
    sharer.start()
    try:
        qtbot.waitUntil(lambda: indexed(index_server, "track 129.mp3") == 1, timeout=20000)
        window = make_window()
        page = window.search_page
        model = search(qtbot, window, "track")
        assert model.rowCount() == 100
        assert page.count_label.text() == "Showing the first 100 results; more match."
        assert page.more_button.isVisibleTo(page)
        assert page.more_button.text() == "Show more"

        with qtbot.waitSignal(window.node.search_finished, timeout=5000) as answer:
            qtbot.mouseClick(page.more_button, Qt.MouseButton.LeftButton)
            assert model.rowCount() == 100  # the first page stays while asking
        assert len(answer.args[1]) == 130
        assert model.rowCount() == 130
        assert page.count_label.text() == "130 results"
        assert not page.more_button.isVisibleTo(page)
    finally:
        sharer.stop()


@dataclass
class StalledDownload:
    result: p.SearchResult  # the movie as the search found it (the honest peer)
    original: Path
    stalling: FakeSource  # sends one piece, then nothing
    transfer_id: str


@pytest.fixture
def stalled_download(qtbot, window, source_peer):
    """A download of the movie that keeps running: its only source sends one piece and
    stalls (and the peer asks nobody else, see only_these_sources)."""
    model = search(qtbot, window, "movie")
    result = model.result_at(0)
    original = source_peer.config.share_dir / "movie.mkv"
    stalling = FakeSource(original, hash_file(original), "movie.mkv", stall_after=PIECE + 1000)
    only_these_sources(window)
    try:
        slow = p.SearchResult(result.name, result.size, result.hash, (stalling.address,))
        (transfer_id,) = window.queue_downloads([slow])
        transfers = window.node.transfers
        qtbot.waitUntil(
            lambda: transfers.get(transfer_id).state is TransferState.DOWNLOADING, timeout=10000
        )
        yield StalledDownload(result, original, stalling, transfer_id)
    finally:
        stalling.close()


def test_pause_and_resume_a_running_download(qtbot, window, stalled_download):
    transfer_id, stalling = stalled_download.transfer_id, stalled_download.stalling
    result, original = stalled_download.result, stalled_download.original
    transfers = window.node.transfers
    assert transfers.get(transfer_id).current_source == str(stalling.address)
    assert state_of(window, transfer_id) == "Downloading"
    part = transfers.get(transfer_id).part_path
    assert part.exists()

    # Closing now asks first; saying no keeps everything running.
    window.prompts.quit_answer = False
    window.close()
    assert window.isVisible()
    assert window.prompts.asked[-1] == ("quit", 1, 0, 0)
    assert window.node.client.state == "joined"

    window.show_page(window.transfers_page)
    window.transfers_page.select_transfer(transfer_id)
    assert window.actions["pause"].isEnabled()
    assert not window.actions["resume"].isEnabled()
    window.actions["pause"].trigger()
    assert state_of(window, transfer_id) == "Paused"
    assert window.actions["resume"].isEnabled()
    assert not window.actions["pause"].isEnabled()
    qtbot.waitUntil(lambda: not transfers._pumps, timeout=5000)
    assert part.exists()
    assert not (window.node.config.download_dir / "movie.mkv").exists()
    stalling.close()

    transfers.add_sources(result.hash, result.size, list(result.peers))  # a search finds more
    window.actions["resume"].trigger()
    qtbot.waitUntil(lambda: state_of(window, transfer_id) == "Done", timeout=20000)
    assert (window.node.config.download_dir / "movie.mkv").read_bytes() == original.read_bytes()
    assert not part.exists()


def test_quit_clicked_during_a_download_stops_its_pump_and_saves(qtbot, window, stalled_download):
    """The finding: Quit during a download ended in SIGABRT ("QThread: Destroyed while
    thread 'pump ...' is still running")."""
    transfer_id = stalled_download.transfer_id
    transfers = window.node.transfers
    pumps = list(transfers._pumps.values())
    assert pumps and pumps[0].is_running()
    window.prompts.quit_answer = True
    window.actions["quit"].trigger()  # what the menu item and Ctrl+Q do
    assert not window.isVisible()
    assert window.prompts.asked[-1] == ("quit", 1, 0, 0)
    assert not pumps[0].is_running()  # stopped and waited for, before anything goes
    assert transfers.get(transfer_id).state is TransferState.QUEUED
    state = transfers.get(transfer_id).part_path.with_suffix(".part.napster-state")
    assert state.exists()


def test_cancel_asks_first_and_quitting_leaves_the_index(qtbot, window, index_server, tmp_path):
    dead_source = p.PeerAddress("127.0.0.1", 9)
    result = p.SearchResult("gone.mp4", 10 * PIECE, "a" * 64, (dead_source,))
    (transfer_id,) = window.queue_downloads([result])
    transfers = window.node.transfers
    qtbot.waitUntil(
        lambda: transfers.get(transfer_id).state is TransferState.WAITING, timeout=10000
    )
    assert state_of(window, transfer_id).startswith("Waiting to retry in ")
    window.show_page(window.transfers_page)
    window.transfers_page.select_transfer(transfer_id)
    assert window.actions["retry"].isEnabled()

    window.prompts.cancel_answer = CancelAnswer.KEEP_DOWNLOADING
    window.actions["cancel"].trigger()
    assert window.prompts.asked[-1] == ("cancel", ["gone.mp4"])
    assert transfers.get(transfer_id) is not None

    window.prompts.cancel_answer = CancelAnswer.CANCEL_DELETE_PARTIAL
    window.actions["cancel"].trigger()
    qtbot.waitUntil(lambda: window.transfers_page.downloads.rowCount() == 0, timeout=5000)
    assert transfers.get(transfer_id) is None
    assert window.transfers_page.downloads_stack.currentWidget() is (
        window.transfers_page.downloads_hint
    )

    # Nothing runs now: quitting asks nothing, sends LEAVE and saves the queue.
    asked = len(window.prompts.asked)
    peers_before = index_server.store.counters().peers
    window.close()
    assert len(window.prompts.asked) == asked
    assert not window.isVisible()
    assert window.node.client.state == "offline"
    qtbot.waitUntil(lambda: index_server.store.counters().peers == peers_before - 1)
    assert (tmp_path / "b" / "data" / "queue.json").exists()


# ---------------------------------------------------------------- sharing


def drop(window: MainWindow, paths: list[Path]) -> bool:
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(path)) for path in paths])
    actions = Qt.DropAction.CopyAction
    enter = QDragEnterEvent(
        QPoint(200, 200), actions, mime, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier
    )
    QApplication.sendEvent(window, enter)
    if not enter.isAccepted():
        return False
    event = QDropEvent(
        QPointF(200, 200), actions, mime, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier
    )
    QApplication.sendEvent(window, event)
    return event.isAccepted()


def test_dropped_files_are_copied_into_the_shared_folder_and_announced(
    qtbot, make_window, index_server, tmp_path
):
    window = make_window()
    page = window.shared_page
    assert page.stack.currentWidget() is page.hint
    assert "Drag files or folders here" in page.hint.text()

    share = window.node.config.share_dir
    make_file(share / "clip.mp4", 5000, seed=7)  # already shared: never overwritten
    desktop = tmp_path / "desktop"
    (desktop / "Season 1").mkdir(parents=True)
    dropped_clip = make_file(desktop / "clip.mp4", PIECE + 99, seed=8)
    make_file(desktop / "Season 1" / "episode 01.mkv", 3000, seed=9)
    original_clip = (share / "clip.mp4").read_bytes()

    text_only = QMimeData()
    text_only.setText("not a file")
    refused = QDragEnterEvent(
        QPoint(5, 5),
        Qt.DropAction.CopyAction,
        text_only,
        Qt.MouseButton.LeftButton,
        Qt.KeyboardModifier.NoModifier,
    )
    QApplication.sendEvent(window, refused)
    assert not refused.isAccepted()

    assert drop(window, [dropped_clip, desktop / "Season 1"])
    assert window.tabs.currentWidget() is page
    qtbot.waitUntil(lambda: indexed(index_server, "clip (1).mp4") == 1, timeout=10000)
    qtbot.waitUntil(lambda: indexed(index_server, "episode 01.mkv") == 1, timeout=10000)
    assert indexed(index_server, "clip.mp4") == 1
    assert (share / "clip.mp4").read_bytes() == original_clip
    assert (share / "clip (1).mp4").read_bytes() == dropped_clip.read_bytes()
    assert (share / "Season 1" / "episode 01.mkv").exists()
    assert not [path for path in share.rglob("*") if path.name.startswith(".")]

    model = page.model
    qtbot.waitUntil(lambda: model.shared_count() == 3, timeout=5000)
    states = {
        cell(model, row, SharedFilesModel.NAME): cell(model, row, SharedFilesModel.STATE)
        for row in range(model.rowCount())
    }
    assert states == {"clip.mp4": "Shared", "clip (1).mp4": "Shared", "episode 01.mkv": "Shared"}
    assert page.stack.currentWidget() is page.table
    assert window.tabs.tabText(2) == "Shared files (3)"
    window.shared_page.open_button.click()
    assert window.opened[-1] == str(share)


# ---------------------------------------------------------------- connection state


def test_trusting_a_new_identity_remembers_the_one_shown_and_joins(
    qtbot, make_window, index_server, make_index_server
):
    from app.network.identity import PeerIdentity

    window = make_window()
    window.prompts.trust_answer = True
    port = index_server.serverPort()
    index_server.stop()
    renewed = make_index_server(port=port, identity=PeerIdentity.generate("renewed"))
    qtbot.waitUntil(lambda: renewed.store.counters().peers == 1, timeout=15000)
    known = window.node.client.known_servers.fingerprint_of(f"127.0.0.1:{port}")
    assert known == renewed.fingerprint


def test_the_status_says_whether_other_peers_can_reach_this_one(qtbot, make_window, index_server):
    window = make_window()
    label = window.status.reach_label
    qtbot.waitUntil(lambda: window.node.client.reachable is not None, timeout=10000)
    assert label.text() == "Other peers can reach you" and label.isVisibleTo(window)
    window.node.client.reachable = False  # as told by an index that could not connect back
    window.node.client.reachability_changed.emit(False)
    assert label.text() == "Behind a firewall: sharing through push"
    assert label.toolTip() == (
        "You are behind a firewall or router: others can still download from you through"
        " the server's push"
    )


def test_a_status_message_is_never_drawn_over_the_reachability(qtbot, make_window, index_server):
    window = make_window()
    status = window.status
    qtbot.waitUntil(lambda: window.node.client.reachable is not None, timeout=10000)
    status.set_copying("clip.mp4", 10, 100, 0)  # the activity label shows too
    bar = window.statusBar()
    bar.showMessage("Download finished: film.mkv is in /tmp/downloads", 8000)
    status.refresh()  # the labels refresh four times a second while the message shows
    for label in (status.connection_label, status.reach_label, status.activity_label):
        assert not label.isVisibleTo(window), label.objectName()
    bar.clearMessage()
    for label in (status.connection_label, status.reach_label, status.activity_label):
        assert label.isVisibleTo(window), label.objectName()


def test_a_server_with_a_new_identity_is_refused_and_the_user_asked_once(
    qtbot, make_window, index_server, make_index_server
):
    from app.network.identity import PeerIdentity

    window = make_window()
    port = index_server.serverPort()
    remembered = index_server.fingerprint
    index_server.stop()
    impostor = make_index_server(port=port, identity=PeerIdentity.generate("impostor"))
    qtbot.waitUntil(lambda: "identity" in [q[0] for q in window.prompts.asked], timeout=15000)
    question = next(q for q in window.prompts.asked if q[0] == "identity")
    assert question == ("identity", f"127.0.0.1:{port}", remembered, impostor.fingerprint)
    label = window.status.connection_label
    qtbot.waitUntil(lambda: "another identity" in window.status.connection_tooltip())
    assert label.text() == f"Refused 127.0.0.1:{port}: its identity changed"
    assert impostor.store.counters().peers == 0
    # Refused again on every retry, but asked only once.
    qtbot.waitUntil(lambda: window.node.client.state == "waiting", timeout=10000)
    assert [q[0] for q in window.prompts.asked].count("identity") == 1
    assert window.node.client.known_servers.fingerprint_of(f"127.0.0.1:{port}") == remembered


def test_server_down_shows_the_reconnect_state_then_recovers(qtbot, make_window, index_server):
    window = make_window()
    label = window.status.connection_label
    assert label.text().startswith(
        f"Connected to 127.0.0.1:{index_server.serverPort()} · sharing 0 files (0 B)"
    )
    port = index_server.serverPort()
    index_server.stop()
    qtbot.waitUntil(
        lambda: label.text().startswith("Server unreachable, retrying in "), timeout=5000
    )
    assert label.text().endswith(" s")
    model = search(qtbot, window, "anything")
    assert model.rowCount() == 0
    assert window.search_page.error_label.isVisibleTo(window.search_page)
    assert "index server" in window.search_page.error_label.text()

    restarted = IndexServer(SqliteIndexStore(), identity=index_server.identity)
    restarted.start("127.0.0.1", port)
    try:
        qtbot.waitUntil(lambda: label.text().startswith("Connected to"), timeout=10000)
        qtbot.waitUntil(lambda: restarted.store.counters().peers == 1, timeout=5000)
        # The red "not connected" line is gone with its cause; the hint says what to do.
        page = window.search_page
        assert not page.error_label.isVisibleTo(page)
        assert page.hint.text() == (
            "Connected to the server again. Press Enter to search for “anything”."
        )
    finally:
        restarted.stop()
        restarted.store.close()


def test_the_window_shows_the_index_server_it_is_on_and_when_it_moves(
    qtbot, tmp_path, make_index_server
):
    first, second = make_index_server(), make_index_server()
    config = peer_config(tmp_path / "b", first.serverPort())
    config.set_servers([("127.0.0.1", first.serverPort()), ("127.0.0.1", second.serverPort())])
    node = PeerNode(config, TIMEOUTS, shuffle=False, **QUICK_RECONNECT)
    window = MainWindow(node, Settings.from_file(tmp_path / "b.ini"), prompts=FakePrompts())
    window.show()
    window.start()
    try:
        label = window.status.connection_label
        on_first, on_second = (f"127.0.0.1:{s.serverPort()}" for s in (first, second))
        qtbot.waitUntil(lambda: label.text().startswith(f"Connected to {on_first} "), timeout=5000)
        assert label.toolTip().endswith(f"Index servers: {on_first}, {on_second}")
        assert window.current_values().server_addresses == (on_first, on_second)

        first.stop()
        qtbot.waitUntil(lambda: label.text().startswith(f"Connected to {on_second} "), timeout=5000)
        assert second.store.counters().peers == 1

        # Settings: a list without the current server moves the peer to the new one.
        third = make_index_server()
        on_third = f"127.0.0.1:{third.serverPort()}"
        window.prompts.settings_answer = replace(
            window.current_values(), server_addresses=(on_third,)
        )
        window.actions["settings"].trigger()
        qtbot.waitUntil(lambda: label.text().startswith(f"Connected to {on_third} "), timeout=5000)
        assert "Index servers" not in label.toolTip()
        assert window.settings.server_addresses == [on_third]
        assert node.config.servers == [("127.0.0.1", third.serverPort())]
    finally:
        window.prompts.quit_answer = True
        window.close()
        window.deleteLater()


# ---------------------------------------------------------------- settings and languages


def test_settings_apply_at_once_and_portuguese_changes_the_visible_strings(
    qtbot, make_window, tmp_path
):
    settings_file = tmp_path / "peer.ini"
    window = make_window(settings_file=settings_file)
    assert window.tabs.tabText(0) == "Search"
    assert window.file_menu.title() == "&File"

    wanted = window.current_values()
    new_share = tmp_path / "other share"
    chosen = SettingsValues(
        server_addresses=wanted.server_addresses,
        share_dir=new_share,
        download_dir=wanted.download_dir,
        listen_port=wanted.listen_port,
        upload_slots=7,
        max_downloads=2,
        language="pt_BR",
        notify_finished=False,
    )
    window.prompts.settings_answer = chosen
    window.actions["settings"].trigger()
    assert window.prompts.asked[-1][0] == "settings"

    assert window.node.uploads.limits.slots == 7
    assert window.node.transfers.max_active == 2
    assert window.node.config.share_dir == new_share and new_share.is_dir()
    assert window.shared_page.folder_label.text() == f"Compartilhando {new_share}"
    assert window.tabs.tabText(0) == "Pesquisar"
    assert window.tabs.tabText(1) == "Transferências"
    assert window.file_menu.title() == "&Arquivo"
    assert window.actions["pause"].text() == "&Pausar"
    assert window.search_page.download_button.text() == "Baixar"
    assert (
        window.transfers_page.downloads.headerData(
            DownloadsModel.STATE, Qt.Orientation.Horizontal, Qt.ItemDataRole.DisplayRole
        )
        == "Estado"
    )
    assert window.status.connection_label.text().startswith("Conectado a 127.0.0.1:")
    assert "compartilhando 0 arquivos" in window.status.connection_label.text()

    stored = Settings.from_file(settings_file)
    assert stored.language == "pt_BR"
    assert stored.share_dir == new_share
    assert stored.upload_slots == 7
    assert stored.notify_finished is False

    window.set_language("en")
    assert window.tabs.tabText(0) == "Search"
    assert window.status.connection_label.text().startswith("Connected to")


def test_speed_limits_apply_live_and_the_toolbar_switches_to_the_alternative_ones(
    qtbot, make_window, tmp_path
):
    settings_file = tmp_path / "limits.ini"
    window = make_window(settings_file=settings_file)
    node = window.node
    assert window.status.limits_text() == ""
    assert not window.status.limits_label.isVisibleTo(window)
    assert window.actions["alt_limits"] in window.toolbar.actions()

    window.prompts.settings_answer = replace(
        window.current_values(),
        max_upload_rate=10_000_000,
        alt_upload_rate=100_000,
        alt_download_rate=500_000,
    )
    window.actions["settings"].trigger()
    assert (node.uploads.limiter.rate, node.transfers.limiter.rate) == (10_000_000, 0)
    assert window.status.limits_text() == "Speed limit: up 10.0 MB/s"
    assert window.status.limits_label.isVisibleTo(window)

    window.actions["alt_limits"].trigger()  # the toolbar button
    assert window.actions["alt_limits"].isChecked()
    assert (node.uploads.limiter.rate, node.transfers.limiter.rate) == (100_000, 500_000)
    assert window.status.limits_label.text() == (
        "Alternative speed limits: down 500.0 KB/s, up 100.0 KB/s"
    )
    assert Settings.from_file(settings_file).use_alt_rates is True

    window.actions["alt_limits"].trigger()
    assert (node.uploads.limiter.rate, node.transfers.limiter.rate) == (10_000_000, 0)
    assert Settings.from_file(settings_file).use_alt_rates is False
    window.actions["alt_limits"].trigger()
    window.close()

    # The next start remembers the switch and its limits.
    again = make_window("again", settings_file)
    assert again.actions["alt_limits"].isChecked()
    assert again.node.uploads.limiter.rate == 100_000
    assert again.node.transfers.limiter.rate == 500_000


def test_settings_show_the_port_the_peer_really_listens_on(qtbot, make_window, tmp_path):
    window = make_window()
    values = window.current_values()
    assert window.node.listen_port > 0
    assert values.listening_port == window.node.listen_port
    dialog = SettingsDialog(values, parent=window)
    qtbot.addWidget(dialog)
    assert dialog.listening.text() == f"now listening on port {window.node.listen_port}"


def test_window_remembers_its_geometry_and_column_widths(qtbot, make_window, tmp_path):
    settings_file = tmp_path / "geometry.ini"
    first = make_window("first", settings_file)
    first.resize(713, 511)  # the offscreen screen is 800 x 600
    header = first.transfers_page.downloads_table.horizontalHeader()
    header.resizeSection(DownloadsModel.STATE, 233)
    first.close()

    second = make_window("second", settings_file)
    assert (second.size().width(), second.size().height()) == (713, 511)
    restored = second.transfers_page.downloads_table.horizontalHeader()
    assert restored.sectionSize(DownloadsModel.STATE) == 233


def test_uploads_to_another_peer_show_in_the_uploads_table(
    qtbot, make_window, source_peer, index_server
):
    window = make_window()
    make_file(window.node.config.share_dir / "talk.mp4", PIECE + 5, seed=11)
    window.node.library.rescan()
    qtbot.waitUntil(lambda: indexed(index_server, "talk.mp4") == 1, timeout=10000)
    page = window.transfers_page
    assert page.uploads_stack.currentWidget() is page.uploads_hint
    assert window.status.totals_text() == ""
    assert not window.status.totals_label.isVisibleTo(window)

    with qtbot.waitSignal(source_peer.search_finished, timeout=5000) as found:
        source_peer.search("talk.mp4")
    with qtbot.waitSignal(source_peer.transfers.transfer_finished, timeout=20000):
        source_peer.download(found.args[1][0])
    uploads = page.uploads
    qtbot.waitUntil(
        lambda: uploads.rowCount() == 1 and uploads.rows()[0].state is UploadState.FINISHED,
        timeout=5000,
    )
    assert cell(uploads, 0, 0) == "talk.mp4"
    assert cell(uploads, 0, uploads.PEER) == "127.0.0.1"  # the downloader's port means nothing
    assert cell(uploads, 0, uploads.STATE) == "Finished"
    assert cell(uploads, 0, uploads.PROGRESS) == "100 %"
    assert cell(uploads, 0, uploads.SIZE) == "4.2 MB"
    assert uploads.rows()[0].sent == PIECE + 5
    assert page.uploads_stack.currentWidget() is page.uploads_table
    assert page.uploads_title.text() == "Uploads (1)"

    # This session's totals are in the status bar.
    qtbot.waitUntil(lambda: window.status.totals_label.text() != "", timeout=2000)
    assert window.status.totals_label.text() == "Session: 0 B down, 4.2 MB up"
    assert window.status.totals_label.isVisibleTo(window)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_an_upload_is_one_row_per_file_and_peer_with_honest_progress(qapp):
    """A 1.2 GB file asked for in 128 MiB requests, each from a new port: one row whose
    progress only grows, whose speed is over seconds, ending at the file's size."""
    size = 1_200_000_000
    chunk = 128 * 1024 * 1024
    clock = FakeClock()
    model = UploadsModel(lambda name, at_least: size if name == "big.mkv" else at_least)
    model.clock = clock
    seen_progress = []
    upload_id = 0
    for offset in range(0, size, chunk):
        upload_id += 1
        length = min(chunk, size - offset)
        model.on_started(upload_id, f"10.0.0.7:{40000 + upload_id}", "big.mkv", offset, length)
        assert cell(model, 0, model.STATE) == "Uploading"
        for half in (length // 2, length):
            clock.now += 1.0
            model.on_progress(upload_id, half)
            seen_progress.append(model.rows()[0].progress)
        clock.now += 0.01
        model.on_finished(upload_id)
    assert model.rowCount() == 1
    assert seen_progress == sorted(seen_progress)  # never 62 % -> 0 % -> 50 %
    row = model.rows()[0]
    assert (row.peer, row.sent, row.requests) == ("10.0.0.7", size, upload_id)
    assert cell(model, 0, model.PEER) == "10.0.0.7"
    assert cell(model, 0, model.SIZE) == "1.2 GB"
    assert cell(model, 0, model.SENT) == "1.2 GB"
    assert cell(model, 0, model.PROGRESS) == "100 %"
    assert cell(model, 0, model.STATE) == "Finished"
    # The speed is what went out over the last seconds: ~67 MB per second here.
    assert 60_000_000 < row.speed < 70_000_000
    clock.now += 10
    model.tick()
    assert row.speed == 0.0

    # A second peer asks for part of it, then stops: idle; then a request fails: failed.
    model.on_started(100, "192.168.0.12:5000", "big.mkv", 0, chunk)
    clock.now += 1
    model.on_progress(100, 1000)
    assert model.rowCount() == 2
    assert cell(model, 1, model.STATE) == "Uploading"
    model.on_finished(100)
    assert cell(model, 1, model.STATE) == "Idle"
    assert model.rows()[1].received == chunk
    assert cell(model, 1, model.PROGRESS) == "11 %"
    model.on_started(101, "192.168.0.12:5001", "big.mkv", chunk, chunk)
    model.on_progress(101, 500)
    model.on_failed(101, "the downloader went away")
    assert cell(model, 1, model.STATE) == "Failed: the downloader went away"
    assert model.rows()[1].received == chunk + 500
    # The same peer coming back makes it an upload again.
    model.on_started(102, "192.168.0.12:5002", "big.mkv", chunk + 500, chunk)
    assert cell(model, 1, model.STATE) == "Uploading"
    assert model.active_count() == 1
    model.clear_finished()
    assert [r.peer for r in model.rows()] == ["192.168.0.12"]


def test_names_from_the_network_are_shown_as_plain_printable_text(qtbot, window):
    hostile = "<b>bold</b> \u202egnp.exe\u0007.mp4"
    result = p.SearchResult(hostile, 10, "b" * 64, (p.PeerAddress("127.0.0.1", 9),))
    model = window.search_page.model
    model.set_results([result])
    shown = cell(model, 0, SearchResultsModel.NAME)
    assert shown == "<b>bold</b> \\u202egnp.exe\\x07.mp4"
    assert window.search_page.hint.textFormat() == Qt.TextFormat.PlainText
    assert window.status.connection_label.textFormat() == Qt.TextFormat.PlainText


def test_status_area_reports_hashing_and_copying(qtbot, window):
    library = window.node.library
    library.hashing_progress.emit(2, 10, "aula.mp4")
    assert window.status.activity_text() == "Hashing 3 of 10 files…"
    window.status.set_copying("video.mp4", 1_200_000_000, 4_000_000_000, 2)
    assert window.status.activity_text() == "Copying video.mp4 (1.2 GB of 4.0 GB) +2 more"
    window.status.set_copying("", 0, 0, 0)
    library.hashing_progress.emit(10, 10, "")
    assert window.status.activity_text() in ("", "Looking for new files in the shared folder…")


def test_keyboard_shortcuts_switch_pages_and_focus_the_search(qtbot, window):
    window.activateWindow()
    qtbot.waitUntil(lambda: QApplication.focusWidget() is not None, timeout=2000)
    qtbot.keyClick(window, Qt.Key.Key_2, Qt.KeyboardModifier.ControlModifier)
    assert window.tabs.currentWidget() is window.transfers_page
    qtbot.keyClick(window, Qt.Key.Key_3, Qt.KeyboardModifier.ControlModifier)
    assert window.tabs.currentWidget() is window.shared_page
    qtbot.keyClick(window, Qt.Key.Key_F, Qt.KeyboardModifier.ControlModifier)
    assert window.tabs.currentWidget() is window.search_page
    assert window.search_page.field.hasFocus()
    assert window.actions["settings"].shortcut().toString() == "Ctrl+,"


# ---------------------------------------------------------------- the copier on its own


@pytest.fixture
def copier(qtbot):
    copier = FileCopier()
    yield copier
    copier.stop()


def test_copier_never_overwrites_and_leaves_no_temporary_file(qtbot, copier, tmp_path):
    source, target = tmp_path / "source", tmp_path / "target"
    source.mkdir()
    target.mkdir()
    dropped = make_file(source / "video.mp4", 3 * PIECE + 1, seed=4)
    (target / "video.mp4").write_bytes(b"mine")
    (target / "video (1).mp4").write_bytes(b"mine too")
    progress: list[tuple[int, int]] = []
    copier.job_progress.connect(lambda _job, done, total: progress.append((done, total)))
    with qtbot.waitSignal(copier.job_finished, timeout=10000) as finished:
        (job,) = copier.copy([dropped], target)
    assert finished.args[0] == job
    final = target / "video (2).mp4"
    assert finished.args[1] == [(str(final), dropped.stat().st_size)]
    assert final.read_bytes() == dropped.read_bytes()
    assert (target / "video.mp4").read_bytes() == b"mine"
    assert (target / "video (1).mp4").read_bytes() == b"mine too"
    assert progress[-1] == (dropped.stat().st_size, dropped.stat().st_size)
    assert sorted(path.name for path in target.iterdir()) == [
        "video (1).mp4",
        "video (2).mp4",
        "video.mp4",
    ]
    assert copier.pending() == 0


def test_copier_reports_problems_and_cancels_cleanly(qtbot, copier, tmp_path):
    target = tmp_path / "target"
    target.mkdir()
    with qtbot.waitSignal(copier.job_failed, timeout=5000) as failed:
        copier.copy([tmp_path / "vanished.mp4"], target)
    assert failed.args[1] == "only files and folders can be shared"

    big = make_file(tmp_path / "big.bin", 64 * PIECE, seed=5)
    with qtbot.waitSignal(copier.job_cancelled, timeout=10000):
        (job,) = copier.copy([big], target)
        copier.cancel(job)
    assert list(target.iterdir()) == []

    with qtbot.waitSignal(copier.job_failed, timeout=5000) as failed:
        copier.copy([big], tmp_path / "no such folder")
    assert "does not exist" in failed.args[1]


def test_the_window_says_at_start_that_its_download_folder_is_read_only(
    qtbot, tmp_path, index_server, read_only_folder
):
    config = peer_config(tmp_path / "ro", index_server.serverPort())
    config.download_dir = read_only_folder
    node = PeerNode(config, TIMEOUTS, **QUICK_RECONNECT)
    window = MainWindow(node, Settings.from_file(tmp_path / "ro.ini"), prompts=FakePrompts())
    qtbot.addWidget(window)
    try:
        window.start()
        (warning,) = [a for a in window.prompts.asked if a[0] == "warn"]
        assert str(read_only_folder) in warning[2] and "read-only" in warning[2]
    finally:
        window.shutdown()


def test_download_problems_are_told_in_portuguese(qapp, isolated_home):
    from app.download.problems import Problem
    from app.i18n import Translations
    from app.ui.formatting import problem_text

    translations = Translations()
    try:
        translations.apply("pt_BR")
        for problem in Problem:
            params = {"folder": "/x", "error": "e", "detail": "d", "needed": 5, "free": 1}
            text = problem_text(problem.value, params)
            assert text and text != describe(problem, params), problem
        assert "somente leitura" in problem_text("folder_read_only", {"folder": "/mnt/ro"})
    finally:
        translations.apply("en")


def test_play_opens_the_download_in_the_player_while_it_downloads(
    qtbot, window, stalled_download, monkeypatch
):
    import http.client

    transfer_id = stalled_download.transfer_id
    launched = []
    window.launch_player = lambda command, url: launched.append((command, url)) or True
    window.settings.player = "mpv --force-window"  # the user's choice in Settings
    chosen = []
    monkeypatch.setattr(
        "app.ui.main_window.player_command",
        lambda setting: chosen.append(setting) or ["/usr/bin/mpv", "--force-window"],
    )
    window.show_page(window.transfers_page)
    window.transfers_page.select_transfer(transfer_id)
    assert window.actions["play"].isEnabled()
    window.actions["play"].trigger()
    ((command, url),) = launched
    assert chosen == ["mpv --force-window"] and command[1:] == ["--force-window"]
    assert url.startswith("http://127.0.0.1:") and url.endswith("/movie.mkv")

    def read_start():
        host_port = url.split("/")[2]
        conn = http.client.HTTPConnection(*host_port.split(":"), timeout=20)
        conn.request("GET", url.split(host_port, 1)[1], headers={"Range": "bytes=0-999"})
        return conn.getresponse().read()

    # The piece that did arrive.
    body = in_thread(qtbot, read_start, 20000)
    assert body == stalled_download.original.read_bytes()[:1000]


def test_play_without_a_player_shows_the_address_to_copy(qtbot, make_window, tmp_path):
    window = make_window()
    share = window.node.config.share_dir
    make_file(share / "clip.mp4", 5000, seed=3)
    qtbot.waitUntil(lambda: window.node.library.infos() != [], timeout=10000)
    window.settings.player = str(tmp_path / "no such player")
    window.show_page(window.shared_page)
    qtbot.waitUntil(lambda: window.shared_page.model.shared_count() == 1, timeout=10000)
    window.shared_page.table.selectRow(0)
    assert window.actions["play"].isEnabled()
    window.actions["play"].trigger()
    ((_kind, url),) = [a for a in window.prompts.asked if a[0] == "stream_url"]
    assert url.startswith("http://127.0.0.1:") and url.endswith("/clip.mp4")


def test_browse_a_peer_lists_its_files_and_downloads_from_the_list(qtbot, window, source_peer):
    model = search(qtbot, window, "movie")
    (peer,) = model.result_at(0).peers
    page = window.search_page
    with qtbot.waitSignal(window.node.search_finished, timeout=5000):
        page.browse(peer)
    names = sorted(model.result_at(row).name for row in range(model.rowCount()))
    assert names == ["lecture one.mp4", "movie.mkv", "song.mp3"]
    assert page.count_text() == f"3 files shared by {peer}"
    song = next(
        model.result_at(r)
        for r in range(model.rowCount())
        if r is not None and model.result_at(r).name == "song.mp3"
    )
    (transfer_id,) = window.queue_downloads([song])
    qtbot.waitUntil(
        lambda: window.node.transfers.get(transfer_id).state is TransferState.DONE, timeout=20000
    )


class Screen:
    """A screen of the given width (the off-screen one is 800 wide)."""

    def __init__(self, width: int) -> None:
        self.width = width

    def availableGeometry(self) -> QRect:
        return QRect(0, 0, self.width, 1080)


def test_in_portuguese_the_window_widens_until_every_toolbar_button_shows(
    qtbot, make_window, monkeypatch
):
    window = make_window()
    window.resize(DEFAULT_SIZE)
    monkeypatch.setattr(window, "screen", lambda: Screen(1920))
    toolbar = window.toolbar
    settings_button = toolbar.widgetForAction(window.actions["settings"])
    qtbot.waitUntil(settings_button.isVisible)  # English fits the usual width
    window.set_language("pt_BR")
    try:
        assert window.actions["settings"].iconText() == "Configurações"
        assert window.width() > DEFAULT_SIZE.width()
        qtbot.waitUntil(settings_button.isVisible)
        assert toolbar.widgetForAction(window.actions["alt_limits"]).isVisible()
        # Never wider than the screen: on a small one the overflow menu stays.
        monkeypatch.setattr(window, "screen", lambda: Screen(1000))
        window.resize(900, 700)
        window.fit_toolbar()
        assert window.width() == 1000
    finally:
        window.set_language("en")


def test_in_portuguese_the_status_bar_says_everything_in_full(qtbot, make_window, monkeypatch):
    window = make_window()
    monkeypatch.setattr(window, "screen", lambda: Screen(1920))
    window.set_language("pt_BR")
    try:
        node, status = window.node, window.status
        node.config.max_download_rate, node.config.max_upload_rate = 4_000_000, 1_000_000
        node.totals.uploaded = 115_300_000
        node.totals.add_received(67_100_000)
        status.set_upload_speed(1_900_000)
        status.refresh()
        labels = (status.reach_label, status.speed_label, status.totals_label, status.limits_label)
        assert [label.text() for label in labels] == [
            "Acessível a outros peers",
            "Recebendo 0 B/s · Enviando 1,9 MB/s",
            "Sessão: 67,1 MB recebidos, 115,3 MB enviados",
            "Limite: download 4,0 MB/s, envio 1,0 MB/s",
        ]
        for label in labels:
            needed = label.fontMetrics().horizontalAdvance(label.text())
            qtbot.waitUntil(lambda label=label, needed=needed: label.width() >= needed)
    finally:
        window.set_language("en")


def test_why_the_server_cannot_be_reached_is_told_in_portuguese(qtbot, make_window):
    window = make_window()
    window.set_language("pt_BR")
    try:
        window.node.client.connection_problem.emit(
            "cannot_reach", "10.0.0.9:1099", "Connection refused"
        )
        assert window.status._last_problem == (
            "Não foi possível alcançar o servidor de índice em 10.0.0.9:1099: Connection refused"
        )
    finally:
        window.set_language("en")
