"""The IndexStore contract: every engine (SQLite, PostgreSQL) gives the same answers.

Each test runs against a ``SqliteIndexStore`` and a ``PostgresIndexStore`` on a fresh
database of the session's throw-away PostgreSQL (tests/postgres_server.py).
"""

from __future__ import annotations

import hashlib
import unicodedata

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.network.protocol import ErrorCode, FileInfo, PeerAddress
from server_app.index_store import SqliteIndexStore
from server_app.postgres_store import PostgresIndexStore
from server_app.store import (
    CapacityExceeded,
    IndexedFile,
    IndexLimitError,
    IndexStore,
    PeerRecord,
    SearchPage,
    StoreCounters,
    fold,
    open_index_store,
)

SERVER = "127.0.0.1:8888"


def digest(label: str) -> str:
    return hashlib.sha256(label.encode()).hexdigest()


def info(name: str, label: str | None = None, size: int = 100) -> FileInfo:
    """A file whose hash is derived from ``label`` (the name when not given)."""
    return FileInfo(name, size, digest(name if label is None else label))


def names(results) -> list[str]:
    return [result.name for result in results]


def addr(port: int) -> PeerAddress:
    return PeerAddress("10.0.0.1", port)


def join(store: IndexStore, port: int, files, now: float | None = None) -> int:
    return store.add_peer("10.0.0.1", port, "test/1", list(files), now=now)


@pytest.fixture(params=["sqlite", "postgres"])
def make_store(request):
    """Opens stores of the engine under test (one database per test); all closed after."""
    opened: list[IndexStore] = []
    url = request.getfixturevalue("postgres_url") if request.param == "postgres" else None

    def make(**limits) -> IndexStore:
        location = url if url is not None else ":memory:"
        store = open_index_store(location, server_name=SERVER, **limits)
        opened.append(store)
        return store

    yield make
    for store in opened:
        store.close()


@pytest.fixture
def store(make_store) -> IndexStore:
    return make_store()


def test_open_index_store_picks_the_engine_by_location(make_store, postgres_url):
    store = make_store()
    assert isinstance(store, SqliteIndexStore | PostgresIndexStore)
    assert store.shared == isinstance(store, PostgresIndexStore)
    assert store.server_name == SERVER


def test_a_renamed_server_names_its_peers_by_the_new_name(store):
    peer_id = join(store, 6001, [info("a.mp4")])
    store.rename("index-2.example:1099")
    assert store.server_name == "index-2.example:1099"
    assert store.peer(peer_id).server == "index-2.example:1099"
    assert [record.server for record in store.peers()] == ["index-2.example:1099"]


# ---------------------------------------------------------------- peers and files


def test_add_peer_records_the_peer_and_its_files(store):
    files = [info("a.mp4", size=10), info("b.mkv", size=32)]
    peer_id = store.add_peer("192.0.2.7", 6001, "napster-p2p/1.0", files, now=1000.0)
    other = join(store, 6002, [info("c.iso")])

    assert peer_id != other
    assert store.peer(peer_id) == PeerRecord(
        peer_id, "192.0.2.7", 6001, "napster-p2p/1.0", 2, 42, 1000.0, 1000.0, SERVER
    )
    assert store.peer(peer_id).address == PeerAddress("192.0.2.7", 6001)
    assert store.peer_files(peer_id) == files
    assert store.file_count(peer_id) == 2
    assert [record.peer_id for record in store.peers()] == [peer_id, other]
    assert store.peer(9999) is None
    assert store.file_count(9999) == 0
    assert store.peer_files(9999) == []


def test_peer_ids_are_not_reused_after_a_peer_leaves(store):
    first = join(store, 1, [])
    store.remove_peer(first)
    assert join(store, 2, []) != first


def test_the_same_hash_and_name_twice_is_stored_once_but_other_names_are_kept(store):
    peer_id = join(
        store,
        1,
        [info("a.mp4", "x"), info("a.mp4", "x"), info("copy of a.mp4", "x"), info("b", "y")],
    )
    assert store.file_count(peer_id) == 3
    assert sorted(f.name for f in store.peer_files(peer_id)) == ["a.mp4", "b", "copy of a.mp4"]
    assert store.counters() == StoreCounters(peers=1, files=3, bytes=300)


