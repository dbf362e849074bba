"""Never black-holed: a daemon killed with SIGKILL mid-stream leaves traffic flowing.

Its rules stay behind (nothing ran to remove them) but are bypassed, since no program is
bound to the queue any more; ``remove_leftovers`` then removes all of them.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from support import netns
from support.live_daemon import Daemon, env, mangle_rules, result, start_traffic

pytestmark = pytest.mark.tools

POLICY = """fmt_version 1.0

action {
	module ipgpc
	name ipgpc.classify
	class {
		name voice
		next_action markEF
	}
	filter {
		name voice
		class voice
		dport 5001
	}
}
action {
	module dscpmk
	name markEF
	params {
		dscp_map {0-63:46}
		next_action continue
	}
}
"""


@pytest.fixture
def topo() -> Iterator[netns.Topology]:
    with netns.namespaces(["snd", "rtr", "rcv"]) as t:
        yield t


def test_sigkill_mid_stream_fails_open_and_leftovers_are_removed(
    topo: netns.Topology, tmp_path: Path
) -> None:
    snd, rtr, rcv = topo["snd"], topo["rtr"], topo["rcv"]
    policy = tmp_path / "ef.conf"
    policy.write_text(POLICY)
    daemon = Daemon(rtr, policy)
    sink = start_traffic(rcv, "udp-sink", "10.99.2.2", "5001", "1.5")
    sender = start_traffic(snd, "udp-send", "10.99.2.2", "5001", "1500", "--pps", "1000")
    time.sleep(0.5)
    daemon.kill()  # SIGKILL: no handler runs, nothing is cleaned up
    sent, got = result(sender), result(sink)

    # before the kill the packets were marked; after it they pass unmarked (bypass)
    assert sent["sent"] == 1500
    marked, plain = got["tos"].get(str(46 << 2), 0), got["tos"].get("0", 0)
    assert marked > 100 and plain > 500, got
    # at most the packets queued at the instant of the kill are lost
    assert got["received"] >= 1500 - 64, got

    rules = mangle_rules(rtr)
    assert rules.count("NFQUEUE --queue-num 0 --queue-bypass") == 6  # 3 chains x 2 families
    done = rtr.run(
        [sys.executable, "-c", "from diffserv.live.rules import remove_leftovers as r; print(r())"],
        env=env(),
    )
    assert done.stdout.strip() == "12"  # 6 chains and 6 jumps
    assert "DIFFSERV" not in mangle_rules(rtr)
