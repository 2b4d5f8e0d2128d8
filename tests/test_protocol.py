"""The wire protocol: exact bytes, limits at the edge, hostile input."""

from __future__ import annotations

import contextlib
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.network import protocol as p

H1 = "a" * 64
H2 = "0123456789abcdef" * 4


def test_join_bytes_match_protocol_example():
    msg = p.Join(id=1, port=6001, files=(p.FileInfo("aula.mp4", 1073741824, H1),))
    assert p.encode(msg) == (
        b'{"op":"JOIN","id":1,"port":6001,"files":[{"name":"aula.mp4","size":1073741824,'
        b'"hash":"' + H1.encode() + b'"}],"agent":"napster-p2p/1.0"}\n'
    )


@pytest.mark.parametrize(
    "message, expected",
    [
        (
            p.JoinOk(id=1, peer="127.0.0.1:6001", files=2),
            b'{"op":"JOIN_OK","id":1,"peer":"127.0.0.1:6001","files":2}',
        ),
        (
            p.Search(id=2, query="aula mp4", limit=100),
            b'{"op":"SEARCH","id":2,"query":"aula mp4","limit":100}',
        ),
        (
            p.SearchOk(
                id=2, results=(p.SearchResult("a.mp4", 5, H1, (p.PeerAddress("127.0.0.1", 6001),)),)
            ),
            b'{"op":"SEARCH_OK","id":2,"results":[{"name":"a.mp4","size":5,"hash":"'
            + H1.encode()
            + b'","peers":[{"host":"127.0.0.1","port":6001}]}]}',
        ),
        (
            p.Update(id=3, add=(p.FileInfo("b.mkv", 0, H2),), remove=(H1,)),
            b'{"op":"UPDATE","id":3,"add":[{"name":"b.mkv","size":0,"hash":"'
            + H2.encode()
            + b'"}],"remove":["'
            + H1.encode()
            + b'"]}',
        ),
        (p.UpdateOk(id=3, files=3), b'{"op":"UPDATE_OK","id":3,"files":3}'),
        (p.Ping(id=4), b'{"op":"PING","id":4}'),
        (p.Pong(id=4), b'{"op":"PONG","id":4}'),
        (p.Leave(id=5), b'{"op":"LEAVE","id":5}'),
        (p.LeaveOk(id=5), b'{"op":"LEAVE_OK","id":5}'),
        (p.Pieces(id=1, hash=H1), b'{"op":"PIECES","id":1,"hash":"' + H1.encode() + b'"}'),
        (
            p.PiecesOk(id=1, hash=H1, name="aula.mp4", size=5, pieces=(H2,)),
            b'{"op":"PIECES_OK","id":1,"hash":"' + H1.encode() + b'","name":"aula.mp4","size":5,'
            b'"piece_size":4194304,"pieces":["' + H2.encode() + b'"]}',
        ),
        (
            p.Download(id=2, hash=H1, offset=0, length=10),
            b'{"op":"DOWNLOAD","id":2,"hash":"' + H1.encode() + b'","offset":0,"length":10}',
        ),
        (
            p.Download(id=2, hash=H1, offset=7),
            b'{"op":"DOWNLOAD","id":2,"hash":"' + H1.encode() + b'","offset":7}',
        ),
        (
            p.DownloadOk(id=2, hash=H1, offset=0, length=10),
            b'{"op":"DOWNLOAD_OK","id":2,"hash":"' + H1.encode() + b'","offset":0,"length":10}',
        ),
        (
            p.Error(id=7, code=p.ErrorCode.NOT_FOUND, message="no shared file has that hash"),
            b'{"op":"ERROR","id":7,"code":"NOT_FOUND","message":"no shared file has that hash"}',
        ),
        (
            p.Error(code=p.ErrorCode.BUSY, message="busy", retry_after=5),
            b'{"op":"ERROR","code":"BUSY","message":"busy","retry_after":5}',
        ),
    ],
)
def test_exact_bytes_and_round_trip(message, expected):
    assert p.encode(message) == expected + b"\n"
    assert p.decode_line(expected) == message


