"""Sizes as people read them (pure, no Qt): shared by the core's messages and the admin window."""

from __future__ import annotations

SIZE_UNITS = ("B", "KB", "MB", "GB", "TB", "PB")


def human_size(size: float) -> str:
    """Bytes in decimal units, as file managers show them: 12_400_000_000 -> '12.4 GB'."""
    for unit in SIZE_UNITS:
        if abs(size) < 1000 or unit == SIZE_UNITS[-1]:
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    raise AssertionError("unreachable")  # pragma: no cover
