"""Build frames and capture files for tests and demos, so no fixture is a hand-edited blob.

Layers compose bottom-up: an L4 builder (``tcp``, ``udp`` ...) feeds ``ipv4`` or
``ipv6``, whose bytes feed a link-layer builder (``ethernet``, ``sll`` ...);
``Packet`` adds capture metadata and ``pcap_bytes``/``pcapng_bytes`` frame them.
``simple_frame`` does the common case in one call. Every field a test may want
to get wrong (lengths, IHL, checksums) can be overridden.
"""

from __future__ import annotations

import ipaddress
import os
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from diffserv.packet.checksum import internet_checksum
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

ETH_IPV4 = 0x0800
ETH_IPV6 = 0x86DD
TPID_8021Q = 0x8100
TPID_8021AD = 0x88A8
TPID_QINQ_OLD = 0x9100


# pcapng epb_flags direction values
EPB_INBOUND = 0x1
EPB_OUTBOUND = 0x2

# Linux cooked capture packet types
SLL_HOST = 0
SLL_BROADCAST = 1
SLL_MULTICAST = 2
SLL_OTHERHOST = 3
SLL_OUTGOING = 4


@dataclass(frozen=True, slots=True)
class Transport:
    """An L4 header plus payload and the IP protocol number that carries it."""

    proto: int
    data: bytes
    checksum_at: int = -1  # offset of the pseudo-header checksum field in data, -1 none


@dataclass(frozen=True, slots=True)
class Extension:
    """An IPv6 extension header; ``data[0]`` (next header) is filled in by ``ipv6``."""

    code: int
    data: bytes


@dataclass(frozen=True, slots=True)
class Vlan:
    """One 802.1Q/802.1ad tag, outermost first in ``ethernet(vlans=...)``."""

    vid: int = 100
    pcp: int = 0
    dei: int = 0
    tpid: int = TPID_8021Q


def _addr(text: str | int, version: int) -> bytes:
    if isinstance(text, int):
        return text.to_bytes(4 if version == 4 else 16, "big")
    address = ipaddress.ip_address(text)
    if address.version != version:
        raise ValueError(f"{text} is not an IPv{version} address")
    return address.packed


# ------------------------------------------------------------------------- L4
def tcp(
    sport: int = 40000, dport: int = 80, payload: bytes = b"", *, flags: int = 0x18, seq: int = 1
) -> Transport:
    """A TCP segment (data offset 5); ``ipv4``/``ipv6`` fill in its checksum."""
    header = struct.pack("!HHIIBBHHH", sport, dport, seq, 0, 5 << 4, flags, 65535, 0, 0)
    return Transport(6, header + payload, 16)


def udp(sport: int = 40000, dport: int = 53, payload: bytes = b"") -> Transport:
    """A UDP datagram; ``ipv4``/``ipv6`` fill in its checksum.

    A datagram longer than 65535 bytes (inside a jumbogram) has length 0 (RFC 2675).
    """
    length = 8 + len(payload)
    length = length if length <= 0xFFFF else 0
    return Transport(17, struct.pack("!HHHH", sport, dport, length, 0) + payload, 6)


def sctp(sport: int = 40000, dport: int = 38412, payload: bytes = b"") -> Transport:
    """An SCTP packet (verification tag 1) carrying ``payload`` in one DATA chunk, if any."""
    chunk = b""
    if payload:
        chunk = struct.pack("!BBHIHHI", 0, 3, 16 + len(payload), 1, 0, 0, 0) + payload
        chunk += bytes((4 - len(chunk) % 4) % 4)
    body = struct.pack("!HHII", sport, dport, 1, 0) + chunk
    crc = _crc32c(body)
    return Transport(132, body[:8] + struct.pack("<I", crc) + body[12:])


def _crc32c(data: bytes) -> int:
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


def icmp(icmp_type: int = 8, code: int = 0, payload: bytes = b"") -> Transport:
    """An ICMPv4 message with a valid checksum."""
    body = struct.pack("!BBHHH", icmp_type, code, 0, 1, 1) + payload
    return Transport(1, body[:2] + struct.pack("!H", internet_checksum(body)) + body[4:])


def icmpv6(icmp_type: int = 128, code: int = 0, payload: bytes = b"") -> Transport:
    """An ICMPv6 message; ``ipv6`` fills in its checksum."""
    return Transport(58, struct.pack("!BBHHH", icmp_type, code, 0, 1, 1) + payload, 2)


