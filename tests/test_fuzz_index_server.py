"""Stateful fuzzing of the index server over real loopback sockets.

Hypothesis drives a live ``IndexServer`` through random sequences of valid requests,
hostile requests, random bytes, split and truncated lines, pipelined batches and
abrupt closes. A plain-Python model predicts every reply; after each step the
index (peers, files, the FTS name index) must match the model and a well-behaved
peer must still be answered correctly.

CI runs a small budget. The long run (documented in docs/RELIABILITY.md)::

    NAPSTER_FUZZ_EXAMPLES=1000 .venv/bin/python -m pytest -q -p no:cacheprovider \
        tests/test_fuzz_index_server.py tests/test_fuzz_upload_server.py \
        --timeout 0 -o faulthandler_timeout=0
"""

from __future__ import annotations

import json
import os
import unicodedata
from dataclasses import dataclass, field

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test

from app.network import protocol as p
from server_app.index_server import IndexServer, ServerLimits
from server_app.index_store import SqliteIndexStore
from tests.wire_client import WireClient

CI_EXAMPLES = 10
CI_STEPS = 25


def fuzz_settings() -> settings:
    """A small budget in CI; NAPSTER_FUZZ_EXAMPLES asks for the long run."""
    examples = int(os.environ.get("NAPSTER_FUZZ_EXAMPLES", "0") or 0)
    return settings(
        max_examples=examples or CI_EXAMPLES,
        stateful_step_count=50 if examples else CI_STEPS,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )


MAX_FILES = 6
PORTS = [7001, 7002]
PROBE_PORT = 7999
HASHES = [f"{n:x}" * 64 for n in range(1, 5)]
#: A real hash always means one size; hostile sizes are tried by the invalid templates.
SIZE_OF = {h: 1000 * n + 7 for n, h in enumerate(HASHES)}
WORDS = ["aula", "Aula", "mp4", "video", "ß", "école"]

#: Names the protocol accepts that are hard on file systems, terminals and matchers.
AWKWARD_NAMES = [
    "aula 1.mp4",
    "AULA 2.MP4",
    "video.mkv",
    "CON",
    "con.txt",
    "COM1 ",
    "trailing. .",
    '<>:"|?*.txt',
    "e\u0301cole.mkv",
    "école.mkv",
    "evil\u202egpj.exe",
    "zero\u200bwidth.mp4",
    "straße ß.txt",
    "50% [1]*?.mp4",
    "quote\"d' OR 1=1 --.mp4",
    "x" * 255,
    "é" * 127 + "x",
]
names = st.sampled_from(AWKWARD_NAMES) | st.text(min_size=1, max_size=16).filter(
    lambda name: p.name_problem(name) is None
)
files = st.lists(
    st.builds(lambda h, n: (h, n), st.sampled_from(HASHES), names), max_size=MAX_FILES + 2
)
request_ids = st.none() | st.integers(0, p.MAX_INT)
queries = st.sampled_from([*WORDS, "aula mp4", "  ", "*", "[", '"', "\x00"]) | st.text(
    min_size=1, max_size=12
)


def wait_until(qtbot, predicate, timeout: float = 3.0) -> None:
    """Run the Qt loop until ``predicate`` holds (the server lives on this thread's loop)."""
    qtbot.waitUntil(predicate, timeout=int(timeout * 1000))


def fold(text: str) -> str:
    """The comparison form PROTOCOL.md's SEARCH asks: NFKD, no combining marks, casefolded."""
    for _ in range(4):
        folded = "".join(
            char for char in unicodedata.normalize("NFKD", text) if not unicodedata.combining(char)
        ).casefold()
        if folded == text:
            break
        text = folded
    return text


def file_entry(hash_: str, name: str) -> dict:
    return {"name": name, "size": SIZE_OF[hash_], "hash": hash_}


def line(obj: dict) -> bytes:
    return json.dumps(obj, ensure_ascii=False).encode() + b"\n"


def with_id(obj: dict, request_id: int | None) -> dict:
    return obj if request_id is None else {**obj, "id": request_id}


