"""Standard streams for the windowed Windows builds, imported by the frozen entry scripts."""

from __future__ import annotations

import sys


def attach_parent_console() -> None:
    """Let a windowed Windows executable print to the console it was typed into.

    A GUI-subsystem program starts without standard streams, so ``NapsterPeer.exe --version``
    in cmd.exe or PowerShell would print nothing. When the streams are missing and the parent
    process has a console, write to that console; started from Explorer, nothing changes.
    """
    if sys.platform != "win32" or (sys.stdout is not None and sys.stderr is not None):
        return
    import ctypes

    attach_parent_process = -1
    if not ctypes.windll.kernel32.AttachConsole(attach_parent_process):
        return
    if sys.stdout is None:
        sys.stdout = open("CONOUT$", "w", encoding="utf-8", errors="replace", buffering=1)  # noqa: SIM115
    if sys.stderr is None:
        sys.stderr = open("CONOUT$", "w", encoding="utf-8", errors="replace", buffering=1)  # noqa: SIM115
