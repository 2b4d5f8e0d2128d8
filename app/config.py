"""The peer's configuration and where it comes from: defaults, saved settings, command line.

One home for it, outside the entry points, so the window, the console and the one-shot
download all build it the same way and nothing imports ``app.__main__``.
"""

from __future__ import annotations

import argparse
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from app.network import protocol as p

if TYPE_CHECKING:
    from app.settings import Settings

log = logging.getLogger("napster.config")


@dataclass
class PeerConfig:
    """Where the peer connects, what it shares and where downloads go."""

    server_host: str = "127.0.0.1"
    server_port: int = p.DEFAULT_SERVER_PORT
    share_dir: Path = Path.home() / "Napster" / "Shared"
    download_dir: Path = Path.home() / "Napster" / "Downloads"
    listen_host: str = "0.0.0.0"
    listen_port: int = p.DEFAULT_PEER_PORT
    upload_slots: int = 4
    max_downloads: int = 3
    data_dir: Path | None = None
    #: bytes per second for all downloads together; 0 = no limit
    max_download_rate: int = 0
    #: bytes per second for all uploads together; 0 = no limit
    max_upload_rate: int = 0
    #: sources one download fetches from at once
    max_sources: int = 8


def parse_host_port(text: str, default_port: int = p.DEFAULT_SERVER_PORT) -> tuple[str, int]:
    """``"host:port"`` or ``"host"`` -> (host, port); raises ValueError with a clear message."""
    text = text.strip()
    if not text:
        raise ValueError("the server address is empty")
    host, sep, port_text = text.rpartition(":")
    if not sep:
        return text, default_port
    if not host:
        raise ValueError(f"{text!r} has no host name before the ':'")
    try:
        port = int(port_text)
    except ValueError:
        raise ValueError(f"{port_text!r} is not a port number") from None
    if not 1 <= port <= 65535:
        raise ValueError(f"port {port} is outside 1-65535")
    return host.strip("[]"), port


def config_from_args(args: argparse.Namespace) -> PeerConfig:
    """The configuration the command line gives (defaults where it is silent)."""
    config = PeerConfig()
    if args.server:
        config.server_host, config.server_port = parse_host_port(args.server)
    if args.share:
        config.share_dir = args.share.expanduser().resolve()
    if args.downloads:
        config.download_dir = args.downloads.expanduser().resolve()
    if args.port is not None:
        config.listen_port = args.port
    if args.data_dir:
        config.data_dir = args.data_dir.expanduser().resolve()
    if args.max_download_rate is not None:
        config.max_download_rate = args.max_download_rate
    if args.max_upload_rate is not None:
        config.max_upload_rate = args.max_upload_rate
    if args.max_sources is not None:
        config.max_sources = args.max_sources
    if args.get is not None:
        if not args.share:
            config.share_dir = config.download_dir  # share what it downloads, nothing else
        if args.port is None:
            config.listen_port = 0
    return config


def config_from_settings(settings: Settings, args: argparse.Namespace) -> PeerConfig:
    """The peer's configuration: the saved settings, then what the command line says."""
    config = config_from_args(args)
    if not args.server:
        try:
            config.server_host, config.server_port = parse_host_port(settings.server_address)
        except ValueError:
            log.warning(
                "Saved server address %r is not valid; using the default", settings.server_address
            )
    if not args.share:
        config.share_dir = settings.share_dir
    if not args.downloads:
        config.download_dir = settings.download_dir
    if args.port is None:
        config.listen_port = settings.listen_port
    config.upload_slots = settings.upload_slots
    config.max_downloads = settings.max_downloads
    if args.max_upload_rate is None:
        config.max_upload_rate = settings.max_upload_rate
    if args.max_download_rate is None:
        config.max_download_rate = settings.max_download_rate
    return config
