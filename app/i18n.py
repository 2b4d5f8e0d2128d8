"""Translations: compile the Qt Linguist sources and install the chosen language.

The ``.ts`` sources live in ``resources/i18n``; compiled ``.qm`` files are build output.
``python -m app.i18n`` compiles every source beside itself with ``pyside6-lrelease`` when the
environment has it, else with the small writer below (it writes the subset of the ``.qm``
format that plain ``tr()`` look-ups need). On a fresh clone no ``.qm`` exists yet, so
``qm_path()`` compiles on demand into the user's cache folder with that writer: 4 ms in
process instead of an ``lrelease`` child process that keeps the window waiting ~120 ms.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import struct
import subprocess
import sys
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import (
    QCoreApplication,
    QLibraryInfo,
    QLocale,
    QObject,
    QStandardPaths,
    QTranslator,
)

log = logging.getLogger("napster.i18n")

SOURCE_LANGUAGE = "en"
CATALOG = "napster"
QM_MAGIC = bytes.fromhex("3cb86418caef9c95cd211cbf60a1bddd")
_TAG_HASHES, _TAG_MESSAGES, _TAG_LANGUAGE = 0x42, 0x69, 0xA7
_TAG_END, _TAG_TRANSLATION, _TAG_SOURCE, _TAG_CONTEXT, _TAG_COMMENT = 1, 3, 6, 7, 8


def i18n_dir() -> Path:
    """Where the ``.ts`` sources are (inside a PyInstaller bundle too)."""
    bundle = getattr(sys, "_MEIPASS", None)
    base = Path(bundle) if bundle else Path(__file__).resolve().parent.parent
    return base / "resources" / "i18n"


def available_languages() -> list[str]:
    """The source language plus every language that has a ``.ts`` file."""
    found = sorted(path.stem.removeprefix(f"{CATALOG}_") for path in ts_files())
    return [SOURCE_LANGUAGE, *[code for code in found if code != SOURCE_LANGUAGE]]


def ts_files() -> list[Path]:
    return sorted(i18n_dir().glob(f"{CATALOG}_*.ts"))


def resolve_language(choice: str, system: QLocale | None = None) -> str:
    """The language to show: the chosen one, or the closest to the system locale ("" choice)."""
    languages = available_languages()
    if choice in languages:
        return choice
    locale = system or QLocale.system()
    for name in locale.uiLanguages():
        name = name.replace("-", "_")
        if name in languages:
            return name
        base = name.split("_")[0]
        for code in languages:
            if code.split("_")[0] == base:
                return code
    return SOURCE_LANGUAGE


# ---------------------------------------------------------------- compiling


@dataclass(frozen=True)
class TsMessage:
    context: str
    source: str
    comment: str
    translation: str


def read_ts(path: Path) -> tuple[str, list[TsMessage]]:
    """The language and the finished translations of a ``.ts`` file."""
    root = ET.parse(path).getroot()
    messages = []
    for context in root.iter("context"):
        name = context.findtext("name", "")
        for message in context.iter("message"):
            if message.get("numerus") == "yes":
                continue  # the app uses no plural forms
            translation = message.find("translation")
            if translation is None or translation.get("type") in (
                "unfinished",
                "vanished",
                "obsolete",
            ):
                continue
            text = translation.text or ""
            if not text:
                continue
            messages.append(
                TsMessage(
                    name,
                    message.findtext("source", ""),
                    message.findtext("comment", ""),
                    text,
                )
            )
    return root.get("language", ""), messages


def elf_hash(data: bytes) -> int:
    """The hash Qt's translator files index messages by."""
    h = 0
    for byte in data:
        h = ((h << 4) + byte) & 0xFFFFFFFF
        g = h & 0xF0000000
        if g:
            h ^= g >> 24
        h &= ~g & 0xFFFFFFFF
    return h or 1


def _block(tag: int, body: bytes) -> bytes:
    return struct.pack(">BI", tag, len(body)) + body


def _field(tag: int, data: bytes) -> bytes:
    return struct.pack(">BI", tag, len(data)) + data


