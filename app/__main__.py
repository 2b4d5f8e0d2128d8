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
    mode.add_argument(
        "--get",
        metavar="NAME_OR_HASH",
        help="download one file (resuming an earlier run), then exit: 0 once it is in place",
    )
    parser.add_argument(
        "--server",
        action="append",
        metavar="HOST:PORT",
        help="an index server (default 127.0.0.1:1099); repeat it to give several: the peer "
        "joins one and moves to another when it is lost",
    )
    parser.add_argument(
        "--servers-file",
        type=Path,
        metavar="PATH",
        help="a file listing index servers, one HOST:PORT a line (# starts a comment)",
    )
    parser.add_argument("--share", type=Path, help="folder to share")
    parser.add_argument("--downloads", type=Path, help="folder for downloads")
    parser.add_argument(
        "--port",
        type=int,
        help=f"port other peers download from (default {DEFAULT_PEER_PORT}; 0 picks a free one)",
    )
    parser.add_argument("--data-dir", type=Path, help="where the peer keeps its own state")
    parser.add_argument(
        "--play",
        action="store_true",
        help="with --get: print a local URL a player can read while the file downloads",
    )
    parser.add_argument(
        "--max-sources",
        type=int,
        metavar="N",
        help="peers one download fetches from at once (default 8)",
    )
    parser.add_argument(
        "--max-upload-rate",
        metavar="RATE",
        help="limit for all uploads together, e.g. 500K or 10M (bytes per second; 0 = none)",
    )
    parser.add_argument(
        "--max-download-rate",
        metavar="RATE",
        help="limit for all downloads together, e.g. 500K or 10M (bytes per second; 0 = none)",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {package_version()}")
    args = parser.parse_args(argv)
    if args.port is not None and not 0 <= args.port <= 65535:
        parser.error(f"--port must be between 0 and 65535, not {args.port}")
    if args.max_sources is not None and not 1 <= args.max_sources <= 64:
        parser.error(f"--max-sources must be between 1 and 64, not {args.max_sources}")
    has_server = bool(args.server or args.servers_file)
    if args.headless and not (has_server and args.share and args.downloads):
        parser.error("--headless needs --server (or --servers-file), --share and --downloads")
    if args.get is not None and not (has_server and args.downloads):
        parser.error("--get needs --server (or --servers-file) and --downloads")
    if args.play and args.get is None:
        parser.error("--play goes with --get")
    if args.get is not None and not args.get.strip():
        parser.error("--get needs a file name or hash")
    from app.network.rate_limit import parse_rate

    for option in ("max_upload_rate", "max_download_rate"):
        if getattr(args, option) is not None:
            try:
                setattr(args, option, parse_rate(getattr(args, option)))
            except ValueError as exc:
                parser.error(f"--{option.replace('_', '-')}: {exc}")
    from app.config import parse_host_port, parse_servers_file

    for text in args.server or []:
        try:
            parse_host_port(text)
        except ValueError as exc:
            parser.error(f"--server: {exc}")
    if args.servers_file is not None:
        try:
            parse_servers_file(args.servers_file.expanduser())
        except ValueError as exc:
            parser.error(f"--servers-file: {exc}")
        except OSError as exc:
            parser.error(f"--servers-file: cannot read {args.servers_file}: {exc.strerror}")
    return args


def run_headless(args: argparse.Namespace) -> int:
    from app.config import config_from_args
    from app.download.problems import describe_folder_problem
    from app.peer import PeerNode
    from app.quit_signals import QuitOnSignals

    app = QCoreApplication.instance() or QCoreApplication(sys.argv[:1])
    setup_logging()
    node = PeerNode(config_from_args(args))
    for problem, folder, error in node.folder_problems():
        print(
            f"napster-peer: {describe_folder_problem(problem, folder, error)}",
            file=sys.stderr,
            flush=True,
        )
    try:
        port = node.start()
    except OSError as exc:
        print(f"napster-peer: {exc}", file=sys.stderr)
        return 1
    print(f"napster-peer listening on port {port}", flush=True)
    client = node.client
    client.joined.connect(
        lambda address, files: print(
            f"napster-peer joined as {address} (index server {client.server_address})", flush=True
        )
    )
    client.connection_problem.connect(
        lambda code, server, reason: (
            code == "connection_lost"
            and print(f"napster-peer: lost the index server at {server}: {reason}", flush=True)
        )
    )
    client.server_changed.connect(
        lambda server: print(f"napster-peer: trying the index server at {server}", flush=True)
    )
    client.reachability_changed.connect(
        lambda reachable: print(
            "napster-peer: other peers can reach you"
            if reachable
            else "napster-peer: you are behind a firewall or router: others can still download"
            " from you through the server's push",
            flush=True,
        )
    )
    client.server_identity_changed.connect(
        lambda server, known, presented: print(
            f"napster-peer: the index server at {server} presented another identity than the"
            f" one remembered ({known}); not connecting to {presented}. If its operator"
            f" changed it, delete its line from {node.data_dir / 'known_servers.json'}",
            file=sys.stderr,
            flush=True,
        )
    )
    quitter = QuitOnSignals(app.quit)
    code = app.exec()
    node.stop()
    quitter.uninstall()
    totals = node.totals
    print(
        f"napster-peer: uploaded {totals.uploaded} bytes, downloaded {totals.downloaded} bytes "
        "this session",
        flush=True,
    )
    return code


def exit_after_shutdown(code: int) -> int:
    """The exit code, leaving at once if a download thread is still running past its
    deadline: Qt aborts the process when a running QThread is destroyed at exit."""
    from app.download.pump import stragglers

    if stragglers():
        import logging
        import os

        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    QCoreApplication.setOrganizationName(ORGANIZATION)
    QCoreApplication.setApplicationName(APPLICATION)
    if args.headless:
        return exit_after_shutdown(run_headless(args))
    if args.get is not None:
        from app.config import config_from_args
        from app.oneshot import run_get

        return exit_after_shutdown(run_get(config_from_args(args), args.get, args.play))
    if args.cli:
        from app.console import run_console

        return exit_after_shutdown(run_console(args))
    from app.ui.main_window import run_window

    return exit_after_shutdown(run_window(args))


if __name__ == "__main__":
    sys.exit(main())
