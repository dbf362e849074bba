"""End to end: ipqosconf drives a real `diffserv live` in a router namespace.

sender — router — receiver namespaces (``support.netns``); ipqosconf runs inside the
router's namespace, so the daemon it starts, and every queue rule, live there. UDP to port
5004 is marked EF by the first policy, AF41 after a swap; the receiver reads the DS byte of
each datagram; `diffserv stat` counts them; ipqosconf -l / -c / -f work on the daemon.
Skipped (with the reason) while the data plane (`diffserv live`) is not part of the build.
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path
from typing import Any

import pytest

from diffserv.cli.main import COMMAND_MODULES

if "live" not in COMMAND_MODULES:
    pytest.skip("the data plane (`diffserv live`) is not in this build", allow_module_level=True)
netns = pytest.importorskip("support.netns", reason="tests/support/netns.py is not present")
from support.ipqosconf_router import Router, exchange  # noqa: E402

COUNT = 40

POLICY = """fmt_version 1.0

action {
	module ipgpc
	name ipgpc.classify

	class {
		name voice
		next_action mark
	}

	filter {
		name rtp
		class voice
		protocol udp
		dport 5004
	}
}

action {
	module dscpmk
	name mark

	params {
		dscp_map {
			0-63:46
		}
		next_action continue
	}
}
"""


def test_ipqosconf_applies_swaps_lists_commits_and_flushes(
    net: Any, router: Router, tmp_path: Path
) -> None:
    first = tmp_path / "ef.conf"
    first.write_text(POLICY)
    done = router.ipqosconf("-v", "-a", str(first))
    assert done.returncode == 0, done.stderr
    assert "Notice: IPQoS configuration applied." in done.stderr
    assert exchange(net, COUNT) == [46 << 2] * COUNT
    stats = router.stat()
    assert stats["actions"]["mark"]["counters"]["npackets"] >= COUNT

    second = tmp_path / "af.conf"
    second.write_text(POLICY.replace("0-63:46", "0-63:34"))
    done = router.ipqosconf("-a", str(second))
    assert done.returncode == 0, done.stderr
    assert router.stat()["actions"]["ipgpc.classify"]["counters"]["npackets"] >= COUNT  # kept
    assert exchange(net, COUNT) == [34 << 2] * COUNT

    listed = router.ipqosconf("-l")
    assert "0-63:34" in listed.stdout
    assert router.ipqosconf("-c").returncode == 0
    assert Path(router.env["IPQOSCONF_INIT_FILE"]).read_text() == listed.stdout

    assert router.ipqosconf("-f").returncode == 0
    assert router.ipqosconf("-l").stdout == ""
    saved = router.ns.run(["iptables-save", "-t", "mangle"]).stdout
    assert "diffserv" not in saved.lower()
    assert exchange(net, 5) == [0] * 5  # nothing queues or marks any more


def test_after_a_sigkill_flush_cleans_up_and_apply_starts_afresh(
    net: Any, router: Router, tmp_path: Path
) -> None:
    """A killed daemon leaves a stale socket and its queue rules (bypassed, so traffic
    still flows); ipqosconf -f removes the rules, and -a replaces the stale socket."""
    policy = tmp_path / "ef.conf"
    policy.write_text(POLICY)
    assert router.ipqosconf("-a", str(policy)).returncode == 0
    ping = [
        sys.executable,
        "-c",
        "import sys; from diffserv.live.control import request; "
        "print(request(sys.argv[1], {'op': 'ping'})['pid'])",
        router.sock,
    ]
    pid = int(router.ns.run(ping, env=router.env).stdout)
    os.kill(pid, signal.SIGKILL)
    assert os.path.exists(router.sock)  # stale: nobody answers on it
    assert exchange(net, 5) == [0] * 5  # --queue-bypass: unmarked, but delivered
    assert router.ipqosconf("-l").stdout == ""
    assert router.ipqosconf("-f").returncode == 0
    assert "diffserv" not in router.ns.run(["iptables-save", "-t", "mangle"]).stdout.lower()
    again = router.ipqosconf("-a", str(policy))
    assert again.returncode == 0, again.stderr
    assert exchange(net, 5) == [46 << 2] * 5
