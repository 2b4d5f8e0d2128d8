"""Build the NapsterPeer and NapsterServer executables with PyInstaller.

    python build_scripts/build.py            build both into dist/ (skipped when up to date)
    python build_scripts/build.py --force    build again even if nothing changed
    python build_scripts/build.py peer       only NapsterPeer (or: server)

The two builds run side by side, each with its own PyInstaller cache under build/, and a
build whose inputs (sources, resources, build scripts, tool versions, NAPSTER_DEBUG_CONSOLE)
have not changed since the last successful one is reused. The result is one folder per program,
``dist/NapsterPeer/`` and ``dist/NapsterServer/`` (plus ``.app`` bundles on macOS), that runs
without Python installed. Set NAPSTER_DEBUG_CONSOLE=1 for Windows/macOS builds with a console.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HERE = ROOT / "build_scripts"
DIST = ROOT / "dist"
WORK = ROOT / "build"
INPUT_FOLDERS = ("app", "server_app", "resources", "build_scripts")
# Scripts in build_scripts/ that the executables do not depend on.
NOT_INPUTS = ("build_scripts/figures.py", "build_scripts/make_icons.py")
TOOL_DISTRIBUTIONS = ("pyinstaller", "pyinstaller-hooks-contrib", "PySide6-Essentials", "blake3")
DEBUG_CONSOLE_VARIABLE = "NAPSTER_DEBUG_CONSOLE"


@dataclass(frozen=True)
class Program:
    """One executable: its spec file and where PyInstaller puts it."""

    key: str
    name: str

    @property
    def spec(self) -> Path:
        return HERE / f"{self.key}.spec"

    @property
    def folder(self) -> Path:
        return DIST / self.name

    @property
    def executable(self) -> Path:
        return self.folder / (f"{self.name}.exe" if os.name == "nt" else self.name)

    @property
    def stamp(self) -> Path:
        return WORK / f"{self.name}.stamp"

    @property
    def log(self) -> Path:
        return WORK / f"{self.name}.log"


PROGRAMS = (Program("peer", "NapsterPeer"), Program("server", "NapsterServer"))


def input_fingerprint() -> str:
    """A digest of everything a build depends on; equal digests give equal builds."""
    digest = hashlib.sha256()
    for name in TOOL_DISTRIBUTIONS:
        try:
            digest.update(f"{name}={version(name)}\n".encode())
        except PackageNotFoundError:
            digest.update(f"{name}=none\n".encode())
    digest.update(f"{sys.version}|{sys.platform}|{os.environ.get(DEBUG_CONSOLE_VARIABLE)}".encode())
    files = [ROOT / "pyproject.toml"]
    for folder in INPUT_FOLDERS:
        files += [
            path
            for path in (ROOT / folder).rglob("*")
            if path.is_file() and "__pycache__" not in path.parts
        ]
    for path in sorted(files):
        if path.relative_to(ROOT).as_posix() in NOT_INPUTS:
            continue
        digest.update(path.relative_to(ROOT).as_posix().encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def is_up_to_date(program: Program, fingerprint: str) -> bool:
    return (
        program.executable.is_file()
        and program.stamp.is_file()
        and program.stamp.read_text().strip() == fingerprint
    )


def folder_size(folder: Path) -> int:
    """Bytes of every file under ``folder`` (symbolic links count as themselves)."""
    total = 0
    for directory, _subdirectories, files in os.walk(folder):
        total += sum(os.lstat(os.path.join(directory, name)).st_size for name in files)
    return total


def libraries_left_out(program: Program) -> dict[str, set[str]]:
    """Libraries a bundled file links to that PyInstaller could not find on this machine.

    They are not in the bundle, so the program needs them installed where it runs (on Linux,
    Qt's xcb plugin needs libxcb-icccm4 and libxcb-keysyms1, for example). Maps each library
    to the bundled files that need it.
    """
    pattern = re.compile(r"could not resolve '([^']+)', dependency of '([^']+)'")
    bundled = {path.name for path in program.folder.rglob("*")}
    missing: dict[str, set[str]] = {}
    for line in program.log.read_text(encoding="utf-8", errors="replace").splitlines():
        match = pattern.search(line)
        if match and Path(match.group(2)).name in bundled:
            missing.setdefault(match.group(1), set()).add(Path(match.group(2)).name)
    return missing


def start_build(program: Program) -> subprocess.Popen:
    """PyInstaller on the program's spec, in the background, its output in a log file."""
    WORK.mkdir(parents=True, exist_ok=True)
    program.stamp.unlink(missing_ok=True)
    env = dict(os.environ)
    # A cache per program: the two builds run at once and would otherwise write the same files.
    env["PYINSTALLER_CONFIG_DIR"] = str(WORK / f"pyinstaller-cache-{program.key}")
    command = [
        sys.executable,
        "-m",
        "PyInstaller",
        "--noconfirm",
        "--log-level",
        "WARN",
        "--distpath",
        str(DIST),
        "--workpath",
        str(WORK / program.name),
        str(program.spec),
    ]
    with program.log.open("w", encoding="utf-8") as log:
        return subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)


def build(programs: list[Program], force: bool = False) -> int:
    """Build ``programs`` side by side; 0 when every one is built or already up to date."""
    try:
        import PyInstaller  # noqa: F401
    except ModuleNotFoundError:
        print(
            "PyInstaller is not installed in this environment: "
            "run `python3 dev.py build`, or `pip install -e '.[build]'` first.",
            file=sys.stderr,
        )
        return 2
    fingerprint = input_fingerprint()
    started = time.monotonic()
    running = {}
    for program in programs:
        if not force and is_up_to_date(program, fingerprint):
            print(f"{program.name}: up to date ({program.folder.relative_to(ROOT)})", flush=True)
        else:
            print(f"{program.name}: building ...", flush=True)
            running[program] = start_build(program)
    failed = 0
    for program, process in running.items():
        if process.wait() != 0 or not program.executable.is_file():
            failed += 1
            print(f"{program.name}: build FAILED; the end of {program.log}:", file=sys.stderr)
            lines = program.log.read_text(encoding="utf-8", errors="replace").splitlines()
            print("\n".join(lines[-40:]), file=sys.stderr)
            continue
        program.stamp.write_text(fingerprint + "\n")
        for library, users in sorted(libraries_left_out(program).items()):
            print(
                f"{program.name}: warning: {library} (needed by {', '.join(sorted(users))}) is "
                "missing on this machine, so not bundled: install it here and build again, or "
                "the program needs it wherever it runs",
                file=sys.stderr,
                flush=True,
            )
    if running:
        print(f"built in {time.monotonic() - started:.1f} s", flush=True)
    for program in programs:
        if program.executable.is_file():
            size = folder_size(program.folder) / 2**20
            print(
                f"{program.name}: {program.executable.relative_to(ROOT)}  {size:.1f} MiB",
                flush=True,
            )
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Build NapsterPeer and NapsterServer.")
    parser.add_argument("programs", nargs="*", metavar="peer|server", help="default: both")
    parser.add_argument("--force", action="store_true", help="build even when up to date")
    args = parser.parse_args(argv)
    known = [program.key for program in PROGRAMS]
    unknown = sorted(set(args.programs) - set(known))
    if unknown:
        parser.error(f"unknown program {', '.join(unknown)}; choose from {', '.join(known)}")
    chosen = [program for program in PROGRAMS if not args.programs or program.key in args.programs]
    return build(chosen, force=args.force)


if __name__ == "__main__":
    sys.exit(main())
