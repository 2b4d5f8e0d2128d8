"""TLS transfer benchmark (not run by CI): plaintext vs TLS 1.3, same run, alternating.

The sharer is the real ``UploadServer`` in a child process (so each side's CPU time is its
own); the downloader is the real ``PieceDownloader`` in this process, from the DOWNLOAD
requests to the verified file under its final name. Plaintext is the test-only switch
(``plaintext_for_tests``); TLS is pinned to the sharer's fingerprint. Prints throughput
and CPU seconds per GB on each side (``resource.getrusage``: user + system), and the rate
before the finish (the final fsync of the whole file takes the same time in both kinds),
and what both sides' CPU allows at most on this machine's cores.

    .venv/bin/python tests/bench/tls_bench.py [--size-gib 2] [--rounds 2]
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from app.download import engine as fp  # noqa: E402
from app.download.source import SourceConnection  # noqa: E402
from app.network import pieces as pc  # noqa: E402
from app.network import protocol as p  # noqa: E402
from tests.bench.transfer_bench import make_source  # noqa: E402

GB = 1e9


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def serve(path: Path, digest_file: Path, plaintext: bool) -> None:
    """The sharer (child process): serve one file until stdin closes, then print its CPU."""
    from PySide6.QtCore import QCoreApplication, QSocketNotifier

    from app.network.upload_server import UploadServer
    from tests.catalog import Catalog

    app = QCoreApplication([])
    digest = json.loads(digest_file.read_text())
    catalog = Catalog()
    catalog.share(
        path,
        pc.FileDigest(
            hash=digest["hash"],
            size=digest["size"],
            pieces=tuple(bytes.fromhex(d) for d in digest["pieces"]),
        ),
    )
    server = UploadServer(catalog, plaintext_for_tests=plaintext)
    port = server.start("127.0.0.1", 0)
    started = cpu_seconds()
    print(json.dumps({"port": port, "fingerprint": server.fingerprint}), flush=True)
    notifier = QSocketNotifier(sys.stdin.fileno(), QSocketNotifier.Type.Read)
    notifier.activated.connect(app.quit)
    app.exec()
    server.stop()
    print(json.dumps({"cpu": cpu_seconds() - started}), flush=True)


def one_run(source: Path, digest: pc.FileDigest, digest_file: Path, plaintext: bool, work: Path):
    """(seconds, downloader CPU seconds, sharer CPU seconds) of one download."""
    child = subprocess.Popen(
        [sys.executable, __file__, "--serve", str(source), str(digest_file)]
        + (["--plaintext"] if plaintext else []),
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "QT_QPA_PLATFORM": "offscreen"},
    )
    ready = json.loads(child.stdout.readline())
    downloads = work / "downloads"
    shutil.rmtree(downloads, ignore_errors=True)
    downloads.mkdir()
    fp.layout.incomplete_folder(downloads).mkdir()
    spec = fp.DownloadSpec(
        hash=digest.hash,
        size=digest.size,
        name="film.bin",
        folder=downloads,
        sources=[p.PeerAddress("127.0.0.1", ready["port"], ready["fingerprint"])],
    )
    factory = functools.partial(SourceConnection, plaintext_for_tests=plaintext)
    downloader = fp.PieceDownloader(spec, threading.Event(), source_factory=factory)
    finishing: list[float] = []
    finalize = downloader._finalize

    def timed_finalize():
        finishing.append(time.perf_counter())
        return finalize()

    downloader._finalize = timed_finalize
    cpu_before = cpu_seconds()
    started = time.perf_counter()
    final = downloader.run()
    took = time.perf_counter() - started
    transfer = finishing[0] - started
    downloader_cpu = cpu_seconds() - cpu_before
    child.stdin.close()
    sharer_cpu = json.loads(child.stdout.readline())["cpu"]
    child.wait(30)
    assert Path(final).stat().st_size == digest.size
    shutil.rmtree(downloads)
    return took, downloader_cpu, sharer_cpu, transfer


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size-gib", type=float, default=2.0)
    parser.add_argument("--rounds", type=int, default=2, help="each round: plaintext, then TLS")
    parser.add_argument("--serve", nargs=2, help=argparse.SUPPRESS)
    parser.add_argument("--plaintext", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(Path(args.serve[0]), Path(args.serve[1]), args.plaintext)
        return
    size = int(args.size_gib * 1024**3)
    if os.geteuid() == 0:
        # Reclaiming a page cache filled by earlier work made one run's writes cost up to
        # three times another's (0.27-1.6 s per GiB): start both kinds from free memory.
        os.sync()
        with contextlib.suppress(OSError):  # read-only in some containers
            Path("/proc/sys/vm/drop_caches").write_text("1\n")
    with tempfile.TemporaryDirectory(prefix="tls-bench-") as folder:
        work = Path(folder)
        source = work / "source.bin"
        make_source(source, size)
        digest = pc.hash_file(source)
        digest_file = work / "digest.json"
        digest_file.write_text(
            json.dumps({"hash": digest.hash, "size": digest.size, "pieces": digest.pieces_hex})
        )
        results: dict[str, list[tuple[float, float, float, float]]] = {"plaintext": [], "tls": []}
        for round_number in range(args.rounds):
            for kind in ("plaintext", "tls"):
                run = one_run(source, digest, digest_file, kind == "plaintext", work)
                took, mine, theirs, transfer = run
                results[kind].append(run)
                print(
                    f"round {round_number + 1} {kind:9}: {size / took / GB:5.2f} GB/s "
                    f"({size / transfer / GB:5.2f} before the finish), "
                    f"CPU per GB: downloader {mine / (size / GB):5.2f} s, "
                    f"sharer {theirs / (size / GB):5.2f} s",
                    flush=True,
                )
    print(f"\n{args.size_gib:g} GiB on loopback, {args.rounds} rounds, medians:")
    medians = {}
    for kind, runs in results.items():
        took = statistics.median(r[0] for r in runs)
        mine = statistics.median(r[1] for r in runs)
        theirs = statistics.median(r[2] for r in runs)
        transfer = statistics.median(r[3] for r in runs)
        medians[kind] = size / took / GB
        total = (mine + theirs) / (size / GB)
        print(
            f"  {kind:9}: {size / took / GB:5.2f} GB/s ({size / transfer / GB:.2f} before the "
            f"finish); CPU s/GB downloader "
            f"{mine / (size / GB):.2f}, sharer {theirs / (size / GB):.2f}, both {total:.2f} "
            f"(ceiling on {os.cpu_count()} cores: {os.cpu_count() / total:.2f} GB/s)"
        )
    print(f"  TLS / plaintext throughput: {medians['tls'] / medians['plaintext']:.2f}")


if __name__ == "__main__":
    main()
