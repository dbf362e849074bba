"""In-place marking: write the DS byte (dscpmk) and the 802.1Q PCP (dlcosmk) into the frames.

Only the bytes a marker owns change: the IPv4 ToS byte plus the header checksum
(RFC 1624 incremental update, so the rest of the header is never re-summed), the
IPv6 traffic-class bits 4–11 of the first word, and the top three bits of the
outer VLAN TCI. Malformed packets are never touched, and nothing is written past a
frame's captured bytes: when the snap length cut an IPv4 header before the end of its
checksum field, only the ToS byte is written (the checksum is not in the capture).
"""

from __future__ import annotations

import numpy as np
from numba import njit
from numpy.typing import NDArray

from diffserv import columns
from diffserv.columns import FLAG_MALFORMED, IPV4, IPV6, PacketBatch, PacketColumns
from diffserv.packet import checksum
from diffserv.packet.checksum import incremental_checksum
from diffserv.packet.kernel_cache import invalidate_if_stale


@njit(cache=True, nogil=True)
def mark_rows(buf: NDArray[np.uint8], cols: PacketColumns) -> int:
    """Write the requested DS bytes and PCPs; return how many frames changed."""
    pkt_off = cols.pkt_off
    cap_len = cols.cap_len
    l3_off = cols.l3_off
    vlan_off = cols.vlan_off
    ip_version = cols.ip_version
    flags = cols.flags
    new_ds = cols.new_ds
    new_pcp = cols.new_pcp
    changed = 0
    for i in range(l3_off.shape[0]):
        if flags[i] & FLAG_MALFORMED:
            continue
        touched = False
        ds = int(new_ds[i])
        l3 = int(l3_off[i])
        if ds >= 0 and l3 >= 0:
            ds &= 0xFF
            version = ip_version[i]
            if version == IPV4:
                old_word = (int(buf[l3]) << 8) | int(buf[l3 + 1])
                new_word = (old_word & 0xFF00) | ds
                if new_word != old_word:
                    buf[l3 + 1] = ds
                    if l3 + 12 <= int(pkt_off[i]) + int(cap_len[i]):
                        old_sum = (int(buf[l3 + 10]) << 8) | int(buf[l3 + 11])
                        new_sum = incremental_checksum(old_sum, old_word, new_word)
                        buf[l3 + 10] = new_sum >> 8
                        buf[l3 + 11] = new_sum & 0xFF
                    touched = True
            elif version == IPV6:
                b0 = (int(buf[l3]) & 0xF0) | (ds >> 4)
                b1 = ((ds & 0x0F) << 4) | (int(buf[l3 + 1]) & 0x0F)
                if b0 != buf[l3] or b1 != buf[l3 + 1]:
                    buf[l3] = b0
                    buf[l3 + 1] = b1
                    touched = True
        pcp = int(new_pcp[i])
        tci = int(vlan_off[i])
        if pcp >= 0 and tci >= 0:
            b = ((pcp & 0x07) << 5) | (int(buf[tci]) & 0x1F)
            if b != buf[tci]:
                buf[tci] = b
                touched = True
        if touched:
            changed += 1
    return changed


def apply_marks(batch: PacketBatch) -> int:
    """Write ``new_ds``/``new_pcp`` of every row into ``batch.buf``; return frames changed.

    Rows with ``new_ds < 0`` keep their DS byte, rows with ``new_pcp < 0`` or no VLAN
    tag keep their TCI, and malformed rows are left exactly as they arrived.
    """
    if batch.n == 0:
        return 0
    return int(mark_rows(batch.buf, batch.cols))


invalidate_if_stale(mark_rows, checksum, columns)
