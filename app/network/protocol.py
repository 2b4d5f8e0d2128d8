"""Napster P2P wire protocol, version 2 (see docs/PROTOCOL.md).

Pure Python, no Qt. Every op is a small frozen dataclass with ``to_json()``;
``encode()`` turns one into a JSON line and ``decode_line()`` turns a line back
into a validated record. ``LineReader`` takes bytes as they arrive and enforces
the line limits before it buffers past them. Anything wrong raises one
``ProtocolError`` carrying a PROTOCOL.md error code.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, ClassVar

PROTOCOL_VERSION = 2
AGENT = "napster-p2p/1.0"
DEFAULT_SERVER_PORT = 1099
DEFAULT_PEER_PORT = 6699

PIECE_SIZE = 4 * 1024 * 1024
MAX_LINE = 64 * 1024
MAX_BULK_LINE = 8 * 1024 * 1024
MAX_FILES_PER_MESSAGE = 10_000
MAX_INT = 2**63 - 1
MAX_NAME_BYTES = 255
MAX_QUERY_CHARS = 256
MAX_SEARCH_LIMIT = 500
DEFAULT_SEARCH_LIMIT = 100
MAX_AGENT_CHARS = 128

#: Ops whose line may be up to MAX_BULK_LINE, by the side that receives them.
SERVER_BULK_OPS = frozenset({"JOIN", "UPDATE"})
DOWNLOADER_BULK_OPS = frozenset({"PIECES_OK"})

_TOKEN_RE = re.compile(r"[0-9a-f]{32}")
_HASH_RE = re.compile(r"[0-9a-f]{64}")
# Unicode category Cc is exactly these 65 code points.
_CONTROL_RE = re.compile("[\x00-\x1f\x7f-\x9f]")
# Finds the op of a line still arriving; only used to choose how much to buffer.
_OP_PEEK_RE = re.compile(rb'"op"\s*:\s*"([A-Z_]{1,32})"')
# Only a line spelling a UTF-16 surrogate escape can decode to a lone surrogate (a few
# false alarms, such as an escaped backslash before "ud800", only cost a check).
_SURROGATE_ESCAPE_RE = re.compile(rb"\\u[dD][89a-fA-F]")
_SURROGATE_RE = re.compile("[\ud800-\udfff]")


class ErrorCode(str, Enum):
    """Error codes of PROTOCOL.md."""

    BAD_REQUEST = "BAD_REQUEST"
    TOO_LARGE = "TOO_LARGE"
    NOT_JOINED = "NOT_JOINED"
    NOT_FOUND = "NOT_FOUND"
    BAD_RANGE = "BAD_RANGE"
    BUSY = "BUSY"
    LIMIT = "LIMIT"
    UNAVAILABLE = "UNAVAILABLE"

    @property
    def closes_connection(self) -> bool:
        return self in _CLOSING_CODES


_CLOSING_CODES = frozenset({ErrorCode.BAD_REQUEST, ErrorCode.TOO_LARGE, ErrorCode.LIMIT})


class ProtocolError(Exception):
    """A message broke the protocol; ``code`` says how, ``message`` says it to a person."""

    def __init__(
        self,
        code: ErrorCode,
        message: str,
        request_id: int | None = None,
        preceding: list[Message] | None = None,
        retry_after: int | None = None,
    ) -> None:
        super().__init__(f"{code.value}: {message}")
        self.code = code
        self.message = message
        self.request_id = request_id
        self.retry_after = retry_after
        #: Messages decoded from the same ``LineReader.feed`` call before the bad line.
        self.preceding: list[Message] = preceding or []

    @property
    def closes_connection(self) -> bool:
        return self.code.closes_connection

    def to_message(self) -> Error:
        return Error(
            code=self.code, message=self.message, id=self.request_id, retry_after=self.retry_after
        )


# ---------------------------------------------------------------- validation


def _bad(message: str, request_id: int | None = None) -> ProtocolError:
    return ProtocolError(ErrorCode.BAD_REQUEST, message, request_id)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def check_int(value: Any, what: str, low: int = 0, high: int = MAX_INT) -> int:
    if not _is_int(value):
        raise _bad(f"{what} must be an integer")
    if not low <= value <= high:
        raise _bad(f"{what} must be between {low} and {high}")
    return value


def check_hash(value: Any, what: str = "hash") -> str:
    if not isinstance(value, str) or not _HASH_RE.fullmatch(value):
        raise _bad(f"{what} must be 64 lowercase hexadecimal characters")
    return value


def _check_bool(value: Any, what: str) -> bool:
    if not isinstance(value, bool):
        raise _bad(f"{what} must be true or false")
    return value


def check_token(value: Any) -> str:
    """A push or relay token: 32 lowercase hexadecimal characters (128 random bits)."""
    if not isinstance(value, str) or not _TOKEN_RE.fullmatch(value):
        raise _bad("token must be 32 lowercase hexadecimal characters")
    return value


def check_fingerprint(value: Any) -> str:
    """A certificate fingerprint: lowercase hex SHA-256 of the certificate's DER bytes."""
    if not isinstance(value, str) or not _HASH_RE.fullmatch(value):
        raise _bad("fingerprint must be 64 lowercase hexadecimal characters")
    return value


