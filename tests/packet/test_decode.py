"""Decode of every supported link type and IP header variant into batch columns."""

from __future__ import annotations

import ipaddress

import pytest

from diffserv.columns import (
    FLAG_FRAGMENT,
    FLAG_HEADER_CUT,
    FLAG_LENGTH_FROM_FRAME,
    FLAG_MALFORMED,
    FLAG_NO_PORTS,
    FLAG_TRUNCATED,
    PacketBatch,
)
from diffserv.packet.decode import decode_frames
from support import synth

V4 = synth.ipv4("192.0.2.10", "198.51.100.20", synth.tcp(1234, 443), dscp=46, ecn=1)
V6 = synth.ipv6("2001:db8::10", "2001:db8:1::20", synth.udp(5353, 53, b"x" * 10), dscp=10, ecn=3)


def one(frame: bytes, linktype: int = 1, wire_len: int | None = None) -> PacketBatch:
    return decode_frames([frame], linktype, wire_lens=None if wire_len is None else [wire_len])


def addr(batch: PacketBatch, which: str) -> ipaddress.IPv6Address:
    hi = int(getattr(batch.cols, f"{which}addr_hi")[0])
    lo = int(getattr(batch.cols, f"{which}addr_lo")[0])
    return ipaddress.IPv6Address((hi << 64) | lo)


def test_ethernet_ipv4_tcp_fields() -> None:
    b = one(synth.ethernet(V4))
    assert (b.cols.ip_version[0], b.cols.ds_byte[0], b.cols.protocol[0]) == (4, 46 << 2 | 1, 6)
    assert (
        b.cols.sport[0],
        b.cols.dport[0],
        b.cols.ip_len[0],
        b.cols.l3_off[0],
        b.cols.vlan_off[0],
    ) == (
        1234,
        443,
        40,
        14,
        -1,
    )
    assert addr(b, "s").ipv4_mapped == ipaddress.IPv4Address("192.0.2.10")
    assert addr(b, "d").ipv4_mapped == ipaddress.IPv4Address("198.51.100.20")
    assert b.cols.flags[0] == 0
    assert b.cols.direction[0] == 2


def test_ethernet_ipv6_udp_fields() -> None:
    b = one(synth.ethernet(V6))
    assert (b.cols.ip_version[0], b.cols.ds_byte[0], b.cols.protocol[0]) == (6, 10 << 2 | 3, 17)
    assert (b.cols.sport[0], b.cols.dport[0], b.cols.ip_len[0]) == (5353, 53, 40 + 18)
    assert addr(b, "s") == ipaddress.IPv6Address("2001:db8::10")
    assert addr(b, "d") == ipaddress.IPv6Address("2001:db8:1::20")


@pytest.mark.parametrize(
    ("vlans", "l3"),
    [
        ([synth.Vlan(10, pcp=5)], 18),
        ([synth.Vlan(10, tpid=synth.TPID_8021AD), synth.Vlan(20)], 22),
        ([synth.Vlan(10, tpid=synth.TPID_QINQ_OLD), synth.Vlan(20), synth.Vlan(30)], 26),
    ],
)
def test_vlan_tags_outermost_tci(vlans: list[synth.Vlan], l3: int) -> None:
    b = one(synth.ethernet(V4, vlans=vlans))
    assert b.cols.vlan_off[0] == 14
    assert b.cols.l3_off[0] == l3
    assert b.cols.sport[0] == 1234


def test_llc_snap_ipv4() -> None:
    frame = synth.ethernet(b"\xaa\xaa\x03\x00\x00\x00\x08\x00" + V4, ethertype=len(V4) + 8)
    b = one(frame)
    assert b.cols.ip_version[0] == 4 and b.cols.l3_off[0] == 22


def test_non_ip_passes_untouched() -> None:
    b = one(synth.ethernet(bytes(28), ethertype=0x0806))
    assert (b.cols.ip_version[0], b.cols.flags[0], b.cols.l3_off[0]) == (0, 0, -1)