def test_touch_updates_last_seen_only(store):
    peer_id = join(store, 1, [], now=10.0)
    other = join(store, 2, [], now=10.0)
    store.touch(peer_id, now=25.5)
    record = store.peer(peer_id)
    assert (record.joined_at, record.last_seen) == (10.0, 25.5)
    store.touch(12345, now=30.0)  # an unknown peer is ignored
    store.touch_many({peer_id: 40.0, other: 41.0, 777: 1.0})
    assert [(r.peer_id, r.last_seen) for r in store.peers()] == [(peer_id, 40.0), (other, 41.0)]


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
    assert store.replace_files(peer_id, [info("kept.mp4", size=9)]) == 1  # a new size
    assert store.peer_files(peer_id) == [info("kept.mp4", size=9)]
    assert store.replace_files(peer_id, []) == 0
    assert store.counters() == StoreCounters(peers=2, files=0, bytes=0)


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
    # Removing first: a rename is one update.
    assert store.update_files(peer_id, add=[info("d.mp4", "B")], remove=[digest("B")]) == 2
    assert sorted(f.name for f in store.peer_files(peer_id)) == ["c.mp4", "d.mp4"]


def test_changing_files_of_an_unknown_peer_raises_key_error(store):
    with pytest.raises(KeyError):
        store.replace_files(77, [info("a")])
    with pytest.raises(KeyError):
        store.update_files(77, [info("a")], [])
    assert store.counters() == StoreCounters(0, 0, 0)


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
    assert len(store.search("so", exclude_peer=searcher)) == 1
    assert store.peer(staying).files == 2
    store.remove_peer(leaving)  # a second time is harmless
    while store.upkeep(1.0):
        pass
    assert not store.upkeep_due


def test_a_peer_that_rejoins_with_a_new_identity_is_listed_with_the_new_one(store):
    """A peer restarted with a new certificate JOINs again at its address before the server
    noticed its old connection drop: downloaders must pin the new fingerprint."""
    old, new = "a" * 64, "b" * 64
    film = info("film.mkv")
    store.add_peer("10.0.0.1", 6699, "test/1", [film], fingerprint=old)
    store.add_peer("10.0.0.1", 6699, "test/1", [film], fingerprint=new)
    for results in (store.search("film"), store.sources(film.hash)):
        assert [h.fingerprint for h in results[0].peers] == [new]
    page = store.browse("10.0.0.1", 6699)
    assert [h.fingerprint for h in page.results[0].peers] == [new]


def test_the_new_identity_counts_for_files_only_the_old_session_lists_yet(store):
    """The new session's JOIN arrives in steps (or its files in later UPDATEs): a file only
    the old session lists is still reached at the one address, so with the new fingerprint."""
    old, new = "a" * 64, "b" * 64
    film, doc = info("film.mkv"), info("notes.txt")
    store.add_peer("10.0.0.1", 6699, "test/1", [film, doc], fingerprint=old)
    store.add_peer("10.0.0.1", 6699, "test/1", [film], fingerprint=new)
    for results in (store.search("notes"), store.sources(doc.hash)):
        assert [h.fingerprint for h in results[0].peers] == [new]


def test_a_restarted_peer_is_not_offered_its_own_old_session_as_a_source(store):
    film = info("film.mkv")
    store.add_peer("10.0.0.1", 6699, "test/1", [film], fingerprint="a" * 64)
    me = store.add_peer("10.0.0.1", 6699, "test/1", [], fingerprint="b" * 64)
    assert store.search("film", exclude_peer=me) == []
    assert store.sources(film.hash, exclude_peer=me) == []
    other = store.add_peer("10.0.0.2", 6699, "test/1", [film], fingerprint="c" * 64)
    assert [str(h) for h in store.sources(film.hash, exclude_peer=me)[0].peers] == ["10.0.0.2:6699"]
    assert other


def test_counters_and_huge_sizes(store):
    assert store.counters() == StoreCounters(0, 0, 0)
    join(store, 1, [info("a", size=2**40), info("b", size=1)])
    join(store, 2, [info("a", size=2**40)])
    assert store.counters() == StoreCounters(peers=2, files=3, bytes=2 * 2**40 + 1)
    peer_id = join(store, 3, [info("c", size=2**63 - 1), info("d", size=2**63 - 1)])
    assert store.peer(peer_id).bytes == 2**63 - 1  # a peer's total is clamped to 64 bits
    assert store.peer_files(peer_id)[0].size == 2**63 - 1


# ---------------------------------------------------------------- limits