# Hostile lines: the raw bytes, the error code, and the id the error must echo.
_H = HASHES[0]
_LETTERS = "ab" * 32
INVALID_LINES: list[tuple[bytes, str, int | None]] = [
    (b"not json\n", "BAD_REQUEST", None),
    (b"\n", "BAD_REQUEST", None),
    (b"[1,2]\n", "BAD_REQUEST", None),
    (b'{"op":"HELLO","id":5}\n', "BAD_REQUEST", 5),
    (b'{"op":"JOIN_OK","id":5,"peer":"x","files":1}\n', "BAD_REQUEST", 5),
    (b'{"op":"PIECES","id":5,"hash":"' + _H.encode() + b'"}\n', "BAD_REQUEST", 5),
    (b'{"op":"PING","id":-1}\n', "BAD_REQUEST", None),
    (b'{"op":"PING","id":"1"}\n', "BAD_REQUEST", None),
    (b'{"op":"PING","id":true}\n', "BAD_REQUEST", None),
    (b'{"op":"JOIN","id":5,"port":0,"files":[]}\n', "BAD_REQUEST", 5),
    (b'{"op":"JOIN","id":5,"port":65536,"files":[]}\n', "BAD_REQUEST", 5),
    (b'{"op":"JOIN","id":5,"port":7001,"files":{}}\n', "BAD_REQUEST", 5),
    (b'{"op":"JOIN","id":5,"port":7001.0,"files":[]}\n', "BAD_REQUEST", 5),
    (b'{"op":"JOIN","id":5,"port":7001,"files":[],"agent":7}\n', "BAD_REQUEST", 5),
    (
        b'{"op":"JOIN","id":5,"port":7001,"files":[{"name":"../x","size":1,"hash":"'
        + _H.encode()
        + b'"}]}\n',
        "BAD_REQUEST",
        5,
    ),
    (
        b'{"op":"JOIN","id":5,"port":7001,"files":[{"name":"a","size":-1,"hash":"'
        + _H.encode()
        + b'"}]}\n',
        "BAD_REQUEST",
        5,
    ),
    (
        b'{"op":"JOIN","id":5,"port":7001,"files":[{"name":"a","size":9223372036854775808,'
        b'"hash":"' + _H.encode() + b'"}]}\n',
        "BAD_REQUEST",
        5,
    ),
    (
        b'{"op":"JOIN","id":5,"port":7001,"files":[{"name":"a","size":1,"hash":"'
        + _LETTERS.upper().encode()
        + b'"}]}\n',
        "BAD_REQUEST",
        5,
    ),
    (
        b'{"op":"JOIN","id":5,"port":7001,"files":[{"name":"a\\udcff","size":1,"hash":"'
        + _H.encode()
        + b'"}]}\n',
        "BAD_REQUEST",
        5,
    ),
    (b'{"op":"SEARCH","id":5,"query":""}\n', "BAD_REQUEST", 5),
    (b'{"op":"SEARCH","id":5,"query":"' + b"q" * 257 + b'"}\n', "BAD_REQUEST", 5),
    (b'{"op":"SEARCH","id":5,"query":"a","limit":0}\n', "BAD_REQUEST", 5),
    (b'{"op":"SEARCH","id":5,"query":"a","limit":501}\n', "BAD_REQUEST", 5),
    (b'{"op":"SEARCH","id":5,"query":["a"]}\n', "BAD_REQUEST", 5),
    (b'{"op":"UPDATE","id":5,"remove":["nothex"]}\n', "BAD_REQUEST", 5),
    (b'{"op":"UPDATE","id":5,"add":[{"name":"a","size":NaN,"hash":"x"}]}\n', "BAD_REQUEST", None),
    (b"[" * 100_000 + b"\n", "TOO_LARGE", None),
    (b"[" * 50_000 + b"]" * 50 + b"\n", "BAD_REQUEST", None),
    (b'{"op":"SEARCH","id":5,"query":"' + b"q" * (p.MAX_LINE + 10) + b'"}\n', "TOO_LARGE", None),
    (b'{"op":"PING","id":5}\xff\xfe\n', "BAD_REQUEST", None),
]


@dataclass
class Conn:
    """A test connection and what the model knows about it."""

    client: WireClient
    local_port: int
    port: int | None = None  # the JOIN port while joined
    files: dict[tuple[str, str], int] = field(default_factory=dict)  # (hash, name) -> size

    @property
    def joined(self) -> bool:
        return self.port is not None