def test_sizes_past_4_gib_and_2_pow_63_minus_1_are_integers():
    big = p.FileInfo("huge.mkv", 2**63 - 1, H1)
    line = p.encode(p.Join(id=1, port=1, files=(big,)))
    assert b'"size":9223372036854775807' in line
    assert p.decode_line(line).files[0].size == 2**63 - 1


def _code(line: bytes, bulk=p.BULK_OPS) -> p.ErrorCode:
    with pytest.raises(p.ProtocolError) as info:
        p.decode_line(line, bulk)
    return info.value.code


@pytest.mark.parametrize(
    "line",
    [
        b"not json",
        b"[1,2,3]",
        b'"just a string"',
        b'{"op":"FROB","id":1}',
        b'{"id":1}',
        b'{"op":7}',
        b'{"op":"SEARCH","id":1}',
        b'{"op":"SEARCH","id":1,"query":""}',
        b'{"op":"SEARCH","id":1,"query":7}',
        b'{"op":"SEARCH","id":1,"query":"a","limit":0}',
        b'{"op":"SEARCH","id":1,"query":"a","limit":501}',
        b'{"op":"SEARCH","id":1,"query":"a","limit":true}',
        b'{"op":"SEARCH","id":"1","query":"a"}',
        b'{"op":"SEARCH","id":-1,"query":"a"}',
        b'{"op":"JOIN","id":1,"port":6001,"files":{}}',
        b'{"op":"JOIN","id":1,"port":0,"files":[]}',
        b'{"op":"JOIN","id":1,"port":65536,"files":[]}',
        b'{"op":"JOIN","id":1,"port":6001.0,"files":[]}',
        b'{"op":"JOIN","id":1,"port":6001,"files":[{"name":"a","size":-1,"hash":"'
        + H1.encode()
        + b'"}]}',
        b'{"op":"JOIN","id":1,"port":6001,"files":[{"name":"a","size":"5","hash":"'
        + H1.encode()
        + b'"}]}',
        b'{"op":"JOIN","id":1,"port":6001,"files":[{"name":"a","size":9223372036854775808,"hash":"'
        + H1.encode()
        + b'"}]}',
        b'{"op":"JOIN","id":1,"port":6001,"files":[{"name":"a","size":1,"hash":"'
        + H1.upper().encode()
        + b'"}]}',
        b'{"op":"JOIN","id":1,"port":6001,"files":[{"name":"a","size":1,"hash":"abc"}]}',
        b'{"op":"JOIN","id":1,"port":6001,"files":[{"name":"a","size":1}]}',
        b'{"op":"JOIN","id":1,"port":6001,"files":[7]}',
        b'{"op":"DOWNLOAD","id":1,"hash":"' + H1.encode() + b'","offset":-1}',
        b'{"op":"DOWNLOAD","id":1,"hash":"' + H1.encode() + b'","offset":0,"length":-5}',
        b'{"op":"SEARCH","id":1,"query":"a","limit":NaN}',
        b'\xff\xfe{"op":"PING"}',
        b"[" * 5000 + b"]" * 5000,
    ],
)
def test_malformed_requests_are_bad_request(line):
    assert _code(line) is p.ErrorCode.BAD_REQUEST


@pytest.mark.parametrize(
    "name",
    ["a/b", "a\\b", "..", ".", "", "a\x00b", "tab\tname", "bell\x07", "x" * 256, "é" * 128, "\x7f"],
)
def test_bad_names_are_rejected(name):
    entry = {"name": name, "size": 1, "hash": H1}
    line = json.dumps({"op": "JOIN", "id": 1, "port": 6001, "files": [entry]}).encode()
    assert _code(line) is p.ErrorCode.BAD_REQUEST


@pytest.mark.parametrize(
    "name", ["x" * 255, "é" * 127 + "x", "..a", "a..", "Ação.mp4", "日本語.mkv"]
)
def test_good_names_at_the_edge_are_accepted(name):
    line = p.encode(p.Join(id=1, port=6001, files=(p.FileInfo(name, 1, H1),)))
    assert p.decode_line(line).files[0].name == name


