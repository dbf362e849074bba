# ruff: noqa: PLR1714, SIM109, SIM108
# (numba kernels: chained == and plain if/else compile to the tightest code)
"""pcapng framing: section and interface headers in Python, packet blocks in a compiled walker.

Section headers and interface descriptions are rare and carry the state the
packet blocks depend on (byte order, link type, timestamp resolution), so they
are parsed here one at a time; the walker stops at each of them and handles
EPB/SPB/OPB (and skips every other block) at full speed in between.
"""

from __future__ import annotations

import struct

import numpy as np
from numba import njit
from numpy.typing import NDArray

from diffserv import columns
from diffserv.columns import PacketColumns
from diffserv.packet import decode
from diffserv.packet.decode import decode_one
from diffserv.packet.kernel_cache import invalidate_if_stale

BT_SHB = 0x0A0D0D0A
BT_IDB = 0x00000001
BT_OPB = 0x00000002
BT_SPB = 0x00000003
BT_EPB = 0x00000006
BYTE_ORDER_MAGIC = 0x1A2B3C4D

OPT_ENDOFOPT = 0
OPT_IF_NAME = 2
OPT_IF_TSRESOL = 9
OPT_IF_TSOFFSET = 14
OPT_EPB_FLAGS = 2

MAX_BLOCK = 1 << 28  # 256 MiB: anything bigger is a corrupt length field

SCAN_MORE = 0  # rows full, or the next block is not complete in the buffer
SCAN_BAD = 1  # impossible block length at the returned position
SCAN_CONTROL = 2  # a section header or interface description is next
SCAN_BAD_IFACE = 3  # a packet block names an interface the section does not have
SCAN_BAD_TIME = 4  # a packet's time stamp is outside int64 nanoseconds


# Time stamps are int64 ns since the epoch: a packet whose time (with if_tsoffset)
# falls outside [-MAX_SECONDS, MAX_SECONDS] s, about 1677-09-22 to 2262-04-11 UTC,
# cannot be represented and stops the run (SCAN_BAD_TIME) instead of wrapping around.
MAX_SECONDS = 9_223_372_036
_MAX_LAST_NS = 854_775_807  # ns allowed within second MAX_SECONDS
# an if_tsoffset beyond this puts every packet out of range: clamping it keeps the
# arithmetic inside int64 without changing any result
_OFFSET_CLAMP = 1 << 40
MAX_DECIMAL_RESOLUTION = 19  # 10^-19 s: the finest decimal unit a 64-bit count can use
MAX_BINARY_RESOLUTION = 63

_POW10 = np.array([10**k for k in range(MAX_DECIMAL_RESOLUTION + 1)], np.uint64)


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


# scan_idbs statuses
IDB_DONE = 0  # the next block is not an IDB (or not even its type is in the buffer)
IDB_INCOMPLETE = 1  # the IDB at the returned position is not complete in the buffer
IDB_BAD = 2  # impossible block length (or its two length fields differ) at the position
IDB_SHORT = 3  # a block too short for an IDB at the position
IDB_FULL = 4  # ``out`` has no more rows
# scan_idbs output columns
IDB_POS, IDB_LINKTYPE, IDB_SNAPLEN, IDB_NAME_AT, IDB_NAME_LEN, IDB_RESOL, IDB_OFFSET_AT = range(7)
IDB_COLUMNS = 7


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
    return max(-_OFFSET_CLAMP, min(_OFFSET_CLAMP, seconds))


