"""Resume benchmark (not run by CI): bytes fetched vs file size across kill -9 and restart.

An index server, a headless sharing peer and a ``napster-peer --get`` downloader, each its
own process with its own profile. The downloader is killed with SIGKILL at random points
(``--kills``, default 3), started again each time, and finally left to finish. Prints what the
sharer sent in all (its own count of file bytes handed to the network) next to the file
size; the target is a ratio of at most 1.02. The sharer's upload limit (``--rate``) keeps the
socket buffers from filling up ahead of the reader, as on a real link.

    .venv/bin/python tests/bench/resume_bench.py [--size-gib 2] [--kills 3] [--rate 200M]
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from app.network import pieces as pc  # noqa: E402
from tests.bench.transfer_bench import make_source  # noqa: E402
from tests.system.conftest import Program, Sharer, get_args, verified_pieces  # noqa: E402
from tests.test_server_cli import ServerProcess  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-gib", type=float, default=2.0)
    parser.add_argument("--kills", type=int, default=3)
    parser.add_argument("--rate", default="200M", help="the sharer's --max-upload-rate")
    parser.add_argument("--seed", type=int, default=None)
    args = parser.parse_args()
    seed = args.seed if args.seed is not None else random.randrange(1 << 30)
    rng = random.Random(seed)
    with tempfile.TemporaryDirectory(prefix="resume-bench-") as tmp:
        root = Path(tmp)
        share = root / "share"
        share.mkdir()
        source = share / "big video.mkv"
        size = int(args.size_gib * 1024**3)
        make_source(source, size)
        digest = pc.hash_file(source)
        pieces = pc.piece_count(size)
        server = ServerProcess("--host", "127.0.0.1", "--port", "0", "--db", str(root / "i.db"))
        server.ready.wait(30)
        sharer = Sharer(root / "sharer", server.port, share, args.rate)
        downloads, data = root / "downloads", root / "state"
        get = get_args(server.port, source.name, downloads, data)
        points = sorted(rng.sample(range(1, pieces - 1), args.kills))
        started = time.monotonic()
        for point in points:
            run = Program(root / "downloader", *get)
            while verified_pieces(downloads, digest.hash, digest.size) < point:
                if run.proc.poll() is not None:
                    raise SystemExit(f"the downloader ended early: {run.stderr[-5:]}")
                time.sleep(0.01)
            run.kill()
            print(f"killed at {point}/{pieces} pieces", flush=True)
        final = Program(root / "downloader", *get)
        code = final.finish(3600)
        elapsed = time.monotonic() - started
        sent = sharer.uploaded()
        server.stop()
        same = (downloads / source.name).read_bytes() == source.read_bytes() if code == 0 else False
        print(f"seed {seed}; file {size:,} bytes; kills at pieces {points}")
        print(f"sharer sent {sent:,} bytes: ratio {sent / size:.4f} (target <= 1.02)")
        print(f"wasted by the kills: {(sent - size) / 1024**2:.1f} MiB in all")
        print(f"exit {code}, byte-identical {same}, {elapsed:.1f} s in all")
        return 0 if code == 0 and same and sent / size <= 1.02 else 1


if __name__ == "__main__":
    sys.exit(main())
