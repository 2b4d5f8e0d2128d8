"""Push for firewalled sharers (issue 17, point 3), over real sockets and real upload servers.

No index server: a fake ``PushRequester`` does what the index would cause, calling the
holder's ``answer_push`` with the downloader's listen port and the token.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.download import engine as fp
from app.download.source import PushRoute, RelayRoute, Route, SourceConnection, SourceFailed
from app.network import protocol as p
from app.network import push
from app.network.identity import PeerIdentity
from app.network.relay_client import RelayBroker
from app.network.upload_server import UploadLimits, UploadServer
from server_app.relay import Relay, RelaySettings
from tests.catalog import Catalog
from tests.test_transfer import (
    PIECE,
    folders,  # noqa: F401 (fixture)
    in_thread,
    make_file,
    run_download,
    same_bytes,
    spec_for,
)
from tests.tls_client import RecordingTlsServer

FAST = fp.Timeouts(connect=2.0, stall=2.0, tick=0.05)


class FakeIndex:
    """Relays push requests to the holder with that fingerprint, as the index would."""

    def __init__(self, downloader: UploadServer) -> None:
        self.downloader = downloader
        self.holders: dict[str, UploadServer] = {}
        self.calls: list[tuple[p.PeerAddress, str]] = []
        self.lock = threading.Lock()

    def request_push(self, holder: p.PeerAddress, token: str) -> None:
        with self.lock:
            self.calls.append((holder, token))
        server = self.holders.get(holder.fingerprint or "")
        if server is not None:
            server.answer_push("127.0.0.1", self.downloader.serverPort(), token)


class Uploads:
    """What one holder's upload server sent, split by how the connection was made."""

    def __init__(self, server: UploadServer, downloader_port: int) -> None:
        self.pushed_remote = f"127.0.0.1:{downloader_port}"
        self.remotes: dict[int, str] = {}
        self.sent: dict[int, int] = {}
        server.upload_started.connect(self._started)
        server.upload_progress.connect(self._progress)

    def _started(self, upload_id: int, remote: str, name: str, offset: int, length: int) -> None:
        self.remotes[upload_id] = remote

    def _progress(self, upload_id: int, sent: int) -> None:
        self.sent[upload_id] = sent

    def bytes(self, pushed: bool) -> int:
        return sum(
            sent
            for upload_id, sent in self.sent.items()
            if (self.remotes.get(upload_id) == self.pushed_remote) == pushed
        )


@pytest.fixture
def net(qtbot, folders):  # noqa: F811
    """A downloader's listen port with its broker, holders to start, and the fake index."""
    share, downloads = folders
    started: list[UploadServer] = []

    def server(catalog: Catalog, limits: UploadLimits | None = None, **kwargs) -> UploadServer:
        upload = UploadServer(catalog, limits, **kwargs)
        upload.start("127.0.0.1", 0)
        started.append(upload)
        return upload

    class Net:
        pass

    n = Net()
    n.share, n.downloads = share, downloads
    n.broker = push.PushBroker()
    n.listen = server(Catalog(), push_broker=n.broker)
    n.index = FakeIndex(n.listen)
    n.route = PushRoute(n.index, n.broker, race_delay=0.5, wait=3.0)
    n.server = server

    def holder(catalog: Catalog, rate: int = 0) -> tuple[UploadServer, Uploads]:
        upload = server(catalog)
        upload.limiter.set_rate(rate)
        n.index.holders[upload.fingerprint] = upload
        return upload, Uploads(upload, n.listen.serverPort())

    n.holder = holder
    yield n
    for upload in started:
        upload.stop()


def film(net, pieces: int = 5, name: str = "film.mkv", seed: int = 1):
    catalog = Catalog()
    entry = catalog.share(make_file(net.share / name, pieces * PIECE + 123, seed))
    return catalog, entry


def at(server: UploadServer, reachable: bool = True, port: int | None = None) -> p.PeerAddress:
    port = server.serverPort() if port is None else port
    return p.PeerAddress("127.0.0.1", port, server.fingerprint, reachable=reachable)


def closed_port() -> int:
    with socket.create_server(("127.0.0.1", 0)) as probe:
        return probe.getsockname()[1]


# ------------------------------------------------------------------ the broker


def test_a_token_is_delivered_once_to_its_waiter():
    broker = push.PushBroker()
    token = push.new_token()
    wait = broker.expect(token)
    left, right = socket.socketpair()
    with left, right:
        assert not broker.deliver(push.new_token(), left)  # nobody waits for that one
        assert broker.deliver(token, left)
        assert not broker.deliver(token, right)  # single use
        assert wait.wait(1.0) is left
        wait.cancel()  # taken: not closed by the cancel
        assert left.fileno() >= 0


