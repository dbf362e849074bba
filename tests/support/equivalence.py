"""Compiled ruleset versus offline engine, packet by packet: frames, oracle and wire.

The offline engine is the oracle. The same packets (each with a unique id in its
payload) go two ways:

* into a pcap file that ``diffserv run --direction fwd-out`` marks: the DS byte of each
  packet it writes, or its absence (dropped). dlcosmk only shows on a tagged frame, so
  the oracle's frames carry an 802.1Q tag, and it runs twice, with the tag's PCP 0 and 7
  coming in: a PCP that comes out as it went in both times was not set, any other is the
  one dlcosmk wrote (this also tells "set to 0" from "not set");
* onto the wire of three namespaces (sender -- router -- receiver), untagged, through the
  router, where the compiled ruleset is loaded; the receiver captures what arrives.

skb->priority is not on an untagged wire, and this kernel has no 802.1Q devices, so the
router carries a probe table of its own (``PROBE``): a forward chain that runs BEFORE
the compiled one sets the priority to a sentinel (so the kernel's own TOS-derived
priority of forwarded IPv4 cannot pass for a mark), and a postrouting chain that runs
AFTER everything writes the priority into the TTL / hop limit: 200 + p for priorities
0:0..0:7, 199 for the untouched sentinel; any other priority leaves the forwarded TTL
(63). The receiver reads it back from the header.

The sender is ``tests/support/pcap_io.py send`` (an AF_PACKET socket, paced so the
router's backlog never overflows), run inside the sender namespace.
"""

from __future__ import annotations

import ipaddress
import re
import signal
import struct
import subprocess
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from support.live_daemon import env, result, start_traffic
from support.netns import Namespace, Topology, topology
from support.pcap_io import read_pcap, write_pcap
from support.tools import require_tool

if TYPE_CHECKING:
    from support.policy_gen import PacketSpec

MAGIC = b"DSEQ"
TTL_IN = 64
SENTINEL = 0xFF  # priority the probe sets before the compiled ruleset runs
TTL_UNSET = 199
TTL_BASE = 200
PROBE_TABLE = "dsprobe"
_PROBE_MARKS = "".join(
    f"\t\tmeta priority 0:{p} ip ttl set {TTL_BASE + p}\n"
    f"\t\tmeta priority 0:{p} ip6 hoplimit set {TTL_BASE + p}\n"
    for p in range(8)
)
PROBE = f"""table inet {PROBE_TABLE} {{
	chain before {{
		type filter hook forward priority -400; policy accept;
		meta priority set 0:{SENTINEL:x}
	}}
	chain after {{
		type filter hook postrouting priority 400; policy accept;
		meta priority 0:{SENTINEL:x} ip ttl set {TTL_UNSET}
		meta priority 0:{SENTINEL:x} ip6 hoplimit set {TTL_UNSET}
{_PROBE_MARKS}	}}
}}
"""


# ---------------------------------------------------------------- frames


