"""Speed-limit benchmark (not run by CI): a limited transfer runs at its limit (within 5 %).

An index server, a headless sharing peer and a ``napster-peer --get`` downloader, separate
processes. Each run limits one side (the sharer's ``--max-upload-rate`` or the downloader's
``--max-download-rate``) and times the download from its first request to the verified file.

    .venv/bin/python tests/bench/rate_limit_bench.py [--size-mb 200] [--rates 5M 20M]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from app.network.rate_limit import parse_rate  # noqa: E402
from tests.bench.transfer_bench import make_source  # noqa: E402
from tests.system.conftest import Program, Sharer, get_args  # noqa: E402
from tests.test_server_cli import ServerProcess  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=200)
    parser.add_argument("--rates", nargs="+", default=["5M", "20M"])
    args = parser.parse_args()
    size = args.size_mb * 1_000_000
    with tempfile.TemporaryDirectory(prefix="rate-bench-") as tmp:
        root = Path(tmp)
        share = root / "share"
        share.mkdir()
        source = share / "film.mkv"
        make_source(source, size)
        server = ServerProcess("--host", "127.0.0.1", "--port", "0", "--db", str(root / "i.db"))
        server.ready.wait(30)
        print(f"file {size / 1e6:.0f} MB")
        print(f"{'limited side':>14} {'limit MB/s':>11} {'measured MB/s':>14} {'off by':>8}")
        run = 0
        for text in args.rates:
            rate = parse_rate(text)
            for side in ("upload", "download"):
                run += 1
                sharer = Sharer(
                    root / f"sharer{run}", server.port, share, text if side == "upload" else None
                )
                extra = ["--max-download-rate", text] if side == "download" else []
                get = Program(
                    root / f"get{run}",
                    *get_args(
                        server.port, source.name, root / f"dl{run}", root / f"s{run}", *extra
                    ),
                )
                get.expect("Downloading", 120)
                started = time.monotonic()
                code = get.finish(3600)
                elapsed = time.monotonic() - started
                measured = size / elapsed
                print(
                    f"{side:>14} {rate / 1e6:>11.1f} {measured / 1e6:>14.2f} "
                    f"{(measured - rate) / rate * 100:>+7.1f}%  (exit {code})",
                    flush=True,
                )
                sharer.terminate()
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
