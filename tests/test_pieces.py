"""Piece digests and file hash: streamed, exact at piece edges, past 4 GiB."""

from __future__ import annotations

import os

import pytest
from blake3 import blake3

from app.network import pieces
from app.network.protocol import PIECE_SIZE


def reference_hash(data: bytes) -> str:
    digests = [blake3(data[i : i + PIECE_SIZE]).digest() for i in range(0, len(data), PIECE_SIZE)]
    return blake3(b"".join(digests)).hexdigest()


def test_empty_file_has_no_pieces_and_hash_of_nothing(tmp_path):
    path = tmp_path / "empty"
    path.write_bytes(b"")
    result = pieces.hash_file(path)
    assert result.size == 0 and result.pieces == ()
    assert result.hash == blake3(b"").hexdigest()
    assert pieces.piece_count(0) == 0


@pytest.mark.parametrize(
    "size", [1, PIECE_SIZE - 1, PIECE_SIZE, PIECE_SIZE + 1, 2 * PIECE_SIZE, 3 * PIECE_SIZE - 7]
)
def test_hash_matches_reference_at_piece_edges(tmp_path, size):
    data = os.urandom(size)
    path = tmp_path / "f"
    path.write_bytes(data)
    result = pieces.hash_file(path)
    assert result.size == size
    assert len(result.pieces) == pieces.piece_count(size) == -(-size // PIECE_SIZE)
    assert result.hash == reference_hash(data)
    for index, digest in enumerate(result.pieces):
        offset, length = pieces.piece_range(index, size)
        assert pieces.verify_piece(data[offset : offset + length], digest)
        assert pieces.verify_file_range(path, index, digest, size)
    assert pieces.file_hash_from_hex(result.pieces_hex) == result.hash


def test_verify_piece_detects_one_flipped_bit():
    data = bytearray(os.urandom(1000))
    digest = pieces.piece_digest(data)
    assert pieces.verify_piece(data, digest.hex())
    data[500] ^= 1
    assert not pieces.verify_piece(data, digest)


def test_sparse_file_past_4_gib(tmp_path):
    size = 4 * 1024**3 + 3 * PIECE_SIZE + 12345
    path = tmp_path / "sparse.bin"
    with open(path, "wb") as f:
        f.truncate(size)
        f.seek(4 * 1024**3 + 100)
        f.write(b"marker")
    zero_piece = blake3(bytes(PIECE_SIZE)).digest()
    last_full_offset, last_length = pieces.piece_range(pieces.piece_count(size) - 1, size)
    assert last_length == 12345 and last_full_offset == size - 12345
    # Verify only the pieces past 4 GiB (hashing all of it would take too long in CI).
    index = (4 * 1024**3) // PIECE_SIZE
    marked = bytearray(PIECE_SIZE)
    marked[100:106] = b"marker"
    assert pieces.verify_file_range(path, index, blake3(marked).digest(), size)
    assert pieces.verify_file_range(path, index + 1, zero_piece, size)
    assert pieces.verify_file_range(
        path, pieces.piece_count(size) - 1, blake3(bytes(12345)).digest(), size
    )


def test_piece_range_rejects_indexes_outside_the_file():
    with pytest.raises(IndexError):
        pieces.piece_range(1, PIECE_SIZE)
    with pytest.raises(IndexError):
        pieces.piece_range(-1, 10)


def test_progress_is_reported_and_can_cancel(tmp_path):
    path = tmp_path / "f"
    path.write_bytes(os.urandom(3 * PIECE_SIZE))
    seen = []
    pieces.hash_file(path, progress=lambda done, total: seen.append((done, total)))
    assert seen[-1] == (3 * PIECE_SIZE, 3 * PIECE_SIZE)
    assert [d for d, _ in seen[:3]] == [PIECE_SIZE, 2 * PIECE_SIZE, 3 * PIECE_SIZE]
    with pytest.raises(pieces.HashCancelled):
        pieces.hash_file(path, progress=lambda done, total: False)


def test_a_short_read_fails_verification(tmp_path):
    path = tmp_path / "short"
    path.write_bytes(b"abc")
    assert not pieces.verify_file_range(path, 0, pieces.piece_digest(b"abcd"), 4)
