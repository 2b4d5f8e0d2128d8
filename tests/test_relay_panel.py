"""The admin window's Relay tab: switching the relay on and off, limits, the live count."""

from __future__ import annotations

import socket

from app.network import protocol as p
from server_app.ui.admin_window import AdminWindow

TOKEN = "ab" * 16


def test_the_relay_tab_switches_the_relay_and_shows_relays(qtbot, make_index_server):
    server = make_index_server()
    window = AdminWindow(server)
    qtbot.addWidget(window)
    panel = window.relay_panel
    assert "Off" in panel.state_text()
    panel.enabled_box.setChecked(True)
    panel.port_box.setValue(0)
    panel.rate_edit.setText("2M")
    panel.max_box.setValue(3)
    assert panel.apply()
    relay = server.relay
    assert relay is not None and relay.listening
    assert (relay.settings.rate, relay.settings.max_relays) == (2_000_000, 3)
    assert f"port {relay.port}" in panel.state_text()

    relay.expect(TOKEN, "127.0.0.1:5000", "127.0.0.1:6000")
    ends = []
    for _ in range(2):
        sock = socket.create_connection(("127.0.0.1", relay.port), timeout=5)
        sock.sendall(p.encode(p.Relayed(token=TOKEN)))
        ends.append(sock)
    qtbot.waitUntil(lambda: relay.running() == 1, timeout=5000)
    panel.refresh()
    assert panel.table.rowCount() == 1
    assert panel.table.item(0, 0).text() == "127.0.0.1:5000"

    panel.rate_edit.setText("fast")
    assert not panel.apply() and "not a rate" in panel.state_label.text()
    panel.refresh()  # once a second: the reason stays until the next Apply
    assert panel.state_label.text().startswith("Limit per transfer: “fast” is not a rate.")
    panel.rate_edit.setText("0")
    panel.enabled_box.setChecked(False)
    assert panel.apply()
    assert not relay.listening and "Off" in panel.state_label.text()
    for sock in ends:
        sock.close()
    window.shutdown()
