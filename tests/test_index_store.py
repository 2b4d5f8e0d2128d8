"""SqliteIndexStore: what only the SQLite engine does (FTS5, upkeep, memory, limits) and the
search semantics in its own words; what every engine must do is tests/test_store_contract.py."""

from __future__ import annotations

import hashlib
import sqlite3
import unicodedata
from unittest import mock

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import server_app.index_store as index_store
from app.network.protocol import ErrorCode, FileInfo, PeerAddress
from server_app.index_store import (
    CapacityExceeded,
    IndexedFile,
    IndexLimitError,
    PeerRecord,
    SearchPage,
    SqliteIndexStore,
    StoreCounters,
    fold,
    normalize_address,
)


def digest(label: str) -> str:
    return hashlib.sha256(label.encode()).hexdigest()


def info(name: str, label: str | None = None, size: int = 100) -> FileInfo:
    """A file whose hash is derived from ``label`` (the name when not given)."""
    return FileInfo(name, size, digest(name if label is None else label))


def names(results) -> list[str]:
    return [result.name for result in results]


def addr(port: int) -> PeerAddress:
    return PeerAddress("10.0.0.1", port)


@pytest.fixture
def store():
    with SqliteIndexStore() as opened:
        yield opened


def join(store: SqliteIndexStore, port: int, files, now: float | None = None) -> int:
    return store.add_peer("10.0.0.1", port, "test/1", list(files), now=now)


# ---------------------------------------------------------------- peers and files


def test_add_peer_records_the_peer_and_its_files(store):
    files = [info("a.mp4", size=10), info("b.mkv", size=32)]
    peer_id = store.add_peer("192.0.2.7", 6001, "napster-p2p/1.0", files, now=1000.0)
    other = join(store, 6002, [info("c.iso")])

    assert peer_id != other
    assert store.peer(peer_id) == PeerRecord(
        peer_id, "192.0.2.7", 6001, "napster-p2p/1.0", 2, 42, 1000.0, 1000.0
    )
    assert store.peer(peer_id).address == PeerAddress("192.0.2.7", 6001)
    assert store.peer_files(peer_id) == files
    assert store.file_count(peer_id) == 2
    assert [record.peer_id for record in store.peers()] == [peer_id, other]
    assert store.peer(9999) is None
    assert store.file_count(9999) == 0
    assert store.peer_files(9999) == []


def test_touch_updates_last_seen_only(store):
    peer_id = join(store, 1, [], now=10.0)
    store.touch(peer_id, now=25.5)
    record = store.peer(peer_id)
    assert (record.joined_at, record.last_seen) == (10.0, 25.5)
    store.touch(12345, now=30.0)  # an unknown peer is ignored


def test_replace_files_replaces_the_whole_list(store):
    peer_id = join(store, 1, [info("old one.mp4"), info("kept.mp4", size=7)])
    searcher = join(store, 2, [])

    total = store.replace_files(peer_id, [info("kept.mp4", size=7), info("new one.mp4", size=5)])

    assert total == 2
    assert sorted(f.name for f in store.peer_files(peer_id)) == ["kept.mp4", "new one.mp4"]
    assert store.search("old", exclude_peer=searcher) == []
    assert names(store.search("one", exclude_peer=searcher)) == ["new one.mp4"]
    assert store.peer(peer_id).bytes == 12
    assert store.counters() == StoreCounters(peers=2, files=2, bytes=12)
    store.check_index()


def test_replace_files_with_an_empty_list_keeps_the_peer(store):
    peer_id = join(store, 1, [info("a.mp4")])
    assert store.replace_files(peer_id, []) == 0
    assert store.peer(peer_id).files == 0
    assert store.counters() == StoreCounters(peers=1, files=0, bytes=0)


def test_update_files_adds_and_removes_by_hash(store):
    peer_id = join(store, 1, [info("a.mp4", "A"), info("a copy.mp4", "A"), info("b.mp4", "B")])
    searcher = join(store, 2, [])

    total = store.update_files(
        peer_id, add=[info("c.mp4", "C", size=1), info("b.mp4", "B")], remove=[digest("A")]
    )

    assert total == 2  # both names of hash A went; b.mp4 was already there
    assert sorted(f.name for f in store.peer_files(peer_id)) == ["b.mp4", "c.mp4"]
    assert store.file_count(peer_id) == 2
    assert store.peer(peer_id).bytes == 101
    assert names(store.search("mp4", exclude_peer=searcher)) == ["b.mp4", "c.mp4"]
    assert store.update_files(peer_id, add=[], remove=[digest("not shared")]) == 2
    store.check_index()


def test_update_files_removes_before_adding_so_a_rename_is_one_update(store):
    peer_id = join(store, 1, [info("draft.mp4", "V")])
    total = store.update_files(peer_id, add=[info("final.mp4", "V")], remove=[digest("V")])
    assert total == 1
    assert store.peer_files(peer_id) == [info("final.mp4", "V")]


def test_remove_peer_removes_the_peer_and_all_its_files(store):
    leaving = join(store, 1, [info(f"song {n}.mp3", size=3) for n in range(50)])
    staying = join(store, 2, [info("song 0.mp3", size=3), info("other.mp3", size=4)])
    searcher = join(store, 3, [])

    store.remove_peer(leaving)

    assert store.peer(leaving) is None
    assert store.peer_files(leaving) == []
    assert store.counters() == StoreCounters(peers=2, files=2, bytes=7)
    results = store.search("song", exclude_peer=searcher)
    assert [(r.name, r.peers) for r in results] == [("song 0.mp3", (addr(2),))]
    assert store.peer(staying).files == 2
    store.remove_peer(leaving)  # a second time is harmless
    store.check_index()


def file_rows(store: SqliteIndexStore) -> int:
    return store._db.execute("SELECT count(*) FROM files").fetchone()[0]


