"""Network-namespace hosts on a private bridge (iproute2, root): each host has its own
network stack and IP, like a pod; the bridge's own address lets this machine reach them.
Everything is named with one random prefix, so parallel runs never collide."""

from __future__ import annotations

import ipaddress
import logging
import os
import random
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ttg_ray.errors import UsageError

log = logging.getLogger(__name__)

NETNS_ETC = Path("/etc/netns")  # `ip netns exec` bind-mounts /etc/netns/NAME/* over /etc


def _ip(*args: str, check: bool = True) -> str:
    proc = subprocess.run(["ip", *args], capture_output=True, text=True, check=False)
    if check and proc.returncode != 0:
        raise UsageError(
            f"`ip {' '.join(args)}` failed: {proc.stderr.strip()}; the rehearsal needs root "
            "and iproute2 (apt-get install iproute2)"
        )
    return proc.stdout


def check_ready() -> None:
    """Fail early, with what to do, when this machine cannot make namespaces."""
    if shutil.which("ip") is None:
        raise UsageError("the rehearsal needs iproute2's `ip`: apt-get install iproute2")
    if os.geteuid() != 0:
        raise UsageError("the rehearsal makes network namespaces: run it as root")


def _free_subnet() -> ipaddress.IPv4Network:
    """A /24 in 10.200.0.0-10.254.255.0 that no interface or route here uses yet."""
    used = _ip("-4", "route", "show", "table", "all") + _ip("-4", "addr")
    for _ in range(200):
        net = ipaddress.ip_network(f"10.{random.randint(200, 254)}.{random.randint(0, 255)}.0/24")
        if f"10.{net.network_address.packed[1]}.{net.network_address.packed[2]}." not in used:
            return net
    raise UsageError("found no free 10.x.y.0/24 for the rehearsal bridge")


@dataclass
class Host:
    """One namespace with one interface (eth0) on the bridge."""

    name: str  # what the rehearsal calls it, e.g. "worker-2"
    netns: str
    ip: str
    veth: str  # the bridge side of the pair
    procs: list[subprocess.Popen] = field(default_factory=list)

    def popen(
        self, argv: Sequence[str], env: Mapping[str, str], log_path: Path
    ) -> subprocess.Popen:
        """Start ``argv`` inside this host, its output to ``log_path``."""
        with open(log_path, "ab") as out:
            proc = subprocess.Popen(
                ["ip", "netns", "exec", self.netns, *argv],
                env=dict(env),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # a Ctrl-C on the terminal reaches us, not them
            )
        self.procs.append(proc)
        return proc

    def pids(self) -> list[int]:
        """Every process in this host's network namespace (all started by us)."""
        out = _ip("netns", "pids", self.netns, check=False)
        return [int(p) for p in out.split()]

    def kill(self, timeout_s: float = 10.0) -> int:
        """SIGKILL every process inside, as a pod deletion does to its containers, until
        none is left (a dying parent may have forked). Returns how many were killed."""
        killed = 0
        deadline = time.monotonic() + timeout_s
        while (pids := self.pids()) and time.monotonic() < deadline:
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                    killed += 1
                except ProcessLookupError:
                    pass
            time.sleep(0.1)
        for proc in self.procs:
            proc.poll()  # reap what we started directly
        return killed

    def unplug(self) -> None:
        """Take the host off the bridge: its IP is gone, as a deleted pod's is."""
        _ip("link", "del", self.veth, check=False)


class Network:
    """A bridge of our own with a host-side address, and namespace hosts on it. Use as a
    context manager: close() kills every process inside and removes every namespace,
    interface and file it made, on any exit."""

    def __init__(self, prefix: str | None = None):
        self.prefix = prefix or f"tr{random.randrange(16**5):05x}"  # ≤ 15 chars with suffixes
        self.bridge = f"{self.prefix}br"
        self.subnet = _free_subnet()
        addrs = list(self.subnet.hosts())
        self.gateway = str(addrs[0])
        self._free = [str(a) for a in addrs[1:]]
        self.hosts: list[Host] = []
        self._made_bridge = False

    def __enter__(self) -> Network:
        try:
            self.open()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def open(self) -> None:
        _ip("link", "add", self.bridge, "type", "bridge")
        self._made_bridge = True
        _ip("addr", "add", f"{self.gateway}/{self.subnet.prefixlen}", "dev", self.bridge)
        _ip("link", "set", self.bridge, "up")
        log.info("bridge %s at %s (%s)", self.bridge, self.gateway, self.subnet)

    def add_host(self, name: str, etc_hosts: Mapping[str, str] | None = None) -> Host:
        """A new namespace with the next free IP; ``etc_hosts`` (name -> IP) goes into its
        /etc/hosts, so those names resolve there as cluster DNS would."""
        index = len(self.hosts)
        host = Host(name, f"{self.prefix}-{index}", self._free.pop(0), f"{self.prefix}v{index}")
        self.hosts.append(host)
        peer = f"{self.prefix}p{index}"
        _ip("netns", "add", host.netns)
        _ip("link", "add", host.veth, "type", "veth", "peer", "name", peer)
        _ip("link", "set", peer, "netns", host.netns)
        _ip("link", "set", host.veth, "master", self.bridge)
        _ip("link", "set", host.veth, "up")
        inside = ("netns", "exec", host.netns, "ip")
        _ip(*inside, "link", "set", peer, "name", "eth0")
        _ip(*inside, "addr", "add", f"{host.ip}/{self.subnet.prefixlen}", "dev", "eth0")
        _ip(*inside, "link", "set", "eth0", "up")
        _ip(*inside, "link", "set", "lo", "up")
        # As the kubelet writes a pod's /etc/hosts: its own name at its own IP, so a
        # process that looks itself up finds this host, not the machine's address.
        etc = NETNS_ETC / host.netns
        etc.mkdir(parents=True, exist_ok=True)
        names = {socket.gethostname(): host.ip, **(etc_hosts or {})}
        lines = ["127.0.0.1 localhost", *(f"{ip} {n}" for n, ip in names.items())]
        (etc / "hosts").write_text("\n".join(lines) + "\n")
        log.info("host %s: namespace %s, %s", name, host.netns, host.ip)
        return host

    def close(self) -> None:
        for host in self.hosts:
            host.kill()
            _ip("netns", "del", host.netns, check=False)
            _ip("link", "del", host.veth, check=False)
            shutil.rmtree(NETNS_ETC / host.netns, ignore_errors=True)
        if self._made_bridge:
            _ip("link", "del", self.bridge, check=False)
            self._made_bridge = False
        self.hosts = []

    def leftovers(self) -> list[str]:
        """Namespaces and links with our prefix that still exist (empty after close)."""
        names = _ip("netns", "list", check=False) + _ip("-o", "link", check=False)
        return sorted({w.split("@")[0].rstrip(":") for w in names.split() if self.prefix in w})
