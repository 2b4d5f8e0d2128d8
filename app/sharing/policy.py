"""What may be shared, and the walk that finds it (pure, no Qt).

One rule decides whether a path below a shared folder is shared (``SharePolicy.locate``); the
walk, hashing, adding a finished download and serving all ask it, and all reach the file
through ``app.sharing.confined``, so a link anywhere below a shared folder is never followed.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

from app.filenames import PART_SUFFIX, STATE_SUFFIX, TMP_SUFFIX
from app.network.protocol import printable
from app.sharing import confined

log = logging.getLogger("napster.library")

SQLITE_SIDE_FILES = ("-wal", "-shm", "-journal")
#: Names the transfer manager writes; a name with one of these as (the start of) its last
#: extension, or with a state or temporary suffix anywhere, is never shared.
PRIVATE_SUFFIXES = (PART_SUFFIX, STATE_SUFFIX, TMP_SUFFIX)
_ANYWHERE_SUFFIXES = (STATE_SUFFIX, TMP_SUFFIX)


def is_private_name(name: str) -> bool:
    """Hidden names and the transfer manager's partial, state and temporary files.

    ``x.mp4.part``, ``x.mp4.part_``, ``x.partial``, ``x.part.napster-state`` and
    ``x.napster-tmp.1`` are private; ``Symphony.Part.2.mp3`` is not (``.part`` must begin the
    last extension).
    """
    if name.startswith("."):
        return True
    folded = name.lower()
    if any(suffix in folded for suffix in _ANYWHERE_SUFFIXES):
        return True
    _stem, dot, extension = folded.rpartition(".")
    return bool(dot) and ("." + extension).startswith(PART_SUFFIX)


class FileStat(NamedTuple):
    """What is compared to tell whether a file changed."""

    size: int
    mtime_ns: int
    ctime_ns: int
    inode: str

    @classmethod
    def of(cls, st: os.stat_result) -> FileStat:
        return cls(st.st_size, st.st_mtime_ns, st.st_ctime_ns, f"{st.st_dev}:{st.st_ino}")


@dataclass
class ScanResult:
    """A walk's findings: regular files by path, folders to watch, roots that failed."""

    files: dict[str, FileStat] = field(default_factory=dict)
    dirs: list[str] = field(default_factory=list)
    failed_roots: set[str] = field(default_factory=set)


def real_paths(paths: Iterable[os.PathLike[str] | str]) -> tuple[str, ...]:
    """Each path made absolute with its links resolved, once, in order."""
    reals: list[str] = []
    for path in paths:
        real = os.path.realpath(os.path.expanduser(os.fspath(path)))
        if real not in reals:
            reals.append(real)
    return tuple(reals)


def excluded_set(paths: Iterable[os.PathLike[str] | str]) -> frozenset[str]:
    """The real paths of files and folders never shared, with SQLite's side files."""
    return frozenset(
        path + suffix for path in real_paths(paths) for suffix in ("", *SQLITE_SIDE_FILES)
    )


@dataclass(frozen=True)
class SharePolicy:
    """The shared folders and the rule for what below them is shared.

    ``roots`` are real paths (trusted as configured). A path below a root is shared when no
    name on the way is hidden, its own name is not private (``is_private_name``), it is not in
    ``excluded`` nor inside an excluded folder below a root (an excluded folder that is a root
    or holds one excludes only the files named in it), and ``is_private(Path)`` says no for it
    and for every folder on the way (the transfer manager's own folders).
    """

    roots: tuple[str, ...]
    excluded: frozenset[str] = frozenset()
    is_private: Callable[[Path], bool] | None = None

    def locate(self, path: str) -> tuple[str, tuple[str, ...]] | None:
        """(root, names below it) when ``path`` is shareable as written; None otherwise.

        The innermost root holding ``path`` is used. Only the names are checked here; the file
        is reached through ``confined``, which refuses links.
        """
        best: str | None = None
        for root in self.roots:
            if _inside(path, root) and path != root and (best is None or len(root) > len(best)):
                best = root
        if best is None:
            return None
        parts = tuple(path[len(_with_sep(best)) :].split(os.sep))
        if not self.allows(best, parts, is_dir=False):
            return None
        return best, parts

    def allows(
        self, root: str, parts: Sequence[str], is_dir: bool, folders_checked: bool = False
    ) -> bool:
        """True when the folder or file ``root/parts...`` may be shared (or walked into).

        ``folders_checked``: the walk already asked about every folder on the way.
        """
        if not parts:
            return True
        if any(name.startswith(".") for name in parts):
            return False
        if not is_dir and is_private_name(parts[-1]):
            return False
        path = os.path.join(root, *parts)
        if self._excluded(path):
            return False
        if self.is_private is not None:
            for end in range(len(parts), 0, -1):
                if self.is_private(Path(root, *parts[:end])):
                    return False
                if folders_checked:
                    break
        return True

    def _excluded(self, path: str) -> bool:
        while path not in self.roots:
            if path in self.excluded:
                return True
            parent = os.path.dirname(path)
            if parent == path:
                return False
            path = parent
        return False

    def open(self, path: str) -> int:
        """A descriptor of the shared regular file ``path``; raises OSError when refused."""
        located = self.locate(path)
        if located is None:
            raise confined.NotBeneath("not a shared file")
        return confined.open_file(*located)

    def lstat(self, path: str) -> os.stat_result:
        """The shared path's own status (a link's, not its target's); raises OSError."""
        located = self.locate(path)
        if located is None:
            raise confined.NotBeneath("not a shared file")
        return confined.lstat_file(*located)

    def walk(self, cancelled: Callable[[], bool]) -> ScanResult | None:
        """Every shareable regular file below the roots; None when cancelled."""
        result = ScanResult()
        visited: set[tuple[int, int]] = set()
        for root in self.roots:

            def wanted(parts: tuple[str, ...], is_dir: bool, root: str = root) -> bool:
                return self.allows(root, parts, is_dir, folders_checked=True)

            try:
                for entry in confined.walk_beneath(root, wanted, cancelled, visited):
                    path = os.path.join(root, *entry.parts)
                    if entry.is_dir:
                        result.dirs.append(path)
                    else:
                        result.files[path] = FileStat.of(entry.stat)
            except OSError as exc:
                log.info("Shared folder %s cannot be read: %s", printable(root), exc.strerror)
                result.failed_roots.add(root)
            if cancelled():
                return None
        return result


def private_folder(folder: Callable[[], os.PathLike[str] | str]) -> Callable[[Path], bool]:
    """An ``is_private`` hook: True for ``folder()`` and everything inside it.

    ``folder`` is asked at every call (the download folder can change); its real path is
    worked out once per distinct folder.
    """
    reals: dict[str, Path] = {}

    def is_private(path: Path) -> bool:
        wanted = os.fspath(folder())
        real = reals.get(wanted)
        if real is None:
            real = reals[wanted] = Path(os.path.realpath(os.path.expanduser(wanted)))
        return path == real or path.is_relative_to(real)

    return is_private


def _with_sep(root: str) -> str:
    return root if root.endswith(os.sep) else root + os.sep


def _inside(path: str, root: str) -> bool:
    return path == root or path.startswith(_with_sep(root))


def under_any(path: str, roots: Iterable[str]) -> bool:
    """True when ``path`` is strictly below one of ``roots``."""
    return any(path.startswith(_with_sep(root)) for root in roots)