@pytest.mark.parametrize("linktype", [101, 12, 14])
def test_raw_ip_both_versions(linktype: int) -> None:
    b = decode_frames([V4, V6], linktype)
    assert list(b.cols.ip_version) == [4, 6]
    assert list(b.cols.l3_off) == [0, len(V4)]


def test_raw_ipv4_ipv6_linktypes_check_version() -> None:
    assert one(V4, 228).cols.ip_version[0] == 4
    assert one(V6, 229).cols.ip_version[0] == 6
    assert one(V6, 228).cols.flags[0] & FLAG_MALFORMED
    assert one(b"\x50" + bytes(30), 101).cols.flags[0] & FLAG_MALFORMED


@pytest.mark.parametrize(
    ("packet_type", "direction"), [(0, 1), (1, 1), (2, 1), (3, 1), (4, 2), (7, 2)]
)
def test_linux_cooked_direction(packet_type: int, direction: int) -> None:
    b1 = one(synth.sll(V4, packet_type=packet_type), 113)
    b2 = one(synth.sll2(V6, packet_type=packet_type), 276)
    assert (b1.cols.direction[0], b1.cols.l3_off[0], b1.cols.ip_version[0]) == (direction, 16, 4)
    assert (b2.cols.direction[0], b2.cols.l3_off[0], b2.cols.ip_version[0]) == (direction, 20, 6)


def test_sll_with_vlan_tag() -> None:
    frame = synth.sll(b"\xa0\x0a\x08\x00" + V4, protocol=0x8100)
    b = one(frame, 113)
    assert (b.cols.vlan_off[0], b.cols.l3_off[0], b.cols.ip_version[0]) == (16, 20, 4)


@pytest.mark.parametrize(
    ("family", "big", "version"),
    [(2, False, 4), (2, True, 4), (24, False, 6), (28, True, 6), (30, False, 6), (10, False, 6)],
)
def test_bsd_null(family: int, big: bool, version: int) -> None:
    payload = V4 if version == 4 else V6
    b = one(synth.null(payload, family=family, big_endian=big), 0)
    assert (b.cols.ip_version[0], b.cols.l3_off[0]) == (version, 4)


def test_openbsd_loop() -> None:
    assert one(synth.loop(V6), 108).cols.ip_version[0] == 6
    assert one(synth.null(bytes(20), family=7), 0).cols.ip_version[0] == 0


def test_unknown_linktype_is_non_ip() -> None:
    b = one(V4, 147)
    assert (b.cols.ip_version[0], b.cols.flags[0]) == (0, 0)


def test_ipv4_options_are_skipped() -> None:
    packet = synth.ipv4(payload=synth.udp(7, 9), options=b"\x94\x04\x00\x00" * 3)
    b = one(synth.ethernet(packet))
    assert (b.cols.sport[0], b.cols.dport[0], b.cols.ip_len[0]) == (7, 9, 32 + 8)


@pytest.mark.parametrize(("mf", "offset"), [(True, 0), (False, 100), (True, 8)])
def test_ipv4_fragments_have_no_ports(mf: bool, offset: int) -> None:
    packet = synth.ipv4(payload=synth.tcp(1, 2), mf=mf, frag_offset=offset)
    b = one(synth.ethernet(packet))
    assert b.cols.flags[0] & FLAG_FRAGMENT and b.cols.flags[0] & FLAG_NO_PORTS
    assert (b.cols.sport[0], b.cols.dport[0], b.cols.protocol[0]) == (0, 0, 6)


def test_ipv4_df_is_not_a_fragment() -> None:
    b = one(synth.ethernet(synth.ipv4(payload=synth.tcp(1, 2), df=True)))
    assert b.cols.flags[0] == 0 and b.cols.sport[0] == 1


def test_other_protocols_have_no_ports() -> None:
    b = one(synth.ethernet(synth.ipv4(payload=synth.icmp())))
    assert b.cols.protocol[0] == 1 and b.cols.flags[0] & FLAG_NO_PORTS and b.cols.sport[0] == 0
    sctp = one(synth.ethernet(synth.ipv4(payload=synth.sctp(36412, 38412))))
    assert (sctp.cols.protocol[0], sctp.cols.sport[0], sctp.cols.dport[0]) == (132, 36412, 38412)