@dataclass
class Expect:
    """What the server must answer to one request."""

    reply: dict | None = None  # an exact reply
    error: str | None = None  # or an ERROR with this code
    error_id: int | None = None
    search: dict | None = None  # or a SEARCH_OK: id and expected results
    closes: bool = False


class IndexServerMachine(RuleBasedStateMachine):
    """A live server, a model of it, some hostile clients and one well-behaved probe."""

    def __init__(self, qtbot) -> None:
        super().__init__()
        self.qtbot = qtbot
        self.server = IndexServer(
            SqliteIndexStore(), ServerLimits(max_files_per_peer=MAX_FILES, join_timeout=60)
        )
        self.server.start("127.0.0.1", 0)
        self.conns: list[Conn] = []
        self.steps = 0
        self.probe = self._open()
        self.conns.remove(self.probe)
        join = {"op": "JOIN", "id": 1, "port": PROBE_PORT, "files": [file_entry(_H, "probe.bin")]}
        self._check(self.probe, self._model(self.probe, join), line(join))

    def teardown(self) -> None:
        for conn in [*self.conns, self.probe]:
            conn.client.close()
        self.server.stop()
        self.server.store.close()

    # ------------------------------------------------------------ the model

    def _joined(self) -> list[Conn]:
        return [c for c in [*self.conns, self.probe] if c.joined]

    def _open(self) -> Conn:
        client = WireClient(self.server.serverPort())
        conn = Conn(client, client.sock.getsockname()[1])
        self.conns.append(conn)
        return conn

    def _drop(self, conn: Conn) -> None:
        conn.client.close()
        conn.port = None
        conn.files = {}
        if conn in self.conns:
            self.conns.remove(conn)

    @staticmethod
    def _entries(pairs: list[tuple[str, str]]) -> dict[tuple[str, str], int]:
        entries: dict[tuple[str, str], int] = {}
        for hash_, name in pairs:
            entries.setdefault((hash_, name), SIZE_OF[hash_])
        return entries

    def _model_join(self, conn: Conn, port: int, pairs, request_id) -> Expect:
        entries = self._entries(pairs)
        if any(c.port == port for c in self.conns if c is not conn):
            # Another open connection from this address lists that port (PROTOCOL.md).
            conn.port, conn.files = None, {}
            return Expect(error="BAD_REQUEST", error_id=request_id, closes=True)
        if len(entries) > MAX_FILES:
            return Expect(error="TOO_LARGE", error_id=request_id, closes=True)
        conn.port, conn.files = port, entries
        reply = with_id({"op": "JOIN_OK"}, request_id)
        reply.update(peer=f"127.0.0.1:{port}", files=len(entries))
        return Expect(reply=reply)

    def _model_update(self, conn: Conn, add, remove, request_id) -> Expect:
        if not conn.joined:
            return Expect(error="NOT_JOINED", error_id=request_id)
        kept = {key: size for key, size in conn.files.items() if key[0] not in set(remove)}
        for key, size in self._entries(add).items():
            kept.setdefault(key, size)
        if len(kept) > MAX_FILES:
            return Expect(error="TOO_LARGE", error_id=request_id, closes=True)
        conn.files = kept
        return Expect(reply=with_id({"op": "UPDATE_OK", "files": len(kept)}, request_id))

    def _model_search(self, conn: Conn, query: str, request_id) -> Expect:
        if not conn.joined:
            return Expect(error="NOT_JOINED", error_id=request_id)
        terms = [term for term in map(fold, query.split()) if term]  # a lone mark: no term
        results = set()
        if terms:
            others = [c for c in self._joined() if c is not conn]
            for owner in self._joined():
                for (hash_, name), size in owner.files.items():
                    if not all(term in fold(name) for term in terms):
                        continue
                    holders = sorted(
                        {c.port for c in others if any(h == hash_ for h, _ in c.files)}
                    )
                    if holders:
                        results.add((name, hash_, size, tuple(holders)))
        return Expect(search={"id": request_id, "results": results, "exact": fold(query.strip())})

    def _model(self, conn: Conn, request: dict) -> Expect:
        op, request_id = request["op"], request.get("id")
        if op == "JOIN":
            pairs = [(f["hash"], f["name"]) for f in request["files"]]
            return self._model_join(conn, request["port"], pairs, request_id)
        if op == "UPDATE":
            add = [(f["hash"], f["name"]) for f in request["add"]]
            return self._model_update(conn, add, request["remove"], request_id)
        if op == "SEARCH":
            return self._model_search(conn, request["query"], request_id)
        if op == "PING":
            return Expect(reply=with_id({"op": "PONG"}, request_id))
        assert op == "LEAVE"
        conn.port, conn.files = None, {}
        return Expect(reply=with_id({"op": "LEAVE_OK"}, request_id), closes=True)

    # ------------------------------------------------------------ checking replies

    def _check(self, conn: Conn, expect: Expect, data: bytes | None = None) -> None:
        if data is not None:
            conn.client.send_raw(data)
        wait_until(self.qtbot, conn.client.has_line)
        reply = conn.client.lines.pop(0)
        if expect.reply is not None:
            assert reply == expect.reply
        elif expect.error is not None:
            assert reply["op"] == "ERROR" and reply["code"] == expect.error, reply
            assert reply.get("id") == expect.error_id, reply
        else:
            assert reply["op"] == "SEARCH_OK" and reply.get("id") == expect.search["id"], reply
            got = {
                (r["name"], r["hash"], r["size"], tuple(sorted(x["port"] for x in r["peers"])))
                for r in reply["results"]
            }
            assert got == expect.search["results"]
            assert all(x["host"] == "127.0.0.1" for r in reply["results"] for x in r["peers"])
            exact = [fold(r["name"]) == expect.search["exact"] for r in reply["results"]]
            assert exact == sorted(exact, reverse=True), "an exact name match must rank first"
        if expect.closes:
            wait_until(self.qtbot, conn.client.is_closed)
            self._drop(conn)

    def _requests(self, conn: Conn, batch: list[dict]) -> None:
        """Send a batch in one write; the model answers each until one closes the connection."""
        expected = []
        for request in batch:
            expected.append(self._model(conn, request))
            if expected[-1].closes:
                break
        conn.client.send_raw(b"".join(line(r) for r in batch))
        for expect in expected:
            self._check(conn, expect)

    # ------------------------------------------------------------ rules

    def _pick(self, data) -> Conn:
        """An open connection, or a new one (rules run in random subsets: no rule must be first)."""
        choices = self.conns + ([None] if len(self.conns) < 4 else [])
        conn = data.draw(st.sampled_from(choices), label="connection")
        return conn or self._open()

    def _draw_request(self, data, kind: str) -> dict:
        request_id = data.draw(request_ids, label="id")
        if kind == "JOIN":
            port = data.draw(st.sampled_from(PORTS), label="port")
            pairs = data.draw(files, label="files")
            body = {"op": "JOIN", "port": port, "files": [file_entry(*f) for f in pairs]}
        elif kind == "UPDATE":
            pairs = data.draw(files, label="add")
            remove = data.draw(st.lists(st.sampled_from(HASHES), max_size=3), label="remove")
            body = {"op": "UPDATE", "add": [file_entry(*f) for f in pairs], "remove": remove}
        elif kind == "SEARCH":
            body = {"op": "SEARCH", "query": data.draw(queries, label="query"), "limit": 500}
        else:
            body = {"op": kind}
        return with_id(body, request_id)

    @rule(data=st.data())
    def join(self, data) -> None:
        self._requests(self._pick(data), [self._draw_request(data, "JOIN")])

    @rule(data=st.data())
    def update(self, data) -> None:
        self._requests(self._pick(data), [self._draw_request(data, "UPDATE")])

    @rule(data=st.data())
    def search(self, data) -> None:
        self._requests(self._pick(data), [self._draw_request(data, "SEARCH")])

    @rule(data=st.data(), close_old=st.booleans())
    def reconnect(self, data, close_old) -> None:
        """A peer JOINs again on a new connection, right after closing the old one (the
        server may not have noticed yet) or with the old one still open (refused)."""
        joined = [c for c in self.conns if c.joined]
        if not joined or len(self.conns) >= 4:
            return
        old = data.draw(st.sampled_from(joined), label="old connection")
        files = [file_entry(h, n) for h, n in old.files]
        port = old.port
        if close_old:
            self._drop(old)
        self._requests(self._open(), [{"op": "JOIN", "id": 1, "port": port, "files": files}])

    @rule(
        data=st.data(),
        kinds=st.lists(st.sampled_from(["JOIN", "UPDATE", "SEARCH", "PING", "LEAVE"]), max_size=4),
    )
    def pipelined_requests(self, data, kinds) -> None:
        """Several requests in one write, answered in order."""
        if kinds:
            conn = self._pick(data)
            self._requests(conn, [self._draw_request(data, kind) for kind in kinds])

    @rule(data=st.data(), cut=st.integers(1, 200))
    def split_line(self, data, cut) -> None:
        """A request in two writes, the server reading the first half alone."""
        conn = self._pick(data)
        request = {"op": "SEARCH", "id": 77, "query": data.draw(queries, label="query")}
        raw = line(request)
        cut = min(cut, len(raw) - 1)
        expect = self._model(conn, request)
        conn.client.send_raw(raw[:cut])
        session = self._session(conn)
        wait_until(self.qtbot, lambda: session._reader.buffered == cut)
        self._check(conn, expect, raw[cut:])

    @rule(
        data=st.data(),
        kind=st.sampled_from(["invalid", "garbage", "truncated", "close"]),
        template=st.sampled_from(INVALID_LINES),
        garbage=st.binary(max_size=300),
        cut=st.integers(0, 100),
    )
    def hostile(self, data, kind, template, garbage, cut) -> None:
        """An invalid request, random bytes, a line cut short by a close, or a plain close."""
        conn = self._pick(data)
        if kind == "invalid":
            raw, code, request_id = template
            self._check(conn, Expect(error=code, error_id=request_id, closes=True), raw)
        elif kind == "garbage":
            self._check(conn, Expect(error="BAD_REQUEST", closes=True), garbage + b"\n")
        elif kind == "truncated":
            raw = line({"op": "JOIN", "id": 3, "port": PORTS[0], "files": []})
            conn.client.send_raw(raw[: min(cut, len(raw) - 1)])
            self._close_and_wait(conn)
        else:
            self._close_and_wait(conn)

    def _close_and_wait(self, conn: Conn) -> None:
        """Close from our side and wait until the server has noticed (the peer leaves)."""
        remote = f"127.0.0.1:{conn.local_port}"
        self._drop(conn)
        wait_until(self.qtbot, lambda: all(s.remote != remote for s in self.server.sessions))

    def _session(self, conn: Conn):
        remote = f"127.0.0.1:{conn.local_port}"
        wait_until(self.qtbot, lambda: any(s.remote == remote for s in self.server.sessions))
        return next(s for s in self.server.sessions if s.remote == remote)

    # ------------------------------------------------------------ invariants

    @invariant()
    def index_matches_the_model(self) -> None:
        """Peers, files, totals and the FTS index are what the model says."""
        store = self.server.store
        expected = sorted(
            (c.port, sorted((h, n, s) for (h, n), s in c.files.items())) for c in self._joined()
        )

        def matches() -> bool:
            got = sorted(
                (
                    peer.port,
                    sorted((f.hash, f.name, f.size) for f in store.peer_files(peer.peer_id)),
                )
                for peer in store.peers()
            )
            return got == expected and len(self.server.sessions) == len(self.conns) + 1

        wait_until(self.qtbot, matches)
        counters = store.counters()
        assert counters.files == sum(len(c.files) for c in self._joined())
        assert counters.bytes == sum(sum(c.files.values()) for c in self._joined())
        store.check_index()  # the FTS name index agrees with the files table

    @invariant()
    def a_well_behaved_peer_is_still_served(self) -> None:
        self.index_matches_the_model()
        self.steps += 1
        query = WORDS[self.steps % len(WORDS)]
        request = {"op": "SEARCH", "id": self.steps, "query": query, "limit": 500}
        self._check(self.probe, self._model(self.probe, request), line(request))
        self._check(self.probe, Expect(reply={"op": "PONG"}), b'{"op":"PING"}\n')


