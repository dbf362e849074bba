"""NetFlow v5 / v9 and IPFIX datagrams built byte by byte with struct, for collector tests.

Deliberately independent of diffserv's own encoder: a test that feeds the collector
what this module builds checks the decoder against the RFCs' layouts as written here,
not against the other half of the same codec. Also the DSCP-mix capture that the
interoperability tests run softflowd over.
"""

from __future__ import annotations

import ipaddress
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from support import synth

# (element id, length) pairs; an enterprise element is (id | 0x8000, length, pen)
Field = tuple[int, int] | tuple[int, int, int]

# What softflowd sends for IPv4 over IPFIX with -A milli (the elements, not its order):
# addresses, ports, protocol, ToS, TCP flags, packet and octet counts, ms times.
SOFTFLOWD_LIKE_V4: tuple[Field, ...] = (
    (8, 4),  # sourceIPv4Address
    (12, 4),  # destinationIPv4Address
    (7, 2),  # sourceTransportPort
    (11, 2),  # destinationTransportPort
    (4, 1),  # protocolIdentifier
    (5, 1),  # ipClassOfService
    (6, 1),  # tcpControlBits (reduced to one byte, as softflowd sends it)
    (60, 1),  # ipVersion
    (2, 4),  # packetDeltaCount (reduced-size encoding)
    (1, 4),  # octetDeltaCount
    (152, 8),  # flowStartMilliseconds
    (153, 8),  # flowEndMilliseconds
)
# NetFlow v9 has no absolute times: first/last switched are sysUpTime ms.
V9_V4: tuple[Field, ...] = (
    (8, 4),
    (12, 4),
    (7, 2),
    (11, 2),
    (4, 1),
    (5, 1),
    (6, 1),
    (2, 4),
    (1, 4),
    (22, 4),  # FIRST_SWITCHED
    (21, 4),  # LAST_SWITCHED
)


@dataclass(frozen=True)
class Flow:
    """One flow record's values, the columns every test compares."""

    src: str
    dst: str
    sport: int
    dport: int
    proto: int
    tos: int
    packets: int
    octets: int
    first_ms: int  # ms since the epoch
    last_ms: int
    tcp_flags: int = 0


def _value(flow: Flow, element: int, *, uptime_base_ms: int) -> int | bytes:
    if element in (8, 12):
        return ipaddress.IPv4Address(flow.src if element == 8 else flow.dst).packed
    if element in (27, 28):
        return ipaddress.IPv6Address(flow.src if element == 27 else flow.dst).packed
    values = {
        7: flow.sport,
        11: flow.dport,
        4: flow.proto,
        5: flow.tos,
        6: flow.tcp_flags,
        60: ipaddress.ip_address(flow.src).version,
        2: flow.packets,
        1: flow.octets,
        152: flow.first_ms,
        153: flow.last_ms,
        150: flow.first_ms // 1000,
        151: flow.last_ms // 1000,
        22: flow.first_ms - uptime_base_ms,
        21: flow.last_ms - uptime_base_ms,
    }
    return values.get(element, 0)


def encode_records(
    fields: Sequence[Field], flows: Sequence[Flow], *, uptime_base_ms: int = 0
) -> bytes:
    """Data records of ``flows`` laid out as ``fields`` (big-endian, each its length)."""
    out = bytearray()
    for flow in flows:
        for field in fields:
            element, length = field[0] & 0x7FFF, field[1]
            value = _value(flow, element, uptime_base_ms=uptime_base_ms) if len(field) == 2 else 0
            out += value if isinstance(value, bytes) else value.to_bytes(length, "big")
    return bytes(out)


def _template_fields(fields: Sequence[Field]) -> bytes:
    out = bytearray()
    for field in fields:
        out += struct.pack("!HH", field[0], field[1])
        if len(field) == 3:
            out += struct.pack("!I", field[2])
    return bytes(out)


# ---------------------------------------------------------------------------- IPFIX
def ipfix_template_set(templates: Mapping[int, Sequence[Field]]) -> bytes:
    """A template set (id 2); a template with no fields is a withdrawal."""
    body = b"".join(
        struct.pack("!HH", tid, len(fields)) + _template_fields(fields)
        for tid, fields in templates.items()
    )
    return struct.pack("!HH", 2, 4 + len(body)) + body


