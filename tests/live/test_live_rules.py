"""The queue rules: installed in chains of our own, removed exactly, errors as one line.

Each test runs the rules module inside a namespace it creates (the host's firewall is
never touched).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator

import pytest

from diffserv.live.rules import leftovers
from support import netns
from support.live_daemon import all_rules, env, mangle_rules

pytestmark = pytest.mark.tools


@pytest.fixture
def ns() -> Iterator[netns.Namespace]:
    with netns.namespaces(["solo"]) as t:
        yield t["solo"]


def _python(ns: netns.Namespace, code: str) -> object:
    done = ns.run([sys.executable, "-c", code], env=env(), check=False)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_install_then_remove_leaves_the_firewall_as_it_was(ns: netns.Namespace) -> None:
    ns.run(["ip6tables", "-t", "mangle", "-A", "FORWARD", "-p", "tcp", "-j", "ACCEPT"])
    before = all_rules(ns)
    during = _python(
        ns,
        "import json, subprocess\n"
        "from diffserv.live import rules\n"
        "r = rules.install(7)\n"
        "text = [subprocess.run([t, '-t', 'mangle'], capture_output=True, text=True).stdout\n"
        "        for t in ('iptables-save', 'ip6tables-save')]\n"
        "r.remove()\n"
        "print(json.dumps(text))\n",
    )
    assert all_rules(ns) == before
    assert isinstance(during, list)
    for text in during:
        for chain, builtin, option in (
            ("DIFFSERV-IN", "INPUT", "-i"),
            ("DIFFSERV-OUT", "OUTPUT", "-o"),
            ("DIFFSERV-FWD", "FORWARD", "-o"),
        ):
            assert f"-A {builtin} -j {chain}" in text
            assert f"-A {chain} ! {option} lo -j NFQUEUE --queue-num 7 --queue-bypass" in text
    # ours come first in the built-in chain: the host's rule is still after the jump
    assert during[1].index("-A FORWARD -j DIFFSERV-FWD") < during[1].index("-A FORWARD -p tcp")


def test_a_queue_mark_queues_only_marked_packets(ns: netns.Namespace) -> None:
    """The hybrid setup: a compiled table marks what the daemon must see; the queue rules
    match that mark, and the mark's bits (not its whole value) decide."""
    _python(ns, "from diffserv.live import rules\nrules.install(4, 0x10000)\nprint(0)\n")
    text = mangle_rules(ns)
    assert text.count("-m mark --mark 0x10000/0x10000 -j NFQUEUE --queue-num 4") == 6
    assert "--queue-num 4 --queue-bypass" in text
    bad = ns.run(
        [sys.executable, "-c", "from diffserv.live import rules\nrules.install(4, 0)"],
        env=env(),
        check=False,
    )
    assert bad.returncode != 0 and "queue mark 0x0" in bad.stderr


def test_leftovers_are_found_and_removed(ns: netns.Namespace) -> None:
    _python(ns, "from diffserv.live import rules\nrules.install(3)\nprint(0)\n")
    assert mangle_rules(ns).count("DIFFSERV") == 18  # 6 chains, 6 jumps, 6 queue rules
    assert _python(ns, "from diffserv.live import rules\nprint(rules.remove_leftovers())") == 12
    assert "DIFFSERV" not in mangle_rules(ns)
    assert _python(ns, "from diffserv.live import rules\nprint(rules.remove_leftovers())") == 0


def test_a_second_install_replaces_the_first(ns: netns.Namespace) -> None:
    code = (
        "from diffserv.live import rules\n"
        "r = rules.install(1)\n"
        "print(rules.install(2).leftovers_removed)"
    )
    assert _python(ns, code) == 12
    text = mangle_rules(ns)
    assert "--queue-num 1 " not in text and text.count("--queue-num 2 --queue-bypass") == 6


def test_a_failing_command_is_one_line_naming_it(ns: netns.Namespace) -> None:
    code = (
        "import json\n"
        "from diffserv.errors import HostSystemError\n"
        "from diffserv.live.rules import run_iptables\n"
        "try:\n"
        "    run_iptables('iptables', ['-t', 'mangle', '-D', 'INPUT', '-j', 'DIFFSERV-NONE'])\n"
        "except HostSystemError as exc:\n"
        "    print(json.dumps(str(exc)))\n"
    )
    message = _python(ns, code)
    assert isinstance(message, str) and "\n" not in message
    assert message.startswith("iptables -t mangle -D INPUT -j DIFFSERV-NONE: ")


def test_leftovers_parser_reads_iptables_save_text() -> None:
    saved = "\n".join(
        [
            "*mangle",
            ":INPUT ACCEPT [0:0]",
            ":DIFFSERV-IN - [0:0]",
            ":OTHER - [0:0]",
            '-A INPUT -m comment --comment "a b" -j DIFFSERV-IN',
            "-A INPUT -j OTHER",
            "-A DIFFSERV-IN ! -i lo -j NFQUEUE --queue-num 0 --queue-bypass",
            "COMMIT",
        ]
    )
    jumps, chains = leftovers(saved)
    assert chains == ["DIFFSERV-IN"]
    assert jumps == [["INPUT", "-m", "comment", "--comment", "a b", "-j", "DIFFSERV-IN"]]