def _sum16(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return total


def _checksum(data: bytes) -> int:
    return ~_sum16(data) & 0xFFFF


def ip_packet(p: PacketSpec) -> bytes:
    """The IP packet of ``p``: TCP (an ACK) or UDP with correct checksums, the id in the
    payload."""
    payload = MAGIC + struct.pack("!I", p.pid) + b"\0" * 8
    src = ipaddress.ip_address(p.src).packed
    dst = ipaddress.ip_address(p.dst).packed
    if p.proto == 6:
        l4 = struct.pack("!HHIIBBHHH", p.sport, p.dport, p.pid, 1, 5 << 4, 0x10, 8192, 0, 0)
    else:
        l4 = struct.pack("!HHHH", p.sport, p.dport, 8 + len(payload), 0)
    segment = l4 + payload
    pseudo = src + dst + struct.pack("!HH", p.proto, len(segment))
    if p.family == 6:
        pseudo = src + dst + struct.pack("!I3xB", len(segment), p.proto)
    csum = _checksum(pseudo + segment) or (0xFFFF if p.proto == 17 else 0)
    at = 16 if p.proto == 6 else 6
    segment = segment[:at] + struct.pack("!H", csum) + segment[at + 2 :]
    if p.family == 4:
        head = struct.pack(
            "!BBHHHBBH4s4s",
            0x45,
            p.tos,
            20 + len(segment),
            p.pid & 0xFFFF,
            0,
            TTL_IN,
            p.proto,
            0,
            src,
            dst,
        )
        head = head[:10] + struct.pack("!H", _checksum(head)) + head[12:]
        return head + segment
    first = (6 << 28) | (p.tos << 20)
    return struct.pack("!IHBB16s16s", first, len(segment), p.proto, TTL_IN, src, dst) + segment


def frame(p: PacketSpec, dst_mac: bytes, src_mac: bytes, pcp: int | None = None) -> bytes:
    """An Ethernet frame of ``p`` (with an 802.1Q tag of PCP ``pcp``, VLAN 100, if given)."""
    ethertype = struct.pack("!H", 0x86DD if p.family == 6 else 0x0800)
    tag = b"" if pcp is None else struct.pack("!HH", 0x8100, pcp << 13 | 100)
    return dst_mac + src_mac + tag + ethertype + ip_packet(p)


@dataclass(frozen=True)
class Seen:
    """What one of our packets looked like in a capture."""

    ds: int  # the whole DS byte
    ttl: int  # TTL / hop limit
    pcp: int | None  # the 802.1Q PCP, if tagged


def decode(frames: Iterable[bytes]) -> dict[int, Seen]:
    """Our packets (by id) in captured Ethernet frames; everything else is ignored. A
    packet seen twice is an error: each id is sent once."""
    out: dict[int, Seen] = {}
    for data in frames:
        at, pcp = 12, None
        ethertype = struct.unpack_from("!H", data, at)[0] if len(data) >= 14 else 0
        if ethertype == 0x8100:
            pcp = data[14] >> 5
            at += 4
            ethertype = struct.unpack_from("!H", data, at)[0]
        ip = data[at + 2 :]
        if ethertype == 0x0800 and len(ip) >= 20:
            ds, ttl, proto, hlen = ip[1], ip[8], ip[9], (ip[0] & 15) * 4
        elif ethertype == 0x86DD and len(ip) >= 40:
            ds = (struct.unpack_from("!I", ip)[0] >> 20) & 0xFF
            ttl, proto, hlen = ip[7], ip[6], 40
        else:
            continue
        l4 = 20 if proto == 6 else 8
        payload = ip[hlen + l4 :]
        if not payload.startswith(MAGIC):
            continue
        pid = struct.unpack_from("!I", payload, 4)[0]
        if pid in out:
            raise AssertionError(f"packet {pid} arrived twice")
        out[pid] = Seen(ds, ttl, pcp)
    return out


# ---------------------------------------------------------------- the oracle


@dataclass(frozen=True)
class Expected:
    """What the offline engine says of one packet: dropped, or its DS byte and the PCP
    dlcosmk set (None: not set)."""

    dropped: bool
    ds: int = 0
    pcp: int | None = None


def oracle(policy: Path, packets: Sequence[PacketSpec], work: Path) -> dict[int, Expected]:
    """``diffserv run`` on the packets, twice (incoming PCP 0 and 7)."""
    mac_a, mac_b = bytes.fromhex("020000000001"), bytes.fromhex("020000000002")
    seen: list[dict[int, Seen]] = []
    for pcp_in in (0, 7):
        source, marked = work / f"oracle-in{pcp_in}.pcap", work / f"oracle-out{pcp_in}.pcap"
        write_pcap(source, (frame(p, mac_b, mac_a, pcp_in) for p in packets))
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "diffserv",
                "run",
                str(policy),
                str(source),
                "-o",
                str(marked),
                "--direction",
                "fwd-out",
                "-q",
            ],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
            env=env(),
        )
        if done.returncode != 0:
            raise AssertionError(f"diffserv run failed ({done.returncode}): {done.stderr.strip()}")
        seen.append(decode(read_pcap(marked)))
    low, high = seen
    out: dict[int, Expected] = {}
    for p in packets:
        a, b = low.get(p.pid), high.get(p.pid)
        if a is None or b is None:
            assert a is None and b is None, f"packet {p.pid} dropped in one oracle run only"
            out[p.pid] = Expected(True)
            continue
        assert a.ds == b.ds, f"packet {p.pid}: the oracle's DS depends on the PCP"
        out[p.pid] = Expected(False, a.ds, None if (a.pcp, b.pcp) == (0, 7) else a.pcp)
    return out


def expected_ttl(e: Expected) -> int:
    """The TTL the probe leaves on a packet the oracle marked as ``e``."""
    return TTL_UNSET if e.pcp is None else TTL_BASE + e.pcp


def differences(
    packets: Sequence[PacketSpec], expected: dict[int, Expected], arrived: dict[int, Seen]
) -> list[str]:
    """One line per packet whose fate on the wire differs from the oracle's."""
    out = []
    for p in packets:
        e, got = expected[p.pid], arrived.get(p.pid)
        what = (
            f"packet {p.pid} (v{p.family} {p.src} -> {p.dst} proto {p.proto} "
            f"{p.sport}->{p.dport} ds {p.tos:#04x})"
        )
        if e.dropped:
            if got is not None:
                out.append(f"{what}: oracle drops it, it arrived with ds {got.ds:#04x}")
            continue
        if got is None:
            out.append(f"{what}: lost (oracle: ds {e.ds:#04x})")
            continue
        if got.ds != e.ds:
            out.append(f"{what}: ds {got.ds:#04x}, oracle {e.ds:#04x}")
        if got.ttl != expected_ttl(e):
            want = "not set" if e.pcp is None else str(e.pcp)
            out.append(f"{what}: priority probe ttl {got.ttl}, oracle priority {want}")
    return out


