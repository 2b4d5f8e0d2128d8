"""Measure the native builds: folder sizes and start-up time to the first window.

    python build_scripts/figures.py              sizes and start-up times (builds if needed)
    python build_scripts/figures.py --baseline   also build a plain PyInstaller bundle of a
                                                 minimal PySide6 window and report its size
    python build_scripts/figures.py --runs 9     more runs per program (default 7)

Start-up time is measured from starting the process to the first frame of its main window
reaching the offscreen screen, as Qt's ``qt.widgets.painting`` debug category reports it; the
same probe times the frozen programs and ``python -m app`` / ``python -m server_app`` from
source. Every run has a fresh home folder. The figure printed is the median of the runs.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import build  # noqa: E402  (build_scripts/build.py)

ROOT = build.ROOT
PROBE_ENV = {
    "QT_QPA_PLATFORM": "offscreen",
    "QT_LOGGING_RULES": "qt.widgets.painting.debug=true",
    "QT_MESSAGE_PATTERN": "%{type} %{category}: %{message}",
}
FIRST_FRAME = re.compile(r"^debug qt\.widgets\.painting: Flushing .* of (MainWindow|AdminWindow)\(")
WINDOW_DEADLINE = 60.0
MINIMAL_WINDOW = """\
import sys
from PySide6.QtWidgets import QApplication, QMainWindow, QLabel
app = QApplication(sys.argv)
window = QMainWindow()
window.setCentralWidget(QLabel("Hello"))
window.show()
sys.exit(app.exec())
"""


def seconds_to_first_window(command: list[str], home: Path) -> float:
    """Start ``command`` and return the seconds until its main window's first frame."""
    env = dict(os.environ, **PROBE_ENV)
    runtime = home / "runtime"
    runtime.mkdir(mode=0o700, parents=True)
    env.update(
        HOME=str(home),
        XDG_CONFIG_HOME=str(home / ".config"),
        XDG_DATA_HOME=str(home / ".local" / "share"),
        XDG_CACHE_HOME=str(home / ".cache"),
        XDG_RUNTIME_DIR=str(runtime),
    )
    started = time.perf_counter()
    process = subprocess.Popen(
        command,
        cwd=ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        errors="replace",
    )
    try:
        for line in process.stderr:
            if FIRST_FRAME.search(line):
                return time.perf_counter() - started
            if time.perf_counter() - started > WINDOW_DEADLINE:
                break
        raise RuntimeError(f"{command[0]} showed no window")
    finally:
        process.terminate()
        process.wait(timeout=15)


def median_start(command: list[str], runs: int) -> tuple[float, list[float]]:
    times = []
    for _ in range(runs):
        with tempfile.TemporaryDirectory(prefix="napster-figures-") as home:
            times.append(seconds_to_first_window(command, Path(home)))
    return statistics.median(times), times


def baseline_size() -> int:
    """Bytes of a default PyInstaller build of a minimal PySide6 window."""
    folder = build.WORK / "baseline"
    folder.mkdir(parents=True, exist_ok=True)
    script = folder / "minimal_window.py"
    script.write_text(MINIMAL_WINDOW)
    env = dict(os.environ, PYINSTALLER_CONFIG_DIR=str(folder / "cache"))
    command = [sys.executable, "-m", "PyInstaller", "--noconfirm", "--log-level", "WARN"]
    command += ["--distpath", str(folder / "dist"), "--workpath", str(folder / "work")]
    command += ["--specpath", str(folder), str(script)]
    subprocess.run(command, cwd=folder, env=env, check=True, capture_output=True)
    return build.folder_size(folder / "dist" / "minimal_window")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--baseline", action="store_true")
    args = parser.parse_args()
    if build.build(list(build.PROGRAMS)) != 0:
        return 1
    mib = 2**20
    peer, server = build.PROGRAMS
    if args.baseline:
        print(
            f"plain PyInstaller build of a minimal PySide6 window: {baseline_size() / mib:.1f} MiB"
        )
    for program in build.PROGRAMS:
        print(f"{program.name} folder: {build.folder_size(program.folder) / mib:.1f} MiB")
    with tempfile.TemporaryDirectory(prefix="napster-figures-") as folders:
        shared, downloads = Path(folders, "shared"), Path(folders, "downloads")
        shared.mkdir()
        downloads.mkdir()
        peer_args = ["--server", "127.0.0.1:1", "--share", str(shared)]
        peer_args += ["--downloads", str(downloads), "--port", "0"]
        server_args = ["--host", "127.0.0.1", "--port", "0"]
        runs = [
            ("NapsterPeer (frozen)", [str(peer.executable), *peer_args]),
            ("python -m app (source)", [sys.executable, "-m", "app", *peer_args]),
            ("NapsterServer (frozen)", [str(server.executable), *server_args]),
            ("python -m server_app (source)", [sys.executable, "-m", "server_app", *server_args]),
        ]
        for label, command in runs:
            median, times = median_start(command, args.runs)
            shown = ", ".join(f"{t:.2f}" for t in times)
            print(f"{label}: first window after {median:.2f} s (median; runs: {shown})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
