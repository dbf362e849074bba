"""The compiled classifier against the engine, without a kernel: random policies, random
packets, ``diffserv run`` as the oracle.

Each class re-marks to a DSCP of its own, so the DS byte ``diffserv run`` writes names the
class the engine chose; the compiled forward chain's segments (maps and single rules,
with their DS value sets and port guards) are walked for the same packets as nft walks
them. Both must agree for every packet, both families, ECN bits kept.
"""

from __future__ import annotations

import ipaddress
import random
import struct
from pathlib import Path

import compile_policies as cp
import pytest
from compile_policies import compile_to

from diffserv.cli.main import main
from diffserv.compile.grouping import segments
from diffserv.compile.plan import PORT_PROTOCOLS, MatchRule, Prefix, build_plan
from diffserv.packet.linktypes import LINKTYPE_RAW
from diffserv.policy import parse
from support import synth
from support.netns import namespaces
from support.tools import require_tool

CLASS_DSCP = (20, 22, 24, 26, 28, 30, 32, 34)
TOS = (0x00, 0x28, 0x29, 0x2B, 0x03, 0xB8, 0x01, 0x30)


def _networks(family: int) -> list[str]:
    if family == 4:
        return [
            "10.0.0.0/16",
            *(f"10.0.{k}.0/24" for k in range(3)),
            *(f"10.0.{k}.{h}" for k in range(3) for h in (1, 2)),
        ]
    return [
        "fd00::/16",
        *(f"fd00:0:{k}::/48" for k in range(3)),
        *(f"fd00:0:{k}::{h}" for k in range(3) for h in (1, 2)),
    ]


def _hosts(family: int) -> list[str]:
    if family == 4:
        return [f"10.0.{k}.{h}" for k in range(4) for h in (1, 2, 3)]
    return [f"fd00:0:{k}::{h}" for k in range(4) for h in (1, 2, 3)]


def _policy(rnd: random.Random, nfilters: int) -> str:
    """Runs of filters that test the same fields (so they fold into maps), with
    overlapping prefixes, mixed families, DS masks and ranks."""
    filters: list[dict[str, object]] = []
    while len(filters) < nfilters:
        family = rnd.choice((4, 6))
        fields = [f for f in ("saddr", "daddr", "protocol", "sport", "dport") if rnd.random() < 0.4]
        ds = rnd.choice(((0x28, 0xFC), (0x01, 0x03), (0x28, 0xE0), (0x03, 0x03), None, None))
        if not fields and ds is None:
            fields = ["dport"]
        for _ in range(rnd.randrange(1, 7)):
            i = len(filters)
            flt: dict[str, object] = {
                "name": f"f{i}",
                "class": f"c{rnd.randrange(len(CLASS_DSCP))}",
            }
            for field in fields:
                if field in ("saddr", "daddr"):
                    flt[field] = rnd.choice(_networks(family))
                elif field == "protocol":
                    flt[field] = rnd.choice((6, 17, 1))
                else:
                    flt[field] = rnd.randrange(1, 4)
            if ds is not None:
                flt["dsfield"], flt["dsfield_mask"] = f"{ds[0]:#x}", f"{ds[1]:#x}"
            if rnd.random() < 0.15:
                flt["priority"] = rnd.randrange(1, 3)
            if rnd.random() < 0.15:
                flt["precedence"] = rnd.choice((1, 5))
            filters.append(flt)
    classes = [(f"c{k}", f"m{k}") for k in range(len(CLASS_DSCP))] + [("default", "continue")]
    marks = "".join(cp.dscpmk(f"m{k}", f"0-63:{d}") for k, d in enumerate(CLASS_DSCP))
    return cp.HEAD + cp.ipgpc(classes, filters) + marks


def _packet(rnd: random.Random) -> dict[str, int]:
    family = rnd.choice((4, 6))
    return {
        "family": family,
        "saddr": int(ipaddress.ip_address(rnd.choice(_hosts(family)))),
        "daddr": int(ipaddress.ip_address(rnd.choice(_hosts(family)))),
        "protocol": rnd.choice((6, 17, 1)),
        "sport": rnd.randrange(1, 4),
        "dport": rnd.randrange(1, 4),
        "tos": rnd.choice(TOS),
    }


