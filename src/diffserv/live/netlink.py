"""The NFQUEUE socket: an AF_NETLINK socket bound to one netfilter queue.

Configuration is a handful of messages at start-up, so it is plain Python here; the
per-packet traffic (receiving and verdicts) is in the compiled kernel
(src/kernels/nfqueue.c). The socket is set up so traffic is never black-holed: the
queue *fails open* (when it is full or this socket's buffer overflows the kernel accepts
the packet instead of dropping it), and the rules that feed it bypass the queue when no
program is bound (``rules.py``). GSO is never asked for: with it, locally generated
packets arrive with their L4 checksum unfinished and any payload verdict would send
them out with a bad one.
"""

from __future__ import annotations

import errno
import os
import socket
import struct
from typing import Final

from diffserv.errors import HostSystemError

NETLINK_NETFILTER: Final = 12
NFNL_SUBSYS_QUEUE: Final = 3
NFQNL_MSG_CONFIG: Final = (NFNL_SUBSYS_QUEUE << 8) | 2
NLMSG_ERROR: Final = 2
NLM_F_REQUEST: Final = 0x01
NLM_F_ACK: Final = 0x04

NFQA_CFG_CMD: Final = 1
NFQA_CFG_PARAMS: Final = 2
NFQA_CFG_QUEUE_MAXLEN: Final = 3
NFQA_CFG_MASK: Final = 4
NFQA_CFG_FLAGS: Final = 5
NFQNL_CFG_CMD_BIND: Final = 1
NFQNL_CFG_CMD_UNBIND: Final = 2
NFQNL_COPY_PACKET: Final = 2
NFQA_CFG_F_FAIL_OPEN: Final = 1 << 0
NFQA_CFG_F_UID_GID: Final = 1 << 3
QUEUE_FLAGS: Final = NFQA_CFG_F_FAIL_OPEN | NFQA_CFG_F_UID_GID

SO_SNDBUFFORCE: Final = 32
SO_RCVBUFFORCE: Final = 33
SOL_NETLINK: Final = 270
NETLINK_NO_ENOBUFS: Final = 5

DEFAULT_RCVBUF: Final = 32 << 20  # a second of a busy link: the queue, not the socket, fills
DEFAULT_SNDBUF: Final = 8 << 20
DEFAULT_MAXLEN: Final = 8192  # packets waiting for a verdict before failing open
MAX_COPY: Final = 0xFFFF - 4  # the kernel's largest copy range


def _attr(kind: int, value: bytes) -> bytes:
    length = 4 + len(value)
    return struct.pack("=HH", length, kind) + value + b"\0" * (-length % 4)


def config_message(queue: int, attrs: bytes, seq: int) -> bytes:
    """One NFQNL_MSG_CONFIG for ``queue`` asking for an acknowledgement."""
    body = struct.pack("!BBH", socket.AF_UNSPEC, 0, queue) + attrs
    header = struct.pack(
        "=IHHII", 16 + len(body), NFQNL_MSG_CONFIG, NLM_F_REQUEST | NLM_F_ACK, seq, 0
    )
    return header + body


def bind_attrs(queue: int) -> bytes:
    """BIND the queue (the protocol-family field is ignored by kernels since 3.8)."""
    return _attr(NFQA_CFG_CMD, struct.pack("!BBH", NFQNL_CFG_CMD_BIND, 0, 0))


def params_attrs(copy_range: int) -> bytes:
    return _attr(NFQA_CFG_PARAMS, struct.pack("!IB", copy_range, NFQNL_COPY_PACKET))


def maxlen_attrs(maxlen: int) -> bytes:
    return _attr(NFQA_CFG_QUEUE_MAXLEN, struct.pack("!I", maxlen))


def flags_attrs(flags: int) -> bytes:
    """Flags are only changed where the mask has bits, so both carry the same value."""
    return _attr(NFQA_CFG_MASK, struct.pack("!I", flags)) + _attr(
        NFQA_CFG_FLAGS, struct.pack("!I", flags)
    )