def test_index_server_survives_random_request_sequences(qtbot):
    run_state_machine_as_test(lambda: IndexServerMachine(qtbot), settings=fuzz_settings())


# ------------------------------------------------------------------ any value in any field

#: Any JSON value: any Unicode (lone surrogates too: json.dumps escapes them), any type,
#: nested lists and objects.
any_text = st.sampled_from(["\ud800", "aula \udfff", "\udbff\udbff"]) | st.text(
    st.characters(exclude_categories=()), max_size=12
)
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | any_text,
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(any_text, children, max_size=3)
    ),
    max_leaves=8,
)
_VALID_FILE = {"name": "aula.mp4", "size": 7, "hash": HASHES[0]}
#: A valid body per op; the test replaces some of its fields (and the file entry's).
TEMPLATES: dict[str, dict] = {
    "JOIN": {"port": 7001, "files": [_VALID_FILE], "agent": "napster-p2p/1.0"},
    "SEARCH": {"query": "aula", "limit": 10},
    "UPDATE": {"add": [_VALID_FILE], "remove": [HASHES[1]]},
    "PING": {},
    "LEAVE": {},
    "JOIN_OK": {"peer": "127.0.0.1:7001", "files": 1},
    "SEARCH_OK": {"results": []},
    "UPDATE_OK": {"files": 1},
    "PONG": {},
    "LEAVE_OK": {},
    "PIECES": {"hash": HASHES[0]},
    "PIECES_OK": {"hash": HASHES[0], "name": "a", "size": 1, "piece_size": 4, "pieces": []},
    "DOWNLOAD": {"hash": HASHES[0], "offset": 0, "length": 1},
    "DOWNLOAD_OK": {"hash": HASHES[0], "offset": 0, "length": 1},
    "ERROR": {"code": "BUSY", "message": "x"},
}


