"""The Transfers page shows a download's sources in use and its piece map (issue 14)."""

from __future__ import annotations

from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QColor

from app.download.source import Route
from app.download.swarm import SourceStats
from app.download.transfer import Transfer, TransferState
from app.network import protocol as p
from app.ui.transfer_details import DONE, FETCHING, MISSING, SourcesModel, TransferDetails


def running_transfer() -> Transfer:
    transfer = Transfer(
        id="t1",
        hash="a" * 64,
        size=40 * p.PIECE_SIZE,
        name="aula.mp4",
        remote_name="aula.mp4",
        folder=Path("/tmp"),
        sources=[p.PeerAddress("10.0.0.1", 6699 + i) for i in range(3)],
        state=TransferState.DOWNLOADING,
    )
    transfer.piece_states = b"\x02" * 20 + b"\x01" * 4 + b"\x00" * 16
    transfer.source_stats = [
        SourceStats("10.0.0.1:6699", "downloading", pieces=12, bytes=12 * p.PIECE_SIZE, rate=2e6),
        SourceStats("10.0.0.1:6700", "downloading", pieces=8, bytes=8 * p.PIECE_SIZE, rate=1e6),
        SourceStats("10.0.0.1:6701", "busy", detail="busy: 10 s"),
    ]
    return transfer


def test_the_details_pane_shows_the_piece_map_and_each_source(qtbot):
    details = TransferDetails()
    qtbot.addWidget(details)
    details.bar.resize(400, 18)
    details.show_transfer(running_transfer())
    assert "20 of 40 pieces, 2 of 3 sources sending" in details.title.text()
    model = details.model
    assert model.rowCount() == 3
    row = [model.data(model.index(0, c)) for c in range(model.columnCount())]
    assert row[0] == "10.0.0.1:6699" and row[1] == "Sending" and row[3] == "12"
    assert "MB/s" in row[2]
    assert model.data(model.index(2, 1)) == "Busy, waiting: busy: 10 s"
    image = details.bar.grab().toImage()
    width = image.width()
    middle = image.height() // 2
    assert QColor(image.pixel(width // 4, middle)) == DONE
    assert QColor(image.pixel(int(width * 0.55), middle)) == FETCHING
    assert QColor(image.pixel(int(width * 0.9), middle)) == MISSING
    details.show_transfer(None)
    assert details.model.rowCount() == 0 and "Select a download" in details.title.text()


def test_the_sources_column_counts_sources_in_use(qtbot, tmp_path):
    from app.download.manager import TransferManager
    from app.ui.models import DownloadsModel

    manager = TransferManager(tmp_path / "queue.json", tmp_path)
    try:
        transfer = running_transfer()
        manager._transfers[transfer.id] = transfer
        model = DownloadsModel(manager)
        text = model.data(model.index(0, DownloadsModel.SOURCES), Qt.ItemDataRole.DisplayRole)
        assert text == "2/3 in use"
        tip = model.data(model.index(0, DownloadsModel.SOURCES), Qt.ItemDataRole.ToolTipRole)
        assert "10.0.0.1:6699 (in use)" in tip and "10.0.0.1:6701 (in use)" not in tip
    finally:
        manager.shutdown()


def sources_by_route() -> Transfer:
    transfer = running_transfer()
    transfer.source_stats = [
        SourceStats("10.0.0.1:6699", "downloading", pieces=9, rate=2e6, route=Route.DIRECT),
        SourceStats("10.0.0.1:6700", "downloading", pieces=6, rate=1e6, route=Route.PUSHED),
        SourceStats("10.0.0.1:6701", "downloading", pieces=1, rate=2e5, route=Route.RELAYED),
        SourceStats("10.0.0.1:6702"),  # still connecting: no route yet
    ]
    return transfer


def route_column(details: TransferDetails) -> tuple[str, list[str], list[str]]:
    model = details.model
    column = SourcesModel.ROUTE
    header = model.headerData(column, Qt.Orientation.Horizontal)
    texts = [model.data(model.index(row, column)) for row in range(model.rowCount())]
    tips = [
        model.data(model.index(row, column), Qt.ItemDataRole.ToolTipRole)
        for row in range(model.rowCount())
    ]
    return header, texts, tips


ROUTE_WORDS = {
    "en": (
        "Connection",
        [
            "Direct",
            "Pushed to us (source behind a firewall)",
            "Through the server's relay (speed limited)",
            "",
        ],
        ("asked it to connect to you", "limits the relay's speed"),
    ),
    "pt_BR": (
        "Conexão",
        [
            "Direta",
            "Por push (a fonte está atrás de um firewall)",
            "Pela retransmissão do servidor (velocidade limitada)",
            "",
        ],
        ("pediu", "limita a velocidade"),
    ),
}


@pytest.mark.qt_log_ignore("This plugin does not support propagateSizeHints")
@pytest.mark.parametrize("language", ["en", "pt_BR"])
def test_the_details_say_how_each_source_is_connected(qtbot, isolated_home, language):
    from app.i18n import Translations

    translations = Translations()
    try:
        translations.apply(language)
        details = TransferDetails()
        qtbot.addWidget(details)
        details.resize(1000, 300)
        details.show()
        details.show_transfer(sources_by_route())
        header, texts, tips = route_column(details)
        expected_header, expected_texts, (pushed_tip, relayed_tip) = ROUTE_WORDS[language]
        assert (header, texts) == (expected_header, expected_texts)
        assert pushed_tip in tips[1] and relayed_tip in tips[2]
        # On screen: the column is there and wide enough for the relay's words.
        table = details.table
        qtbot.waitUntil(lambda: table.isVisible())
        assert not table.isColumnHidden(SourcesModel.ROUTE)
        width = table.fontMetrics().horizontalAdvance(texts[2])
        assert table.columnWidth(SourcesModel.ROUTE) >= width
    finally:
        translations.apply("en")