def test_error_keeps_the_request_id_when_readable():
    with pytest.raises(p.ProtocolError) as info:
        p.decode_line(b'{"op":"SEARCH","id":42,"query":7}')
    assert info.value.request_id == 42
    assert p.encode(info.value.to_message()).startswith(
        b'{"op":"ERROR","id":42,"code":"BAD_REQUEST"'
    )


def test_error_codes_say_whether_the_connection_closes():
    closing = {c for c in p.ErrorCode if c.closes_connection}
    assert closing == {p.ErrorCode.BAD_REQUEST, p.ErrorCode.TOO_LARGE, p.ErrorCode.LIMIT}


def test_unknown_fields_are_ignored():
    msg = p.decode_line(b'{"op":"PING","id":3,"future":{"x":[1,2]}}')
    assert msg == p.Ping(id=3)


# ------------------------------------------------------------------ limits


def _search_line(total: int) -> bytes:
    """A SEARCH line of exactly ``total`` bytes (without newline) padded by an unknown field."""
    base = b'{"op":"SEARCH","id":1,"query":"a","pad":""}'
    return base[:-2] + b"x" * (total - len(base)) + b'"}'


def test_search_line_of_exactly_64_kib_passes_and_one_more_byte_fails():
    reader = p.LineReader(p.SERVER_BULK_OPS)
    assert reader.feed(_search_line(p.MAX_LINE) + b"\n") == [p.Search(id=1, query="a")]
    with pytest.raises(p.ProtocolError) as info:
        p.LineReader(p.SERVER_BULK_OPS).feed(_search_line(p.MAX_LINE + 1) + b"\n")
    assert info.value.code is p.ErrorCode.TOO_LARGE


def test_65_kib_search_line_is_refused_before_it_is_buffered():
    reader = p.LineReader(p.SERVER_BULK_OPS)
    with pytest.raises(p.ProtocolError) as info:
        reader.feed(_search_line(65 * 1024))  # no newline yet
    assert info.value.code is p.ErrorCode.TOO_LARGE
    assert reader.buffered <= p.MAX_LINE


def _join_line(total: int) -> bytes:
    base = b'{"op":"JOIN","id":1,"port":6001,"files":[],"pad":""}'
    return base[:-2] + b"x" * (total - len(base)) + b'"}'


def test_join_line_of_8_mib_passes_and_9_mib_is_refused_while_arriving():
    reader = p.LineReader(p.SERVER_BULK_OPS)
    line = _join_line(p.MAX_BULK_LINE) + b"\n"
    messages = []
    for start in range(0, len(line), 1 << 20):
        messages += reader.feed(line[start : start + (1 << 20)])
    assert messages == [p.Join(id=1, port=6001, agent="")]

    reader = p.LineReader(p.SERVER_BULK_OPS)
    big = _join_line(9 * 1024 * 1024)
    with pytest.raises(p.ProtocolError) as info:
        for start in range(0, len(big), 1 << 20):
            reader.feed(big[start : start + (1 << 20)])
    assert info.value.code is p.ErrorCode.TOO_LARGE
    assert reader.buffered <= p.MAX_BULK_LINE


def test_bulk_allowance_depends_on_the_side():
    # A downloader does not accept an 8 MiB JOIN, only PIECES_OK.
    reader = p.LineReader(p.DOWNLOADER_BULK_OPS)
    with pytest.raises(p.ProtocolError):
        reader.feed(_join_line(100_000))


def test_a_disguised_op_cannot_borrow_the_bulk_limit():
    # The peek sees "op":"JOIN" inside the padding, but the real op is SEARCH.
    line = b'{"pad":"\\"op\\":\\"JOIN\\"","op":"SEARCH","query":"a","x":"' + b"y" * 70_000 + b'"}\n'
    with pytest.raises(p.ProtocolError) as info:
        p.LineReader(p.SERVER_BULK_OPS).feed(line)
    assert info.value.code is p.ErrorCode.TOO_LARGE


def _files(n: int) -> list[dict]:
    return [{"name": f"f{i}", "size": i, "hash": H1} for i in range(n)]


def test_join_with_10000_files_passes_and_10001_is_too_large():
    ok = json.dumps({"op": "JOIN", "id": 1, "port": 6001, "files": _files(10_000)}).encode()
    assert len(p.decode_line(ok).files) == 10_000
    over = json.dumps({"op": "JOIN", "id": 1, "port": 6001, "files": _files(10_001)}).encode()
    assert _code(over) is p.ErrorCode.TOO_LARGE


