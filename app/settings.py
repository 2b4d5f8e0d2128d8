"""The peer's settings: one QSettings subclass with typed options and their defaults.

Every option reads back as its own Python type (``int``, ``bool``, ``str``, ``Path``), whatever
the storage format made of it; a value that cannot be read falls back to the default.
``Settings.from_file()`` keeps everything in one INI file (tests, portable builds).
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, Generic, TypeVar

from PySide6.QtCore import QByteArray, QCoreApplication, QObject, QSettings

from app.network.protocol import DEFAULT_PEER_PORT, DEFAULT_SERVER_PORT

T = TypeVar("T")

PORTABLE_FILE_NAME = "napster-peer.ini"
#: Language codes the window offers; "" follows the system locale.
LANGUAGES = ("", "en", "pt_BR")
#: The highest speed limit the window accepts: 100 GB/s in bytes per second.
MAX_RATE = 100_000_000_000


def default_share_dir() -> Path:
    return Path.home() / "Napster" / "Shared"


def default_download_dir() -> Path:
    return Path.home() / "Napster" / "Downloads"


def _to_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return bool(value)
    text = str(value).strip().lower()
    if text in ("true", "1", "yes", "on"):
        return True
    if text in ("false", "0", "no", "off", ""):
        return False
    raise ValueError(f"{value!r} is not a yes/no value")


def _to_path(value: Any) -> Path:
    text = str(value).strip()
    if not text:
        raise ValueError("empty path")
    return Path(text).expanduser()


class Option(Generic[T]):
    """A typed setting: ``settings.upload_slots`` reads an int, assigning one stores it."""

    def __init__(
        self,
        key: str,
        default: T | Callable[[], T],
        kind: type,
        low: int | None = None,
        high: int | None = None,
        choices: tuple[Any, ...] | None = None,
    ) -> None:
        self.key = key
        self._default = default
        self.kind = kind
        self.low, self.high = low, high
        self.choices = choices

    def default(self) -> T:
        return self._default() if callable(self._default) else self._default

    def convert(self, raw: Any) -> T:
        """The stored value as this option's type; ValueError when it is not one."""
        if self.kind is bool:
            value: Any = _to_bool(raw)
        elif self.kind is int:
            if isinstance(raw, bool):
                raise ValueError("a yes/no value is not a number")
            value = int(str(raw).strip())
        elif self.kind is Path:
            value = _to_path(raw)
        else:
            value = str(raw)
        if self.low is not None and value < self.low:
            raise ValueError(f"{value} is below {self.low}")
        if self.high is not None and value > self.high:
            raise ValueError(f"{value} is above {self.high}")
        if self.choices is not None and value not in self.choices:
            raise ValueError(f"{value!r} is not one of {self.choices}")
        return value

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, settings: Settings | None, owner: type | None = None) -> Any:
        if settings is None:
            return self
        raw = settings.value(self.key)
        if raw is None:
            return self.default()
        try:
            return self.convert(raw)
        except (TypeError, ValueError):
            return self.default()

    def __set__(self, settings: Settings, value: T) -> None:
        checked = self.convert(value)
        stored = str(checked) if isinstance(checked, Path) else checked
        settings.setValue(self.key, stored)


class ListOption(Option[list[str]]):
    """A list of words (e.g. ``host:port`` addresses), stored as a list; a value written by
    hand as one string is split at commas and white space. An empty list reads as the default.

    ``legacy_key`` is the older single-value setting it replaces: read while the list was never
    saved (so nothing changes on disk until the user saves), and removed when the list is.
    """

    def __init__(self, key: str, default: Callable[[], list[str]], legacy_key: str = ""):
        super().__init__(key, default, list)
        self.legacy_key = legacy_key

    def convert(self, raw: Any) -> list[str]:
        items = raw if isinstance(raw, list | tuple) else re.split(r"[\s,]+", str(raw))
        value = [str(item).strip() for item in items if str(item).strip()]
        if not value:
            raise ValueError("an empty list")
        return value

    def __get__(self, settings: Settings | None, owner: type | None = None) -> Any:
        if settings is None:
            return self
        raw = settings.value(self.key)
        if raw is None and self.legacy_key:
            raw = settings.value(self.legacy_key)
        if raw is None:
            return self.default()
        try:
            return self.convert(raw)
        except (TypeError, ValueError):
            return self.default()

    def __set__(self, settings: Settings, value: list[str]) -> None:
        settings.setValue(self.key, self.convert(value))
        if self.legacy_key:
            settings.remove(self.legacy_key)