def test_a_peer_over_its_limit_is_refused_and_nothing_changes(make_store):
    store = make_store(max_files_per_peer=3)
    with pytest.raises(IndexLimitError) as caught:
        join(store, 1, [info(f"f{n}") for n in range(4)])
    assert caught.value.limit == 3
    assert caught.value.code == ErrorCode.TOO_LARGE
    assert store.peers() == []
    with pytest.raises(IndexLimitError):
        store.check_file_count([info(f"f{n}") for n in range(4)])
    peer_id = join(store, 1, [info("a", "A"), info("b", "B")])
    with pytest.raises(IndexLimitError):
        store.replace_files(peer_id, [info(f"g{n}") for n in range(4)])
    with pytest.raises(IndexLimitError):
        store.update_files(peer_id, [info("c"), info("d"), info("e")], [digest("A")])
    assert sorted(f.name for f in store.peer_files(peer_id)) == ["a", "b"]
    assert store.counters() == StoreCounters(peers=1, files=2, bytes=200)


def test_the_index_and_one_address_are_bounded(make_store):
    store = make_store(max_files=10, max_files_per_address=6)
    first = store.add_peer("10.0.0.1", 1, "t", [info(f"a{n}") for n in range(4)])
    with pytest.raises(CapacityExceeded) as caught:
        store.check_file_count([info(f"b{n}") for n in range(3)], "10.0.0.1")
    assert caught.value.code == ErrorCode.LIMIT
    assert caught.value.limit == 6
    with pytest.raises(CapacityExceeded):
        store.update_files(first, [info(f"c{n}") for n in range(3)], [])
    store.add_peer("10.0.0.2", 1, "t", [info(f"d{n}") for n in range(6)])
    with pytest.raises(CapacityExceeded) as caught:
        store.add_peer("10.0.0.3", 1, "t", [info("e")])
    assert caught.value.limit == 10
    assert store.counters().files == 10
    assert store.replace_files(first, [info("a0")]) == 1  # shrinking is always allowed


# ---------------------------------------------------------------- search


@pytest.fixture
def library(store):
    """Three sharing peers (ids 1-3) and an asker who shares nothing."""
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
    store.asker = join(store, 4, [])
    return store


def test_every_term_must_occur_in_the_name_in_any_case(library):
    asker = library.asker
    assert names(library.search("aula mp4", exclude_peer=asker)) == ["Aula de Python.mp4"]
    assert names(library.search("mp4 aula", exclude_peer=asker)) == ["Aula de Python.mp4"]
    assert library.search("aula avi", exclude_peer=asker) == []
    assert names(library.search("AULA.MKV", exclude_peer=asker)) == ["aula.mkv"]
    assert names(library.search("pYtHoN", exclude_peer=asker)) == ["Aula de Python.mp4"]


def test_terms_of_one_or_two_characters_work(library):
    asker = library.asker
    assert names(library.search("de", exclude_peer=asker)) == ["Aula de Python.mp4"]
    assert names(library.search("DE mp4", exclude_peer=asker)) == ["Aula de Python.mp4"]
    assert names(library.search("(2", exclude_peer=asker)) == ["holiday (2019) *final*.avi"]
    assert sorted(names(library.search("v", exclude_peer=asker))) == [
        "aula.mkv",
        "holiday (2019) *final*.avi",
    ]
    assert library.search("zq", exclude_peer=asker) == []
    assert library.search("aula zq", exclude_peer=asker) == []


def test_unicode_names_match_in_any_case_normal_form_and_accent(library):
    asker = library.asker
    for query in ("açã", "AÇÃ", "Ação.MP4", unicodedata.normalize("NFD", "AÇÃO"), "acao", "ACA"):
        assert names(library.search(query, exclude_peer=asker)) == ["Ação.mp4"], query
    assert sorted(names(library.search("ç", exclude_peer=asker))) == ["Ação.mp4", "lecture.mp4"]


FINAL = "Ação 🎬 aula final — versão 2.mp4"


@pytest.mark.parametrize(
    "query", ["acao", "ação", "AÇÃO", "Acao VERSAO", "versão 2", "🎬", "— 2.MP4", FINAL.upper()]
)
def test_accents_and_case_are_ignored_on_both_sides(store, query):
    join(store, 1, [info(FINAL), info("acaso.txt"), info("versa.mp4")])
    assert names(store.search(query)) == [FINAL]
    join(store, 2, [info("STRASSE.mkv"), info("ΣΟΦΙΑ.mkv")])
    assert names(store.search("straße")) == ["STRASSE.mkv"]
    assert names(store.search("σοφια")) == ["ΣΟΦΙΑ.mkv"]


