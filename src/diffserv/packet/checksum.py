"""Internet checksum arithmetic: full IPv4 header sum and RFC 1624 incremental update.

The rewrite path changes one 16-bit word of the IPv4 header (version/IHL + ToS)
and must keep the header checksum valid without re-summing the header; tests
compare the incremental result with a full recomputation.
"""

from __future__ import annotations

import numpy as np

# compiled (src/kernels/packet_rewrite.c): the rewriter's own arithmetic, exported so the
# tests hold the incremental update to a full recomputation in the very code that runs
from diffserv._kernels import fold16, incremental_checksum, ipv4_header_checksum

__all__ = ["fold16", "incremental_checksum", "internet_checksum", "ipv4_header_checksum"]


def internet_checksum(data: bytes) -> int:
    """RFC 1071 checksum of ``data`` (odd length padded with a zero byte)."""
    if len(data) % 2:
        data += b"\x00"
    total = int(np.frombuffer(data, dtype=">u2").astype(np.uint64).sum())
    while total > 0xFFFF:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF
