"""Bytes on the wire through a compiled ruleset: sender -> router (the ruleset) -> receiver.

The receiver reads the TOS / traffic class of every datagram it gets, so these tests see
the DS byte the kernel wrote: the class's DSCP, the ECN bits as sent, for IPv4 and IPv6
(the IPv6 dsfield match is a set of admitted values, never a masked compare). A hybrid
ruleset that marks packets for the daemon must have set the mark before the companion
iptables rule looks, which its packet counter shows.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import compile_policies as cp
import pytest
from compile_policies import compile_to

from support.live_daemon import result, start_traffic
from support.netns import Topology, namespaces
from support.tools import require_tool


@pytest.fixture
def topo() -> Iterator[Topology]:
    require_tool("nft")
    with namespaces(["snd", "rtr", "rcv"]) as t:
        yield t


def _send(topo: Topology, dst: str, port: int, tos: int, *, count: int, size: int) -> None:
    sender = start_traffic(
        topo["snd"], "udp-send", dst, str(port), str(count), "--tos", str(tos), "--size", str(size)
    )
    assert result(sender)["sent"] == count


def _received(
    topo: Topology, addr: str, port: int, sends: list[tuple[int, int]], size: int = 100
) -> dict[int, int]:
    """TOS -> count at the receiver, for (destination port, sent TOS) pairs to ``addr``."""
    sink = start_traffic(topo["rcv"], "udp-sink", addr, str(port), "1.0")
    for tos, count in sends:
        _send(topo, addr, port, tos, count=count, size=size)
    doc = result(sink)
    return {int(k): v for k, v in doc["tos"].items()}


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_forwarded_packets_are_marked_ecn_kept(tmp_path: Path, topo: Topology, fmt: str) -> None:
    rules = compile_to(tmp_path, cp.mixed(), "--format", fmt)
    topo["rtr"].run(["nft", *(["-j"] if fmt == "json" else []), "-f", str(rules)])
    v4, v6 = topo.address("rcv", 4), topo.address("rcv", 6)
    # voice: EF whatever came in, ECN bits kept
    assert _received(topo, v4, 5004, [(0x01, 3), (0x03, 2)]) == {0xB9: 3, 0xBB: 2}
    assert _received(topo, v6, 5004, [(0x02, 4)]) == {0xBA: 4}
    # fragments have no ports for ipgpc (nor, in IPv6, their protocol): not voice
    assert _received(topo, v6, 5004, [(0x02, 2)], size=3000) == {0x02: 2}
    # IPv4 from 10.99.1.0/24 (filter lan, precedence 5) outranks the dsfield filters: CS1
    assert _received(topo, v4, 7000, [(0x29, 2), (0x03, 2), (0x00, 1)]) == {
        0x21: 2,
        0x23: 2,
        0x20: 1,
    }
    # IPv6: AF11 in (dsfield 0x28/0xfc, ECT(1) set) -> markAF maps 10 to 12; CE only
    # (dsfield 0x03/0x03) -> CS1; the rest is the default class, unchanged
    assert _received(topo, v6, 7000, [(0x29, 2), (0x2B, 1), (0x03, 2), (0x00, 1)]) == {
        0x31: 2,
        0x33: 1,
        0x23: 2,
        0x00: 1,
    }


def test_hybrid_mark_reaches_the_companion_rule_first(tmp_path: Path, topo: Topology) -> None:
    restore = require_tool("iptables-restore")
    policy = (
        cp.HEAD
        + cp.ipgpc(
            [("acct", "acct"), ("default", "continue")],
            [{"name": "counted", "class": "acct", "dport": 5004}],
        )
        + cp.flowacct("acct")
    )
    rules = compile_to(tmp_path, policy, "--hybrid", "--queue-via", "mark", "--queue", "7")
    companion = Path(str(rules) + ".iptables")
    router = topo["rtr"]
    router.run(["nft", "-f", str(rules)])
    router.run([restore, "--noflush", str(companion)])
    v4 = topo.address("rcv", 4)
    # no daemon is bound to queue 7: --queue-bypass lets the packets through
    assert _received(topo, v4, 5004, [(0, 6)]) == {0: 6}
    assert _received(topo, v4, 7000, [(0, 4)]) == {0: 4}
    listing = router.run(
        [require_tool("iptables"), "-t", "mangle", "-L", "DIFFSERV-NFTQ", "-v", "-x", "-n"]
    ).stdout
    (queued,) = (
        int(line.split()[0]) for line in listing.splitlines() if re.search(r"NFQUEUE", line)
    )
    assert queued == 6  # exactly the class that needs the daemon, marked before mangle


def test_approximate_meter_is_the_stated_bucket(tmp_path: Path, topo: Topology) -> None:
    # tokenmt: 8000 bit/s, 8000 bit burst -> limit over 1000 bytes/second burst 1000
    # bytes, whose bucket holds 1000 x 1 s + 1000 = 2000 bytes (tokenmt's: 1000)
    policy = (
        cp.HEAD
        + cp.ipgpc(
            [("a", "police"), ("default", "continue")],
            [{"name": "metered", "class": "a", "dport": 5004}],
        )
        + cp.tokenmt("police", 8000, 8000, "green", "red")
        + cp.dscpmk("green", "0-63:46")
        + cp.dscpmk("red", "0-63:8")
    )
    rules = compile_to(tmp_path, policy)
    assert "bucket holds rate x 1 s + burst = 2000 bytes where tokenmt's holds 1000" in (
        rules.read_text()
    )
    topo["rtr"].run(["nft", "-f", str(rules)])
    # 40 datagrams of 128 IP bytes at once: 2000 // 128 = 15 fit the bucket (plus what
    # refills at 1000 bytes/s while they are sent)
    got = _received(topo, topo.address("rcv", 4), 5004, [(0, 40)])
    assert sum(got.values()) == 40
    assert 15 <= got.get(0xB8, 0) <= 17, got
    assert got.get(0x20, 0) == 40 - got.get(0xB8, 0)
