"""The compiled ruleset marks every packet on the wire as the offline engine does.

The offline engine (``diffserv run --direction fwd-out``) is the oracle; the compiled
ruleset (``diffserv compile --to nft``, loaded with ``nft -f``; and ``--to iptables``,
loaded with iptables-restore / ip6tables-restore) runs in the router of three
namespaces (sender -- router -- receiver, 10.99.x / fd99::), forwarding. Each packet
carries a unique id in its payload; the receiver captures what arrives and every packet
is accounted for: its whole DS byte (DSCP and ECN) must be the oracle's, its
skb->priority the PCP the oracle's dlcosmk wrote (or untouched where the oracle wrote
none), and it must be missing exactly where the oracle drops it.

How the priority is seen: no 802.1Q on this kernel, so the router carries a probe table
of the test's own (tests/support/equivalence.py, ``PROBE``): a forward chain at priority
-400, before the compiled chains, sets skb->priority to a sentinel (0:ff), and a
postrouting chain at priority 400, after everything, writes the priority into the IPv4
TTL / IPv6 hop limit (200 + p for 0:0..0:7, 199 for the sentinel). The oracle's PCP is
read from the 802.1Q tag of its output, the oracle being run twice with incoming PCP 0
and 7 to tell "set" from "left alone".

Policies (tests/support/policy_gen.py, seeded): overlapping filters over v4/v6 prefixes,
ports, protocol, dsfield with masks (ECN bits included), direction, ip_version, priority
and precedence, so that ranking decides; dscpmk maps that depend on the incoming DSCP,
dlcosmk, chains of both, drop and a redefined default; packets that match every filter
with every ECN value, and packets that match none. Plus the 20-filter benchmark policy
and a policy of 5 000 destination filters.

One namespace setup for the module; each case is one compile, one load, one burst.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest

from support.equivalence import Expected, Wire, break_ecn, break_ranking, differences, oracle
from support.live_daemon import env
from support.netns import require_netns
from support.policy_gen import (
    FilterSpec,
    PacketSpec,
    PolicySpec,
    many_destinations,
    packets_for,
    random_policy,
    unranked,
)

REPO = Path(__file__).resolve().parents[2]
BENCH_POLICY = REPO / "benchmarks" / "bench_run.conf"


@pytest.fixture(scope="module")
def wire() -> Iterator[Wire]:
    require_netns()
    w = Wire()
    try:
        yield w
    finally:
        w.close()


class Case:
    """One policy, its packets and the oracle's verdicts (computed once per policy)."""

    def __init__(self, name: str, text: str, packets: Sequence[PacketSpec], work: Path) -> None:
        self.work = work / name
        self.work.mkdir(parents=True, exist_ok=True)
        self.policy = self.work / "policy.conf"
        self.policy.write_text(text)
        self.packets = list(packets)
        self.expected: dict[int, Expected] = oracle(self.policy, self.packets, self.work)


_CASES: dict[str, Case] = {}


def _case(name: str, make: tuple[str, Sequence[PacketSpec]], tmp_root: Path) -> Case:
    if name not in _CASES:
        _CASES[name] = Case(name, make[0], make[1], tmp_root)
    return _CASES[name]


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("equiv")


def _compile(policy: Path, backend: str, out: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "diffserv", "compile", str(policy), "--to", backend, "-o", str(out)],
        capture_output=True,
        text=True,
        env=env(),
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr


def _through(wire: Wire, case: Case, backend: str) -> list[str]:
    """Compile ``case`` for ``backend``, load it in the router, send the packets; every
    difference from the oracle, one line each."""
    wire.reset()
    out = case.work / f"ruleset.{backend}"
    _compile(case.policy, backend, out)
    if backend == "nft":
        wire.load_nft(out)
    else:
        wire.load_iptables(out, out.with_name(out.name + ".v6"))
    arrived = wire.exchange(case.packets, case.work)
    return differences(case.packets, case.expected, arrived)


def _assert_same(problems: list[str], case: Case) -> None:
    assert not problems, (
        f"{len(problems)} of {len(case.packets)} packets differ from the oracle "
        f"(policy {case.policy}):\n" + "\n".join(problems[:25])
    )


def _random(seed: int) -> tuple[str, list[PacketSpec]]:
    spec: PolicySpec = random_policy(seed)
    return spec.text, packets_for(spec, seed)


SEEDS = (11, 12, 13)


@pytest.mark.parametrize("backend", ["nft", "iptables"])
@pytest.mark.parametrize("seed", SEEDS)
def test_generated_policy_marks_as_the_engine(
    wire: Wire, work: Path, seed: int, backend: str
) -> None:
    case = _case(f"random{seed}", _random(seed), work)
    kinds = {(e.dropped, e.pcp is None) for e in case.expected.values()}
    assert len(kinds) >= 2, "the generated case should exercise more than one outcome"
    _assert_same(_through(wire, case, backend), case)


