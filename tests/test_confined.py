"""app.sharing.confined: files reached beneath a folder one name at a time, never via a link."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from app.sharing import confined
from app.sharing.confined import NotBeneath, open_file, walk_beneath
from tests.swapper import Swapper

RACE_SECONDS = 2.0


def write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def read(root: Path, *parts: str) -> bytes:
    fd = open_file(str(root), parts)
    with os.fdopen(fd, "rb") as file:
        return file.read()


def everything(_parts, _is_dir) -> bool:
    return True


def walked(root: Path) -> dict[tuple[str, ...], bool]:
    return {e.parts: e.is_dir for e in walk_beneath(str(root), everything, lambda: False)}


def inodes(folder: Path) -> set[tuple[int, int]]:
    return {(p.stat().st_dev, p.stat().st_ino) for p in folder.rglob("*")}


@pytest.fixture
def tree(tmp_path: Path) -> tuple[Path, Path]:
    share, outside = tmp_path / "share", tmp_path / "outside"
    write(share / "a" / "b" / "file.txt", b"inside")
    write(share / "top.txt", b"top")
    write(outside / "file.txt", b"OUTSIDE")
    write(outside / "b" / "file.txt", b"OUTSIDE deeper")
    return share, outside


def test_reads_files_beneath_the_folder(tree):
    share, _ = tree
    assert read(share, "a", "b", "file.txt") == b"inside"
    assert read(share, "top.txt") == b"top"
    assert confined.USE_DIR_FD


@pytest.mark.parametrize("level", ["file", "first folder", "second folder"])
def test_a_link_at_any_level_is_refused(tree, level):
    share, outside = tree
    if level == "file":
        (share / "a" / "b" / "file.txt").unlink()
        (share / "a" / "b" / "file.txt").symlink_to(outside / "file.txt")
    elif level == "first folder":
        (share / "a").rename(share / "a-away")
        (share / "a").symlink_to(outside, target_is_directory=True)
        (outside / "b").mkdir(exist_ok=True)
    else:
        (share / "a" / "b").rename(share / "a" / "b-away")
        (share / "a" / "b").symlink_to(outside, target_is_directory=True)
    with pytest.raises(NotBeneath):
        read(share, "a", "b", "file.txt")
    if level != "file":
        with pytest.raises(NotBeneath):
            confined.lstat_file(str(share), ("a", "b", "file.txt"))


def test_names_that_are_not_plain_and_files_that_are_not_regular_are_refused(tree):
    share, _ = tree
    for parts in [("..", "outside", "file.txt"), ("a", "", "x"), ("a/b", "file.txt"), ()]:
        with pytest.raises(NotBeneath):
            open_file(str(share), parts)
    os.mkfifo(share / "pipe")
    with pytest.raises(NotBeneath):
        open_file(str(share), ("pipe",))  # refused at once, never blocks on the pipe
    with pytest.raises(NotBeneath):
        open_file(str(share), ("a",))


def test_the_walk_lists_no_link_and_enters_none(tree):
    share, outside = tree
    (share / "link-dir").symlink_to(outside, target_is_directory=True)
    (share / "a" / "link-file").symlink_to(outside / "file.txt")
    (share / "loop").symlink_to(share, target_is_directory=True)
    os.mkfifo(share / "pipe")
    assert walked(share) == {
        (): True,
        ("a",): True,
        ("a", "b"): True,
        ("a", "b", "file.txt"): False,
        ("top.txt",): False,
    }


def test_unwanted_folders_are_not_entered(tree):
    share, _ = tree
    seen = []

    def wanted(parts, is_dir) -> bool:
        seen.append(parts)
        return parts != ("a",)

    found = {e.parts for e in walk_beneath(str(share), wanted, lambda: False)}
    assert found == {(), ("top.txt",)}
    assert ("a", "b") not in seen


def test_a_folder_swapped_with_a_link_in_a_race_never_leads_outside(tree):
    share, outside = tree
    (share / "swap").symlink_to(outside, target_is_directory=True)
    outside_inodes = inodes(outside)
    inside_inode = (share / "a" / "b" / "file.txt").stat()
    opened = refused = walks = 0
    with Swapper(share / "a", share / "swap") as swapper:
        deadline = time.monotonic() + RACE_SECONDS
        while time.monotonic() < deadline:
            for first in ("a", "swap"):
                try:
                    fd = open_file(str(share), (first, "b", "file.txt"))
                except (NotBeneath, FileNotFoundError):
                    refused += 1
                    continue
                try:
                    st = os.fstat(fd)
                    assert (st.st_dev, st.st_ino) == (inside_inode.st_dev, inside_inode.st_ino)
                    assert os.read(fd, 100) == b"inside"
                finally:
                    os.close(fd)
                opened += 1
            for entry in walk_beneath(str(share), everything, lambda: False):
                assert (entry.stat.st_dev, entry.stat.st_ino) not in outside_inodes, entry
            walks += 1
    assert swapper.swaps > 1000, swapper.swaps
    assert opened > 10 and refused > 10, (opened, refused)
    assert walks > 10
