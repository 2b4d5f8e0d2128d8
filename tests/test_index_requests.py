"""JOIN, SEARCH and UPDATE on their own: a store and a PeerEntry, no socket, no event loop."""

from __future__ import annotations

import json

import pytest

from app.network import protocol as p
from server_app import index_requests
from server_app.index_requests import IndexRequests, PeerEntry
from server_app.index_store import SqliteIndexStore


def files(count: int, start: int = 0) -> tuple[p.FileInfo, ...]:
    return tuple(
        p.FileInfo(f"clip {n}.mp4", n, f"{n + 1:064x}") for n in range(start, start + count)
    )


@pytest.fixture
def requests():
    store = SqliteIndexStore()
    yield IndexRequests(store)
    store.close()


def run(outcome):
    """The reply of a request, running a stepped job to its end; returns (reply, steps)."""
    if isinstance(outcome, p.Message):
        return outcome, 0
    steps = 0
    try:
        while True:
            next(outcome)
            steps += 1
    except StopIteration as stop:
        return stop.value, steps


def test_a_join_goes_in_by_steps_and_replies_with_the_total(requests, monkeypatch):
    monkeypatch.setattr(index_requests, "STEP_FILES", 10)
    peer = PeerEntry("10.0.0.1")
    reply, steps = run(requests.join(peer, p.Join(id=1, port=7001, files=files(35))))
    assert reply == p.JoinOk(id=1, peer="10.0.0.1:7001", files=35) and steps == 3
    assert peer.address == "10.0.0.1:7001" and peer.peer_id is not None
    # JOIN again at the same port: the list is replaced at once.
    reply, steps = run(requests.join(peer, p.Join(id=2, port=7001, files=files(2))))
    assert reply.files == 2 and steps == 0


def test_search_leaves_out_the_asker_and_update_changes_the_total(requests):
    sharer, asker = PeerEntry("10.0.0.1"), PeerEntry("10.0.0.2")
    run(requests.join(sharer, p.Join(port=7001, files=files(3))))
    run(requests.join(asker, p.Join(port=7002, files=files(1, 50))))
    line = requests.search(asker, p.Search(id=3, query="clip"))
    found = json.loads(line)
    assert found["id"] == 3
    assert sorted(r["name"] for r in found["results"]) == ["clip 0.mp4", "clip 1.mp4", "clip 2.mp4"]
    reply, _ = run(requests.update(sharer, p.Update(id=4, add=files(2, 10), remove=())))
    assert reply == p.UpdateOk(id=4, files=5)


def test_a_join_over_the_files_limit_is_too_large_and_leave_forgets_the_peer(requests):
    requests.store.max_files_per_peer = 3
    peer = PeerEntry("10.0.0.1")
    with pytest.raises(p.ProtocolError) as info:
        run(requests.join(peer, p.Join(id=1, port=7001, files=files(4))))
    assert info.value.code is p.ErrorCode.TOO_LARGE and info.value.request_id == 1
    run(requests.join(peer, p.Join(port=7001, files=files(2))))
    old = peer.peer_id
    assert requests.leave(peer) == old and peer.peer_id is None and peer.address is None
    assert requests.store.counters().peers == 0
