"""IPFIX exports for the collector benchmark, built with numpy and struct (not our encoder).

A softflowd-like IPv4 template (addresses, ports, protocol, ToS, TCP flags, IP version,
reduced-size packet and octet counts, ms start/end), 30 records a message (1 460 bytes,
one Ethernet MTU with its headers), the template sent first and again every
``TEMPLATE_EVERY`` messages as a refresh. The records are laid out as one big-endian
structured numpy array, so a million records take well under a second to make; the
capture (Ethernet/IPv4/UDP to port 4739) is cached under benchmarks/data/.

    python benchmarks/gen_exports.py [--records N]
"""

from __future__ import annotations

import argparse
import struct
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from diffserv.packet.checksum import internet_checksum

HERE = Path(__file__).resolve().parent
DATA_DIR = HERE / "data"
DEFAULT_RECORDS = 1_000_000
RECORDS_PER_MESSAGE = 30
TEMPLATE_EVERY = 1000  # data messages between template refreshes
TEMPLATE_ID = 256
DOMAIN = 1
COLLECTOR_PORT = 4739
EXPORTER = ("192.0.2.10", 50123)
COLLECTOR = "192.0.2.20"
T0_MS = 1_767_225_600_000

# (IPFIX element id, length, numpy big-endian type) in record order
FIELDS = (
    (8, 4, ">u4"),  # sourceIPv4Address
    (12, 4, ">u4"),  # destinationIPv4Address
    (7, 2, ">u2"),  # sourceTransportPort
    (11, 2, ">u2"),  # destinationTransportPort
    (4, 1, "u1"),  # protocolIdentifier
    (5, 1, "u1"),  # ipClassOfService
    (6, 1, "u1"),  # tcpControlBits
    (60, 1, "u1"),  # ipVersion
    (2, 4, ">u4"),  # packetDeltaCount
    (1, 4, ">u4"),  # octetDeltaCount
    (152, 8, ">u8"),  # flowStartMilliseconds
    (153, 8, ">u8"),  # flowEndMilliseconds
)
RECORD = np.dtype([(f"f{ie}", kind) for ie, _, kind in FIELDS])
assert RECORD.itemsize == sum(length for _, length, _ in FIELDS) == 40
_TOS = np.array([0, 0, 0, 0xB8 | 1, 0x88, 0x28, 0x20, 0x04, 0xA0, 0x48], np.uint8)


def records(n: int, seed: int = 7) -> NDArray[np.void]:
    """``n`` records of :data:`RECORD`: ~50 000 hosts, a DSCP mix, realistic sizes."""
    rng = np.random.default_rng(seed)
    out = np.zeros(n, RECORD)
    out["f8"] = 0x0A000000 + rng.integers(0, 50_000, n)
    out["f12"] = 0xC0A80000 + rng.integers(0, 4096, n)
    out["f7"] = rng.integers(1024, 65535, n)
    out["f11"] = rng.choice(np.array([443, 80, 53, 5060, 8801], np.uint16), n)
    out["f4"] = np.where(rng.random(n) < 0.7, 6, 17)
    out["f5"] = _TOS[rng.integers(0, _TOS.size, n)]
    out["f6"] = np.where(out["f4"] == 6, 0x1B, 0)
    out["f60"] = 4
    packets = rng.integers(1, 2000, n)
    out["f2"] = packets
    out["f1"] = packets * rng.integers(60, 1500, n)
    start = T0_MS + np.sort(rng.integers(0, 600_000, n))
    out["f152"] = start
    out["f153"] = start + rng.integers(0, 120_000, n)
    return out


def template_set() -> bytes:
    fields = b"".join(struct.pack("!HH", ie, length) for ie, length, _ in FIELDS)
    body = struct.pack("!HH", TEMPLATE_ID, len(FIELDS)) + fields
    return struct.pack("!HH", 2, 4 + len(body)) + body


def messages(n: int) -> list[bytes]:
    """The export, message by message: IPFIX sequence = data records sent before."""
    return encode(records(n))


def encode(
    table: NDArray[np.void], sequence: int = 0, export_s0: int = T0_MS // 1000 + 600
) -> list[bytes]:
    """Records of :data:`RECORD` as IPFIX messages, the template first, from ``sequence``."""
    data = table.tobytes()
    n = len(table)
    size = RECORD.itemsize
    out: list[bytes] = []
    template = template_set()
    for number, first in enumerate(range(0, n, RECORDS_PER_MESSAGE)):
        count = min(RECORDS_PER_MESSAGE, n - first)
        export_s = export_s0 + number // 1000
        if number % TEMPLATE_EVERY == 0:
            out.append(struct.pack("!HHIII", 10, 16 + len(template), export_s, sequence, DOMAIN))
            out[-1] += template
        body = data[first * size : (first + count) * size]
        head = struct.pack("!HHIII", 10, 16 + 4 + len(body), export_s, sequence, DOMAIN)
        out.append(head + struct.pack("!HH", TEMPLATE_ID, 4 + len(body)) + body)
        sequence += count
    return out


def pcap(path: Path, payloads: list[bytes]) -> None:
    """A classic pcap (µs) of the payloads as UDP datagrams exporter → collector:4739."""
    src = bytes(int(x) for x in EXPORTER[0].split("."))
    dst = bytes(int(x) for x in COLLECTOR.split("."))
    ether = bytes(6) + bytes([2, 0, 0, 0, 0, 1]) + b"\x08\x00"
    chunks = [struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)]
    for i, payload in enumerate(payloads):
        ip = struct.pack(
            "!BBHHHBBH4s4s", 0x45, 0, 28 + len(payload), i & 0xFFFF, 0, 64, 17, 0, src, dst
        )
        ip = ip[:10] + struct.pack("!H", internet_checksum(ip)) + ip[12:]
        udp = struct.pack("!HHHH", EXPORTER[1], COLLECTOR_PORT, 8 + len(payload), 0)
        frame = ether + ip + udp + payload
        ts_us = T0_MS * 1000 + 600_000_000 + i * 20
        chunks.append(
            struct.pack("<IIII", ts_us // 1_000_000, ts_us % 1_000_000, len(frame), len(frame))
        )
        chunks.append(frame)
    path.write_bytes(b"".join(chunks))


def ensure(n: int = DEFAULT_RECORDS) -> tuple[Path, list[bytes]]:
    """The cached capture of ``n`` records (made if missing) and its payloads."""
    payloads = messages(n)
    DATA_DIR.mkdir(exist_ok=True)
    path = DATA_DIR / f"ipfix_{n}.pcap"
    if not path.exists():
        tmp = path.with_suffix(".tmp")
        pcap(tmp, payloads)
        tmp.replace(path)
    return path, payloads


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--records", type=int, default=DEFAULT_RECORDS)
    args = parser.parse_args()
    path, payloads = ensure(args.records)
    print(f"{path}: {args.records:,} records in {len(payloads):,} datagrams")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
