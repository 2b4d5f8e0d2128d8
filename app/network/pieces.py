"""Piece digests and the file hash (BLAKE3, 4 MiB pieces), as PROTOCOL.md defines them.

Pure Python, no Qt. Files are read in a reusable buffer, never whole.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from blake3 import blake3

from app.network.protocol import PIECE_SIZE

READ_CHUNK = 1024 * 1024


def piece_count(size: int, piece_size: int = PIECE_SIZE) -> int:
    """How many pieces a file of ``size`` bytes has (an empty file has none)."""
    return (size + piece_size - 1) // piece_size


def piece_range(index: int, size: int, piece_size: int = PIECE_SIZE) -> tuple[int, int]:
    """(offset, length) of piece ``index`` of a file of ``size`` bytes."""
    offset = index * piece_size
    if index < 0 or offset >= size:
        raise IndexError(f"piece {index} is outside a file of {size} bytes")
    return offset, min(piece_size, size - offset)


def piece_digest(data: bytes | bytearray | memoryview) -> bytes:
    return blake3(data).digest()


def file_hash_from_digests(digests: Sequence[bytes]) -> str:
    """The file hash: BLAKE3 of the concatenated 32-byte piece digests, in hex."""
    hasher = blake3()
    for digest in digests:
        hasher.update(digest)
    return hasher.hexdigest()


def file_hash_from_hex(pieces: Sequence[str]) -> str:
    return file_hash_from_digests([bytes.fromhex(p) for p in pieces])


@dataclass(frozen=True)
class FileDigest:
    """A file's size, piece digests and hash."""

    size: int
    pieces: tuple[bytes, ...]
    hash: str

    @property
    def pieces_hex(self) -> tuple[str, ...]:
        return tuple(p.hex() for p in self.pieces)


class HashCancelled(Exception):
    """Hashing stopped because the caller asked it to."""


def hash_file(
    path: str | os.PathLike[str],
    progress: Callable[[int, int], bool | None] | None = None,
    piece_size: int = PIECE_SIZE,
) -> FileDigest:
    """Stream a file and return its piece digests and hash.

    ``progress(done, total)`` is called after every piece; if it returns False
    the hashing stops with ``HashCancelled``.
    """
    digests: list[bytes] = []
    buffer = bytearray(min(READ_CHUNK, piece_size))
    view = memoryview(buffer)
    with open(path, "rb", buffering=0) as f:
        total = os.fstat(f.fileno()).st_size
        done = 0
        hasher = blake3()
        in_piece = 0
        while True:
            n = f.readinto(view[: min(len(buffer), piece_size - in_piece)])
            if not n:
                break
            hasher.update(view[:n])
            in_piece += n
            done += n
            if in_piece == piece_size:
                digests.append(hasher.digest())
                hasher = blake3()
                in_piece = 0
                if progress is not None and progress(done, total) is False:
                    raise HashCancelled(str(path))
        if in_piece:
            digests.append(hasher.digest())
        if progress is not None:
            progress(done, total)
    return FileDigest(done, tuple(digests), file_hash_from_digests(digests))


def verify_piece(data: bytes | bytearray | memoryview, expected: bytes | str) -> bool:
    """True when ``data`` hashes to the expected digest (bytes or hex)."""
    if isinstance(expected, str):
        expected = bytes.fromhex(expected)
    return piece_digest(data) == expected


def verify_file_range(
    path: str | os.PathLike[str],
    index: int,
    expected: bytes,
    size: int,
    piece_size: int = PIECE_SIZE,
) -> bool:
    """Re-read piece ``index`` of a (partial) file from disk and check it."""
    offset, length = piece_range(index, size, piece_size)
    hasher = blake3()
    buffer = bytearray(min(READ_CHUNK, length) or 1)
    view = memoryview(buffer)
    remaining = length
    with open(path, "rb", buffering=0) as f:
        f.seek(offset)
        while remaining:
            n = f.readinto(view[: min(len(buffer), remaining)])
            if not n:
                return False
            hasher.update(view[:n])
            remaining -= n
    return hasher.digest() == expected
