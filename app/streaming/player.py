"""Finding the user's video player (pure, no Qt): the one chosen in Settings, else the first
of the usual ones installed, else none (the window then shows the URL to copy)."""

from __future__ import annotations

import os
import shlex
import shutil
import sys
from pathlib import Path

#: Players that take a URL as their argument and play HTTP ranges while they arrive.
KNOWN_PLAYERS = ("mpv", "vlc", "celluloid", "smplayer", "totem", "mplayer", "ffplay")
_FIXED_PLACES = {
    "darwin": (
        "/Applications/VLC.app/Contents/MacOS/VLC",
        "/Applications/mpv.app/Contents/MacOS/mpv",
    ),
    "win32": (
        r"C:\Program Files\VideoLAN\VLC\vlc.exe",
        r"C:\Program Files (x86)\VideoLAN\VLC\vlc.exe",
        r"C:\Program Files\mpv\mpv.exe",
    ),
}


def player_command(chosen: str = "") -> list[str] | None:
    """The command (program and its arguments) to play a URL, or None if no player is found.

    ``chosen`` is what the user set in Settings: a program name or path, with arguments.
    """
    if chosen.strip():
        try:
            words = shlex.split(chosen, posix=os.name != "nt")
        except ValueError:
            return None
        if words and (shutil.which(words[0]) or Path(words[0]).is_file()):
            return words
        return None
    for name in KNOWN_PLAYERS:
        found = shutil.which(name)
        if found:
            return [found]
    for place in _FIXED_PLACES.get(sys.platform, ()):
        if Path(place).is_file():
            return [place]
    return None
