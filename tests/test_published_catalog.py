"""PublishedCatalog: the announced files by path and hash (pure, thread-safe)."""

from __future__ import annotations

from pathlib import Path

from app.sharing.catalog import PublishedCatalog, SharedFile


def shared(path: str, file_hash: str, mtime_ns: int = 1) -> SharedFile:
    return SharedFile(Path(path), Path(path).name, 10, mtime_ns, file_hash, ())


def test_publish_lookup_and_replace():
    catalog = PublishedCatalog()
    one = shared("/s/one.bin", "a" * 64)
    catalog.publish([one])
    assert catalog.lookup("a" * 64) == one and catalog.get("/s/one.bin") == one
    newer = shared("/s/one.bin", "b" * 64, mtime_ns=2)
    catalog.publish([newer])
    assert catalog.lookup("a" * 64) is None and catalog.lookup("b" * 64) == newer
    assert catalog.files() == [newer]


def test_removals_keep_duplicates_announced_under_their_names():
    catalog = PublishedCatalog()
    one, two = shared("/s/one.bin", "a" * 64), shared("/s/sub/two.bin", "a" * 64)
    twin = shared("/s/other/one.bin", "a" * 64)
    catalog.publish([one, two, twin])
    # Another path keeps the name "one.bin": nothing to announce.
    assert catalog.removals(catalog.withdraw(["/s/one.bin"])) == ([], [])
    # The name "two.bin" is lost: remove the hash, announce what still holds it.
    assert catalog.removals(catalog.withdraw(["/s/sub/two.bin"])) == (["a" * 64], [twin])
    assert catalog.removals(catalog.withdraw(["/s/other/one.bin"])) == (["a" * 64], [])
    assert catalog.withdraw(["/s/nowhere"]) == []


def test_distrust_only_the_version_that_was_found_changed():
    catalog = PublishedCatalog()
    old = shared("/s/one.bin", "a" * 64)
    catalog.publish([old])
    catalog.publish([shared("/s/one.bin", "b" * 64, mtime_ns=2)])
    assert not catalog.distrust(old)  # already replaced: nothing withdrawn
    current = catalog.get("/s/one.bin")
    assert current is not None and catalog.distrust(current)
    assert catalog.lookup("b" * 64) is None
    assert catalog.snapshot() == ({}, {"/s/one.bin"})
    catalog.trust("/s/one.bin")
    assert catalog.snapshot() == ({}, set())
