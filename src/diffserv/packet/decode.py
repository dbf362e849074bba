# ruff: noqa: PLR1714, SIM109
# (numba kernels: chained == compiles to the tightest code)
"""Sans-I/O L2–L4 decode of a batch of frames into PacketBatch columns.

One compiled pass over the rows extracts what ipgpc classifies on (docs/capture.md,
"What is decoded"): addresses, DS byte, protocol after the IPv6 extension walk,
ports, datagram length, plus the offsets the rewriter needs (IP header, outer
802.1Q tag). Bad headers never raise: the row is flagged FLAG_MALFORMED and
passes through untouched.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numba import njit
from numpy.typing import NDArray

from diffserv import columns
from diffserv.columns import (
    FLAG_FRAGMENT,
    FLAG_HEADER_CUT,
    FLAG_LENGTH_FROM_FRAME,
    FLAG_MALFORMED,
    FLAG_NO_PORTS,
    FLAG_TRUNCATED,
    IPV4,
    IPV6,
    PacketBatch,
    PacketColumns,
)
from diffserv.directions import LOCAL_IN, LOCAL_OUT
from diffserv.packet.kernel_cache import invalidate_if_stale
from diffserv.packet.linktypes import (
    LINKTYPE_C_HDLC,
    LINKTYPE_C_HDLC_WITH_DIR,
    LINKTYPE_ETHERNET,
    LINKTYPE_IPV4,
    LINKTYPE_IPV6,
    LINKTYPE_LINUX_SLL,
    LINKTYPE_LINUX_SLL2,
    LINKTYPE_LOOP,
    LINKTYPE_NULL,
    LINKTYPE_PPP,
    LINKTYPE_PPP_HDLC,
    LINKTYPE_PPP_WITH_DIR,
    LINKTYPE_RAW,
    LINKTYPE_RAW_BSD12,
    LINKTYPE_RAW_BSD14,
)

ETHERTYPE_IPV4 = 0x0800
ETHERTYPE_IPV6 = 0x86DD
ETHERTYPE_PPPOE_SESSION = 0x8864
ETHERTYPE_MPLS = 0x8847
ETHERTYPE_MPLS_MULTICAST = 0x8848
PPP_IPV4 = 0x0021
PPP_IPV6 = 0x0057
PPP_MPLS = 0x0281
PPP_MPLS_MULTICAST = 0x0283
IPV6_OPT_JUMBO = 0xC2
JUMBO_MIN = 65536  # RFC 2675: a jumbo payload length is at least this

_DIR_IN = LOCAL_IN
_DIR_OUT = LOCAL_OUT

# _link() results for the L3 offset
_NOT_IP = -1
_BAD = -2

_V4_MAPPED = 0xFFFF << 32


@njit(cache=True, nogil=True)
def _be16(buf: NDArray[np.uint8], o: int) -> int:
    return (int(buf[o]) << 8) | int(buf[o + 1])


@njit(cache=True, nogil=True)
def _be32(buf: NDArray[np.uint8], o: int) -> int:
    return (int(buf[o]) << 24) | (int(buf[o + 1]) << 16) | (int(buf[o + 2]) << 8) | int(buf[o + 3])


@njit(cache=True, nogil=True)
def _be64(buf: NDArray[np.uint8], o: int) -> np.uint64:
    return (np.uint64(_be32(buf, o)) << np.uint64(32)) | np.uint64(_be32(buf, o + 4))


@njit(cache=True, nogil=True)
def _ethertype_version(ethertype: int) -> int:
    if ethertype == ETHERTYPE_IPV4:
        return 4
    if ethertype == ETHERTYPE_IPV6:
        return 6
    return 0


@njit(cache=True, nogil=True)
def _walk_ethertype(
    buf: NDArray[np.uint8], start: int, caplen: int, pos: int, ethertype: int
) -> tuple[int, int, int]:
    """Follow 802.1Q/802.1ad tags; ``ethertype`` was read just before ``start+pos``.

    Returns (l3 offset relative to start or _NOT_IP/_BAD, IP version, absolute TCI offset).
    """
    vlan = -1
    while ethertype == 0x8100 or ethertype == 0x88A8 or ethertype == 0x9100:
        if pos + 4 > caplen:
            return _BAD, 0, vlan
        if vlan < 0:
            vlan = start + pos
        ethertype = _be16(buf, start + pos + 2)
        pos += 4
    if ethertype == ETHERTYPE_PPPOE_SESSION:
        if pos + 8 > caplen:
            return _BAD, 0, vlan
        ppp = _be16(buf, start + pos + 6)
        if ppp == PPP_IPV4:
            return pos + 8, 4, vlan
        if ppp == PPP_IPV6:
            return pos + 8, 6, vlan
        return _NOT_IP, 0, vlan
    if ethertype == ETHERTYPE_MPLS or ethertype == ETHERTYPE_MPLS_MULTICAST:
        while True:
            if pos + 4 > caplen:
                return _BAD, 0, vlan
            bottom = buf[start + pos + 2] & 0x01
            pos += 4
            if bottom:
                break
        if pos + 1 > caplen:
            return _BAD, 0, vlan
        version = int(buf[start + pos]) >> 4
        if version == 4 or version == 6:
            return pos, version, vlan
        return _NOT_IP, 0, vlan  # a pseudowire or something else under the labels
    if ethertype < 0x0600:
        # 802.3 length field: IP only behind LLC/SNAP with a zero OUI
        if (
            pos + 8 <= caplen
            and buf[start + pos] == 0xAA
            and buf[start + pos + 1] == 0xAA
            and buf[start + pos + 2] == 0x03
            and buf[start + pos + 3] == 0
            and buf[start + pos + 4] == 0
            and buf[start + pos + 5] == 0
        ):
            version = _ethertype_version(_be16(buf, start + pos + 6))
            if version == 0:
                return _NOT_IP, 0, vlan
            return pos + 8, version, vlan
        return _NOT_IP, 0, vlan
    version = _ethertype_version(ethertype)
    if version == 0:
        return _NOT_IP, 0, vlan
    return pos, version, vlan


@njit(cache=True, nogil=True)
def _sll_direction(packet_type: int) -> int:
    if packet_type <= 3:
        return _DIR_IN
    if packet_type == 4:
        return _DIR_OUT
    return 0


@njit(cache=True, nogil=True)
def _null_family_version(family: int) -> int:
    if family == 2:
        return 4
    if family == 10 or family == 24 or family == 28 or family == 30:
        return 6
    return 0


@njit(cache=True, nogil=True)
def _ppp(buf: NDArray[np.uint8], start: int, caplen: int, pos: int) -> tuple[int, int, int]:
    """PPP from ``start+pos``: optional 0xFF 0x03, then a 1- or 2-byte protocol field.

    Returns (l3 offset relative to start or _NOT_IP/_BAD, IP version, TCI offset).
    """
    if pos + 2 <= caplen and buf[start + pos] == 0xFF and buf[start + pos + 1] == 0x03:
        pos += 2  # HDLC-like framing: address and control
    if pos + 1 > caplen:
        return _BAD, 0, -1
    if buf[start + pos] & 0x01:
        proto = int(buf[start + pos])  # protocol-field compression: one byte
        pos += 1
    else:
        if pos + 2 > caplen:
            return _BAD, 0, -1
        proto = _be16(buf, start + pos)
        pos += 2
    if proto == PPP_IPV4:
        return pos, 4, -1
    if proto == PPP_IPV6:
        return pos, 6, -1
    if proto == PPP_MPLS or proto == PPP_MPLS_MULTICAST:
        return _walk_ethertype(buf, start, caplen, pos, ETHERTYPE_MPLS)
    return _NOT_IP, 0, -1


@njit(cache=True, nogil=True)
def _cisco_hdlc(buf: NDArray[np.uint8], start: int, caplen: int, pos: int) -> tuple[int, int, int]:
    """Cisco HDLC from ``start+pos``: address, control, then an Ethernet type."""
    if pos + 4 > caplen:
        return _BAD, 0, -1
    return _walk_ethertype(buf, start, caplen, pos + 4, _be16(buf, start + pos + 2))


@njit(cache=True, nogil=True)
def _link(
    buf: NDArray[np.uint8], start: int, caplen: int, linktype: int
) -> tuple[int, int, int, int]:
    """Link layer: (l3 offset relative to start or _NOT_IP/_BAD, version, TCI offset, direction)."""
    if linktype == LINKTYPE_ETHERNET:
        if caplen < 14:
            return _BAD, 0, -1, 0
        l3, version, vlan = _walk_ethertype(buf, start, caplen, 14, _be16(buf, start + 12))
        return l3, version, vlan, 0
    if linktype == LINKTYPE_RAW or linktype == LINKTYPE_RAW_BSD12 or linktype == LINKTYPE_RAW_BSD14:
        if caplen < 1:
            return _BAD, 0, -1, 0
        version = int(buf[start]) >> 4
        if version != 4 and version != 6:
            return _BAD, 0, -1, 0
        return 0, version, -1, 0
    if linktype == LINKTYPE_IPV4:
        return 0, 4, -1, 0
    if linktype == LINKTYPE_IPV6:
        return 0, 6, -1, 0
    if linktype == LINKTYPE_LINUX_SLL:
        if caplen < 16:
            return _BAD, 0, -1, 0
        direction = _sll_direction(_be16(buf, start))
        l3, version, vlan = _walk_ethertype(buf, start, caplen, 16, _be16(buf, start + 14))
        return l3, version, vlan, direction
    if linktype == LINKTYPE_LINUX_SLL2:
        if caplen < 20:
            return _BAD, 0, -1, 0
        direction = _sll_direction(int(buf[start + 10]))
        l3, version, vlan = _walk_ethertype(buf, start, caplen, 20, _be16(buf, start))
        return l3, version, vlan, direction
    if linktype == LINKTYPE_NULL or linktype == LINKTYPE_LOOP:
        if caplen < 4:
            return _BAD, 0, -1, 0
        if linktype == LINKTYPE_LOOP:
            family = _be32(buf, start)
        else:
            family = (
                int(buf[start])
                | (int(buf[start + 1]) << 8)
                | (int(buf[start + 2]) << 16)
                | (int(buf[start + 3]) << 24)
            )
            if family > 0xFFFF:  # written in big-endian host order
                family = _be32(buf, start)
        version = _null_family_version(family)
        if version == 0:
            return _NOT_IP, 0, -1, 0
        return 4, version, -1, 0
    if linktype == LINKTYPE_PPP:
        l3, version, vlan = _ppp(buf, start, caplen, 0)
        return l3, version, vlan, 0
    if linktype == LINKTYPE_PPP_HDLC:
        if caplen >= 1 and (buf[start] == 0x0F or buf[start] == 0x8F):
            l3, version, vlan = _cisco_hdlc(buf, start, caplen, 0)
        else:
            l3, version, vlan = _ppp(buf, start, caplen, 0)
        return l3, version, vlan, 0
    if linktype == LINKTYPE_C_HDLC:
        l3, version, vlan = _cisco_hdlc(buf, start, caplen, 0)
        return l3, version, vlan, 0
    if linktype == LINKTYPE_PPP_WITH_DIR or linktype == LINKTYPE_C_HDLC_WITH_DIR:
        if caplen < 1:
            return _BAD, 0, -1, 0
        direction = _DIR_OUT if buf[start] != 0 else _DIR_IN
        if linktype == LINKTYPE_PPP_WITH_DIR:
            l3, version, vlan = _ppp(buf, start, caplen, 1)
        else:
            l3, version, vlan = _cisco_hdlc(buf, start, caplen, 1)
        return l3, version, vlan, direction
    return _NOT_IP, 0, -1, 0


@njit(cache=True, nogil=True)
def _jumbo_option(buf: NDArray[np.uint8], l3: int, avail: int) -> int:
    """Offset (from ``l3``) of the Jumbo Payload value in the hop-by-hop header at ``l3+40``.

    -1 when the captured part of the header holds none, _BAD for a jumbo option whose
    length is not 4 (RFC 2675). Only the bytes inside the capture are looked at.
    """
    if avail < 42:
        return -1
    end = min(40 + (int(buf[l3 + 41]) + 1) * 8, avail)
    pos = 42
    while pos < end:
        kind = int(buf[l3 + pos])
        if kind == 0:  # Pad1
            pos += 1
            continue
        if pos + 2 > end:
            return -1
        size = int(buf[l3 + pos + 1])
        if kind == IPV6_OPT_JUMBO:
            if size != 4:
                return _BAD
            if pos + 6 > end:
                return -1
            return pos + 2
        pos += 2 + size
    return -1


@njit(cache=True, nogil=True)
def _has_ports(protocol: int) -> bool:
    return protocol == 6 or protocol == 17 or protocol == 132


@njit(cache=True, nogil=True, inline="always")
def decode_one(  # noqa: PLR0917 (numba: inlined into the walkers)
    buf: NDArray[np.uint8],
    i: int,
    start: int,
    caplen: int,
    wirelen: int,
    linktype: int,
    cols: PacketColumns,
) -> None:
    """Fill every decoded column of row ``i`` from the frame at ``buf[start:start+caplen]``.

    ``cols.direction[i]`` is input too: when it is 0, a Linux cooked header may set it.
    """
    l3_off = cols.l3_off
    vlan_off = cols.vlan_off
    ip_version = cols.ip_version
    ds_byte = cols.ds_byte
    protocol = cols.protocol
    saddr_hi = cols.saddr_hi
    saddr_lo = cols.saddr_lo
    daddr_hi = cols.daddr_hi
    daddr_lo = cols.daddr_lo
    sport = cols.sport
    dport = cols.dport
    ip_len = cols.ip_len
    direction = cols.direction
    flags = cols.flags
    flag = 0
    if caplen < wirelen:
        flag |= FLAG_TRUNCATED
    wirelen = max(wirelen, caplen)
    l3_off[i] = -1
    ip_version[i] = 0
    ds_byte[i] = 0
    protocol[i] = 0
    saddr_hi[i] = 0
    saddr_lo[i] = 0
    daddr_hi[i] = 0
    daddr_lo[i] = 0
    sport[i] = 0
    dport[i] = 0
    ip_len[i] = 0
    rel, version, vlan, link_dir = _link(buf, start, caplen, linktype)
    vlan_off[i] = vlan
    if link_dir != 0 and direction[i] == 0:
        direction[i] = link_dir
    if rel == _NOT_IP:
        flags[i] = flag
        return
    if rel == _BAD:
        flags[i] = flag | FLAG_MALFORMED
        return
    l3 = start + rel
    avail = caplen - rel
    wire_avail = wirelen - rel
    if version == 4:
        if avail < 2:
            flags[i] = flag | FLAG_MALFORMED
            return
        b0 = int(buf[l3])
        ihl = (b0 & 0x0F) * 4
        if (b0 >> 4) != 4 or ihl < 20 or ihl > wire_avail:
            flags[i] = flag | FLAG_MALFORMED
            return
        length = wire_avail
        if avail >= 4:
            total = _be16(buf, l3 + 2)
            if total == 0:
                flag |= FLAG_LENGTH_FROM_FRAME  # segmentation offload: the frame says
            elif total < ihl or total > wire_avail:
                flags[i] = flag | FLAG_MALFORMED
                return
            else:
                length = total
        l3_off[i] = l3
        ip_version[i] = IPV4
        ds_byte[i] = buf[l3 + 1]
        ip_len[i] = length
        if avail < 20:
            # the snap length cut the header (wire_avail >= ihl > avail): only the DS
            # byte (and the length) is known. Addresses, protocol and ports stay 0: an
            # all-zero address is not v4-mapped, so no IPv4 address filter can match it
            flags[i] = flag | FLAG_HEADER_CUT | FLAG_NO_PORTS
            return
        proto = int(buf[l3 + 9])
        frag = _be16(buf, l3 + 6)
        protocol[i] = proto
        saddr_lo[i] = np.uint64(_V4_MAPPED | _be32(buf, l3 + 12))
        daddr_lo[i] = np.uint64(_V4_MAPPED | _be32(buf, l3 + 16))
        if (frag & 0x3FFF) != 0:
            flag |= FLAG_FRAGMENT | FLAG_NO_PORTS
        elif _has_ports(proto) and ihl + 4 <= avail and ihl + 4 <= length:
            sport[i] = _be16(buf, l3 + ihl)
            dport[i] = _be16(buf, l3 + ihl + 2)
        else:
            flag |= FLAG_NO_PORTS
        flags[i] = flag
        return
    # IPv6
    if avail < 2 or (int(buf[l3]) >> 4) != 6 or wire_avail < 40:
        flags[i] = flag | FLAG_MALFORMED
        return
    if avail < 40:
        # the snap length cut the fixed header: the DS byte and perhaps the length
        length = wire_avail
        if avail >= 6:
            payload = _be16(buf, l3 + 4)
            if payload == 0:
                flag |= FLAG_LENGTH_FROM_FRAME
            elif 40 + payload > wire_avail:
                flags[i] = flag | FLAG_MALFORMED
                return
            else:
                length = 40 + payload
        l3_off[i] = l3
        ip_version[i] = IPV6
        ds_byte[i] = ((int(buf[l3]) & 0x0F) << 4) | (int(buf[l3 + 1]) >> 4)
        ip_len[i] = length
        flags[i] = flag | FLAG_HEADER_CUT | FLAG_NO_PORTS
        return
    payload = _be16(buf, l3 + 4)
    jumbo = -1
    if buf[l3 + 6] == 0:
        jumbo = _jumbo_option(buf, l3, avail)
        if jumbo == _BAD:
            flags[i] = flag | FLAG_MALFORMED
            return
    if payload != 0:
        length = 40 + payload
        if jumbo >= 0 or length > wire_avail:  # RFC 2675: a jumbo option needs length 0
            flags[i] = flag | FLAG_MALFORMED
            return
    elif jumbo >= 0:
        jumbo_len = _be32(buf, l3 + jumbo)
        length = 40 + jumbo_len
        if jumbo_len < JUMBO_MIN or length > wire_avail:
            flags[i] = flag | FLAG_MALFORMED
            return
    else:
        # length 0 without a jumbo option (in the captured bytes): segmentation offload
        length = wire_avail
        flag |= FLAG_LENGTH_FROM_FRAME
    first = int(buf[l3 + 6])
    nh = first
    proto = first
    off = 40
    bad = False
    while True:
        if _has_ports(nh):
            proto = nh
            if off + 4 <= avail and off + 4 <= length:
                sport[i] = _be16(buf, l3 + off)
                dport[i] = _be16(buf, l3 + off + 2)
            else:
                flag |= FLAG_NO_PORTS
            break
        if nh == 58 or nh == 98 or nh == 41 or nh == 50 or nh == 51:
            proto = nh
            flag |= FLAG_NO_PORTS
            break
        if nh == 0 or nh == 60 or nh == 43:
            if off + 2 > length:
                bad = True
                break
            if off + 2 > avail:
                flag |= FLAG_NO_PORTS
                break
            nxt = int(buf[l3 + off])
            off += (int(buf[l3 + off + 1]) + 1) * 8
            if off > length:
                bad = True
                break
            nh = nxt
            continue
        if nh == 44:
            flag |= FLAG_FRAGMENT
        flag |= FLAG_NO_PORTS
        break
    if bad:
        sport[i] = 0
        dport[i] = 0
        flags[i] = flag | FLAG_MALFORMED
        return
    l3_off[i] = l3
    ip_version[i] = IPV6
    ds_byte[i] = ((int(buf[l3]) & 0x0F) << 4) | (int(buf[l3 + 1]) >> 4)
    protocol[i] = proto
    saddr_hi[i] = _be64(buf, l3 + 8)
    saddr_lo[i] = _be64(buf, l3 + 16)
    daddr_hi[i] = _be64(buf, l3 + 24)
    daddr_lo[i] = _be64(buf, l3 + 32)
    ip_len[i] = length
    flags[i] = flag


@njit(cache=True, nogil=True)
def decode_rows(buf: NDArray[np.uint8], linktype: NDArray[np.int32], cols: PacketColumns) -> None:
    """Fill the decoded columns of every row from the frame bytes in ``buf``.

    ``cols.pkt_off``/``cap_len``/``wire_len`` locate each frame; ``linktype`` gives its
    link-layer header type.
    """
    pkt_off = cols.pkt_off
    cap_len = cols.cap_len
    wire_len = cols.wire_len
    for i in range(pkt_off.shape[0]):
        decode_one(
            buf, i, int(pkt_off[i]), int(cap_len[i]), int(wire_len[i]), int(linktype[i]), cols
        )


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


invalidate_if_stale(decode_one, columns)
invalidate_if_stale(decode_rows, columns)
