"""Classic pcap files of whole Ethernet frames, and a paced raw sender for them.

``python tests/support/pcap_io.py send IFNAME PCAP`` sends every frame of PCAP out of
IFNAME through an AF_PACKET socket (run it inside a test namespace). It depends on
nothing but the standard library, so it runs under any interpreter in any namespace.
Sending is paced in small bursts: a veth delivers into the peer's per-CPU backlog
(netdev_max_backlog, 1000 packets), and a burst larger than that would be dropped before
any rule saw it, which an equivalence test would misread as a lost packet.
"""

from __future__ import annotations

import json
import socket
import struct
import sys
import time
from collections.abc import Iterable
from pathlib import Path

SEND_BURST = 64
SEND_PAUSE_S = 0.002  # ~30 k packets/s at most


def write_pcap(path: Path, frames: Iterable[bytes]) -> None:
    """Ethernet frames into a microsecond pcap, 1 000 packets a second of capture time."""
    with path.open("wb") as out:
        out.write(struct.pack("=IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        for i, data in enumerate(frames):
            stamp = struct.pack(
                "=IIII", 1_700_000_000 + i // 1000, i % 1000 * 1000, len(data), len(data)
            )
            out.write(stamp + data)


def read_pcap(path: Path) -> list[bytes]:
    """Every frame of a classic pcap file (either byte order)."""
    data = path.read_bytes()
    magic = struct.unpack_from("<I", data)[0]
    endian = "<" if magic in (0xA1B2C3D4, 0xA1B23C4D) else ">"
    at, out = 24, []
    while at + 16 <= len(data):
        caplen = struct.unpack_from(f"{endian}I", data, at + 8)[0]
        out.append(data[at + 16 : at + 16 + caplen])
        at += 16 + caplen
    return out


def send(ifname: str, pcap: Path) -> int:
    """Send every frame of ``pcap`` out of ``ifname``, paced; the number sent."""
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    sock.bind((ifname, 0))
    frames = read_pcap(pcap)
    for i, data in enumerate(frames):
        sock.send(data)
        if i % SEND_BURST == SEND_BURST - 1:
            time.sleep(SEND_PAUSE_S)
    return len(frames)


def main(argv: list[str]) -> int:
    if len(argv) == 3 and argv[0] == "send":
        print(json.dumps({"sent": send(argv[1], Path(argv[2]))}), flush=True)
        return 0
    print("usage: pcap_io.py send IFNAME PCAP", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
