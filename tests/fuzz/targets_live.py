"""Fuzz target for `diffserv live`: what the NFQUEUE socket hands the compiled parser.

An input is split into datagrams (each led by a 2-byte length, cut to a slot), parsed
into a batch as the receiver does, decoded, and the batch's verdicts built as the sink
does after marking every row. Nothing may raise, and every row must lie inside its own
datagram's slot. Seeds are kernel-shaped packet messages (IPv4, IPv6, several in one
datagram, without payload, with a truncated copy) and near misses.
"""

from __future__ import annotations

import struct
import sys
from pathlib import Path

import numpy as np
from harness import FuzzTarget

from diffserv._kernels import NFQ_COUNTERS, NFQ_META_WIDTH, nfq_parse, nfq_verdicts
from diffserv.columns import allocate_columns

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from support import synth
from support.nfq_wire import packet_message

SLOT = 2048
ROWS = 8


def _datagrams(data: bytes) -> list[bytes]:
    out = []
    pos = 0
    while pos + 2 <= len(data) and len(out) < ROWS:
        (size,) = struct.unpack_from("!H", data, pos)
        out.append(data[pos + 2 : pos + 2 + min(size, SLOT)])
        pos += 2 + size
    return out


def run_parser(data: bytes) -> None:
    datagrams = _datagrams(data)
    buf = np.zeros(max(1, len(datagrams)) * SLOT, np.uint8)
    for k, d in enumerate(datagrams):
        buf[k * SLOT : k * SLOT + len(d)] = np.frombuffer(d, np.uint8)
    lengths = np.array([len(d) for d in datagrams], np.int64)
    cols = allocate_columns(ROWS)
    meta = np.zeros((ROWS, NFQ_META_WIDTH), np.int64)
    counters = np.zeros(NFQ_COUNTERS, np.int64)
    rows, max_id, _ = nfq_parse(buf, lengths, SLOT, cols, meta, counters, 1, 10**18, 0)
    for i in range(rows):
        start = int(cols.pkt_off[i])
        slot = start // SLOT
        assert start + int(cols.cap_len[i]) <= (slot + 1) * SLOT, (i, start)
    cols.action[:rows] = -2
    cols.new_ds[:rows] = 0xB8
    cols.new_pcp[:rows] = 3
    out = np.zeros(1 << 16, np.uint8)
    _m, _b, err = nfq_verdicts(-1, 0, buf, cols, meta, out, counters, rows, max_id)
    assert err == 0


def _framed(*datagrams: bytes) -> bytes:
    return b"".join(struct.pack("!H", len(d)) + d for d in datagrams)


def _seeds() -> list[bytes]:
    v4 = synth.ipv4("10.99.1.1", "10.99.2.2", synth.udp(4000, 5001, b"hello"), tos=2)
    v6 = synth.ipv6("fd99:1::1", "fd99:2::2", synth.tcp(4000, 80), tclass=0xB9)
    one = packet_message(1, v4, hook=2, outdev=3, uid=0, gid=0, timestamp_ns=10**18)
    return [
        _framed(one),
        _framed(one, packet_message(2, v6, hook=1, indev=2)),
        _framed(one + packet_message(3, v4, hook=3)),
        _framed(packet_message(4, None)),
        _framed(packet_message(5, v4[:20], cap_len=len(v4))),
        _framed(one[:-7]),
        _framed(b"\xff" * 40),
    ]


TARGETS = (FuzzTarget("nfqueue-messages", run_parser, _seeds, max_len=1 << 14),)
