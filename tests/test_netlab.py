"""The network lab (tests/netlab.py) models what issue #17 needs: masquerade, routers that
let nothing in, hosts behind two NATs that cannot reach each other, shaped uplinks, and no
namespace left behind. Real namespaces, real processes, plain sockets."""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.netlab import OWNERS, Host, NetLab, list_namespaces, read_line

ROOT = Path(__file__).resolve().parents[1]
PORT = 9000
WAIT_FOREVER = "import signal; signal.pause()"

# Listens on argv[1]; per connection one command line: "whoami" answers the peer's address,
# "sink N" reads N bytes then answers "ok", "source N" sends N bytes.
SERVER = r"""
import socket, sys, threading

def serve(conn, peer):
    with conn, conn.makefile("rb") as reader:
        command, _, size = reader.readline().decode().strip().partition(" ")
        if command == "whoami":
            conn.sendall(f"{peer[0]}\n".encode())
        elif command == "sink":
            left = int(size)
            while left and (chunk := reader.read1(min(left, 65536))):
                left -= len(chunk)
            conn.sendall(b"ok\n")
        elif command == "source":
            conn.sendall(bytes(int(size)))

listener = socket.create_server(("", int(sys.argv[1])), backlog=64)
print("ready", flush=True)
while True:
    threading.Thread(target=serve, args=listener.accept(), daemon=True).start()
"""

# Tries every "address:port" in argv[2:] at once with a connect timeout of argv[1] seconds;
# prints {target: "connected" | "timeout" | "refused" | errno name}.
PROBE = r"""
import errno, json, socket, sys, threading

outcomes = {}

def probe(target):
    address, port = target.rsplit(":", 1)
    try:
        socket.create_connection((address, int(port)), timeout=float(sys.argv[1])).close()
        outcomes[target] = "connected"
    except TimeoutError:
        outcomes[target] = "timeout"
    except ConnectionRefusedError:
        outcomes[target] = "refused"
    except OSError as error:
        outcomes[target] = errno.errorcode.get(error.errno, str(error))

threads = [threading.Thread(target=probe, args=(target,)) for target in sys.argv[2:]]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
print(json.dumps(outcomes))
"""

# Asks the server at argv[1] "whoami" and prints the answer.
WHOAMI = r"""
import socket, sys
with socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=5) as conn:
    conn.sendall(b"whoami\n")
    print(conn.makefile().readline().strip())
"""

# Sends argv[3] bytes to the server, then fetches as many; prints the seconds each took.
TRANSFER = r"""
import json, socket, sys, time
address, port, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
with socket.create_connection((address, port), timeout=30) as conn:
    start = time.monotonic()
    conn.sendall(f"sink {size}\n".encode() + bytes(size))
    assert conn.makefile().readline().strip() == "ok"
    upload = time.monotonic() - start
with socket.create_connection((address, port), timeout=30) as conn:
    start = time.monotonic()
    conn.sendall(f"source {size}\n".encode())
    got = 0
    while got < size:
        chunk = conn.recv(65536)
        assert chunk, got
        got += len(chunk)
    download = time.monotonic() - start
print(json.dumps({"upload": upload, "download": download}))
"""


def start_server(host: Host, port: int = PORT) -> subprocess.Popen:
    """The SERVER script listening on host:port, once it is listening."""
    process = host.python_popen(SERVER, port, stdout=subprocess.PIPE)
    assert read_line(process, timeout=10) == "ready"
    return process


def probe(host: Host, *targets: str, timeout: float = 0.5) -> dict[str, str]:
    """Connect from host to each target at once; what happened to each."""
    done = host.python(PROBE, timeout, *targets, capture_output=True, text=True, timeout=10)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def whoami(host: Host, server: Host) -> str:
    """The address server sees host's connection come from."""
    done = host.python(
        WHOAMI, server.address, PORT, capture_output=True, text=True, check=True, timeout=10
    )
    return done.stdout.strip()


@pytest.fixture(scope="module")
def lab() -> Iterator[NetLab]:
    """A public server, an outsider routing private addresses straight to the routers (the
    worst case), two home routers with two hosts each and a home on a shaped 8 Mbit/s line."""
    with NetLab() as lab:
        server = lab.add_public_host("server")
        outsider = lab.add_public_host("outsider")
        for name in ("home-a", "home-b"):
            router = lab.add_nat_router(name)
            router.add_host(f"{name[-1]}1")
            router.add_host(f"{name[-1]}2")
            outsider.run(
                ["ip", "route", "add", str(router.subnet), "via", router.address], check=True
            )
        lab.add_nat_router("slow", rate="8mbit").add_host("s1")
        start_server(server)
        for name in ("a1", "b1"):
            start_server(lab.hosts[name])
        yield lab


