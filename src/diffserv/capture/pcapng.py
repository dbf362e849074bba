"""pcapng framing: section and interface headers in Python, packet blocks in a compiled walker.

Section headers and interface descriptions are rare and carry the state the
packet blocks depend on (byte order, link type, timestamp resolution), so they
are parsed here one at a time; the walker stops at each of them and handles
EPB/SPB/OPB (and skips every other block) at full speed in between. The walkers
(``scan_pcapng``, ``scan_idbs``) are compiled, in src/kernels/capture_scan.c, which also
defines the block types, limits and statuses imported here: one definition for both.
"""

from __future__ import annotations

import struct

from diffserv._kernels import (
    BT_EPB,
    BT_IDB,
    BT_OPB,
    BT_SHB,
    BT_SPB,
    BYTE_ORDER_MAGIC,
    IDB_BAD,
    IDB_COLUMNS,
    IDB_DONE,
    IDB_FULL,
    IDB_INCOMPLETE,
    IDB_LINKTYPE,
    IDB_NAME_AT,
    IDB_NAME_LEN,
    IDB_OFFSET_AT,
    IDB_POS,
    IDB_RESOL,
    IDB_SHORT,
    IDB_SNAPLEN,
    MAX_BINARY_RESOLUTION,
    MAX_BLOCK,
    MAX_DECIMAL_RESOLUTION,
    MAX_SECONDS,
    OFFSET_CLAMP,
    OPT_ENDOFOPT,
    OPT_EPB_FLAGS,
    OPT_IF_NAME,
    OPT_IF_TSOFFSET,
    OPT_IF_TSRESOL,
    SCAN_BAD,
    SCAN_BAD_IFACE,
    SCAN_BAD_TIME,
    SCAN_CONTROL,
    SCAN_MORE,
    scan_idbs,
    scan_pcapng,
)

# What the C side defines (see capture_scan.c for each): block types and options;
# MAX_BLOCK, a block length beyond which the length field is corrupt; the time stamp
# range (MAX_SECONDS either side of the epoch, int64 ns) and OFFSET_CLAMP, the
# if_tsoffset beyond which every packet is out of range anyway; the finest if_tsresol
# units (MAX_DECIMAL_RESOLUTION, MAX_BINARY_RESOLUTION); the scan_pcapng statuses
# SCAN_MORE (rows full, or the next block is not complete in the buffer), SCAN_BAD
# (impossible block length), SCAN_CONTROL (a section header or interface description
# is next), SCAN_BAD_IFACE (a packet block names an interface the section does not
# have), SCAN_BAD_TIME (a time stamp outside int64 ns); the scan_idbs statuses IDB_*
# and its output columns (IDB_POS ... IDB_OFFSET_AT, IDB_COLUMNS of them).
__all__ = [
    "BT_EPB",
    "BT_IDB",
    "BT_OPB",
    "BT_SHB",
    "BT_SPB",
    "BYTE_ORDER_MAGIC",
    "IDB_BAD",
    "IDB_COLUMNS",
    "IDB_DONE",
    "IDB_FULL",
    "IDB_INCOMPLETE",
    "IDB_LINKTYPE",
    "IDB_NAME_AT",
    "IDB_NAME_LEN",
    "IDB_OFFSET_AT",
    "IDB_POS",
    "IDB_RESOL",
    "IDB_SHORT",
    "IDB_SNAPLEN",
    "MAX_BINARY_RESOLUTION",
    "MAX_BLOCK",
    "MAX_DECIMAL_RESOLUTION",
    "MAX_SECONDS",
    "OFFSET_CLAMP",
    "OPT_ENDOFOPT",
    "OPT_EPB_FLAGS",
    "OPT_IF_NAME",
    "OPT_IF_TSOFFSET",
    "OPT_IF_TSRESOL",
    "SCAN_BAD",
    "SCAN_BAD_IFACE",
    "SCAN_BAD_TIME",
    "SCAN_CONTROL",
    "SCAN_MORE",
    "clamp_offset",
    "parse_shb",
    "resolution",
    "scan_idbs",
    "scan_pcapng",
]


def parse_shb(head: bytes, length: int) -> tuple[bool, tuple[int, int], int]:
    """(big_endian, version, section length) of a section header block, ValueError if bad.

    ``head`` holds at least the first 24 bytes of the block, ``length`` is its length.
    """
    if length < 28 or len(head) < 24:
        raise ValueError("section header block is too short")
    (bom_le,) = struct.unpack_from("<I", head, 8)
    if bom_le == BYTE_ORDER_MAGIC:
        order = "<"
    elif struct.unpack_from(">I", head, 8)[0] == BYTE_ORDER_MAGIC:
        order = ">"
    else:
        raise ValueError("section header block has no valid byte-order magic")
    major, minor, section_len = struct.unpack_from(order + "HHq", head, 12)
    if major != 1:
        raise ValueError(f"pcapng version {major}.{minor} is not supported (only 1.x)")
    return order == ">", (major, minor), section_len


def resolution(resol: int) -> tuple[bool, int]:
    """(binary, exponent) of an if_tsresol byte; ValueError when it cannot be handled."""
    exponent = resol & 0x7F
    binary = bool(resol & 0x80)
    if binary and exponent > MAX_BINARY_RESOLUTION:
        raise ValueError(f"if_tsresol 2^-{exponent} is not supported")
    if not binary and exponent > MAX_DECIMAL_RESOLUTION:
        raise ValueError(f"if_tsresol 10^-{exponent} is not supported")
    return binary, exponent


def clamp_offset(seconds: int) -> int:
    """An if_tsoffset limited to +-2^40 s, which changes no representable time stamp."""
    return max(-OFFSET_CLAMP, min(OFFSET_CLAMP, seconds))