# ---------------------------------------------------------------- the wire


class Wire:
    """sender -- router -- receiver namespaces; the router forwards everything to the
    receiver (default routes), accepts any source (no reverse-path filter) and carries
    the priority probe. Close it (``close``) whatever happens."""

    def __init__(self) -> None:
        self.nft = require_tool("nft")
        self.topo: Topology = topology(["snd", "rtr", "rcv"])
        try:
            rtr = self.topo["rtr"]
            for key in ("all", "default", "veth1b", "veth2a"):
                rtr.run(["sysctl", "-q", "-w", f"net.ipv4.conf.{key}.rp_filter=0"])
            rtr.run(["ip", "route", "add", "default", "via", self.topo.links[1].v4["rcv"]])
            rtr.run(["ip", "-6", "route", "add", "default", "via", self.topo.links[1].v6["rcv"]])
            self.src_mac = _mac(self.topo["snd"], "veth1a")
            self.dst_mac = _mac(rtr, "veth1b")
            self.reset()
        except BaseException:
            self.topo.close()
            raise

    def close(self) -> None:
        self.topo.close()

    def reset(self) -> None:
        """Nothing but the probe in the router (iptables-nft's tables go too)."""
        rtr = self.topo["rtr"]
        rtr.run([self.nft, "flush", "ruleset"])
        rtr.run([self.nft, "-f", "-"], input=PROBE)

    def load_nft(self, script: Path) -> None:
        self.topo["rtr"].run([self.nft, "-f", str(script)], timeout=120)

    def load_iptables(self, v4: Path, v6: Path) -> None:
        rtr = self.topo["rtr"]
        rtr.run([require_tool("iptables-restore"), str(v4)], timeout=120)
        rtr.run([require_tool("ip6tables-restore"), str(v6)], timeout=120)

    def exchange(self, packets: Sequence[PacketSpec], work: Path) -> dict[int, Seen]:
        """Send ``packets`` from the sender; what the receiver got, by id."""
        wire = work / "wire.pcap"
        write_pcap(wire, (frame(p, self.dst_mac, self.src_mac) for p in packets))
        got = work / "arrived.pcap"
        capture = start_traffic(self.topo["rcv"], "capture", "veth2b", str(got))
        sender = Path(__file__).with_name("pcap_io.py")
        done = self.topo["snd"].run(
            [sys.executable, str(sender), "send", "veth1a", str(wire)], env=env(), timeout=120
        )
        assert f'"sent": {len(packets)}' in done.stdout, done.stdout
        time.sleep(0.2)  # what is in flight lands
        capture.send_signal(signal.SIGTERM)
        result(capture)
        return decode(read_pcap(got))


def _mac(ns: Namespace, ifname: str) -> bytes:
    words = ns.run(["ip", "-o", "link", "show", ifname]).stdout.split()
    return bytes.fromhex(words[words.index("link/ether") + 1].replace(":", ""))


# ---------------------------------------------------------------- broken copies


def break_ecn(text: str, backend: str) -> str:
    """The compiled ruleset with the classic marking mistake: the whole DS byte written,
    so the ECN bits are wiped (nft: an ``ip ecn set not-ect`` after each DSCP write;
    iptables: the TOS target with a full mask instead of DSCP)."""
    if backend == "nft":
        text = re.sub(r"(\bip dscp set \S+)", r"\1 ip ecn set not-ect", text)
        return re.sub(r"(\bip6 dscp set \S+)", r"\1 ip6 ecn set not-ect", text)
    return re.sub(
        r"-j DSCP --set-dscp (0x[0-9a-f]+)",
        lambda m: f"-j TOS --set-tos {int(m.group(1), 16) << 2:#04x}/0xff",
        text,
    )


def break_ranking(text: str, backend: str) -> str:
    """The compiled ruleset with its classifying rules in reverse order (each hook's
    chain keeps its default at the end): what a compiler ignoring priority, precedence
    and file order could produce."""
    lines = text.splitlines()
    if backend == "nft":
        out, block, inside = [], [], False
        for line in lines:
            if re.match(r"\tchain (forward|output|input)_v[46] \{$", line):
                inside, block = True, []
                out.append(line)
            elif inside and line.strip() == "}":
                ranked = [b for b in block if "comment" in b and "default class" not in b]
                rest = [b for b in block if b not in ranked]
                out.extend(ranked[::-1] + rest + [line])
                inside = False
            elif inside:
                block.append(line)
            else:
                out.append(line)
        return "\n".join(out) + "\n"
    chain = "-A DSC-forward "
    ranked = [
        i
        for i, line in enumerate(lines)
        if line.startswith(chain) and "--comment" in line and "default" not in line
    ]
    for i, j in zip(ranked, reversed(ranked), strict=True):
        if i >= j:
            break
        lines[i], lines[j] = lines[j], lines[i]
    return "\n".join(lines) + "\n"
