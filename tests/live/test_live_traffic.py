"""Real traffic through ``diffserv live`` in a router namespace, judged where it arrives.

sender ns --veth1-- router ns (diffserv live, rules) --veth2-- receiver ns (tshark)

Every packet the receiver captured is checked by tshark: DSCP as the policy says, the
sender's ECN bits kept, IPv4 header and UDP/TCP checksums good. Drops are counted on
both sides, the flow records match what was sent, the callout positions follow the
hooks, a ``user`` filter matches a process of another uid, and a clean exit leaves the
firewall exactly as it was.
"""

from __future__ import annotations

import signal
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from diffserv.flows.store_read import read_store
from support import netns
from support.live_daemon import (
    Capture,
    Daemon,
    all_rules,
    checksums_good,
    env,
    packet_view,
    result,
    start_traffic,
    traffic,
)

pytestmark = pytest.mark.tools

EF, AF11, CS5, CS1 = 46, 10, 40, 8
ECT0 = 2
STAFF_UID = 1234

POLICY = """fmt_version 1.0

action {
	module ipgpc
	name ipgpc.classify
	class {
		name voice
		next_action markEF
	}
	class {
		name bulk
		next_action markAF11
	}
	class {
		name junk
		next_action drop
	}
	class {
		name staff
		next_action markCS5
	}
	class {
		name arriving
		next_action acct
	}
	class {
		name leaving
		next_action markCS1
	}
	filter {
		name voice
		class voice
		protocol udp
		dport 5001
		direction FWD_OUT
	}
	filter {
		name bulk
		class bulk
		protocol tcp
		dport 5002
		direction FWD_OUT
	}
	filter {
		name junk
		class junk
		protocol udp
		dport 5003
	}
	filter {
		name staff
		class staff
		user 1234
		priority 1
	}
	filter {
		name arriving
		class arriving
		dport 5005
		direction LOCAL_IN
	}
	filter {
		name leaving
		class leaving
		dport 5006
		direction LOCAL_OUT
	}
}
action {
	module dscpmk
	name markEF
	params {
		dscp_map {0-63:46}
		next_action acct
	}
}
action {
	module dscpmk
	name markAF11
	params {
		dscp_map {0-63:10}
		next_action acct
	}
}
action {
	module dscpmk
	name markCS5
	params {
		dscp_map {0-63:40}
		next_action acct
	}
}
action {
	module dscpmk
	name markCS1
	params {
		dscp_map {0-63:8}
		next_action acct
	}
}
action {
	module flowacct
	name acct
	params {
		timer 100
		timeout 200
		max_limit 1000
		next_action continue
	}
}
"""


@pytest.fixture(scope="module")
def topo() -> Iterator[netns.Topology]:
    with netns.namespaces(["snd", "rtr", "rcv"]) as t:
        yield t


@pytest.fixture
def policy(tmp_path: Path) -> Path:
    path = tmp_path / "live.conf"
    path.write_text(POLICY)
    return path


