"""What goes into the NapsterPeer and NapsterServer bundles; peer.spec and server.spec use it.

Both programs are PySide6 widget applications that speak plain TCP. A default PyInstaller build
of such a program carries every Qt plugin of the modules it imports (EGL, VNC and framebuffer
platforms, TLS and network-information backends, a dozen image formats), Qt's translations for
about fifty languages, the GTK theme plugin with the GTK stack it pulls in, and unstripped
libraries. This module keeps only what the programs use, and adds the project's own resources.

Build-time switches (environment variables):

- ``NAPSTER_DEBUG_CONSOLE=1``: Windows and macOS builds get a console window that shows the
  programs' output and tracebacks (they are windowed builds otherwise). Linux builds always
  write to the terminal they are started from.
"""

from __future__ import annotations

import fnmatch
import os
import re
import sys
from pathlib import Path, PurePosixPath

ROOT = Path(__file__).resolve().parent.parent
RESOURCES = ROOT / "resources"
DEBUG_CONSOLE_VARIABLE = "NAPSTER_DEBUG_CONSOLE"
DISTRIBUTION = "napster-p2p"
TRANSLATION_CATALOG = "napster"

IS_WINDOWS = sys.platform == "win32"
IS_MACOS = sys.platform == "darwin"

# Standard-library and third-party modules neither program imports at run time. PyInstaller
# would otherwise follow optional imports into them (tkinter alone brings Tcl/Tk, ~10 MB).
UNUSED_MODULES = [
    "tkinter",
    "_tkinter",
    "turtle",
    "turtledemo",
    "idlelib",
    "test",
    "unittest",
    "doctest",
    "pdb",
    "pydoc",
    "pydoc_data",
    "lib2to3",
    "distutils",
    "setuptools",
    "pkg_resources",
    "ensurepip",
    "venv",
    "xmlrpc",
    "curses",
    "_curses",
    "readline",
    "_hashlib",  # OpenSSL's hashes (5 MB of libcrypto); hashlib falls back to its own
    "PySide6.QtDBus",
    "PySide6.QtOpenGL",
    "PySide6.QtOpenGLWidgets",
    "PySide6.QtPrintSupport",
    "PySide6.QtQml",
    "PySide6.QtQuick",
    "PySide6.QtQuickControls2",
    "PySide6.QtQuickWidgets",
    "PySide6.QtPdf",
    "PySide6.QtPdfWidgets",
    "PySide6.QtWebEngineCore",
    "PySide6.QtWebEngineWidgets",
    "PySide6.QtWebEngineQuick",
    "PySide6.QtWebChannel",
    "PySide6.QtWebSockets",
    "PySide6.QtMultimedia",
    "PySide6.QtMultimediaWidgets",
    "PySide6.QtCharts",
    "PySide6.QtDataVisualization",
    "PySide6.QtGraphs",
    "PySide6.QtDesigner",
    "PySide6.QtUiTools",
    "PySide6.QtHelp",
    "PySide6.QtSql",
    "PySide6.QtTest",
    "PySide6.QtXml",
    "PySide6.QtConcurrent",
    "PySide6.QtSvgWidgets",
]

# Files under resources/ used only to build or install: the executables' own icons (embedded
# by PyInstaller), Linux desktop entries, and compiled catalogs left in the source tree.
BUILD_ONLY_SUFFIXES = {".ico", ".icns", ".desktop", ".qm"}