def _with_checksum(l4: Transport, pseudo: bytes, proto: int) -> bytes:
    if l4.checksum_at < 0 or proto != l4.proto:
        return l4.data
    csum = internet_checksum(pseudo + l4.data)
    if csum == 0 and proto == 17:
        csum = 0xFFFF
    at = l4.checksum_at
    return l4.data[:at] + struct.pack("!H", csum) + l4.data[at + 2 :]


# ------------------------------------------------------------- IPv6 options
def _padded_options(code: int, size: int) -> Extension:
    if size % 8 or size < 8:
        raise ValueError("extension header size must be a positive multiple of 8")
    pad = size - 2
    # PadN option filling the header
    body = bytes([0, size // 8 - 1, 1, pad - 2]) + bytes(pad - 2)
    return Extension(code, body)


def hop_by_hop(size: int = 8) -> Extension:
    """Hop-by-hop options header of ``size`` bytes (PadN only)."""
    return _padded_options(0, size)


def destination_options(size: int = 8) -> Extension:
    """Destination options header of ``size`` bytes (PadN only)."""
    return _padded_options(60, size)


def routing(addresses: Sequence[str] = ("2001:db8::99",), routing_type: int = 0) -> Extension:
    """Routing header listing ``addresses`` (segments left = their number)."""
    packed = b"".join(_addr(a, 6) for a in addresses)
    hdr_len = len(packed) // 8
    return Extension(43, bytes([0, hdr_len, routing_type, len(addresses)]) + bytes(4) + packed)


def fragment6(offset: int = 0, more: bool = False, ident: int = 1) -> Extension:
    """Fragment header (``offset`` in 8-byte units)."""
    return Extension(44, struct.pack("!BBHI", 0, 0, (offset << 3) | int(more), ident))


def jumbo_payload(length: int) -> Extension:
    """Hop-by-hop header holding only a Jumbo Payload option (RFC 2675) stating ``length``.

    ``ipv6(..., jumbo=True)`` adds one with the right length; this builds any length.
    """
    return Extension(0, bytes([0, 0, 0xC2, 4]) + struct.pack("!I", length & 0xFFFFFFFF))


def raw_extension(code: int, data: bytes) -> Extension:
    """Any extension header given as its bytes (``data[0]`` is overwritten)."""
    return Extension(code, data)


# -------------------------------------------------------------------------- IP
def ipv4(
    src: str | int = "192.0.2.1",
    dst: str | int = "198.51.100.1",
    payload: Transport | bytes = b"",
    *,
    proto: int | None = None,
    dscp: int = 0,
    ecn: int = 0,
    tos: int | None = None,
    ttl: int = 64,
    ident: int = 1,
    df: bool = False,
    mf: bool = False,
    frag_offset: int = 0,
    options: bytes = b"",
    total_length: int | None = None,
    ihl: int | None = None,
    version: int = 4,
    checksum: int | None = None,
) -> bytes:
    """An IPv4 datagram; the header checksum is computed unless ``checksum`` is given."""
    if isinstance(payload, Transport):
        proto = payload.proto if proto is None else proto
        # (a segment longer than 65535 bytes only exists with segmentation offload)
        size = len(payload.data) & 0xFFFF
        pseudo = _addr(src, 4) + _addr(dst, 4) + struct.pack("!BBH", 0, proto, size)
        data = _with_checksum(payload, pseudo, proto)
    else:
        data = payload
    if len(options) % 4:
        options += bytes(4 - len(options) % 4)
    header_len = 20 + len(options)
    tos_byte = (dscp << 2 | ecn) if tos is None else tos
    frag = (0x4000 if df else 0) | (0x2000 if mf else 0) | (frag_offset & 0x1FFF)
    header = (
        struct.pack(
            "!BBHHHBBH4s4s",
            (version << 4) | (ihl if ihl is not None else header_len // 4),
            tos_byte,
            total_length if total_length is not None else header_len + len(data),
            ident,
            frag,
            ttl,
            proto if proto is not None else 0,
            0,
            _addr(src, 4),
            _addr(dst, 4),
        )
        + options
    )
    csum = internet_checksum(header) if checksum is None else checksum
    return header[:10] + struct.pack("!H", csum) + header[12:] + data


def ipv6(
    src: str | int = "2001:db8::1",
    dst: str | int = "2001:db8::2",
    payload: Transport | bytes = b"",
    *,
    next_header: int | None = None,
    extensions: Sequence[Extension] = (),
    dscp: int = 0,
    ecn: int = 0,
    tclass: int | None = None,
    flow_label: int = 0,
    hop_limit: int = 64,
    payload_length: int | None = None,
    version: int = 6,
    jumbo: bool = False,
) -> bytes:
    """An IPv6 datagram with ``extensions`` chained in order before the payload.

    ``jumbo=True`` makes an RFC 2675 jumbogram: a hop-by-hop Jumbo Payload option
    (before ``extensions``) carries the length, and the payload length field is 0.
    """
    if jumbo:
        extensions = [jumbo_payload(0), *extensions]
    if isinstance(payload, Transport):
        last = payload.proto if next_header is None else next_header
        pseudo = _addr(src, 6) + _addr(dst, 6) + struct.pack("!IxxxB", len(payload.data), last)
        data = _with_checksum(payload, pseudo, last)
    else:
        last = 59 if next_header is None else next_header
        data = payload
    chain = b""
    codes = [ext.code for ext in extensions] + [last]
    for i, ext in enumerate(extensions):
        chain += bytes([codes[i + 1]]) + ext.data[1:]
    body = chain + data
    if jumbo:
        body = body[:4] + struct.pack("!I", len(body)) + body[8:]
        if payload_length is None:
            payload_length = 0
    tc = (dscp << 2 | ecn) if tclass is None else tclass
    word = (version << 28) | (tc << 20) | (flow_label & 0xFFFFF)
    return (
        struct.pack(
            "!IHBB16s16s",
            word,
            len(body) if payload_length is None else payload_length,
            codes[0],
            hop_limit,
            _addr(src, 6),
            _addr(dst, 6),
        )
        + body
    )


def _ip_ethertype(packet: bytes) -> int:
    return ETH_IPV6 if packet and packet[0] >> 4 == 6 else ETH_IPV4


# ------------------------------------------------------------------ link layer
def ethernet(
    payload: bytes,
    *,
    ethertype: int | None = None,
    vlans: Sequence[Vlan] = (),
    src: bytes = b"\x02\x00\x00\x00\x00\x01",
    dst: bytes = b"\x02\x00\x00\x00\x00\x02",
) -> bytes:
    """An Ethernet II frame (no FCS); ``vlans`` outermost first."""
    frame = dst + src
    for tag in vlans:
        tci = (tag.pcp << 13) | (tag.dei << 12) | (tag.vid & 0x0FFF)
        frame += struct.pack("!HH", tag.tpid, tci)
    etype = _ip_ethertype(payload) if ethertype is None else ethertype
    return frame + struct.pack("!H", etype) + payload


def pppoe(packet: bytes, *, session: int = 1) -> bytes:
    """A PPPoE session header plus PPP protocol field in front of an IP packet.

    Use as ``ethernet(pppoe(ip), ethertype=0x8864)``.
    """
    proto = 0x0057 if packet and packet[0] >> 4 == 6 else 0x0021
    return struct.pack("!BBHHH", 0x11, 0, session, len(packet) + 2, proto) + packet


def ppp(
    packet: bytes,
    *,
    address_control: bool = True,
    short_protocol: bool = False,
    protocol: int | None = None,
) -> bytes:
    """A PPP frame (link types 9, 50; 204 after a direction byte) around an IP packet.

    ``address_control`` writes the 0xFF 0x03 HDLC address/control bytes;
    ``short_protocol`` writes the protocol in one byte (protocol-field compression).
    """
    proto = (0x0057 if packet and packet[0] >> 4 == 6 else 0x0021) if protocol is None else protocol
    head = b"\xff\x03" if address_control else b""
    head += bytes([proto & 0xFF]) if short_protocol else struct.pack("!H", proto)
    return head + packet


def ppp_with_direction(packet: bytes, *, outbound: bool = True, **kw: bool) -> bytes:
    """A LINKTYPE_PPP_WITH_DIR (204) frame: direction byte (0 in, 1 out), then ``ppp``."""
    return bytes([1 if outbound else 0]) + ppp(packet, **kw)


def cisco_hdlc(packet: bytes, *, ethertype: int | None = None, multicast: bool = False) -> bytes:
    """A Cisco HDLC frame (link type 104, also inside 50): address, control 0, ethertype."""
    etype = _ip_ethertype(packet) if ethertype is None else ethertype
    return struct.pack("!BBH", 0x8F if multicast else 0x0F, 0, etype) + packet


def mpls(packet: bytes, labels: Sequence[int] = (16,), *, tc: int = 0, ttl: int = 64) -> bytes:
    """An MPLS label stack (outermost first) in front of ``packet``.

    Use as ``ethernet(mpls(ip), ethertype=0x8847)``.
    """
    stack = b""
    for i, label in enumerate(labels):
        bottom = 1 if i == len(labels) - 1 else 0
        stack += struct.pack("!I", (label << 12) | (tc << 9) | (bottom << 8) | ttl)
    return stack + packet


def sll(
    payload: bytes,
    *,
    packet_type: int = SLL_HOST,
    protocol: int | None = None,
    arphrd: int = 1,
    address: bytes = b"\x02\x00\x00\x00\x00\x01",
) -> bytes:
    """A Linux cooked (SLL, link type 113) frame."""
    proto = _ip_ethertype(payload) if protocol is None else protocol
    addr = address[:8].ljust(8, b"\x00")
    return struct.pack("!HHH8sH", packet_type, arphrd, len(address), addr, proto) + payload


def sll2(
    payload: bytes,
    *,
    packet_type: int = SLL_HOST,
    protocol: int | None = None,
    ifindex: int = 2,
    arphrd: int = 1,
    address: bytes = b"\x02\x00\x00\x00\x00\x01",
) -> bytes:
    """A Linux cooked v2 (SLL2, link type 276) frame."""
    proto = _ip_ethertype(payload) if protocol is None else protocol
    addr = address[:8].ljust(8, b"\x00")
    return (
        struct.pack("!HHIHBB8s", proto, 0, ifindex, arphrd, packet_type, len(address), addr)
        + payload
    )


def null(payload: bytes, *, family: int | None = None, big_endian: bool = False) -> bytes:
    """A BSD loopback (NULL, link type 0) frame: 4-byte address family in host order."""
    fam = (24 if payload and payload[0] >> 4 == 6 else 2) if family is None else family
    return struct.pack(">I" if big_endian else "<I", fam) + payload


def loop(payload: bytes, *, family: int | None = None) -> bytes:
    """An OpenBSD loopback (LOOP, link type 108) frame: family in network order."""
    return null(payload, family=family, big_endian=True)


def simple_frame(
    *,
    version: int = 4,
    proto: str = "tcp",
    src: str | None = None,
    dst: str | None = None,
    sport: int = 40000,
    dport: int = 80,
    dscp: int = 0,
    ecn: int = 0,
    payload_len: int = 0,
    vlans: Sequence[Vlan] = (),
    link: int = LINKTYPE_ETHERNET,
) -> bytes:
    """One frame in a single call: Ethernet (or ``link``) / IPv4|IPv6 / tcp|udp|sctp|icmp."""
    body = bytes(payload_len)
    l4: Transport
    if proto == "tcp":
        l4 = tcp(sport, dport, body)
    elif proto == "udp":
        l4 = udp(sport, dport, body)
    elif proto == "sctp":
        l4 = sctp(sport, dport, body)
    elif proto == "icmp":
        l4 = icmp(payload=body) if version == 4 else icmpv6(payload=body)
    else:
        raise ValueError(f"unknown proto {proto!r}")
    if version == 4:
        packet = ipv4(src or "192.0.2.1", dst or "198.51.100.1", l4, dscp=dscp, ecn=ecn)
    else:
        packet = ipv6(src or "2001:db8::1", dst or "2001:db8::2", l4, dscp=dscp, ecn=ecn)
    return link_frame(packet, link, vlans=vlans)


def link_frame(packet: bytes, link: int, *, vlans: Sequence[Vlan] = ()) -> bytes:
    """Wrap an IP packet in the default header of link type ``link``."""
    if link == LINKTYPE_ETHERNET:
        return ethernet(packet, vlans=vlans)
    if vlans:
        raise ValueError("VLAN tags are only built for Ethernet")
    if link in (LINKTYPE_RAW, LINKTYPE_IPV4, LINKTYPE_IPV6, LINKTYPE_RAW_BSD12, LINKTYPE_RAW_BSD14):
        return packet
    if link == LINKTYPE_LINUX_SLL:
        return sll(packet)
    if link == LINKTYPE_LINUX_SLL2:
        return sll2(packet)
    if link == LINKTYPE_NULL:
        return null(packet)
    if link == LINKTYPE_LOOP:
        return loop(packet)
    if link in (LINKTYPE_PPP, LINKTYPE_PPP_HDLC):
        return ppp(packet)
    if link == LINKTYPE_PPP_WITH_DIR:
        return ppp_with_direction(packet)
    if link == LINKTYPE_C_HDLC:
        return cisco_hdlc(packet)
    if link == LINKTYPE_C_HDLC_WITH_DIR:
        return b"\x01" + cisco_hdlc(packet)
    raise ValueError(f"no builder for link type {link}")


# ------------------------------------------------------------------- captures
@dataclass(frozen=True, slots=True)
class Packet:
    """A frame with capture metadata.

    ``caplen`` cuts the stored bytes (snap length) while ``wire_len`` defaults to
    the full frame length. In pcapng, ``interface`` is the IDB index in the
    section, ``epb_flags`` becomes the epb_flags option and ``block`` chooses
    "epb", "spb" or "opb"; ``options`` are extra raw option bytes.
    """

    data: bytes
    ts_ns: int = 0
    wire_len: int | None = None
    caplen: int | None = None
    interface: int = 0
    epb_flags: int | None = None
    block: str = "epb"
    options: bytes = b""

    @property
    def stored(self) -> bytes:
        return self.data if self.caplen is None else self.data[: self.caplen]

    @property
    def original_length(self) -> int:
        return len(self.data) if self.wire_len is None else self.wire_len


def _as_packet(item: Packet | bytes, index: int) -> Packet:
    if isinstance(item, Packet):
        return item
    return Packet(item, ts_ns=1_700_000_000_000_000_000 + index * 1000)


def pcap_bytes(
    packets: Iterable[Packet | bytes],
    *,
    linktype: int = LINKTYPE_ETHERNET,
    nanosecond: bool = False,
    big_endian: bool = False,
    snaplen: int = 262144,
) -> bytes:
    """A classic pcap file (µs or ns timestamps, either byte order)."""
    order = ">" if big_endian else "<"
    magic = 0xA1B23C4D if nanosecond else 0xA1B2C3D4
    out = [struct.pack(order + "IHHiIII", magic, 2, 4, 0, 0, snaplen, linktype)]
    for i, item in enumerate(packets):
        pkt = _as_packet(item, i)
        sec, rest = divmod(pkt.ts_ns, 1_000_000_000)
        frac = rest if nanosecond else rest // 1000
        data = pkt.stored
        out.append(struct.pack(order + "IIII", sec, frac, len(data), pkt.original_length))
        out.append(data)
    return b"".join(out)


@dataclass(frozen=True, slots=True)
class Interface:
    """A pcapng interface description (IDB).

    ``tsresol`` is the raw if_tsresol byte (6 = µs, 9 = ns, 0x80|n = 2^-n); None
    writes no option (µs).
    """

    linktype: int = LINKTYPE_ETHERNET
    name: str | None = None
    snaplen: int = 0
    tsresol: int | None = None
    tsoffset: int | None = None
    description: str | None = None


@dataclass(frozen=True, slots=True)
class RawBlock:
    """Any other pcapng block (NRB 4, ISB 5, DSB 10, custom 0xBAD/0x40000BAD ...)."""

    block_type: int
    body: bytes


@dataclass(slots=True)
class Section:
    """One pcapng section: a SHB, its interfaces, then ``blocks`` in order.

    ``blocks`` may contain further ``Interface`` entries (an IDB mid-section).
    """

    interfaces: list[Interface] = field(default_factory=lambda: [Interface()])
    blocks: list[Packet | RawBlock | Interface | bytes] = field(default_factory=list)
    big_endian: bool = False
    section_length: int = -1
    shb_options: bytes = b""


def _option(order: str, code: int, value: bytes) -> bytes:
    pad = (4 - len(value) % 4) % 4
    return struct.pack(order + "HH", code, len(value)) + value + bytes(pad)


def _block(order: str, block_type: int, body: bytes) -> bytes:
    if len(body) % 4:
        body += bytes(4 - len(body) % 4)
    length = 12 + len(body)
    return struct.pack(order + "II", block_type, length) + body + struct.pack(order + "I", length)


def _idb(order: str, iface: Interface) -> bytes:
    opts = b""
    if iface.name is not None:
        opts += _option(order, 2, iface.name.encode())
    if iface.description is not None:
        opts += _option(order, 3, iface.description.encode())
    if iface.tsresol is not None:
        opts += _option(order, 9, bytes([iface.tsresol]))
    if iface.tsoffset is not None:
        opts += _option(order, 14, struct.pack(order + "q", iface.tsoffset))
    if opts:
        opts += _option(order, 0, b"")
    return _block(order, 1, struct.pack(order + "HHI", iface.linktype, 0, iface.snaplen) + opts)


def _ts_units(ts_ns: int, tsresol: int | None) -> int:
    if tsresol is None:
        return ts_ns // 1000
    exponent = tsresol & 0x7F
    if tsresol & 0x80:
        return (ts_ns << exponent) // 1_000_000_000
    return int(ts_ns * 10**exponent // 1_000_000_000)


def _packet_block(order: str, pkt: Packet, iface: Interface) -> bytes:
    data = pkt.stored
    padded = data + bytes((4 - len(data) % 4) % 4)
    if pkt.block == "spb":
        return _block(order, 3, struct.pack(order + "I", pkt.original_length) + padded)
    units = _ts_units(pkt.ts_ns, iface.tsresol)
    opts = pkt.options
    if pkt.epb_flags is not None:
        opts = _option(order, 2, struct.pack(order + "I", pkt.epb_flags)) + opts
    if opts:
        opts += _option(order, 0, b"")
    if pkt.block == "opb":
        head = struct.pack(order + "HH", pkt.interface, 0)
        block_type = 2
    elif pkt.block == "epb":
        head = struct.pack(order + "I", pkt.interface)
        block_type = 6
    else:
        raise ValueError(f"unknown packet block kind {pkt.block!r}")
    body = (
        head
        + struct.pack(
            order + "IIII", units >> 32, units & 0xFFFFFFFF, len(data), pkt.original_length
        )
        + padded
        + opts
    )
    return _block(order, block_type, body)


def pcapng_bytes(sections: Sequence[Section]) -> bytes:
    """A pcapng file of one or more sections, each in its own byte order."""
    out: list[bytes] = []
    index = 0
    for section in sections:
        order = ">" if section.big_endian else "<"
        body: list[bytes] = []
        ifaces = list(section.interfaces)
        body.extend(_idb(order, iface) for iface in ifaces)
        for item in section.blocks:
            if isinstance(item, Interface):
                ifaces.append(item)
                body.append(_idb(order, item))
            elif isinstance(item, RawBlock):
                body.append(_block(order, item.block_type, item.body))
            else:
                pkt = _as_packet(item, index)
                index += 1
                body.append(_packet_block(order, pkt, ifaces[pkt.interface]))
        shb_body = struct.pack(order + "IHHq", 0x1A2B3C4D, 1, 0, section.section_length)
        shb_body += section.shb_options
        out.append(_block(order, 0x0A0D0D0A, shb_body))
        out.extend(body)
    return b"".join(out)


def simple_pcapng(
    packets: Iterable[Packet | bytes],
    *,
    linktype: int = LINKTYPE_ETHERNET,
    name: str | None = "eth0",
    tsresol: int | None = None,
    big_endian: bool = False,
) -> bytes:
    """A one-section, one-interface pcapng file of ``packets`` as EPBs."""
    iface = Interface(linktype=linktype, name=name, tsresol=tsresol)
    return pcapng_bytes([Section([iface], list(packets), big_endian=big_endian)])


def write_file(path: str | os.PathLike[str], data: bytes) -> str:
    """Write capture bytes to ``path``; return the path as a string."""
    with open(path, "wb") as handle:
        handle.write(data)
    return os.fspath(path)


def write_pcap(
    path: str | os.PathLike[str],
    packets: Iterable[Packet | bytes],
    *,
    linktype: int = LINKTYPE_ETHERNET,
    nanosecond: bool = False,
    big_endian: bool = False,
    snaplen: int = 262144,
) -> str:
    """Write ``packets`` as a classic pcap file; return the path as a string."""
    data = pcap_bytes(
        packets, linktype=linktype, nanosecond=nanosecond, big_endian=big_endian, snaplen=snaplen
    )
    return write_file(path, data)


def write_pcapng(
    path: str | os.PathLike[str],
    packets: Iterable[Packet | bytes] | None = None,
    *,
    sections: Sequence[Section] | None = None,
    linktype: int = LINKTYPE_ETHERNET,
    name: str | None = "eth0",
    tsresol: int | None = None,
    big_endian: bool = False,
) -> str:
    """Write a pcapng file: ``sections`` as given, or one section/interface of ``packets``."""
    if sections is not None:
        data = pcapng_bytes(sections)
    else:
        data = simple_pcapng(
            packets or [], linktype=linktype, name=name, tsresol=tsresol, big_endian=big_endian
        )
    return write_file(path, data)