def test_forwarded_udp_and_tcp_are_marked_ecn_kept_checksums_good(
    topo: netns.Topology, policy: Path, tmp_path: Path
) -> None:
    snd, rtr, rcv = topo["snd"], topo["rtr"], topo["rcv"]
    # an unrelated rule of the host's own: the daemon must leave it exactly as it was
    rtr.run(
        ["iptables", "-t", "mangle", "-A", "OUTPUT", "-p", "udp", "--dport", "9", "-j", "ACCEPT"]
    )
    before = all_rules(rtr)
    flows = tmp_path / "flows"
    capture = Capture(rcv, "veth2b", tmp_path / "rcv.pcapng")
    daemon = Daemon(rtr, policy, "--flows", f"{flows}/", stats=tmp_path / "stats.json")
    sinks = [
        start_traffic(rcv, "udp-sink", "10.99.2.2", "5001", "1.0"),
        start_traffic(rcv, "udp-sink", "fd99:2::2", "5001", "1.0"),
        start_traffic(rcv, "udp-sink", "10.99.2.2", "5003", "1.0"),
        start_traffic(rcv, "tcp-sink", "10.99.2.2", "5002", "1.0"),
        start_traffic(rcv, "tcp-sink", "fd99:2::2", "5002", "1.0"),
    ]
    sent = {
        "udp4": traffic(
            snd, "udp-send", "10.99.2.2", "5001", "300", "--tos", str(ECT0), "--sport", "41001"
        ),
        "udp6": traffic(
            snd, "udp-send", "fd99:2::2", "5001", "300", "--tos", str(ECT0), "--sport", "41001"
        ),
        "junk": traffic(snd, "udp-send", "10.99.2.2", "5003", "100", "--sport", "41003"),
        "tcp4": traffic(snd, "tcp-send", "10.99.2.2", "5002", "300000"),
        "tcp6": traffic(snd, "tcp-send", "fd99:2::2", "5002", "300000"),
    }
    got = [result(s) for s in sinks]
    rows = capture.stop()
    assert daemon.stop(signal.SIGTERM) == 0, daemon.stderr
    # the firewall is exactly as before: our chains and jumps gone, the host's rule kept
    assert all_rules(rtr) == before
    rtr.run(
        ["iptables", "-t", "mangle", "-D", "OUTPUT", "-p", "udp", "--dport", "9", "-j", "ACCEPT"]
    )

    # what arrived, counted by the receiving sockets: everything but the dropped class
    assert got[0] == {"received": 300, "tos": {str(EF << 2 | ECT0): 300}}
    assert got[1] == {"received": 300, "tos": {str(EF << 2 | ECT0): 300}}
    assert got[2] == {"received": 0, "tos": {}}
    assert got[3]["connections"] == [300000] and got[4]["connections"] == [300000]
    assert all(s["sent"] for s in sent.values())

    # every captured packet: checksums good, DSCP as classified, ECN as sent
    bad = [r for r in rows if not checksums_good(r)]
    assert rows and not bad, bad[:3]
    seen = Counter(packet_view(row) for row in rows)
    assert seen[(4, EF, ECT0, "udp/5001")] == 300
    assert seen[(6, EF, ECT0, "udp/5001")] == 300
    assert not any(port == "udp/5003" for (_f, _d, _e, port) in seen)
    tcp_data = [
        packet_view(r) for r in rows if r["tcp.dstport"] == "5002" and r["tcp.len"] not in ("", "0")
    ]
    assert tcp_data and {(f, d) for f, d, _e, _p in tcp_data} == {(4, AF11), (6, AF11)}

    stats = daemon.stats()
    assert stats["classes"]["junk"]["packets"] == 100
    assert stats["outcomes"]["drop"]["packets"] == 100  # dropped: counted by the daemon too
    assert stats["classes"]["voice"]["packets"] == 600

    # flowacct wrote every flow to the store as it expired: packets and bytes as sent
    table = read_store(str(flows)).select(["sport", "dport", "packets", "bytes", "ds_in"])
    table = table.to_pylist()
    voice = [r for r in table if r["dport"] == 5001 and r["sport"] == 41001]
    assert sorted(r["packets"] for r in voice) == [300, 300]
    assert {r["bytes"] for r in voice} == {300 * (20 + 8 + 100), 300 * (40 + 8 + 100)}
    assert {r["ds_in"] for r in voice} == {EF << 2 | ECT0}  # as flowacct saw it: marked


