"""``napster-peer``: the desktop window by default, ``--headless`` or the ``--cli`` menu."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from PySide6.QtCore import QCoreApplication

from app.network.protocol import DEFAULT_PEER_PORT
from app.runtime import package_version, setup_logging

ORGANIZATION = "NapsterP2P"
APPLICATION = "napster-peer"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="napster-peer",
        description="Napster P2P peer: share a folder, search, download verified files.",
    )
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--headless", action="store_true", help="share and serve without a window")
    mode.add_argument("--cli", action="store_true", help="the console menu (JOIN, SEARCH, ...)")
    parser.add_argument("--server", help="index server as HOST:PORT (default 127.0.0.1:1099)")
    parser.add_argument("--share", type=Path, help="folder to share")
    parser.add_argument("--downloads", type=Path, help="folder for downloads")
    parser.add_argument(
        "--port",
        type=int,
        help=f"port other peers download from (default {DEFAULT_PEER_PORT}; 0 picks a free one)",
    )
    parser.add_argument("--data-dir", type=Path, help="where the peer keeps its own state")
    parser.add_argument("--version", action="version", version=f"%(prog)s {package_version()}")
    args = parser.parse_args(argv)
    if args.port is not None and not 0 <= args.port <= 65535:
        parser.error(f"--port must be between 0 and 65535, not {args.port}")
    if args.headless and not (args.server and args.share and args.downloads):
        parser.error("--headless needs --server, --share and --downloads")
    if args.server:
        from app.peer import parse_host_port

        try:
            parse_host_port(args.server)
        except ValueError as exc:
            parser.error(f"--server: {exc}")
    return args


def config_from_args(args: argparse.Namespace):
    from app.peer import PeerConfig, parse_host_port

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
    return config


def run_headless(args: argparse.Namespace) -> int:
    from app.peer import PeerNode
    from app.quit_signals import QuitOnSignals

    app = QCoreApplication.instance() or QCoreApplication(sys.argv[:1])
    setup_logging()
    node = PeerNode(config_from_args(args))
    try:
        port = node.start()
    except OSError as exc:
        print(f"napster-peer: {exc}", file=sys.stderr)
        return 1
    print(f"napster-peer listening on port {port}", flush=True)
    node.client.joined.connect(
        lambda address, files: print(f"napster-peer joined as {address}", flush=True)
    )
    quitter = QuitOnSignals(app.quit)
    code = app.exec()
    node.stop()
    quitter.uninstall()
    return code


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    QCoreApplication.setOrganizationName(ORGANIZATION)
    QCoreApplication.setApplicationName(APPLICATION)
    if args.headless:
        return run_headless(args)
    if args.cli:
        from app.console import run_console

        return run_console(args)
    from app.ui.main_window import run_window

    return run_window(args)


if __name__ == "__main__":
    sys.exit(main())
