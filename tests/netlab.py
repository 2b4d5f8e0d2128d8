"""A small internet in Linux network namespaces, for tests and benchmarks (needs root).

    with NetLab() as lab:
        server = lab.add_public_host("server")  # 10.77.0.2, on the public internet
        home = lab.add_nat_router("home", rate="20mbit")  # 10.77.0.3, LAN 192.168.1.0/24
        peer = home.add_host("peer")  # 192.168.1.2, behind home's NAT
        index = server.popen([sys.executable, "-m", "server_app", "--headless", ...],
                             stdout=subprocess.PIPE)
        while "listening" not in read_line(index, timeout=20): ...
        peer.python("import socket; ...")  # its connections come from 10.77.0.3

The "internet" is one namespace holding a bridge (the public /24, 10.77.0.0/24, its
gateway 10.77.0.1 routes nothing else). A public host is a namespace with a veth on that
bridge. A NAT router is a namespace with a public address on the bridge (`wan0`) and a
private LAN bridge (`lan0`, 192.168.N.1/24); nftables masquerades what leaves `wan0` and
drops connections opened from outside (a typical home router, no port forwarding, no
UPnP). A host behind it is a namespace on that LAN whose default route is the router.

Every name carries the lab's random id (``nl`` and six hex digits), interfaces are made
inside the namespaces (never in the caller's), and everything goes on exit, also after
an exception. A lab killed before it could clean up is removed by the next one to start:
each lab writes its owner's process id and start time to /run/netlab/<id>.

No pytest here, so benchmarks use it too. Needs ``ip`` and ``tc`` (iproute2) and ``nft``
(nftables); ``.ci/run``, or the lab itself when run as root with apt-get, installs them.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import re
import secrets
import select
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

PREFIX = "nl"
LAB_ID = re.compile(rf"^({PREFIX}[0-9a-f]{{6}})-")
OWNERS = Path("/run/netlab")
PUBLIC_NET = ipaddress.ip_network("10.77.0.0/24")
GATEWAY = "10.77.0.1"
HOST_NAME = re.compile(r"^[a-z][a-z0-9-]{0,19}$")
RATE = re.compile(r"^(\d+(?:\.\d+)?)(bit|kbit|mbit|gbit)$")
RATE_UNITS = {"bit": 1, "kbit": 1_000, "mbit": 1_000_000, "gbit": 1_000_000_000}

# A typical home router: out from the LAN is masqueraded, nothing new comes in.
ROUTER_RULES = """
table inet netlab {
    chain input {
        type filter hook input priority filter; policy drop;
        ct state established,related accept
        iifname { "lo", "lan0" } accept
        meta l4proto { icmp, ipv6-icmp } accept
    }
    chain forward {
        type filter hook forward priority filter; policy drop;
        ct state established,related accept
        iifname "lan0" oifname "wan0" accept
    }
}
table ip netlab_nat {
    chain postrouting {
        type nat hook postrouting priority srcnat; policy accept;
        oifname "wan0" masquerade
    }
}
"""


class NetLabError(RuntimeError):
    """A command building or removing the lab failed."""


def _run(argv: Sequence[str], stdin: str | None = None) -> str:
    """Run a setup command; raise NetLabError with its message when it fails."""
    done = subprocess.run(list(argv), input=stdin, capture_output=True, text=True)
    if done.returncode:
        raise NetLabError(f"{' '.join(argv)}: {done.stderr.strip() or done.returncode}")
    return done.stdout


#: The Debian package of each tool the lab runs.
PACKAGES = {"ip": "iproute2", "tc": "iproute2", "nft": "nftables"}


def require_tools() -> None:
    """Raise NetLabError unless we are root with ip, tc and nft installed; as root on a
    machine with apt-get, install what is missing first (so `python3 dev.py test` needs
    nothing installed by hand)."""
    if os.geteuid() != 0:
        raise NetLabError("network namespaces need root")
    for folder in ("/usr/sbin", "/sbin"):
        if folder not in os.environ.get("PATH", "").split(os.pathsep):
            os.environ["PATH"] = os.environ.get("PATH", "") + os.pathsep + folder
    missing = sorted({PACKAGES[tool] for tool in PACKAGES if not shutil.which(tool)})
    if missing and shutil.which("apt-get"):
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-qq"], env=env, capture_output=True, check=False)
        subprocess.run(
            ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing],
            env=env,
            capture_output=True,
            check=False,
        )
    missing = [tool for tool in PACKAGES if not shutil.which(tool)]
    if missing:
        raise NetLabError(f"missing {', '.join(missing)} (apt-get install iproute2 nftables)")


def rate_bits(rate: str) -> int:
    """Bits per second of a tc rate such as "8mbit" (k, m, g are powers of 1000)."""
    match = RATE.match(rate)
    if not match:
        raise ValueError(f"rate {rate!r}: expected e.g. 500kbit, 8mbit, 1gbit")
    return int(float(match.group(1)) * RATE_UNITS[match.group(2)])


def _start_time(pid: int) -> str | None:
    """The start time of a process (field 22 of /proc/pid/stat), None if it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]