def name_problem(name: Any) -> str | None:
    """Why ``name`` is not a valid file name on the wire, or None if it is."""
    if not isinstance(name, str):
        return "file name must be a string"
    try:
        size = len(name.encode("utf-8"))
    except UnicodeEncodeError:
        return "file name is not valid UTF-8"
    if size == 0:
        return "file name is empty"
    if size > MAX_NAME_BYTES:
        return f"file name is {size} bytes long, the limit is {MAX_NAME_BYTES}"
    if name in (".", ".."):
        return "file name cannot be . or .."
    if "/" in name or "\\" in name:
        return "file name cannot contain / or \\"
    if _CONTROL_RE.search(name):
        return "file name cannot contain NUL or control characters"
    return None


_UNSAFE_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})


def printable(text: str, max_chars: int = 300) -> str:
    """Text from the network made safe to log or show as plain text.

    Control, format (bidirectional, zero-width), surrogate, private and
    unassigned characters become ``\\uXXXX`` escapes, so a name can never move
    the cursor, reorder a line or hide part of itself; long text is shortened.
    """
    out = []
    for ch in text[:max_chars]:
        if ch == "\\" or unicodedata.category(ch) in _UNSAFE_CATEGORIES:
            code = ord(ch)
            out.append(
                f"\\x{code:02x}"
                if code < 0x100
                else f"\\u{code:04x}"
                if code < 0x10000
                else f"\\U{code:08x}"
            )
        else:
            out.append(ch)
    if len(text) > max_chars:
        out.append(f"… ({len(text) - max_chars} more characters)")
    return "".join(out)


def check_name(value: Any) -> str:
    problem = name_problem(value)
    if problem:
        raise _bad(problem)
    return value


def _check_str(value: Any, what: str, max_chars: int) -> str:
    if not isinstance(value, str):
        raise _bad(f"{what} must be a string")
    if _SURROGATE_RE.search(value):
        raise _bad(f"{what} is not valid Unicode (a lone surrogate)")
    if len(value) > max_chars:
        raise _bad(f"{what} is longer than {max_chars} characters")
    return value


def _check_list(value: Any, what: str, max_items: int | None = None) -> list:
    if not isinstance(value, list):
        raise _bad(f"{what} must be a list")
    if max_items is not None and len(value) > max_items:
        raise ProtocolError(
            ErrorCode.TOO_LARGE, f"{what} has {len(value)} entries, the limit is {max_items}"
        )
    return value


def _require(obj: dict, key: str) -> Any:
    if key not in obj:
        raise _bad(f"field {key!r} is missing")
    return obj[key]


# ---------------------------------------------------------------- records


@dataclass(frozen=True)
class FileInfo:
    """One shared file as it travels in JOIN and UPDATE."""

    name: str
    size: int
    hash: str

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "size": self.size, "hash": self.hash}

    @classmethod
    def from_json(cls, obj: Any) -> FileInfo:
        if not isinstance(obj, dict):
            raise _bad("a file entry must be an object")
        return cls(
            name=check_name(_require(obj, "name")),
            size=check_int(_require(obj, "size"), "size"),
            hash=check_hash(_require(obj, "hash")),
        )


