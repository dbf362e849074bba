"""Internet checksum arithmetic: full IPv4 header sum and RFC 1624 incremental update.

The rewrite path changes one 16-bit word of the IPv4 header (version/IHL + ToS)
and must keep the header checksum valid without re-summing the header; tests
compare the incremental result with a full recomputation.
"""

from __future__ import annotations

import numpy as np
from numba import njit
from numpy.typing import NDArray


@njit(cache=True, nogil=True)
def fold16(total: int) -> int:
    """Fold carries of a one's-complement sum back into 16 bits."""
    while total > 0xFFFF:
        total = (total & 0xFFFF) + (total >> 16)
    return total


@njit(cache=True, nogil=True)
def incremental_checksum(old_checksum: int, old_word: int, new_word: int) -> int:
    """RFC 1624 eqn. 3: HC' = ~(~HC + ~m + m'), all 16-bit one's complement."""
    total = (~old_checksum & 0xFFFF) + (~old_word & 0xFFFF) + (new_word & 0xFFFF)
    return ~fold16(total) & 0xFFFF


@njit(cache=True, nogil=True)
def ipv4_header_checksum(buf: NDArray[np.uint8], off: int, header_len: int) -> int:
    """Checksum of the IPv4 header at ``buf[off:off+header_len]`` with its checksum field as 0."""
    total = 0
    for i in range(0, header_len, 2):
        if i == 10:
            continue
        total += (int(buf[off + i]) << 8) | int(buf[off + i + 1])
    return ~fold16(total) & 0xFFFF


def internet_checksum(data: bytes) -> int:
    """RFC 1071 checksum of ``data`` (odd length padded with a zero byte)."""
    if len(data) % 2:
        data += b"\x00"
    total = int(np.frombuffer(data, dtype=">u2").astype(np.uint64).sum())
    while total > 0xFFFF:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF
