"""SharePolicy: the one rule for what below a shared folder is shared (pure, no Qt)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from app.filenames import INCOMPLETE_FOLDER
from app.sharing.policy import SharePolicy, excluded_set, is_private_name, private_folder


@pytest.mark.parametrize(
    "name",
    [
        ".hidden.mp3",
        ".napster-incomplete",
        "film.mp4.part",
        "film.mp4.PART",
        "film.mp4.part_",
        "film.mp4.part~1",
        "film.partial",
        "film.mp4.part.napster-state",
        "film.mp4.part.napster-state.napster-tmp",
        "film.mp4.napster-state",
        "film.mp4.napster-state.bak",
        "queue.json.napster-tmp",
        "queue.json.napster-tmp.1",
    ],
)
def test_private_names(name):
    assert is_private_name(name)


@pytest.mark.parametrize(
    "name", ["film.mp4", "Symphony.Part.2.mp3", "my.party.mp3", "part", "spare.parts.txt"]
)
def test_ordinary_names(name):
    assert not is_private_name(name)


def test_nothing_under_a_hidden_entry_at_any_depth(tmp_path):
    policy = SharePolicy((str(tmp_path),))
    root = str(tmp_path)
    assert policy.locate(os.path.join(root, "a", "b", "song.mp3")) == (root, ("a", "b", "song.mp3"))
    for path in [
        "a/.hidden/song.mp3",
        ".hidden/deep/song.mp3",
        f"downloads/{INCOMPLETE_FOLDER}/film.mkv",
        "a/.song.mp3",
        "a/film.mp4.part_",
    ]:
        assert policy.locate(os.path.join(root, *path.split("/"))) is None, path
    assert not policy.allows(root, ("a", ".hidden"), is_dir=True)
    assert policy.allows(root, ("a", "film.mp4.part_"), is_dir=True)  # a folder's name may


def test_outside_every_root_is_refused(tmp_path):
    policy = SharePolicy((str(tmp_path / "share"),))
    assert policy.locate(str(tmp_path / "other" / "file.txt")) is None
    assert policy.locate(str(tmp_path / "share-twin" / "file.txt")) is None
    assert policy.locate(str(tmp_path / "share")) is None


def test_the_innermost_root_decides(tmp_path):
    share, downloads = tmp_path / "share", tmp_path / "share" / ".downloads"
    policy = SharePolicy((str(share), str(downloads)))
    film = str(downloads / "film.mkv")
    assert policy.locate(film) == (str(downloads), ("film.mkv",))


def test_excluded_files_and_folders(tmp_path):
    share = tmp_path / "share"
    policy = SharePolicy(
        (str(share),), excluded_set([share / "data", share / "settings.ini", share / "cache.db"])
    )
    assert policy.locate(str(share / "data" / "queue.json")) is None
    assert policy.locate(str(share / "settings.ini")) is None
    assert policy.locate(str(share / "cache.db-wal")) is None
    assert policy.locate(str(share / "song.mp3")) is not None
    # A data folder that is the shared folder excludes only the files named in it.
    same = SharePolicy((str(share),), excluded_set([share, share / "queue.json"]))
    assert same.locate(str(share / "song.mp3")) is not None
    assert same.locate(str(share / "queue.json")) is None


def test_is_private_covers_a_folder_and_everything_inside_it(tmp_path):
    share = tmp_path / "share"
    asked: list[Path] = []
    owned = share / "incoming"

    def is_private(path: Path) -> bool:
        asked.append(path)
        return path == owned

    policy = SharePolicy((str(share),), is_private=is_private)
    assert policy.locate(str(owned / "deep" / "film.mkv")) is None
    assert owned in asked
    assert not policy.allows(str(share), ("incoming",), is_dir=True)
    assert policy.locate(str(share / "film.mkv")) is not None


def test_private_folder_follows_the_download_folder(tmp_path):
    folder = {"now": tmp_path / "one"}
    hook = private_folder(lambda: folder["now"] / INCOMPLETE_FOLDER)
    assert hook(tmp_path / "one" / INCOMPLETE_FOLDER / "x.mkv")
    assert not hook(tmp_path / "one" / "x.mkv")
    folder["now"] = tmp_path / "two"
    assert hook(tmp_path / "two" / INCOMPLETE_FOLDER)
    assert not hook(tmp_path / "one" / INCOMPLETE_FOLDER / "x.mkv")


def test_the_walk_applies_the_rule(tmp_path):
    share = tmp_path / "share"
    for relative in [
        "song.mp3",
        "a/b/film.mkv",
        "a/.hidden/secret.txt",
        "a/film.mkv.part_",
        f"{INCOMPLETE_FOLDER}/film.mkv",
        "incoming/half.mkv",
        "data/queue.json",
    ]:
        path = share / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x")
    policy = SharePolicy(
        (str(share),),
        excluded_set([share / "data"]),
        is_private=lambda path: path.name == "incoming",
    )
    result = policy.walk(lambda: False)
    assert result is not None
    assert sorted(result.files) == [str(share / "a" / "b" / "film.mkv"), str(share / "song.mp3")]
    assert str(share / "incoming") not in result.dirs


def test_the_pure_sharing_modules_import_no_qt():
    code = (
        "import sys\n"
        "import app.sharing.confined, app.sharing.policy, app.sharing.hash_cache\n"
        "sys.exit(any(name.startswith('PySide6') for name in sys.modules))\n"
    )
    root = Path(__file__).resolve().parent.parent
    done = subprocess.run([sys.executable, "-c", code], cwd=root, timeout=60)
    assert done.returncode == 0
