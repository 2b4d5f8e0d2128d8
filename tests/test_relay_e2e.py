"""Issue 17, relay as the last resort: two peers the index cannot reach, end to end.

The index's connect-back finds both listen ports closed (``unreachable_ports``), so the
holder is listed unreachable (no direct connection is tried) and the downloader knows it is
unreachable too (a push, which needs the holder to reach it, is not tried either). With the
relay on they meet there; with it off the transfer says why it cannot go on.
"""

from __future__ import annotations

import time
from pathlib import Path

from app.download.problems import Problem
from app.download.source import Route
from app.download.transfer import TransferState
from app.network import protocol as p
from app.network.push import new_token
from app.network.relay_client import RelayDenied
from server_app.relay import RelaySettings
from tests import test_peer_e2e as e2e
from tests.test_peer_e2e import indexed, search
from tests.test_transfer import PIECE

# The end-to-end fixtures: an index server on loopback, peers on it, closed ports.
index_server = e2e.index_server
make_peer = e2e.make_peer
unreachable_ports = e2e.unreachable_ports


def unreachable_pair(qtbot, index_server, make_peer, unreachable_ports, size: int):
    """A holder of film.mkv and a downloader, both unreachable, and the search result."""
    a = make_peer("a", {"film.mkv": size}, start=False)
    b = make_peer("b", start=False)
    unreachable_ports.update({a.identity.fingerprint, b.identity.fingerprint})
    a.start()
    b.start()
    qtbot.waitUntil(lambda: a.client.reachable is False, timeout=10000)
    qtbot.waitUntil(lambda: b.client.reachable is False, timeout=10000)
    qtbot.waitUntil(lambda: indexed(index_server, "film.mkv") == 1, timeout=10000)
    # Were a push tried, the holder's connection out could not get through B's firewall.
    a.uploads.answer_push = lambda *_args: False
    [result] = search(qtbot, b, "film")
    assert [peer.reachable for peer in result.peers] == [False]
    return a, b, result


def test_two_unreachable_peers_transfer_through_the_relay(
    qtbot, index_server, make_peer, unreachable_ports
):
    index_server.configure_relay(
        RelaySettings(enabled=True, host="127.0.0.1", port=0, rate=8_000_000)
    )
    relay = index_server.relay
    assert relay is not None
    piped = bytearray()
    relay.tap = lambda _direction, data: piped.extend(data)
    a, b, result = unreachable_pair(
        qtbot, index_server, make_peer, unreachable_ports, 3 * PIECE + 11
    )

    started = time.monotonic()
    with qtbot.waitSignal(b.transfers.transfer_finished, timeout=30000) as done:
        transfer_id = b.download(result)
    took = time.monotonic() - started
    original = (a.config.share_dir / "film.mkv").read_bytes()
    assert Path(done.args[1]).read_bytes() == original
    # The details pane says the source came through the relay (and so may be slow).
    assert [s.route for s in b.transfers.get(transfer_id).source_stats] == [Route.RELAYED]
    assert a.uploads.accepted_total == 0  # nothing came in directly...
    assert a.uploads.pushed_total >= 1  # ...A served connections it opened to the relay
    assert relay.relayed_total >= 1 and relay.bytes_total >= len(original)
    # 12.6 MB at 8 MB/s per relayed transfer (a 0.8 MB burst): the limit held.
    assert took >= 1.3, took
    # The relay carried only the peers' TLS records: no request, no reply, no file byte.
    assert piped[:1] == b"\x16"  # a TLS handshake record first
    assert b"DOWNLOAD" not in piped and b"PIECES" not in piped and b'{"op"' not in piped
    for offset in (0, PIECE + 5, 3 * PIECE - 64):
        assert original[offset : offset + 64] not in piped


def test_with_the_relay_off_the_transfer_says_why(
    qtbot, index_server, make_peer, unreachable_ports
):
    _a, b, result = unreachable_pair(qtbot, index_server, make_peer, unreachable_ports, 1000)
    transfer_id = b.download(result)
    qtbot.waitUntil(
        lambda: b.transfers.get(transfer_id).error_code == Problem.NO_RELAY.value,
        timeout=15000,
    )
    transfer = b.transfers.get(transfer_id)
    assert transfer.state in (TransferState.WAITING, TransferState.FAILED)
    assert "does not relay transfers" in transfer.error


def ask_relay(qtbot, node, holder: p.PeerAddress) -> tuple[str, int] | RelayDenied:
    """RELAY through the node's index client; the relay's address or the refusal."""
    token = new_token()
    wait = node.relay_broker.expect(token)
    node.client.request_relay(holder, token)
    qtbot.waitUntil(lambda: wait._settled.is_set(), timeout=5000)
    try:
        answer = wait.wait(0)
    except RelayDenied as denied:
        return denied
    assert answer is not None
    return answer


def test_the_cap_on_relays_is_answered_busy_and_the_holder_is_told(
    qtbot, index_server, make_peer, unreachable_ports
):
    index_server.configure_relay(
        RelaySettings(enabled=True, host="127.0.0.1", port=0, max_relays=1)
    )
    a, b, result = unreachable_pair(qtbot, index_server, make_peer, unreachable_ports, 1000)
    told = []
    a.client.relay_requested.connect(lambda *args: told.append(args))
    a.uploads.answer_relay = lambda *_args: False  # A stays away: the relay stays awaited
    [holder] = result.peers
    first = ask_relay(qtbot, b, holder)
    assert first == ("127.0.0.1", index_server.relay.port)
    qtbot.waitUntil(lambda: len(told) == 1, timeout=5000)
    assert told[0][:2] == first
    second = ask_relay(qtbot, b, holder)
    assert isinstance(second, RelayDenied) and second.busy and second.retry_after
    gone = ask_relay(qtbot, b, p.PeerAddress("127.0.0.1", 9, "ab" * 32))
    assert isinstance(gone, RelayDenied) and not gone.busy  # nobody there: not found, not busy
    assert b.client.state == "joined"  # refusals keep the connection


def test_switching_the_relay_off_refuses_with_the_clear_message(
    qtbot, index_server, make_peer, unreachable_ports
):
    index_server.configure_relay(RelaySettings(enabled=True, host="127.0.0.1", port=0))
    _a, b, result = unreachable_pair(qtbot, index_server, make_peer, unreachable_ports, 1000)
    index_server.configure_relay(RelaySettings(enabled=False, host="127.0.0.1", port=0))
    assert not index_server.relay.listening
    denied = ask_relay(qtbot, b, result.peers[0])
    assert isinstance(denied, RelayDenied)
    assert "does not relay transfers" in denied.reason