def test_queries_without_terms_find_nothing(library):
    assert library.search("") == []
    assert library.search("   \t ") == []
    assert library.search("aula", limit=0) == []
    assert library.search("\N{COMBINING ACUTE ACCENT}") == []
    assert library.search("ab\x01") == []


def test_results_group_by_hash_and_name_and_list_the_peers_of_the_hash(library):
    results = library.search("mp4", exclude_peer=library.asker)
    by_name = {result.name: result for result in results}
    assert sorted(by_name) == ["Aula de Python.mp4", "Ação.mp4", "lecture.mp4"]
    assert by_name["Aula de Python.mp4"].peers == (addr(1), addr(2))
    assert by_name["lecture.mp4"].peers == (addr(1), addr(2))
    assert by_name["lecture.mp4"].hash == digest("python")
    assert by_name["Ação.mp4"].peers == (addr(1),)


def test_the_asker_is_left_out_and_results_only_it_holds_are_dropped(library):
    first = library.peers()[0].peer_id
    results = {r.name: r for r in library.search("mp4", exclude_peer=first)}
    assert sorted(results) == ["Aula de Python.mp4", "lecture.mp4"]
    assert results["Aula de Python.mp4"].peers == (addr(2),)
    assert len(library.search("mp4")) == 3


def test_peers_are_listed_in_peer_id_order(store):
    ids = [join(store, port, [info("shared.bin", "same")]) for port in (9, 3, 7)]
    asker = join(store, 1, [])
    assert ids == sorted(ids)
    assert store.search("shared", exclude_peer=asker)[0].peers == (addr(9), addr(3), addr(7))


def test_one_address_is_listed_once_while_it_has_two_peer_ids(store):
    join(store, 5, [info("clip", "c")])
    join(store, 5, [info("clip", "c")])  # a JOIN on a new connection before the old dropped
    assert store.search("clip")[0].peers == (addr(5),)


def test_exact_name_ranks_first_then_more_peers_then_name(store):
    join(store, 1, [info("clip.mp4 extended", "e"), info("b clip.mp4", "b")])
    join(store, 2, [info("clip.mp4 extended", "e"), info("a clip.mp4", "a")])
    join(store, 3, [info("clip.mp4 extended", "e"), info("CLIP.MP4", "exact")])
    asker = join(store, 4, [])
    assert names(store.search("  clip.mp4 ", exclude_peer=asker)) == [
        "CLIP.MP4",
        "clip.mp4 extended",
        "a clip.mp4",
        "b clip.mp4",
    ]


def test_limit_caps_the_results_and_more_says_so(store):
    join(store, 1, [info(f"track {n:02}.flac") for n in range(30)])
    asker = join(store, 2, [info("track own.flac")])
    assert names(store.search("track", limit=7, exclude_peer=asker)) == [
        f"track {n:02}.flac" for n in range(7)
    ]
    assert store.search_page("track", limit=7, exclude_peer=asker).more
    page = store.search_page("track", limit=30, exclude_peer=asker)
    assert len(page.results) == 30
    assert not page.more  # the asker's own file does not count
    assert store.search_page("track", limit=30).more
    assert store.search_page("nothing", limit=1) == SearchPage([], False)
    assert not store.search_page("tr ac", limit=30, exclude_peer=asker).more


def test_the_asker_s_own_files_do_not_crowd_out_the_others(store):
    asker = join(store, 1, [info(f"mix {n:03}.mp3") for n in range(300)])
    join(store, 2, [info("mix zzz.mp3")])
    assert names(store.search("mix", limit=1, exclude_peer=asker)) == ["mix zzz.mp3"]