@dataclass(frozen=True)
class PeerAddress:
    """Where a peer listens for transfers."""

    host: str
    port: int
    #: The peer's certificate fingerprint, when the index server gave it (version 2). One
    #: address is one peer (the port rule), so it is not part of the address's identity.
    fingerprint: str | None = field(default=None, compare=False)
    #: False when the index found the peer's port closed to the outside (behind a NAT or
    #: firewall): reach it by push. Sent only when False.
    reachable: bool = field(default=True, compare=False)

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"

    def to_json(self) -> dict[str, Any]:
        obj: dict[str, Any] = {"host": self.host, "port": self.port}
        if self.fingerprint is not None:
            obj["fingerprint"] = self.fingerprint
        if not self.reachable:
            obj["reachable"] = False
        return obj

    @classmethod
    def from_json(cls, obj: Any) -> PeerAddress:
        if not isinstance(obj, dict):
            raise _bad("a peer must be an object")
        fingerprint = obj.get("fingerprint")
        return cls(
            host=_check_str(_require(obj, "host"), "host", 255),
            port=check_int(_require(obj, "port"), "port", 1, 65535),
            fingerprint=None if fingerprint is None else check_fingerprint(fingerprint),
            reachable=_check_bool(obj.get("reachable", True), "reachable"),
        )


@dataclass(frozen=True)
class SearchResult:
    """One search hit: a distinct hash and name, and the peers holding that hash."""

    name: str
    size: int
    hash: str
    peers: tuple[PeerAddress, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "size": self.size,
            "hash": self.hash,
            "peers": [p.to_json() for p in self.peers],
        }

    @classmethod
    def from_json(cls, obj: Any) -> SearchResult:
        info = FileInfo.from_json(obj)
        peers = _check_list(_require(obj, "peers"), "peers")
        return cls(info.name, info.size, info.hash, tuple(PeerAddress.from_json(p) for p in peers))


# ---------------------------------------------------------------- messages


@dataclass(frozen=True)
class Message:
    """Base of every op. ``id`` is the optional request id a reply echoes."""

    OP: ClassVar[str] = ""
    id: int | None = field(default=None, kw_only=True)

    def body(self) -> dict[str, Any]:
        return {}

    def to_json(self) -> dict[str, Any]:
        obj: dict[str, Any] = {"op": self.OP}
        if self.id is not None:
            obj["id"] = self.id
        obj.update(self.body())
        return obj

    @classmethod
    def parse(cls, obj: dict[str, Any]) -> Message:
        return cls(id=obj.get("id"))


@dataclass(frozen=True)
class Join(Message):
    OP: ClassVar[str] = "JOIN"
    port: int
    files: tuple[FileInfo, ...] = ()
    agent: str = AGENT
    #: The peer's certificate fingerprint (version 2): downloaders pin its transfers to it.
    fingerprint: str | None = None
    #: Ask for the server's heartbeat: an unasked PONG about once a second while this
    #: connection's requests wait for the server (sent only when true).
    heartbeat: bool = False

    def body(self) -> dict[str, Any]:
        obj: dict[str, Any] = {
            "port": self.port,
            "files": [f.to_json() for f in self.files],
            "agent": self.agent,
        }
        if self.fingerprint is not None:
            obj["fingerprint"] = self.fingerprint
        if self.heartbeat:
            obj["heartbeat"] = True
        return obj

    @classmethod
    def parse(cls, obj: dict[str, Any]) -> Join:
        files = _check_list(_require(obj, "files"), "files", MAX_FILES_PER_MESSAGE)
        fingerprint = obj.get("fingerprint")
        return cls(
            id=obj.get("id"),
            port=check_int(_require(obj, "port"), "port", 1, 65535),
            files=tuple(FileInfo.from_json(f) for f in files),
            agent=_check_str(obj.get("agent", ""), "agent", MAX_AGENT_CHARS),
            fingerprint=None if fingerprint is None else check_fingerprint(fingerprint),
            heartbeat=_check_bool(obj.get("heartbeat", False), "heartbeat"),
        )


@dataclass(frozen=True)
class JoinOk(Message):
    OP: ClassVar[str] = "JOIN_OK"
    peer: str
    files: int
    #: The server sends the heartbeat the JOIN asked for (sent only when true).
    heartbeat: bool = False

    def body(self) -> dict[str, Any]:
        obj: dict[str, Any] = {"peer": self.peer, "files": self.files}
        if self.heartbeat:
            obj["heartbeat"] = True
        return obj

    @classmethod
    def parse(cls, obj: dict[str, Any]) -> JoinOk:
        return cls(
            id=obj.get("id"),
            peer=_check_str(_require(obj, "peer"), "peer", 300),
            files=check_int(_require(obj, "files"), "files"),
            heartbeat=_check_bool(obj.get("heartbeat", False), "heartbeat"),
        )