def test_a_cancelled_or_expired_wait_takes_nothing_and_closes_what_came():
    broker = push.PushBroker()
    cancelled = broker.expect(push.new_token())
    cancelled.cancel()
    left, right = socket.socketpair()
    with left, right:
        assert not broker.deliver(cancelled.token, left)
    expired = broker.expect(push.new_token(), expiry=0.0)
    assert not broker.expects(expired.token) and broker.pending() == 0
    late = broker.expect(push.new_token())
    left, right = socket.socketpair()
    with right:
        assert broker.deliver(late.token, left)
        late.cancel()  # delivered, never taken
        assert left.fileno() == -1


def test_a_wait_ends_on_its_timeout_or_at_once_on_stop():
    broker = push.PushBroker()
    started = time.monotonic()
    assert broker.expect(push.new_token()).wait(0.2, tick=0.05) is None
    assert 0.15 < time.monotonic() - started < 1.0
    stop = threading.Event()
    stop.set()
    started = time.monotonic()
    assert broker.expect(push.new_token()).wait(30.0, stop, tick=0.05) is None
    assert time.monotonic() - started < 0.5


# ------------------------------------------------------------------ downloads by push


def test_an_unreachable_holder_is_downloaded_from_over_pushed_connections_only(qtbot, net):
    catalog, entry = film(net)
    holder, uploads = net.holder(catalog)
    downloader = fp.PieceDownloader(
        spec_for(entry, net.downloads, [at(holder, reachable=False)]),
        timeouts=FAST,
        push=net.route,
    )
    final = run_download(qtbot, downloader)
    assert same_bytes(final, entry.path)
    assert holder.accepted_total == 0  # nothing ever reached its listen port
    assert holder.pushed_total >= 1 and len(net.index.calls) == holder.pushed_total
    qtbot.waitUntil(lambda: uploads.bytes(pushed=True) == entry.size, timeout=3000)
    assert uploads.bytes(pushed=False) == 0
    assert net.broker.pending() == 0


@pytest.mark.parametrize("blocked", ["refused", "blackholed"])
def test_a_holder_whose_port_is_blocked_is_reached_by_push(qtbot, net, blocked):
    catalog, entry = film(net, pieces=3)
    holder, uploads = net.holder(catalog)
    with contextlib.ExitStack() as stack:
        if blocked == "refused":
            port = closed_port()
        else:  # connects (the kernel's backlog), then no TLS handshake ever
            hole = stack.enter_context(socket.create_server(("127.0.0.1", 0), backlog=16))
            port = hole.getsockname()[1]
        downloader = fp.PieceDownloader(
            spec_for(entry, net.downloads, [at(holder, port=port)]), timeouts=FAST, push=net.route
        )
        started = time.monotonic()
        final = run_download(qtbot, downloader)
        took = time.monotonic() - started
    assert same_bytes(final, entry.path)
    assert took < 4.0, took
    assert holder.accepted_total == 0 and holder.pushed_total >= 1
    qtbot.waitUntil(lambda: uploads.bytes(pushed=True) == entry.size, timeout=3000)


def test_a_reachable_holder_is_reached_directly_without_a_push(qtbot, net):
    catalog, entry = film(net, pieces=2)
    holder, uploads = net.holder(catalog)
    downloader = fp.PieceDownloader(
        spec_for(entry, net.downloads, [at(holder)]), timeouts=FAST, push=net.route
    )
    final = run_download(qtbot, downloader)
    assert same_bytes(final, entry.path)
    assert net.index.calls == [] and holder.pushed_total == 0
    assert holder.accepted_total >= 1
    qtbot.waitUntil(lambda: uploads.bytes(pushed=False) == entry.size, timeout=3000)


def test_without_a_push_route_an_unreachable_holder_is_still_tried_directly(qtbot, net):
    catalog, entry = film(net, pieces=1)
    holder, _ = net.holder(catalog)
    downloader = fp.PieceDownloader(
        spec_for(entry, net.downloads, [at(holder, reachable=False)]), timeouts=FAST
    )
    assert same_bytes(run_download(qtbot, downloader), entry.path)
    assert holder.pushed_total == 0 and net.index.calls == []


def test_a_direct_source_and_a_push_only_source_both_deliver(qtbot, net):
    catalog, entry = film(net, pieces=12)
    rate = 8_000_000
    direct, direct_uploads = net.holder(catalog, rate)
    pushed, pushed_uploads = net.holder(catalog, rate)
    downloader = fp.PieceDownloader(
        spec_for(entry, net.downloads, [at(direct), at(pushed, reachable=False)]),
        timeouts=FAST,
        push=net.route,
    )
    seen: dict = {}
    downloader._on_details = lambda states, stats, known: seen.update(stats=stats)
    final = run_download(qtbot, downloader)
    assert same_bytes(final, entry.path)
    assert pushed.accepted_total == 0 and direct.pushed_total == 0
    qtbot.waitUntil(
        lambda: direct_uploads.bytes(pushed=False) > 0 and pushed_uploads.bytes(pushed=True) > 0,
        timeout=3000,
    )
    by_address = {s.address: s for s in seen["stats"]}
    assert by_address[str(at(pushed))].route is Route.PUSHED
    assert by_address[str(at(direct))].route is Route.DIRECT
    assert by_address[str(at(pushed))].pieces > 0 and by_address[str(at(direct))].pieces > 0


