"""Multi-source benchmark (not run by CI): one download from N capped sharing peers.

An index server, N headless sharing peers each limited to the same upload rate R (so the
sharers, not this machine's two cores, are the bottleneck, as on the internet) and one
``napster-peer --get`` downloader, all separate processes. For N = 1, 2, 4, 8 prints the
aggregate rate next to N x R and the downloader's peak RSS; then one run with unequal caps
(R, R/2, R/4, R/8) against their sum. Targets: at least 0.9 N R up to N = 4, RSS flat in N.

    .venv/bin/python tests/bench/multisource_bench.py [--size-gib 2] [--rate 20M] [--counts 1 2 4 8]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from app.network.rate_limit import parse_rate  # noqa: E402
from tests.bench.transfer_bench import make_source  # noqa: E402
from tests.system.conftest import Program, Sharer, get_args, wait_for_holders  # noqa: E402
from tests.test_server_cli import ServerProcess  # noqa: E402


def peak_rss(pid: int, stop: threading.Event, result: list[float]) -> None:
    """Keep the highest VmHWM seen of a process until it ends."""
    while not stop.is_set():
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    result[0] = max(result[0], int(line.split()[1]) / 1024)
        except OSError:
            return
        stop.wait(0.1)


def one_run(root: Path, server: ServerProcess, source: Path, rates: list[int]) -> tuple:
    share = source.parent
    sharers = [
        Sharer(root / f"sharer-{len(rates)}-{i}", server.port, share, str(rate))
        for i, rate in enumerate(rates)
    ]
    wait_for_holders(server.port, source.name, len(sharers))
    downloads = root / f"downloads-{len(rates)}-{sum(rates)}"
    run = Program(
        root / f"downloader-{len(rates)}-{sum(rates)}",
        *get_args(server.port, source.name, downloads, root / f"state-{len(rates)}-{sum(rates)}"),
    )
    rss, stop = [0.0], threading.Event()
    watcher = threading.Thread(target=peak_rss, args=(run.proc.pid, stop, rss), daemon=True)
    watcher.start()
    run.expect("Downloading", 120)  # timed from the first request, not the process start
    started = time.monotonic()
    code = run.finish(3600)
    elapsed = time.monotonic() - started
    stop.set()
    sent = [sharer.uploaded() for sharer in sharers]
    (downloads / source.name).unlink(missing_ok=True)
    return code, elapsed, sent, rss[0]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-gib", type=float, default=2.0)
    parser.add_argument("--rate", default="20M")
    parser.add_argument("--counts", type=int, nargs="+", default=[1, 2, 4, 8])
    args = parser.parse_args()
    rate = parse_rate(args.rate)
    size = int(args.size_gib * 1024**3)
    with tempfile.TemporaryDirectory(prefix="multisource-bench-") as tmp:
        root = Path(tmp)
        share = root / "share"
        share.mkdir()
        source = share / "big video.mkv"
        make_source(source, size)
        server = ServerProcess("--host", "127.0.0.1", "--port", "0", "--db", str(root / "i.db"))
        server.ready.wait(30)
        print(f"file {size / 1e9:.2f} GB, each source capped at {rate / 1e6:.1f} MB/s")
        print(
            f"{'sources':>8} {'aggregate MB/s':>15} {'N x R':>8} {'share':>6} {'RSS MB':>7}  sent"
        )
        runs = [[rate] * n for n in args.counts] + [[rate, rate // 2, rate // 4, rate // 8]]
        for rates in runs:
            code, elapsed, sent, rss = one_run(root, server, source, rates)
            aggregate = size / elapsed
            label = str(len(rates)) if len(set(rates)) == 1 else "R..R/8"
            print(
                f"{label:>8} {aggregate / 1e6:>15.1f} {sum(rates) / 1e6:>8.1f} "
                f"{aggregate / sum(rates):>6.2f} {rss:>7.0f}  "
                f"{[round(s / 1e6) for s in sent]} MB, exit {code}",
                flush=True,
            )
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
