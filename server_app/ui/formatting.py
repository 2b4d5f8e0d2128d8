"""How the admin window writes numbers, sizes and times."""

from __future__ import annotations

import time

from app.network.protocol import printable
from app.units import human_size

__all__ = ["format_clock", "format_count", "human_size", "plain_text"]


def format_count(value: int) -> str:
    """A count with thousands separators: 1234567 -> '1,234,567'."""
    return f"{value:,}"


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
