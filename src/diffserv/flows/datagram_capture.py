"""Export datagrams in a capture file: written for ``file://`` export, read back for collect.

A ``file://`` export writes each datagram as a UDP packet in a pcap file, so the file
is what tcpdump would have caught on the wire and every capture tool reads it. Reading
goes the other way for any capture (pcap or pcapng, every link type the project's
reader decodes, IPv4 and IPv6): the UDP payloads sent to the given ports, with their
source and capture time. What is not a whole UDP datagram is skipped and counted.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Iterator
from typing import BinaryIO, Final

import msgspec
import numpy as np
from numpy.typing import NDArray

from diffserv.capture.pcap import PCAP_MAGIC_NS
from diffserv.capture.reader import open_capture
from diffserv.columns import (
    FLAG_FRAGMENT,
    FLAG_HEADER_CUT,
    FLAG_MALFORMED,
    FLAG_TRUNCATED,
    IPV4,
    IPV6,
    PacketColumns,
)
from diffserv.errors import HostSystemError
from diffserv.packet.checksum import internet_checksum
from diffserv.packet.linktypes import LINKTYPE_ETHERNET
from diffserv.records import format_addresses

UDP: Final = 17
# written file: 127.0.0.1 (or ::1) to itself, between locally administered MACs
FILE_SOURCE_PORT: Final = 49152
SNAPLEN: Final = 65535
_ETHER_V4: Final = bytes.fromhex("0200000000020200000000010800")
_ETHER_V6: Final = bytes.fromhex("02000000000202000000000186dd")
_RECORD: Final = struct.Struct("<IIII")
_UDP: Final = struct.Struct("!HHHH")
# IPv6 extension headers a UDP header may follow: their length is in their second byte
_EXTENSIONS_8: Final = frozenset((0, 43, 60))  # hop-by-hop, routing, destination options
_AH: Final = 51

Source = tuple[str, int]


class DatagramCounts(msgspec.Struct):
    """What reading a capture for datagrams found, packet by packet."""

    packets: int = 0
    datagrams: int = 0  # UDP payloads handed out
    not_udp: int = 0  # not IP, or IP but not UDP
    other_ports: int = 0  # UDP to a port not asked for
    fragments: int = 0  # IP fragments (never reassembled)
    truncated: int = 0  # cut by the snap length or shorter than its UDP length says
    malformed: int = 0  # headers that do not hold together


class DatagramFileWriter:
    """A pcap file (ns time stamps, Ethernet) of UDP datagrams from one source to one port."""

    def __init__(self, path: str, *, port: int, ipv6: bool = False) -> None:
        self.path = path
        self.port = port
        self.ipv6 = ipv6
        self.datagrams = 0
        try:
            self._file: BinaryIO | None = open(path, "wb")  # noqa: SIM115 (closed by close())
            header = struct.pack("<IHHiIII", PCAP_MAGIC_NS, 2, 4, 0, 0, SNAPLEN, LINKTYPE_ETHERNET)
            self._file.write(header)
        except OSError as exc:
            raise HostSystemError(f"cannot create {path}: {exc.strerror or exc}") from None

    def write(self, payload: bytes, ts_ns: int) -> None:
        """Append one datagram, stamped ``ts_ns`` (ns since the epoch, 0 if negative)."""
        frame = self._frame(payload)
        seconds, ns = divmod(max(0, ts_ns), 1_000_000_000)
        record = _RECORD.pack(seconds & 0xFFFFFFFF, ns, len(frame), len(frame)) + frame
        if self._file is None:
            raise ValueError(f"{self.path}: datagram file is closed")
        try:
            self._file.write(record)
        except OSError as exc:
            raise HostSystemError(f"cannot write {self.path}: {exc.strerror or exc}") from None
        self.datagrams += 1

    def _frame(self, payload: bytes) -> bytes:
        length = _UDP.size + len(payload)
        if self.ipv6:
            src = dst = (1).to_bytes(16, "big")
            pseudo = src + dst + struct.pack("!II", length, UDP)
            ip = struct.pack("!IHBB", 6 << 28, length, UDP, 64) + src + dst
            ether = _ETHER_V6
        else:
            src = dst = bytes((127, 0, 0, 1))
            pseudo = src + dst + struct.pack("!BBH", 0, UDP, length)
            head = struct.pack("!BBHHHBBH", 0x45, 0, 20 + length, 0, 0x4000, 64, UDP, 0)
            checksum = internet_checksum(head + src + dst)
            ip = head[:10] + struct.pack("!H", checksum) + src + dst
            ether = _ETHER_V4
        udp = _UDP.pack(FILE_SOURCE_PORT, self.port, length, 0)
        checksum = internet_checksum(pseudo + udp + payload) or 0xFFFF
        return ether + ip + udp[:6] + struct.pack("!H", checksum) + payload

    def close(self) -> None:
        """Flush and close (idempotent); every datagram written stays in the file."""
        file, self._file = self._file, None
        if file is None:
            return
        try:
            file.close()
        except OSError as exc:
            raise HostSystemError(f"cannot write {self.path}: {exc.strerror or exc}") from None


def iter_datagrams(
    path: str, ports: Iterable[int] = (), *, counts: DatagramCounts | None = None
) -> Iterator[tuple[bytes, Source, int]]:
    """The UDP payloads of a capture sent to one of ``ports`` (empty: any port).

    Yields ``(payload, (source address, source port), capture time ns)``; ``counts``,
    when given, is filled as the file is read. An unreadable file is one InputDataError
    (or HostSystemError) line; a packet that is not a whole UDP datagram is counted and
    skipped.
    """
    tally = counts if counts is not None else DatagramCounts()
    wanted = np.array(sorted(set(ports)), np.uint16)
    with open_capture(path) as reader:
        for batch in reader:
            yield from _datagrams_of(batch.buf, batch.cols, wanted, tally)


def _datagrams_of(
    buf: NDArray[np.uint8], cols: PacketColumns, wanted: NDArray[np.uint16], tally: DatagramCounts
) -> Iterator[tuple[bytes, Source, int]]:
    n = int(cols.number.shape[0])
    tally.packets += n
    if not n:
        return
    version = cols.ip_version
    ip = (version == IPV4) | (version == IPV6)
    udp = ip & (cols.protocol == UDP)
    tally.not_udp += int(np.count_nonzero(~udp))
    flags = cols.flags
    fragment = udp & ((flags & FLAG_FRAGMENT) != 0)
    tally.fragments += int(np.count_nonzero(fragment))
    bad = udp & ~fragment & ((flags & FLAG_MALFORMED) != 0)
    cut = udp & ~fragment & ~bad & ((flags & (FLAG_TRUNCATED | FLAG_HEADER_CUT)) != 0)
    tally.malformed += int(np.count_nonzero(bad))
    tally.truncated += int(np.count_nonzero(cut))
    rows = np.flatnonzero(udp & ~fragment & ~bad & ~cut)
    if wanted.size and rows.size:
        to_port = np.isin(cols.dport[rows], wanted)
        tally.other_ports += int(np.count_nonzero(~to_port))
        rows = rows[to_port]
    if not rows.size:
        return
    yield from _payloads(buf, cols, rows, tally)


def _payloads(
    buf: NDArray[np.uint8], cols: PacketColumns, rows: NDArray[np.intp], tally: DatagramCounts
) -> Iterator[tuple[bytes, Source, int]]:
    """The payloads of the UDP datagrams at ``rows``, their headers read with numpy.

    Where UDP starts is computed for the whole batch (IPv4: the header length; IPv6:
    40 when UDP follows the fixed header); only IPv6 datagrams behind extension headers
    are walked one by one. Per datagram, Python then cuts one bytes object.
    """
    l3 = cols.l3_off[rows].astype(np.int64)
    end = cols.pkt_off[rows].astype(np.int64) + cols.cap_len[rows]
    ip_end = np.minimum(end, l3 + cols.ip_len[rows])
    v4 = cols.ip_version[rows] == IPV4
    l4 = np.where(v4, l3 + (buf[l3] & 0x0F).astype(np.int64) * 4, l3 + 40)
    walked = ~v4 & (buf[np.minimum(l3 + 6, buf.shape[0] - 1)] != UDP)
    for i in np.flatnonzero(walked).tolist():
        at = _udp_offset(buf, int(l3[i]), IPV6, int(ip_end[i]))
        l4[i] = -1 if at is None else at
    header_in = (l4 >= 0) & (l4 + _UDP.size <= ip_end)
    safe = np.where(header_in, l4, 0)
    length = (buf[safe + 4].astype(np.int64) << 8) | buf[safe + 5]
    sport = (buf[safe].astype(np.int64) << 8) | buf[safe + 1]
    malformed = ~header_in | (length < _UDP.size)
    cut = ~malformed & (l4 + length > ip_end)
    tally.malformed += int(np.count_nonzero(malformed))
    tally.truncated += int(np.count_nonzero(cut))
    keep = np.flatnonzero(~malformed & ~cut)
    tally.datagrams += int(keep.size)
    if not keep.size:
        return
    picked = rows[keep]
    sources = format_addresses(cols.saddr_hi[picked], cols.saddr_lo[picked])
    starts = (l4[keep] + _UDP.size).tolist()
    stops = (l4[keep] + length[keep]).tolist()
    times = cols.ts_ns[picked].tolist()
    data = buf[: max(stops)].tobytes()  # one copy a batch; slicing bytes is cheap
    for source, port, start, stop, ts in zip(
        sources, sport[keep].tolist(), starts, stops, times, strict=True
    ):
        yield data[start:stop], (source, port), ts


def _udp_offset(buf: NDArray[np.uint8], l3: int, version: int, end: int) -> int | None:
    """Where the UDP header starts, or None if the IP headers run past ``end``."""
    if version == IPV4:
        return l3 + (int(buf[l3]) & 0x0F) * 4
    next_header = int(buf[l3 + 6])
    at = l3 + 40
    while next_header != UDP:
        if at + 2 > end:
            return None
        if next_header in _EXTENSIONS_8:
            size = (int(buf[at + 1]) + 1) * 8
        elif next_header == _AH:
            size = (int(buf[at + 1]) + 2) * 4
        else:  # the decoder said UDP; anything else here is a header it walked and we do not
            return None
        next_header = int(buf[at])
        at += size
    return at


def file_address(ipv6: bool) -> str:
    """The address a written datagram file's packets come from (and go to)."""
    return "::1" if ipv6 else "127.0.0.1"