def test_ipv6_extension_walk_reaches_ports() -> None:
    exts = [synth.hop_by_hop(16), synth.destination_options(), synth.routing(["2001:db8::9"])]
    packet = synth.ipv6(payload=synth.tcp(4000, 22), extensions=exts)
    b = one(synth.ethernet(packet))
    assert (b.cols.protocol[0], b.cols.sport[0], b.cols.dport[0]) == (6, 4000, 22)
    assert b.cols.ip_len[0] == len(packet)


@pytest.mark.parametrize(
    ("exts", "payload", "proto", "flags"),
    [
        ([synth.fragment6(0, True)], synth.udp(), 44, FLAG_FRAGMENT | FLAG_NO_PORTS),
        ([synth.hop_by_hop(), synth.fragment6(8)], synth.udp(), 0, FLAG_FRAGMENT | FLAG_NO_PORTS),
        ([synth.hop_by_hop()], synth.icmpv6(), 58, FLAG_NO_PORTS),
        ([synth.destination_options()], synth.Transport(50, bytes(16)), 50, FLAG_NO_PORTS),
        ([synth.hop_by_hop()], synth.Transport(135, bytes(8)), 0, FLAG_NO_PORTS),
    ],
)
def test_ipv6_walk_stops(
    exts: list[synth.Extension], payload: synth.Transport, proto: int, flags: int
) -> None:
    b = one(synth.ethernet(synth.ipv6(payload=payload, extensions=exts)))
    assert (b.cols.protocol[0], b.cols.flags[0], b.cols.sport[0]) == (proto, flags, 0)
    assert b.cols.ip_version[0] == 6


def test_snaplen_truncated_packet_keeps_header_fields() -> None:
    frame = synth.ethernet(
        synth.ipv4("10.1.1.1", "10.2.2.2", synth.tcp(80, 81, bytes(500)), dscp=8)
    )
    b = one(frame[: 34 + 2], wire_len=len(frame))  # IP header + half the port field
    assert b.cols.flags[0] == FLAG_TRUNCATED | FLAG_NO_PORTS
    assert (b.cols.ip_version[0], b.cols.ds_byte[0], b.cols.ip_len[0]) == (4, 32, 20 + 20 + 500)
    full = one(frame[:54], wire_len=len(frame))
    assert full.cols.flags[0] == FLAG_TRUNCATED and full.cols.sport[0] == 80


def test_snaplen_inside_ip_header_keeps_the_ds_byte() -> None:
    frame = synth.ethernet(V4)
    b = one(frame[:30], wire_len=len(frame))
    assert b.cols.flags[0] == FLAG_TRUNCATED | FLAG_HEADER_CUT | FLAG_NO_PORTS
    assert (b.cols.ip_version[0], b.cols.ds_byte[0], b.cols.ip_len[0], b.cols.l3_off[0]) == (
        4,
        46 << 2 | 1,
        40,
        14,
    )


@pytest.mark.parametrize("cut", [2, 3, 4, 11, 12, 19])
def test_ipv4_cut_inside_its_header_is_classified_on_the_ds_byte(cut: int) -> None:
    packet = synth.ipv4("10.1.1.1", "10.2.2.2", synth.tcp(80, 81, bytes(100)), dscp=26, ecn=2)
    b = one(synth.ethernet(packet)[: 14 + cut], wire_len=14 + len(packet))
    assert b.cols.flags[0] == FLAG_TRUNCATED | FLAG_HEADER_CUT | FLAG_NO_PORTS
    assert (b.cols.ip_version[0], b.cols.ds_byte[0], b.cols.l3_off[0]) == (4, 26 << 2 | 2, 14)
    # what the missing bytes would say is not guessed: no addresses, protocol or ports
    assert (b.cols.protocol[0], b.cols.sport[0], b.cols.dport[0]) == (0, 0, 0)
    assert (b.cols.saddr_hi[0], b.cols.saddr_lo[0], b.cols.daddr_hi[0], b.cols.daddr_lo[0]) == (
        0,
        0,
        0,
        0,
    )
    # the total length when it was captured, else the frame's
    assert b.cols.ip_len[0] == len(packet)