@njit(cache=True, nogil=True)
def scan_idbs(
    buf: NDArray[np.uint8], pos: int, end: int, big: bool, out: NDArray[np.int64]
) -> tuple[int, int, int]:
    """Walk the interface description blocks that follow each other from ``pos``.

    One row of ``out`` per IDB: its position, link type, snap length, the position and
    length of the if_name value, the if_tsresol byte (-1: none) and the position of the
    if_tsoffset value (-1: none); of repeated options the last counts. Compiled, so
    thousands of interfaces, or one with millions of options, cost milliseconds.
    Returns (status, rows, position after the last IDB walked).
    """
    rows = 0
    while True:
        if pos + 4 > end or _u32(buf, pos, big) != BT_IDB:
            return IDB_DONE, rows, pos
        if rows == out.shape[0]:
            return IDB_FULL, rows, pos
        if pos + 8 > end:
            return IDB_INCOMPLETE, rows, pos
        blen = _u32(buf, pos + 4, big)
        if blen < 12 or (blen & 3) != 0 or blen > MAX_BLOCK:
            return IDB_BAD, rows, pos
        if pos + blen > end:
            return IDB_INCOMPLETE, rows, pos
        if _u32(buf, pos + blen - 4, big) != blen:
            return IDB_BAD, rows, pos
        if blen < 20:
            return IDB_SHORT, rows, pos
        name_at = np.int64(-1)
        name_len = np.int64(0)
        resol = np.int64(-1)
        offset_at = np.int64(-1)
        opt = np.int64(pos + 16)
        opt_end = pos + blen - 4
        while opt + 4 <= opt_end:
            code = np.int64(_u16(buf, int(opt), big))
            length = np.int64(_u16(buf, int(opt) + 2, big))
            if code == OPT_ENDOFOPT or opt + 4 + length > opt_end:
                break
            if code == OPT_IF_NAME:
                name_at = np.int64(opt + 4)
                name_len = length
            elif code == OPT_IF_TSRESOL and length >= 1:
                resol = np.int64(buf[opt + 4])
            elif code == OPT_IF_TSOFFSET and length >= 8:
                offset_at = np.int64(opt + 4)
            opt = np.int64(opt + 4 + ((length + 3) & ~3))
        out[rows, IDB_POS] = pos
        out[rows, IDB_LINKTYPE] = _u16(buf, pos + 8, big)
        out[rows, IDB_SNAPLEN] = _u32(buf, pos + 12, big)
        out[rows, IDB_NAME_AT] = name_at
        out[rows, IDB_NAME_LEN] = name_len
        out[rows, IDB_RESOL] = resol
        out[rows, IDB_OFFSET_AT] = offset_at
        rows += 1
        pos += blen


@njit(cache=True, nogil=True)
def _u16(buf: NDArray[np.uint8], o: int, big: bool) -> int:
    if big:
        return (int(buf[o]) << 8) | int(buf[o + 1])
    return int(buf[o]) | (int(buf[o + 1]) << 8)


@njit(cache=True, nogil=True)
def _u32(buf: NDArray[np.uint8], o: int, big: bool) -> int:
    if big:
        return (
            (int(buf[o]) << 24) | (int(buf[o + 1]) << 16) | (int(buf[o + 2]) << 8) | int(buf[o + 3])
        )
    return int(buf[o]) | (int(buf[o + 1]) << 8) | (int(buf[o + 2]) << 16) | (int(buf[o + 3]) << 24)


@njit(cache=True, nogil=True)
def _timestamp_ns(hi: int, lo: int, binary: int, exponent: int, offset_s: int) -> tuple[bool, int]:
    """(in range, ns since the epoch) of a raw 64-bit time stamp ``hi:lo``.

    Unsigned 64-bit arithmetic throughout: nothing wraps; a time outside int64 ns
    (see MAX_SECONDS) gives (False, 0).
    """
    raw = (np.uint64(hi) << np.uint64(32)) | np.uint64(lo)
    ns_per_s = np.uint64(1_000_000_000)
    if binary:
        shift = np.uint64(exponent)
        whole = raw >> shift
        frac = raw & ((np.uint64(1) << shift) - np.uint64(1))
        if exponent <= 34:  # frac < 2^34: frac * 10^9 < 2^64
            frac_ns = (frac * ns_per_s) >> shift
        else:
            frac_ns = ((frac >> np.uint64(exponent - 34)) * ns_per_s) >> np.uint64(34)
    else:
        unit = _POW10[exponent]
        whole = raw // unit
        frac = raw % unit
        if exponent <= 9:
            frac_ns = frac * _POW10[9 - exponent]
        else:
            frac_ns = frac // _POW10[exponent - 9]
    if whole > np.uint64(_OFFSET_CLAMP):
        return False, 0
    seconds = np.int64(whole) + np.int64(offset_s)
    if seconds > MAX_SECONDS or seconds < -MAX_SECONDS:
        return False, 0
    if seconds == MAX_SECONDS and frac_ns > np.uint64(_MAX_LAST_NS):
        return False, 0
    return True, int(seconds * 1_000_000_000 + np.int64(frac_ns))


@njit(cache=True, nogil=True)
def _flags_direction(buf: NDArray[np.uint8], pos: int, end: int, big: bool) -> int:
    """Direction from the epb_flags/pack_flags option among options in ``buf[pos:end]``."""
    while pos + 4 <= end:
        code = _u16(buf, pos, big)
        length = _u16(buf, pos + 2, big)
        if code == 0:
            return 0
        if code == OPT_EPB_FLAGS and length >= 4 and pos + 8 <= end:
            inout = _u32(buf, pos + 4, big) & 0x3
            if inout == 1:
                return 1  # inbound -> LOCAL_IN
            if inout == 2:
                return 2  # outbound -> LOCAL_OUT
            return 0
        pos += 4 + ((length + 3) & ~3)
    return 0