def test_update_over_10000_entries_is_too_large():
    over = json.dumps({"op": "UPDATE", "id": 1, "add": _files(5_000), "remove": [H1] * 5_001})
    assert _code(over.encode()) is p.ErrorCode.TOO_LARGE


def test_query_of_256_characters_passes_and_257_fails():
    assert p.decode_line(p.encode(p.Search(id=1, query="q" * 256))).query == "q" * 256
    assert (
        _code(json.dumps({"op": "SEARCH", "query": "q" * 257}).encode()) is p.ErrorCode.BAD_REQUEST
    )


def test_reader_handles_one_byte_at_a_time_and_many_lines_per_chunk():
    data = p.encode(p.Ping(id=1)) + p.encode(p.Search(id=2, query="aula")) + p.encode(p.Leave())
    reader = p.LineReader()
    got = []
    for byte in data:
        got += reader.feed(bytes([byte]))
    assert got == [p.Ping(id=1), p.Search(id=2, query="aula"), p.Leave()]
    assert p.LineReader().feed(data) == got


def test_reader_keeps_messages_decoded_before_a_bad_line():
    reader = p.LineReader()
    with pytest.raises(p.ProtocolError) as info:
        reader.feed(p.encode(p.Ping(id=1)) + b"garbage\n" + p.encode(p.Ping(id=2)))
    assert info.value.preceding == [p.Ping(id=1)]
    with pytest.raises(p.ProtocolError):
        reader.feed(p.encode(p.Ping(id=3)))  # a failed reader stays failed


def test_take_buffer_hands_over_raw_bytes_after_a_line():
    reader = p.LineReader()
    assert reader.feed(p.encode(p.Pong(id=1)) + b"\x00raw") == [p.Pong(id=1)]
    assert reader.take_buffer() == b"\x00raw"
    assert reader.buffered == 0


def test_printable_escapes_what_could_fool_a_reader():
    assert p.printable("a\x1b[31mred") == "a\\x1b[31mred"
    assert p.printable("evil\u202egpj.exe") == "evil\\u202egpj.exe"
    assert p.printable("zero\u200bwidth") == "zero\\u200bwidth"
    assert p.printable("Ação.mp4") == "Ação.mp4"
    assert p.printable("x" * 400).startswith("x" * 300 + "…")


# --------------------------------------------------------------- hypothesis

names = st.text(
    st.characters(blacklist_categories=("Cc", "Cs"), blacklist_characters="/\\"),
    min_size=1,
    max_size=60,
).filter(lambda s: s not in (".", ".."))
hashes = st.text("0123456789abcdef", min_size=64, max_size=64)
sizes = st.integers(0, p.MAX_INT)
ids = st.none() | st.integers(0, p.MAX_INT)
files = st.builds(p.FileInfo, names, sizes, hashes)
peers = st.builds(
    p.PeerAddress, st.text(max_size=40), st.integers(1, 65535), fingerprint=st.none() | hashes
)

messages = st.one_of(
    st.builds(
        p.Join,
        port=st.integers(1, 65535),
        files=st.lists(files, max_size=5).map(tuple),
        agent=st.text(max_size=20),
        heartbeat=st.booleans(),
        id=ids,
    ),
    st.builds(p.JoinOk, peer=st.text(max_size=40), files=sizes, heartbeat=st.booleans(), id=ids),
    st.builds(p.Search, query=st.text(min_size=1, max_size=256), limit=st.integers(1, 500), id=ids),
    st.builds(
        p.SearchOk,
        results=st.lists(
            st.builds(p.SearchResult, names, sizes, hashes, st.lists(peers, max_size=3).map(tuple)),
            max_size=4,
        ).map(tuple),
        more=st.booleans(),
        id=ids,
    ),
    st.builds(
        p.Update,
        add=st.lists(files, max_size=4).map(tuple),
        remove=st.lists(hashes, max_size=4).map(tuple),
        id=ids,
    ),
    st.builds(p.UpdateOk, files=sizes, id=ids),
    st.builds(p.Ping, id=ids),
    st.builds(p.Pong, id=ids),
    st.builds(p.Leave, id=ids),
    st.builds(p.LeaveOk, id=ids),
    st.builds(p.Pieces, hash=hashes, id=ids),
    st.builds(
        p.PiecesOk,
        hash=hashes,
        name=names,
        size=sizes,
        piece_size=st.integers(1, p.MAX_INT),
        pieces=st.lists(hashes, max_size=4).map(tuple),
        id=ids,
    ),
    st.builds(p.Download, hash=hashes, offset=sizes, length=st.none() | sizes, id=ids),
    st.builds(p.DownloadOk, hash=hashes, offset=sizes, length=sizes, id=ids),
    st.builds(
        p.Error,
        code=st.sampled_from(list(p.ErrorCode)),
        message=st.text(max_size=50),
        retry_after=st.none() | st.integers(0, 3600),
        id=ids,
    ),
)


