"""Fuzz targets for the capture data plane: pcap and pcapng framing, and L2-L4 decode + rewrite.

"pcap" and "pcapng" write each input to one reused temporary file and do what
`diffserv run` does with it: open it (read into small buffers, and once more mapped),
walk every batch (three packets each, so batch edges are crossed; 61 when mapped, and both
must agree; one input in four is read both ways), mark the DS byte and PCP of every IP
packet, and write it with a CaptureWriter to memory. Besides "no exception
but ours" they check that the output is the input, record for record, wherever nothing
was re-marked. "decode" takes one frame (the first byte picks the link type and whether
the snap length cut it), decodes and re-marks it inside guard bytes, and checks that only
the DS byte, the IPv4 checksum and the VLAN PCP bits changed, and only inside the frame.
Seeds come from ``support.synth`` (tests/support/synth.py).
"""

from __future__ import annotations

import io
import struct
import zlib
from collections.abc import Callable

import numpy as np
from harness import FuzzTarget, scratch_path

from diffserv.capture import CaptureWriter
from diffserv.capture.reader import CaptureReader
from diffserv.columns import FLAG_HEADER_CUT, FLAG_MALFORMED, IPV4, IPV6, PacketBatch
from diffserv.errors import DiffservError
from diffserv.packet.checksum import internet_checksum
from diffserv.packet.decode import decode_batch
from diffserv.packet.linktypes import SUPPORTED_LINKTYPES
from diffserv.packet.rewrite import apply_marks
from support import synth

LINKTYPES = sorted(SUPPORTED_LINKTYPES)
GUARD = 16  # bytes either side of a decoded frame that must never change
CUT_EXTRA = 1000  # wire bytes a "cut" decode input claims beyond the captured ones


# ------------------------------------------------------------------- capture files
def _mark(batch: PacketBatch) -> int:
    """Re-mark every IP packet of ``batch`` (DS byte inverted, PCP 5); return rows marked."""
    ip = batch.cols.ip_version != 0
    batch.cols.new_ds[ip] = (batch.cols.ds_byte[ip] ^ 0xFF).astype(np.int16)
    batch.cols.new_pcp[ip] = 5
    apply_marks(batch)
    return int(np.count_nonzero(ip))


def read_and_write(path: str, use_mmap: bool, batch_size: int = 3) -> tuple[bytes, int, str]:
    """Read ``path`` as `diffserv run` would, marking every IP packet.

    Returns (output bytes, rows marked, the error message or "").
    """
    out = io.BytesIO()
    marked = 0
    error = ""
    try:
        with CaptureReader(
            path, batch_size=batch_size, chunk_size=1 << 16, prefetch=False, use_mmap=use_mmap
        ) as reader:
            writer = CaptureWriter(out, reader.capture_format, background=False)
            try:
                for batch in reader:
                    marked += _mark(batch)
                    writer.write(batch)
            finally:
                writer.close()
    except DiffservError as exc:
        error = str(exc)
    return out.getvalue(), marked, error


def _runner(ext: str) -> Callable[[bytes], None]:
    def run(data: bytes) -> None:
        path = scratch_path(ext)
        with open(path, "wb") as f:
            f.write(data)
        buffered = read_and_write(path, use_mmap=False)
        if zlib.crc32(data) % 4 == 0:  # a quarter of the inputs: also mapped, other batches
            mapped = read_and_write(path, use_mmap=True, batch_size=61)
            if buffered != mapped:
                raise AssertionError(
                    f"mapped and buffered reads differ: {buffered[1:]} {mapped[1:]}"
                )
        output, marked, _error = buffered
        if ext == "pcap" and not marked and output and output != data[: len(output)]:
            raise AssertionError("a pcap file with nothing marked was not copied byte for byte")
        if len(output) > max(len(data), 24):
            raise AssertionError("the output is longer than the input")

    return run