# Qt plugins kept, by plugin folder: file-name patterns (matched case-insensitively, without the
# "lib" prefix and the extension). A folder not listed here is left out entirely: egldevice-
# integrations, generic (evdev/tuio input), networkinformation, xcbglintegrations, ...
QT_PLUGINS_KEPT = {
    # On-screen platforms of Linux, Windows and macOS, plus offscreen/minimal for tests and CI.
    "platforms": ["qxcb", "qwayland*", "qwindows", "qcocoa", "qoffscreen", "qminimal"],
    # Desktop-portal theme (file dialogs, colour scheme); the GTK theme would need GTK itself.
    "platformthemes": ["qxdgdesktopportal"],
    # Dead keys and compose sequences, and input methods (IBus) for typing any language.
    "platforminputcontexts": ["*"],
    # The file-type icons are SVG files.
    "iconengines": ["qsvgicon"],
    "imageformats": ["qsvg"],
    # The native look on Windows and macOS.
    "styles": ["*"],
    # Wayland: the standard shell, window decorations, and the EGL buffer integration Qt asks for.
    "wayland-shell-integration": ["xdg-shell"],
    "wayland-decoration-client": ["*"],
    "wayland-graphics-integration-client": ["qt-plugin-wayland-egl"],
    # The index client's TLS (QSslSocket): OpenSSL on Linux, Schannel on Windows, Secure
    # Transport on macOS. Without it a peer cannot reach any index server.
    "tls": ["qopensslbackend", "qschannelbackend", "qsecuretransportbackend"],
}


# ---------------------------------------------------------------- version and icons


def project_version() -> str:
    """The version in pyproject.toml, the one ``pip install`` gives the package."""
    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        section = text.split("[project]", 1)[1].split("\n[", 1)[0]
        match = re.search(r'^version\s*=\s*"([^"]+)"', section, re.MULTILINE)
        if match is None:
            raise ValueError("pyproject.toml has no [project] version") from None
        return match.group(1)
    return tomllib.loads(text)["project"]["version"]


def icon_file(kind: str) -> str | None:
    """The icon PyInstaller embeds in the executable: .ico on Windows, .icns on macOS."""
    if IS_WINDOWS:
        return str(RESOURCES / "icons" / f"napster-{kind}.ico")
    if IS_MACOS:
        return str(RESOURCES / "icons" / f"napster-{kind}.icns")
    return None  # Linux executables carry no icon; the window and the .desktop file do


def console_wanted() -> bool:
    """A console executable: always on Linux; on Windows/macOS only for a debug build."""
    if not (IS_WINDOWS or IS_MACOS):
        return True
    return os.environ.get(DEBUG_CONSOLE_VARIABLE, "") not in ("", "0")


def strip_wanted() -> bool:
    """Strip symbol tables from ELF libraries (libpython alone shrinks from 23 to 5.5 MB)."""
    return sys.platform.startswith("linux")


# ---------------------------------------------------------------- bundled data


def data_files(staging: Path) -> list[tuple[str, str]]:
    """(source, destination folder) pairs: ``resources/`` and the package metadata.

    Every run-time file under ``resources/`` goes in, at the same place (new icons or style
    sheets need no change here); the translation catalogs go in compiled as well. Generated
    files (compiled catalogs, metadata) are written under ``staging``.
    """
    datas = []
    for path in sorted(RESOURCES.rglob("*")):
        relative = path.relative_to(RESOURCES)
        if (
            path.is_file()
            and path.suffix not in BUILD_ONLY_SUFFIXES
            and relative.parts[0] != "i18n"
        ):
            datas.append((str(path), (Path("resources") / relative.parent).as_posix()))
    for ts_path, qm_path in compiled_translations(staging / "i18n"):
        datas += [(str(ts_path), "resources/i18n"), (str(qm_path), "resources/i18n")]
    metadata = write_metadata(staging / "metadata")
    datas.append((str(metadata), metadata.parent.name))
    return datas