def _owner_alive(lab_id: str) -> bool:
    """Whether the process that made lab lab_id still runs."""
    try:
        pid, started = (OWNERS / lab_id).read_text().split()
        return _start_time(int(pid)) == started
    except (OSError, ValueError):
        return False


def list_namespaces() -> list[str]:
    """The names of all named network namespaces (ip netns list)."""
    return [line.split()[0] for line in _run(["ip", "netns", "list"]).splitlines() if line]


def _kill_namespace_processes(namespace: str) -> None:
    """SIGKILL every process still inside a namespace (ip netns pids)."""
    done = subprocess.run(["ip", "netns", "pids", namespace], capture_output=True, text=True)
    for pid in done.stdout.split():
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.kill(int(pid), signal.SIGKILL)


def remove_stale_labs() -> list[str]:
    """Delete the namespaces of labs whose owner process is gone; return their names."""
    removed = []
    for namespace in list_namespaces():
        match = LAB_ID.match(namespace)
        if match and not _owner_alive(match.group(1)):
            _kill_namespace_processes(namespace)
            subprocess.run(["ip", "netns", "delete", namespace], capture_output=True)
            removed.append(namespace)
    if OWNERS.is_dir():
        for owner in OWNERS.iterdir():
            if not _owner_alive(owner.name):
                owner.unlink(missing_ok=True)
    return removed


def read_line(process: subprocess.Popen, timeout: float) -> str:
    """The next line a process prints on its stdout pipe, waiting at most timeout seconds.

    Reads the pipe's descriptor byte by byte, so read that pipe only with this."""
    if process.stdout is None:
        raise ValueError("start the process with stdout=subprocess.PIPE")
    fd = process.stdout.fileno()
    deadline = time.monotonic() + timeout
    data = b""
    while not data.endswith(b"\n"):
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            raise TimeoutError(f"no line from pid {process.pid} in {timeout} s (got {data!r})")
        chunk = os.read(fd, 1)
        if not chunk:
            raise EOFError(f"pid {process.pid} closed its stdout (got {data!r})")
        data += chunk
    return data.decode().rstrip("\r\n")


class Host:
    """A machine: its own network namespace with one address."""

    def __init__(self, lab: NetLab, name: str, address: str, router: Router | None = None) -> None:
        self.lab = lab
        self.name = name
        self.namespace = lab.namespace_name(name)
        self.address = address
        self.router = router

    @property
    def public_address(self) -> str:
        """The address the internet sees this host's connections come from."""
        return self.router.public_address if self.router else self.address

    def command(self, argv: Sequence[Any]) -> list[str]:
        """argv wrapped to run inside this host's namespace."""
        return ["ip", "netns", "exec", self.namespace, *map(str, argv)]

    def run(self, argv: Sequence[Any], **kw: Any) -> subprocess.CompletedProcess:
        """subprocess.run inside the namespace."""
        return subprocess.run(self.command(argv), **kw)

    def popen(self, argv: Sequence[Any], **kw: Any) -> subprocess.Popen:
        """subprocess.Popen inside the namespace; the caller stops it (the lab kills it on
        exit if it still runs)."""
        process = subprocess.Popen(self.command(argv), **kw)
        self.lab.processes.append(process)
        return process

    def python(self, code: str, *args: Any, **kw: Any) -> subprocess.CompletedProcess:
        """Run ``sys.executable -c code *args`` inside the namespace (subprocess.run)."""
        return self.run([sys.executable, "-c", code, *args], **kw)

    def python_popen(self, code: str, *args: Any, **kw: Any) -> subprocess.Popen:
        """Start ``sys.executable -c code *args`` inside the namespace (subprocess.Popen)."""
        return self.popen([sys.executable, "-c", code, *args], **kw)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name} {self.address} in {self.namespace}>"


