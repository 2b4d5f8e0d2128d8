"""The peer's configuration and where it comes from: defaults, saved settings, command line.

One home for it, outside the entry points, so the window, the console and the one-shot
download all build it the same way and nothing imports ``app.__main__``.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from app.network import protocol as p

if TYPE_CHECKING:
    from app.settings import Settings

log = logging.getLogger("napster.config")


Server = tuple[str, int]


@dataclass
class PeerConfig:
    """Where the peer connects, what it shares and where downloads go.

    ``servers`` lists the index servers (host, port) the peer may use; ``server_host`` and
    ``server_port`` are the first of them. Give either; change them with ``set_servers``.
    """

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
    #: every index server the peer may use, each once (the first is server_host:server_port)
    servers: list[Server] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.set_servers(self.servers or [(self.server_host, self.server_port)])

    def set_servers(self, servers: Iterable[Server]) -> None:
        """Use these index servers (duplicates dropped); ValueError when there are none."""
        unique = unique_servers(servers)
        self.servers = unique
        self.server_host, self.server_port = unique[0]

    def servers_text(self) -> str:
        """The servers as "host:port, host:port" (for messages)."""
        return ", ".join(server_text(server) for server in self.servers)


def server_text(server: Server) -> str:
    """``host:port``, with an IPv6 host in brackets."""
    host, port = server
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def unique_servers(servers: Iterable[Server]) -> list[Server]:
    """The servers in their order, each once; ValueError when there are none."""
    found = list(dict.fromkeys((str(host), int(port)) for host, port in servers))
    if not found:
        raise ValueError("no index server given")
    return found


def parse_host_port(text: str, default_port: int = p.DEFAULT_SERVER_PORT) -> tuple[str, int]:
    """``"host:port"`` or ``"host"`` -> (host, port); raises ValueError with a clear message."""
    text = text.strip()
    if not text:
        raise ValueError("the server address is empty")
    if any(character.isspace() for character in text):
        raise ValueError(f"{text!r} is not one address (it has a space in it)")
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


def parse_servers_file(path: Path) -> list[Server]:
    """The index servers listed in a file: one ``host:port`` (or ``host``) a line; blank lines
    and ``#`` comments are ignored. Raises ValueError naming the file and the line of a bad
    address, or saying the file holds none; OSError when it cannot be read."""
    servers = []
    text = path.read_text(encoding="utf-8-sig")
    for number, line in enumerate(text.splitlines(), start=1):
        address = line.split("#", 1)[0].strip()
        if not address:
            continue
        try:
            servers.append(parse_host_port(address))
        except ValueError as exc:
            raise ValueError(f"{path}, line {number}: {exc}") from None
    if not servers:
        raise ValueError(f"{path} lists no index server")
    return servers


def servers_from_args(args: argparse.Namespace) -> list[Server]:
    """The index servers the command line names (``--server`` repeated, then the ones in
    ``--servers-file``), or [] when it names none. Raises ValueError/OSError as the parsers do."""
    given = getattr(args, "server", None) or []
    if isinstance(given, str):
        given = [given]
    servers = [parse_host_port(text) for text in given]
    servers_file = getattr(args, "servers_file", None)
    if servers_file is not None:
        servers += parse_servers_file(Path(servers_file).expanduser())
    return servers


def config_from_args(args: argparse.Namespace) -> PeerConfig:
    """The configuration the command line gives (defaults where it is silent)."""
    config = PeerConfig()
    servers = servers_from_args(args)
    if servers:
        config.set_servers(servers)
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
    if not (getattr(args, "server", None) or getattr(args, "servers_file", None)):
        saved = []
        for text in settings.server_addresses:
            try:
                saved.append(parse_host_port(text))
            except ValueError:
                log.warning("Saved server address %r is not valid; leaving it out", text)
        if saved:
            config.set_servers(saved)
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
