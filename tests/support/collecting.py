"""Running collectors as a user does: `diffserv collect` and nfcapd as processes on 127.0.0.1.

The collector tests send real UDP datagrams and signal real processes, so they share
these few steps: a free port, waiting until a socket is bound, reading `--stats`, and
stopping with a signal and a deadline (a hung collector fails the test, never hangs it).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import diffserv
from diffserv.flows.store import read_store

# the source tree under test comes first on the child's path (as the start-up tests do)
SOURCE_ROOT = str(Path(diffserv.__file__).resolve().parent.parent)


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def udp_bound(port: int) -> bool:
    """Whether any socket is bound to UDP ``port`` (IPv4, from /proc/net/udp)."""
    wanted = f":{port:04X}"
    for line in Path("/proc/net/udp").read_text().splitlines()[1:]:
        fields = line.split()
        if len(fields) > 1 and fields[1].endswith(wanted):
            return True
    return False


def wait_for(what: str, check: Callable[[], bool], timeout_s: float = 15.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def diffserv_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [SOURCE_ROOT, *filter(None, env.get("PYTHONPATH", "").split(os.pathsep))]
    )
    return env


def run_diffserv(args: Sequence[str], timeout_s: float = 60.0) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "diffserv", *args],
        env=diffserv_env(),
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )


def read_stats(path: Path) -> dict[str, Any]:
    try:
        value: dict[str, Any] = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return value


class Collect:
    """`diffserv collect` in a child process, with its --stats file polled."""

    def __init__(
        self, tmp: Path, ports: Sequence[int], *extra: str, name: str = "c", host: str = "127.0.0.1"
    ) -> None:
        self.store = tmp / f"{name}-store"
        self.stats_path = tmp / f"{name}-stats.json"
        self.ports = list(ports)
        where = f"[{host}]" if ":" in host else host
        listen = [a for port in ports for a in ("--listen", f"udp://{where}:{port}")]
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "diffserv",
                "collect",
                *listen,
                "--store",
                str(self.store),
                "--stats",
                str(self.stats_path),
                "--status-interval",
                "0.1",
                *extra,
            ],
            env=diffserv_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            wait_for(
                "diffserv collect to listen",
                lambda: self.stats().get("state") == "receiving" or self.proc.poll() is not None,
            )
        except BaseException:
            self.kill()
            raise
        if self.proc.poll() is not None:
            _, err = self.proc.communicate()
            raise AssertionError(f"diffserv collect exited {self.proc.returncode}: {err}")

    def stats(self) -> dict[str, Any]:
        return read_stats(self.stats_path)

    def records(self) -> int:
        return int(self.stats().get("total", {}).get("records", 0))

    def wait_records(self, n: int, timeout_s: float = 15.0) -> None:
        wait_for(f"{n} records decoded", lambda: self.records() >= n, timeout_s)

    def send(self, signum: int) -> None:
        self.proc.send_signal(signum)

    def stop(self, signum: int = signal.SIGTERM, timeout_s: float = 30.0) -> tuple[int, str]:
        """Signal, wait for the exit; (exit status, stderr)."""
        self.proc.send_signal(signum)
        try:
            _, err = self.proc.communicate(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError("diffserv collect did not stop on a signal") from None
        return self.proc.returncode, err

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.communicate()


class Nfcapd:
    """nfcapd on 127.0.0.1:PORT writing into DIR; SIGTERM writes its last file."""

    def __init__(self, nfcapd: str, tmp: Path, port: int, *extra: str) -> None:
        self.spool = tmp / f"nfcapd-{port}"
        self.spool.mkdir()
        self.proc = subprocess.Popen(
            [
                nfcapd,
                "-b",
                "127.0.0.1",
                "-p",
                str(port),
                "-w",
                str(self.spool),
                "-t",
                "3600",
                *extra,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for("nfcapd to listen", lambda: udp_bound(port) or self.proc.poll() is not None)

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError("nfcapd did not stop on SIGTERM") from None


def nfdump_json(nfdump: str, spool: Path) -> list[dict[str, Any]]:
    """nfdump's flow records of a spool directory, times in UTC (it prints local time)."""
    out = subprocess.run(
        [nfdump, "-R", str(spool), "-o", "json"],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "TZ": "UTC"},
    ).stdout
    records: list[dict[str, Any]] = json.loads(out) if out.strip() else []
    return [r for r in records if r.get("type") == "FLOW"]


class Relay:
    """A UDP socket that copies every datagram it gets to several collectors.

    softflowd then runs once and both collectors see the very same datagrams.
    """

    def __init__(self, targets: Sequence[int]) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.05)
        self.port: int = self.sock.getsockname()[1]
        self.targets = [("127.0.0.1", port) for port in targets]
        self.out = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.datagrams: list[bytes] = []

    def pump(self, until: Callable[[], bool], quiet_s: float = 0.5) -> None:
        """Forward until ``until()`` is true and nothing came for ``quiet_s``."""
        last = time.monotonic()
        while True:
            try:
                payload = self.sock.recv(65535)
            except TimeoutError:
                if until() and time.monotonic() - last > quiet_s:
                    return
                continue
            last = time.monotonic()
            self.datagrams.append(payload)
            for target in self.targets:
                self.out.sendto(payload, target)

    def close(self) -> None:
        self.sock.close()
        self.out.close()


# ------------------------------------------------- reading what a collector did


def bound_sockets(n: int) -> list[socket.socket]:
    """Sender sockets bound to 127.0.0.1 (so that their exporter key is known before sending)."""
    socks = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(n)]
    for sock in socks:
        sock.bind(("127.0.0.1", 0))
    return socks


def exporter_key(sock: socket.socket) -> str:
    host, port = sock.getsockname()
    return f"{host}:{port}"


def store_rows(store: Path) -> list[dict[str, Any]]:
    if not any(store.glob("**/*.parquet")):
        return []
    rows: list[dict[str, Any]] = read_store(str(store)).to_pylist()
    return rows


def row_key(row: dict[str, Any]) -> tuple[Any, ...]:
    return (row["saddr"], row["daddr"], row["sport"], row["dport"], row["protocol"])


def first_last_ms(row: dict[str, Any]) -> tuple[int, int]:
    return (
        int(row["first_seen"].timestamp() * 1000 + 0.5),
        int(row["last_seen"].timestamp() * 1000 + 0.5),
    )