def ipfix_options_template_set(tid: int, scope: Sequence[Field], fields: Sequence[Field]) -> bytes:
    body = struct.pack("!HHH", tid, len(scope) + len(fields), len(scope))
    body += _template_fields([*scope, *fields])
    return struct.pack("!HH", 3, 4 + len(body)) + body


def data_set(tid: int, records: bytes, *, pad: int = 0) -> bytes:
    """A data set (IPFIX) or data flowset (v9) of already encoded records."""
    return struct.pack("!HH", tid, 4 + len(records) + pad) + records + bytes(pad)


def ipfix_message(sets: Sequence[bytes], *, sequence: int, domain: int = 0, export_s: int) -> bytes:
    body = b"".join(sets)
    return struct.pack("!HHIII", 10, 16 + len(body), export_s, sequence, domain) + body


class IpfixExporter:
    """Messages of one exporter/domain with correct sequence numbers (records sent so far)."""

    def __init__(self, fields: Sequence[Field] = SOFTFLOWD_LIKE_V4, *, domain: int = 0) -> None:
        self.fields = tuple(fields)
        self.domain = domain
        self.sequence = 0
        self.template_id = 256

    def message(self, flows: Sequence[Flow], *, template: bool = True, export_s: int = 0) -> bytes:
        sets = [ipfix_template_set({self.template_id: self.fields})] if template else []
        if flows:
            sets.append(data_set(self.template_id, encode_records(self.fields, flows)))
        message = ipfix_message(
            sets, sequence=self.sequence, domain=self.domain, export_s=export_s or _now_s(flows)
        )
        self.sequence = (self.sequence + len(flows)) & 0xFFFFFFFF
        return message


# ------------------------------------------------------------------------ NetFlow v9
def v9_template_flowset(templates: Mapping[int, Sequence[Field]]) -> bytes:
    body = b"".join(
        struct.pack("!HH", tid, len(fields)) + _template_fields(fields)
        for tid, fields in templates.items()
    )
    return struct.pack("!HH", 0, 4 + len(body)) + body


def v9_packet(
    flowsets: Sequence[bytes],
    *,
    count: int,
    sequence: int,
    source_id: int,
    uptime_ms: int,
    unix_s: int,
) -> bytes:
    body = b"".join(flowsets)
    return struct.pack("!HHIIII", 9, count, uptime_ms, unix_s, sequence, source_id) + body


