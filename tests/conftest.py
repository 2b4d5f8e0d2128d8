"""Shared test setup: offscreen Qt, isolated user folders, loopback helpers."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import gc

import pytest


@pytest.fixture(autouse=True)
def free_qt_objects_here():
    """Free what a test left in reference cycles now, on the main thread.

    A QObject held only by a cycle through a lambda connected to its own (or a child's)
    signal is freed by the garbage collector, which runs on whatever thread allocates: a
    download's worker thread in the next test, destroying a QTimer or a QThread there
    (a segfault seen twice in full runs). The app keeps its objects for its lifetime; tests
    make and drop hundreds.
    """
    yield
    gc.collect()


@pytest.fixture(autouse=True)
def isolated_home(tmp_path_factory, monkeypatch):
    """Keep QStandardPaths and QSettings inside a temporary home."""
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_DATA_HOME", str(home / ".local" / "share"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(home / ".cache"))
    return home


@pytest.fixture
def make_index_server(qtbot, server_identity):
    """Start index servers on loopback (a free port unless given); all stop afterwards.

    They share one TLS identity unless given another (a restarted server keeps its
    identity, as a real one does from its data folder)."""
    from server_app.index_server import IndexServer, ServerLimits
    from server_app.index_store import SqliteIndexStore

    servers = []

    def make(
        limits: ServerLimits | None = None,
        store: SqliteIndexStore | None = None,
        port: int = 0,
        identity=None,
    ) -> IndexServer:
        server = IndexServer(
            store if store is not None else SqliteIndexStore(),
            limits,
            identity=identity or server_identity,
        )
        server.start("127.0.0.1", port)
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.stop()
        server.store.close()


@pytest.fixture(scope="session")
def server_identity():
    """The index servers' TLS identity in tests (made once: a key takes milliseconds)."""
    from app.network.identity import PeerIdentity

    return PeerIdentity.generate("napster-p2p test index server")


@pytest.fixture
def read_only_folder(tmp_path):
    """A folder on a real read-only file system (a tmpfs mounted read-only; tests run as
    root, as CI does), unmounted afterwards."""
    import subprocess

    folder = tmp_path / "read-only"
    folder.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(folder)], check=True)
    yield folder
    subprocess.run(["umount", str(folder)], check=True)


@pytest.fixture(scope="session")
def postgres():
    """One throw-away PostgreSQL for the test session (tests.postgres_server), started on
    first use and removed at the end."""
    from tests.postgres_server import ThrowawayPostgres

    server = ThrowawayPostgres().start()
    yield server
    server.stop()


@pytest.fixture
def postgres_url(postgres) -> str:
    """The URL of a fresh, empty database on the session's PostgreSQL."""
    return postgres.create_database()