@dataclass(frozen=True)
class Search(Message):
    OP: ClassVar[str] = "SEARCH"
    query: str
    limit: int = DEFAULT_SEARCH_LIMIT

    def body(self) -> dict[str, Any]:
        return {"query": self.query, "limit": self.limit}

    @classmethod
    def parse(cls, obj: dict[str, Any]) -> Search:
        query = _check_str(_require(obj, "query"), "query", MAX_QUERY_CHARS)
        if not query:
            raise _bad("query is empty")
        limit = check_int(obj.get("limit", DEFAULT_SEARCH_LIMIT), "limit", 1, MAX_SEARCH_LIMIT)
        return cls(id=obj.get("id"), query=query, limit=limit)


@dataclass(frozen=True)
class SearchOk(Message):
    OP: ClassVar[str] = "SEARCH_OK"
    results: tuple[SearchResult, ...] = ()
    #: More names matched than were sent (a hint: sent only when true).
    more: bool = False

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"results": [r.to_json() for r in self.results]}
        if self.more:
            body["more"] = True
        return body

    @classmethod
    def parse(cls, obj: dict[str, Any]) -> SearchOk:
        results = _check_list(_require(obj, "results"), "results")
        more = obj.get("more", False)
        if not isinstance(more, bool):
            raise _bad("more must be true or false", obj.get("id"))
        return cls(
            id=obj.get("id"),
            results=tuple(SearchResult.from_json(r) for r in results),
            more=more,
        )


@dataclass(frozen=True)
class Sources(Message):
    """Who holds this file: by hash, and by size too when given (a file is both)."""

    OP: ClassVar[str] = "SOURCES"
    hash: str
    size: int | None = None

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"hash": self.hash}
        if self.size is not None:
            body["size"] = self.size
        return body

    @classmethod
    def parse(cls, obj: dict[str, Any]) -> Sources:
        size = obj.get("size")
        return cls(
            id=obj.get("id"),
            hash=check_hash(_require(obj, "hash")),
            size=None if size is None else check_int(size, "size"),
        )


@dataclass(frozen=True)
class SourcesOk(Message):
    """One RESULT per (size, name) of that hash, each with its holders (the asker left out)."""

    OP: ClassVar[str] = "SOURCES_OK"
    results: tuple[SearchResult, ...] = ()

    def body(self) -> dict[str, Any]:
        return {"results": [r.to_json() for r in self.results]}

    @classmethod
    def parse(cls, obj: dict[str, Any]) -> SourcesOk:
        results = _check_list(_require(obj, "results"), "results")
        return cls(id=obj.get("id"), results=tuple(SearchResult.from_json(r) for r in results))


@dataclass(frozen=True)
class Browse(Message):
    """Everything one online peer shares (the index already knows)."""

    OP: ClassVar[str] = "BROWSE"
    host: str
    port: int
    limit: int = MAX_SEARCH_LIMIT

    def body(self) -> dict[str, Any]:
        return {"host": self.host, "port": self.port, "limit": self.limit}

    @classmethod
    def parse(cls, obj: dict[str, Any]) -> Browse:
        return cls(
            id=obj.get("id"),
            host=_check_str(_require(obj, "host"), "host", 255),
            port=check_int(_require(obj, "port"), "port", 1, 65535),
            limit=check_int(obj.get("limit", MAX_SEARCH_LIMIT), "limit", 1, MAX_SEARCH_LIMIT),
        )


@dataclass(frozen=True)
class BrowseOk(SearchOk):
    """The peer's files by name, each RESULT listing that peer; ``more`` as in SEARCH_OK."""

    OP: ClassVar[str] = "BROWSE_OK"


@dataclass(frozen=True)
class Update(Message):
    OP: ClassVar[str] = "UPDATE"
    add: tuple[FileInfo, ...] = ()
    remove: tuple[str, ...] = ()

    def body(self) -> dict[str, Any]:
        return {"add": [f.to_json() for f in self.add], "remove": list(self.remove)}

    @classmethod
    def parse(cls, obj: dict[str, Any]) -> Update:
        add = _check_list(obj.get("add", []), "add")
        remove = _check_list(obj.get("remove", []), "remove")
        if len(add) + len(remove) > MAX_FILES_PER_MESSAGE:
            raise ProtocolError(
                ErrorCode.TOO_LARGE,
                f"UPDATE has {len(add) + len(remove)} entries, the limit is "
                f"{MAX_FILES_PER_MESSAGE}",
            )
        return cls(
            id=obj.get("id"),
            add=tuple(FileInfo.from_json(f) for f in add),
            remove=tuple(check_hash(h, "a removed hash") for h in remove),
        )