def test_user_filter_and_callout_positions(
    topo: netns.Topology, policy: Path, tmp_path: Path
) -> None:
    """Traffic the router itself sends as uid 1234 matches ``user 1234`` (uid is known only
    for local sockets); INPUT is LOCAL_IN, OUTPUT LOCAL_OUT, FORWARD FWD_OUT."""
    snd, rtr, rcv = topo["snd"], topo["rtr"], topo["rcv"]
    daemon = Daemon(rtr, policy, stats=tmp_path / "stats.json")
    staff_sink = start_traffic(rcv, "udp-sink", "10.99.2.2", "5004", "1.0")
    root_sink = start_traffic(rcv, "udp-sink", "10.99.2.2", "5006", "1.0")
    in_sink = start_traffic(rtr, "udp-sink", "10.99.1.2", "5005", "1.0")
    traffic(rtr, "udp-send", "10.99.2.2", "5004", "50", user=STAFF_UID)
    traffic(rtr, "udp-send", "10.99.2.2", "5006", "40")  # as root: not staff
    traffic(snd, "udp-send", "10.99.1.2", "5005", "30")
    staff, root, arriving = result(staff_sink), result(root_sink), result(in_sink)
    assert daemon.stop() == 0, daemon.stderr
    assert staff == {"received": 50, "tos": {str(CS5 << 2): 50}}
    assert root == {"received": 40, "tos": {str(CS1 << 2): 40}}  # LOCAL_OUT class
    assert arriving["received"] == 30
    classes = daemon.stats()["classes"]
    assert classes["staff"]["packets"] == 50
    assert classes["leaving"]["packets"] == 40
    assert classes["arriving"]["packets"] == 30  # LOCAL_IN class


COS_POLICY = """fmt_version 1.0

action {
	module ipgpc
	name ipgpc.classify
	class {
		name video
		next_action cos5
	}
	filter {
		name video
		class video
		dport 5008
	}
}
action {
	module dlcosmk
	name cos5
	params {
		cos 5
		next_action continue
	}
}
"""


def test_dlcosmk_sets_the_packet_priority(topo: netns.Topology, tmp_path: Path) -> None:
    """The verdict's NFQA_PRIORITY reaches skb->priority (what a VLAN egress-qos-map turns
    into the PCP): an nft counter after the queue, in the router, counts priority 0:5."""
    rtr = topo["rtr"]
    policy = tmp_path / "cos.conf"
    policy.write_text(COS_POLICY)
    nft = "nft"
    rtr.run([nft, "add", "table", "inet", "probe"])
    try:
        rtr.run(
            [nft, "add", "chain", "inet", "probe", "post",
             "{ type filter hook postrouting priority 0 ; }"]
        )  # fmt: skip
        for prio in ("0:5", "0:0"):
            rtr.run([nft, "add", "rule", "inet", "probe", "post", "udp", "dport", "{ 5008, 5009 }",
                     "meta", "priority", prio, "counter"])  # fmt: skip
        daemon = Daemon(rtr, policy)
        traffic(topo["snd"], "udp-send", "10.99.2.2", "5008", "40")
        traffic(topo["snd"], "udp-send", "fd99:2::2", "5008", "30")
        traffic(topo["snd"], "udp-send", "10.99.2.2", "5009", "20")  # not classified: no CoS
        assert daemon.stop() == 0, daemon.stderr
        listing = rtr.run([nft, "list", "chain", "inet", "probe", "post"]).stdout
    finally:
        rtr.run([nft, "delete", "table", "inet", "probe"], check=False)
    counts = {}
    for line in listing.splitlines():
        if "meta priority" in line and "packets" in line:
            words = line.split()
            counts[words[words.index("priority") + 1]] = int(words[words.index("packets") + 1])
    assert counts in ({"0:5": 70, "none": 20}, {"0:5": 70, "0:0": 20}), listing


def test_flows_are_exported_as_they_expire(
    topo: netns.Topology, policy: Path, tmp_path: Path
) -> None:
    """--export: IPFIX messages reach a collector while the daemon runs (flowacct's
    200 ms timeout on real time), not only at exit."""
    rtr = topo["rtr"]
    collector = start_traffic(rtr, "udp-sink", "127.0.0.1", "4739", "2.5")
    daemon = Daemon(rtr, policy, "--export", "ipfix://127.0.0.1:4739")
    traffic(topo["snd"], "udp-send", "10.99.2.2", "5001", "20")
    time.sleep(1.0)  # a quiet queue: the expiry runs on the daemon's idle wake-ups
    daemon.kill()  # no exit flush: whatever the collector has came while running
    rtr.run(
        [sys.executable, "-c", "from diffserv.live.rules import remove_leftovers as r; r()"],
        env=env(),
    )
    got = result(collector)
    assert got["received"] >= 1
