"""Network namespaces joined by veth pairs, made for one test and always torn down.

Live-traffic tests never touch the host's interfaces, routes or firewall: every address
they use lives in namespaces created here (10.99.K.0/24 and fd99:K::/64 on link K), and
every rule they install is installed inside one of them. Names carry the pid and a
counter, so parallel pytest workers never collide. ``topology`` makes a chain
``A - B - C ...`` with routes through the middle ones (forwarding on), which covers the
sender / router / receiver shape; :meth:`Topology.close` kills every process started in
the namespaces and deletes them, also when the test failed.
"""

from __future__ import annotations

import itertools
import os
import shutil
import signal
import subprocess
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from typing import Any

from support.tools import unavailable

_COUNTER = itertools.count()


def _ip() -> str:
    path = shutil.which("ip") or "/usr/sbin/ip"
    if not os.access(path, os.X_OK):
        unavailable("iproute2 (ip) is required for namespace tests")
    return path


def require_netns() -> None:
    """Skip (fail under CI) unless this process may create network namespaces."""
    if os.geteuid() != 0:
        unavailable("live-traffic tests need root (network namespaces, iptables)")
    _ip()


class Namespace:
    """One network namespace: run commands inside it."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.processes: list[subprocess.Popen[Any]] = []

    def argv(self, argv: Sequence[str]) -> list[str]:
        return [_ip(), "netns", "exec", self.name, *argv]

    def run(
        self, argv: Sequence[str], *, check: bool = True, timeout: float = 30, **kw: Any
    ) -> subprocess.CompletedProcess[str]:
        """Run ``argv`` inside the namespace and wait; output captured as text."""
        done = subprocess.run(
            self.argv(argv), capture_output=True, text=True, timeout=timeout, check=False, **kw
        )
        if check and done.returncode != 0:
            raise AssertionError(
                f"{' '.join(argv)} in {self.name}: rc {done.returncode}: {done.stderr.strip()}"
            )
        return done

    def popen(self, argv: Sequence[str], **kw: Any) -> subprocess.Popen[Any]:
        """Start ``argv`` inside the namespace; it is killed when the topology closes."""
        proc: subprocess.Popen[Any] = subprocess.Popen(self.argv(argv), **kw)
        self.processes.append(proc)
        return proc


class Link:
    """Link K between two namespaces: each end's interface name and addresses."""

    def __init__(self, k: int, left: str, right: str) -> None:
        self.k = k
        self.left, self.right = left, right
        self.ifname = {left: f"veth{k}a", right: f"veth{k}b"}
        self.v4 = {left: f"10.99.{k}.1", right: f"10.99.{k}.2"}
        self.v6 = {left: f"fd99:{k}::1", right: f"fd99:{k}::2"}


class Topology:
    """Namespaces by role and the links between them."""

    def __init__(self, prefix: str, roles: Sequence[str]) -> None:
        self.prefix = prefix
        self.ns = {role: Namespace(f"{prefix}{role}") for role in roles}
        self.links: list[Link] = []

    def __getitem__(self, role: str) -> Namespace:
        return self.ns[role]

    def address(self, role: str, family: int = 4) -> str:
        """The first address of ``role`` (on its first link)."""
        for link in self.links:
            if role in link.v4:
                return link.v4[role] if family == 4 else link.v6[role]
        raise KeyError(role)

    def close(self) -> None:
        for ns in self.ns.values():
            for proc in ns.processes:
                if proc.poll() is None:
                    with suppress(ProcessLookupError):
                        os.kill(proc.pid, signal.SIGKILL)
                    proc.wait(timeout=10)
            ns.processes.clear()
        for ns in self.ns.values():
            subprocess.run([_ip(), "netns", "del", ns.name], capture_output=True, check=False)


def _mac(ns: Namespace, ifname: str) -> str:
    text = ns.run([_ip(), "-o", "link", "show", ifname]).stdout
    words = text.split()
    return words[words.index("link/ether") + 1]


def topology(roles: Sequence[str], *, mtu: int = 1500) -> Topology:
    """A chain of namespaces, one per role, each joined to the next by a veth pair with
    IPv4 and IPv6 addresses; every namespace routes to every link through its neighbours
    and the middle ones forward. Skips (fails under CI) without root."""
    require_netns()
    ip = _ip()
    prefix = f"ds{os.getpid()}x{next(_COUNTER)}"
    topo = Topology(prefix, roles)
    try:
        for ns in topo.ns.values():
            subprocess.run([ip, "netns", "add", ns.name], capture_output=True, check=True)
            ns.run([ip, "link", "set", "lo", "up"])
        for k, (left, right) in enumerate(itertools.pairwise(roles), start=1):
            link = Link(k, left, right)
            topo.links.append(link)
            subprocess.run(
                [
                    ip,
                    "link",
                    "add",
                    link.ifname[left],
                    "netns",
                    topo[left].name,
                    "mtu",
                    str(mtu),
                    "type",
                    "veth",
                    "peer",
                    "name",
                    link.ifname[right],
                    "netns",
                    topo[right].name,
                    "mtu",
                    str(mtu),
                ],
                capture_output=True,
                check=True,
            )
            for role in (left, right):
                ns, name = topo[role], link.ifname[role]
                ns.run([ip, "addr", "add", f"{link.v4[role]}/24", "dev", name])
                ns.run([ip, "-6", "addr", "add", f"{link.v6[role]}/64", "dev", name, "nodad"])
                ns.run([ip, "link", "set", name, "up"])
        # static neighbours: no packet of a test ever waits (or is lost) in address resolution
        for link in topo.links:
            for here, there in ((link.left, link.right), (link.right, link.left)):
                mac = _mac(topo[there], link.ifname[there])
                for addr in (link.v4[there], link.v6[there]):
                    topo[here].run(
                        [
                            ip,
                            "neigh",
                            "replace",
                            addr,
                            "lladdr",
                            mac,
                            "dev",
                            link.ifname[here],
                            "nud",
                            "permanent",
                        ]
                    )
        for i, role in enumerate(roles):
            ns = topo[role]
            if 0 < i < len(roles) - 1:
                ns.run(["sysctl", "-q", "-w", "net.ipv4.ip_forward=1"])
                ns.run(["sysctl", "-q", "-w", "net.ipv6.conf.all.forwarding=1"])
            for link in topo.links:
                if role in link.v4:
                    continue
                # the far link: through the neighbour on our side of it
                toward_right = link.k > i
                my_link = topo.links[i] if toward_right else topo.links[i - 1]
                via = my_link.right if toward_right else my_link.left
                ns.run([ip, "route", "add", f"10.99.{link.k}.0/24", "via", my_link.v4[via]])
                ns.run([ip, "-6", "route", "add", f"fd99:{link.k}::/64", "via", my_link.v6[via]])
    except BaseException:
        topo.close()
        raise
    return topo


@contextmanager
def namespaces(roles: Sequence[str], **kw: Any) -> Iterator[Topology]:
    """``topology`` as a context manager: deleted on the way out, whatever happened."""
    topo = topology(roles, **kw)
    try:
        yield topo
    finally:
        topo.close()
