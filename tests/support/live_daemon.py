"""``diffserv live`` started inside a test's router namespace, and what it left behind.

Also a tshark capture on a receiver's interface and its per-packet verdict on DSCP, ECN
and checksums: the tests judge the bytes that arrived, not what the daemon says.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from support.netns import Namespace
from support.tools import require_tool

REPO = Path(__file__).resolve().parents[2]
SRC = REPO / "src"
TRAFFIC = Path(__file__).resolve().parent / "traffic.py"


_SOCKETS = tempfile.TemporaryDirectory(prefix="ds-live-")  # short: a socket path is < 108


def env() -> dict[str, str]:
    """The test's own interpreter and source tree, inside every namespace, and a control
    socket of its own for each daemon (the default one is the host's, shared by every
    test worker)."""
    path = os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    sock = tempfile.mkdtemp(dir=_SOCKETS.name)
    return dict(os.environ, PYTHONPATH=path, DIFFSERV_STATS_SOCKET=os.path.join(sock, "s"))


def mangle_rules(ns: Namespace) -> str:
    """Both families' mangle tables as iptables-save prints them, minus the comments."""
    require_tool("iptables")
    out = []
    for tool in ("iptables-save", "ip6tables-save"):
        text = ns.run([tool, "-t", "mangle"]).stdout
        out += [line for line in text.splitlines() if not line.startswith("#")]
    return "\n".join(out)


_BUILTIN = ("PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING")


def all_rules(ns: Namespace) -> list[str]:
    """Every rule, chain and non-default policy of every table of both families, as
    ``tool table line`` (counters left out). A table with nothing in it is not listed:
    iptables-nft creates one on first use and keeps it empty afterwards."""
    out = []
    for tool in ("iptables-save", "ip6tables-save"):
        table = ""
        for line in ns.run([tool]).stdout.splitlines():
            if line.startswith("*"):
                table = line[1:]
            elif line.startswith("-"):
                out.append(f"{tool} {table} {line}")
            elif line.startswith(":"):
                name, policy = line[1:].split()[:2]
                if not (name in _BUILTIN and policy == "ACCEPT"):
                    out.append(f"{tool} {table} :{name} {policy}")
    return out


class Daemon:
    """A running ``diffserv live`` in ``ns``; :meth:`stop` sends SIGTERM and waits."""

    def __init__(self, ns: Namespace, policy: Path, *extra: str, stats: Path | None = None) -> None:
        require_tool("iptables")
        self.ns = ns
        self.stats_path = stats
        argv = [sys.executable, "-m", "diffserv", "live", str(policy), *extra]
        if stats is not None:
            argv += ["--stats", str(stats)]
        self.proc = ns.popen(argv, env=env(), stderr=subprocess.PIPE, text=True)
        self.stderr = ""
        deadline = time.monotonic() + 20
        while "NFQUEUE" not in mangle_rules(ns):
            if self.proc.poll() is not None:
                self.stderr = self.proc.stderr.read() if self.proc.stderr else ""
                raise AssertionError(f"diffserv live exited {self.proc.returncode}: {self.stderr}")
            if time.monotonic() > deadline:
                raise AssertionError("diffserv live did not install its rules in 20 s")
            time.sleep(0.05)

    def stop(self, signum: int = signal.SIGTERM) -> int:
        self.proc.send_signal(signum)
        try:
            _out, err = self.proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            _out, err = self.proc.communicate()
        self.stderr = err or ""
        return self.proc.returncode

    def kill(self) -> None:
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)

    def stats(self) -> dict[str, Any]:
        assert self.stats_path is not None
        doc: dict[str, Any] = json.loads(self.stats_path.read_text())
        return doc


def start_traffic(ns: Namespace, *args: str, user: int | None = None) -> subprocess.Popen[str]:
    """A traffic.py command inside ``ns`` (as uid ``user``); sinks are waited for until
    they say they are ready."""
    argv = [sys.executable, str(TRAFFIC), *args]
    if user is not None:  # dropped inside the namespace (entering one needs root)
        ids = str(user)
        argv = [require_tool("setpriv"), "--reuid", ids, "--regid", ids, "--clear-groups", *argv]
    proc = ns.popen(argv, env=env(), stdout=subprocess.PIPE, text=True)
    if args[0].endswith("-sink") or args[0] == "capture":
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert "ready" in line, line
    return proc


def result(proc: subprocess.Popen[str], timeout: float = 30) -> dict[str, Any]:
    out, _err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, out
    doc: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return doc


def traffic(ns: Namespace, *args: str, user: int | None = None) -> dict[str, Any]:
    return result(start_traffic(ns, *args, user=user))


class Capture:
    """Every frame arriving on ``interface`` in ``ns``, written to the pcap file ``path``
    (traffic.py's AF_PACKET capture, ready the moment it is bound); tshark judges it."""

    def __init__(self, ns: Namespace, interface: str, path: Path) -> None:
        self.tshark = require_tool("tshark")
        self.path = path
        self.proc = start_traffic(ns, "capture", interface, str(path))

    def stop(self) -> list[dict[str, str]]:
        """Stop capturing; every UDP and TCP packet that arrived, with its DS fields and
        checksum verdicts (neighbour discovery and the like are not the test's traffic)."""
        time.sleep(0.3)  # what is in flight lands first
        self.proc.send_signal(signal.SIGTERM)
        assert result(self.proc)["frames"] > 0
        fields = [
            "ip.version",
            "ip.dsfield.dscp",
            "ip.dsfield.ecn",
            "ipv6.tclass.dscp",
            "ipv6.tclass.ecn",
            "ip.checksum.status",
            "udp.checksum.status",
            "tcp.checksum.status",
            "udp.dstport",
            "tcp.dstport",
            "tcp.len",
        ]
        argv = [self.tshark, "-n", "-r", str(self.path)]
        for proto in ("ip", "udp", "tcp"):
            argv += ["-o", f"{proto}.check_checksum:TRUE"]
        argv += ["-Y", "udp or tcp", "-T", "fields", "-E", "separator=,"]
        for field in fields:
            argv += ["-e", field]
        out = subprocess.run(argv, capture_output=True, text=True, check=True, timeout=60).stdout
        rows = []
        for line in out.splitlines():
            values = line.split(",")
            rows.append(dict(zip(fields, values, strict=True)))
        return rows


def packet_view(row: dict[str, str]) -> tuple[int, int, int, str]:
    """(family, DSCP, ECN, destination port as 'udp/N' or 'tcp/N') of a captured row."""
    family = 6 if row["ipv6.tclass.dscp"] else 4
    dscp = _number(row["ipv6.tclass.dscp"] or row["ip.dsfield.dscp"])
    ecn = _number(row["ipv6.tclass.ecn"] or row["ip.dsfield.ecn"])
    port = f"udp/{row['udp.dstport']}" if row["udp.dstport"] else f"tcp/{row['tcp.dstport']}"
    return family, dscp, ecn, port


def _number(text: str) -> int:
    return int(text, 16) if text.startswith("0x") else int(text)


def checksums_good(row: dict[str, str]) -> bool:
    """Every checksum the packet has was verified good (tshark's status 1)."""
    statuses = [row["ip.checksum.status"], row["udp.checksum.status"], row["tcp.checksum.status"]]
    return all(s in ("", "1") for s in statuses) and any(s == "1" for s in statuses)
