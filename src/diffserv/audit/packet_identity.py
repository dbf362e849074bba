"""What identifies one packet in two captures of the same traffic taken on either side of a hop.

A hop that re-marks rewrites the DS byte (and with it the IPv4 header checksum), counts
down the TTL or hop limit, and may retag the frame (802.1Q PCP, another VLAN, another
link layer altogether). None of that may take part in recognising a packet. What
survives is the identity this module extracts, per packet, from the decoded columns:

* the 5-tuple with the IP version (so both directions of a conversation stay apart);
* the IP datagram length (``ip_len``);
* the IPv4 identification (0 for IPv6, which has none);
* for TCP, the sequence and acknowledgement numbers (0 for anything else);
* the first :data:`PAYLOAD_BYTES` bytes of the transport payload, kept as they are (no
  digest, so no collision can ever join two packets), plus how many of them the capture
  holds. "Payload" is what follows the TCP header (its options are left out: a hop
  clamping the MSS rewrites them); for UDP, SCTP, ICMP and fragments it is everything
  after the IP header and any IPv6 extension headers before the transport, which for
  UDP includes its header and checksum (neither changes with a re-mark).

A NAT between the two captures changes the 5-tuple and the checksums: such traffic does
not match, and recognising it is out of scope. Packets without this identity (not IP,
malformed, an IP header cut by the snap length) are only counted.

Cost: the columns are read with numpy; the payload bytes are gathered for a whole batch
at once; what stays per packet in Python is building the identity tuple (about a
microsecond each), and walking IPv6 extension headers, for the rare packets that have
them.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Final

import msgspec
import numpy as np
from numpy.typing import NDArray

from diffserv.capture import open_capture
from diffserv.columns import FLAG_FRAGMENT, FLAG_HEADER_CUT, FLAG_MALFORMED, PacketBatch

__all__ = [
    "PAYLOAD_BYTES",
    "FlowTuple",
    "PacketIdentity",
    "ReadCounts",
    "SidePacket",
    "read_identities",
]

PAYLOAD_BYTES: Final = 64
"""Transport payload bytes that take part in the identity (fewer when the payload is shorter)."""

# small batches: every packet of a batch becomes a Python tuple before the first is used
_BATCH_SIZE: Final = 4096
_TCP: Final = 6
_IPV6_EXTENSIONS: Final = frozenset({0, 43, 60})  # hop-by-hop, routing, destination options

# (ip_version, saddr_hi, saddr_lo, daddr_hi, daddr_lo, sport, dport, protocol)
FlowTuple = tuple[int, int, int, int, int, int, int, int]
# (flow, ip_len, ipv4 id, tcp seq, tcp ack, payload bytes held, payload bytes)
PacketIdentity = tuple[FlowTuple, int, int, int, int, int, bytes]


class SidePacket(msgspec.Struct, array_like=True):
    """One packet of one capture: where it is, who it is, and its marks."""

    number: int  # 1-based packet number in its file
    identity: PacketIdentity
    ds: int  # the whole DS byte
    pcp: int  # PCP of the outer 802.1Q tag, -1 when the frame has none


class ReadCounts(msgspec.Struct):
    """What a capture held besides the packets handed out, filled in as it is read."""

    packets: int = 0  # every record
    not_compared: int = 0  # not IP, malformed, or an IP header cut by the snap length
    payload_cut: int = 0  # identified, but the snap length cut the payload bytes it uses
    warnings: list[str] = msgspec.field(default_factory=list)


def read_identities(path: str, counts: ReadCounts) -> Iterator[SidePacket]:
    """The identified packets of the capture ``path``, in file order.

    ``counts`` is updated batch by batch and gets the reader's warnings at the end. A
    damaged or truncated file raises InputDataError (``FILE: packet N: ...``) after the
    packets before the damage have been yielded.
    """
    with open_capture(path, batch_size=_BATCH_SIZE) as reader:
        for batch in reader:
            counts.packets += batch.n
            # copied out of the batch (the next one may reuse its buffer) before any is used
            yield from _batch_identities(batch, counts)
        counts.warnings.extend(reader.warnings)


def _be16(buf: NDArray[np.uint8], at: NDArray[np.int64]) -> NDArray[np.int64]:
    return (buf[at].astype(np.int64) << 8) | buf[at + 1]


def _be32(buf: NDArray[np.uint8], at: NDArray[np.int64]) -> NDArray[np.int64]:
    return (_be16(buf, at) << 16) | _be16(buf, at + 2)


def _ipv6_transport(buf: NDArray[np.uint8], l3: int, end: int) -> int:
    """Offset of what follows the IPv6 extension headers that precede the transport."""
    next_header = int(buf[l3 + 6])
    offset = l3 + 40
    while next_header in _IPV6_EXTENSIONS and offset + 2 <= end:
        next_header, offset = int(buf[offset]), offset + (int(buf[offset + 1]) + 1) * 8
    return offset


def _batch_identities(batch: PacketBatch, counts: ReadCounts) -> list[SidePacket]:
    cols = batch.cols
    buf = batch.buf
    usable = (cols.l3_off >= 0) & (cols.ip_version != 0)
    usable &= (cols.flags & (FLAG_MALFORMED | FLAG_HEADER_CUT)) == 0
    rows = np.flatnonzero(usable)
    counts.not_compared += batch.n - rows.shape[0]
    if rows.shape[0] == 0:
        return []
    l3 = cols.l3_off[rows]
    ip_len = cols.ip_len[rows].astype(np.int64)
    # the bytes that are both captured and inside the datagram (Ethernet pads short frames)
    end = np.minimum(cols.pkt_off[rows] + cols.cap_len[rows].astype(np.int64), l3 + ip_len)
    v4 = cols.ip_version[rows] == 4
    protocol = cols.protocol[rows]
    fragment = (cols.flags[rows] & FLAG_FRAGMENT) != 0

    ipv4_id = np.where(v4, _be16(buf, np.where(v4, l3 + 4, l3)), 0)
    transport = np.where(v4, l3 + (buf[l3] & 0x0F).astype(np.int64) * 4, l3 + 40)
    extended = np.flatnonzero(~v4 & np.isin(buf[np.where(v4, l3, l3 + 6)], list(_IPV6_EXTENSIONS)))
    for i in extended.tolist():
        transport[i] = _ipv6_transport(buf, int(l3[i]), int(end[i]))

    tcp = (protocol == _TCP) & ~fragment & (transport + 14 <= end)
    at = np.where(tcp, transport, 0)
    seq = np.where(tcp, _be32(buf, at + 4), 0)
    ack = np.where(tcp, _be32(buf, at + 8), 0)
    start = np.where(tcp, transport + (buf[at + 12] >> 4).astype(np.int64) * 4, transport)
    held = np.clip(end - start, 0, PAYLOAD_BYTES)
    wanted = np.clip(l3 + ip_len - start, 0, PAYLOAD_BYTES)
    counts.payload_cut += int(np.count_nonzero(held < wanted))

    offsets = np.arange(PAYLOAD_BYTES, dtype=np.int64)
    inside = offsets[None, :] < held[:, None]
    gathered = buf[np.where(inside, start[:, None] + offsets[None, :], 0)]
    gathered[~inside] = 0
    payloads = np.ascontiguousarray(gathered).view(f"V{PAYLOAD_BYTES}").ravel().tolist()

    pcp = batch.priorities(rows)

    flows = zip(
        cols.ip_version[rows].tolist(),
        cols.saddr_hi[rows].tolist(),
        cols.saddr_lo[rows].tolist(),
        cols.daddr_hi[rows].tolist(),
        cols.daddr_lo[rows].tolist(),
        cols.sport[rows].tolist(),
        cols.dport[rows].tolist(),
        protocol.tolist(),
        strict=True,
    )
    return [
        SidePacket(number, (flow, length, ident, s, a, n, payload), ds, tag)
        for number, flow, length, ident, s, a, n, payload, ds, tag in zip(
            cols.number[rows].tolist(),
            flows,
            ip_len.tolist(),
            ipv4_id.tolist(),
            seq.tolist(),
            ack.tolist(),
            held.tolist(),
            payloads,
            cols.ds_byte[rows].tolist(),
            pcp.tolist(),
            strict=True,
        )
    ]
