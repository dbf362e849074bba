"""A metered class sent above its rate gets the colour shares its token buckets allow.

srTCM (RFC 2697, tokenmt without peak_rate): at a steady overload the committed bucket
passes CBS plus CIR x duration as green, the excess bucket its EBS once as yellow, the
rest is red. The colours are DSCPs (AF11 / AF12 / AF13) counted by the receiver; the
expectation uses the sender's own measured duration, within 4 percentage points.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from support import netns
from support.live_daemon import Daemon, result, start_traffic

pytestmark = pytest.mark.tools

CIR = 800_000  # bit/s
CBS = 80_000  # bit: 10 packets of 1000 bytes
EBS = 80_000
PACKET_BITS = 1000 * 8  # 972-byte payloads: 1000-byte IPv4 datagrams
COUNT, PPS = 600, 300  # 2.4 Mbit/s offered for 2 s: three times CIR

POLICY = f"""fmt_version 1.0

action {{
	module ipgpc
	name ipgpc.classify
	class {{
		name metered
		next_action meter
	}}
	filter {{
		name metered
		class metered
		dport 5007
	}}
}}
action {{
	module tokenmt
	name meter
	params {{
		committed_rate {CIR}
		committed_burst {CBS}
		peak_burst {EBS}
		green_action_name green
		yellow_action_name yellow
		red_action_name red
	}}
}}
action {{
	module dscpmk
	name green
	params {{
		dscp_map {{0-63:10}}
		next_action continue
	}}
}}
action {{
	module dscpmk
	name yellow
	params {{
		dscp_map {{0-63:12}}
		next_action continue
	}}
}}
action {{
	module dscpmk
	name red
	params {{
		dscp_map {{0-63:14}}
		next_action continue
	}}
}}
"""


@pytest.fixture
def topo() -> Iterator[netns.Topology]:
    with netns.namespaces(["snd", "rtr", "rcv"]) as t:
        yield t


def test_colour_shares_follow_the_buckets(topo: netns.Topology, tmp_path: Path) -> None:
    policy = tmp_path / "meter.conf"
    policy.write_text(POLICY)
    daemon = Daemon(topo["rtr"], policy)
    sink = start_traffic(topo["rcv"], "udp-sink", "10.99.2.2", "5007", "1.0")
    sender = start_traffic(
        topo["snd"], "udp-send", "10.99.2.2", "5007", str(COUNT), "--pps", str(PPS), "--size", "972"
    )
    sent, got = result(sender), result(sink)
    assert daemon.stop() == 0, daemon.stderr
    assert got["received"] == COUNT == sent["sent"]
    tos = {int(k) >> 2: v for k, v in got["tos"].items()}
    green, yellow, red = tos.get(10, 0), tos.get(12, 0), tos.get(14, 0)
    assert green + yellow + red == COUNT, tos
    expected_green = min(COUNT, (CBS + CIR * sent["seconds"]) / PACKET_BITS)
    expected_yellow = EBS / PACKET_BITS
    assert abs(green - expected_green) / COUNT < 0.04, (tos, expected_green)
    assert abs(yellow - expected_yellow) / COUNT < 0.04, (tos, expected_yellow)
    assert red > COUNT / 2  # three times the rate: most of it is over
