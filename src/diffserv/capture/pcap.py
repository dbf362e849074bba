"""Classic libpcap framing: the 24-byte file header and a compiled record walker.

The walker (``scan_pcap``, src/kernels/capture_scan.c) turns the record headers found
in a buffer into row offsets, lengths and timestamps and decodes each packet, so a chunk
of millions of records costs one call.
"""

from __future__ import annotations

import struct

import msgspec

# the walker and its statuses: SCAN_MORE (stopped: the next record is not complete in
# the buffer, or rows are full), SCAN_BAD (the record header at the returned position
# is impossible)
from diffserv._kernels import SCAN_BAD, SCAN_MORE, scan_pcap

PCAP_MAGIC_US = 0xA1B2C3D4
PCAP_MAGIC_NS = 0xA1B23C4D
PCAP_HEADER_LEN = 24
PCAP_RECORD_HEADER_LEN = 16
# libpcap refuses records bigger than this unless the snap length is larger
PCAP_MAX_RECORD = 262144

__all__ = [
    "PCAP_HEADER_LEN",
    "PCAP_MAGIC_NS",
    "PCAP_MAGIC_US",
    "PCAP_MAX_RECORD",
    "PCAP_RECORD_HEADER_LEN",
    "SCAN_BAD",
    "SCAN_MORE",
    "PcapHeader",
    "parse_pcap_header",
    "scan_pcap",
]


class PcapHeader(msgspec.Struct, frozen=True):
    """What the classic pcap file header says."""

    big_endian: bool
    nanosecond: bool
    version: tuple[int, int]
    snaplen: int
    linktype: int
    raw: bytes


def parse_pcap_header(data: bytes) -> PcapHeader | None:
    """Parse a classic pcap header; None if ``data`` does not start with a pcap magic."""
    if len(data) < 4:
        return None
    for big, order in ((False, "<"), (True, ">")):
        (magic,) = struct.unpack_from(order + "I", data, 0)
        if magic in (PCAP_MAGIC_US, PCAP_MAGIC_NS):
            if len(data) < PCAP_HEADER_LEN:
                raise ValueError(
                    f"file header is truncated ({len(data)} of {PCAP_HEADER_LEN} bytes)"
                )
            _m, major, minor, _zone, _sigfigs, snaplen, linkword = struct.unpack_from(
                order + "IHHiIII", data, 0
            )
            return PcapHeader(
                big_endian=big,
                nanosecond=magic == PCAP_MAGIC_NS,
                version=(major, minor),
                snaplen=snaplen,
                linktype=linkword & 0xFFFF,
                raw=bytes(data[:PCAP_HEADER_LEN]),
            )
    return None
