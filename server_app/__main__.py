"""``napster-server``: the index server, with its admin window or ``--headless``."""

from __future__ import annotations

import argparse
import gc
import logging
import os
import socket
import sys
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit, urlunsplit

from PySide6.QtCore import QCoreApplication, QStandardPaths

from app.network.identity import PeerIdentity
from app.network.protocol import DEFAULT_SERVER_PORT
from app.runtime import package_version, setup_logging
from server_app.relay import RelaySettings, add_relay_arguments, relay_settings_from_args
from server_app.store import MAX_FILES, MAX_FILES_PER_ADDRESS, IndexStore, IndexUnavailable

if TYPE_CHECKING:
    from server_app.index_server import IndexServer
    from server_app.ui.admin_window import AdminWindow

ORGANIZATION = "NapsterP2P"
APPLICATION = "napster-server"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="napster-server", description="The Napster P2P index server."
    )
    parser.add_argument("--headless", action="store_true", help="run without the admin window")
    parser.add_argument("--host", default="0.0.0.0", help="address to listen on (default: all)")
    parser.add_argument(
        "--port",
        type=int,
        default=DEFAULT_SERVER_PORT,
        help=f"port to listen on (default: {DEFAULT_SERVER_PORT}; 0 picks a free one)",
    )
    parser.add_argument(
        "--db",
        "--index-url",
        dest="db",
        metavar="FILE_OR_URL",
        help="the index: a SQLite database file (default: in the user data folder) or a"
        " postgresql:// URL that several servers share",
    )
    parser.add_argument(
        "--identity-dir",
        metavar="FOLDER",
        help="where the server keeps its TLS key and certificate (default: the user data folder)",
    )
    parser.add_argument(
        "--name",
        help="how this server is named in a shared index's peer lists (default: host:port)",
    )
    parser.add_argument(
        "--max-files",
        type=int,
        default=MAX_FILES,
        help=f"files the whole index may hold (default: {MAX_FILES:,})",
    )
    parser.add_argument(
        "--max-files-per-address",
        type=int,
        default=MAX_FILES_PER_ADDRESS,
        help=f"files the peers of one IP address may share (default: {MAX_FILES_PER_ADDRESS:,})",
    )
    add_relay_arguments(parser)
    parser.add_argument("--version", action="version", version=f"%(prog)s {package_version()}")
    args = parser.parse_args(argv)
    try:
        args.relay_settings = relay_settings_from_args(args, args.host)
    except ValueError as exc:
        parser.error(str(exc))
    if not 0 <= args.port <= 65535:
        parser.error(f"--port must be between 0 and 65535, not {args.port}")
    for option in ("max_files", "max_files_per_address"):
        if getattr(args, option) < 1:
            parser.error(f"--{option.replace('_', '-')} must be at least 1")
    return args


def data_folder() -> Path:
    return Path(QStandardPaths.writableLocation(QStandardPaths.StandardLocation.AppDataLocation))


def default_db_path() -> Path:
    return data_folder() / "index.sqlite3"


def server_identity(args: argparse.Namespace) -> PeerIdentity:
    """The server's long-lived TLS identity (``--identity-dir``, default: the data folder):
    peers remember its fingerprint, so it must survive restarts."""
    from server_app.index_server import SERVER_COMMON_NAME

    folder = Path(args.identity_dir) if args.identity_dir else data_folder()
    return PeerIdentity.load_or_create(folder, stem="server", common_name=SERVER_COMMON_NAME)


def server_name(args: argparse.Namespace, port: int) -> str:
    """``--name``, or this machine's address and port as other servers' admins see it."""
    if args.name:
        return args.name
    host = args.host if args.host not in ("0.0.0.0", "::", "") else socket.gethostname()
    return f"{host}:{port}"


def open_store(args: argparse.Namespace) -> tuple[IndexStore, str]:
    """The index ``--db`` names, and how to name it in the log (a URL without password)."""
    from server_app.store import is_postgres_url, open_index_store

    limits = {"max_files": args.max_files, "max_files_per_address": args.max_files_per_address}
    name = server_name(args, args.port)
    if args.db and is_postgres_url(args.db):
        return open_index_store(args.db, server_name=name, **limits), redact_url(args.db)
    path = Path(args.db) if args.db else default_db_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    return open_index_store(path, server_name=name, **limits), str(path)


