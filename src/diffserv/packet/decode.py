"""Sans-I/O L2–L4 decode of a batch of frames into PacketBatch columns.

One compiled pass over the rows (``decode_rows``, src/kernels/packet_decode.c) extracts
what ipgpc classifies on (docs/capture.md, "What is decoded"): addresses, DS byte,
protocol after the IPv6 extension walk, ports, datagram length, plus the offsets the
rewriter needs (IP header, outer 802.1Q tag). Bad headers never raise: the row is
flagged FLAG_MALFORMED and passes through untouched. The capture walkers decode with the
same C code while they frame (src/kernels/packet_decode.h).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

from diffserv._kernels import decode_rows
from diffserv.columns import PacketBatch
from diffserv.packet.linktypes import LINKTYPE_ETHERNET


def decode_batch(batch: PacketBatch, linktype: NDArray[np.int32]) -> None:
    """Decode every row of ``batch`` (``pkt_off``/``cap_len``/``wire_len`` already set).

    ``linktype`` gives each row's link-layer header type. Rows whose ``direction`` is
    still 0 take the direction a Linux cooked header states.
    """
    decode_rows(batch.buf, linktype, batch.cols)


def decode_frames(
    frames: Sequence[bytes],
    linktype: int = LINKTYPE_ETHERNET,
    *,
    wire_lens: Sequence[int] | None = None,
    direction: int = 2,
) -> PacketBatch:
    """A decoded batch of ``frames`` held in memory (no capture file): handy in tests.

    Rows whose link layer states no direction get ``direction`` (LOCAL_OUT).
    """
    n = len(frames)
    lengths = np.array([len(f) for f in frames], np.int64)
    offsets = np.zeros(n, np.int64)
    if n:
        np.cumsum(lengths[:-1], out=offsets[1:])
    buf = np.frombuffer(b"".join(frames), np.uint8).copy()
    batch = PacketBatch.allocate(buf, n)
    batch.cols.number[:] = np.arange(1, n + 1)
    batch.cols.rec_off[:] = offsets
    batch.cols.rec_len[:] = lengths
    batch.cols.pkt_off[:] = offsets
    batch.cols.cap_len[:] = lengths
    batch.cols.wire_len[:] = lengths if wire_lens is None else np.array(wire_lens, np.int64)
    batch.span_end = int(lengths.sum())
    decode_batch(batch, np.full(n, linktype, np.int32))
    batch.cols.direction[batch.cols.direction == 0] = direction
    return batch