SERVER_OPS = ["JOIN", "SEARCH", "UPDATE", "PING", "LEAVE"]


@st.composite
def hostile_requests(draw) -> dict:
    """One op's message with random JSON values in one to three of its fields.

    Mostly the ops the server answers, and mostly strings (lone surrogates often), so
    the checks past the first broken field are reached too.
    """
    others = sorted(set(TEMPLATES) - set(SERVER_OPS))
    op = draw(st.sampled_from(SERVER_OPS) | st.sampled_from(others) | any_text)
    body: dict = {"op": op, "id": 5, **TEMPLATES.get(op, {})}
    entry = dict(_VALID_FILE)
    if op in ("JOIN", "UPDATE"):
        body["files" if op == "JOIN" else "add"] = [entry]
    fields = [*body, *(f"file.{key}" for key in entry), "an unknown field"]
    values = any_text | json_values
    for field_name in draw(st.sets(st.sampled_from(fields), min_size=1, max_size=3)):
        if field_name.startswith("file."):
            entry[field_name[5:]] = draw(values)
        elif field_name == "an unknown field":
            body[draw(any_text)] = draw(values)
        else:
            body[field_name] = draw(values)
    return body


def test_any_value_in_any_field_gets_a_reply_or_a_close(qtbot, make_index_server):
    # Every deadline is 2 s here: a reply (or a close) must come well within it.
    server = make_index_server(ServerLimits(join_timeout=2.0, idle_timeout=2.0))
    examples = int(os.environ.get("NAPSTER_FUZZ_EXAMPLES", "0") or 0)

    @settings(
        max_examples=examples or 15, deadline=None, suppress_health_check=[HealthCheck.too_slow]
    )
    @given(request=hostile_requests(), joined_first=st.booleans())
    @example(
        request={"op": "JOIN", "port": 7001, "files": [], "agent": "\ud800"}, joined_first=False
    )
    @example(request={"op": "SEARCH", "id": 2, "query": "\udfff"}, joined_first=True)
    def check(request: dict, joined_first: bool) -> None:
        client = WireClient(server.serverPort())
        try:
            if joined_first:
                client.send_raw(line({"op": "JOIN", "id": 1, "port": 7900, "files": []}))
                wait_until(qtbot, client.has_line)
                assert client.lines.pop(0)["op"] == "JOIN_OK"
            client.send_raw(json.dumps(request).encode() + b"\n")  # ASCII: surrogates escaped
            wait_until(qtbot, lambda: client.has_line() or client.is_closed(), timeout=1.5)
            for reply in client.lines:
                assert reply["op"] in {
                    "JOIN_OK",
                    "SEARCH_OK",
                    "UPDATE_OK",
                    "PONG",
                    "LEAVE_OK",
                    "ERROR",
                }
                if reply["op"] == "ERROR":
                    assert p.ErrorCode(reply["code"])
        finally:
            client.close()
        wait_until(qtbot, lambda: not server.sessions)  # nothing is left holding the address

    check()
