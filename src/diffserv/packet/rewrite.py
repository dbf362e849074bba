"""In-place marking: write the DS byte (dscpmk) and the 802.1Q PCP (dlcosmk) into the frames.

Only the bytes a marker owns change: the IPv4 ToS byte plus the header checksum
(RFC 1624 incremental update, so the rest of the header is never re-summed), the
IPv6 traffic-class bits 4–11 of the first word, and the top three bits of the
outer VLAN TCI. Malformed packets are never touched, and nothing is written past a
frame's captured bytes: when the snap length cut an IPv4 header before the end of its
checksum field, only the ToS byte is written (the checksum is not in the capture).
The loop is compiled: ``mark_rows`` in src/kernels/packet_rewrite.c.
"""

from __future__ import annotations

from diffserv._kernels import mark_rows
from diffserv.columns import PacketBatch


def apply_marks(batch: PacketBatch) -> int:
    """Write ``new_ds``/``new_pcp`` of every row into ``batch.buf``; return frames changed.

    Rows with ``new_ds < 0`` keep their DS byte, rows with ``new_pcp < 0`` or no VLAN
    tag keep their TCI, and malformed rows are left exactly as they arrived.
    """
    if batch.n == 0:
        return 0
    return int(mark_rows(batch.buf, batch.cols))