def compiled_translations(folder: Path) -> list[tuple[Path, Path]]:
    """Every ``resources/i18n/*.ts`` with its catalog compiled into ``folder``."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from app.i18n import compile_ts

    pairs = []
    for ts_path in sorted((RESOURCES / "i18n").glob(f"{TRANSLATION_CATALOG}_*.ts")):
        qm_path = folder / ts_path.with_suffix(".qm").name
        if not qm_path.is_file() or qm_path.stat().st_mtime_ns < ts_path.stat().st_mtime_ns:
            compile_ts(ts_path, qm_path)
        pairs.append((ts_path, qm_path))
    return pairs


def keep_compiled_catalogs_current(bundle: Path) -> None:
    """Make every bundled ``.qm`` at least as new as its ``.ts``.

    PyInstaller copies files without their times, in no set order; app.i18n compiles a catalog
    again (into the user's cache) when the ``.qm`` looks older than its source.
    """
    for qm_path in bundle.rglob(f"{TRANSLATION_CATALOG}_*.qm"):
        ts_path = qm_path.with_suffix(".ts")
        if ts_path.is_file() and qm_path.stat().st_mtime_ns < ts_path.stat().st_mtime_ns:
            times = ts_path.stat()
            os.utime(qm_path, ns=(times.st_atime_ns, times.st_mtime_ns))


def shipped_languages() -> list[str]:
    """Language codes the app has translations for (``pt_BR`` from ``napster_pt_BR.ts``)."""
    prefix = f"{TRANSLATION_CATALOG}_"
    return [path.stem[len(prefix) :] for path in (RESOURCES / "i18n").glob(f"{prefix}*.ts")]


def write_metadata(folder: Path) -> Path:
    """A minimal ``METADATA`` so ``importlib.metadata.version()`` works in the frozen program.

    Written from pyproject.toml rather than copied from an installed distribution, so the
    frozen version is right even when the environment holds a stale (editable) install.
    """
    version = project_version()
    dist_info = folder / f"{DISTRIBUTION.replace('-', '_')}-{version}.dist-info"
    dist_info.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*.dist-info"):
        if old != dist_info:
            for path in old.iterdir():
                path.unlink()
            old.rmdir()
    text = f"Metadata-Version: 2.1\nName: {DISTRIBUTION}\nVersion: {version}\n"
    metadata = dist_info / "METADATA"
    if not metadata.is_file() or metadata.read_text(encoding="utf-8") != text:
        metadata.write_text(text, encoding="utf-8")
    return metadata


# ---------------------------------------------------------------- trimming


def _qt_plugin(destination: str) -> tuple[str, str] | None:
    """(plugin folder, bare name) if ``destination`` is a Qt plugin, else None."""
    parts = PurePosixPath(destination.replace("\\", "/")).parts
    if len(parts) < 4 or parts[-3] != "plugins" or not parts[0].startswith("PySide6"):
        return None
    name = parts[-1].split(".")[0].lower()
    return parts[-2], name.removeprefix("lib")


def keep_qt_plugin(destination: str) -> bool:
    """True unless ``destination`` is a Qt plugin that ``QT_PLUGINS_KEPT`` leaves out."""
    plugin = _qt_plugin(destination)
    if plugin is None:
        return True
    folder, name = plugin
    patterns = QT_PLUGINS_KEPT.get(folder, [])
    return any(fnmatch.fnmatchcase(name, pattern) for pattern in patterns)


def keep_qt_translation(destination: str, languages: list[str]) -> bool:
    """Qt's own catalogs only for the languages the app is translated into."""
    path = PurePosixPath(destination.replace("\\", "/"))
    if "translations" not in path.parts[:-1] or not path.parts[0].startswith("PySide6"):
        return True
    if path.suffix != ".qm":
        return True
    wanted = {code for language in languages for code in (language, language.split("_")[0])}
    catalog, _, code = path.stem.partition("_")
    return catalog == "qtbase" and code in wanted


def _library_key(name: str) -> str:
    name = PurePosixPath(name.replace("\\", "/")).name
    return name.lower() if IS_WINDOWS else name


def prune_unreachable_libraries(binaries: list[tuple]) -> list[tuple]:
    """Drop shared libraries that nothing kept links to.

    Roots are the Python runtime, the Python extension modules and the kept Qt plugins; a
    library stays when a root needs it, directly or through other libraries. This removes what
    only the dropped plugins needed (the GTK stack of the GTK theme, EGL device support, ...).
    macOS builds are left as PyInstaller made them (framework bundles are linked differently).
    """
    if IS_MACOS:
        return binaries
    from PyInstaller.depend.bindepend import get_imports, get_python_library_path

    python_library = _library_key(get_python_library_path() or "")
    libraries: dict[str, list[tuple]] = {}
    roots = []
    for entry in binaries:
        destination, _source, typecode = entry
        if typecode == "EXTENSION" or _qt_plugin(destination) is not None:
            roots.append(entry)
        elif typecode == "BINARY":
            if _library_key(destination) == python_library:
                roots.append(entry)
            libraries.setdefault(_library_key(destination), []).append(entry)
    needed = {entry[0] for entry in roots}
    queue = list(roots)
    while queue:
        _destination, source, _typecode = queue.pop()
        for name, _path in get_imports(source):
            for library in libraries.get(_library_key(name), []):
                if library[0] not in needed:
                    needed.add(library[0])
                    queue.append(library)
    return [entry for entry in binaries if entry[2] != "BINARY" or entry[0] in needed]


def _link_target(entry: tuple) -> str:
    """The bundle path a SYMLINK entry points to (its target is relative to the link)."""
    destination, target, _typecode = entry
    joined = PurePosixPath(destination.replace("\\", "/")).parent / target.replace("\\", "/")
    return os.path.normpath(str(joined)).replace("\\", "/")


def drop_dangling_links(entries: list[tuple], collected: set[str]) -> list[tuple]:
    """Leave out SYMLINK entries whose target is no longer collected."""
    return [e for e in entries if e[2] != "SYMLINK" or _link_target(e) in collected]


def trim(analysis) -> None:
    """Leave out the Qt plugins, translations and libraries the programs do not use."""
    languages = shipped_languages()
    binaries = [entry for entry in analysis.binaries if keep_qt_plugin(entry[0])]
    binaries = prune_unreachable_libraries(binaries)
    datas = [
        entry
        for entry in analysis.datas
        if keep_qt_plugin(entry[0]) and keep_qt_translation(entry[0], languages)
    ]
    collected = {entry[0].replace("\\", "/") for entry in binaries + datas}
    analysis.binaries = drop_dangling_links(binaries, collected)
    analysis.datas = drop_dangling_links(datas, collected)


# ---------------------------------------------------------------- platform metadata


def windows_version_info(program: str, description: str):
    """The version resource of a Windows executable (shown in Explorer's Properties)."""
    from PyInstaller.utils.win32 import versioninfo as vi

    version = project_version()
    numbers = tuple(int(n) for n in re.findall(r"\d+", version)[:4])
    numbers += (0,) * (4 - len(numbers))
    strings = {
        "CompanyName": "Napster P2P",
        "FileDescription": description,
        "FileVersion": version,
        "InternalName": program,
        "OriginalFilename": f"{program}.exe",
        "ProductName": "Napster P2P",
        "ProductVersion": version,
    }
    return vi.VSVersionInfo(
        ffi=vi.FixedFileInfo(filevers=numbers, prodvers=numbers),
        kids=[
            vi.StringFileInfo(
                [
                    vi.StringTable(
                        "040904B0", [vi.StringStruct(key, value) for key, value in strings.items()]
                    )
                ]
            ),
            vi.VarFileInfo([vi.VarStruct("Translation", [1033, 1200])]),
        ],
    )


def macos_info_plist(description: str) -> dict:
    """Info.plist entries of a macOS app bundle beyond PyInstaller's defaults."""
    version = project_version()
    return {
        "CFBundleDisplayName": description,
        "CFBundleShortVersionString": version,
        "CFBundleVersion": version,
        "NSHighResolutionCapable": True,
        "NSPrincipalClass": "NSApplication",
        "LSApplicationCategoryType": "public.app-category.utilities",
    }
