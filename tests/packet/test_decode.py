"""Decode of every supported link type and IP header variant into batch columns."""

from __future__ import annotations

import ipaddress

import pytest

from diffserv.capture import synth
from diffserv.engine.batch import (
    FLAG_FRAGMENT,
    FLAG_MALFORMED,
    FLAG_NO_PORTS,
    FLAG_TRUNCATED,
    PacketBatch,
)
from diffserv.packet.decode import decode_frames

V4 = synth.ipv4("192.0.2.10", "198.51.100.20", synth.tcp(1234, 443), dscp=46, ecn=1)
V6 = synth.ipv6("2001:db8::10", "2001:db8:1::20", synth.udp(5353, 53, b"x" * 10), dscp=10, ecn=3)


def one(frame: bytes, linktype: int = 1, wire_len: int | None = None) -> PacketBatch:
    return decode_frames([frame], linktype, wire_lens=None if wire_len is None else [wire_len])


def addr(batch: PacketBatch, which: str) -> ipaddress.IPv6Address:
    hi = int(getattr(batch, f"{which}addr_hi")[0])
    lo = int(getattr(batch, f"{which}addr_lo")[0])
    return ipaddress.IPv6Address((hi << 64) | lo)


def test_ethernet_ipv4_tcp_fields() -> None:
    b = one(synth.ethernet(V4))
    assert (b.ip_version[0], b.ds_byte[0], b.protocol[0]) == (4, 46 << 2 | 1, 6)
    assert (b.sport[0], b.dport[0], b.ip_len[0], b.l3_off[0], b.vlan_off[0]) == (
        1234,
        443,
        40,
        14,
        -1,
    )
    assert addr(b, "s").ipv4_mapped == ipaddress.IPv4Address("192.0.2.10")
    assert addr(b, "d").ipv4_mapped == ipaddress.IPv4Address("198.51.100.20")
    assert b.flags[0] == 0
    assert b.direction[0] == 2


def test_ethernet_ipv6_udp_fields() -> None:
    b = one(synth.ethernet(V6))
    assert (b.ip_version[0], b.ds_byte[0], b.protocol[0]) == (6, 10 << 2 | 3, 17)
    assert (b.sport[0], b.dport[0], b.ip_len[0]) == (5353, 53, 40 + 18)
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
    assert b.vlan_off[0] == 14
    assert b.l3_off[0] == l3
    assert b.sport[0] == 1234


def test_llc_snap_ipv4() -> None:
    frame = synth.ethernet(b"\xaa\xaa\x03\x00\x00\x00\x08\x00" + V4, ethertype=len(V4) + 8)
    b = one(frame)
    assert b.ip_version[0] == 4 and b.l3_off[0] == 22


def test_non_ip_passes_untouched() -> None:
    b = one(synth.ethernet(bytes(28), ethertype=0x0806))
    assert (b.ip_version[0], b.flags[0], b.l3_off[0]) == (0, 0, -1)


@pytest.mark.parametrize("linktype", [101, 12, 14])
def test_raw_ip_both_versions(linktype: int) -> None:
    b = decode_frames([V4, V6], linktype)
    assert list(b.ip_version) == [4, 6]
    assert list(b.l3_off) == [0, len(V4)]


def test_raw_ipv4_ipv6_linktypes_check_version() -> None:
    assert one(V4, 228).ip_version[0] == 4
    assert one(V6, 229).ip_version[0] == 6
    assert one(V6, 228).flags[0] & FLAG_MALFORMED
    assert one(b"\x50" + bytes(30), 101).flags[0] & FLAG_MALFORMED


@pytest.mark.parametrize(
    ("packet_type", "direction"), [(0, 1), (1, 1), (2, 1), (3, 1), (4, 2), (7, 2)]
)
def test_linux_cooked_direction(packet_type: int, direction: int) -> None:
    b1 = one(synth.sll(V4, packet_type=packet_type), 113)
    b2 = one(synth.sll2(V6, packet_type=packet_type), 276)
    assert (b1.direction[0], b1.l3_off[0], b1.ip_version[0]) == (direction, 16, 4)
    assert (b2.direction[0], b2.l3_off[0], b2.ip_version[0]) == (direction, 20, 6)


def test_sll_with_vlan_tag() -> None:
    frame = synth.sll(b"\xa0\x0a\x08\x00" + V4, protocol=0x8100)
    b = one(frame, 113)
    assert (b.vlan_off[0], b.l3_off[0], b.ip_version[0]) == (16, 20, 4)


@pytest.mark.parametrize(
    ("family", "big", "version"),
    [(2, False, 4), (2, True, 4), (24, False, 6), (28, True, 6), (30, False, 6), (10, False, 6)],
)
def test_bsd_null(family: int, big: bool, version: int) -> None:
    payload = V4 if version == 4 else V6
    b = one(synth.null(payload, family=family, big_endian=big), 0)
    assert (b.ip_version[0], b.l3_off[0]) == (version, 4)


def test_openbsd_loop() -> None:
    assert one(synth.loop(V6), 108).ip_version[0] == 6
    assert one(synth.null(bytes(20), family=7), 0).ip_version[0] == 0


def test_unknown_linktype_is_non_ip() -> None:
    b = one(V4, 147)
    assert (b.ip_version[0], b.flags[0]) == (0, 0)