class V9Exporter:
    """Packets of one v9 exporter (source id): sequence counts packets, times are uptime."""

    def __init__(
        self, fields: Sequence[Field] = V9_V4, *, source_id: int = 0, boot_ms: int
    ) -> None:
        self.fields = tuple(fields)
        self.source_id = source_id
        self.boot_ms = boot_ms  # the exporter's boot, ms since the epoch (sysUpTime 0)
        self.sequence = 0

    def packet(self, flows: Sequence[Flow], *, template: bool = True, now_ms: int = 0) -> bytes:
        # a whole second: the v9 header's clock has no sub-second part, so times are exact
        now_ms = (
            now_ms or (max((f.last_ms for f in flows), default=self.boot_ms) // 1000 + 2) * 1000
        )
        flowsets = [v9_template_flowset({256: self.fields})] if template else []
        if flows:
            records = encode_records(self.fields, flows, uptime_base_ms=self.boot_ms)
            pad = -len(records) % 4
            flowsets.append(data_set(256, records, pad=pad))
        count = len(flows) + (1 if template else 0)
        packet = v9_packet(
            flowsets,
            count=count,
            sequence=self.sequence,
            source_id=self.source_id,
            uptime_ms=now_ms - self.boot_ms,
            unix_s=now_ms // 1000,
        )
        self.sequence = (self.sequence + 1) & 0xFFFFFFFF
        return packet


# ------------------------------------------------------------------------ NetFlow v5
class V5Exporter:
    """v5 packets (at most 30 records): flow_sequence counts records sent before."""

    def __init__(self, *, boot_ms: int, engine: tuple[int, int] = (0, 0)) -> None:
        self.boot_ms = boot_ms
        self.engine = engine
        self.sequence = 0

    def packet(self, flows: Sequence[Flow], *, now_ms: int = 0) -> bytes:
        now_ms = now_ms or max((f.last_ms for f in flows), default=self.boot_ms) + 1000
        header = struct.pack(
            "!HHIIIIBBH",
            5,
            len(flows),
            now_ms - self.boot_ms,
            now_ms // 1000,
            (now_ms % 1000) * 1_000_000,
            self.sequence,
            self.engine[0],
            self.engine[1],
            0,
        )
        records = b"".join(
            struct.pack(
                "!4s4s4sHHIIIIHHxBBBHHBBxx",
                ipaddress.IPv4Address(f.src).packed,
                ipaddress.IPv4Address(f.dst).packed,
                bytes(4),
                0,
                0,
                f.packets,
                f.octets,
                f.first_ms - self.boot_ms,
                f.last_ms - self.boot_ms,
                f.sport,
                f.dport,
                f.tcp_flags,
                f.proto,
                f.tos,
                0,
                0,
                0,
                0,
            )
            for f in flows
        )
        self.sequence = (self.sequence + len(flows)) & 0xFFFFFFFF
        return header + records


def _now_s(flows: Sequence[Flow]) -> int:
    return max((f.last_ms for f in flows), default=1_767_225_600_000) // 1000 + 1


def flows(n: int, *, base_ms: int = 1_767_225_600_000, salt: int = 0) -> list[Flow]:
    """``n`` distinct IPv4 flows with varied ToS (every value of the DS byte in turn)."""
    return [
        Flow(
            src=f"10.{salt & 255}.{i >> 8 & 255}.{i & 255}",
            dst="192.0.2.7",
            sport=1024 + i % 60000,
            dport=443 if i % 2 else 53,
            proto=6 if i % 2 else 17,
            tos=(i * 7 + salt) % 256,
            packets=1 + i % 97,
            octets=64 * (1 + i % 97) + i % 13,
            first_ms=base_ms + i * 10,
            last_ms=base_ms + i * 10 + 500 + i % 1000,
        )
        for i in range(n)
    ]


# ------------------------------------------------------------------ pcap of exports
def udp_frames_pcap(
    path: Path,
    datagrams: Sequence[tuple[bytes, tuple[str, int], int]],
    *,
    collector: tuple[str, int],
) -> str:
    """A pcap of UDP datagrams (payload, (exporter, port), arrival ns) sent to ``collector``."""
    packets = []
    for payload, (host, port), ts_ns in datagrams:
        ip = synth.ipv4(host, collector[0], synth.udp(port, collector[1], payload))
        packets.append(synth.Packet(synth.ethernet(ip), ts_ns=ts_ns))
    return synth.write_pcap(path, packets, nanosecond=True)


# ---------------------------------------------- the capture softflowd exports from
T0_NS = 1_767_225_600_000_000_000

# (name, ip version, protocol, DSCP, ECN, VLAN tag or None): the mix of marks a QoS
# audit meets; the IPv6 flow is left out of v5 exports (v5 has no IPv6).
DSCP_MIX = (
    ("EF+ECT(1)", 4, "udp", 46, 1, None),
    ("AF41", 4, "tcp", 34, 0, None),
    ("AF11", 4, "tcp", 10, 0, None),
    ("CS1", 4, "udp", 8, 0, None),
    ("LE", 4, "tcp", 1, 0, None),
    ("BE", 4, "tcp", 0, 0, None),
    ("AF21 over IPv6", 6, "tcp", 18, 0, None),
    ("CS5 with VLAN PCP 5", 4, "udp", 40, 0, synth.Vlan(100, 5)),
)


def dscp_mix_capture(path: Path, *, packets_per_flow: int = 9, ipv6: bool = True) -> str:
    """A capture of one flow per :data:`DSCP_MIX` entry, packets 10 ms apart, sizes varied."""
    frames = []
    mix = [entry for entry in DSCP_MIX if ipv6 or entry[1] == 4]
    for i in range(packets_per_flow * len(mix)):
        j = i % len(mix)
        _, version, proto, dscp, ecn, vlan = mix[j]
        frame = synth.simple_frame(
            version=version,
            proto=proto,
            src=f"10.20.0.{j + 1}" if version == 4 else f"2001:db8::{j + 1}",
            dst="10.30.0.9" if version == 4 else "2001:db8::99",
            sport=2000 + j,
            dport=443 if proto == "tcp" else 5004,
            dscp=dscp,
            ecn=ecn,
            payload_len=80 + 37 * j + i % 5,
            vlans=(vlan,) if vlan is not None else (),
        )
        frames.append(synth.Packet(frame, ts_ns=T0_NS + i * 10_000_000))
    return synth.write_pcap(path, frames)