def test_upkeep_deletes_the_rows_of_departed_peers_a_step_at_a_time(store, monkeypatch):
    monkeypatch.setattr(index_store, "PURGE_ROWS", 7)
    leaving = join(store, 1, [info(f"talk {n}.mkv", size=5) for n in range(40)])
    also_leaving = join(store, 2, [info("talk 3.mkv", size=5), info("solo.mkv")])
    staying = join(store, 3, [info("talk 3.mkv", size=5)])
    store.remove_peer(leaving)
    store.remove_peer(also_leaving)
    assert file_rows(store) == 43  # still there, but already out of every answer
    assert names(store.search("talk", exclude_peer=staying)) == []
    assert [f.name for f in store.search_files("")] == ["talk 3.mkv"]
    assert store.search_files("talk")[0].peers == 1

    steps = 0
    while store.upkeep(0):
        steps += 1
        assert steps < 100
    assert steps >= 43 // 7  # a step deletes at most PURGE_ROWS rows
    assert file_rows(store) == 1
    assert not store.upkeep_due
    assert store.upkeep(0) is False
    store.check_index()
    assert names(store.search("talk", exclude_peer=leaving)) == ["talk 3.mkv"]


def test_joins_merge_the_name_index_as_they_go_and_upkeep_finishes_it(store):
    for port in range(60):  # one index segment per transaction
        join(store, port, [info(f"episode {port} part {n}.mp4") for n in range(5)])
    # Hundreds of segments after a flood of JOINs made every search slow.
    assert index_segments(store) <= 8
    for _ in range(1000):
        if not store.upkeep(0.01):
            break
    assert not store.upkeep_due
    store.check_index()
    searcher = join(store, 999, [])
    assert len(store.search("episode 12 part", exclude_peer=searcher)) == 5


def test_remove_peer_is_one_transaction(store):
    peer_id = join(store, 1, [info(f"clip {n}.mp4") for n in range(20)])
    searcher = join(store, 2, [])
    # Make the last statement of remove_peer fail: everything before it must roll back.
    store._db.execute(
        "CREATE TEMP TRIGGER refuse BEFORE DELETE ON live.peers"
        " BEGIN SELECT RAISE(ABORT, 'refused'); END"
    )
    with pytest.raises(sqlite3.DatabaseError):
        store.remove_peer(peer_id)

    assert store.file_count(peer_id) == 20
    assert len(store.peer_files(peer_id)) == 20
    assert len(store.search("clip", exclude_peer=searcher)) == 20
    store.check_index()


def test_file_ids_reused_after_removal_keep_the_index_consistent(store):
    first = join(store, 1, [info(f"alpha {n}") for n in range(30)])
    store.remove_peer(first)
    second = join(store, 2, [info(f"beta {n}") for n in range(30)])
    searcher = join(store, 3, [])
    assert store.search("alpha", exclude_peer=searcher) == []
    assert len(store.search("beta", exclude_peer=searcher)) == 30
    store.update_files(second, [info("gamma")], [digest("beta 3")])
    assert names(store.search("gamma", exclude_peer=searcher)) == ["gamma"]
    store.check_index()


def test_check_index_notices_a_file_row_missing_from_the_index(store):
    join(store, 1, [info("a.mp4")])
    store._db.execute(
        "INSERT INTO files (id, peer_id, hash, name, name_key, size)"
        " VALUES (999, 1, zeroblob(32), 'x', 'x', 1)"
    )
    with pytest.raises(sqlite3.DatabaseError):
        store.check_index()


def test_counters_count_every_peer_file_entry(store):
    assert store.counters() == StoreCounters(0, 0, 0)
    join(store, 1, [info("a", size=2**40), info("b", size=1)])
    join(store, 2, [info("a", size=2**40)])
    assert store.counters() == StoreCounters(peers=2, files=3, bytes=2 * 2**40 + 1)


def test_huge_sizes_do_not_overflow(store):
    peer_id = join(store, 1, [info("a", size=2**63 - 1), info("b", size=2**63 - 1)])
    assert store.counters().files == 2
    assert store.peer(peer_id).bytes == 2**63 - 1  # a peer's total is clamped to 64 bits
    assert store.peer_files(peer_id)[0].size == 2**63 - 1


# ---------------------------------------------------------------- limits


def test_add_peer_over_the_limit_raises_and_adds_nothing():
    with SqliteIndexStore(max_files_per_peer=3) as store:
        with pytest.raises(IndexLimitError) as caught:
            join(store, 1, [info(f"f{n}") for n in range(4)])
        assert caught.value.limit == 3
        assert store.peers() == []
        assert store.counters() == StoreCounters(0, 0, 0)
        # Duplicates do not count against the limit.
        peer_id = join(store, 1, [info("f1"), info("f1"), info("f2"), info("f3")])
        assert store.file_count(peer_id) == 3


def test_replace_files_over_the_limit_leaves_the_list_untouched():
    with SqliteIndexStore(max_files_per_peer=3) as store:
        before = [info("a"), info("b")]
        peer_id = join(store, 1, before)
        with pytest.raises(IndexLimitError):
            store.replace_files(peer_id, [info(f"n{n}") for n in range(4)])
        assert store.peer_files(peer_id) == before
        assert store.file_count(peer_id) == 2


def test_update_files_over_the_limit_rolls_back_the_removals_too():
    with SqliteIndexStore(max_files_per_peer=3) as store:
        before = [info("a"), info("b"), info("c")]
        peer_id = join(store, 1, before)
        searcher = join(store, 2, [])
        with pytest.raises(IndexLimitError):
            store.update_files(peer_id, add=[info("d"), info("e")], remove=[digest("a")])
        assert store.peer_files(peer_id) == before
        assert store.counters() == StoreCounters(peers=2, files=3, bytes=300)
        assert store.search("d", exclude_peer=searcher) == []
        assert names(store.search("a", exclude_peer=searcher)) == ["a"]
        store.check_index()
        # Exactly at the limit is fine.
        assert store.update_files(peer_id, add=[info("d")], remove=[digest("a")]) == 3


# ---------------------------------------------------------------- capacity and memory


