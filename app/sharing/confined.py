"""Files reached beneath a shared folder, one name at a time, never through a link (pure).

This is the one place where the peer turns "a file of the shared folder" into an open file or a
listing. The shared folder itself is trusted as the user configured it; everything below it is
not: any folder or file below it may be swapped for a symbolic link (or, on Windows, another
reparse point) at any moment, also between two system calls. So nothing here resolves a path:

- POSIX: the shared folder is opened once, then every folder on the way is opened with
  ``O_NOFOLLOW | O_DIRECTORY`` relative to its parent's descriptor (``dir_fd``), and the file
  with ``O_NOFOLLOW | O_NONBLOCK``, then refused unless ``fstat`` says it is a regular file.
  A link at any level fails the open (``ELOOP``/``ENOTDIR``) instead of being followed, and a
  folder renamed away after it was opened keeps its descriptor, so a swap can only make the
  open fail, never lead outside. Listings read directory descriptors (``os.scandir(fd)``).
- Windows (no ``dir_fd``): every component is checked with ``lstat`` and refused when it is a
  link or reparse point, the file is opened, its identity compared with the checked one, and
  the folders on the way checked again while it is open (Windows refuses to rename a folder
  holding an open file). This is the documented equivalent; only the POSIX path is tested.

The bytes a caller hashes or serves must come from the descriptor returned here.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

#: True where descriptors can be opened relative to a folder descriptor (Linux, macOS, BSD).
USE_DIR_FD = (
    os.open in os.supports_dir_fd
    and os.stat in os.supports_dir_fd
    and os.scandir in os.supports_fd
    and hasattr(os, "O_NOFOLLOW")
    and hasattr(os, "O_DIRECTORY")
)
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_DIR_FLAGS = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | _NOFOLLOW
_FILE_FLAGS = os.O_RDONLY | _NOFOLLOW | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)
_REPARSE_POINT = getattr(stat, "FILE_ATTRIBUTE_REPARSE_POINT", 0x400)

Parts = tuple[str, ...]


class NotBeneath(OSError):
    """The path leaves the shared folder, goes through a link or is not a regular file."""

    def __init__(self, reason: str) -> None:
        super().__init__(errno.EACCES, reason)


@dataclass(frozen=True)
class Entry:
    """One folder or regular file found by ``walk_beneath``; ``stat`` never follows a link."""

    parts: Parts
    stat: os.stat_result
    is_dir: bool


def check_parts(parts: Sequence[str]) -> Parts:
    """The names of a relative path, each a plain name (no separator, ``.``, ``..`` or NUL)."""
    for name in parts:
        if (
            not name
            or name in (".", "..")
            or "\0" in name
            or os.sep in name
            or (os.altsep is not None and os.altsep in name)
        ):
            raise NotBeneath(f"{name!r} is not a plain name")
    return tuple(parts)


def _is_link(st: os.stat_result) -> bool:
    return stat.S_ISLNK(st.st_mode) or bool(getattr(st, "st_file_attributes", 0) & _REPARSE_POINT)


# ---------------------------------------------------------------- opening one file


def open_file(root: str, parts: Sequence[str]) -> int:
    """A read-only descriptor of the regular file ``root/parts...``, reached without links.

    Raises ``NotBeneath`` for a link or a file that is not regular, ``OSError`` otherwise.
    The caller closes the descriptor.
    """
    parts = check_parts(parts)
    if not parts:
        raise NotBeneath("a shared folder is not a file")
    if not USE_DIR_FD:
        return _open_file_by_path(root, parts)
    root_fd = os.open(root, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        return open_beneath(root_fd, parts)
    finally:
        os.close(root_fd)


def open_beneath(root_fd: int, parts: Sequence[str]) -> int:
    """``open_file`` from an open folder descriptor (POSIX only)."""
    parts = check_parts(parts)
    folder_fd = _open_folders(root_fd, parts[:-1])
    try:
        fd = _refuse_links(lambda: os.open(parts[-1], _FILE_FLAGS, dir_fd=folder_fd))
    finally:
        if folder_fd != root_fd:
            os.close(folder_fd)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise NotBeneath("not a regular file")
    except BaseException:
        os.close(fd)
        raise
    return fd


def lstat_file(root: str, parts: Sequence[str]) -> os.stat_result:
    """The status of ``root/parts...`` itself (a link's own), reached like ``open_file``."""
    parts = check_parts(parts)
    if not parts:
        raise NotBeneath("a shared folder is not a file")
    if not USE_DIR_FD:
        return _check_chain(root, parts)
    root_fd = os.open(root, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        folder_fd = _open_folders(root_fd, parts[:-1])
        try:
            return os.stat(parts[-1], dir_fd=folder_fd, follow_symlinks=False)
        finally:
            if folder_fd != root_fd:
                os.close(folder_fd)
    finally:
        os.close(root_fd)


def _open_folders(root_fd: int, parts: Parts) -> int:
    """A descriptor of the folder ``parts`` below ``root_fd`` (``root_fd`` itself for none)."""
    fd = root_fd
    try:
        for name in parts:
            parent = fd
            fd = _refuse_links(lambda: os.open(name, _DIR_FLAGS, dir_fd=parent))  # noqa: B023
            if parent != root_fd:
                os.close(parent)
    except BaseException:
        if fd != root_fd:
            os.close(fd)
        raise
    return fd


def _refuse_links(opener: Callable[[], int]) -> int:
    try:
        return opener()
    except OSError as exc:
        # O_NOFOLLOW on a link: ELOOP (Linux), EMLINK (FreeBSD), EFTYPE (NetBSD); a link where
        # a folder belongs with O_DIRECTORY: ENOTDIR.
        if exc.errno in (errno.ELOOP, errno.EMLINK, errno.ENOTDIR, getattr(errno, "EFTYPE", -1)):
            raise NotBeneath("a link or not a folder on the way") from None
        raise


def _open_file_by_path(root: str, parts: Parts) -> int:
    """Windows: refuse reparse points at every level, before and while the file is open."""
    checked = _check_chain(root, parts)
    fd = os.open(os.path.join(root, *parts), _FILE_FLAGS)
    try:
        opened = os.fstat(fd)
        if not stat.S_ISREG(opened.st_mode):
            raise NotBeneath("not a regular file")
        if (opened.st_dev, opened.st_ino) != (checked.st_dev, checked.st_ino):
            raise NotBeneath("the file changed while it was opened")
        _check_chain(root, parts)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _check_chain(root: str, parts: Parts) -> os.stat_result:
    path = root
    st = os.lstat(root)
    for name in parts:
        path = os.path.join(path, name)
        st = os.lstat(path)
        if _is_link(st):
            raise NotBeneath("a link on the way")
    return st


# ---------------------------------------------------------------- listing


def walk_beneath(
    root: str,
    wanted: Callable[[Parts, bool], bool],
    cancelled: Callable[[], bool],
    visited: set[tuple[int, int]] | None = None,
) -> Iterator[Entry]:
    """Every folder and regular file below ``root`` that ``wanted(parts, is_dir)`` accepts.

    Links are never followed nor listed; an unwanted folder is not entered. The root comes
    first (``parts == ()``); it raises ``OSError`` when the root cannot be listed. Folders
    already in ``visited`` (device, inode) are skipped, so nested shared folders are walked
    once. Stops early when ``cancelled()``.
    """
    if not USE_DIR_FD:
        yield from _walk_by_path(root, wanted, cancelled, visited if visited is not None else set())
        return
    visited = visited if visited is not None else set()
    root_fd = os.open(root, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    stack: list[tuple[int, Parts, Iterator[tuple[str, os.stat_result]]]] = []
    try:
        root_stat = os.fstat(root_fd)
        if not stat.S_ISDIR(root_stat.st_mode):
            raise NotADirectoryError(errno.ENOTDIR, "not a folder", root)
        if (root_stat.st_dev, root_stat.st_ino) in visited:
            return
        visited.add((root_stat.st_dev, root_stat.st_ino))
        listing = _list(root_fd, (), wanted)
        yield Entry((), root_stat, True)
        stack.append((root_fd, (), iter(listing)))
        root_fd = -1
        while stack:
            if cancelled():
                return
            fd, parts, entries = stack[-1]
            found = next(entries, None)
            if found is None:
                os.close(fd)
                stack.pop()
                continue
            name, st = found
            child = (*parts, name)
            if stat.S_ISREG(st.st_mode):
                yield Entry(child, st, False)
                continue
            try:
                child_fd = _refuse_links(lambda: os.open(name, _DIR_FLAGS, dir_fd=fd))  # noqa: B023
            except OSError:
                continue  # vanished, unreadable, or swapped for a link since it was listed
            try:
                opened = os.fstat(child_fd)
                key = (opened.st_dev, opened.st_ino)
                if key in visited:
                    os.close(child_fd)
                    continue
                visited.add(key)
                listing = _list(child_fd, child, wanted)
            except OSError:
                os.close(child_fd)
                continue
            yield Entry(child, opened, True)
            stack.append((child_fd, child, iter(listing)))
    finally:
        if root_fd >= 0:
            os.close(root_fd)
        for fd, _parts, _entries in stack:
            os.close(fd)


def _list(
    folder_fd: int, parts: Parts, wanted: Callable[[Parts, bool], bool]
) -> list[tuple[str, os.stat_result]]:
    """The wanted folders and regular files in an open folder, by their own (link) status."""
    found = []
    with os.scandir(folder_fd) as listing:
        for entry in listing:
            try:
                st = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            is_dir = stat.S_ISDIR(st.st_mode)
            if (is_dir or stat.S_ISREG(st.st_mode)) and wanted((*parts, entry.name), is_dir):
                found.append((entry.name, st))
    return found


def _walk_by_path(
    root: str,
    wanted: Callable[[Parts, bool], bool],
    cancelled: Callable[[], bool],
    visited: set[tuple[int, int]],
) -> Iterator[Entry]:
    """Windows: the same walk by path, refusing links and reparse points by their status."""
    root_stat = os.stat(root)
    if not stat.S_ISDIR(root_stat.st_mode):
        raise NotADirectoryError(errno.ENOTDIR, "not a folder", root)
    if (root_stat.st_dev, root_stat.st_ino) in visited:
        return
    visited.add((root_stat.st_dev, root_stat.st_ino))
    yield Entry((), root_stat, True)
    stack: list[Parts] = [()]
    first = True
    while stack:
        parts = stack.pop()
        try:
            with os.scandir(os.path.join(root, *parts)) as listing:
                entries = list(listing)
        except OSError:
            if first:
                raise
            continue
        first = False
        for entry in entries:
            if cancelled():
                return
            try:
                st = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            if _is_link(st):
                continue
            child = (*parts, entry.name)
            is_dir = stat.S_ISDIR(st.st_mode)
            if not (is_dir or stat.S_ISREG(st.st_mode)) or not wanted(child, is_dir):
                continue
            if is_dir:
                # A listing's status has no inode on Windows; the folder's own status has.
                try:
                    st = os.lstat(os.path.join(root, *child))
                except OSError:
                    continue
                if _is_link(st) or (st.st_dev, st.st_ino) in visited:
                    continue
                visited.add((st.st_dev, st.st_ino))
                stack.append(child)
            yield Entry(child, st, is_dir)
