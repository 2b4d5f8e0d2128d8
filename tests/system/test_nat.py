"""Peers behind NAT on a small internet of network namespaces (tests/netlab.py, as root).

A public index server, a public peer, and two peers each behind its own home router
(nft masquerade, nothing gets in). Real processes: the index says the NATed sharer is
unreachable and the public peer downloads from it by push; two NATed peers transfer
through the index's relay when it is on, and are told clearly when it is off.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from app.network.pieces import hash_file
from tests.netlab import NetLab
from tests.system.conftest import Program, wait_until
from tests.test_server_cli import ServerProcess

FILE_SIZE = 3 * 4 * 1024 * 1024 + 12345  # a few pieces


@pytest.fixture(scope="module")
def lab():
    with NetLab() as lab:
        yield lab


@pytest.fixture(scope="module")
def hosts(lab):
    index = lab.add_public_host("index")
    public = lab.add_public_host("pub")
    home_a = lab.add_nat_router("ra")
    home_b = lab.add_nat_router("rb")
    return {
        "index": index,
        "pub": public,
        "a": home_a.add_host("a"),
        "b": home_b.add_host("b"),
    }


def start_index(tmp_path: Path, host, *extra: str) -> ServerProcess:
    server = ServerProcess(
        *("--host", "0.0.0.0", "--port", "1099", "--db", str(tmp_path / "index.sqlite3")),
        *("--identity-dir", str(tmp_path / "index-identity"), *extra),
        wrap=host.command,
    )
    assert server.ready.wait(60) and server.port == 1099, server.lines
    return server


def sharer(tmp_path: Path, host, index_address: str, name: str) -> tuple[Program, Path]:
    profile = tmp_path / f"sharer-{host.name}"
    share = profile / "share"
    share.mkdir(parents=True)
    path = share / name
    path.write_bytes(os.urandom(FILE_SIZE))
    program = Program(
        profile,
        *("--headless", "--server", index_address, "--share", str(share)),
        *("--downloads", str(profile / "downloads"), "--port", "6699"),
        *("--data-dir", str(profile / "state")),
        wrap=host.command,
    )
    program.expect("joined as", 60)
    return program, path


def get(tmp_path: Path, host, index_address: str, name: str) -> tuple[Program, Path]:
    profile = tmp_path / f"getter-{host.name}"
    downloads = profile / "downloads"
    program = Program(
        profile,
        *("--get", name, "--server", index_address, "--downloads", str(downloads)),
        *("--data-dir", str(profile / "state"), "--port", "6699"),
        wrap=host.command,
    )
    return program, downloads / name


def test_a_natted_sharer_is_told_it_is_unreachable_and_is_downloaded_from_by_push(tmp_path, hosts):
    index = start_index(tmp_path, hosts["index"])
    address = f"{hosts['index'].address}:1099"
    try:
        a, original = sharer(tmp_path, hosts["a"], address, "behind nat a.mkv")
        a.expect("behind a firewall or router", 30)
        getter, target = get(tmp_path, hosts["pub"], address, "behind nat a.mkv")
        assert getter.finish(120) == 0, getter.stdout[-10:] + getter.stderr[-20:]
        assert hash_file(target).hash == hash_file(original).hash
        told = "\n".join(getter.stdout + getter.stderr)
        assert "The index reached this peer's port from outside" in told
        assert "Pushed connection from" in told  # the sharer connected out to the getter
        # The sharer's port is closed to the outside: every byte went over connections
        # it opened itself (push).
        assert a.terminate() == 0
        assert re.search(r"uploaded (\d+) bytes", "\n".join(a.stdout))
        assert int(re.search(r"uploaded (\d+) bytes", "\n".join(a.stdout)).group(1)) >= FILE_SIZE
    finally:
        index.stop()


def test_two_natted_peers_go_through_the_relay_when_it_is_on(tmp_path, hosts):
    index = start_index(tmp_path, hosts["index"], "--relay")
    address = f"{hosts['index'].address}:1099"
    try:
        a, original = sharer(tmp_path, hosts["a"], address, "relayed film.mkv")
        a.expect("behind a firewall or router", 30)
        getter, target = get(tmp_path, hosts["b"], address, "relayed film.mkv")
        assert getter.finish(120) == 0, getter.stdout[-10:] + getter.stderr[-20:]
        assert hash_file(target).hash == hash_file(original).hash
        assert a.terminate() == 0
    finally:
        index.stop()


def test_two_natted_peers_are_told_clearly_when_the_relay_is_off(tmp_path, hosts):
    index = start_index(tmp_path, hosts["index"])
    address = f"{hosts['index'].address}:1099"
    try:
        a, _original = sharer(tmp_path, hosts["a"], address, "unrelayed film.mkv")
        a.expect("behind a firewall or router", 30)
        getter, target = get(tmp_path, hosts["b"], address, "unrelayed film.mkv")
        # The download waits to retry (a source may become reachable) and says why.
        told = getter.expect("Waiting to retry: Both you and the sources", 60)
        assert "the index server does not relay transfers" in told
        getter.terminate()
        assert not target.exists()
        wait_until(lambda: a.proc.poll() is None, 1, "the sharer still running")
        assert a.terminate() == 0
    finally:
        index.stop()
