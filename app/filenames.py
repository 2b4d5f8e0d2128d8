"""Names from the network made safe for the local file system (pure, no Qt)."""

from __future__ import annotations

import os
import unicodedata
from pathlib import Path

MAX_NAME_BYTES = 255
MAX_EXTENSION_BYTES = 32
FALLBACK_NAME = "download"
PART_SUFFIX = ".part"
STATE_SUFFIX = ".napster-state"
TMP_SUFFIX = ".napster-tmp"
#: Hidden folder inside the download folder where unfinished downloads live. Nothing under it
#: (nor any hidden entry) is ever shared: partial data is private by construction.
INCOMPLETE_FOLDER = ".napster-incomplete"
#: Longest name whose .part, piece state and its temporary file all stay within 255 bytes.
PART_STEM_BYTES = MAX_NAME_BYTES - len(PART_SUFFIX + STATE_SUFFIX + TMP_SUFFIX)

_WINDOWS_FORBIDDEN = set('<>:"|?*/\\')
_WINDOWS_RESERVED = {"CON", "PRN", "AUX", "NUL"} | {
    f"{stem}{n}" for stem in ("COM", "LPT") for n in [*"123456789", "¹", "²", "³"]
}
# Categories removed outright: control, format (bidirectional marks, zero-width
# characters), surrogates, private use, unassigned, line/paragraph separators.
_DROPPED_CATEGORIES = {"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"}


def _cut_utf8(text: str, max_bytes: int) -> str:
    """The longest prefix of ``text`` that fits in ``max_bytes`` UTF-8 bytes."""
    encoded = text.encode("utf-8")
    if len(encoded) <= max_bytes:
        return text
    return encoded[:max_bytes].decode("utf-8", errors="ignore")


def is_windows_reserved(name: str) -> bool:
    stem = name.split(".", 1)[0].rstrip(" ").upper()
    return stem in _WINDOWS_RESERVED


def safe_filename(name: str) -> str:
    """A name that is safe to create in a folder on Windows, macOS and Linux.

    No separators or ``..``, no control, bidirectional or zero-width characters,
    no Windows reserved names or forbidden characters, no trailing dots or
    spaces, no leading dot (it would hide the file), at most 255 UTF-8 bytes
    with the extension kept.
    """
    if isinstance(name, bytes):
        name = name.decode("utf-8", errors="replace")
    name = unicodedata.normalize("NFC", str(name))
    cleaned = []
    for ch in name:
        if unicodedata.category(ch) in _DROPPED_CATEGORIES:
            continue
        cleaned.append("_" if ch in _WINDOWS_FORBIDDEN else ch)
    name = "".join(cleaned).strip(" ").rstrip(". ").lstrip(". ")
    if not name or set(name) <= {"."}:
        name = FALLBACK_NAME
    if is_windows_reserved(name):
        name = "_" + name
    for suffix in (PART_SUFFIX, STATE_SUFFIX):
        if name.lower().endswith(suffix):
            name += "_"
    return fit_name(name)


def fit_name(name: str, max_bytes: int = MAX_NAME_BYTES) -> str:
    """Shorten ``name`` to ``max_bytes`` UTF-8 bytes, keeping a short extension."""
    if len(name.encode("utf-8")) <= max_bytes:
        return name
    stem, dot, extension = name.rpartition(".")
    if dot and stem and len(("." + extension).encode("utf-8")) <= MAX_EXTENSION_BYTES:
        suffix = "." + extension
        cut = _cut_utf8(stem, max_bytes - len(suffix.encode("utf-8"))).rstrip(". ")
        return (cut or FALLBACK_NAME) + suffix
    return _cut_utf8(name, max_bytes).rstrip(". ") or FALLBACK_NAME


def numbered_name(name: str, number: int) -> str:
    """``video.mp4`` -> ``video (2).mp4``, still within the name length limit."""
    stem, dot, extension = name.rpartition(".")
    if not dot or not stem:
        stem, extension = name, ""
    tag = f" ({number})"
    suffix = f".{extension}" if extension else ""
    room = MAX_NAME_BYTES - len((tag + suffix).encode("utf-8"))
    return _cut_utf8(stem, room) + tag + suffix


def free_name(
    folder: Path, name: str, taken: set[str] | None = None, with_part: bool = True
) -> str:
    """A name in ``folder`` that no file has yet, also ignoring case (``video (1).mp4``).

    ``taken`` holds further names to avoid (for example names reserved by other
    downloads that have not created their files yet).
    With ``with_part`` the name's ``.part`` must be free too.
    """
    try:
        lowered = {entry.lower() for entry in os.listdir(folder)}
    except OSError:
        lowered = set()
    lowered |= {t.lower() for t in taken or ()}

    def is_taken(candidate: str) -> bool:
        if (folder / candidate).exists() or candidate.lower() in lowered:
            return True
        return with_part and (candidate + PART_SUFFIX).lower() in lowered

    candidate, number = name, 0
    while is_taken(candidate):
        number += 1
        candidate = numbered_name(name, number)
    return candidate


def place_without_overwriting(
    source: Path, folder: Path, name: str, attempts: int = 1000
) -> Path | None:
    """Give ``source`` the first free name like ``name`` in ``folder``; never replace a file.

    ``source`` must be on the same file system. A hard link claims the name (it fails
    if another writer took it meanwhile), then ``source`` goes; where the file system
    has no hard links, the name is checked and ``source`` renamed. None if no free name
    was found in ``attempts`` tries.
    """
    wanted = free_name(folder, name, with_part=False)
    for number in range(attempts):
        candidate = folder / (wanted if number == 0 else numbered_name(wanted, number))
        try:
            os.link(source, candidate)
        except FileExistsError:
            continue
        except OSError:
            if candidate.exists():
                continue
            os.replace(source, candidate)
            return candidate
        source.unlink()
        return candidate
    return None


def is_inside(folder: Path, path: Path) -> bool:
    """True when ``path`` resolves to somewhere inside ``folder``."""
    try:
        path.resolve().relative_to(folder.resolve())
    except ValueError:
        return False
    return True