class Settings(QSettings):
    """The peer's options, typed, with defaults (``Settings.from_file`` for tests)."""

    #: the index servers ("host:port"), tried in a random order; replaces "network/server"
    server_addresses = ListOption(
        "network/servers",
        lambda: [f"127.0.0.1:{DEFAULT_SERVER_PORT}"],
        legacy_key="network/server",
    )
    listen_port = Option("network/listen_port", DEFAULT_PEER_PORT, int, low=0, high=65535)
    share_dir = Option("folders/shared", default_share_dir, Path)
    download_dir = Option("folders/downloads", default_download_dir, Path)
    upload_slots = Option("transfers/upload_slots", 4, int, low=1, high=100)
    max_downloads = Option("transfers/max_downloads", 3, int, low=1, high=50)
    language = Option("interface/language", "", str, choices=LANGUAGES)
    setup_done = Option("interface/setup_done", False, bool)
    notify_finished = Option("interface/notify_finished", True, bool)
    #: The video player for Play (a program, with arguments); empty = found automatically.
    player = Option("interface/player", "", str)
    #: Speed limits in bytes per second for all uploads / all downloads together; 0 = none.
    max_upload_rate = Option("limits/max_upload_rate", 0, int, low=0, high=MAX_RATE)
    max_download_rate = Option("limits/max_download_rate", 0, int, low=0, high=MAX_RATE)
    #: The alternative pair, switched on from the toolbar (qBittorrent's "turtle").
    alt_upload_rate = Option("limits/alt_upload_rate", 0, int, low=0, high=MAX_RATE)
    alt_download_rate = Option("limits/alt_download_rate", 0, int, low=0, high=MAX_RATE)
    use_alt_rates = Option("limits/use_alternative", False, bool)

    def __init__(self, *args: Any) -> None:
        if not args:
            args = (
                QSettings.Format.IniFormat,
                QSettings.Scope.UserScope,
                QCoreApplication.organizationName() or "NapsterP2P",
                QCoreApplication.applicationName() or "napster-peer",
            )
        super().__init__(*args)

    @classmethod
    def from_file(cls, path: str | Path, parent: QObject | None = None) -> Settings:
        """Settings kept in one INI file at ``path`` (created on the first write)."""
        settings = cls(str(path), QSettings.Format.IniFormat)
        if parent is not None:
            settings.setParent(parent)
        return settings

    @classmethod
    def for_app(cls) -> Settings:
        """A portable build's ``napster-peer.ini`` beside the program, else the user's settings."""
        if getattr(sys, "frozen", False):
            portable = Path(sys.executable).resolve().parent / PORTABLE_FILE_NAME
            if portable.is_file():
                return cls.from_file(portable)
        return cls()

    @classmethod
    def options(cls) -> dict[str, Option]:
        return {name: value for name, value in vars(cls).items() if isinstance(value, Option)}

    def reset(self, name: str) -> None:
        """Forget a stored option, so it reads as its default again."""
        option = self.options()[name]
        self.remove(option.key)
        if isinstance(option, ListOption) and option.legacy_key:
            self.remove(option.legacy_key)

    @property
    def server_address(self) -> str:
        """The first index server (older code's single address)."""
        return self.server_addresses[0]

    @server_address.setter
    def server_address(self, value: str) -> None:
        self.server_addresses = [value]

    # ------------------------------------------------------------ window state

    def window_state(self, key: str) -> QByteArray | None:
        """Saved geometry, toolbar state or table header state, or None."""
        value = self.value(f"window/{key}")
        return value if isinstance(value, QByteArray) and not value.isEmpty() else None

    def set_window_state(self, key: str, state: QByteArray) -> None:
        self.setValue(f"window/{key}", state)