@pytest.mark.parametrize("backend", ["nft", "iptables"])
def test_benchmark_policy_marks_as_the_engine(wire: Wire, work: Path, backend: str) -> None:
    text = BENCH_POLICY.read_text()
    # packets for the benchmark's filters come from a generated twin of its selectors
    filters = [
        FilterSpec("web", "x", dport=80),
        FilterSpec("tls", "x", dport=443, protocol="tcp"),
        FilterSpec("dns", "x", dport=53),
        FilterSpec("sip", "x", dport=5060),
        FilterSpec("ssh", "x", dport=22),
        FilterSpec("alt", "x", dport=8080),
        FilterSpec("vx", "x", dport=4789, protocol="udp"),
        FilterSpec("ntp", "x", dport=123, protocol="udp"),
        FilterSpec("lan1", "x", daddr="192.168.1.0/24"),
        FilterSpec("lan3", "x", saddr="10.0.0.0/16", protocol="tcp"),
        FilterSpec("lan4", "x", saddr="10.1.0.0/16", dport=80),
        FilterSpec("ef", "x", dsfield=(0xB8, 0xFC), dport=443),
        FilterSpec("ef2", "x", dsfield=(0x88, 0xFC)),
        FilterSpec("v6", "x", daddr="2001:db8:100::/48", dport=53),
        FilterSpec("v6b", "x", saddr="2001:db8:200::/48"),
        FilterSpec("out", "x", dport=8443),
        FilterSpec("smtp", "x", dport=25),
    ]
    packets = packets_for(PolicySpec(text, filters), 7, per_filter=4, unmatched=40)
    case = _case("bench", (text, packets), work)
    _assert_same(_through(wire, case, backend), case)


@pytest.mark.parametrize("backend", ["nft", "iptables"])
def test_thousands_of_filters_mark_as_the_engine(wire: Wire, work: Path, backend: str) -> None:
    spec = many_destinations(5)
    case = _case("many", (spec.text, packets_for(spec, 5, per_filter=1, unmatched=200)), work)
    assert len(spec.filters) > 5000
    _assert_same(_through(wire, case, backend), case)


def test_the_harness_sees_a_ruleset_that_marks_nothing(wire: Wire, work: Path) -> None:
    """The comparison can fail: with only the probe loaded (no compiled ruleset), the
    generated policy's marks, priorities and drops are all reported missing."""
    case = _case(f"random{SEEDS[0]}", _random(SEEDS[0]), work)
    wire.reset()
    problems = differences(case.packets, case.expected, wire.exchange(case.packets, case.work))
    changed = [
        p for p in case.packets if case.expected[p.pid].dropped or case.expected[p.pid].ds != p.tos
    ]
    assert len(problems) >= len(changed) > 0
    assert any("priority" in line for line in problems)


def test_the_generated_cases_depend_on_the_ranking(work: Path) -> None:
    """Overlapping filters whose ranking matters do occur: the same packets through the
    policy with its ranking scrambled (reverse order, no priority or precedence) end
    up marked differently, so a compiler that got the ranking wrong would be caught."""
    spec = random_policy(SEEDS[0])
    case = _case(f"random{SEEDS[0]}", _random(SEEDS[0]), work)
    scrambled = case.work / "unranked.conf"
    scrambled.write_text(unranked(spec))
    other = oracle(scrambled, case.packets, case.work)
    changed = [pid for pid, e in case.expected.items() if other[pid] != e]
    assert len(changed) >= len(case.packets) // 10, changed


@pytest.mark.parametrize("backend", ["nft", "iptables"])
@pytest.mark.parametrize("mutation", [break_ranking, break_ecn], ids=["ranking", "ecn"])
def test_a_broken_copy_of_the_ruleset_fails(
    wire: Wire, work: Path, backend: str, mutation: Callable[[str, str], str]
) -> None:
    """The comparison catches a ruleset that ranks filters wrongly or wipes ECN: the
    compiled script, broken in a copy, loads and differs from the oracle."""
    case = _case(f"random{SEEDS[0]}", _random(SEEDS[0]), work)
    out = case.work / f"broken.{backend}"
    _compile(case.policy, backend, out)
    files = [out] if backend == "nft" else [out, out.with_name(out.name + ".v6")]
    for path in files:
        path.write_text(mutation(path.read_text(), backend))
    wire.reset()
    if backend == "nft":
        wire.load_nft(out)
    else:
        wire.load_iptables(*files)
    problems = differences(case.packets, case.expected, wire.exchange(case.packets, case.work))
    assert len(problems) >= 5, problems