class FakeRelayIndex:
    """Both peers unreachable: the index registers the token with its relay, answers the
    downloader RELAY_OK and asks the holder there, as the real one does."""

    reachable = False  # what the index said of the downloader

    def __init__(self, relay: Relay, broker: RelayBroker) -> None:
        self.relay = relay
        self.broker = broker
        self.holders: dict[str, UploadServer] = {}

    def request_relay(self, holder: p.PeerAddress, token: str) -> None:
        server = self.holders[holder.fingerprint or ""]
        self.relay.expect(token, "127.0.0.1:1", f"127.0.0.1:{server.serverPort()}")
        self.broker.answer(token, "127.0.0.1", self.relay.port)
        server.answer_relay("127.0.0.1", self.relay.port, token)


def test_a_source_reached_through_the_relay_is_reported_as_relayed(qtbot, net):
    relay = Relay(RelaySettings(enabled=True, host="127.0.0.1", port=0))
    relay.start()
    try:
        catalog, entry = film(net, pieces=3)
        holder, _ = net.holder(catalog)
        broker = RelayBroker()
        index = FakeRelayIndex(relay, broker)
        index.holders[holder.fingerprint] = holder
        route = PushRoute(net.index, net.broker, wait=3.0, relay=RelayRoute(index, broker))
        source = at(holder, reachable=False)

        conn = in_thread(
            qtbot, lambda: SourceConnection(source, FAST, threading.Event(), push=route)
        )
        conn.close()
        assert conn.route is Route.RELAYED and conn.pinned
        assert net.index.calls == []  # both unreachable: no push was tried

        downloader = fp.PieceDownloader(
            spec_for(entry, net.downloads, [source]), timeouts=FAST, push=route
        )
        seen: dict = {}
        downloader._on_details = lambda states, stats, known: seen.update(stats=stats)
        assert same_bytes(run_download(qtbot, downloader), entry.path)
        [stats] = seen["stats"]
        assert stats.route is Route.RELAYED and stats.pieces == 4
        assert relay.relayed_total >= 2 and holder.accepted_total == 0
    finally:
        relay.stop()


# ------------------------------------------------------------------ what is refused


class WrongHolder(RecordingTlsServer):
    """Answers a push with another certificate and records every byte it gets after TLS."""

    def __init__(self, port: int) -> None:
        super().__init__(PeerIdentity.generate())
        self.port = port
        self.calls: list[str] = []

    def request_push(self, holder: p.PeerAddress, token: str) -> None:
        self.calls.append(token)
        threading.Thread(target=self._serve, args=(token,), daemon=True).start()

    def _serve(self, token: str) -> None:
        try:
            raw = push.push_out("127.0.0.1", self.port, token, timeout=5.0)
        except OSError:
            self.done.set()
            return
        self.serve(raw, 5.0)


def test_a_pushed_connection_with_another_certificate_is_refused_before_any_request(qtbot, net):
    impostor = WrongHolder(net.listen.serverPort())
    route = PushRoute(impostor, net.broker, race_delay=0.5, wait=3.0)
    holder = p.PeerAddress(
        "127.0.0.1", closed_port(), PeerIdentity.generate().fingerprint, reachable=False
    )

    def connect():
        with pytest.raises(SourceFailed) as failure:
            SourceConnection(holder, FAST, threading.Event(), push=route)
        return failure.value

    failure = in_thread(qtbot, connect, timeout=10000)
    assert "pushed connection's certificate" in failure.reason and not failure.corrupt
    assert impostor.done.wait(5)
    assert len(impostor.calls) == 1 and impostor.handshakes == 1
    assert impostor.received == b""  # the handshake, then nothing at all


def test_a_holder_without_a_fingerprint_cannot_be_pushed(net):
    holder = p.PeerAddress("127.0.0.1", closed_port(), None, reachable=False)
    with pytest.raises(SourceFailed) as failure:
        SourceConnection(holder, FAST, threading.Event(), push=net.route)
    assert "fingerprint" in failure.value.reason
    assert net.index.calls == []


def _first_line_reply(port: int, first: bytes) -> tuple[bytes, float]:
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(first)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    return received, time.monotonic() - started