def files_named(prefix: str, count: int) -> list[FileInfo]:
    return [info(f"{prefix} {n:05d}.bin") for n in range(count)]


def test_the_index_refuses_to_grow_past_its_server_wide_limit():
    with SqliteIndexStore(max_files=10, max_files_per_address=100) as store:
        first = store.add_peer("192.0.2.1", 1, "t", files_named("a", 6))
        with pytest.raises(CapacityExceeded) as refused:
            store.add_peer("192.0.2.2", 2, "t", files_named("b", 5))
        assert refused.value.code == ErrorCode.LIMIT
        assert "the index is full" in str(refused.value)
        second = store.add_peer("192.0.2.2", 2, "t", files_named("b", 4))  # exactly 10
        assert store.counters().files == 10
        with pytest.raises(CapacityExceeded):
            store.update_files(second, add=[info("one more")], remove=[])
        with pytest.raises(CapacityExceeded):
            store.replace_files(first, files_named("a", 7))
        with pytest.raises(CapacityExceeded):
            store.check_file_count([info("c")], "192.0.2.3")
        store.check_file_count([info("c")])  # without a host: the per-peer limit only
        # A refused change changes nothing; a rename or a smaller list is still fine.
        assert store.counters().files == 10 and store.file_count(second) == 4
        assert (
            store.update_files(second, add=[info("renamed")], remove=[digest("b 00000.bin")]) == 4
        )
        assert store.replace_files(first, files_named("a", 2)) == 2
        assert store.add_peer("192.0.2.3", 3, "t", files_named("c", 4)) > 0
        store.remove_peer(second)
        assert store.add_peer("192.0.2.4", 4, "t", files_named("d", 4)) > 0
        store.check_index()


def test_one_address_may_not_share_more_than_its_limit_over_all_its_connections():
    with SqliteIndexStore(max_files=1000, max_files_per_address=8) as store:
        first = store.add_peer("192.0.2.1", 1, "t", files_named("a", 5))
        with pytest.raises(CapacityExceeded) as refused:
            store.add_peer("192.0.2.1", 2, "t", files_named("b", 4))  # another port, same IP
        assert "192.0.2.1" in str(refused.value)
        assert isinstance(refused.value, IndexLimitError)  # a server catching that sees it too
        store.add_peer("192.0.2.1", 2, "t", files_named("b", 3))
        store.add_peer("192.0.2.9", 3, "t", files_named("c", 8))  # other addresses are not held
        with pytest.raises(CapacityExceeded):
            store.update_files(first, add=[info("x")], remove=[])
        store.remove_peer(first)
        store.add_peer("192.0.2.1", 4, "t", files_named("d", 5))
        assert SqliteIndexStore().max_files == 5_000_000
        assert SqliteIndexStore().max_files_per_address == 1_000_000


def live_pages(store: SqliteIndexStore) -> tuple[int, int]:
    """Pages of the in-memory database in all, and of them free for reuse."""
    db = store._db
    return db.execute("PRAGMA live.page_count").fetchone()[0], db.execute(
        "PRAGMA live.freelist_count"
    ).fetchone()[0]


def index_segments(store: SqliteIndexStore) -> int:
    return store._db.execute("SELECT count(DISTINCT segid) FROM names_fts_idx").fetchone()[0]


def test_when_everyone_left_one_upkeep_empties_the_index_and_refilling_reuses_its_memory(
    monkeypatch,
):
    monkeypatch.setattr(index_store, "REBUILD_MIN_ROWS", 2_000)
    with SqliteIndexStore() as store:
        flooders = [
            store.add_peer(f"10.1.0.{n}", 1, "t", files_named(f"flood{n}", 3_000)) for n in range(4)
        ]
        while store.upkeep(1.0):
            pass
        filled, _ = live_pages(store)
        for peer_id in flooders:
            store.remove_peer(peer_id)
        searcher = store.add_peer("10.1.9.9", 1, "t", [])
        # Nobody online shares anything: answered without a look at the departed rows.
        with mock.patch.object(store, "_db") as db:
            assert store.search_page("flood", exclude_peer=searcher) == SearchPage([], False)
            assert store.search("00001") == []
        db.execute.assert_not_called()
        store.upkeep(0)  # one step: the tables start afresh rather than 200 rows at a time
        assert file_rows(store) == 0
        assert not store.upkeep_due
        # The old rows' pages are all freed at once (a new in-memory database).
        assert live_pages(store)[0] < 0.05 * filled
        assert index_segments(store) == 0
        assert store.peers() == [store.peer(searcher)]
        assert store.add_peer("10.1.9.8", 1, "t", []) > max(flooders)  # ids are never reused
        flooders = [
            store.add_peer(f"10.1.0.{n}", 1, "t", files_named(f"again{n}", 3_000)) for n in range(4)
        ]
        while store.upkeep(1.0):
            pass
        assert live_pages(store)[0] <= filled * 1.05
        assert len(store.search("again", limit=500)) == 500
        store.check_index()


def test_a_survivor_is_kept_when_the_tables_start_afresh(monkeypatch):
    monkeypatch.setattr(index_store, "REBUILD_MIN_ROWS", 100)
    with SqliteIndexStore() as store:
        survivor = store.add_peer("10.2.0.1", 1, "t", [info("keep me.mp4"), info("zq here")])
        gone = store.add_peer("10.2.0.2", 1, "t", files_named("gone", 500))
        asker = store.add_peer("10.2.0.3", 1, "t", [])
        store.remove_peer(gone)
        store.upkeep(0)
        assert file_rows(store) == 2
        assert names(store.search("keep", exclude_peer=asker)) == ["keep me.mp4"]
        assert names(store.search("zq", exclude_peer=asker)) == ["zq here"]
        assert store.peer_files(survivor) == sorted(
            [info("keep me.mp4"), info("zq here")], key=lambda f: f.name
        )
        store.check_index()


