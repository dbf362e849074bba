"""ipqosconf --engine: the same transaction through the compiled nftables table.

sender — router — receiver namespaces; ipqosconf runs in the router. ``nft`` puts the
whole policy in the kernel (no daemon, no queue rules); ``auto`` keeps what the kernel
runs exactly there and hands the rest to the daemon, which then queues only the packets
the table marked for it (this kernel has no nft ``queue``, so the hybrid queues through
an iptables mark match). What each part did is read from the wire (the DS byte the
receiver gets) and from the daemon's own counters (it never sees the kernel's packets).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from support.ipqosconf_router import SRC, Router, exchange

pytestmark = pytest.mark.tools

COUNT = 20
EF, AF11 = 46 << 2, 10 << 2

VOICE = """fmt_version 1.0
action {
	module ipgpc
	name ipgpc.classify
	class {
		name voice
		next_action voice_mark
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
	name voice_mark
	params {
		dscp_map {
			0-63:46
		}
		next_action continue
	}
}
"""

# VOICE plus a class the kernel cannot run: accounted by flowacct, then marked AF11
HYBRID = (
    VOICE.replace(
        """	filter {
		name rtp""",
        """	class {
		name bulk
		next_action acct
	}
	filter {
		name bulk
		class bulk
		protocol udp
		dport 5005
	}
	filter {
		name rtp""",
    )
    + """action {
	module flowacct
	name acct
	params {
		timer 100
		timeout 200
		max_limit 1000
		next_action bulk_mark
	}
}
action {
	module dscpmk
	name bulk_mark
	params {
		dscp_map {
			0-63:10
		}
		next_action continue
	}
}
"""
)


def _policy(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def _table(router: Router) -> str:
    done = router.ns.run(["nft", "list", "table", "inet", "diffserv"], check=False)
    return done.stdout if done.returncode == 0 else ""


def _mangle(router: Router) -> str:
    return "".join(
        router.ns.run([tool, "-t", "mangle"]).stdout for tool in ("iptables-save", "ip6tables-save")
    )


def _daemon_packets(router: Router, action: str) -> int:
    counters: dict[str, int] = router.stat()["actions"][action]["counters"]
    return counters["npackets"]


def test_nft_engine_runs_the_policy_in_the_kernel_alone(
    router: Router, net: Any, tmp_path: Path
) -> None:
    done = router.ipqosconf("-v", "--engine", "nft", "-a", _policy(tmp_path, "v.conf", VOICE))
    assert done.returncode == 0, done.stderr
    assert "Notice: IPQoS configuration applied." in done.stderr
    assert "dscp set" in _table(router)
    assert "DIFFSERV" not in _mangle(router)  # nothing queued: no daemon in the path
    assert (
        router.ns.run(
            [sys.executable, "-m", "diffserv", "stat", "--stats-socket", router.sock],
            check=False,
            env=router.env,
        ).returncode
        != 0
    )
    assert exchange(net, COUNT) == [EF] * COUNT
    assert exchange(net, 5, port=5005) == [0] * 5

    listed = router.ipqosconf("-l")
    assert "0-63:46" in listed.stdout and "dport 5004" in listed.stdout
    assert "statistics: none" in router.ipqosconf("-L").stdout
    assert router.ipqosconf("-c").returncode == 0
    assert Path(router.env["IPQOSCONF_INIT_FILE"]).read_text() == listed.stdout

    flushed = router.ipqosconf("-f")
    assert flushed.returncode == 0, flushed.stderr
    assert _table(router) == ""
    assert router.ipqosconf("-l").stdout == ""
    assert exchange(net, 5) == [0] * 5


def test_nft_engine_refuses_what_only_the_daemon_runs(router: Router, tmp_path: Path) -> None:
    done = router.ipqosconf("--engine", "nft", "-a", _policy(tmp_path, "h.conf", HYBRID))
    assert done.returncode == 1
    assert "action acct (flowacct) needs the daemon" in done.stderr
    assert "Error: Configuration failed, system state unchanged." in done.stderr
    assert _table(router) == "" and "DIFFSERV" not in _mangle(router)


def test_auto_splits_the_policy_between_kernel_and_daemon(
    router: Router, net: Any, tmp_path: Path
) -> None:
    done = router.ipqosconf("--engine", "auto", "-a", _policy(tmp_path, "h.conf", HYBRID))
    assert done.returncode == 0, done.stderr
    assert _table(router) != ""
    assert "--mark 0x10000000/0x10000000 -j NFQUEUE" in _mangle(router)
    assert exchange(net, COUNT) == [EF] * COUNT  # the kernel's class
    assert exchange(net, COUNT, port=5005) == [AF11] * COUNT  # the daemon's
    # the daemon saw only its own class's packets: the voice class never reached it
    assert _daemon_packets(router, "acct") == COUNT
    assert _daemon_packets(router, "voice_mark") == 0
    assert "flowacct" in router.ipqosconf("-L").stdout

    # back to the kernel alone: the daemon and its queue rules go, the table stays
    again = router.ipqosconf("--engine", "auto", "-a", _policy(tmp_path, "v.conf", VOICE))
    assert again.returncode == 0, again.stderr
    assert "DIFFSERV" not in _mangle(router)
    assert exchange(net, COUNT) == [EF] * COUNT
    assert exchange(net, 5, port=5005) == [0] * 5


def test_a_failed_apply_puts_the_kernel_configuration_back(
    router: Router, net: Any, tmp_path: Path
) -> None:
    """The hybrid's daemon cannot bind queue 0 (another program holds it): the table the
    transaction had loaded is replaced by the previous one again."""
    assert (
        router.ipqosconf("--engine", "nft", "-a", _policy(tmp_path, "v.conf", VOICE)).returncode
        == 0
    )
    before = _table(router)
    holder = router.ns.popen(
        [
            sys.executable,
            "-c",
            "import sys, time\n"
            "from diffserv.live.netlink import QueueSocket\n"
            "q = QueueSocket(0)\nprint('bound', flush=True)\ntime.sleep(60)\n",
        ],
        stdout=subprocess.PIPE,
        text=True,
        env={**router.env, "PYTHONPATH": SRC},
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "bound"
        done = router.ipqosconf("--engine", "auto", "-a", _policy(tmp_path, "h.conf", HYBRID))
    finally:
        holder.kill()
        holder.wait()
    assert done.returncode == 1, done.stderr
    assert "Error: Configuration failed, system state unchanged." in done.stderr
    assert _table(router) == before
    assert "DIFFSERV" not in _mangle(router)
    assert exchange(net, COUNT) == [EF] * COUNT
    assert "0-63:46" in router.ipqosconf("-l").stdout
