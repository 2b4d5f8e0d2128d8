"""Push vs direct through a namespace internet (not run by CI; root, like tests/netlab.py).

A public index server and a public downloader; two sharers whose links are shaped to the
same rate with tc tbf: one public (downloaded from directly) and one behind a NAT router
(downloaded from by push: it connects out to the downloader). Each round the downloader
fetches a file of the same size from each, in turn, with ``napster-peer --get``; the time
is read from its log, from the download being queued to the file in place, so process
start-up and the search are not counted. Prints throughput and time for each.

    .venv/bin/python tests/bench/nat_bench.py [--rate 100mbit] [--size-mib 64] [--rounds 2]
"""

from __future__ import annotations

import argparse
import datetime
import os
import statistics
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tests.netlab import NetLab, rate_bits  # noqa: E402

STAMP = "%Y-%m-%d %H:%M:%S,%f"


def start(host, argv: list[str], ready: str) -> subprocess.Popen:
    process = host.popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    for line in process.stdout:
        if ready in line:
            break
    else:
        raise SystemExit(f"{argv[:4]} ended before {ready!r}")
    # Its log must never fill the pipe and stop it.
    threading.Thread(target=lambda: [None for _ in process.stdout], daemon=True).start()
    return process


def sharer(host, index: str, folder: Path, name: str, size: int, port: int) -> subprocess.Popen:
    share = folder / "share"
    share.mkdir(parents=True)
    (share / name).write_bytes(os.urandom(size))
    argv = [sys.executable, "-m", "app", "--headless", "--server", index, "--share", str(share)]
    argv += ["--downloads", str(folder / "dl"), "--data-dir", str(folder / "state")]
    return start(host, [*argv, "--port", str(port)], "joined as")


def timed_get(host, index: str, folder: Path, name: str) -> float:
    """Seconds from queued to in place, read from the downloader's log."""
    argv = [sys.executable, "-m", "app", "--get", name, "--server", index]
    argv += ["--downloads", str(folder / "dl"), "--data-dir", str(folder / "state")]
    done = host.run([*argv, "--port", "6699"], capture_output=True, text=True, timeout=600)
    if done.returncode:
        raise SystemExit(f"--get {name} failed: {done.stdout[-2000:]}{done.stderr[-2000:]}")
    queued = finished = None
    for line in (done.stdout + done.stderr).splitlines():
        if " INFO napster.transfers: Queued " in line:
            queued = datetime.datetime.strptime(line[:23], STAMP)
        elif " downloaded to " in line and " INFO napster.transfers: " in line:
            finished = datetime.datetime.strptime(line[:23], STAMP)
    if queued is None or finished is None:
        raise SystemExit("the downloader's log did not say when it queued and finished")
    return (finished - queued).total_seconds()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rate", default="100mbit", help="both sharers' link rate (tc)")
    parser.add_argument("--size-mib", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    size = args.size_mib * 1024 * 1024
    work = Path(tempfile.mkdtemp(prefix="nat-bench-"))
    times: dict[str, list[float]] = {"direct": [], "push": []}
    with NetLab() as lab:
        index_host = lab.add_public_host("index")
        downloader = lab.add_public_host("dl")
        public = lab.add_public_host("pub", rate=args.rate)
        natted = lab.add_nat_router("home", rate=args.rate).add_host("nat")
        index = f"{index_host.address}:1099"
        argv = [sys.executable, "-m", "server_app", "--headless", "--port", "1099"]
        argv += ["--db", str(work / "index.sqlite3"), "--identity-dir", str(work / "id")]
        processes = [start(index_host, argv, "listening on")]
        try:
            for round_ in range(args.rounds):
                names = {"direct": f"direct {round_}.bin", "push": f"push {round_}.bin"}
                port = 6699 + round_  # the last round's sharers are still running
                for host, kind in ((public, "direct"), (natted, "push")):
                    folder = work / f"{kind}{round_}"
                    processes.append(sharer(host, index, folder, names[kind], size, port))
                for kind in ("direct", "push"):
                    seconds = timed_get(downloader, index, work / f"d{round_}{kind}", names[kind])
                    times[kind].append(seconds)
                    print(
                        f"round {round_ + 1} {kind:6}: {size / seconds / 1e6:6.1f} MB/s"
                        f" ({seconds:.2f} s for {args.size_mib} MiB)",
                        flush=True,
                    )
        finally:
            for process in processes:
                process.terminate()
            for process in processes:
                process.wait(30)
    link = rate_bits(args.rate) / 8 / 1e6
    for kind, seconds in times.items():
        median = statistics.median(seconds)
        print(
            f"{kind:6}: median {size / median / 1e6:6.1f} MB/s ({median:.2f} s);"
            f" link {link:.1f} MB/s"
        )
    ratio = statistics.median(times["direct"]) / statistics.median(times["push"])
    print(f"push / direct throughput: {ratio:.2f}")


if __name__ == "__main__":
    main()
