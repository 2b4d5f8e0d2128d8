"""kill -9 the downloading process at random points, restart it, and the file still finishes.

The downloader runs in its own process (``tests/crash_downloader.py``: the real
``PieceDownloader``) against a source paced like a slow link. Between crashes the piece
state is sometimes cut short or garbled, and once a verified piece is damaged on disk. After
every restart each piece that was verified before the crash is trusted again only after it
verifies again, and is never downloaded twice; the finished file is byte-identical.
"""

from __future__ import annotations

import os
import queue
import random
import socket
import subprocess
import sys
import threading
from collections import Counter
from pathlib import Path

from app.download import layout
from app.network import pieces as pc
from tests.fake_source import FAKE_IDENTITY, FakeSource
from tests.test_server_cli import ROOT
from tests.test_transfer import PIECE, make_file

PIECES = 24
#: Time one piece takes on the simulated slow link.
PIECE_PACE = 0.025
RUN_TIMEOUT = 20.0


class PacedSource(FakeSource):
    """A sharing peer on a slow link: serves one file, one piece per PIECE_PACE seconds."""

    concurrent = True

    def __init__(self, path: Path, digest: pc.FileDigest) -> None:
        self.data = path.read_bytes()
        super().__init__(path, digest, "film.mkv")

    def send_body(self, conn: socket.socket, offset: int, length: int) -> bool:
        for start in range(offset, offset + length, PIECE):
            conn.sendall(self.data[start : min(start + PIECE, offset + length)])
            if self.closing.wait(PIECE_PACE):  # the link's pace, not a wait
                return False
        return True


class DownloaderProcess:
    """The crash_downloader script; its output lines arrive on a queue."""

    def __init__(self, digest: pc.FileDigest, folder: Path, source: str) -> None:
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.crash_downloader",
                digest.hash,
                str(digest.size),
                str(folder),
                "film.mkv",
                source,
                FAKE_IDENTITY.fingerprint,
            ],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, "QT_QPA_PLATFORM": "offscreen"},
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def next_line(self) -> str | None:
        """The next output line, None at the end; fails the test after RUN_TIMEOUT."""
        try:
            line = self.lines.get(timeout=RUN_TIMEOUT)
        except queue.Empty:
            self.proc.kill()
            raise AssertionError("the downloader went silent:\n" + "\n".join(self.seen)) from None
        if line is not None:
            self.seen.append(line)
        return line

    def expect(self, word: str) -> str:
        line = self.next_line()
        assert (line is not None and line.startswith(word + " ")) or line == word, self.seen
        return line[len(word) + 1 :]

    def rest(self) -> list[str]:
        """Every remaining line until the process ends."""
        lines = []
        while (line := self.next_line()) is not None:
            lines.append(line)
        self.proc.wait(timeout=RUN_TIMEOUT)
        return lines


def pieces_in(text: str) -> set[int]:
    return {int(i) for i in text.split(",") if i}


def damage(state_path: Path, part_path: Path, how: str, rng: random.Random) -> None:
    if how == "cut":
        body = state_path.read_bytes()
        state_path.write_bytes(body[: rng.randrange(1, len(body))])
    elif how == "garble":
        state_path.write_bytes(os.urandom(300))
    elif how == "bad piece":
        with open(part_path, "r+b") as f:
            f.seek(PIECE + 1234)  # inside piece 1, verified by now
            byte = f.read(1)
            f.seek(PIECE + 1234)
            f.write(bytes([byte[0] ^ 0xFF]))


def test_kill_9_at_random_points_then_resume_finishes_without_downloading_twice(tmp_path):
    seed = random.randrange(1 << 30)
    rng = random.Random(seed)
    source_path = make_file(tmp_path / "film.mkv", PIECES * PIECE + 4321, seed=seed)
    digest = pc.hash_file(source_path)
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    part = layout.part_path(downloads, digest.hash, digest.size)
    state = layout.state_path_for(part)
    source = PacedSource(source_path, digest)
    downloads_of = Counter()
    trusted: set[int] = set()  # verified and written before the last crash
    damages = ["cut", "garble", "bad piece"]
    rng.shuffle(damages)
    damages.insert(0, "none")  # the first run starts from nothing
    context = f"seed {seed}"
    try:
        for crash, how in enumerate(damages):
            if crash:
                damage(state, part, how, rng)
            run = DownloaderProcess(digest, downloads, str(source.address))
            assert run.expect("state") == (
                "kept" if crash and how in ("none", "bad piece") else "rebuilt"
            )
            resumed = pieces_in(run.expect("resumed"))
            broken = {1} if how == "bad piece" else set()
            assert trusted - broken <= resumed, (context, how, trusted - resumed)
            assert not resumed & broken, context
            new = set()
            while len(new) < rng.randint(2, 4):
                new.add(int(run.expect("verified")))
            run.proc.kill()  # SIGKILL: no chance to save anything
            new |= {int(line.split()[1]) for line in run.rest() if line.startswith("verified ")}
            assert run.proc.returncode == -9
            assert not new & resumed, (context, "a trusted piece was downloaded again")
            downloads_of.update(new)
            trusted = resumed | new

        final = DownloaderProcess(digest, downloads, str(source.address))
        final.expect("state")
        resumed = pieces_in(final.expect("resumed"))
        assert trusted <= resumed, (context, trusted - resumed)
        lines = final.rest()
        assert final.proc.returncode == 0, final.seen
        new = {int(line.split()[1]) for line in lines if line.startswith("verified ")}
        downloads_of.update(new)
        assert lines[-1] == f"done {downloads / 'film.mkv'}"
    finally:
        source.close()

    assert pc.hash_file(downloads / "film.mkv").hash == digest.hash
    assert sorted(os.listdir(downloads)) == [".napster-incomplete", "film.mkv"]
    assert os.listdir(downloads / ".napster-incomplete") == []  # no .part or state left
    assert set(downloads_of) | resumed == set(range(PIECES + 1))
    # Only the piece damaged on disk was ever fetched twice.
    assert {i for i, n in downloads_of.items() if n > 1} <= {1}, (context, downloads_of)
