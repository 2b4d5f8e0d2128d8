"""``Transfer``: one download in the queue, and the rules for reloading a saved queue (no Qt).

A saved queue is reloaded exactly as it was written. Nothing read from the file is renamed
or "made safe": a value that is not what the app itself would have written rejects the
entry, with a reason for the log.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

from app.download import layout
from app.filenames import PART_SUFFIX, safe_filename
from app.network import protocol as p

_ID = re.compile(r"^[0-9A-Za-z_-]{1,64}$")


class TransferState(str, Enum):
    """Where a download stands."""

    QUEUED = "queued"
    CONNECTING = "connecting"
    VERIFYING = "verifying"
    DOWNLOADING = "downloading"
    PAUSED = "paused"
    WAITING = "waiting"  # failed for now; retries by itself
    DONE = "done"
    FAILED = "failed"

    @property
    def is_active(self) -> bool:
        return self in (self.CONNECTING, self.VERIFYING, self.DOWNLOADING)


class QueueEntryRejected(ValueError):
    """A saved queue entry the app would not have written."""


@dataclass
class Transfer:
    """One download in the queue; a file is its hash and its size together."""

    id: str
    hash: str
    size: int
    name: str  # the safe local name of the finished file
    remote_name: str  # the name as the network gave it
    folder: Path  # the download folder; unfinished data lives in its incomplete folder
    sources: list[p.PeerAddress] = field(default_factory=list)
    bad_sources: set[str] = field(default_factory=set)
    state: TransferState = TransferState.QUEUED
    error: str = ""  # English sentence, for the log and front ends without a translation
    error_code: str = ""  # app.download.problems.Problem value, "" when none
    error_params: dict[str, Any] = field(default_factory=dict)
    done_bytes: int = 0
    speed: float = 0.0
    current_source: str = ""
    final_path: str = ""
    retries: int = 0
    next_retry_at: float = 0.0
    added_at: float = field(default_factory=time.time)
    #: The .part of an earlier version of the app, beside finished files; moved at load.
    legacy_part: Path | None = None
    # What the running download reports (not saved): a piece map and its sources.
    piece_states: bytes = b""  # one byte per piece: 0 missing, 1 being fetched, 2 done
    source_stats: list = field(default_factory=list)  # app.download.swarm.SourceStats

    @property
    def sources_active(self) -> int:
        """Sources sending or connecting to send (what "3 of 5 in use" counts first); one
        that answered BUSY and waits is not in use."""
        return sum(1 for s in self.source_stats if s.state in ("connecting", "downloading"))

    @property
    def key(self) -> tuple[str, int]:
        return (self.hash, self.size)

    @property
    def part_path(self) -> Path:
        return layout.part_path(self.folder, self.hash, self.size)

    @property
    def eta_seconds(self) -> float | None:
        if self.state is not TransferState.DOWNLOADING or self.speed <= 0:
            return None
        return max(0.0, (self.size - self.done_bytes) / self.speed)

    @property
    def progress(self) -> float:
        return 1.0 if self.size == 0 else self.done_bytes / self.size

    @property
    def usable_sources(self) -> int:
        return sum(1 for s in self.sources if str(s) not in self.bad_sources)

    def to_json(self) -> dict:
        return {
            "id": self.id,
            "hash": self.hash,
            "size": self.size,
            "name": self.name,
            "remote_name": self.remote_name,
            "folder": str(self.folder),
            "part_name": layout.part_name(self.hash, self.size),
            "sources": [s.to_json() for s in self.sources],
            "bad_sources": sorted(self.bad_sources),
            "state": self.state.value,
            "error": self.error,
            "error_code": self.error_code,
            "error_params": self.error_params,
            "done_bytes": self.done_bytes,
            "final_path": self.final_path,
            "retries": self.retries,
            "added_at": self.added_at,
        }

    @classmethod
    def from_json(cls, obj: Any) -> Transfer:
        """The entry as written, or QueueEntryRejected saying what is wrong with it."""
        if not isinstance(obj, dict):
            raise QueueEntryRejected("an entry is not an object")
        try:
            transfer_id = obj["id"]
            if not isinstance(transfer_id, str) or not _ID.match(transfer_id):
                raise QueueEntryRejected(f"id {transfer_id!r} is not one the app makes")
            file_hash = p.check_hash(obj["hash"])
            size = p.check_int(obj["size"], "size")
            name = obj["name"]
            if not isinstance(name, str) or safe_filename(name) != name:
                raise QueueEntryRejected(f"name {name!r} is not one the app would create")
            remote_name = obj.get("remote_name", name)
            if not isinstance(remote_name, str):
                raise QueueEntryRejected("remote_name is not text")
            folder = obj["folder"]
            if not isinstance(folder, str) or not Path(folder).is_absolute():
                raise QueueEntryRejected(f"folder {folder!r} is not an absolute path")
            legacy = _legacy_part(Path(folder), obj.get("part_name"), file_hash, size)
            state = TransferState(obj["state"])
            if state.is_active or state is TransferState.WAITING:
                state = TransferState.QUEUED  # it was running when the app stopped: resume it
            sources = obj.get("sources", [])
            bad = obj.get("bad_sources", [])
            if not isinstance(sources, list) or not isinstance(bad, list):
                raise QueueEntryRejected("sources are not lists")
            if not all(isinstance(b, str) for b in bad):
                raise QueueEntryRejected("bad_sources holds something other than addresses")
            params = obj.get("error_params", {})
            return cls(
                id=transfer_id,
                hash=file_hash,
                size=size,
                name=name,
                remote_name=remote_name,
                folder=Path(folder),
                sources=[p.PeerAddress.from_json(s) for s in sources],
                bad_sources=set(bad),
                state=state,
                error=str(obj.get("error", "")),
                error_code=str(obj.get("error_code", "")),
                error_params=params if isinstance(params, dict) else {},
                done_bytes=p.check_int(obj.get("done_bytes", 0), "done_bytes", 0, size),
                final_path=str(obj.get("final_path", "")),
                retries=p.check_int(obj.get("retries", 0), "retries"),
                added_at=float(obj.get("added_at", time.time())),
                legacy_part=legacy,
            )
        except KeyError as exc:
            raise QueueEntryRejected(f"{exc.args[0]} is missing") from None
        except p.ProtocolError as exc:
            raise QueueEntryRejected(exc.message) from None
        except (TypeError, ValueError) as exc:
            if isinstance(exc, QueueEntryRejected):
                raise
            raise QueueEntryRejected(str(exc)) from None


def _legacy_part(folder: Path, part_name: Any, file_hash: str, size: int) -> Path | None:
    """Where an earlier version kept this download's .part, if the entry names one.

    Trusted only as the app wrote it: one plain name inside the download folder that ends
    in ``.part``.
    """
    if part_name is None or part_name == layout.part_name(file_hash, size):
        return None
    if (
        not isinstance(part_name, str)
        or not part_name.endswith(PART_SUFFIX)
        or part_name in (PART_SUFFIX, "..")
        or Path(part_name).name != part_name
        or "/" in part_name
        or "\\" in part_name
        or "\x00" in part_name
    ):
        raise QueueEntryRejected(f"part_name {part_name!r} is not one the app would create")
    return folder / part_name