def redact_url(url: str) -> str:
    """``url`` with its password (if any) replaced by ``***``, for logs and titles."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def name_after_listening(store: IndexStore, args: argparse.Namespace, port: int) -> None:
    """With ``--port 0`` the port is known only now: the default name takes it."""
    if not args.name and port != args.port:
        store.rename(server_name(args, port))


def run_headless(args: argparse.Namespace) -> int:
    from app.quit_signals import QuitOnSignals
    from server_app.index_server import IndexServer, ServerStartError

    app = QCoreApplication.instance() or QCoreApplication(sys.argv[:1])
    setup_logging()
    log = logging.getLogger("napster.server")
    try:
        store, path = open_store(args)
    except Exception as exc:  # a database we cannot open is a one-line error, not a trace
        print(f"napster-server: cannot open the index database: {exc}", file=sys.stderr)
        return 1
    log.info("Index database: %s", path)
    try:
        identity = server_identity(args)
    except OSError as exc:
        print(f"napster-server: cannot keep the server's TLS identity: {exc}", file=sys.stderr)
        store.close()
        return 1
    server = IndexServer(store, identity=identity)
    try:
        port = server.start(args.host, args.port)
        name_after_listening(store, args, port)
    except (ServerStartError, IndexUnavailable) as exc:
        print(f"napster-server: {exc}", file=sys.stderr)
        store.close()
        return 1
    print(f"napster-server fingerprint {server.fingerprint}", flush=True)
    # Tests and scripts read the chosen port from this line.
    print(f"napster-server listening on {args.host}:{port}", flush=True)
    if not start_relay(server, args):
        server.stop()
        store.close()
        return 1
    quitter = QuitOnSignals(app.quit)
    code = app.exec()
    log.info("Shutting down")
    server.stop()
    quitter.uninstall()
    store.close()
    return code


class StartupError(Exception):
    """The admin window cannot start; the message says why in one line."""


def build_admin_window(args: argparse.Namespace) -> AdminWindow:
    """The admin window on a new server, listening at once on ``--host``/``--port``.

    Needs a QApplication. The caller closes ``window.store`` after ``window.shutdown()``.
    """
    from server_app.index_server import IndexServer
    from server_app.ui.admin_window import AdminWindow

    try:
        store, path = open_store(args)
    except Exception as exc:  # a database we cannot open is a one-line error, not a trace
        raise StartupError(f"cannot open the index database: {exc}") from exc
    try:
        identity = server_identity(args)
    except OSError as exc:
        store.close()
        raise StartupError(f"cannot keep the server's TLS identity: {exc}") from exc
    window = AdminWindow(IndexServer(store, identity=identity), database=path)
    logging.getLogger("napster.server").info("Index database: %s", path)
    if window.start_listening(args.host, args.port):
        name_after_listening(store, args, window.server.serverPort())
    start_relay(window.server, args)
    # The Relay tab was built before the command line's relay started: show what runs.
    window.relay_panel.show_settings(window.server.relay_settings)
    window.relay_panel.refresh()
    return window


def start_relay(server: IndexServer, args: argparse.Namespace) -> bool:
    """Apply ``--relay`` and its limits; False (said on stderr) if its port is taken."""
    settings = getattr(args, "relay_settings", None) or RelaySettings()
    try:
        port = server.configure_relay(settings)
    except OSError as exc:
        print(
            f"napster-server: cannot listen for relays on port {settings.port}: {exc}",
            file=sys.stderr,
        )
        return False
    if settings.enabled:
        print(f"napster-server relaying on {settings.host}:{port}", flush=True)
    return True


def quit_without_asking(window: AdminWindow, app) -> None:
    """SIGTERM/SIGINT: the operator (or the service manager) already decided; the window's
    "peers are online, quit?" question would keep the server running."""
    window.shutdown()
    app.quit()


def run_window(args: argparse.Namespace) -> int:
    from PySide6.QtWidgets import QApplication, QMessageBox

    from app.i18n import Translations
    from app.icons import app_icon
    from app.quit_signals import QuitOnSignals

    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setWindowIcon(app_icon("server"))
    app.setDesktopFileName("napster-server")
    setup_logging()
    translations = Translations(app)
    translations.apply("")  # the admin window follows the system language
    try:
        window = build_admin_window(args)
    except StartupError as exc:
        print(f"napster-server: {exc}", file=sys.stderr)
        QMessageBox.critical(None, "Napster P2P index server", str(exc))
        return 1
    window.show()
    quitter = QuitOnSignals(lambda: quit_without_asking(window, app))
    code = app.exec()
    logging.getLogger("napster.server").info("Shutting down")
    window.shutdown()
    quitter.uninstall()
    window.store.close()
    return code


def prefer_plain_event_loop() -> None:
    """Use Qt's own Unix event loop rather than GLib's (call before the application exists).

    With ten thousand connections GLib's loop costs more per pass (about 3x here) and
    removes each closed socket's notifier by a linear search, so a mass disconnect
    stalls it. The admin window needs nothing from GLib.
    """
    os.environ.setdefault("QT_NO_GLIB", "1")


def _freeze_survivors(phase: str, info: dict) -> None:
    if phase == "stop" and info["generation"] == 2:
        gc.freeze()


def keep_full_collections_short() -> None:
    """Let each full garbage collection scan only what is new since the last one.

    A full collection visits every tracked object, and the Qt wrappers of ten thousand
    connections made that a 50-90 ms pause of the server's loop. Objects that survived
    one are moved out of the collector's sight (``gc.freeze``); the server's objects are
    freed by reference counting (a closed session is released without the collector),
    so what is frozen is long-lived state.
    """
    if _freeze_survivors not in gc.callbacks:
        gc.callbacks.append(_freeze_survivors)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    prefer_plain_event_loop()
    keep_full_collections_short()
    QCoreApplication.setOrganizationName(ORGANIZATION)
    QCoreApplication.setApplicationName(APPLICATION)
    if args.headless:
        return run_headless(args)
    return run_window(args)


if __name__ == "__main__":
    sys.exit(main())
