"""Transfer benchmark (not run by CI).

An index server and two peers, each its own process. Peer A (--headless) shares
a large file; peer B (--cli) searches and downloads it. Prints the throughput
from the DOWNLOAD command to the verified file under its final name, next to
the ceiling measured in the same run on the same file: a plain Python pair
(sender ``socket.sendfile``, receiver ``recv_into`` + write + fsync). Also each
peer's peak RSS.

    .venv/bin/python tests/bench/transfer_bench.py [--sizes-gib 2 4] [--runs 3]
"""

from __future__ import annotations

import argparse
import os
import queue
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from blake3 import blake3

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tests.bench.index_bench import peak_rss_mb  # noqa: E402

MIB = 1024 * 1024


def make_source(path: Path, size: int) -> None:
    block = blake3(b"napster bench").digest(length=16 * MIB)
    with open(path, "wb") as f:
        written = 0
        while written < size:
            chunk = block[: min(len(block), size - written)]
            # Vary each block so pieces differ.
            f.write(written.to_bytes(8, "little") + chunk[8:])
            written += len(chunk)


class Process:
    def __init__(self, args: list[str], home: Path) -> None:
        env = {
            **os.environ,
            "HOME": str(home),
            "XDG_DATA_HOME": str(home / "data"),
            "XDG_CONFIG_HOME": str(home / "config"),
            "QT_QPA_PLATFORM": "offscreen",
        }
        self.proc = subprocess.Popen(
            args,
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))

    def expect(self, text: str, timeout: float = 600) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=1)
            except queue.Empty:
                continue
            if text in line:
                return line
        raise TimeoutError(text)

    def type(self, line: str) -> None:
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(60)


def plain_pair(source: Path, target: Path) -> float:
    """Seconds for the baseline: sendfile sender thread, recv_into+write+fsync receiver."""
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    size = source.stat().st_size

    def send() -> None:
        conn, _ = listener.accept()
        with conn, open(source, "rb") as f:
            conn.sendfile(f)

    sender = threading.Thread(target=send)
    sender.start()
    started = time.perf_counter()
    buffer = bytearray(4 * MIB)
    view = memoryview(buffer)
    with socket.create_connection(("127.0.0.1", port)) as sock, open(target, "wb") as out:
        received = 0
        while received < size:
            n = sock.recv_into(view)
            if not n:
                break
            out.write(view[:n])
            received += n
        out.flush()
        os.fsync(out.fileno())
    elapsed = time.perf_counter() - started
    sender.join()
    listener.close()
    target.unlink()
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes-gib", type=float, nargs="+", default=[2, 4])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="napster-bench-"))
    python = sys.executable
    server = Process(
        [
            python,
            "-m",
            "server_app",
            "--headless",
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--db",
            str(work / "index.sqlite3"),
        ],
        work / "server-home",
    )
    port = int(server.expect("napster-server listening on").rsplit(":", 1)[1])
    address = f"127.0.0.1:{port}"
    try:
        for size_gib in args.sizes_gib:
            size = int(size_gib * 1024**3)
            share, downloads = work / "a-share", work / "b-downloads"
            shutil.rmtree(share, ignore_errors=True)
            share.mkdir()
            name = f"bench-{size_gib:g}GiB.mkv"
            make_source(share / name, size)
            a = Process(
                [
                    python,
                    "-m",
                    "app",
                    "--headless",
                    "--server",
                    address,
                    "--share",
                    str(share),
                    "--downloads",
                    str(work / "a-downloads"),
                    "--port",
                    "0",
                ],
                work / "a-home",
            )
            ours, ceiling, rss_b = [], [], []
            try:
                a.expect("joined as")
                for _run in range(args.runs):
                    ceiling.append(plain_pair(share / name, work / "plain.bin"))
                    shutil.rmtree(downloads, ignore_errors=True)
                    shutil.rmtree(work / "b-home", ignore_errors=True)
                    (work / "b-share").mkdir(exist_ok=True)
                    b = Process(
                        [
                            python,
                            "-m",
                            "app",
                            "--cli",
                            "--server",
                            address,
                            "--share",
                            str(work / "b-share"),
                            "--downloads",
                            str(downloads),
                            "--port",
                            "0",
                        ],
                        work / "b-home",
                    )
                    try:
                        b.expect("4 QUIT")
                        for line in ("JOIN", "", ""):
                            b.type(line)
                        b.expect("I am peer")
                        while True:
                            b.type("SEARCH")
                            b.type(name)
                            if "peers with the requested file: 127" in b.expect("requested file"):
                                break
                            time.sleep(0.5)  # the sharer is still hashing: a benchmark may poll
                        b.type("DOWNLOAD")
                        b.type(name)
                        started = time.perf_counter()
                        b.type("")
                        b.expect("downloaded successfully")
                        ours.append(time.perf_counter() - started)
                        rss_b.append(peak_rss_mb(b.proc.pid))
                        b.type("QUIT")
                        b.proc.wait(60)
                    finally:
                        b.stop()
                rss_a = peak_rss_mb(a.proc.pid)
            finally:
                a.stop()
            ours_rate = size / statistics.median(ours) / 1e9
            ceiling_rate = size / statistics.median(ceiling) / 1e9
            print(f"{size_gib:g} GiB, median of {args.runs} runs:")
            print(
                f"  napster download (DOWNLOAD -> verified final file): {ours_rate:.2f} GB/s "
                f"(runs: {', '.join(f'{size / t / 1e9:.2f}' for t in ours)})"
            )
            print(
                "  ceiling, plain Python pair (sendfile -> recv_into+write+fsync): "
                f"{ceiling_rate:.2f} GB/s "
                f"(runs: {', '.join(f'{size / t / 1e9:.2f}' for t in ceiling)})"
            )
            print(f"  ratio: {ours_rate / ceiling_rate:.2f} (target >= 0.85)")
            print(
                f"  peak RSS: sharing peer {rss_a:.0f} MB, downloading peer {max(rss_b):.0f} MB "
                "(target < 150 MB)",
                flush=True,
            )
            shutil.rmtree(share, ignore_errors=True)
            shutil.rmtree(downloads, ignore_errors=True)
    finally:
        server.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