@given(messages)
def test_encode_decode_round_trip(message):
    line = p.encode(message)
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    assert p.decode_line(line) == message


@given(st.lists(messages, min_size=1, max_size=5), st.data())
def test_any_split_of_valid_lines_gives_the_same_messages(batch, data):
    stream = b"".join(p.encode(m) for m in batch)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=8)))
    reader = p.LineReader(p.BULK_OPS)
    got = []
    start = 0
    for cut in [*cuts, len(stream)]:
        got += reader.feed(stream[start:cut])
        start = cut
    assert got == batch


@settings(max_examples=300)
@given(st.binary(max_size=2000), st.lists(st.integers(0, 2000), max_size=10))
def test_arbitrary_bytes_in_arbitrary_splits_raise_only_protocol_errors(blob, cuts):
    reader = p.LineReader(p.SERVER_BULK_OPS)
    start = 0
    try:
        for cut in [*sorted(c for c in cuts if c <= len(blob)), len(blob)]:
            for message in reader.feed(blob[start:cut]):
                assert isinstance(message, p.Message)
            start = cut
    except p.ProtocolError as exc:
        assert isinstance(exc.code, p.ErrorCode)


@settings(max_examples=200)
@given(
    st.recursive(
        st.none()
        | st.booleans()
        | st.integers()
        | st.floats(allow_nan=False)
        | st.text(max_size=10),
        lambda children: (
            st.lists(children, max_size=3)
            | st.dictionaries(st.text(max_size=8), children, max_size=3)
        ),
        max_leaves=10,
    ),
    st.sampled_from(sorted(p.MESSAGE_TYPES)),
)
def test_arbitrary_json_objects_raise_only_protocol_errors(value, op):
    obj = value if isinstance(value, dict) else {"value": value}
    obj = {**obj, "op": op}
    with contextlib.suppress(p.ProtocolError):
        p.decode_line(json.dumps(obj).encode())


search_results = st.lists(
    st.builds(p.SearchResult, names, sizes, hashes, st.lists(peers, max_size=3).map(tuple)),
    max_size=6,
)


@given(ids, search_results, st.integers(0, 2000), st.booleans())
def test_encode_search_ok_is_encode_of_the_results_that_fit(request_id, results, room, more):
    empty = len(p.encode(p.SearchOk(id=request_id, more=True)))
    line, kept = p.encode_search_ok(request_id, results, max_line=empty + room, more=more)
    trimmed = kept < len(results)
    assert line == p.encode(
        p.SearchOk(id=request_id, results=tuple(results[:kept]), more=more or trimmed)
    )
    assert len(line) <= empty + room
    if trimmed:  # the next one would not have fitted
        longer = p.encode(p.SearchOk(id=request_id, results=tuple(results[: kept + 1]), more=True))
        assert len(longer) > empty + room


# ------------------------------------------------------------------ lone surrogates

_S = "\\ud800"  # a JSON escape no UTF-8 text can hold