@dataclass(frozen=True)
class UpdateOk(Message):
    OP: ClassVar[str] = "UPDATE_OK"
    files: int

    def body(self) -> dict[str, Any]:
        return {"files": self.files}

    @classmethod
    def parse(cls, obj: dict[str, Any]) -> UpdateOk:
        return cls(id=obj.get("id"), files=check_int(_require(obj, "files"), "files"))


@dataclass(frozen=True)
class Reachability(Message):
    """Index -> peer, unasked: whether the peer's listen port answered from outside."""

    OP: ClassVar[str] = "REACHABILITY"
    reachable: bool

    def body(self) -> dict[str, Any]:
        return {"reachable": self.reachable}

    @classmethod
    def parse(cls, obj: dict[str, Any]) -> Reachability:
        return cls(id=obj.get("id"), reachable=_check_bool(_require(obj, "reachable"), "reachable"))


@dataclass(frozen=True)
class Push(Message):
    """Downloader -> index: ask the holder at host:port to connect out to me."""

    OP: ClassVar[str] = "PUSH"
    host: str
    port: int
    token: str

    def body(self) -> dict[str, Any]:
        return {"host": self.host, "port": self.port, "token": self.token}

    @classmethod
    def parse(cls, obj: dict[str, Any]) -> Push:
        return cls(
            id=obj.get("id"),
            host=_check_str(_require(obj, "host"), "host", 255),
            port=check_int(_require(obj, "port"), "port", 1, 65535),
            token=check_token(_require(obj, "token")),
        )


@dataclass(frozen=True)
class PushOk(Message):
    OP: ClassVar[str] = "PUSH_OK"


@dataclass(frozen=True)
class PushRequest(Message):
    """Index -> holder, unasked: connect to host:port (a downloader) and serve it there."""

    OP: ClassVar[str] = "PUSH_REQUEST"
    host: str
    port: int
    token: str

    def body(self) -> dict[str, Any]:
        return {"host": self.host, "port": self.port, "token": self.token}

    @classmethod
    def parse(cls, obj: dict[str, Any]) -> PushRequest:
        return cls(
            id=obj.get("id"),
            host=_check_str(_require(obj, "host"), "host", 255),
            port=check_int(_require(obj, "port"), "port", 1, 65535),
            token=check_token(_require(obj, "token")),
        )


@dataclass(frozen=True)
class Pushed(Message):
    """Holder -> downloader, in plain text as the first line of a pushed connection; TLS
    follows with the holder as the TLS server."""

    OP: ClassVar[str] = "PUSHED"
    token: str

    def body(self) -> dict[str, Any]:
        return {"token": self.token}

    @classmethod
    def parse(cls, obj: dict[str, Any]) -> Pushed:
        return cls(id=obj.get("id"), token=check_token(_require(obj, "token")))


@dataclass(frozen=True)
class Relay(Message):
    """Downloader -> index: neither of us can reach the other; relay a transfer with the
    holder at host:port through the index's relay port (it sees only TLS records)."""

    OP: ClassVar[str] = "RELAY"
    host: str
    port: int
    token: str

    def body(self) -> dict[str, Any]:
        return {"host": self.host, "port": self.port, "token": self.token}

    @classmethod
    def parse(cls, obj: dict[str, Any]) -> Relay:
        return cls(
            id=obj.get("id"),
            host=_check_str(_require(obj, "host"), "host", 255),
            port=check_int(_require(obj, "port"), "port", 1, 65535),
            token=check_token(_require(obj, "token")),
        )


@dataclass(frozen=True)
class RelayOk(Message):
    """Index -> downloader: connect to relay_host:relay_port and send RELAYED there."""

    OP: ClassVar[str] = "RELAY_OK"
    relay_host: str
    relay_port: int

    def body(self) -> dict[str, Any]:
        return {"relay_host": self.relay_host, "relay_port": self.relay_port}

    @classmethod
    def parse(cls, obj: dict[str, Any]) -> RelayOk:
        return cls(
            id=obj.get("id"),
            relay_host=_check_str(_require(obj, "relay_host"), "relay_host", 255),
            relay_port=check_int(_require(obj, "relay_port"), "relay_port", 1, 65535),
        )


