"""Set up the development environment and run the app or the tests.

    python3 dev.py run     create .venv, install, start the index server and a peer on localhost
    python3 dev.py test    create .venv, install, run ruff and the test suite
    python3 dev.py build   create .venv, install, build the NapsterPeer and NapsterServer programs

Only the Python standard library is used here, so it works on a fresh clone.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
STAMP = VENV / ".napster-installed"


def venv_python() -> Path:
    if os.name == "nt":
        return VENV / "Scripts" / "python.exe"
    return VENV / "bin" / "python"


def ensure_environment() -> Path:
    """Create .venv and install the project with its test extras when pyproject changed."""
    python = venv_python()
    if not python.exists():
        print("Creating virtual environment in .venv ...", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    wanted = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    if not STAMP.exists() or STAMP.read_text().strip() != wanted:
        print("Installing napster-p2p and its test tools ...", flush=True)
        pip = [str(python), "-m", "pip", "install", "--disable-pip-version-check", "-q"]
        subprocess.run([*pip, "--upgrade", "pip"], check=True)
        subprocess.run([*pip, "-e", f"{ROOT}[test]"], check=True)
        STAMP.write_text(wanted)
    return python


def run_tests(python: Path, extra: list[str]) -> int:
    env = dict(os.environ, QT_QPA_PLATFORM=os.environ.get("QT_QPA_PLATFORM", "offscreen"))
    for step in (["-m", "ruff", "check", "."], ["-m", "ruff", "format", "--check", "."]):
        code = subprocess.run([str(python), *step], cwd=ROOT, env=env).returncode
        if code:
            return code
    return subprocess.run([str(python), "-m", "pytest", *extra], cwd=ROOT, env=env).returncode


def run_app(python: Path, extra: list[str]) -> int:
    """The index server's admin window and a peer window, both on localhost."""
    server = subprocess.Popen(
        [str(python), "-m", "server_app", "--host", "127.0.0.1", "--port", "1099"], cwd=ROOT
    )
    # No flags: the first run asks for the server (127.0.0.1:1099 by default) and the folders.
    peer = subprocess.Popen([str(python), "-m", "app", *extra], cwd=ROOT)
    try:
        code = peer.wait()
        server.wait()
        return code
    except KeyboardInterrupt:
        for process in (peer, server):
            process.terminate()
        for process in (peer, server):
            process.wait()
        return 130


def run_build(python: Path, extra: list[str]) -> int:
    """The self-contained executables, into dist/ (see build_scripts/build.py)."""
    script = ROOT / "build_scripts" / "build.py"
    return subprocess.run([str(python), str(script), *extra], cwd=ROOT).returncode


def main() -> int:
    command = sys.argv[1] if len(sys.argv) > 1 else ""
    if command not in ("run", "test", "build"):
        print(__doc__)
        return 2
    python = ensure_environment()
    if command == "test":
        return run_tests(python, sys.argv[2:])
    if command == "build":
        return run_build(python, sys.argv[2:])
    return run_app(python, sys.argv[2:])


if __name__ == "__main__":
    sys.exit(main())