@pytest.mark.parametrize("cut", [2, 5, 6, 8, 39])
def test_ipv6_cut_inside_its_header_is_classified_on_the_ds_byte(cut: int) -> None:
    packet = synth.ipv6(payload=synth.udp(7, 9, bytes(30)), dscp=46, ecn=1)
    b = one(synth.ethernet(packet)[: 14 + cut], wire_len=14 + len(packet))
    assert b.cols.flags[0] == FLAG_TRUNCATED | FLAG_HEADER_CUT | FLAG_NO_PORTS
    assert (b.cols.ip_version[0], b.cols.ds_byte[0], b.cols.ip_len[0]) == (
        6,
        46 << 2 | 1,
        len(packet),
    )
    assert (b.cols.protocol[0], b.cols.sport[0], b.cols.saddr_hi[0], b.cols.saddr_lo[0]) == (
        0,
        0,
        0,
        0,
    )


@pytest.mark.parametrize(
    ("frame", "wire_extra"),
    [
        (synth.ethernet(V4)[: 14 + 19], 0),  # a short datagram, not cut by the snap length
        (synth.ethernet(V6)[: 14 + 39], 0),
        (synth.ethernet(V4)[: 14 + 1], 30),  # one byte: no DS byte
        (synth.ethernet(V6)[: 14 + 1], 30),
        (synth.ethernet(synth.ipv4(ihl=4))[: 14 + 10], 30),  # what is there is wrong
        (synth.ethernet(synth.ipv4(total_length=200))[: 14 + 10], 30),  # longer than the frame
        (synth.ethernet(synth.ipv6(payload_length=300))[: 14 + 10], 30),
        (synth.ethernet(synth.ipv6(version=4), ethertype=0x86DD)[: 14 + 10], 30),
    ],
)
def test_too_short_or_wrong_ip_headers_stay_malformed(frame: bytes, wire_extra: int) -> None:
    b = one(frame, wire_len=len(frame) + wire_extra)
    assert b.cols.flags[0] & FLAG_MALFORMED and b.cols.ip_version[0] == 0


def test_jumbogram_length_comes_from_the_option() -> None:
    packet = synth.ipv6(payload=synth.tcp(4000, 443, bytes(70_000)), jumbo=True, dscp=10)
    assert packet[4:6] == b"\x00\x00" and packet[40 + 2] == 0xC2
    b = one(synth.ethernet(packet))
    assert b.cols.flags[0] == 0
    assert (b.cols.ip_version[0], b.cols.ds_byte[0], b.cols.protocol[0]) == (6, 40, 6)
    assert (b.cols.sport[0], b.cols.dport[0], b.cols.ip_len[0]) == (4000, 443, len(packet))
    # cut by the snap length after the ports, still the option's length
    cut = one(synth.ethernet(packet)[:200], wire_len=14 + len(packet))
    assert cut.cols.flags[0] == FLAG_TRUNCATED and cut.cols.ip_len[0] == len(packet)
    assert cut.cols.sport[0] == 4000


def test_jumbogram_option_after_padding_and_before_other_headers() -> None:
    payload = synth.udp(5, 6, bytes(66_000))
    body_len = 16 + 8 + len(payload.data)
    options = bytes([0, 1, 1, 0, 0xC2, 4]) + body_len.to_bytes(4, "big") + bytes([1, 2, 0, 0])
    hbh = synth.raw_extension(0, bytes([0, 1]) + options)  # Pad1, PadN, jumbo, PadN
    packet = synth.ipv6(
        payload=payload, extensions=[hbh, synth.destination_options()], payload_length=0
    )
    b = one(synth.ethernet(packet))
    assert b.cols.flags[0] == 0
    assert (b.cols.protocol[0], b.cols.sport[0], b.cols.ip_len[0]) == (17, 5, len(packet))