@pytest.mark.parametrize(
    "line",
    [
        '{"op":"JOIN","id":1,"port":6001,"files":[],"agent":"' + _S + '"}',
        '{"op":"JOIN","id":1,"port":6001,"files":[{"name":"a'
        + _S
        + '","size":1,"hash":"'
        + H1
        + '"}]}',
        '{"op":"SEARCH","id":1,"query":"' + _S + '"}',
        '{"op":"SEARCH","id":1,"query":"aula \\udfff mp4"}',
        '{"op":"PING","id":1,"future":"' + _S + '"}',
        '{"op":"PING","id":1,"' + _S + '":1}',
        '{"op":"PING","id":1,"future":[{"deep":["' + _S + '"]}]}',
        '{"op":"' + _S + '","id":1}',
        '{"op":"JOIN_OK","id":1,"peer":"' + _S + '","files":1}',
        '{"op":"ERROR","id":1,"code":"BUSY","message":"' + _S + '"}',
        '{"op":"SEARCH_OK","id":1,"results":[{"name":"a","size":1,"hash":"'
        + H1
        + '","peers":[{"host":"'
        + _S
        + '","port":1}]}]}',
        '{"op":"PIECES_OK","id":1,"hash":"'
        + H1
        + '","name":"\\uDC00.bin","size":1,"piece_size":4194304,"pieces":[]}',
        '{"op":"PING","id":1,"x":"\\\\\\ud800"}',  # an escaped backslash, then the escape
    ],
)
def test_a_lone_surrogate_in_any_string_of_any_op_is_bad_request(line):
    with pytest.raises(p.ProtocolError) as info:
        p.decode_line(line.encode())
    assert info.value.code is p.ErrorCode.BAD_REQUEST
    assert info.value.request_id == 1 or '"op":"\\' not in line


def test_surrogate_pairs_and_escaped_backslashes_are_fine():
    assert p.decode_line(b'{"op":"SEARCH","id":1,"query":"\\ud83c\\udfb5"}').query == "\U0001f3b5"
    assert p.decode_line(b'{"op":"SEARCH","id":1,"query":"\\\\ud800"}').query == "\\ud800"


def test_a_record_built_in_code_cannot_carry_a_lone_surrogate():
    with pytest.raises(p.ProtocolError):
        p.Search.parse({"op": "SEARCH", "query": "\ud800"})
    assert p.name_problem("a\udc00") is not None


def test_search_ok_sends_more_only_when_true_and_checks_its_type():
    assert p.encode(p.SearchOk(id=1)) == b'{"op":"SEARCH_OK","id":1,"results":[]}\n'
    line = p.encode(p.SearchOk(id=1, more=True))
    assert line == b'{"op":"SEARCH_OK","id":1,"results":[],"more":true}\n'
    assert p.decode_line(line) == p.SearchOk(id=1, more=True)
    assert p.decode_line(b'{"op":"SEARCH_OK","results":[],"more":false}') == p.SearchOk()
    with pytest.raises(p.ProtocolError) as error:
        p.decode_line(b'{"op":"SEARCH_OK","id":3,"results":[],"more":1}')
    assert error.value.code == p.ErrorCode.BAD_REQUEST


def test_a_holder_carries_its_certificate_fingerprint_when_the_server_gives_it():
    pinned = p.PeerAddress("10.0.0.7", 6699, fingerprint=H1)
    reply = p.SourcesOk(id=4, results=(p.SearchResult("a.mp4", 10, H1, (pinned,)),))
    line = p.encode(reply)
    assert b'"fingerprint":"' + H1.encode() + b'"' in line
    assert p.decode_line(line).results[0].peers[0].fingerprint == H1
    assert p.encode_search_ok(4, reply.results)[0] == p.encode(
        p.SearchOk(id=4, results=reply.results)
    )
    # An older server gives none: the holder has no fingerprint (and is fetched unpinned).
    bare = p.decode_line(
        b'{"op":"SOURCES_OK","id":4,"results":[{"name":"a","size":1,"hash":"'
        + H1.encode()
        + b'","peers":[{"host":"h","port":1}]}]}'
    )
    assert bare.results[0].peers[0].fingerprint is None
    # One address is one peer: the fingerprint does not make another address.
    assert pinned == p.PeerAddress("10.0.0.7", 6699)
    for wrong in ("AB" * 32, "ab" * 31, 5, "zz" * 32):
        with pytest.raises(p.ProtocolError) as error:
            p.PeerAddress.from_json({"host": "h", "port": 1, "fingerprint": wrong})
        assert "fingerprint" in error.value.message


