"""The index's limits and SEARCH_OK's "more" over real loopback sockets."""

from __future__ import annotations

from server_app.index_store import SqliteIndexStore
from tests.wire_client import WireClient


def entries(prefix: str, count: int, first: int = 0) -> list[dict]:
    return [
        {"name": f"{prefix} {n}.mp4", "size": n, "hash": f"{n + 1:064x}"}
        for n in range(first, first + count)
    ]


def test_a_join_past_the_index_limit_is_refused_with_limit_and_others_still_join(
    qtbot, make_index_server
):
    server = make_index_server(store=SqliteIndexStore(max_files=2_500, max_files_per_address=2_000))
    port = server.serverPort()
    first, second, third = WireClient(port), WireClient(port), WireClient(port)
    try:
        # 1,500 files go in by steps (1,000 per turn).
        reply = first.request(
            qtbot, {"op": "JOIN", "id": 1, "port": 7001, "files": entries("a", 1_500)}
        )
        assert reply["files"] == 1_500
        # The same address: 1,500 + 600 is past the 2,000 one address may share.
        reply = second.request(
            qtbot, {"op": "JOIN", "id": 2, "port": 7002, "files": entries("b", 600, 5_000)}
        )
        assert reply["op"] == "ERROR" and reply["code"] == "LIMIT" and reply["id"] == 2
        assert "127.0.0.1" in reply["message"]
        qtbot.waitUntil(second.is_closed, timeout=5_000)
        assert server.store.counters().files == 1_500
        reply = third.request(
            qtbot, {"op": "JOIN", "id": 3, "port": 7003, "files": entries("c", 400, 9_000)}
        )
        assert reply["op"] == "JOIN_OK"
        # An UPDATE past the server-wide limit: refused; LIMIT closes the connection, so
        # the peer's files go too.
        update = {"op": "UPDATE", "id": 4, "add": entries("d", 700, 20_000), "remove": []}
        reply = third.request(qtbot, update)
        assert reply["code"] == "LIMIT" and "full" in reply["message"]
        qtbot.waitUntil(third.is_closed, timeout=5_000)
        qtbot.waitUntil(lambda: server.store.counters().files == 1_500, timeout=5_000)
    finally:
        for client in (first, second, third):
            client.close()


def test_search_ok_says_more_when_more_matched_than_the_limit(qtbot, make_index_server):
    server = make_index_server()
    sharer, asker = WireClient(server.serverPort()), WireClient(server.serverPort())
    try:
        sharer.request(qtbot, {"op": "JOIN", "id": 1, "port": 7001, "files": entries("clip", 5)})
        asker.request(qtbot, {"op": "JOIN", "id": 1, "port": 7002, "files": []})
        few = asker.request(qtbot, {"op": "SEARCH", "id": 2, "query": "clip", "limit": 4})
        assert len(few["results"]) == 4 and few["more"] is True
        every = asker.request(qtbot, {"op": "SEARCH", "id": 3, "query": "CLIP", "limit": 5})
        assert len(every["results"]) == 5 and "more" not in every
    finally:
        sharer.close()
        asker.close()
