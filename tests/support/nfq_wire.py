"""An independent encoder of NFQUEUE packet messages and decoder of verdict messages.

Written from the kernel's message layout (linux/netfilter/nfnetlink_queue.h), not from
the compiled kernel under test, so the tests compare two readings of the same format.
"""

from __future__ import annotations

import struct
from typing import Any

PACKET = (3 << 8) | 0
VERDICT = (3 << 8) | 1
VERDICT_BATCH = (3 << 8) | 3


def attr(kind: int, value: bytes) -> bytes:
    length = 4 + len(value)
    return struct.pack("=HH", length, kind) + value + b"\0" * (-length % 4)


def packet_message(
    packet_id: int,
    payload: bytes | None,
    *,
    hook: int = 2,
    indev: int | None = None,
    outdev: int | None = None,
    uid: int | None = None,
    gid: int | None = None,
    timestamp_ns: int | None = None,
    cap_len: int | None = None,
    mark: int | None = None,
    extra: bytes = b"",
) -> bytes:
    """One NFQNL_MSG_PACKET as the kernel sends it."""
    attrs = attr(1, struct.pack("!IHB", packet_id, 0x0800, hook) + b"\0")
    if mark is not None:
        attrs += attr(3, struct.pack("!I", mark))
    if timestamp_ns is not None:
        attrs += attr(4, struct.pack("!QQ", timestamp_ns // 10**9, timestamp_ns % 10**9 // 1000))
    if indev is not None:
        attrs += attr(5, struct.pack("!I", indev))
    if outdev is not None:
        attrs += attr(6, struct.pack("!I", outdev))
    if uid is not None:
        attrs += attr(16, struct.pack("!I", uid))
    if gid is not None:
        attrs += attr(17, struct.pack("!I", gid))
    if cap_len is not None:
        attrs += attr(13, struct.pack("!I", cap_len))
    attrs += extra
    if payload is not None:
        attrs += attr(10, payload)
    body = struct.pack("!BBH", 2, 0, 0) + attrs
    return struct.pack("=IHHII", 16 + len(body), PACKET, 0, 0, 0) + body


def verdicts(data: bytes) -> list[dict[str, Any]]:
    """Every verdict message in ``data``: type, queue, verdict, id, priority, payload."""
    out: list[dict[str, Any]] = []
    pos = 0
    while pos < len(data):
        length, kind, _flags, _seq, _pid = struct.unpack_from("=IHHII", data, pos)
        assert length >= 20 and pos + length <= len(data), (pos, length)
        (queue,) = struct.unpack_from("!H", data, pos + 18)
        msg: dict[str, Any] = {"type": kind, "queue": queue, "priority": None, "payload": None}
        apos = pos + 20
        while apos < pos + length:
            alen, atype = struct.unpack_from("=HH", data, apos)
            value = data[apos + 4 : apos + alen]
            if atype == 2:
                msg["verdict"], msg["id"] = struct.unpack("!II", value)
            elif atype == 21:
                (msg["priority"],) = struct.unpack("!I", value)
            elif atype == 10:
                msg["payload"] = bytes(value)
            apos += (alen + 3) & ~3
        out.append(msg)
        pos += (length + 3) & ~3
    return out
