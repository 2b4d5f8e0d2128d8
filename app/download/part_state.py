"""Which pieces of a ``.part`` are verified; saved beside it by atomic replace (pure, no Qt)."""

from __future__ import annotations

import json
import os
from pathlib import Path

from app.filenames import TMP_SUFFIX
from app.network import pieces as pc
from app.network import protocol as p


class PartState:
    """The piece list of one file and which of its pieces are verified on disk.

    The saved form also carries the file's name as the network gave it, so an unfinished
    download found without its queue entry can be shown to the user by name.
    """

    VERSION = 1

    def __init__(
        self, file_hash: str, size: int, digests: tuple[bytes, ...], name: str = ""
    ) -> None:
        self.hash = file_hash
        self.size = size
        self.digests = digests
        self.name = name
        self.verified = bytearray(len(digests))

    @property
    def count(self) -> int:
        return len(self.digests)

    def missing(self) -> list[int]:
        return [i for i, ok in enumerate(self.verified) if not ok]

    def verified_bytes(self) -> int:
        total = 0
        for index, ok in enumerate(self.verified):
            if ok:
                total += pc.piece_range(index, self.size)[1]
        return total

    def save(self, path: Path) -> None:
        body = {
            "version": self.VERSION,
            "hash": self.hash,
            "size": self.size,
            "name": self.name,
            "piece_size": p.PIECE_SIZE,
            "pieces": [d.hex() for d in self.digests],
            "verified": [i for i, ok in enumerate(self.verified) if ok],
        }
        tmp = path.with_name(path.name + TMP_SUFFIX)
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(body, f, separators=(",", ":"))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: Path, file_hash: str | None = None, size: int | None = None):
        """The saved state, or None when it is missing, cut short, garbled or not this file's.

        Without ``file_hash`` and ``size`` any intact state is accepted (adopting a leftover).
        """
        try:
            body = json.loads(path.read_text(encoding="utf-8"))
            if body.get("version") != cls.VERSION or body.get("piece_size") != p.PIECE_SIZE:
                return None
            saved_hash = p.check_hash(body.get("hash"))
            saved_size = p.check_int(body.get("size"), "size")
            if file_hash is not None and saved_hash != file_hash:
                return None
            if size is not None and saved_size != size:
                return None
            digests = tuple(bytes.fromhex(p.check_hash(d)) for d in body["pieces"])
            if len(digests) != pc.piece_count(saved_size):
                return None
            if pc.file_hash_from_digests(digests) != saved_hash:
                return None
            name = body.get("name", "")
            state = cls(saved_hash, saved_size, digests, name if isinstance(name, str) else "")
            for index in body["verified"]:
                if isinstance(index, int) and 0 <= index < state.count:
                    state.verified[index] = 1
            return state
        except (OSError, ValueError, TypeError, KeyError, AttributeError, p.ProtocolError):
            return None
