"""Where unfinished downloads live (pure, no Qt).

Unfinished data never sits beside finished files: it lives in a hidden folder inside the
download folder, under a name made of the file's identity (hash and size), so it can never be
mistaken for a shared file, and a queued download finds its data again by what it is.
"""

from __future__ import annotations

import re
from pathlib import Path

from app.filenames import INCOMPLETE_FOLDER, PART_SUFFIX, STATE_SUFFIX

_PART_NAME = re.compile(r"^([0-9a-f]{64})-([0-9]{1,19})" + re.escape(PART_SUFFIX) + r"$")


def incomplete_folder(download_folder: Path) -> Path:
    """The private folder of unfinished downloads inside ``download_folder``."""
    return Path(download_folder) / INCOMPLETE_FOLDER


def part_name(file_hash: str, size: int) -> str:
    """The ``.part`` name of the file with that identity: ``<hash>-<size>.part``."""
    return f"{file_hash}-{size}{PART_SUFFIX}"


def part_path(download_folder: Path, file_hash: str, size: int) -> Path:
    return incomplete_folder(download_folder) / part_name(file_hash, size)


def state_path_for(part: Path) -> Path:
    """The piece-state file kept beside a ``.part``."""
    return part.with_name(part.name + STATE_SUFFIX)


def parse_part_name(name: str) -> tuple[str, int] | None:
    """(hash, size) of a name that ``part_name`` made, else None."""
    match = _PART_NAME.match(name)
    if match is None:
        return None
    size = int(match.group(2))
    return (match.group(1), size) if size < 2**63 else None