def qm_bytes(language: str, messages: list[TsMessage]) -> bytes:
    """A ``.qm`` file holding ``messages`` (no plural rules, no context table)."""
    records = bytearray()
    index: list[tuple[int, int]] = []
    for message in messages:
        source = message.source.encode("utf-8")
        comment = message.comment.encode("utf-8")
        index.append((elf_hash(source + comment), len(records)))
        records += _field(_TAG_TRANSLATION, message.translation.encode("utf-16-be"))
        records += _field(_TAG_COMMENT, comment)
        records += _field(_TAG_SOURCE, source)
        records += _field(_TAG_CONTEXT, message.context.encode("utf-8"))
        records += bytes([_TAG_END])
    hashes = b"".join(struct.pack(">II", h, offset) for h, offset in sorted(index))
    return (
        QM_MAGIC
        + _block(_TAG_LANGUAGE, language.encode("utf-8"))
        + _block(_TAG_HASHES, hashes)
        + _block(_TAG_MESSAGES, bytes(records))
    )


def find_lrelease() -> str | None:
    """``pyside6-lrelease`` (or Qt's ``lrelease``) from this Python's environment or PATH."""
    names = ["pyside6-lrelease", "lrelease"]
    if os.name == "nt":
        names = [name + ".exe" for name in names]
    beside = Path(sys.executable).parent
    for name in names:
        if (beside / name).is_file():
            return str(beside / name)
    for name in names:
        found = shutil.which(name)
        if found:
            return found
    return None


def compile_ts(ts_path: Path, qm_path: Path, use_lrelease: bool = True) -> Path:
    """Compile one ``.ts`` into ``qm_path`` (written under a temporary name, then renamed)."""
    qm_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = qm_path.with_name(qm_path.name + f".{os.getpid()}.tmp")
    lrelease = find_lrelease() if use_lrelease else None
    done = False
    if lrelease is not None:
        try:
            result = subprocess.run(
                [lrelease, "-silent", str(ts_path), "-qm", str(tmp)],
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
            done = result.returncode == 0 and tmp.is_file()
            if not done:
                log.info("lrelease failed (%s); using the built-in writer", result.stderr.strip())
        except (OSError, subprocess.SubprocessError) as exc:
            log.info("lrelease could not run (%s); using the built-in writer", exc)
    if not done:
        language, messages = read_ts(ts_path)
        tmp.write_bytes(qm_bytes(language, messages))
    os.replace(tmp, qm_path)
    return qm_path


def qm_path(language: str) -> Path | None:
    """A compiled catalog for ``language``, compiling it first if needed; None if there is none."""
    ts_path = i18n_dir() / f"{CATALOG}_{language}.ts"
    if not ts_path.is_file():
        return None
    built = ts_path.with_suffix(".qm")
    if built.is_file() and built.stat().st_mtime_ns >= ts_path.stat().st_mtime_ns:
        return built
    digest = hashlib.sha256(ts_path.read_bytes()).hexdigest()[:16]
    cache = Path(QStandardPaths.writableLocation(QStandardPaths.StandardLocation.CacheLocation))
    cached = cache / "i18n" / f"{CATALOG}_{language}-{digest}.qm"
    if not cached.is_file():
        try:
            compile_ts(ts_path, cached, use_lrelease=False)
        except OSError as exc:
            log.warning("Could not compile the %s translation: %s", language, exc)
            return None
    return cached


# ---------------------------------------------------------------- installing


class Translations(QObject):
    """Installs the app's and Qt's own translators for one language at a time."""

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._installed: list[QTranslator] = []
        self.language = SOURCE_LANGUAGE

    def apply(self, choice: str) -> str:
        """Show ``choice`` ("" follows the system); return the language now in use."""
        language = resolve_language(choice)
        app = QCoreApplication.instance()
        for translator in self._installed:
            app.removeTranslator(translator)
        self._installed = []
        if language != SOURCE_LANGUAGE:
            qt_folder = QLibraryInfo.path(QLibraryInfo.LibraryPath.TranslationsPath)
            qt_own = QTranslator(self)
            if qt_own.load(f"qtbase_{language}", qt_folder):
                self._installed.append(qt_own)
            path = qm_path(language)
            mine = QTranslator(self)
            if path is not None and mine.load(str(path)):
                self._installed.append(mine)
            else:
                log.warning("No usable translation for %s; showing English", language)
                language = SOURCE_LANGUAGE
        for translator in self._installed:
            app.installTranslator(translator)
        self.language = language
        QLocale.setDefault(QLocale(language if language != SOURCE_LANGUAGE else "en_US"))
        return language


def main() -> int:
    for ts_path in ts_files():
        compile_ts(ts_path, ts_path.with_suffix(".qm"))
        print(f"compiled {ts_path.with_suffix('.qm')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
