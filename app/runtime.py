"""What both programs' entry points share: the package version and the log format."""

from __future__ import annotations

import logging
import sys
from importlib.metadata import PackageNotFoundError, version


def package_version() -> str:
    """The installed napster-p2p version (a placeholder when run from an uninstalled tree)."""
    try:
        return version("napster-p2p")
    except PackageNotFoundError:
        return "0.0.0+source"


def setup_logging(level: int = logging.INFO) -> None:
    """Log lines with time, level and subsystem to standard output."""
    logging.basicConfig(
        level=level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stdout,
    )