def test_departed_rows_waiting_for_upkeep_never_let_the_tables_grow(monkeypatch):
    monkeypatch.setattr(index_store, "REBUILD_MIN_ROWS", 10**9)  # purge row by row only
    with SqliteIndexStore() as store:
        store.add_peer("10.3.0.1", 1, "t", [info("stays")])
        peer_id = store.add_peer("10.3.0.2", 1, "t", files_named("first", 4_000))
        filled, _ = live_pages(store)
        for round_ in range(3):  # no upkeep at all: a flooder leaving and coming back
            store.remove_peer(peer_id)
            peer_id = store.add_peer("10.3.0.2", 1, "t", files_named(f"round{round_}", 4_000))
            assert file_rows(store) <= 4_001
        assert live_pages(store)[0] <= filled * 1.1
        store.check_index()


def test_after_a_big_purge_the_name_index_is_merged_into_one_segment(monkeypatch):
    monkeypatch.setattr(index_store, "REBUILD_MIN_ROWS", 10**9)
    monkeypatch.setattr(index_store, "COMPACT_MIN_ROWS", 1_000)
    with SqliteIndexStore() as store:
        store.add_peer("10.4.0.1", 1, "t", files_named("stays", 1_000))
        gone = [
            store.add_peer("10.4.0.2", n, "t", files_named(f"gone{n}", 1_000)) for n in range(3)
        ]
        while store.upkeep(1.0):
            pass
        for peer_id in gone:
            store.remove_peer(peer_id)
        while store.upkeep(1.0):
            pass
        assert index_segments(store) == 1
        data = store._db.execute("SELECT sum(length(block)) FROM names_fts_data").fetchone()[0]
        store.remove_peer(store.peers()[0].peer_id)
        fresh = SqliteIndexStore()
        fresh.add_peer("10.4.0.1", 1, "t", files_named("stays", 1_000))
        while fresh.upkeep(1.0):
            pass
        fresh_data = fresh._db.execute("SELECT sum(length(block)) FROM names_fts_data").fetchone()[
            0
        ]
        assert data <= fresh_data * 1.2  # nothing of the departed names is left in it
        fresh.close()


# ---------------------------------------------------------------- search


@pytest.fixture
def library(store):
    """Three sharing peers (ids 1-3) and an asker (id 4) who shares nothing."""
    join(
        store,
        1,
        [
            info("Aula de Python.mp4", "python"),
            info("aula.mkv", "mkv"),
            info("Ação.mp4", "acao"),
            info("50%_off sale.pdf", "pdf"),
        ],
    )
    join(store, 2, [info("Aula de Python.mp4", "python"), info("lecture.mp4", "python")])
    join(store, 3, [info("holiday (2019) *final*.avi", "avi"), info('say "hi".txt', "txt")])
    join(store, 4, [])
    return store


ASKER = 4


def test_every_term_must_occur_in_the_name(library):
    assert names(library.search("aula mp4", exclude_peer=ASKER)) == ["Aula de Python.mp4"]
    assert names(library.search("mp4 aula", exclude_peer=ASKER)) == ["Aula de Python.mp4"]
    assert library.search("aula avi", exclude_peer=ASKER) == []


def test_search_is_case_insensitive(library):
    assert names(library.search("AULA.MKV", exclude_peer=ASKER)) == ["aula.mkv"]
    assert names(library.search("pYtHoN", exclude_peer=ASKER)) == ["Aula de Python.mp4"]


def test_terms_of_one_or_two_characters_work(library):
    assert names(library.search("de", exclude_peer=ASKER)) == ["Aula de Python.mp4"]
    assert names(library.search("DE mp4", exclude_peer=ASKER)) == ["Aula de Python.mp4"]
    assert names(library.search("(2", exclude_peer=ASKER)) == ["holiday (2019) *final*.avi"]
    assert sorted(names(library.search("v", exclude_peer=ASKER))) == [
        "aula.mkv",
        "holiday (2019) *final*.avi",
    ]
    assert library.search("zq", exclude_peer=ASKER) == []
    assert library.search("aula zq", exclude_peer=ASKER) == []


def test_unicode_names_match_in_any_case_normal_form_and_accent(library):
    for query in ("açã", "AÇÃ", "Ação.MP4", unicodedata.normalize("NFD", "AÇÃO"), "acao", "ACA"):
        assert names(library.search(query, exclude_peer=ASKER)) == ["Ação.mp4"], query
    # "ç" is "c": also in "lecture.mp4".
    assert sorted(names(library.search("ç", exclude_peer=ASKER))) == ["Ação.mp4", "lecture.mp4"]


FINAL = "Ação 🎬 aula final — versão 2.mp4"


@pytest.mark.parametrize(
    "query", ["acao", "ação", "AÇÃO", "Acao VERSAO", "versão 2", "🎬", "— 2.MP4", FINAL.upper()]
)
def test_accents_and_case_are_ignored_on_both_sides(store, query):
    join(store, 1, [info(FINAL), info("acaso.txt"), info("versa.mp4")])
    found = names(store.search(query))
    assert found == [FINAL]
    if query == FINAL.upper():
        assert store.search_page(query).results[0].name == FINAL  # the exact match


@pytest.mark.parametrize(
    ("text", "folded"),
    [
        ("Ação 🎬 aula final — versão 2.mp4", "acao 🎬 aula final — versao 2.mp4"),
        ("AÇÃO", "acao"),
        (unicodedata.normalize("NFD", "Ação"), "acao"),
        ("straße", "strasse"),
        ("ΣΟΦΙΑ", "σοφια"),
        ("\N{LATIN SMALL LIGATURE FFI}x", "ffix"),  # compatibility form
        ("\N{LATIN CAPITAL LETTER I WITH DOT ABOVE}stanbul", "istanbul"),
        ("\N{BLACK-LETTER CAPITAL H}ello", "hello"),  # NFKD makes a capital: folded again
        ("Plain ASCII.TXT", "plain ascii.txt"),
    ],
)
def test_fold_decomposes_drops_marks_and_casefolds(text, folded):
    assert fold(text) == folded


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_fold_is_idempotent(text):
    assert fold(fold(text)) == fold(text)