def test_sources_round_trip_and_size_is_optional():
    ask = p.Sources(id=4, hash=H1, size=10)
    assert p.encode(ask) == ('{"op":"SOURCES","id":4,"hash":"' + H1 + '","size":10}\n').encode()
    assert p.decode_line(p.encode(ask)) == ask
    assert p.decode_line(p.encode(p.Sources(id=5, hash=H1))).size is None
    reply = p.SourcesOk(id=4, results=(p.SearchResult("a.mp4", 10, H1, (p.PeerAddress("h", 1),)),))
    assert p.decode_line(p.encode(reply)) == reply
    with pytest.raises(p.ProtocolError):
        p.decode_line(b'{"op":"SOURCES","id":1,"hash":"nothex"}')


@pytest.mark.parametrize(
    "message",
    [
        p.Join(id=1, port=6699, fingerprint="ab" * 32),
        p.Reachability(reachable=False),
        p.Push(id=3, host="10.0.0.7", port=6699, token="0f" * 16),
        p.PushOk(id=3),
        p.PushRequest(host="10.0.0.8", port=7000, token="0f" * 16),
        p.Pushed(token="0f" * 16),
    ],
)
def test_version_2_control_messages_round_trip(message):
    assert p.decode_line(p.encode(message).rstrip(b"\n")) == message


@pytest.mark.parametrize(
    "line",
    [
        b'{"op":"PUSH","id":1,"host":"h","port":1,"token":"XYZ"}',
        b'{"op":"PUSH","id":1,"host":"h","port":1,"token":"' + b"0F" * 16 + b'"}',
        b'{"op":"PUSHED","token":"' + b"0f" * 17 + b'"}',
        b'{"op":"REACHABILITY","reachable":"yes"}',
        b'{"op":"JOIN","id":1,"port":1,"files":[],"fingerprint":"abc"}',
        b'{"op":"JOIN","id":1,"port":1,"files":[],"heartbeat":1}',
        b'{"op":"JOIN_OK","id":1,"peer":"h:1","files":0,"heartbeat":"yes"}',
    ],
)
def test_bad_version_2_fields_are_bad_requests(line):
    with pytest.raises(p.ProtocolError) as caught:
        p.decode_line(line)
    assert caught.value.code is p.ErrorCode.BAD_REQUEST


def test_heartbeat_is_asked_in_join_and_granted_in_join_ok_and_left_out_when_false():
    ask = p.Join(id=1, port=6001, heartbeat=True)
    assert b',"heartbeat":true' in p.encode(ask)
    assert p.decode_line(p.encode(ask)) == ask
    grant = p.JoinOk(id=1, peer="127.0.0.1:6001", files=0, heartbeat=True)
    assert p.decode_line(p.encode(grant)) == grant
    # An older peer or server sends no such field: it means false, and false is not sent.
    assert b"heartbeat" not in p.encode(p.Join(id=1, port=6001)) + p.encode(
        p.JoinOk(id=1, peer="127.0.0.1:6001", files=0)
    )
    assert p.decode_line(b'{"op":"JOIN_OK","id":1,"peer":"h:1","files":0}').heartbeat is False
    # The heartbeat itself: a PONG without an id.
    assert p.decode_line(b'{"op":"PONG"}') == p.Pong()


def test_an_unreachable_holder_is_marked_in_results_and_a_reachable_one_is_not():
    holders = (
        p.PeerAddress("10.0.0.1", 6699, "ab" * 32),
        p.PeerAddress("10.0.0.2", 6699, "cd" * 32, reachable=False),
    )
    result = p.SearchResult("a.mkv", 10, "12" * 32, holders)
    line, count = p.encode_search_ok(4, [result])
    assert count == 1
    decoded = p.decode_line(line.rstrip(b"\n"))
    assert [peer.reachable for peer in decoded.results[0].peers] == [True, False]
    assert b'"reachable":false' in line and line.count(b"reachable") == 1
    assert line == p.encode(p.SearchOk(id=4, results=(result,)))