@dataclass(frozen=True)
class RelayRequest(Message):
    """Index -> holder, unasked: connect to the relay, send RELAYED with the token and serve
    that connection as the TLS server, as a pushed one."""

    OP: ClassVar[str] = "RELAY_REQUEST"
    relay_host: str
    relay_port: int
    token: str

    def body(self) -> dict[str, Any]:
        return {"relay_host": self.relay_host, "relay_port": self.relay_port, "token": self.token}

    @classmethod
    def parse(cls, obj: dict[str, Any]) -> RelayRequest:
        return cls(
            id=obj.get("id"),
            relay_host=_check_str(_require(obj, "relay_host"), "relay_host", 255),
            relay_port=check_int(_require(obj, "relay_port"), "relay_port", 1, 65535),
            token=check_token(_require(obj, "token")),
        )


@dataclass(frozen=True)
class Relayed(Message):
    """Either peer -> the relay port, in plain text as the first line; the relay pairs the
    two connections with one token and pipes their bytes (TLS, end to end) both ways."""

    OP: ClassVar[str] = "RELAYED"
    token: str

    def body(self) -> dict[str, Any]:
        return {"token": self.token}

    @classmethod
    def parse(cls, obj: dict[str, Any]) -> Relayed:
        return cls(id=obj.get("id"), token=check_token(_require(obj, "token")))


@dataclass(frozen=True)
class Ping(Message):
    OP: ClassVar[str] = "PING"


@dataclass(frozen=True)
class Pong(Message):
    OP: ClassVar[str] = "PONG"


@dataclass(frozen=True)
class Leave(Message):
    OP: ClassVar[str] = "LEAVE"


@dataclass(frozen=True)
class LeaveOk(Message):
    OP: ClassVar[str] = "LEAVE_OK"


@dataclass(frozen=True)
class Pieces(Message):
    OP: ClassVar[str] = "PIECES"
    hash: str

    def body(self) -> dict[str, Any]:
        return {"hash": self.hash}

    @classmethod
    def parse(cls, obj: dict[str, Any]) -> Pieces:
        return cls(id=obj.get("id"), hash=check_hash(_require(obj, "hash")))


@dataclass(frozen=True)
class PiecesOk(Message):
    OP: ClassVar[str] = "PIECES_OK"
    hash: str
    name: str
    size: int
    piece_size: int = PIECE_SIZE
    pieces: tuple[str, ...] = ()

    def body(self) -> dict[str, Any]:
        return {
            "hash": self.hash,
            "name": self.name,
            "size": self.size,
            "piece_size": self.piece_size,
            "pieces": list(self.pieces),
        }

    @classmethod
    def parse(cls, obj: dict[str, Any]) -> PiecesOk:
        pieces = _check_list(_require(obj, "pieces"), "pieces")
        return cls(
            id=obj.get("id"),
            hash=check_hash(_require(obj, "hash")),
            name=check_name(_require(obj, "name")),
            size=check_int(_require(obj, "size"), "size"),
            piece_size=check_int(_require(obj, "piece_size"), "piece_size", 1),
            pieces=tuple(check_hash(p, "a piece digest") for p in pieces),
        )


@dataclass(frozen=True)
class Download(Message):
    OP: ClassVar[str] = "DOWNLOAD"
    hash: str
    offset: int = 0
    length: int | None = None

    def body(self) -> dict[str, Any]:
        obj: dict[str, Any] = {"hash": self.hash, "offset": self.offset}
        if self.length is not None:
            obj["length"] = self.length
        return obj

    @classmethod
    def parse(cls, obj: dict[str, Any]) -> Download:
        length = obj.get("length")
        return cls(
            id=obj.get("id"),
            hash=check_hash(_require(obj, "hash")),
            offset=check_int(obj.get("offset", 0), "offset"),
            length=None if length is None else check_int(length, "length"),
        )


@dataclass(frozen=True)
class DownloadOk(Message):
    OP: ClassVar[str] = "DOWNLOAD_OK"
    hash: str
    offset: int
    length: int

    def body(self) -> dict[str, Any]:
        return {"hash": self.hash, "offset": self.offset, "length": self.length}

    @classmethod
    def parse(cls, obj: dict[str, Any]) -> DownloadOk:
        return cls(
            id=obj.get("id"),
            hash=check_hash(_require(obj, "hash")),
            offset=check_int(_require(obj, "offset"), "offset"),
            length=check_int(_require(obj, "length"), "length"),
        )