def test_a_query_of_only_combining_marks_finds_nothing(library):
    assert library.search("\N{COMBINING ACUTE ACCENT}") == []


def test_unicode_case_folding_is_used(store):
    join(store, 1, [info("STRASSE.mkv"), info("ΣΟΦΙΑ.mkv")])
    assert names(store.search("straße")) == ["STRASSE.mkv"]
    assert names(store.search("σοφια")) == ["ΣΟΦΙΑ.mkv"]


def test_a_query_without_terms_finds_nothing(library):
    assert library.search("") == []
    assert library.search("   \t ") == []
    assert library.search("aula", limit=0) == []


def test_results_group_by_hash_and_name_and_list_the_peers_of_the_hash(library):
    results = library.search("mp4", exclude_peer=ASKER)
    by_name = {result.name: result for result in results}
    assert sorted(by_name) == ["Aula de Python.mp4", "Ação.mp4", "lecture.mp4"]
    # One result for the name two peers share, listing both.
    assert by_name["Aula de Python.mp4"].peers == (addr(1), addr(2))
    # Peer 1 holds the same bytes as "lecture.mp4" under another name: it is listed too.
    assert by_name["lecture.mp4"].peers == (addr(1), addr(2))
    assert by_name["lecture.mp4"].hash == digest("python")
    assert by_name["lecture.mp4"].size == 100
    assert by_name["Ação.mp4"].peers == (addr(1),)


def test_the_asker_is_left_out_and_results_only_it_holds_are_dropped(library):
    results = {r.name: r for r in library.search("mp4", exclude_peer=1)}
    assert sorted(results) == ["Aula de Python.mp4", "lecture.mp4"]  # Ação.mp4 only on peer 1
    assert results["Aula de Python.mp4"].peers == (addr(2),)
    assert results["lecture.mp4"].peers == (addr(2),)
    # Without an asker every holder is listed.
    assert len(library.search("mp4")) == 3


def test_peers_are_listed_in_peer_id_order(store):
    ids = [join(store, port, [info("shared.bin", "same")]) for port in (9, 3, 7)]
    asker = join(store, 1, [])
    result = store.search("shared", exclude_peer=asker)[0]
    assert ids == sorted(ids)
    assert result.peers == (addr(9), addr(3), addr(7))


def test_limit_caps_the_results(store):
    join(store, 1, [info(f"track {n:02}.flac") for n in range(30)])
    asker = join(store, 2, [])
    results = store.search("track", limit=7, exclude_peer=asker)
    assert names(results) == [f"track {n:02}.flac" for n in range(7)]


def test_search_page_says_when_more_results_matched_than_the_limit(store):
    join(store, 1, [info(f"track {n:02}.flac") for n in range(30)])
    asker = join(store, 2, [info("track own.flac")])
    assert store.search_page("track", limit=7, exclude_peer=asker).more
    assert store.search_page("track", limit=29, exclude_peer=asker).more
    page = store.search_page("track", limit=30, exclude_peer=asker)
    assert len(page.results) == 30
    assert not page.more  # the asker's own file does not count
    assert store.search_page("track", limit=30).more
    assert not store.search_page("nothing", limit=1).more
    assert not store.search_page("tr ac", limit=30, exclude_peer=asker).more


@pytest.mark.parametrize("max_alphabet", [512, 3])  # 3: too many characters: instr checks
def test_two_character_terms_match_anywhere_in_the_name(max_alphabet, monkeypatch):
    monkeypatch.setattr(index_store, "MAX_ALPHABET", max_alphabet)
    with SqliteIndexStore() as store:
        join(store, 1, [info("zq"), info("ab zq"), info("zqab"), info("z q"), info("Q")])
        assert sorted(names(store.search("zq"))) == ["ab zq", "zq", "zqab"]
        assert sorted(names(store.search("zq ab"))) == ["ab zq", "zqab"]
        assert names(store.search("zq", limit=1)) == ["zq"]  # the exact name first
        assert sorted(names(store.search("q"))) == ["Q", "ab zq", "z q", "zq", "zqab"]
        assert names(store.search("é")) == []  # a character no name holds
        assert names(store.search("ab\x01")) == []


def vm_steps(store: SqliteIndexStore, search) -> int:
    """Thousands of SQLite virtual machine steps ``search()`` takes."""
    steps = [0]

    def count() -> int:
        steps[0] += 1
        return 0

    store._db.set_progress_handler(count, 1000)
    try:
        search()
    finally:
        store._db.set_progress_handler(None, 0)
    return steps[0]


def test_a_rare_one_character_term_is_looked_up_in_the_index_not_scanned(store):
    join(store, 1, [FileInfo(f"clip {n}.mp4", 1, f"{n:064x}") for n in range(20_000)])
    join(store, 2, [info("жук.mp3"), info("ends in ж"), info("ж")])
    asker = join(store, 3, [])
    for query in ("ж", "Ж mp3", "ж c"):
        expected = {"ж": ["ends in ж", "ж", "жук.mp3"], "Ж mp3": ["жук.mp3"], "ж c": []}[query]
        assert sorted(names(store.search(query, exclude_peer=asker))) == expected
        # Scanning the 20,000 names takes about 100 thousand steps; the index, a few hundred.
        assert vm_steps(store, lambda q=query: store.search(q, exclude_peer=asker)) < 10
    assert names(store.search("ж", limit=1, exclude_peer=asker)) == ["ж"]  # exact first
    assert names(store.search("q", exclude_peer=asker)) == []  # no name holds it


def test_a_scan_for_common_characters_skips_the_rows_waiting_for_upkeep(store):
    gone = join(store, 1, [FileInfo(f"song {n}.ogg", 1, f"{n:064x}") for n in range(20_000)])
    join(store, 2, [info("a song.ogg"), info("other song.ogg")])
    asker = join(store, 3, [])
    store.remove_peer(gone)
    # "g" is in over 1,000 names (the departed ones count until purged): checked, not looked up.
    assert sorted(names(store.search("g", exclude_peer=asker))) == ["a song.ogg", "other song.ogg"]
    assert vm_steps(store, lambda: store.search("g o", exclude_peer=asker)) < 10