@njit(cache=True, nogil=True)
def scan_pcapng(  # noqa: PLR0917 (numba: scalar walk state stays positional)
    buf: NDArray[np.uint8],
    pos: int,
    end: int,
    big: bool,
    if_linktype: NDArray[np.int32],
    if_snaplen: NDArray[np.int64],
    if_ifindex: NDArray[np.int32],
    if_ts: NDArray[np.int64],
    last_ts: int,
    row: int,
    capacity: int,
    cols: PacketColumns,
) -> tuple[int, int, int, int]:
    """Walk blocks of ``buf[pos:end]``, decoding packets into rows ``row..capacity-1``.

    Returns (status, rows, pos, last timestamp). ``if_ts`` is (n_interfaces, 3):
    binary resolution (0/1), resolution exponent, if_tsoffset seconds of each interface.
    """
    rec_off = cols.rec_off
    rec_len = cols.rec_len
    ts_ns = cols.ts_ns
    wire_len = cols.wire_len
    cap_len = cols.cap_len
    pkt_off = cols.pkt_off
    ifindex = cols.ifindex
    direction = cols.direction
    n_if = if_linktype.shape[0]
    while row < capacity:
        if pos + 12 > end:
            return SCAN_MORE, row, pos, last_ts
        btype = _u32(buf, pos, big)
        if btype == BT_SHB or btype == BT_IDB:
            return SCAN_CONTROL, row, pos, last_ts
        blen = _u32(buf, pos + 4, big)
        if blen < 12 or (blen & 3) != 0 or blen > MAX_BLOCK:
            return SCAN_BAD, row, pos, last_ts
        if pos + blen > end:
            return SCAN_MORE, row, pos, last_ts
        if _u32(buf, pos + blen - 4, big) != blen:
            return SCAN_BAD, row, pos, last_ts
        if btype == BT_EPB or btype == BT_OPB:
            if blen < 32:
                return SCAN_BAD, row, pos, last_ts
            if btype == BT_EPB:
                iface = _u32(buf, pos + 8, big)
            else:
                iface = _u16(buf, pos + 8, big)
            if iface >= n_if:
                return SCAN_BAD_IFACE, row, pos, last_ts
            incl = _u32(buf, pos + 20, big)
            if 28 + incl + 4 > blen:
                return SCAN_BAD, row, pos, last_ts
            ok, ts = _timestamp_ns(
                _u32(buf, pos + 12, big),
                _u32(buf, pos + 16, big),
                if_ts[iface, 0],
                if_ts[iface, 1],
                if_ts[iface, 2],
            )
            if not ok:
                return SCAN_BAD_TIME, row, pos, last_ts
            rec_off[row] = pos
            rec_len[row] = blen
            ts_ns[row] = ts
            wire = _u32(buf, pos + 24, big)
            wire_len[row] = wire
            cap_len[row] = incl
            pkt_off[row] = pos + 28
            ifindex[row] = if_ifindex[iface]
            direction[row] = _flags_direction(
                buf, pos + 28 + ((incl + 3) & ~3), pos + blen - 4, big
            )
            decode_one(buf, row, pos + 28, incl, wire, int(if_linktype[iface]), cols)
            last_ts = ts
            row += 1
        elif btype == BT_SPB:
            if n_if == 0:
                return SCAN_BAD_IFACE, row, pos, last_ts
            if blen < 16:
                return SCAN_BAD, row, pos, last_ts
            orig = _u32(buf, pos + 8, big)
            incl = min(orig, blen - 16)
            snap = if_snaplen[0]
            if snap > 0:
                incl = min(incl, snap)
            rec_off[row] = pos
            rec_len[row] = blen
            ts_ns[row] = last_ts
            wire_len[row] = orig
            cap_len[row] = incl
            pkt_off[row] = pos + 12
            ifindex[row] = if_ifindex[0]
            direction[row] = 0
            decode_one(buf, row, pos + 12, incl, orig, int(if_linktype[0]), cols)
            row += 1
        pos += blen
    return SCAN_MORE, row, pos, last_ts


invalidate_if_stale(scan_pcapng, decode, columns)