@dataclass(frozen=True)
class Error(Message):
    OP: ClassVar[str] = "ERROR"
    code: ErrorCode
    message: str = ""
    retry_after: int | None = None

    def body(self) -> dict[str, Any]:
        obj: dict[str, Any] = {"code": self.code.value, "message": self.message}
        if self.retry_after is not None:
            obj["retry_after"] = self.retry_after
        return obj

    @classmethod
    def parse(cls, obj: dict[str, Any]) -> Error:
        raw_code = _require(obj, "code")
        try:
            code = ErrorCode(raw_code)
        except ValueError:
            raise _bad(f"unknown error code {raw_code!r}") from None
        retry = obj.get("retry_after")
        return cls(
            id=obj.get("id"),
            code=code,
            message=_check_str(obj.get("message", ""), "message", MAX_LINE),
            retry_after=None if retry is None else check_int(retry, "retry_after"),
        )


MESSAGE_TYPES: dict[str, type[Message]] = {
    cls.OP: cls
    for cls in (
        Join,
        JoinOk,
        Search,
        SearchOk,
        Sources,
        SourcesOk,
        Browse,
        BrowseOk,
        Update,
        UpdateOk,
        Reachability,
        Push,
        PushOk,
        PushRequest,
        Pushed,
        Relay,
        RelayOk,
        RelayRequest,
        Relayed,
        Ping,
        Pong,
        Leave,
        LeaveOk,
        Pieces,
        PiecesOk,
        Download,
        DownloadOk,
        Error,
    )
}

BULK_OPS = SERVER_BULK_OPS | DOWNLOADER_BULK_OPS


def line_limit(op: str) -> int:
    """The longest line (without its newline) allowed for ``op``."""
    return MAX_BULK_LINE if op in BULK_OPS else MAX_LINE


# ---------------------------------------------------------------- framing


def encode(message: Message) -> bytes:
    """One JSON line, compact, UTF-8, ending in a newline."""
    text = json.dumps(message.to_json(), separators=(",", ":"), ensure_ascii=False)
    return text.encode("utf-8") + b"\n"


#: Escapes a str exactly as ``json.dumps(..., ensure_ascii=False)`` does, quotes included.
_json_string = json.encoder.encode_basestring


def _holder_json(peer: PeerAddress) -> str:
    text = f'{{"host":{_json_string(peer.host)},"port":{peer.port}'
    if peer.fingerprint is not None:
        text += f',"fingerprint":{_json_string(peer.fingerprint)}'
    if not peer.reachable:
        text += ',"reachable":false'
    return text + "}"


def _result_json(result: SearchResult) -> str:
    peers = ",".join(_holder_json(peer) for peer in result.peers)
    return (
        f'{{"name":{_json_string(result.name)},"size":{result.size},'
        f'"hash":{_json_string(result.hash)},"peers":[{peers}]}}'
    )


def encode_search_ok(
    request_id: int | None,
    results: Iterable[SearchResult],
    max_line: int = MAX_LINE,
    *,
    more: bool = False,
) -> tuple[bytes, int]:
    """``encode(SearchOk(...))`` of the leading results that fit in ``max_line`` bytes.

    ``more`` is sent when given, and also when results were left out for room.
    Returns the line and how many results it holds. Written out by hand because a
    SEARCH_OK is the server's most frequent and largest reply.
    """
    head, tail = encode(SearchOk(id=request_id, more=True)).split(b"[]", 1)
    budget = max_line - len(head) - len(tail) - 2  # the brackets; room for "more" kept
    parts: list[bytes] = []
    for result in results:
        part = _result_json(result).encode("utf-8")
        cost = len(part) + (1 if parts else 0)
        if cost > budget:
            more = True
            break
        budget -= cost
        parts.append(part)
    if not more:
        tail = encode(SearchOk(id=request_id)).split(b"[]", 1)[1]
    return head + b"[" + b",".join(parts) + b"]" + tail, len(parts)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not allowed")


def lone_surrogate_in(value: Any) -> bool:
    """True if a string anywhere in ``value`` (keys included) holds a lone surrogate.

    JSON can spell one (``"\\ud800"``) though no UTF-8 text holds one: such a string
    cannot be encoded, stored or sent on, so no field of any message may carry it.
    """
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if _SURROGATE_RE.search(item):
                return True
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