def test_special_characters_match_literally(store):
    join(
        store,
        1,
        [
            info("50%_off.pdf"),
            info("50x-off.pdf"),
            info("star*.png"),
            info('quote "me".txt'),
            info("Band (live).mp3"),
            info("back\\slash.txt"),
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
    assert found('"me"') == ['quote "me".txt']
    assert found("(live)") == ["Band (live).mp3"]
    assert found("\\") == ["back\\slash.txt"]
    assert found("k\\s") == ["back\\slash.txt"]
    assert found("[draft]") == ["[draft].doc"]
    assert found("AND") == ["Band (live).mp3"]
    assert found("\x00") == []


def test_search_files_lists_everything_by_name_or_matches_counting_every_peer(library):
    listed = library.search_files("")
    assert [f.name for f in listed] == [
        "50%_off sale.pdf",
        "Ação.mp4",
        "Aula de Python.mp4",
        "aula.mkv",
        "holiday (2019) *final*.avi",
        "lecture.mp4",
        'say "hi".txt',
    ]
    assert listed[2] == IndexedFile("Aula de Python.mp4", 100, digest("python"), 2)
    assert [f.name for f in library.search_files("", limit=2)] == ["50%_off sale.pdf", "Ação.mp4"]
    assert [(f.name, f.peers) for f in library.search_files("aula")] == [
        ("Aula de Python.mp4", 2),
        ("aula.mkv", 1),
    ]
    assert library.search_files("nothing like this") == []
    assert library.search_files("aula", limit=0) == []
    assert library.search_files("\x00") == []


def test_a_false_size_is_another_file_and_never_hides_the_real_one(store):
    join(store, 1, [FileInfo("aula.mp4", 5, "a" * 64)])
    join(store, 2, [FileInfo("aula.mp4", 1_000_000, "a" * 64)])
    results = {(r.size, tuple(str(peer) for peer in r.peers)) for r in store.search("aula")}
    assert results == {(5, ("10.0.0.1:1",)), (1_000_000, ("10.0.0.1:2",))}


def test_sources_lists_who_holds_a_file_by_hash_and_size(store):
    real = FileInfo("aula.mp4", 1_000_000, "b" * 64)
    renamed = FileInfo("lecture.mp4", 1_000_000, "b" * 64)
    lie = FileInfo("aula.mp4", 5, "b" * 64)
    one = join(store, 1, [real])
    join(store, 2, [renamed])
    join(store, 3, [lie])
    both = ("10.0.0.1:1", "10.0.0.1:2")
    assert {(r.name, tuple(str(x) for x in r.peers)) for r in store.sources("b" * 64, 10**6)} == {
        ("aula.mp4", both),
        ("lecture.mp4", both),
    }
    assert {r.size for r in store.sources("b" * 64)} == {5, 1_000_000}
    assert {str(x) for r in store.sources("b" * 64, 10**6, one) for x in r.peers} == {"10.0.0.1:2"}
    assert store.sources("c" * 64) == []


def test_browse_lists_everything_one_online_peer_shares(store):
    join(store, 1, [FileInfo("b.mp4", 2, "d" * 64), FileInfo("A.mp4", 1, "e" * 64)])
    join(store, 2, [FileInfo("other.mp4", 3, "f" * 64)])
    page = store.browse("::ffff:10.0.0.1", 1)
    assert [(r.name, [str(x) for x in r.peers]) for r in page.results] == [
        ("A.mp4", ["10.0.0.1:1"]),
        ("b.mp4", ["10.0.0.1:1"]),
    ]
    assert not page.more
    assert store.browse("10.0.0.1", 1, limit=1).more
    assert store.browse("10.0.0.9", 1).results == []


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
    store.ban("198.51.100.1", "flood again")
    assert ("198.51.100.1", "flood again") in [(a, r) for a, r, _ in store.bans()]
    assert len(store.bans()) == 2
    store.unban("198.51.100.1")
    store.unban("198.51.100.1")  # unbanning twice is harmless
    assert [a for a, _, _ in store.bans()] == ["2001:db8::1"]
    store.ban("::ffff:192.0.2.5")
    assert store.is_banned("192.0.2.5")


# ---------------------------------------------------------------- against a model


ALPHABET = "aAbB çÇãÃ%_*\"'(.1\\"
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


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    operations=st.lists(operation_strategy, min_size=1, max_size=8),
    query=st.text(alphabet=ALPHABET + "  ", max_size=6),
    limit=st.integers(1, 8),
    asker=st.integers(0, 6),
)
def test_search_agrees_with_a_model(make_store, operations, query, limit, asker):
    store = make_store()
    try:
        shares: dict[int, set[tuple[str, str]]] = {}
        joined: list[int] = []
        for operation in operations:
            kind, *args = operation
            if kind == "join":
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
        page = store.search_page(query, limit=limit, exclude_peer=exclude)
        ports = {peer_id: 1000 + index for index, peer_id in enumerate(joined)}
        assert [(r.name, r.hash, r.peers) for r in page.results] == [
            (name, hash_, tuple(PeerAddress("10.0.0.1", ports[p]) for p in peers))
            for name, hash_, peers in expected
        ]
        assert page.more == (len(model_search(shares, query, 10_000, exclude)) > limit)
        assert store.counters().files == sum(len(files) for files in shares.values())
    finally:
        store.close()