@pytest.mark.parametrize(
    "packet",
    [
        # a jumbo length must exceed 65535 (RFC 2675)
        synth.ipv6(payload=synth.tcp(), extensions=[synth.jumbo_payload(28)], payload_length=0),
        # longer than the frame
        synth.ipv6(
            payload=synth.tcp(payload=bytes(70_000)),
            extensions=[synth.jumbo_payload(80_000)],
            payload_length=0,
        ),
        # a jumbo option in a packet whose payload length is not 0
        synth.ipv6(payload=synth.tcp(), extensions=[synth.jumbo_payload(70_000)]),
    ],
)
def test_invalid_jumbograms_are_malformed(packet: bytes) -> None:
    b = one(synth.ethernet(packet))
    assert b.cols.flags[0] & FLAG_MALFORMED and b.cols.ip_version[0] == 0


def test_offload_length_zero_takes_the_frame_length() -> None:
    """TSO/GSO/BIG TCP captures: length field 0, the datagram is the rest of the frame."""
    v4 = synth.ipv4("10.0.0.1", "10.0.0.2", synth.tcp(1, 2, bytes(80_000)), total_length=0)
    v6 = synth.ipv6(payload=synth.tcp(3, 4, bytes(80_000)), payload_length=0, dscp=12)
    b = decode_frames([synth.ethernet(v4), synth.ethernet(v6)])
    assert list(b.cols.flags) == [FLAG_LENGTH_FROM_FRAME] * 2
    assert list(b.cols.ip_version) == [4, 6]
    assert list(b.cols.ip_len) == [len(v4), len(v6)]
    assert list(b.cols.sport) == [1, 3]
    # snap-length cut: the wire length still gives the datagram length
    cut = decode_frames(
        [synth.ethernet(v4)[:80], synth.ethernet(v6)[:100]],
        wire_lens=[14 + len(v4), 14 + len(v6)],
    )
    assert list(cut.cols.flags) == [FLAG_LENGTH_FROM_FRAME | FLAG_TRUNCATED] * 2
    assert list(cut.cols.ip_len) == [len(v4), len(v6)]
    # an IPv4 header longer than what the frame holds is still malformed
    short = synth.ipv4(options=bytes(20), total_length=0)
    assert one(synth.ethernet(short)[: 14 + 30]).cols.flags[0] & FLAG_MALFORMED


@pytest.mark.parametrize(
    ("linktype", "frame", "version", "l3"),
    [
        (9, synth.ppp(V4), 4, 4),
        (9, synth.ppp(V6, address_control=False), 6, 2),
        (9, synth.ppp(V4, short_protocol=True), 4, 3),
        (9, synth.ppp(V6, address_control=False, short_protocol=True), 6, 1),
        (50, synth.ppp(V4), 4, 4),
        (50, synth.ppp(V6, short_protocol=True), 6, 3),
        (50, synth.cisco_hdlc(V4), 4, 4),
        (50, synth.cisco_hdlc(V6, multicast=True), 6, 4),
        (104, synth.cisco_hdlc(V6), 6, 4),
        (204, synth.ppp_with_direction(V4), 4, 5),
        (204, synth.ppp_with_direction(V6, outbound=False, address_control=False), 6, 3),
        (205, b"\x01" + synth.cisco_hdlc(V4), 4, 5),
        (9, synth.ppp(synth.mpls(V4), protocol=0x0281), 4, 8),
        (104, synth.cisco_hdlc(synth.mpls(V6, [5, 6]), ethertype=0x8847), 6, 12),
    ],
)
def test_ppp_and_hdlc_link_types(linktype: int, frame: bytes, version: int, l3: int) -> None:
    b = one(frame, linktype)
    assert (b.cols.ip_version[0], b.cols.l3_off[0], b.cols.flags[0]) == (version, l3, 0)
    assert b.cols.sport[0] == (1234 if version == 4 else 5353)


