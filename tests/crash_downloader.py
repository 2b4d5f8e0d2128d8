"""One download in its own process, for tests/test_crash_resume.py to kill -9 and restart.

    python -m tests.crash_downloader HASH SIZE FOLDER NAME HOST:PORT FINGERPRINT

Prints, one line each and flushed: ``state kept|rebuilt`` (was the piece state readable),
``resumed I,J,...`` (the pieces that verified again before any download), ``verified I``
(piece I downloaded, verified and written) and finally ``done PATH``.
"""

from __future__ import annotations

import sys
from pathlib import Path

from app.download import engine as fp
from app.network import protocol as p


class ReportingDownloader(fp.PieceDownloader):
    """The real engine, saying what it trusts after a restart and what it downloads."""

    def _reverify(self, rebuild: bool) -> None:
        say("state", "rebuilt" if rebuild else "kept")
        super()._reverify(rebuild)
        say("resumed", ",".join(str(i) for i, ok in enumerate(self.state.verified) if ok))

    def _write(self, fd: int, data, offset: int) -> None:
        super()._write(fd, data, offset)
        say("verified", str(offset // p.PIECE_SIZE))


def say(*words: str) -> None:
    print(*words, flush=True)


def main(argv: list[str]) -> int:
    file_hash, size, folder, name, source, fingerprint = argv
    host, port = source.rsplit(":", 1)
    spec = fp.DownloadSpec(
        hash=file_hash,
        size=int(size),
        name=name,
        folder=Path(folder),
        sources=[p.PeerAddress(host, int(port), fingerprint)],
    )
    final = ReportingDownloader(spec, timeouts=fp.Timeouts(connect=5, stall=5, tick=0.05)).run()
    say("done", str(final))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