@pytest.mark.parametrize(
    "first",
    [
        "unknown token",
        "used token",
        "junk",
        "oversized",
        "version 1 request",
        "unfinished",
    ],
)
def test_a_first_line_that_is_not_an_awaited_push_gets_the_version_1_refusal(qtbot, net, first):
    port = net.listen.serverPort()
    if first == "used token":
        token = push.new_token()
        wait = net.broker.expect(token)
        line = p.encode(p.Pushed(token=token))
        pushed = socket.create_connection(("127.0.0.1", port), timeout=5)
        pushed.sendall(line)
        got = in_thread(qtbot, lambda: wait.wait(5.0), timeout=10000)
        assert got is not None
        got.close()
        pushed.close()
        wait.cancel()
        data = line
    else:
        data = {
            "unknown token": p.encode(p.Pushed(token=push.new_token())),
            "junk": b"{not json at all}\n",
            "oversized": b"{" + b"x" * 4000 + b"}\n",
            "version 1 request": p.encode(p.Pieces(id=1, hash="ab" * 32)),
            "unfinished": b'{"op":"PUSHED","token":',  # and then silence
        }[first]
    received, took = in_thread(qtbot, lambda: _first_line_reply(port, data), timeout=15000)
    limit = push.PUSHED_LINE_TIMEOUT + 3.0 if first == "unfinished" else 3.0
    assert took < limit, took
    reply = p.decode_line(received)
    assert isinstance(reply, p.Error) and reply.code is p.ErrorCode.BAD_REQUEST
    assert "version 2" in reply.message
    qtbot.waitUntil(lambda: net.listen.connection_count == 0, timeout=3000)


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    line=st.one_of(
        st.binary(max_size=300),
        st.builds(
            lambda t: p.encode(p.Pushed(token=t))[:-1],
            st.from_regex(r"[0-9a-f]{32}", fullmatch=True),
        ),
        st.text(max_size=80).map(lambda t: ('{"op":"PUSHED","token":' + t).encode()),
    ).filter(lambda b: not b.startswith(b"\x16"))
)
def test_no_first_line_but_the_awaited_push_reaches_a_download(qtbot, net, line):
    """Whatever a connection's first line, unless it is the awaited PUSHED, it is refused
    (or closed) within the deadline and the waiting download gets nothing."""
    wait = net.broker.expect(push.new_token())
    try:
        port = net.listen.serverPort()
        data = line + b"\n"
        _received, took = in_thread(qtbot, lambda: _first_line_reply(port, data), timeout=15000)
        assert took < 3.0, took
        assert wait.wait(0.0) is None and net.broker.expects(wait.token)
    finally:
        wait.cancel()
    qtbot.waitUntil(lambda: net.listen.connection_count == 0, timeout=3000)


# ------------------------------------------------------------------ stopping


def test_stopping_while_waiting_for_a_push_returns_at_once(qtbot, net):
    _catalog, entry = film(net, pieces=1)
    silent = FakeIndex(net.listen)  # asks, and nobody ever connects
    route = PushRoute(silent, net.broker, race_delay=0.5, wait=60.0)
    stop = threading.Event()
    fingerprint = PeerIdentity.generate().fingerprint
    holder = p.PeerAddress("127.0.0.1", closed_port(), fingerprint, reachable=False)
    downloader = fp.PieceDownloader(
        spec_for(entry, net.downloads, [holder]), stop, FAST, push=route
    )
    outcome: dict = {}

    def run():
        try:
            downloader.run()
        except BaseException as exc:  # the test looks at it
            outcome["error"] = exc
        outcome["ended"] = time.monotonic()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    qtbot.waitUntil(lambda: bool(silent.calls), timeout=5000)
    stopped = time.monotonic()
    stop.set()
    qtbot.waitUntil(lambda: not thread.is_alive(), timeout=3000)
    assert outcome["ended"] - stopped < 1.0
    assert isinstance(outcome["error"], fp.DownloadStopped)
    assert net.broker.pending() == 0  # the wait was withdrawn


def test_a_holder_stopping_ends_its_pushed_connections(qtbot, net):
    catalog, _entry = film(net, pieces=1)
    holder, _ = net.holder(catalog)
    silent = socket.create_server(("127.0.0.1", 0))  # takes the push, never speaks TLS
    with silent:
        assert holder.answer_push("127.0.0.1", silent.getsockname()[1], push.new_token())
        conn, _ = silent.accept()
        with conn:
            conn.settimeout(5)
            assert conn.recv(256).startswith(b'{"op":"PUSHED"')
            qtbot.waitUntil(lambda: holder.connection_count == 1, timeout=3000)
            started = time.monotonic()
            holder.stop()
            # Well inside the 10 s handshake deadline: stop() ended it, not the deadline
            # (1.5 s was missed once on the loaded 2-core machine).
            assert time.monotonic() - started < 5
            assert holder.connection_count == 0
            assert conn.recv(65536) == b""  # closed, nothing sent in plaintext