def test_ppp_direction_and_non_ip_protocols() -> None:
    b = decode_frames(
        [synth.ppp_with_direction(V4, outbound=False), synth.ppp_with_direction(V4)], 204
    )
    assert list(b.cols.direction) == [1, 2]
    lcp = synth.ppp(bytes(10), protocol=0xC021)
    assert (one(lcp, 9).cols.ip_version[0], one(lcp, 9).cols.flags[0]) == (0, 0)
    assert one(synth.cisco_hdlc(bytes(20), ethertype=0x8035), 104).cols.ip_version[0] == 0
    # IPv4 under a PPP header that says IPv6 is malformed, as for Ethernet
    assert one(synth.ppp(V4, protocol=0x0057), 9).cols.flags[0] & FLAG_MALFORMED
    for short in (b"", b"\xff\x03", b"\xff\x03\x00", b"\x00"):
        assert one(short, 9).cols.flags[0] & FLAG_MALFORMED


@pytest.mark.parametrize(
    ("packet", "ethertype"),
    [
        (synth.ipv4(payload=synth.tcp(), ihl=4), 0x0800),
        (synth.ipv4(payload=synth.tcp(), version=6), 0x0800),
        (synth.ipv4(payload=synth.tcp(), total_length=400), 0x0800),
        (synth.ipv4(payload=synth.tcp(), total_length=10), 0x0800),
        (synth.ipv6(payload=synth.udp(), payload_length=300), 0x86DD),
        (synth.ipv6(payload=synth.udp(), version=4), 0x86DD),
        (synth.ipv6(payload=b"\x11\x09" + bytes(6), next_header=0), 0x86DD),  # hbh of 80 bytes
    ],
)
def test_malformed_headers_are_flagged(packet: bytes, ethertype: int) -> None:
    b = one(synth.ethernet(packet, ethertype=ethertype))
    assert b.cols.flags[0] & FLAG_MALFORMED
    assert b.cols.ip_version[0] == 0 and b.cols.l3_off[0] == -1


def test_runt_ethernet_and_cut_vlan_tag_are_malformed() -> None:
    assert one(bytes(10)).cols.flags[0] & FLAG_MALFORMED
    assert one(bytes(12) + b"\x81\x00\x00").cols.flags[0] & FLAG_MALFORMED


def test_ethernet_padding_is_not_part_of_the_datagram() -> None:
    packet = synth.ipv4(payload=synth.udp())
    b = one(synth.ethernet(packet) + bytes(18))
    assert b.cols.flags[0] == 0 and b.cols.ip_len[0] == 28


def test_pppoe_session() -> None:
    b = decode_frames(
        [
            synth.ethernet(synth.pppoe(V4), ethertype=0x8864),
            synth.ethernet(synth.pppoe(V6), ethertype=0x8864, vlans=[synth.Vlan(7)]),
            synth.ethernet(bytes(6) + b"\xc0\x21" + bytes(10), ethertype=0x8864),  # LCP
        ]
    )
    assert list(b.cols.ip_version) == [4, 6, 0]
    assert list(b.cols.l3_off[:2]) == [22, b.cols.pkt_off[1] + 26]
    assert (b.cols.sport[0], b.cols.sport[1]) == (1234, 5353)


def test_mpls_label_stack() -> None:
    b = decode_frames(
        [
            synth.ethernet(synth.mpls(V4, [100, 200, 300]), ethertype=0x8847),
            synth.ethernet(synth.mpls(V6), ethertype=0x8847),
            synth.ethernet(synth.mpls(bytes(4) + synth.ethernet(V4)), ethertype=0x8847),
            synth.ethernet(b"\x00\x01\x00\x40", ethertype=0x8847),  # no bottom of stack
        ]
    )
    assert list(b.cols.ip_version) == [4, 6, 0, 0]
    assert b.cols.l3_off[0] == 14 + 12
    assert b.cols.flags[3] & FLAG_MALFORMED
