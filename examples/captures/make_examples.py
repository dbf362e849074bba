"""Generate the bundled example captures (run from anywhere; rewrites the files beside it).

``edge.pcapng`` is one second of traffic leaving an enterprise WAN edge (interface
``wan0``), shaped to exercise examples/policies/enterprise-edge.conf: phones' RTP and
SIP, video units, SMB bulk transfers fast enough to turn the two-rate meter yellow and
red, SFTP and rsync backups, unclassified web traffic (some IPv6, some already ECN
marked), a VLAN-tagged frame, ARP, and one malformed IPv4 header. Bulk packets are
stored cut to 64 bytes (snap length), as tcpdump -s 64 would, so the file stays small
while the meters still see their full 1500-byte size.

    python examples/captures/make_examples.py
"""

from __future__ import annotations

import random
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
# the frame builders are test support (tests/support), not part of the shipped package
sys.path.insert(0, str(HERE.parents[1] / "tests"))

from support import synth  # noqa: E402

START_NS = 1_767_225_600_000_000_000  # 2026-01-01T00:00:00Z
SNAP = 64


def _frame(
    version: int, src: str, dst: str, l4: synth.Transport, *, dscp: int = 0, ecn: int = 0
) -> bytes:
    if version == 4:
        return synth.ethernet(synth.ipv4(src, dst, l4, dscp=dscp, ecn=ecn))
    return synth.ethernet(synth.ipv6(src, dst, l4, dscp=dscp, ecn=ecn))


def edge_packets(rng: random.Random) -> list[synth.Packet]:
    """The packets of edge.pcapng, in timestamp order."""
    events: list[tuple[int, bytes, int | None]] = []  # (ts, frame, caplen)

    def add(t_ns: int, frame: bytes, caplen: int | None = None) -> None:
        events.append((t_ns, frame, caplen))

    # phones: 20 ms RTP, 2 calls, 172-byte payloads, unmarked at the source
    for call in range(2):
        for k in range(50):
            l4 = synth.udp(16384 + 2 * call, 20000 + 2 * call, bytes(172))
            add(
                k * 20_000_000 + call * 3_000_000,
                _frame(4, f"10.20.1.{10 + call}", "203.0.113.5", l4),
            )
    # SIP over UDP and TLS
    for k in range(6):
        add(
            k * 150_000_000 + 1_000_000,
            _frame(4, "10.20.1.10", "203.0.113.6", synth.udp(5060, 5060, bytes(400))),
        )
        add(
            k * 150_000_000 + 2_000_000,
            _frame(4, "10.20.1.11", "203.0.113.6", synth.tcp(40001, 5061, bytes(300))),
        )
    # video units: 30 frames/s of 1000-byte UDP
    for k in range(30):
        add(
            k * 33_333_333 + 500_000,
            _frame(4, "10.30.0.7", "198.51.100.20", synth.udp(5004, 5004, bytes(1000))),
        )
    # SMB bulk: 1000 full-size segments in 100 ms (120 Mbit/s), stored cut to SNAP bytes
    for k in range(1000):
        frame = _frame(
            4,
            "10.50.3.3",
            "198.51.100.80",
            synth.tcp(49152, 445, bytes(1460), seq=1 + 1460 * k),
        )
        add(200_000_000 + k * 100_000, frame, SNAP)
    # SFTP from the admin subnet, rsync backup (scavenger)
    for k in range(40):
        add(
            400_000_000 + k * 5_000_000,
            _frame(4, "10.40.0.9", "198.51.100.22", synth.tcp(50022, 22, bytes(1200))),
            SNAP,
        )
        add(
            600_000_000 + k * 5_000_000,
            _frame(4, "10.60.0.4", "198.51.100.23", synth.tcp(50873, 873, bytes(1200))),
            SNAP,
        )
    # unclassified web traffic, some IPv6, some ECN-capable, some already CS1
    for k in range(60):
        ecn = rng.choice([0, 0, 1, 2])
        if k % 3 == 0:
            frame = _frame(
                6,
                "2001:db8:10::5",
                "2001:db8:ffff::443",
                synth.tcp(51000 + k, 443, bytes(rng.randrange(0, 600))),
                ecn=ecn,
            )
        else:
            frame = _frame(
                4,
                f"10.70.0.{k % 50 + 2}",
                "203.0.113.80",
                synth.tcp(52000 + k, 443, bytes(rng.randrange(0, 600))),
                dscp=8 if k % 7 == 0 else 0,
                ecn=ecn,
            )
        add(k * 16_000_000 + 700_000, frame)
    # a phone that marks EF itself, behind a trusted switch
    for k in range(10):
        add(
            k * 90_000_000 + 4_000_000,
            _frame(4, "10.80.0.2", "203.0.113.9", synth.udp(7000, 7000, bytes(160)), dscp=46),
        )
    # a VLAN-tagged frame, ARP, a malformed IPv4 header (IHL 3)
    tagged = synth.ethernet(
        synth.ipv4("10.20.2.2", "203.0.113.5", synth.udp(16500, 20500, bytes(172))),
        vlans=[synth.Vlan(vid=20, pcp=0)],
    )
    add(950_000_000, tagged)
    arp = bytes.fromhex(
        "ffffffffffff020000000001080600010800060400010200000000010a0000010000000000000a0000fe"
    )
    add(10_000, arp)
    add(
        960_000_000,
        synth.ethernet(synth.ipv4("10.70.0.9", "203.0.113.80", synth.tcp(53000, 443), ihl=3)),
    )
    events.sort(key=lambda e: e[0])
    return [synth.Packet(frame, ts_ns=START_NS + t, caplen=caplen) for t, frame, caplen in events]


def main() -> None:
    rng = random.Random(2026)
    data = synth.pcapng_bytes(
        [synth.Section([synth.Interface(name="wan0", snaplen=65535)], list(edge_packets(rng)))]
    )
    out = HERE / "edge.pcapng"
    out.write_bytes(data)
    print(f"{out.name}: {len(data):,} bytes")


if __name__ == "__main__":
    main()
