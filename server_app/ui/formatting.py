"""How the admin window writes numbers, sizes and times (numbers in the window's language:
"1,234" and "12.4 GB" in English are "1.234" and "12,4 GB" in Portuguese)."""

from __future__ import annotations

import time

from app.display import format_count, format_size
from app.network.protocol import printable

__all__ = ["format_clock", "format_count", "format_size", "plain_text"]


def format_clock(timestamp: float, now: float | None = None) -> str:
    """A wall-clock time: '14:03:22' today, '3 Mar 14:03' on another day."""
    moment = time.localtime(timestamp)
    today = time.localtime(time.time() if now is None else now)
    if moment[:3] == today[:3]:
        return time.strftime("%H:%M:%S", moment)
    return time.strftime("%d %b %H:%M", moment).lstrip("0")


def plain_text(text: str) -> str:
    """Text from the network, safe to show on one line (controls and bidi marks escaped)."""
    return text if text.isprintable() else printable(text, max_chars=1000)