# ------------------------------------------------------------------------- decode
def decode_input(data: bytes) -> tuple[int, bytes, int]:
    """(link type, frame, wire length) of a "decode" input."""
    if not data:
        return LINKTYPES[0], b"", 0
    choice = data[0]
    linktype = LINKTYPES[choice % len(LINKTYPES)]
    frame = data[1:]
    cut = (choice // len(LINKTYPES)) % 2 == 1
    return linktype, frame, len(frame) + (CUT_EXTRA if cut else 0)


DECODED = (
    "l3_off",
    "vlan_off",
    "ip_version",
    "ds_byte",
    "protocol",
    "saddr_hi",
    "saddr_lo",
    "daddr_hi",
    "daddr_lo",
    "sport",
    "dport",
    "ip_len",
    "direction",
    "flags",
)


def guarded_batch(frame: bytes, linktype: int, wire_len: int, guard: int = 0xA5) -> PacketBatch:
    """One decoded frame stored between GUARD bytes of value ``guard`` in its buffer."""
    fill = bytes([guard]) * GUARD
    buf = np.frombuffer(fill + frame + fill, np.uint8).copy()
    batch = PacketBatch.allocate(buf, 1)
    batch.cols.number[0] = 1
    batch.cols.rec_off[0] = batch.cols.pkt_off[0] = GUARD
    batch.cols.rec_len[0] = batch.cols.cap_len[0] = len(frame)
    batch.cols.wire_len[0] = wire_len
    batch.span_start, batch.span_end = GUARD, GUARD + len(frame)
    decode_batch(batch, np.array([linktype], np.int32))
    return batch


def _allowed_changes(batch: PacketBatch) -> set[int]:
    allowed: set[int] = set()
    l3 = int(batch.cols.l3_off[0])
    if batch.cols.ip_version[0] == IPV4:
        allowed |= {l3 + 1, l3 + 10, l3 + 11}
    elif batch.cols.ip_version[0] == IPV6:
        allowed |= {l3, l3 + 1}
    if batch.cols.vlan_off[0] >= 0:
        allowed.add(int(batch.cols.vlan_off[0]))
    return allowed


def run_decode(data: bytes) -> None:
    linktype, frame, wire_len = decode_input(data)
    batch = guarded_batch(frame, linktype, wire_len)
    other = guarded_batch(frame, linktype, wire_len, guard=0x5A)
    for name in DECODED:  # what lies around the frame must not change what is decoded
        if getattr(batch.cols, name)[0] != getattr(other.cols, name)[0]:
            raise AssertionError(f"decode read outside the frame ({name} depends on it)")
    start, end = GUARD, GUARD + len(frame)
    flags = int(batch.cols.flags[0])
    l3 = int(batch.cols.l3_off[0])
    if batch.cols.ip_version[0]:
        if flags & FLAG_MALFORMED:
            raise AssertionError("a malformed frame was decoded as IP")
        need = 2 if flags & FLAG_HEADER_CUT else (20 if batch.cols.ip_version[0] == IPV4 else 40)
        if not (start <= l3 and l3 + need <= end):
            raise AssertionError(f"IP header at {l3 - start} is not inside the frame")
        if int(batch.cols.ip_len[0]) > wire_len - (l3 - start):
            raise AssertionError("ip_len is longer than the frame on the wire")
    elif l3 != -1:
        raise AssertionError("a non-IP frame has an IP header offset")
    if batch.cols.vlan_off[0] >= 0 and not (
        start <= batch.cols.vlan_off[0] and batch.cols.vlan_off[0] + 2 <= end
    ):
        raise AssertionError("the VLAN TCI is not inside the frame")
    before = batch.buf.tobytes()
    batch.cols.new_ds[0] = int(batch.cols.ds_byte[0]) ^ 0xFF
    batch.cols.new_pcp[0] = (
        (int(batch.buf[batch.cols.vlan_off[0]]) >> 5 ^ 7) if batch.cols.vlan_off[0] >= 0 else 3
    )
    apply_marks(batch)
    after = batch.buf.tobytes()
    allowed = set() if flags & FLAG_MALFORMED else _allowed_changes(batch)
    changed = {i for i in range(len(before)) if before[i] != after[i]}
    if not changed <= {i for i in allowed if start <= i < end}:
        raise AssertionError(f"bytes changed outside the marker's fields: {sorted(changed)}")
    if batch.cols.ip_version[0] == IPV4 and not flags & FLAG_HEADER_CUT:
        ihl = (before[l3] & 0x0F) * 4
        valid = l3 + ihl <= end and internet_checksum(before[l3 : l3 + ihl]) == 0
        if valid and internet_checksum(after[l3 : l3 + ihl]) != 0:
            raise AssertionError("a valid IPv4 header checksum became invalid")


# -------------------------------------------------------------------------- seeds
V4 = synth.ipv4("192.0.2.10", "198.51.100.20", synth.tcp(1234, 443, b"x" * 20), dscp=46, ecn=1)
V6 = synth.ipv6("2001:db8::10", "2001:db8:1::20", synth.udp(5353, 53, b"y" * 10), dscp=10)
JUMBO = synth.ipv6(payload=synth.tcp(7, 8, bytes(65_600)), jumbo=True, dscp=12)
OFFLOAD_V4 = synth.ipv4(payload=synth.tcp(9, 10, bytes(3000)), total_length=0, dscp=26)
OFFLOAD_V6 = synth.ipv6(payload=synth.tcp(11, 12, bytes(3000)), payload_length=0, dscp=34)


def ip_packets() -> list[bytes]:
    """IP datagrams covering what decode walks: options, fragments, extension headers."""
    return [
        V4,
        V6,
        synth.ipv4(payload=synth.udp(1, 2), options=b"\x94\x04\x00\x00"),
        synth.ipv4(payload=synth.tcp(1, 2), mf=True),
        synth.ipv4(payload=synth.tcp(1, 2), frag_offset=100),
        synth.ipv4(payload=synth.sctp(36412, 38412)),
        synth.ipv4(payload=synth.icmp()),
        synth.ipv6(
            payload=synth.tcp(4000, 22),
            extensions=[synth.hop_by_hop(16), synth.destination_options(), synth.routing()],
        ),
        synth.ipv6(payload=synth.udp(), extensions=[synth.fragment6(0, True)]),
        synth.ipv6(payload=synth.icmpv6(), extensions=[synth.hop_by_hop()]),
        synth.ipv6(payload=synth.tcp(), extensions=[synth.jumbo_payload(70_000)]),
        OFFLOAD_V4,
        OFFLOAD_V6,
    ]


def link_frames() -> list[tuple[int, bytes]]:
    """(link type, frame) for every supported link type and the Ethernet variants."""
    out: list[tuple[int, bytes]] = []
    for linktype in LINKTYPES:
        for packet in (V4, V6):
            if (linktype, packet[0] >> 4) in ((228, 6), (229, 4)):
                continue
            out.append((linktype, synth.link_frame(packet, linktype)))
    out += [
        (9, synth.ppp(V4, address_control=False, short_protocol=True)),
        (50, synth.cisco_hdlc(V6)),
        (204, synth.ppp_with_direction(V6, outbound=False)),
        (1, synth.ethernet(V4, vlans=[synth.Vlan(10, pcp=3), synth.Vlan(20)])),
        (1, synth.ethernet(V6, vlans=[synth.Vlan(5, tpid=synth.TPID_8021AD)])),
        (1, synth.ethernet(synth.mpls(V4, [100, 200]), ethertype=0x8847)),
        (1, synth.ethernet(synth.pppoe(V6), ethertype=0x8864, vlans=[synth.Vlan(7)])),
        (1, synth.ethernet(b"\xaa\xaa\x03\x00\x00\x00\x08\x00" + V4, ethertype=len(V4) + 8)),
        (1, synth.ethernet(bytes(28), ethertype=0x0806)),
        (113, synth.sll(V4, packet_type=4)),
    ]
    out += [(1, synth.ethernet(p)) for p in ip_packets()[2:]]
    return out


def decode_seeds() -> list[bytes]:
    seeds: list[bytes] = []
    for linktype, frame in link_frames():
        index = LINKTYPES.index(linktype)
        seeds.append(bytes([index]) + frame)
        # cut by the snap length inside the IP header and inside the link header
        cut = bytes([index + len(LINKTYPES)])
        seeds.append(cut + frame[: len(frame) - len(V4) + 11] if len(frame) > 60 else cut + frame)
        seeds.append(cut + frame[:3])
    seeds.append(bytes([LINKTYPES.index(1)]) + synth.ethernet(JUMBO))
    return seeds


def _cut(data: bytes, keep: int) -> bytes:
    return data[: max(0, len(data) - keep)]


def pcap_seeds() -> list[bytes]:
    seeds: list[bytes] = []
    by_link: dict[int, list[bytes]] = {}
    for linktype, frame in link_frames():
        by_link.setdefault(linktype, []).append(frame)
    for linktype, frames in by_link.items():
        packets = [synth.Packet(f) for f in frames]
        packets.append(synth.Packet(frames[0], caplen=len(frames[0]) - len(V4) + 9))
        seeds.append(synth.pcap_bytes(packets, linktype=linktype))
    ethernet = by_link[1]
    seeds += [
        synth.pcap_bytes(ethernet, nanosecond=True, big_endian=True),
        synth.pcap_bytes([synth.Packet(synth.ethernet(JUMBO), caplen=200)], snaplen=200),
        synth.pcap_bytes([synth.Packet(f, ts_ns=(2**32 - 1) * 10**9) for f in ethernet[:2]]),
        synth.pcap_bytes([b"x"], linktype=147),
        _cut(synth.pcap_bytes(ethernet), 10),
        synth.pcap_bytes(ethernet)[:30],
        synth.pcap_bytes([]),
    ]
    bad = bytearray(synth.pcap_bytes(ethernet[:3]))
    bad[24 + 8 : 24 + 12] = (10**8).to_bytes(4, "little")
    seeds.append(bytes(bad))
    return seeds


def pcapng_seeds() -> list[bytes]:
    frames = [f for lt, f in link_frames() if lt == 1]
    ppp = [f for lt, f in link_frames() if lt == 9]
    sections = [
        synth.Section(
            [synth.Interface(name="eth0"), synth.Interface(9, name="ppp0", tsresol=9)],
            [
                synth.Packet(frames[0], epb_flags=1),
                synth.Packet(ppp[0], interface=1, epb_flags=2),
                synth.RawBlock(4, bytes(8)),
                synth.Packet(frames[1], block="spb"),
                synth.Interface(105, name="wlan0", tsresol=0x80 | 20, tsoffset=-5),
                synth.Packet(bytes(40), interface=2),
                synth.Packet(frames[2], block="opb"),
                synth.RawBlock(5, bytes(20)),
            ],
        ),
        synth.Section(
            [synth.Interface(101, tsresol=3, tsoffset=1_700_000_000)],
            [synth.Packet(V4, ts_ns=5), synth.Packet(V6, caplen=20)],
            big_endian=True,
            section_length=12345,
        ),
    ]
    seeds = [
        synth.pcapng_bytes(sections),
        synth.simple_pcapng(frames, tsresol=9, big_endian=True),
        synth.simple_pcapng([synth.Packet(synth.ethernet(JUMBO), caplen=300)]),
        synth.pcapng_bytes(
            [synth.Section([synth.Interface(name=f"if{i}") for i in range(40)], [frames[0]])]
        ),
        synth.pcapng_bytes([synth.Section([synth.Interface()], [frames[i]]) for i in range(5)]),
        synth.pcapng_bytes(
            [synth.Section([synth.Interface(tsresol=9, tsoffset=2**62)], [frames[0]])]
        ),
        synth.pcapng_bytes([synth.Section([synth.Interface(tsresol=9)], [])])
        + _epb_with_time(2**64 - 1),
        _cut(synth.simple_pcapng(frames), 10),
        synth.simple_pcapng(frames)[:40],
    ]
    many_options = synth.pcapng_bytes([synth.Section([synth.Interface()], [frames[0]])])
    seeds.append(_idb_with_options(many_options, 200))
    return seeds


def _epb_with_time(units: int) -> bytes:
    """An EPB for interface 0 whose raw 64-bit time stamp is ``units``."""
    data = synth.ethernet(V4)
    data += bytes((4 - len(data) % 4) % 4)
    body = struct.pack("<IIIII", 0, units >> 32, units & 0xFFFFFFFF, len(data), len(data)) + data
    return struct.pack("<II", 6, 12 + len(body)) + body + struct.pack("<I", 12 + len(body))


def _idb_with_options(data: bytes, count: int) -> bytes:
    """``data`` (one section, first IDB without options) with ``count`` options added to it."""
    shb_len = int.from_bytes(data[4:8], "little")
    idb_len = int.from_bytes(data[shb_len + 4 : shb_len + 8], "little")
    options = struct.pack("<HH", 3, 0) * count + struct.pack("<HH4s", 2, 4, b"big0")
    options += struct.pack("<HH", 0, 0)
    body = data[shb_len + 8 : shb_len + idb_len - 4] + options
    idb = struct.pack("<II", 1, 12 + len(body)) + body + struct.pack("<I", 12 + len(body))
    return data[:shb_len] + idb + data[shb_len + idb_len :]


TARGETS: list[FuzzTarget] = [
    FuzzTarget("pcap", _runner("pcap"), pcap_seeds, max_len=1 << 17),
    FuzzTarget("pcapng", _runner("pcapng"), pcapng_seeds, max_len=1 << 17),
    FuzzTarget("decode", run_decode, decode_seeds, max_len=1 << 17),
]
