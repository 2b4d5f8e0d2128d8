"""Streaming benchmark (not run by CI): play a video while it downloads.

Makes an H.264 video with ffmpeg (about 2 MB a second; ``--seconds 500`` is about 1 GB), shares
it from ``--sources`` headless peers each capped at 1.5 times the video's bitrate (together),
and downloads it with ``napster-peer --get ... --play``. Prints:

- time from Play (the stream URL printed) to the first decoded frame (ffmpeg reading the URL);
- stalls while ffmpeg decodes in real time (``-re``) for ``--decode-seconds``: how often, and for
  how long, the decoded position fell behind the wall clock by more than 0.5 s;
- the time to answer a seek to 80 % of the file (a range request) while downloading.

Targets: first frame within 1.5 s, no stall after the first, seek answered within 5 s.

    .venv/bin/python tests/bench/stream_bench.py [--seconds 500] [--sources 1] [--decode-seconds 60]
        [--faststart] [--split-cap]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tests.system.conftest import Program, Sharer, get_args, wait_for_holders  # noqa: E402
from tests.system.test_streaming import FFMPEG, make_video  # noqa: E402
from tests.test_server_cli import ServerProcess  # noqa: E402


def first_frame_seconds(url: str) -> float:
    started = time.monotonic()
    subprocess.run(
        [FFMPEG, "-v", "error", "-i", url, "-frames:v", "1", "-f", "null", "-"], check=True
    )
    return time.monotonic() - started


def realtime_stalls(url: str, seconds: float) -> tuple[int, float]:
    """Decode in real time; (stalls, total stalled seconds) from ffmpeg's progress lines."""
    process = subprocess.Popen(
        [FFMPEG, "-v", "error", "-re", "-i", url, "-t", str(seconds), "-f", "null", "-",
         "-progress", "pipe:1", "-stats_period", "0.1"],
        stdout=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    started = None
    behind = 0.0
    stalls, stalled = 0, 0.0
    for line in process.stdout:
        if not line.startswith("out_time_us="):
            continue
        try:
            position = int(line.split("=", 1)[1]) / 1e6
        except ValueError:
            continue
        now = time.monotonic()
        if started is None:
            started = now - position
        lag = (now - started) - position
        if lag - behind > 0.5:  # fell further behind: a stall
            stalls += 1
            stalled += lag - behind
        behind = max(behind, lag)
    process.wait()
    return stalls, stalled


def seek_seconds(url: str, size: int) -> float:
    offset = int(size * 0.8)
    started = time.monotonic()
    request = urllib.request.Request(url, headers={"Range": f"bytes={offset}-{offset + 65535}"})
    with urllib.request.urlopen(request, timeout=120) as response:
        response.read(1)
    return time.monotonic() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=500)
    parser.add_argument("--sources", type=int, default=1)
    parser.add_argument("--decode-seconds", type=float, default=60)
    parser.add_argument(
        "--faststart", action="store_true", help="the video's index at its start, not its end"
    )
    parser.add_argument(
        "--split-cap", action="store_true", help="1.5x the bitrate for all sources together"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="stream-bench-") as tmp:
        root = Path(tmp)
        share = root / "share"
        share.mkdir()
        video = share / "long lecture.mp4"
        make_video(video, args.seconds, args.faststart)
        size = video.stat().st_size
        bitrate = size / args.seconds
        # Each source capped at 1.5 times the bitrate (--split-cap: the sources together).
        cap = int(bitrate * 1.5 / (args.sources if args.split_cap else 1))
        server = ServerProcess("--host", "127.0.0.1", "--port", "0", "--db", str(root / "i.db"))
        server.ready.wait(30)
        sharers = [
            Sharer(root / f"sharer{i}", server.port, share, str(cap)) for i in range(args.sources)
        ]
        wait_for_holders(server.port, video.name, len(sharers))
        get = Program(
            root / "viewer",
            *get_args(server.port, video.name, root / "downloads", root / "state", "--play"),
        )
        url = get.expect("Stream: ", 120).split("Stream: ", 1)[1]
        first = first_frame_seconds(url)
        stalls, stalled = realtime_stalls(url, args.decode_seconds)
        seek = seek_seconds(url, size)
        index = "at the start" if args.faststart else "at the end"
        print(
            f"video {size / 1e9:.2f} GB, {bitrate * 8 / 1e6:.1f} Mbit/s, {args.seconds} s,"
            f" its index {index}"
        )
        print(
            f"{args.sources} source(s) at {cap / 1e6:.2f} MB/s each "
            f"({cap * args.sources / bitrate:.1f}x the bitrate in all)"
        )
        print(f"first decoded frame after Play: {first:.2f} s (target <= 1.5 s)")
        print(
            f"real-time decode of {args.decode_seconds:.0f} s: {stalls} stalls, "
            f"{stalled:.2f} s stalled (target: none after the first)"
        )
        print(f"seek to 80 %: answered in {seek:.2f} s (target <= 5 s)")
        get.terminate()
        for sharer in sharers:
            sharer.terminate()
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