def _frame(p: dict[str, int]) -> bytes:
    l4 = (
        synth.tcp(p["sport"], p["dport"])
        if p["protocol"] == 6
        else synth.udp(p["sport"], p["dport"])
        if p["protocol"] == 17
        else synth.icmp()
        if p["family"] == 4
        else synth.icmpv6()
    )
    if p["family"] == 4:
        src, dst = str(ipaddress.IPv4Address(p["saddr"])), str(ipaddress.IPv4Address(p["daddr"]))
        return synth.ipv4(src, dst, l4, tos=p["tos"])
    src, dst = str(ipaddress.IPv6Address(p["saddr"])), str(ipaddress.IPv6Address(p["daddr"]))
    return synth.ipv6(src, dst, l4, tclass=p["tos"])


def _in(prefix: Prefix | None, addr: int) -> bool:
    return prefix is None or addr >> (prefix.width - prefix.length) == prefix.value >> (
        prefix.width - prefix.length
    )


def _rule_hits(rule: MatchRule, p: dict[str, int], protocol: int) -> bool:
    """The rule's key fields (a map element or a single rule's matches)."""
    if not (_in(rule.saddr, p["saddr"]) and _in(rule.daddr, p["daddr"])):
        return False
    if rule.protocol is not None and protocol != rule.protocol:
        return False
    if rule.sport is not None and p["sport"] != rule.sport:
        return False
    return rule.dport is None or p["dport"] == rule.dport


def _kernel_class(rules: list[MatchRule], p: dict[str, int]) -> str | None:
    """What the compiled family chain does: segment by segment, guards first."""
    protocol = p["protocol"] if p["protocol"] != 1 or p["family"] == 4 else 58
    for seg in segments(rules):
        if seg.port_guard and protocol not in PORT_PROTOCOLS:
            continue
        if seg.dscp is not None and p["tos"] >> 2 not in seg.dscp:
            continue
        if seg.ecn is not None and p["tos"] & 3 not in seg.ecn:
            continue
        hits = [r for r in seg.rules if _rule_hits(r, p, protocol)]
        assert len(hits) <= 1
        if hits:
            return hits[0].class_name
    return None


def _ds_bytes(pcap: bytes) -> list[int]:
    out, pos = [], 24
    while pos < len(pcap):
        caplen = struct.unpack_from("<I", pcap, pos + 8)[0]
        data = pcap[pos + 16 : pos + 16 + caplen]
        out.append(data[1] if data[0] >> 4 == 4 else (data[0] & 0xF) << 4 | data[1] >> 4)
        pos += 16 + caplen
    return out


@pytest.mark.parametrize("seed", range(8))
def test_compiled_classifier_agrees_with_the_engine(tmp_path: Path, seed: int) -> None:
    rnd = random.Random(seed)
    text = _policy(rnd, 60)
    policy = tmp_path / "p.conf"
    policy.write_text(text)
    packets = [_packet(rnd) for _ in range(400)]
    capture = tmp_path / "in.pcap"
    capture.write_bytes(synth.pcap_bytes([_frame(p) for p in packets], linktype=LINKTYPE_RAW))
    out = tmp_path / "out.pcap"
    args = ["run", str(policy), str(capture), "-o", str(out), "--direction", "fwd-out", "-q"]
    assert main(args) == 0
    engine = _ds_bytes(out.read_bytes())
    plan = build_plan(parse(text, "p"))
    (forward,) = [h for h in plan.hooks if h.name == "forward"]
    by_family = {fam: plan.rules_at(forward, fam) for fam in (4, 6)}
    for p, got in zip(packets, engine, strict=True):
        cls = _kernel_class(by_family[p["family"]], p)
        want = p["tos"] if cls is None else CLASS_DSCP[int(cls[1:])] << 2 | p["tos"] & 3
        assert got == want, (p, cls)


def test_random_policies_load(tmp_path: Path) -> None:
    """nft accepts every map the folding makes (it refuses overlapping intervals)."""
    nft = require_tool("nft")
    with namespaces(["r"]) as topo:
        for seed in range(8):
            text = _policy(random.Random(seed), 60)
            for fmt in ("text", "json"):
                rules = compile_to(tmp_path, text, "--format", fmt, name=f"s{seed}{fmt}")
                topo["r"].run([nft, *(["-j"] if fmt == "json" else []), "-f", str(rules)])