def test_a_host_behind_nat_reaches_the_internet_from_its_routers_address(lab: NetLab) -> None:
    server, a1, b1 = lab.hosts["server"], lab.hosts["a1"], lab.hosts["b1"]
    assert a1.address.startswith("192.168.")
    assert whoami(a1, server) == lab.hosts["home-a"].address == a1.public_address
    assert whoami(b1, server) == lab.hosts["home-b"].address == b1.public_address
    assert whoami(lab.hosts["outsider"], server) == lab.hosts["outsider"].address


def test_nothing_from_outside_opens_a_connection_to_a_host_behind_nat(lab: NetLab) -> None:
    a1, home_a = lab.hosts["a1"], lab.hosts["home-a"]
    # On its own LAN the listener answers.
    assert probe(lab.hosts["a2"], f"{a1.address}:{PORT}") == {f"{a1.address}:{PORT}": "connected"}
    # The internet does not route private addresses.
    private, forwarded = f"{a1.address}:{PORT}", f"{home_a.address}:{PORT}"
    seen = probe(lab.hosts["server"], private, forwarded)
    assert seen[private] in {"EHOSTUNREACH", "ENETUNREACH"}, seen
    # The router has no port forwarding and drops what nobody inside asked for, also when
    # the packets reach it addressed to the private host.
    assert seen[forwarded] == "timeout", seen
    assert probe(lab.hosts["outsider"], private, forwarded) == {
        private: "timeout",
        forwarded: "timeout",
    }


def test_hosts_behind_two_nats_cannot_connect_but_both_reach_the_public_host(
    lab: NetLab,
) -> None:
    a1, b1, server = lab.hosts["a1"], lab.hosts["b1"], lab.hosts["server"]
    public = f"{server.address}:{PORT}"
    a_to_b = probe(a1, f"{b1.address}:{PORT}", f"{b1.public_address}:{PORT}", public)
    assert a_to_b[public] == "connected", a_to_b
    assert a_to_b[f"{b1.address}:{PORT}"] != "connected", a_to_b
    assert a_to_b[f"{b1.public_address}:{PORT}"] == "timeout", a_to_b
    b_to_a = probe(b1, f"{a1.address}:{PORT}", f"{a1.public_address}:{PORT}", public)
    assert b_to_a[public] == "connected", b_to_a
    assert b_to_a[f"{a1.address}:{PORT}"] != "connected", b_to_a
    assert b_to_a[f"{a1.public_address}:{PORT}"] == "timeout", b_to_a


def test_a_rate_limited_router_shapes_its_uplink_both_ways(lab: NetLab) -> None:
    size = 1024 * 1024
    done = lab.hosts["s1"].python(
        TRANSFER,
        lab.hosts["server"].address,
        PORT,
        size,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 0, done.stderr
    seconds = json.loads(done.stdout)
    rate = 8_000_000 / 8
    for direction, took in seconds.items():
        assert 0.5 * rate <= size / took <= 1.2 * rate, (direction, size / took)


def test_the_lab_is_removed_on_exit_also_after_an_exception() -> None:
    with pytest.raises(RuntimeError), NetLab() as lab:
        home = lab.add_nat_router("home", rate="1mbit")
        waiter = home.add_host("pc").popen([sys.executable, "-c", WAIT_FOREVER])
        assert len([n for n in list_namespaces() if n.startswith(lab.id)]) == 3
        raise RuntimeError("a test failed inside the lab")
    assert [n for n in list_namespaces() if n.startswith(lab.id)] == []
    assert waiter.returncode is not None
    assert not (OWNERS / lab.id).exists()


# Builds a lab with a process inside, prints the lab's id and that process's pid, waits.
BUILD_AND_HANG = r"""
import sys
sys.path.insert(0, sys.argv[1])
from tests.netlab import NetLab
lab = NetLab().__enter__()
waiter = lab.add_nat_router("home").add_host("pc").popen([sys.executable, "-c", sys.argv[2]])
print(lab.id, waiter.pid, flush=True)
sys.stdin.read()
"""


def test_a_killed_labs_namespaces_are_removed_by_the_next_a_live_labs_are_kept(
    lab: NetLab,
) -> None:
    killed = subprocess.Popen(
        [sys.executable, "-c", BUILD_AND_HANG, str(ROOT), WAIT_FOREVER],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    try:
        killed_id, waiter = read_line(killed, timeout=20).split()
    finally:
        killed.kill()
        killed.wait(timeout=10)
    assert len([n for n in list_namespaces() if n.startswith(killed_id)]) == 3
    left_running = os.pidfd_open(int(waiter))  # readable once that process has exited
    with NetLab() as newer:
        left = list_namespaces()
        assert [n for n in left if n.startswith(killed_id)] == []
        assert len([n for n in left if n.startswith(lab.id)]) == len(lab.hosts) + 1
        assert newer.id != lab.id
    # The process left running inside it is killed too.
    try:
        assert select.select([left_running], [], [], 10)[0] == [left_running]
    finally:
        os.close(left_running)
