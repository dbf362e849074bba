"""PacketBatch: a run of packets as columns, the unit every operator works on.

Packet sources (capture files, NFQUEUE) fill the decoded columns; operators
read them and write the result columns; sinks (capture writer, verdicts) read
the results. Packet bytes stay in the source's own buffer: ``buf`` plus
per-packet offsets, so rewriting happens in place and every byte an action
does not touch is carried through unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

# ip_version column values
NOT_IP = 0
IPV4 = 4
IPV6 = 6

# flags column bits
FLAG_MALFORMED = 0x01  # header lengths inconsistent/truncated: passes unmodified, counted
FLAG_FRAGMENT = 0x02  # IPv4 non-first fragment or MF set, or IPv6 fragment header met
FLAG_NO_PORTS = 0x04  # ports not available (truncated L4, fragment, other protocol)
FLAG_TRUNCATED = 0x08  # capture snap length cut the packet (caplen < wire length)
FLAG_LENGTH_FROM_FRAME = 0x10  # IP length field 0 (segmentation offload): ip_len from the frame
FLAG_HEADER_CUT = 0x20  # snap length cut inside the IP header: only the DS byte is known

# Verdicts (result column), next-action ids of the virtual actions (ipp.h).
ACTION_CONTINUE = -2
ACTION_DEFER = -3
ACTION_DROP = -4

DIRECTION_UNKNOWN = 0
UNKNOWN_ID = -1  # uid/projid not known (always so in captures)


def _empty(dtype: type[np.generic], n: int, fill: int = 0) -> NDArray[np.generic]:
    return np.full(n, fill, dtype=dtype)


@dataclass(slots=True)
class PacketBatch:
    """Columns for ``n`` packets. All arrays have length ``n``.

    Decoded columns (filled by the source):
      number     int64   1-based packet number in the input (for messages)
      rec_off    int64   offset in buf of the packet's whole record (pcap record header or
                         pcapng block); the writer copies/omits [rec_off, rec_off+rec_len)
      rec_len    int64   length of that record in buf
      ts_ns      int64   timestamp, ns since the epoch
      wire_len   uint32  original length on the wire
      cap_len    uint32  bytes present in ``buf``
      pkt_off    int64   offset of the packet's first (link-layer) byte in buf
      l3_off     int64   offset of the IP header in buf, -1 if not IP
      vlan_off   int64   offset of the outermost 802.1Q/802.1ad TCI in buf, -1 if none
      ip_version uint8   0 (not IP), 4 or 6
      ds_byte    uint8   the whole DS/ToS/traffic-class byte as received
      protocol   uint8   transport protocol (after the IPv6 extension walk)
      saddr_hi, saddr_lo, daddr_hi, daddr_lo  uint64  128-bit addresses, IPv4 v4-mapped
      sport, dport uint16  0 when ports are not available
      ip_len     uint32  IP datagram length (v4 total length; v6 40 + payload length, or
                         40 + jumbo payload length; the frame's length after the link
                         header when the length field is 0, FLAG_LENGTH_FROM_FRAME)
      ifindex    int32   index into ``interfaces`` (0 = unknown)
      direction  uint8   LOCAL_IN/LOCAL_OUT/FWD_IN/FWD_OUT, 0 unknown
      uid, projid int32  -1 when unknown
      flags      uint8   FLAG_* bits

    Result columns (filled by the engine):
      class_id   int32   ipgpc class index in the compiled graph, -1 none yet
      action     int32   current/next action id; at the end a virtual action id
      new_ds     int16   DS byte to write, -1 = leave unchanged
      new_pcp    int8    802.1Q PCP to write, -1 = leave unchanged
      colour     uint8   last meter colour (1 green, 2 yellow, 4 red), 0 none
    """

    buf: NDArray[np.uint8]
    number: NDArray[np.int64]
    rec_off: NDArray[np.int64]
    rec_len: NDArray[np.int64]
    ts_ns: NDArray[np.int64]
    wire_len: NDArray[np.uint32]
    cap_len: NDArray[np.uint32]
    pkt_off: NDArray[np.int64]
    l3_off: NDArray[np.int64]
    vlan_off: NDArray[np.int64]
    ip_version: NDArray[np.uint8]
    ds_byte: NDArray[np.uint8]
    protocol: NDArray[np.uint8]
    saddr_hi: NDArray[np.uint64]
    saddr_lo: NDArray[np.uint64]
    daddr_hi: NDArray[np.uint64]
    daddr_lo: NDArray[np.uint64]
    sport: NDArray[np.uint16]
    dport: NDArray[np.uint16]
    ip_len: NDArray[np.uint32]
    ifindex: NDArray[np.int32]
    direction: NDArray[np.uint8]
    uid: NDArray[np.int32]
    projid: NDArray[np.int32]
    flags: NDArray[np.uint8]
    class_id: NDArray[np.int32]
    action: NDArray[np.int32]
    new_ds: NDArray[np.int16]
    new_pcp: NDArray[np.int8]
    colour: NDArray[np.uint8]
    # names of the interfaces ifindex refers to; index 0 is "" (unknown)
    interfaces: tuple[str, ...] = field(default=("",))
    # [span_start, span_end) of buf belongs to this batch, in input order: packet
    # records plus any non-packet blocks between them, which a writer keeps as they are
    span_start: int = 0
    span_end: int = 0

    @property
    def n(self) -> int:
        return int(self.number.shape[0])

    @classmethod
    def allocate(cls, buf: NDArray[np.uint8], n: int) -> PacketBatch:
        """A batch of ``n`` packets over ``buf`` with every column at its neutral value."""
        return cls(
            buf=buf,
            number=np.zeros(n, np.int64),
            rec_off=np.zeros(n, np.int64),
            rec_len=np.zeros(n, np.int64),
            ts_ns=np.zeros(n, np.int64),
            wire_len=np.zeros(n, np.uint32),
            cap_len=np.zeros(n, np.uint32),
            pkt_off=np.zeros(n, np.int64),
            l3_off=np.full(n, -1, np.int64),
            vlan_off=np.full(n, -1, np.int64),
            ip_version=np.zeros(n, np.uint8),
            ds_byte=np.zeros(n, np.uint8),
            protocol=np.zeros(n, np.uint8),
            saddr_hi=np.zeros(n, np.uint64),
            saddr_lo=np.zeros(n, np.uint64),
            daddr_hi=np.zeros(n, np.uint64),
            daddr_lo=np.zeros(n, np.uint64),
            sport=np.zeros(n, np.uint16),
            dport=np.zeros(n, np.uint16),
            ip_len=np.zeros(n, np.uint32),
            ifindex=np.zeros(n, np.int32),
            direction=np.zeros(n, np.uint8),
            uid=np.full(n, UNKNOWN_ID, np.int32),
            projid=np.full(n, UNKNOWN_ID, np.int32),
            flags=np.zeros(n, np.uint8),
            class_id=np.full(n, -1, np.int32),
            action=np.zeros(n, np.int32),
            new_ds=np.full(n, -1, np.int16),
            new_pcp=np.full(n, -1, np.int8),
            colour=np.zeros(n, np.uint8),
        )

    def current_ds(self) -> NDArray[np.uint8]:
        """The DS byte as earlier actions left it (what later actions see)."""
        marked = self.new_ds >= 0
        return np.where(marked, self.new_ds, self.ds_byte).astype(np.uint8)
