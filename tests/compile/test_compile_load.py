"""Every form ``diffserv compile`` writes loads into a real kernel, in a namespace of ours.

nft scripts pass ``nft -c`` and load with ``nft -f`` (the JSON with ``nft -j -f``); the
iptables form passes ``iptables-restore --test`` and loads; reloading replaces our table
(or mangle chains) and nothing else; 10 000 filters load in well under a few seconds.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import compile_policies as cp
import pytest
from compile_policies import compile_to

from diffserv.compile.api import companion_rules
from diffserv.compile.nft_build import HybridOptions
from support.netns import Namespace, Topology, namespaces
from support.tools import require_tool

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "policies"


@pytest.fixture
def ns() -> Iterator[Namespace]:
    require_tool("nft")
    topo: Topology
    with namespaces(["r"]) as topo:
        yield topo["r"]


def _tables(ns: Namespace) -> list[tuple[str, str]]:
    doc = json.loads(ns.run(["nft", "-j", "list", "tables"]).stdout)
    return [(t["table"]["family"], t["table"]["name"]) for t in doc["nftables"] if "table" in t]


def _table(ns: Namespace, name: str = "diffserv") -> list[dict[str, object]]:
    doc = json.loads(ns.run(["nft", "-j", "list", "table", "inet", name]).stdout)
    items: list[dict[str, object]] = doc["nftables"]
    return items


POLICIES = {
    "mixed": (cp.mixed(), ()),
    "approximate": (
        cp.HEAD
        + cp.ipgpc(
            [("a", "police"), ("default", "continue")], [{"name": "x", "class": "a", "dport": 9}]
        )
        + cp.tokenmt("police", 8_000_000, 12_000, "mark", "drop")
        + cp.dscpmk("mark", "0-63:10"),
        (),
    ),
    # a folded run keyed by prefixes, interface names and users (an interval map of
    # concatenations), and one of IPv6 prefixes
    "concat-interval": (
        cp.HEAD
        + cp.ipgpc(
            [("a", "mark"), ("b", "drop"), ("default", "continue")],
            [
                {
                    "name": f"f{i}",
                    "class": "ab"[i % 2],
                    "saddr": f"10.{i}.0.0/16",
                    "if_name": f"veth{i % 3}",
                    "user": i,
                    "direction": "LOCAL_OUT",
                }
                for i in range(20)
            ]
            + [{"name": f"g{i}", "class": "a", "daddr": f"fd00:{i}::/32"} for i in range(20)],
        )
        + cp.dscpmk("mark", "0-63:10"),
        (),
    ),
    "enterprise-hybrid": (
        (EXAMPLES / "enterprise-edge.conf").read_text(),
        ("--hybrid", "--queue-via", "mark", "--queue", "3"),
    ),
}


@pytest.mark.parametrize("name", sorted(POLICIES))
def test_script_and_json_load(tmp_path: Path, ns: Namespace, name: str) -> None:
    policy, options = POLICIES[name]
    script = compile_to(tmp_path, policy, *options, name=name)
    subprocess.run(["nft", "-c", "-f", str(script)], check=True, capture_output=True)
    ns.run(["nft", "-f", str(script)])
    chains = {c["chain"]["name"] for c in _table(ns) if "chain" in c}  # type: ignore[index]
    assert {"output", "forward"} <= chains
    loaded = ns.run(["nft", "list", "table", "inet", "diffserv"]).stdout
    ns.run(["nft", "delete", "table", "inet", "diffserv"])
    as_json = compile_to(tmp_path, policy, *options, "--format", "json", name=name + "j")
    json.loads(as_json.read_text())
    ns.run(["nft", "-j", "-f", str(as_json)])
    assert ns.run(["nft", "list", "table", "inet", "diffserv"]).stdout == loaded  # the same


def test_reload_replaces_only_our_table(tmp_path: Path, ns: Namespace) -> None:
    ns.run(["nft", "add", "table", "inet", "other"])
    ns.run(["nft", "add", "chain", "inet", "other", "keep"])
    first = compile_to(tmp_path, cp.mixed(), name="first")
    ns.run(["nft", "-f", str(first)])
    second = compile_to(
        tmp_path,
        cp.HEAD
        + cp.ipgpc(
            [("a", "drop"), ("default", "continue")], [{"name": "only", "class": "a", "dport": 7}]
        ),
        name="second",
    )
    for _ in range(2):
        ns.run(["nft", "-f", str(second)])
    assert sorted(_tables(ns)) == [("inet", "diffserv"), ("inet", "other")]
    rules = [i for i in _table(ns) if "rule" in i]
    assert not any("a0_markEF" in json.dumps(r) for r in rules)  # nothing of the first left
    assert any('"dport"' in json.dumps(r) for r in rules)
    ns.run(["nft", "list", "chain", "inet", "other", "keep"])
    renamed = compile_to(tmp_path, cp.mixed(), "--table", "qos2", name="renamed")
    ns.run(["nft", "-f", str(renamed)])
    assert sorted(_tables(ns)) == [("inet", "diffserv"), ("inet", "other"), ("inet", "qos2")]


def test_ten_thousand_filters_load_fast(tmp_path: Path, ns: Namespace) -> None:
    script = compile_to(tmp_path, cp.many(10_000), name="many")
    rules = [line for line in script.read_text().splitlines() if " vmap @" in line]
    assert len(rules) == 2  # output and forward: one map lookup each
    start = time.monotonic()
    ns.run(["nft", "-f", str(script)])
    assert time.monotonic() - start < 3.0
    maps = [i["map"] for i in _table(ns) if "map" in i]
    assert sorted(len(m["elem"]) for m in maps) == [10_000, 10_000]  # type: ignore[index]


def test_iptables_form_loads_and_reloads(tmp_path: Path, ns: Namespace) -> None:
    restore = require_tool("iptables-restore")
    restore6 = require_tool("ip6tables-restore")
    v4 = compile_to(tmp_path, cp.mixed(), "--to", "iptables", name="ipt")
    v6 = Path(str(v4) + ".v6")
    for tool, path in ((restore, v4), (restore6, v6)):
        ns.run([tool, "--test", str(path)])
        for _ in range(2):
            ns.run([tool, str(path)])
    saved = ns.run([require_tool("iptables-save"), "-t", "mangle"]).stdout
    assert saved.count("-A OUTPUT -j DSC-output") == 1
    assert saved.count("-A FORWARD -j DSC-forward") == 1
    assert "--set-dscp 0x2e" in saved and "CLASSIFY --set-class 0000:0005" in saved
    saved6 = ns.run([require_tool("ip6tables-save"), "-t", "mangle"]).stdout
    assert "-d fd99:2::/64" in saved6 and "-d 10.99" not in saved6


def test_companion_rules_as_argument_lists_install(ns: Namespace) -> None:
    for tool, argv in companion_rules(HybridOptions(queue=5, via="mark")):
        ns.run([require_tool(tool), "-w", "5", *argv])
    for save in ("iptables-save", "ip6tables-save"):
        saved = ns.run([require_tool(save), "-t", "mangle"]).stdout
        assert "-A DIFFSERV-NFTQ -m mark --mark 0x10000000/0x10000000 -j NFQUEUE" in saved
        assert "--queue-num 5 --queue-bypass" in saved
        for builtin in ("INPUT", "OUTPUT", "FORWARD"):
            assert saved.count(f"-A {builtin} -j DIFFSERV-NFTQ") == 1


def test_iptables_hybrid_queues_directly(tmp_path: Path, ns: Namespace) -> None:
    restore = require_tool("iptables-restore")
    policy = (EXAMPLES / "enterprise-edge.conf").read_text()
    v4 = compile_to(tmp_path, policy, "--to", "iptables", "--hybrid", "--queue", "2")
    ns.run([restore, "--test", str(v4)])
    ns.run([restore, str(v4)])
    saved = ns.run([require_tool("iptables-save"), "-t", "mangle"]).stdout
    assert "-j NFQUEUE --queue-num 2 --queue-bypass" in saved
    assert "-m tos --tos 0xb8/0xfc" in saved  # voice_trusted: dsfield 0xb8 mask 0xfc
