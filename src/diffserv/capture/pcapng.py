# ruff: noqa: PLR0917, PLR1714, SIM109, SIM108
# (numba kernels: flat positional array arguments and chained == compile to the tightest code)
"""pcapng framing: section and interface headers in Python, packet blocks in a compiled walker.

Section headers and interface descriptions are rare and carry the state the
packet blocks depend on (byte order, link type, timestamp resolution), so they
are parsed here one at a time; the walker stops at each of them and handles
EPB/SPB/OPB (and skips every other block) at full speed in between.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np
from numba import njit
from numpy.typing import NDArray

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


@dataclass(slots=True)
class Interface:
    """One IDB of the current section, with its timestamp conversion to ns."""

    linktype: int
    snaplen: int
    name: str
    ifindex: int
    ts_mul: int  # ns = raw * ts_mul // ts_div (decimal resolutions)
    ts_div: int
    ts_shift: int  # binary resolution 2^-ts_shift, -1 when decimal
    ts_offset_ns: int


def parse_shb(block: bytes) -> tuple[bool, tuple[int, int], int]:
    """(big_endian, version, section length) of a section header block, ValueError if bad."""
    if len(block) < 28:
        raise ValueError("section header block is too short")
    (bom_le,) = struct.unpack_from("<I", block, 8)
    if bom_le == BYTE_ORDER_MAGIC:
        order = "<"
    elif struct.unpack_from(">I", block, 8)[0] == BYTE_ORDER_MAGIC:
        order = ">"
    else:
        raise ValueError("section header block has no valid byte-order magic")
    major, minor, section_len = struct.unpack_from(order + "HHq", block, 12)
    if major != 1:
        raise ValueError(f"pcapng version {major}.{minor} is not supported (only 1.x)")
    return order == ">", (major, minor), section_len


def _options(block: bytes, start: int, end: int, order: str) -> list[tuple[int, bytes]]:
    out: list[tuple[int, bytes]] = []
    pos = start
    while pos + 4 <= end:
        code, length = struct.unpack_from(order + "HH", block, pos)
        if code == OPT_ENDOFOPT:
            break
        value = block[pos + 4 : pos + 4 + length]
        out.append((code, value))
        pos += 4 + ((length + 3) & ~3)
    return out


def parse_idb(block: bytes, big: bool) -> tuple[int, int, str, int, int, int, int]:
    """(linktype, snaplen, if_name, ts_mul, ts_div, ts_shift, ts_offset_ns) of an IDB."""
    order = ">" if big else "<"
    if len(block) < 20:
        raise ValueError("interface description block is too short")
    linktype, _reserved, snaplen = struct.unpack_from(order + "HHI", block, 8)
    name = ""
    ts_mul, ts_div, ts_shift, ts_offset = 1000, 1, -1, 0  # default: microseconds
    for code, value in _options(block, 16, len(block) - 4, order):
        if code == OPT_IF_NAME:
            name = value.split(b"\x00", 1)[0].decode("utf-8", "replace")
        elif code == OPT_IF_TSRESOL and len(value) >= 1:
            resol = value[0]
            exponent = resol & 0x7F
            if resol & 0x80:
                if exponent > 63:
                    raise ValueError(f"if_tsresol 2^-{exponent} is not supported")
                ts_mul, ts_div, ts_shift = 1, 1, exponent
            else:
                if exponent > 18:
                    raise ValueError(f"if_tsresol 10^-{exponent} is not supported")
                ts_shift = -1
                if exponent <= 9:
                    ts_mul, ts_div = 10 ** (9 - exponent), 1
                else:
                    ts_mul, ts_div = 1, 10 ** (exponent - 9)
        elif code == OPT_IF_TSOFFSET and len(value) >= 8:
            (ts_offset,) = struct.unpack_from(order + "q", value, 0)
            ts_offset *= 1_000_000_000
    return linktype, snaplen, name, ts_mul, ts_div, ts_shift, ts_offset


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
def _raw_to_ns(raw: int, mul: int, div: int, shift: int) -> int:
    if shift < 0:
        if div == 1:
            return raw * mul
        return raw // div
    if shift == 0:
        return raw * 1_000_000_000
    whole = raw >> shift
    frac = raw & ((1 << shift) - 1)
    if shift <= 33:
        return whole * 1_000_000_000 + ((frac * 1_000_000_000) >> shift)
    return whole * 1_000_000_000 + (((frac >> (shift - 33)) * 1_000_000_000) >> 33)


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
def scan_pcapng(
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
    rec_off: NDArray[np.int64],
    rec_len: NDArray[np.int64],
    ts_ns: NDArray[np.int64],
    wire_len: NDArray[np.uint32],
    cap_len: NDArray[np.uint32],
    pkt_off: NDArray[np.int64],
    ifindex: NDArray[np.int32],
    l3_off: NDArray[np.int64],
    vlan_off: NDArray[np.int64],
    ip_version: NDArray[np.uint8],
    ds_byte: NDArray[np.uint8],
    protocol: NDArray[np.uint8],
    saddr_hi: NDArray[np.uint64],
    saddr_lo: NDArray[np.uint64],
    daddr_hi: NDArray[np.uint64],
    daddr_lo: NDArray[np.uint64],
    sport: NDArray[np.uint16],
    dport: NDArray[np.uint16],
    ip_len: NDArray[np.uint32],
    direction: NDArray[np.uint8],
    flags: NDArray[np.uint8],
) -> tuple[int, int, int, int]:
    """Walk blocks of ``buf[pos:end]``, decoding packets into rows ``row..capacity-1``.

    Returns (status, rows, pos, last timestamp). ``if_ts`` is (n_interfaces, 4):
    mul, div, shift, offset_ns of each interface.
    """
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
            raw = (_u32(buf, pos + 12, big) << 32) | _u32(buf, pos + 16, big)
            incl = _u32(buf, pos + 20, big)
            if 28 + incl + 4 > blen:
                return SCAN_BAD, row, pos, last_ts
            ts = (
                _raw_to_ns(raw, if_ts[iface, 0], if_ts[iface, 1], if_ts[iface, 2]) + if_ts[iface, 3]
            )
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
            decode_one(
                buf,
                row,
                pos + 28,
                incl,
                wire,
                int(if_linktype[iface]),
                l3_off,
                vlan_off,
                ip_version,
                ds_byte,
                protocol,
                saddr_hi,
                saddr_lo,
                daddr_hi,
                daddr_lo,
                sport,
                dport,
                ip_len,
                direction,
                flags,
            )
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
            decode_one(
                buf,
                row,
                pos + 12,
                incl,
                orig,
                int(if_linktype[0]),
                l3_off,
                vlan_off,
                ip_version,
                ds_byte,
                protocol,
                saddr_hi,
                saddr_lo,
                daddr_hi,
                daddr_lo,
                sport,
                dport,
                ip_len,
                direction,
                flags,
            )
            row += 1
        pos += blen
    return SCAN_MORE, row, pos, last_ts


invalidate_if_stale(scan_pcapng, decode)
