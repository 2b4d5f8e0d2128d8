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


# Shared libraries Qt's X11 (xcb) platform plugin needs that desktops often lack, with the
# package that holds each on Debian/Ubuntu, Fedora, Arch and openSUSE. Qt reports a missing
# one as "xcb-cursor0 or libxcb-cursor0 is needed" whatever it is, which misleads.
XCB_PACKAGES = {
    "libxcb-cursor.so.0": (
        "libxcb-cursor0",
        "xcb-util-cursor",
        "xcb-util-cursor",
        "libxcb-cursor0",
    ),
    "libxcb-icccm.so.4": ("libxcb-icccm4", "xcb-util-wm", "xcb-util-wm", "libxcb-icccm4"),
    "libxcb-keysyms.so.1": (
        "libxcb-keysyms1",
        "xcb-util-keysyms",
        "xcb-util-keysyms",
        "libxcb-keysyms1",
    ),
    "libxcb-image.so.0": ("libxcb-image0", "xcb-util-image", "xcb-util-image", "libxcb-image0"),
    "libxcb-render-util.so.0": (
        "libxcb-render-util0",
        "xcb-util-renderutil",
        "xcb-util-renderutil",
        "libxcb-render-util0",
    ),
    "libxkbcommon-x11.so.0": (
        "libxkbcommon-x11-0",
        "libxkbcommon-x11",
        "libxkbcommon-x11",
        "libxkbcommon-x11-0",
    ),
    "libxcb-xkb.so.1": ("libxcb-xkb1", "libxcb", "libxcb", "libxcb-xkb1"),
    "libxcb-shape.so.0": ("libxcb-shape0", "libxcb", "libxcb", "libxcb-shape0"),
    "libxcb-randr.so.0": ("libxcb-randr0", "libxcb", "libxcb", "libxcb-randr0"),
    "libxcb-xinerama.so.0": ("libxcb-xinerama0", "libxcb", "libxcb", "libxcb-xinerama0"),
    "libEGL.so.1": ("libegl1", "libglvnd-egl", "libglvnd", "libEGL1"),
    "libfontconfig.so.1": ("libfontconfig1", "fontconfig", "fontconfig", "libfontconfig1"),
}
INSTALLERS = (
    (("debian", "ubuntu"), "sudo apt-get install", 0),
    (("fedora", "rhel", "centos"), "sudo dnf install", 1),
    (("arch",), "sudo pacman -S", 2),
    (("opensuse", "suse"), "sudo zypper install", 3),
)


def missing_libraries(ldd_output: str, cursor_found: bool) -> list[str]:
    """Known libraries that ``ldd`` reports "not found", plus xcb-cursor (loaded at run time)."""
    missing = []
    for line in ldd_output.splitlines():
        name, _, where = line.strip().partition(" => ")
        if "not found" in where and name in XCB_PACKAGES and name not in missing:
            missing.append(name)
    if not cursor_found and "libxcb-cursor.so.0" not in missing:
        missing.append("libxcb-cursor.so.0")
    return missing


def install_command(missing: list[str], os_release: str) -> str:
    """The one command that installs ``missing`` on the distribution ``os_release`` names."""
    fields = dict(line.split("=", 1) for line in os_release.splitlines() if "=" in line)
    family = " ".join(fields.get(key, "").strip('"') for key in ("ID", "ID_LIKE")).split()
    for names, installer, column in INSTALLERS:
        if any(name in family for name in names):
            packages = sorted({XCB_PACKAGES[lib][column] for lib in missing})
            return f"{installer} {' '.join(packages)}"
    packages = sorted({XCB_PACKAGES[lib][0] for lib in missing})
    return f"install the packages that provide: {' '.join(missing)} (Debian: {' '.join(packages)})"


def desktop_problem(python: Path) -> str | None:
    """What stops Qt's X11 plugin from starting here, with the install command; None if fine."""
    import shutil

    if not sys.platform.startswith("linux") or shutil.which("ldd") is None:
        return None
    platform = os.environ.get("QT_QPA_PLATFORM", "")
    wayland = os.environ.get("WAYLAND_DISPLAY") and os.environ.get("XDG_SESSION_TYPE") == "wayland"
    if (platform and not platform.startswith("xcb")) or (not platform and wayland):
        return None
    found = subprocess.run(
        [str(python), "-c", "import PySide6, os; print(os.path.dirname(PySide6.__file__))"],
        capture_output=True,
        text=True,
    )
    qt = Path(found.stdout.strip()) / "Qt"
    plugin = qt / "plugins" / "platforms" / "libqxcb.so"
    if found.returncode or not plugin.is_file():
        return None
    targets = [plugin, *sorted((qt / "lib").glob("libQt6XcbQpa.so*"))[:1]]
    output = "".join(
        subprocess.run(["ldd", str(t)], capture_output=True, text=True).stdout for t in targets
    )
    cursor = subprocess.run(["ldconfig", "-p"], capture_output=True, text=True).stdout
    missing = missing_libraries(output, "libxcb-cursor.so.0" in cursor)
    if not missing:
        return None
    try:
        release = Path("/etc/os-release").read_text()
    except OSError:
        release = ""
    return (
        "The windows cannot open yet: Qt's X11 support needs system libraries this desktop "
        f"lacks ({', '.join(missing)}).\nInstall them with:\n\n    "
        f"{install_command(missing, release)}\n\nthen run `python3 dev.py run` again. "
        "(`python3 dev.py test` needs none of them.)"
    )


def run_app(python: Path, extra: list[str]) -> int:
    """The index server's admin window and a peer window, both on localhost."""
    problem = desktop_problem(python)
    if problem:
        print(problem, file=sys.stderr)
        return 1
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