def test_a_rare_term_is_found_among_60000_names_holding_a_common_one(store):
    # The finding: the search stopped after 50,000 index matches of one term, so
    # "common zq" missed the one name that "zq" alone found.
    common = [FileInfo(f"common {n} song.mp3", 1, f"{n:064x}") for n in range(60_000)]
    rare = FileInfo("common rarezq.mp4", 1, "f" * 64)  # the highest hash: inserted last
    join(store, 1, [*common, rare])
    asker = join(store, 2, [])
    for query in ("common zq", "zq common", "common rarezq", "COMMON RAREZQ.MP4", "zq", "mp4"):
        page = store.search_page(query, exclude_peer=asker)
        assert names(page.results) == ["common rarezq.mp4"], query
        assert not page.more
    assert store.search_page("common", exclude_peer=asker).more


def test_an_exact_match_ranks_first_even_beyond_the_candidate_cap(store, monkeypatch):
    monkeypatch.setattr(index_store, "MIN_CANDIDATES", 5)
    monkeypatch.setattr(index_store, "CANDIDATE_FACTOR", 1)
    join(store, 1, [info(f"concert {n:03}.mkv") for n in range(300)])
    join(store, 2, [info("Concert")])
    asker = join(store, 3, [])
    results = store.search("CONCERT", limit=3, exclude_peer=asker)
    assert names(results)[0] == "Concert"
    assert len(results) == 3


def test_search_looks_further_when_the_askers_own_files_fill_the_candidates(store, monkeypatch):
    monkeypatch.setattr(index_store, "MIN_CANDIDATES", 4)
    monkeypatch.setattr(index_store, "CANDIDATE_FACTOR", 1)
    asker = join(store, 1, [info(f"mix {n:03}.mp3") for n in range(200)])
    join(store, 2, [info("mix zzz.mp3")])
    assert names(store.search("mix", limit=1, exclude_peer=asker)) == ["mix zzz.mp3"]


@pytest.mark.parametrize(
    "query",
    ['"', '""', "%", "_", "*", "(", ")", "NEAR", "AND", "OR", "NOT", "a OR b", "NEAR(a b)",
     "^", "-", ":", "'", "[", "]", "?", "\\", "{x}", "+", 'x"y', "col:term", "a* b*", "\x00"],
)  # fmt: skip
def test_query_syntax_characters_never_raise(library, query):
    for result in library.search(query):
        assert all(term in fold(result.name) for term in fold(query).split())
    library.search_files(query)


def test_special_characters_match_literally(store):
    join(
        store,
        1,
        [
            info("50%_off.pdf"),
            info("50x-off.pdf"),
            info("star*.png"),
            info("plain.png"),
            info('quote "me".txt'),
            info("near by.txt"),
            info("Band (live).mp3"),
            info("Orange.jpg"),
            info("what?.doc"),
            info("[draft].doc"),
        ],
    )
    asker = join(store, 2, [])

    def found(query: str) -> list[str]:
        return sorted(names(store.search(query, exclude_peer=asker)))

    assert found("%_") == ["50%_off.pdf"]
    assert found("%") == ["50%_off.pdf"]
    assert found("_") == ["50%_off.pdf"]
    assert found("*") == ["star*.png"]
    assert found("star*") == ["star*.png"]
    assert found('"me"') == ['quote "me".txt']
    assert found('"') == ['quote "me".txt']
    assert found("NEAR") == ["near by.txt"]
    assert found("AND") == ["Band (live).mp3"]
    assert found("(live)") == ["Band (live).mp3"]
    assert found("(") == ["Band (live).mp3"]
    assert found("OR") == ["Orange.jpg"]
    assert found("?") == ["what?.doc"]
    assert found("[") == ["[draft].doc"]
    assert found("[draft]") == ["[draft].doc"]
    assert found("NOT") == []
    assert found("\x00") == []
    assert store.search_files("\x00") == []


def test_search_files_lists_everything_by_name_when_the_query_is_empty(library):
    listed = library.search_files("")
    assert [f.name for f in listed] == [
        "50%_off sale.pdf",
        "Ação.mp4",  # sorted as "acao.mp4"
        "Aula de Python.mp4",
        "aula.mkv",
        "holiday (2019) *final*.avi",
        "lecture.mp4",
        'say "hi".txt',
    ]
    assert listed[2] == IndexedFile("Aula de Python.mp4", 100, digest("python"), 2)
    assert {f.name: f.peers for f in listed}["lecture.mp4"] == 2
    assert [f.name for f in library.search_files("", limit=2)] == [
        "50%_off sale.pdf",
        "Ação.mp4",
    ]


def test_search_files_matches_like_search_without_excluding_anyone(library):
    assert [(f.name, f.peers) for f in library.search_files("aula")] == [
        ("Aula de Python.mp4", 2),
        ("aula.mkv", 1),
    ]
    assert [f.name for f in library.search_files("Ação.mp4")] == ["Ação.mp4"]
    assert library.search_files("nothing like this") == []
    assert library.search_files("aula", limit=0) == []


# ---------------------------------------------------------------- file-backed database


def test_reopening_a_file_clears_peers_and_files_but_keeps_bans(tmp_path):
    path = tmp_path / "index.sqlite"
    with SqliteIndexStore(path) as store:
        join(store, 1, [info("movie.mkv")])
        join(store, 2, [info("movie.mkv")])
        store.ban("203.0.113.9", "spam")
        assert store.counters().peers == 2

    with SqliteIndexStore(str(path)) as store:
        assert store.peers() == []
        assert store.counters() == StoreCounters(0, 0, 0)
        assert store.search("movie") == []
        assert store.search_files("") == []
        assert store.is_banned("203.0.113.9")
        assert [(address, reason) for address, reason, _ in store.bans()] == [
            ("203.0.113.9", "spam")
        ]
        assert join(store, 3, [info("movie.mkv")]) >= 1
        assert store.counters() == StoreCounters(1, 1, 100)
        store.check_index()
        assert store._db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


