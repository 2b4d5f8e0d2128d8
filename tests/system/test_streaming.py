"""Watch while it downloads (issue 15), with a player nobody here wrote: ffmpeg reads the
stream of a video that downloads from a sharing peer capped a little above its bitrate."""

from __future__ import annotations

import subprocess
import time
import urllib.request

import imageio_ffmpeg

from tests.system.conftest import Program, Sharer, get_args

FFMPEG = imageio_ffmpeg.get_ffmpeg_exe()


def make_video(path, seconds: int = 12, faststart: bool = False) -> None:
    """An H.264 MP4 of about 2 MB a second, its index at the end (as most files have it),
    or at the start with ``faststart``."""
    subprocess.run(
        [
            FFMPEG, "-v", "error", "-y", "-f", "lavfi",
            "-i", f"testsrc2=size=1280x720:rate=25:duration={seconds}",
            "-c:v", "libx264", "-preset", "ultrafast", "-b:v", "16M", "-pix_fmt", "yuv420p",
            *(["-movflags", "+faststart"] if faststart else []),
            str(path),
        ],
        check=True,
    )  # fmt: skip


def test_ffmpeg_plays_the_stream_while_it_downloads_and_gets_the_same_bytes(
    tmp_path, index_server, watcher
):
    share = tmp_path / "share"
    share.mkdir()
    video = share / "aula 3.mp4"
    make_video(video)
    size = video.stat().st_size
    rate = int(size / 12 * 1.3)  # a little above the video's bitrate
    Sharer(tmp_path / "sharer", index_server.port, share, str(rate))
    downloads = tmp_path / "downloads"
    get = Program(
        tmp_path / "viewer",
        *get_args(index_server.port, video.name, downloads, tmp_path / "state", "--play"),
    )
    url = get.expect("Stream: ", 60).split("Stream: ", 1)[1]
    started = time.monotonic()
    with urllib.request.urlopen(
        urllib.request.Request(url, headers={"Range": "bytes=0-65535"})
    ) as r:
        first_bytes = r.read()
    first_byte_after = time.monotonic() - started
    decoded = subprocess.run(
        [FFMPEG, "-v", "error", "-i", url, "-f", "null", "-"], capture_output=True, text=True
    )
    decoded_after = time.monotonic() - started
    assert decoded.returncode == 0 and decoded.stderr == "", decoded.stderr[-2000:]
    assert first_bytes == video.read_bytes()[:65536]
    whole_download = size / rate
    assert first_byte_after < whole_download / 3, (first_byte_after, whole_download)
    get.expect("still serving the stream", 60)
    with urllib.request.urlopen(url) as r:
        assert r.read() == video.read_bytes()
    assert get.terminate() == 0, get.stderr[-20:]
    assert (downloads / video.name).read_bytes() == video.read_bytes()
    assert decoded_after < whole_download * 2
