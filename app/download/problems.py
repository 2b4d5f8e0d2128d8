"""Why a download cannot go on: codes with parameters (pure, no Qt).

The engine and the queue report a ``Problem`` and its parameters; the log gets the English
sentence from ``describe()``; the window and the console turn the code into words in the
user's language.
"""

from __future__ import annotations

import errno
import os
import tempfile
from enum import Enum
from pathlib import Path
from typing import Any

from app.filenames import INCOMPLETE_FOLDER, TMP_SUFFIX
from app.units import human_size


class Problem(str, Enum):
    """What stopped a download."""

    NO_SOURCES = "no_sources"
    SOURCES_CORRUPT = "sources_corrupt"
    SOURCES_FAILED = "sources_failed"
    FOLDER_MISSING = "folder_missing"
    FOLDER_READ_ONLY = "folder_read_only"
    FOLDER_NOT_WRITABLE = "folder_not_writable"
    DISK_FULL = "disk_full"
    NOT_ENOUGH_SPACE = "not_enough_space"
    WRITE_FAILED = "write_failed"
    NO_FREE_NAME = "no_free_name"
    UNEXPECTED = "unexpected"
    SHARE_MISSING = "share_missing"
    SHARE_UNREADABLE = "share_unreadable"
    NO_RELAY = "no_relay"

    @property
    def is_folder_problem(self) -> bool:
        """Problems of the download folder: retrying cannot help until the user acts."""
        return self in (
            Problem.FOLDER_MISSING,
            Problem.FOLDER_READ_ONLY,
            Problem.FOLDER_NOT_WRITABLE,
            Problem.DISK_FULL,
            Problem.NOT_ENOUGH_SPACE,
        )


_SENTENCES = {
    Problem.NO_SOURCES: "No peer has this file right now.",
    Problem.SOURCES_CORRUPT: "Every source sent corrupt data; none is trusted for this file.",
    Problem.SOURCES_FAILED: "Every source failed ({detail}).",
    Problem.FOLDER_MISSING: (
        "The download folder {folder} does not exist. Create it or choose another one in "
        "Settings, then resume."
    ),
    Problem.FOLDER_READ_ONLY: (
        "The download folder {folder} is on a read-only file system. Choose a writable "
        "folder in Settings, then resume."
    ),
    Problem.FOLDER_NOT_WRITABLE: (
        "Cannot write in the download folder {folder} ({error}). Give yourself write "
        "permission or choose another folder in Settings, then resume."
    ),
    Problem.DISK_FULL: (
        "The disk is full: {folder} has no space left. Free some space and resume; the part "
        "already downloaded is kept."
    ),
    Problem.NOT_ENOUGH_SPACE: (
        "Not enough free disk space in {folder}: the file needs {needed} more, {free} is free."
    ),
    Problem.WRITE_FAILED: "Cannot write the file: {error}.",
    Problem.NO_FREE_NAME: "Could not find a free name for the finished file.",
    Problem.UNEXPECTED: "Unexpected error: {error}",
    Problem.SHARE_MISSING: (
        "The shared folder {folder} does not exist. Create it or choose another one in Settings."
    ),
    Problem.NO_RELAY: (
        "Both you and the sources of this file are behind firewalls or NATs, and the index "
        "server does not relay transfers. Open your listen port to the internet (port "
        "forwarding) or use an index server that relays."
    ),
    Problem.SHARE_UNREADABLE: (
        "The shared folder {folder} cannot be read: other peers get nothing from it."
    ),
}


def describe(problem: Problem, params: dict[str, Any] | None = None) -> str:
    """The English sentence for a problem (logs, and front ends without a translation)."""
    values = dict(params or {})
    for key in ("needed", "free"):
        if isinstance(values.get(key), int):
            values[key] = human_size(values[key])
    try:
        return _SENTENCES[problem].format(**values)
    except (KeyError, IndexError):
        return _SENTENCES[problem]


def describe_folder_problem(problem: Problem, folder: Path, error: str = "") -> str:
    """The English sentence for a configured folder that cannot be used."""
    return describe(problem, {"folder": str(folder), "error": error})


def folder_problem(exc: OSError) -> Problem:
    """The problem an OSError means for the download folder."""
    if exc.errno == errno.EROFS:
        return Problem.FOLDER_READ_ONLY
    if exc.errno in (errno.ENOENT, errno.ENOTDIR):
        return Problem.FOLDER_MISSING
    if exc.errno in (errno.ENOSPC, getattr(errno, "EDQUOT", -1)):
        return Problem.DISK_FULL
    return Problem.FOLDER_NOT_WRITABLE


def writable_folder_problem(folder: Path) -> tuple[Problem, str] | None:
    """Why downloads cannot be written in ``folder`` (problem, OS error text), or None.

    Tries for real: creates the private incomplete folder and a file in it, then removes
    the file. Permission bits alone do not tell (root, read-only mounts, network shares).
    """
    if not Path(folder).is_dir():
        return Problem.FOLDER_MISSING, ""
    try:
        incomplete = Path(folder) / INCOMPLETE_FOLDER
        incomplete.mkdir(exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix="probe-", suffix=TMP_SUFFIX, dir=incomplete)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        return folder_problem(exc), exc.strerror or str(exc)
    return None