# ---------------------------------------------------------------- bans


def test_ban_unban_and_list(store):
    assert not store.is_banned("198.51.100.1")
    store.ban("198.51.100.1", "flood")
    store.ban("2001:db8::1")
    assert store.is_banned("198.51.100.1")
    assert store.is_banned("2001:DB8:0::1")
    assert not store.is_banned("198.51.100.2")
    listed = store.bans()
    assert [(a, r) for a, r, _ in listed] == [("198.51.100.1", "flood"), ("2001:db8::1", "")]
    assert all(isinstance(when, float) for _, _, when in listed)

    store.ban("198.51.100.1", "flood again")  # banning again updates the reason
    assert ("198.51.100.1", "flood again") in [(a, r) for a, r, _ in store.bans()]
    assert len(store.bans()) == 2

    store.unban("198.51.100.1")
    assert not store.is_banned("198.51.100.1")
    store.unban("198.51.100.1")  # unbanning twice is harmless
    assert [a for a, _, _ in store.bans()] == ["2001:db8::1"]


def test_ipv4_mapped_addresses_are_the_same_address(store):
    store.ban("::ffff:192.0.2.5")
    assert store.is_banned("192.0.2.5")
    assert store.bans()[0][0] == "192.0.2.5"
    assert normalize_address(" [2001:db8::2] ") == "2001:db8::2"
    assert normalize_address("not an ip") == "not an ip"


# ---------------------------------------------------------------- against a model


ALPHABET = "aAbB çÇãÃ%_*\"'(.1"
name_strategy = (
    st.text(alphabet=ALPHABET, min_size=1, max_size=8)
    .map(str.strip)
    .filter(lambda name: name not in ("", ".", ".."))
)
files_strategy = st.lists(st.tuples(name_strategy, st.sampled_from("pqrs")), max_size=6)
operation_strategy = st.one_of(
    st.tuples(st.just("join"), files_strategy),
    st.tuples(st.just("leave"), st.integers(0, 5)),
    st.tuples(st.just("rejoin"), st.integers(0, 5), files_strategy),
    st.tuples(
        st.just("update"), st.integers(0, 5), files_strategy, st.lists(st.sampled_from("pqrs"))
    ),
    st.tuples(st.just("upkeep")),
)


def model_search(shares, query, limit, exclude):
    """The SEARCH rules of PROTOCOL.md, written the slow and obvious way."""
    terms = [term for term in map(fold, query.split()) if term]
    if not terms:
        return []
    holders: dict[str, set[int]] = {}
    groups: set[tuple[str, str]] = set()
    for peer_id, files in shares.items():
        for name, label in files:
            holders.setdefault(digest(label), set()).add(peer_id)
            if all(term in fold(name) for term in terms):
                groups.add((digest(label), name))
    ranked = []
    for hash_, name in groups:
        peers = sorted(p for p in holders[hash_] if p != exclude)
        if peers:
            exact = fold(name) == fold(query.strip())
            ranked.append(((not exact, -len(peers), fold(name), name, hash_), name, hash_, peers))
    ranked.sort()
    return [(name, hash_, peers) for _, name, hash_, peers in ranked[:limit]]


@settings(max_examples=200, deadline=None)
@given(
    operations=st.lists(operation_strategy, min_size=1, max_size=8),
    query=st.text(alphabet=ALPHABET + "  ", max_size=6),
    limit=st.integers(1, 8),
    asker=st.integers(0, 6),
)
def test_search_agrees_with_a_model(operations, query, limit, asker):
    with SqliteIndexStore() as store, mock.patch.object(index_store, "PURGE_ROWS", 2):
        shares: dict[int, set[tuple[str, str]]] = {}
        joined: list[int] = []  # every peer id ever given, so operations can name old ones
        for operation in operations:
            kind, *args = operation
            if kind == "upkeep":
                store.upkeep(0)  # one step: a departed peer's rows may be half deleted
            elif kind == "join":
                files = [info(name, label) for name, label in args[0]]
                peer_id = store.add_peer("10.0.0.1", 1000 + len(joined), "t", files)
                joined.append(peer_id)
                shares[peer_id] = set(args[0])
            elif not joined:
                continue
            elif kind == "leave":
                peer_id = joined[args[0] % len(joined)]
                store.remove_peer(peer_id)
                shares.pop(peer_id, None)
            elif joined[args[0] % len(joined)] in shares:
                peer_id = joined[args[0] % len(joined)]
                if kind == "rejoin":
                    total = store.replace_files(peer_id, [info(n, label) for n, label in args[1]])
                    shares[peer_id] = set(args[1])
                else:
                    gone = set(args[2])
                    total = store.update_files(
                        peer_id,
                        add=[info(n, label) for n, label in args[1]],
                        remove=[digest(label) for label in args[2]],
                    )
                    kept = {(n, label) for n, label in shares[peer_id] if label not in gone}
                    shares[peer_id] = kept | set(args[1])
                assert total == len(shares[peer_id])
        exclude = joined[asker] if asker < len(joined) else None
        expected = model_search(shares, query, limit, exclude)
        got = store.search(query, limit=limit, exclude_peer=exclude)
        ports = {peer_id: 1000 + index for index, peer_id in enumerate(joined)}
        assert [(r.name, r.hash, r.peers) for r in got] == [
            (name, hash_, tuple(PeerAddress("10.0.0.1", ports[p]) for p in peers))
            for name, hash_, peers in expected
        ]
        assert store.counters().files == sum(len(files) for files in shares.values())
        store.check_index()


