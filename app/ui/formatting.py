"""Numbers as people read them: sizes, speeds, times left, counts (in the current locale)."""

from __future__ import annotations

import math

from PySide6.QtCore import QCoreApplication

from app.display import format_count, format_size

translate = QCoreApplication.translate


def format_speed(bytes_per_second: float) -> str:
    if bytes_per_second <= 0:
        return ""
    return translate("Format", "{size}/s").format(size=format_size(bytes_per_second))


def format_duration(seconds: float | None) -> str:
    """Seconds left as "42 s", "3 min 20 s", "2 h 05 min"; "" when unknown."""
    if seconds is None or math.isnan(seconds) or seconds < 0:
        return ""
    total = round(seconds)
    if total < 60:
        return translate("Format", "{s} s").format(s=total)
    minutes, secs = divmod(total, 60)
    if minutes < 60:
        return translate("Format", "{m} min {s:02d} s").format(m=minutes, s=secs)
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return translate("Format", "{h} h {m:02d} min").format(h=hours, m=minutes)
    return translate("Format", "{d} days").format(d=hours // 24)


def format_files(count: int) -> str:
    """ "1 file", "1,234 files"."""
    if count == 1:
        return translate("Format", "1 file")
    return translate("Format", "{count} files").format(count=format_count(count))


def format_progress(done: int, total: int) -> str:
    """ "1.2 GB of 12.4 GB"."""
    return translate("Format", "{done} of {total}").format(
        done=format_size(done), total=format_size(total)
    )


def problem_text(code: str, params: dict, fallback: str = "") -> str:
    """A download problem (``app.download.problems.Problem`` value) in the user's language."""
    values = {key: value for key, value in params.items() if isinstance(value, (str, int))}
    for key in ("needed", "free"):
        if isinstance(values.get(key), int):
            values[key] = format_size(values[key])
    texts = {
        "no_sources": translate("Problems", "No peer has this file right now."),
        "sources_corrupt": translate(
            "Problems", "Every source sent corrupt data; none is trusted for this file."
        ),
        "sources_failed": translate("Problems", "Every source failed ({detail})."),
        "folder_missing": translate(
            "Problems",
            "The download folder {folder} does not exist. Create it or choose another one in "
            "Settings, then resume.",
        ),
        "folder_read_only": translate(
            "Problems",
            "The download folder {folder} is on a read-only file system. Choose a writable "
            "folder in Settings, then resume.",
        ),
        "folder_not_writable": translate(
            "Problems",
            "Cannot write in the download folder {folder} ({error}). Give yourself write "
            "permission or choose another folder in Settings, then resume.",
        ),
        "disk_full": translate(
            "Problems",
            "The disk is full: {folder} has no space left. Free some space and resume; the "
            "part already downloaded is kept.",
        ),
        "not_enough_space": translate(
            "Problems",
            "Not enough free disk space in {folder}: the file needs {needed} more, {free} is free.",
        ),
        "write_failed": translate("Problems", "Cannot write the file: {error}."),
        "no_free_name": translate("Problems", "Could not find a free name for the finished file."),
        "unexpected": translate("Problems", "Unexpected error: {error}"),
        "share_missing": translate(
            "Problems",
            "The shared folder {folder} does not exist. Create it or choose another one in "
            "Settings.",
        ),
        "no_relay": translate(
            "Problems",
            "Both you and the sources of this file are behind firewalls or NATs, and the index "
            "server does not relay transfers. Open your listen port to the internet (port "
            "forwarding) or use an index server that relays.",
        ),
        "share_unreadable": translate(
            "Problems",
            "The shared folder {folder} cannot be read: other peers get nothing from it.",
        ),
    }
    text = texts.get(code)
    if text is None:
        return fallback
    try:
        return text.format(**values)
    except (KeyError, IndexError):
        return fallback or text


def folder_problem_text(problem: object, folder: object, error: str) -> str:
    """A configured folder that cannot be used, for the start-up warning."""
    code = getattr(problem, "value", str(problem))
    return problem_text(code, {"folder": str(folder), "error": error})