def decode_line(line: bytes | bytearray, allowed_bulk_ops: frozenset[str] = BULK_OPS) -> Message:
    """Decode one line (with or without its newline) into a validated message."""
    if line.endswith(b"\n"):
        line = line[:-1]
    if len(line) > MAX_BULK_LINE:
        raise ProtocolError(ErrorCode.TOO_LARGE, f"line is longer than {MAX_BULK_LINE} bytes")
    try:
        obj = json.loads(bytes(line).decode("utf-8"), parse_constant=_reject_constant)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise _bad(f"not a JSON line ({type(exc).__name__})") from None
    if not isinstance(obj, dict):
        raise _bad("a message must be a JSON object")
    # The walk only for a line that spells a surrogate: a 10,000-file JOIN never pays it.
    surrogate = bool(_SURROGATE_ESCAPE_RE.search(line)) and lone_surrogate_in(obj)
    raw_id = obj.get("id")
    request_id = raw_id if _is_int(raw_id) and 0 <= raw_id <= MAX_INT else None
    if raw_id is not None and request_id is None:
        raise _bad("id must be an integer between 0 and 2^63-1")
    op = obj.get("op")
    if not isinstance(op, str):
        raise _bad("field 'op' is missing or not a string", request_id)
    if surrogate:
        raise _bad("a string is not valid Unicode (a lone surrogate)", request_id)
    cls = MESSAGE_TYPES.get(op)
    if cls is None:
        raise _bad(f"unknown op {printable(op[:40])!r}", request_id)
    limit = MAX_BULK_LINE if op in allowed_bulk_ops else MAX_LINE
    if len(line) > limit:
        raise ProtocolError(
            ErrorCode.TOO_LARGE, f"{op} line is longer than {limit} bytes", request_id
        )
    try:
        return cls.parse(obj)
    except ProtocolError as exc:
        exc.request_id = request_id
        raise


class LineReader:
    """Incremental JSON-lines decoder with per-op line limits.

    ``feed()`` takes bytes as they arrive and returns the whole messages they
    complete. A line never grows past its limit: a line without a newline is
    held only up to 64 KiB, or 8 MiB when its op is one of ``bulk_ops``.
    """

    def __init__(self, bulk_ops: frozenset[str] = frozenset()) -> None:
        self.bulk_ops = frozenset(bulk_ops)
        self._buffer = bytearray()
        self._limit = MAX_LINE
        self._failed: ProtocolError | None = None

    @property
    def buffered(self) -> int:
        return len(self._buffer)

    def take_buffer(self) -> bytes:
        """Hand over the bytes after the last whole line (e.g. raw file data)."""
        data = bytes(self._buffer)
        self._buffer.clear()
        self._limit = MAX_LINE
        return data

    def feed(self, data: bytes | bytearray | memoryview) -> list[Message]:
        if self._failed is not None:
            failed = self._failed
            raise ProtocolError(failed.code, failed.message, failed.request_id)
        messages: list[Message] = []
        view = memoryview(data)
        try:
            while view:
                newline = bytes(view[: self._limit + 1 - len(self._buffer)]).find(b"\n")
                if newline >= 0:
                    self._buffer += view[:newline]
                    view = view[newline + 1 :]
                    line = bytes(self._buffer)
                    self._buffer.clear()
                    self._limit = MAX_LINE
                    messages.append(decode_line(line, self.bulk_ops))
                    continue
                room = self._limit - len(self._buffer)
                if len(view) <= room:
                    self._buffer += view
                    view = view[len(view) :]
                    continue
                self._buffer += view[:room]
                view = view[room:]
                self._raise_limit_or_fail()
        except ProtocolError as exc:
            exc.preceding = messages
            # A copy: the raised one carries frames (and whoever owns this reader).
            self._failed = ProtocolError(exc.code, exc.message, exc.request_id)
            raise
        return messages

    def _raise_limit_or_fail(self) -> None:
        """The held line reached its limit with no newline: allow a bulk op more."""
        if self._limit == MAX_LINE and self.bulk_ops:
            match = _OP_PEEK_RE.search(self._buffer, 0, MAX_LINE)
            if match and match.group(1).decode() in self.bulk_ops:
                self._limit = MAX_BULK_LINE
                return
        raise ProtocolError(ErrorCode.TOO_LARGE, f"line is longer than {self._limit} bytes")