def test_departed_rows_waiting_for_upkeep_do_not_crowd_out_live_matches(store):
    gone = join(store, 1, [info(f"song {n:03d}") for n in range(300)])  # the lowest row ids
    join(store, 2, [info(f"song live {n}") for n in range(10)])
    asker = join(store, 3, [])
    store.remove_peer(gone)
    assert len(store.search("song", exclude_peer=asker)) == 10  # trigram index
    assert len(store.search("so", exclude_peer=asker)) == 10  # scan of short terms
    assert len(store.search_files("song")) == 10


#: Search terms by how often they occur: a few in most names, some in a few, some short.
SKEWED_TOKENS = [
    *["common"] * 12,
    *["mp4"] * 8,
    *["de"] * 6,
    *["Ação"] * 3,
    "rarezq",
    "zq",
    "x",
    "ab",
    "acao!",
    "q",
]
skewed_names = st.lists(st.sampled_from(SKEWED_TOKENS), min_size=1, max_size=5).flatmap(
    lambda tokens: st.sampled_from([" ", "", "."]).map(lambda glue: glue.join(tokens))
)
skewed_queries = st.lists(
    st.sampled_from([*sorted(set(SKEWED_TOKENS)), "co", "mon", "ZQ", "p4", "ção", "CAO", "s"]),
    min_size=1,
    max_size=3,
).map(" ".join)


@settings(max_examples=150, deadline=None)
@given(
    shares=st.lists(
        st.lists(st.tuples(skewed_names, st.sampled_from("pqrstuvw")), max_size=25),
        min_size=1,
        max_size=4,
    ),
    query=skewed_queries,
    limit=st.integers(1, 12),
    asker=st.integers(0, 4),
    driver_rows=st.sampled_from([0, 4, 1000]),  # 0: every term goes to the index together
    rare_characters=st.sampled_from([0, 1000]),  # 0: 1-character terms are checked in names
)
def test_search_finds_every_match_whatever_the_term_frequencies(
    shares, query, limit, asker, driver_rows, rare_characters
):
    # Tiny candidate caps: a ranking pass sees only a few matches, yet none may be missed.
    with (
        SqliteIndexStore() as store,
        mock.patch.object(index_store, "MIN_CANDIDATES", 2),
        mock.patch.object(index_store, "CANDIDATE_FACTOR", 1),
        mock.patch.object(index_store, "DRIVER_ROWS", driver_rows),
        mock.patch.object(index_store, "RARE_CHARACTER_ROWS", rare_characters),
    ):
        ids = [
            store.add_peer("10.0.0.1", 1000 + n, "t", [info(name, label) for name, label in files])
            for n, files in enumerate(shares)
        ]
        model = {peer_id: set(files) for peer_id, files in zip(ids, shares, strict=True)}
        exclude = ids[asker] if asker < len(ids) else None
        everything = model_search(model, query, 10_000, exclude)
        page = store.search_page(query, limit=limit, exclude_peer=exclude)
        got = [(r.name, r.hash) for r in page.results]
        assert page.more == (len(everything) > limit)
        assert len(got) == min(limit, len(everything))
        assert set(got) <= {(name, hash_) for name, hash_, _ in everything}
        if everything and fold(everything[0][0]) == fold(query.strip()):
            assert fold(got[0][0]) == fold(query.strip())  # an exact match ranks first
        complete = store.search_page(query, limit=500, exclude_peer=exclude)
        assert sorted((r.name, r.hash) for r in complete.results) == sorted(
            (name, hash_) for name, hash_, _ in everything
        )
        assert not complete.more


def test_normalize_address_drops_an_ipv6_zone_and_the_ipv4_mapping():
    assert normalize_address("::ffff:10.1.2.3") == "10.1.2.3"
    assert normalize_address("fe80::1%eth0") == "fe80::1"
    assert normalize_address("[fe80::1%2]") == "fe80::1"
    assert normalize_address(" not an ip ") == "not an ip"


def test_a_false_size_is_another_file_and_never_hides_the_real_one(store):
    """The finding: under one name, whoever announced first set the size everybody saw,
    and the honest holder was listed under the liar's size."""
    real = FileInfo("aula.mp4", 1_000_000, "a" * 64)
    lie = FileInfo("aula.mp4", 5, "a" * 64)
    join(store, 1, [lie])  # the liar announces first
    join(store, 2, [real])
    results = {(r.size, tuple(str(peer) for peer in r.peers)) for r in store.search("aula")}
    assert results == {(5, ("10.0.0.1:1",)), (1_000_000, ("10.0.0.1:2",))}


def test_sources_lists_who_holds_a_file_by_hash_and_size(store):
    real = FileInfo("aula.mp4", 1_000_000, "b" * 64)
    renamed = FileInfo("lecture.mp4", 1_000_000, "b" * 64)
    lie = FileInfo("aula.mp4", 5, "b" * 64)
    one, _two, _three = join(store, 1, [real]), join(store, 2, [renamed]), join(store, 3, [lie])
    exact = store.sources("b" * 64, 1_000_000)
    both = ("10.0.0.1:1", "10.0.0.1:2")  # the file's holders, whatever they call it
    assert {(r.name, tuple(str(x) for x in r.peers)) for r in exact} == {
        ("aula.mp4", both),
        ("lecture.mp4", both),
    }
    assert {r.size for r in store.sources("b" * 64)} == {5, 1_000_000}
    assert {str(x) for r in store.sources("b" * 64, 1_000_000, one) for x in r.peers} == {
        "10.0.0.1:2"
    }
    assert store.sources("c" * 64) == []


def test_browse_lists_everything_one_online_peer_shares(store):
    join(store, 1, [FileInfo("b.mp4", 2, "d" * 64), FileInfo("A.mp4", 1, "e" * 64)])
    join(store, 2, [FileInfo("other.mp4", 3, "f" * 64)])
    page = store.browse("10.0.0.1", 1)
    assert [(r.name, [str(x) for x in r.peers]) for r in page.results] == [
        ("A.mp4", ["10.0.0.1:1"]),
        ("b.mp4", ["10.0.0.1:1"]),
    ]
    assert not page.more
    assert store.browse("10.0.0.1", 1, limit=1).more
    assert store.browse("10.0.0.9", 1).results == []