class Router(Host):
    """A NAT router: a public address, a private /24 behind it, masquerade and a firewall."""

    def __init__(self, lab: NetLab, name: str, address: str, subnet: str, rate: str | None) -> None:
        super().__init__(lab, name, address)
        self.subnet = ipaddress.ip_network(subnet)
        self.lan_address = str(self.subnet.network_address + 1)
        self.rate = rate
        self._ports = 0

    @property
    def public_address(self) -> str:
        """The router's own address on the internet."""
        return self.address

    def add_host(self, name: str) -> Host:
        """A new machine on this router's LAN, its default route via the router."""
        self._ports += 1
        address = str(self.subnet.network_address + 1 + self._ports)
        host = Host(self.lab, name, address, router=self)
        self.lab._add_machine(host)
        port = f"h{self._ports}"
        self.lab._link(host.namespace, "eth0", self.namespace, port)
        ip_r = ["ip", "-n", self.namespace]
        _run([*ip_r, "link", "set", port, "master", "lan0", "up"])
        ip_h = ["ip", "-n", host.namespace]
        _run([*ip_h, "addr", "add", f"{address}/{self.subnet.prefixlen}", "dev", "eth0"])
        _run([*ip_h, "link", "set", "eth0", "up"])
        _run([*ip_h, "route", "add", "default", "via", self.lan_address])
        return host


