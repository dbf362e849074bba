"""ipqosconf and `diffserv stat` run in a router namespace, and UDP sent through it.

The end-to-end ipqosconf tests share these: sender — router — receiver namespaces
(``support.netns.topology``), ipqosconf run inside the router against one control socket,
and datagrams to port 5004 (or another) whose received DS bytes are read with IP_RECVTOS.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

SRC = str(Path(__file__).resolve().parents[2] / "src")

RECEIVE = """
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.IPPROTO_IP, socket.IP_RECVTOS, 1)
s.bind(("0.0.0.0", int(sys.argv[2])))
s.settimeout(5)
print("ready", flush=True)
tos = []
try:
    while len(tos) < int(sys.argv[1]):
        data, anc, flags, addr = s.recvmsg(2048, 64)
        tos.extend(d[0] for level, kind, d in anc if kind == socket.IP_TOS)
except TimeoutError:
    pass
print(" ".join(map(str, tos)), flush=True)
"""

SEND = """
import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for i in range(int(sys.argv[2])):
    s.sendto(b"x" * 100, (sys.argv[1], int(sys.argv[3])))
    time.sleep(0.002)
"""


class Router:
    """Commands run in the router namespace, against one control socket."""

    def __init__(self, topo: Any, run_dir: Path) -> None:
        self.ns = topo["rtr"]
        self.sock = str(run_dir / "live.sock")
        self.env = {
            **os.environ,
            "PYTHONPATH": SRC,
            "IPQOSCONF_INIT_FILE": str(run_dir / "init.conf"),
        }

    def ipqosconf(self, *args: str) -> Any:
        argv = [
            sys.executable,
            "-m",
            "diffserv.cli.ipqosconf_cmd",
            *args,
            "--stats-socket",
            self.sock,
        ]
        return self.ns.run(argv, check=False, env=self.env, timeout=60)

    def stat(self) -> dict[str, Any]:
        argv = [sys.executable, "-m", "diffserv", "stat", "--json", "--stats-socket", self.sock]
        done = self.ns.run(argv, env=self.env)
        return dict(json.loads(done.stdout))


def exchange(net: Any, count: int, port: int = 5004) -> list[int]:
    """Send ``count`` datagrams sender → receiver port ``port``; the TOS bytes that
    arrived."""
    receiver = net["rcv"].popen(
        [sys.executable, "-c", RECEIVE, str(count), str(port)], stdout=subprocess.PIPE, text=True
    )
    assert receiver.stdout.readline().strip() == "ready"
    net["snd"].run([sys.executable, "-c", SEND, net.address("rcv"), str(count), str(port)])
    out, _ = receiver.communicate(timeout=30)
    return [int(v) for v in out.split()]
