"""Collector endpoints: `udp://ADDR:PORT` parsed once, and the UDP sockets opened for them.

The socket set-up lives here, apart from the receive loop, because it is where the
operating system says no (a port in use, an address this host lacks, a receive buffer
the kernel caps) and each refusal must become one line naming the endpoint.
"""

from __future__ import annotations

import ipaddress
import os
import socket
from collections.abc import Sequence
from typing import Final

import msgspec

from diffserv.errors import HostSystemError, UsageError

# Receive buffer asked for each socket: a burst of exports waits here while the
# collector writes a batch. As root SO_RCVBUFFORCE passes net.core.rmem_max.
RECEIVE_BUFFER_BYTES: Final = 64 * 1024 * 1024


class Endpoint(msgspec.Struct, frozen=True):
    """One `--listen udp://ADDR:PORT`."""

    host: str
    port: int

    @property
    def family(self) -> socket.AddressFamily:
        return socket.AF_INET6 if ":" in self.host else socket.AF_INET

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"udp://{host}:{self.port}"


def parse_endpoint(text: str) -> Endpoint:
    """``udp://127.0.0.1:4739`` or ``udp://[::1]:2055`` (a literal address, port 1-65535)."""
    scheme, sep, rest = text.partition("://")
    if not sep or scheme != "udp":
        raise UsageError(f"--listen {text}: want udp://ADDR:PORT (e.g. udp://127.0.0.1:4739)")
    if rest.startswith("["):
        host, bracket, port_text = rest[1:].partition("]")
        if not bracket or not port_text.startswith(":"):
            raise UsageError(f"--listen {text}: want udp://[IPV6]:PORT")
        port_text = port_text[1:]
    else:
        host, _, port_text = rest.rpartition(":")
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        raise UsageError(
            f"--listen {text}: {host!r} is not an IP address (give the address to bind)"
        ) from None
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise UsageError(f"--listen {text}: port must be 1..65535")
    return Endpoint(str(address), int(port_text))


def open_socket(endpoint: Endpoint, buffer_bytes: int = RECEIVE_BUFFER_BYTES) -> socket.socket:
    """A bound, non-blocking UDP socket with a receive buffer of ``buffer_bytes`` (or the
    most the host allows an unprivileged process)."""
    sock = socket.socket(endpoint.family, socket.SOCK_DGRAM)
    try:
        if endpoint.family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        _grow_receive_buffer(sock, buffer_bytes)
        sock.bind((endpoint.host, endpoint.port))
        sock.setblocking(False)
    except OSError as exc:
        sock.close()
        reason = os.strerror(exc.errno) if exc.errno else str(exc)
        raise HostSystemError(f"cannot listen on {endpoint}: {reason}") from None
    return sock


def open_sockets(
    endpoints: Sequence[Endpoint], buffer_bytes: int = RECEIVE_BUFFER_BYTES
) -> list[tuple[Endpoint, socket.socket]]:
    """A socket for each endpoint, or none at all (the first refusal closes the others)."""
    opened: list[tuple[Endpoint, socket.socket]] = []
    try:
        for endpoint in endpoints:
            if any(endpoint == seen for seen, _ in opened):
                raise UsageError(f"--listen {endpoint}: given twice")
            opened.append((endpoint, open_socket(endpoint, buffer_bytes)))
    except BaseException:
        close_sockets(opened)
        raise
    return opened


def close_sockets(sockets: Sequence[tuple[Endpoint, socket.socket]]) -> None:
    for _, sock in sockets:
        sock.close()


def _grow_receive_buffer(sock: socket.socket, buffer_bytes: int) -> None:
    force = getattr(socket, "SO_RCVBUFFORCE", 33)
    try:
        sock.setsockopt(socket.SOL_SOCKET, force, buffer_bytes)
    except OSError:  # not root: as much as net.core.rmem_max lets an ordinary user have
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, buffer_bytes)


def receive_buffer(sock: socket.socket) -> int:
    """The receive buffer the kernel gave (it doubles the request for bookkeeping)."""
    return int(sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF))


def kernel_drops(sock: socket.socket) -> int | None:
    """Datagrams the kernel dropped for this socket (its buffer was full), from /proc.

    The collector cannot see these losses itself: they never reach it. None where the
    table is not readable (no /proc).
    """
    inode = os.fstat(sock.fileno()).st_ino
    table = "/proc/net/udp6" if sock.family == socket.AF_INET6 else "/proc/net/udp"
    try:
        with open(table, encoding="ascii") as rows:
            next(rows, None)
            for row in rows:
                fields = row.split()
                if len(fields) >= 13 and fields[9] == str(inode):
                    return int(fields[-1])
    except (OSError, ValueError):
        return None
    return None