def ack_error(data: bytes, seq: int) -> int | None:
    """The error code (0 = success) of the acknowledgement of ``seq`` in ``data``, or None
    when ``data`` holds no such acknowledgement (packets may arrive in between)."""
    pos = 0
    while pos + 16 <= len(data):
        length, kind, _flags, msg_seq, _pid = struct.unpack_from("=IHHII", data, pos)
        if length < 16 or pos + length > len(data):
            return None
        if kind == NLMSG_ERROR and msg_seq == seq and length >= 20:
            code: int = struct.unpack_from("=i", data, pos + 16)[0]
            return -code
        pos += (length + 3) & ~3
    return None


class QueueSocket:
    """A netlink socket bound to netfilter queue ``queue``, copying whole packets.

    Raises HostSystemError naming the step that failed: no permission (not root), the
    queue taken by another program, a kernel without NFQUEUE.
    """

    def __init__(
        self,
        queue: int,
        *,
        copy_range: int = MAX_COPY,
        maxlen: int = DEFAULT_MAXLEN,
        rcvbuf: int = DEFAULT_RCVBUF,
        sndbuf: int = DEFAULT_SNDBUF,
    ) -> None:
        if not 0 <= queue <= 65535:
            raise HostSystemError(f"NFQUEUE: queue number {queue} is outside 0-65535")
        self.queue = queue
        self.copy_range = min(copy_range, MAX_COPY)
        self._seq = 0
        try:
            self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER)
        except OSError as exc:
            raise HostSystemError(
                f"NFQUEUE: cannot open a netfilter netlink socket: {exc.strerror}"
            ) from None
        try:
            self.sock.bind((0, 0))
            for option, size in ((SO_RCVBUFFORCE, rcvbuf), (SO_SNDBUFFORCE, sndbuf)):
                try:
                    self.sock.setsockopt(socket.SOL_SOCKET, option, size)
                except PermissionError:  # without CAP_NET_ADMIN: as much as rmem_max allows
                    plain = socket.SO_RCVBUF if option == SO_RCVBUFFORCE else socket.SO_SNDBUF
                    self.sock.setsockopt(socket.SOL_SOCKET, plain, size)
            self._configure("bind queue", bind_attrs(queue))
            self._configure("set copy mode", params_attrs(self.copy_range))
            self._configure("set queue length", maxlen_attrs(maxlen))
            self._configure("set fail-open and uid/gid flags", flags_attrs(QUEUE_FLAGS))
        except BaseException:
            self.sock.close()
            raise
        self.sock.setblocking(False)
        # the highest packet id that arrived while configuring (a verdict must cover it)
        self.early_max_id = 0

    def fileno(self) -> int:
        return self.sock.fileno()

    def _configure(self, what: str, attrs: bytes) -> None:
        self._seq += 1
        seq = self._seq
        try:
            self.sock.send(config_message(self.queue, attrs, seq))
            self.sock.settimeout(2.0)
            while True:
                data = self.sock.recv(1 << 16)
                code = ack_error(data, seq)
                if code is not None:
                    break
        except TimeoutError:
            raise HostSystemError(
                f"NFQUEUE queue {self.queue}: {what}: no answer from the kernel"
            ) from None
        except OSError as exc:
            raise HostSystemError(f"NFQUEUE queue {self.queue}: {what}: {exc.strerror}") from None
        if code == 0:
            return
        if code == errno.EPERM and os.geteuid() == 0:
            # the kernel answers EPERM when another socket owns the queue
            reason = "the queue is bound by another program"
        elif code == errno.EPERM:
            reason = "permission denied (needs CAP_NET_ADMIN; or another program holds the queue)"
        else:
            reason = os.strerror(code)
        raise HostSystemError(f"NFQUEUE queue {self.queue}: {what}: {reason}")

    def close(self) -> None:
        """Unbind (the kernel forgets the queue and its rules bypass it again) and close.

        Packets still waiting for a verdict when a program goes are dropped by the kernel:
        the daemon gives every packet its verdict before it closes.
        """
        if self.sock.fileno() < 0:
            return
        try:
            self._seq += 1
            unbind = _attr(NFQA_CFG_CMD, struct.pack("!BBH", NFQNL_CFG_CMD_UNBIND, 0, 0))
            self.sock.send(config_message(self.queue, unbind, self._seq))
        except OSError:
            pass  # closing the socket unbinds as well
        finally:
            self.sock.close()