class NetLab:
    """A small internet in network namespaces; a context manager that removes it on exit."""

    def __init__(self) -> None:
        self.id = f"{PREFIX}{secrets.token_hex(3)}"
        self.internet = f"{self.id}-inet"
        self.hosts: dict[str, Host] = {}
        self.processes: list[subprocess.Popen] = []
        self._namespaces: list[str] = []
        self._addresses = PUBLIC_NET.hosts()
        self._ports = 0
        self._routers = 0

    def namespace_name(self, name: str) -> str:
        """The namespace of the machine called name."""
        return f"{self.id}-{name}"

    def __enter__(self) -> NetLab:
        require_tools()
        remove_stale_labs()
        OWNERS.mkdir(parents=True, exist_ok=True)
        (OWNERS / self.id).write_text(f"{os.getpid()} {_start_time(os.getpid())}\n")
        try:
            self._make_internet()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Kill what still runs in the lab, delete its namespaces (their veths, bridges,
        nft tables and qdiscs go with them). Safe to call twice."""
        for process in self.processes:
            if process.poll() is None:
                process.kill()
                process.wait(timeout=10)
        self.processes.clear()
        for namespace in reversed(self._namespaces):
            _kill_namespace_processes(namespace)
            subprocess.run(["ip", "netns", "delete", namespace], capture_output=True)
        self._namespaces.clear()
        (OWNERS / self.id).unlink(missing_ok=True)

    def _namespace(self, namespace: str) -> None:
        """Create a namespace with its loopback up."""
        _run(["ip", "netns", "add", namespace])
        self._namespaces.append(namespace)
        _run(["ip", "-n", namespace, "link", "set", "lo", "up"])

    def _link(self, namespace_a: str, name_a: str, namespace_b: str, name_b: str) -> None:
        """A veth pair made directly inside two namespaces (nothing in the caller's)."""
        peer = ["peer", "name", name_b, "netns", namespace_b]
        _run(["ip", "link", "add", name_a, "netns", namespace_a, "type", "veth", *peer])

    def _sysctl(self, namespace: str, key: str, value: str, if_present: bool = False) -> None:
        """Set a (per-namespace) sysctl; if_present: unless the kernel lacks it."""
        path = "/proc/sys/" + key.replace(".", "/")
        write = f"echo {value} > {path}"
        if if_present:
            write = f"[ ! -e {path} ] || {write}"
        _run(["ip", "netns", "exec", namespace, "sh", "-c", write])

    def _make_internet(self) -> None:
        self._namespace(self.internet)
        ip_i = ["ip", "-n", self.internet]
        _run([*ip_i, "link", "add", "br0", "type", "bridge"])
        gateway = str(next(self._addresses))
        assert gateway == GATEWAY
        _run([*ip_i, "addr", "add", f"{GATEWAY}/{PUBLIC_NET.prefixlen}", "dev", "br0"])
        _run([*ip_i, "link", "set", "br0", "up"])
        # It routes nothing but the public /24: private addresses get "unreachable" back.
        self._sysctl(self.internet, "net.ipv4.ip_forward", "1")

    def _add_machine(self, host: Host) -> None:
        if not self._namespaces:
            raise NetLabError("enter the lab first: with NetLab() as lab: ...")
        if not HOST_NAME.match(host.name):
            raise ValueError(f"host name {host.name!r}: lowercase letters, digits, '-'")
        if host.name in self.hosts or host.name == "inet":
            raise ValueError(f"host name {host.name!r} is taken")
        self.hosts[host.name] = host
        self._namespace(host.namespace)

    def _plug_in(self, host: Host, device: str) -> str:
        """Connect a machine's `device` to the internet bridge with a public address; return
        the bridge-side port's name."""
        self._ports += 1
        port = f"p{self._ports}"
        self._link(host.namespace, device, self.internet, port)
        _run(["ip", "-n", self.internet, "link", "set", port, "master", "br0", "up"])
        ip_h = ["ip", "-n", host.namespace]
        _run([*ip_h, "addr", "add", f"{host.address}/{PUBLIC_NET.prefixlen}", "dev", device])
        _run([*ip_h, "link", "set", device, "up"])
        _run([*ip_h, "route", "add", "default", "via", GATEWAY])
        return port

    def add_public_host(self, name: str, rate: str | None = None) -> Host:
        """A machine with a public address on the internet; rate (a tc rate) shapes its
        link both ways with tbf, as for a router."""
        if rate is not None:
            rate_bits(rate)
        host = Host(self, name, str(next(self._addresses)))
        self._add_machine(host)
        port = self._plug_in(host, "eth0")
        if rate is not None:
            self._shape(host.namespace, "eth0", rate)
            self._shape(self.internet, port, rate)
        return host

    def add_nat_router(self, name: str, rate: str | None = None) -> Router:
        """A home router: public address on `wan0`, LAN 192.168.N.0/24 on `lan0`, masquerade
        and no connections in. rate (a tc rate, e.g. "20mbit") shapes its uplink both ways
        with tbf."""
        if rate is not None:
            rate_bits(rate)
        self._routers += 1
        subnet = f"192.168.{self._routers}.0/24"
        router = Router(self, name, str(next(self._addresses)), subnet, rate)
        self._add_machine(router)
        port = self._plug_in(router, "wan0")
        ip_r = ["ip", "-n", router.namespace]
        _run([*ip_r, "link", "add", "lan0", "type", "bridge"])
        _run([*ip_r, "addr", "add", f"{router.lan_address}/24", "dev", "lan0"])
        _run([*ip_r, "link", "set", "lan0", "up"])
        self._sysctl(router.namespace, "net.ipv4.ip_forward", "1")
        # Where br_netfilter is loaded, frames bridged between two LAN hosts would meet the
        # forward chain (and its drop): the LAN is a switch, not filtered.
        for family in ("iptables", "ip6tables", "arptables"):
            key = f"net.bridge.bridge-nf-call-{family}"
            self._sysctl(router.namespace, key, "0", if_present=True)
        _run(["ip", "netns", "exec", router.namespace, "nft", "-f", "-"], stdin=ROUTER_RULES)
        if rate is not None:
            self._shape(router.namespace, "wan0", rate)  # upload
            self._shape(self.internet, port, rate)  # download
        return router

    def _shape(self, namespace: str, device: str, rate: str) -> None:
        """A token bucket on device's egress: 10 ms of rate as burst (at least 16 KiB), at
        most 50 ms queued."""
        burst = max(rate_bits(rate) // 8 // 100, 16 * 1024)
        tbf = ["rate", rate, "burst", str(burst), "latency", "50ms"]
        _run(["tc", "-n", namespace, "qdisc", "replace", "dev", device, "root", "tbf", *tbf])