def test_ipv4_options_are_skipped() -> None:
    packet = synth.ipv4(payload=synth.udp(7, 9), options=b"\x94\x04\x00\x00" * 3)
    b = one(synth.ethernet(packet))
    assert (b.sport[0], b.dport[0], b.ip_len[0]) == (7, 9, 32 + 8)


@pytest.mark.parametrize(("mf", "offset"), [(True, 0), (False, 100), (True, 8)])
def test_ipv4_fragments_have_no_ports(mf: bool, offset: int) -> None:
    packet = synth.ipv4(payload=synth.tcp(1, 2), mf=mf, frag_offset=offset)
    b = one(synth.ethernet(packet))
    assert b.flags[0] & FLAG_FRAGMENT and b.flags[0] & FLAG_NO_PORTS
    assert (b.sport[0], b.dport[0], b.protocol[0]) == (0, 0, 6)


def test_ipv4_df_is_not_a_fragment() -> None:
    b = one(synth.ethernet(synth.ipv4(payload=synth.tcp(1, 2), df=True)))
    assert b.flags[0] == 0 and b.sport[0] == 1


def test_other_protocols_have_no_ports() -> None:
    b = one(synth.ethernet(synth.ipv4(payload=synth.icmp())))
    assert b.protocol[0] == 1 and b.flags[0] & FLAG_NO_PORTS and b.sport[0] == 0
    sctp = one(synth.ethernet(synth.ipv4(payload=synth.sctp(36412, 38412))))
    assert (sctp.protocol[0], sctp.sport[0], sctp.dport[0]) == (132, 36412, 38412)


def test_ipv6_extension_walk_reaches_ports() -> None:
    exts = [synth.hop_by_hop(16), synth.destination_options(), synth.routing(["2001:db8::9"])]
    packet = synth.ipv6(payload=synth.tcp(4000, 22), extensions=exts)
    b = one(synth.ethernet(packet))
    assert (b.protocol[0], b.sport[0], b.dport[0]) == (6, 4000, 22)
    assert b.ip_len[0] == len(packet)


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
    assert (b.protocol[0], b.flags[0], b.sport[0]) == (proto, flags, 0)
    assert b.ip_version[0] == 6


def test_snaplen_truncated_packet_keeps_header_fields() -> None:
    frame = synth.ethernet(
        synth.ipv4("10.1.1.1", "10.2.2.2", synth.tcp(80, 81, bytes(500)), dscp=8)
    )
    b = one(frame[: 34 + 2], wire_len=len(frame))  # IP header + half the port field
    assert b.flags[0] == FLAG_TRUNCATED | FLAG_NO_PORTS
    assert (b.ip_version[0], b.ds_byte[0], b.ip_len[0]) == (4, 32, 20 + 20 + 500)
    full = one(frame[:54], wire_len=len(frame))
    assert full.flags[0] == FLAG_TRUNCATED and full.sport[0] == 80


def test_snaplen_inside_ip_header_is_malformed() -> None:
    frame = synth.ethernet(V4)
    b = one(frame[:30], wire_len=len(frame))
    assert b.flags[0] == FLAG_TRUNCATED | FLAG_MALFORMED
    assert b.ip_version[0] == 0


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
    assert b.flags[0] & FLAG_MALFORMED
    assert b.ip_version[0] == 0 and b.l3_off[0] == -1


def test_runt_ethernet_and_cut_vlan_tag_are_malformed() -> None:
    assert one(bytes(10)).flags[0] & FLAG_MALFORMED
    assert one(bytes(12) + b"\x81\x00\x00").flags[0] & FLAG_MALFORMED


def test_ethernet_padding_is_not_part_of_the_datagram() -> None:
    packet = synth.ipv4(payload=synth.udp())
    b = one(synth.ethernet(packet) + bytes(18))
    assert b.flags[0] == 0 and b.ip_len[0] == 28


def test_pppoe_session() -> None:
    b = decode_frames(
        [
            synth.ethernet(synth.pppoe(V4), ethertype=0x8864),
            synth.ethernet(synth.pppoe(V6), ethertype=0x8864, vlans=[synth.Vlan(7)]),
            synth.ethernet(bytes(6) + b"\xc0\x21" + bytes(10), ethertype=0x8864),  # LCP
        ]
    )
    assert list(b.ip_version) == [4, 6, 0]
    assert list(b.l3_off[:2]) == [22, b.pkt_off[1] + 26]
    assert (b.sport[0], b.sport[1]) == (1234, 5353)


def test_mpls_label_stack() -> None:
    b = decode_frames(
        [
            synth.ethernet(synth.mpls(V4, [100, 200, 300]), ethertype=0x8847),
            synth.ethernet(synth.mpls(V6), ethertype=0x8847),
            synth.ethernet(synth.mpls(bytes(4) + synth.ethernet(V4)), ethertype=0x8847),
            synth.ethernet(b"\x00\x01\x00\x40", ethertype=0x8847),  # no bottom of stack
        ]
    )
    assert list(b.ip_version) == [4, 6, 0, 0]
    assert b.l3_off[0] == 14 + 12
    assert b.flags[3] & FLAG_MALFORMED
