"""The compile plan and the folding of filters into maps, without a kernel.

The ranking must be the engine's, the DS value sets must be exactly the masked compare,
and the folded segments must give every packet the class a linear rank-order walk gives.
"""

from __future__ import annotations

import ipaddress
import random

import compile_policies as cp
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from diffserv.compile.api import policy_verdict
from diffserv.compile.grouping import Segment, segments
from diffserv.compile.plan import (
    APPROXIMATE,
    DAEMON,
    EXACT,
    MatchRule,
    Prefix,
    admitted,
    build_plan,
)
from diffserv.directions import LOCAL_IN, LOCAL_OUT
from diffserv.policy import parse


def _plan(filters: list[dict[str, object]], *actions: str, classes=None):  # type: ignore[no-untyped-def]
    classes = classes or [("a", "continue"), ("b", "drop"), ("default", "continue")]
    return build_plan(parse(cp.HEAD + cp.ipgpc(classes, filters) + "".join(actions), "t"))


# --- DS values ---------------------------------------------------------------------------


@given(st.integers(0, 255), st.integers(1, 255))
def test_admitted_values_are_exactly_the_masked_compare(dsfield: int, mask: int) -> None:
    dscp, ecn = admitted(dsfield, mask)
    kernel = {
        d << 2 | e
        for d in (dscp if dscp is not None else range(64))
        for e in (ecn if ecn is not None else range(4))
    }
    assert kernel == {v for v in range(256) if v & mask == dsfield & mask}


def test_an_ecn_only_mask_compares_no_dscp() -> None:
    assert admitted(0x03, 0x03) == (None, (3,))
    assert admitted(0xB8, 0xFC) == ((46,), None)


# --- ranking and match terms -----------------------------------------------------------


def test_rules_follow_priority_then_precedence_then_file_order() -> None:
    plan = _plan(
        [
            {"name": "late", "class": "a", "dport": 1},
            {"name": "prec", "class": "a", "dport": 2, "precedence": 3},
            {"name": "prio", "class": "b", "dport": 3, "priority": 2},
            {"name": "prec_low", "class": "a", "dport": 4, "precedence": 1},
            {"name": "first_unset", "class": "b", "dport": 5},
        ]
    )
    v4 = [r.filter_name for r in plan.rules if r.family == 4]
    assert v4 == ["prio", "prec_low", "prec", "late", "first_unset"]


def test_families_and_addresses() -> None:
    plan = _plan(
        [
            {"name": "both", "class": "a", "dport": 53},
            {"name": "mapped", "class": "a", "saddr": "::ffff:10.1.2.0/120"},
            {"name": "six", "class": "b", "daddr": "fd99::/64"},
        ]
    )
    by_name: dict[str, list[MatchRule]] = {}
    for rule in plan.rules:
        by_name.setdefault(rule.filter_name, []).append(rule)
    assert [r.family for r in by_name["both"]] == [4, 6]
    (mapped,) = by_name["mapped"]  # a v4-mapped literal is IPv4, as in the engine
    assert (mapped.family, mapped.saddr) == (
        4,
        Prefix(4, int(ipaddress.ip_address("10.1.2.0")), 24),
    )
    (six,) = by_name["six"]
    assert six.daddr == Prefix(6, int(ipaddress.ip_address("fd99::")), 64)


def test_filters_that_cannot_match_on_linux_are_named() -> None:
    plan = _plan(
        [
            {"name": "fwdin", "class": "a", "direction": "FWD_IN"},
            {"name": "proj", "class": "a", "projid": 3},
            {"name": "icmp_port", "class": "a", "protocol": 1, "dport": 7},
            {"name": "ok", "class": "b", "direction": "LOCAL_IN", "user": 0},
        ]
    )
    assert {n.filter_name for n in plan.never} == {"fwdin", "proj", "icmp_port"}
    assert [(r.filter_name, r.directions, r.uid) for r in plan.rules] == [
        ("ok", LOCAL_IN, 0),
        ("ok", LOCAL_IN, 0),
    ]
    # only "ok" (class b drops) does something, at input only; default continues
    assert [h.name for h in plan.hooks] == ["input"]


def test_hooks_follow_directions_and_what_the_default_class_does() -> None:
    plan = _plan(
        [{"name": "out", "class": "a", "direction": "LOCAL_OUT"}],
        cp.dscpmk("mark", "0-63:8"),
        classes=[("a", "continue"), ("default", "mark")],
    )
    # the default class re-marks: output and forward need a chain; input (inbound,
    # markers do nothing there) only for the filter, which names LOCAL_OUT only
    assert [h.name for h in plan.hooks] == ["output", "forward"]
    assert all(r.directions == LOCAL_OUT for r in plan.rules)


def test_action_verdicts() -> None:
    plan = _plan(
        [{"name": "x", "class": "a", "dport": 1}],
        cp.dscpmk("mark", "0-63:0;10:12", "cos"),
        cp.dlcosmk("cos", 1),
        cp.tokenmt("police", 8_000_000, 12_000, "mark", "drop"),
        cp.tokenmt(
            "srtcm",
            8_000_000,
            12_000,
            "mark",
            "drop",
            peak_burst=12000,
            yellow_action_name="continue",
        ),
        cp.flowacct("acct"),
        classes=[("a", "police"), ("b", "srtcm"), ("c", "acct"), ("default", "continue")],
    )
    mark = plan.action("mark")
    assert mark.verdict == EXACT
    assert dict(mark.dscp_changes) == {d: 12 if d == 10 else 0 for d in range(1, 64)}
    assert plan.action("cos").priority == 0  # illumos: cos 1 and 2 are sent as 0
    assert build_plan(plan_policy_plain(), "plain").action("cos").priority == 1
    police = plan.action("police")
    assert police.verdict == APPROXIMATE
    assert (police.rate_bytes, police.burst_bytes) == (1_000_000, 1500)
    assert "1001500 bytes" in police.how  # the bucket depth difference is stated
    assert plan.action("srtcm").verdict == DAEMON
    assert plan.action("acct").verdict == DAEMON
    assert {c.name: c.verdict for c in plan.classes} == {
        "a": APPROXIMATE,
        "b": DAEMON,
        "c": DAEMON,
        "default": EXACT,
    }


def plan_policy_plain():  # type: ignore[no-untyped-def]
    return parse(
        cp.HEAD + cp.ipgpc([("default", "cos")], []) + cp.dlcosmk("cos", 1, "continue"), "t"
    )


# --- folding into maps -----------------------------------------------------------------


def _addr(k: int, length: int) -> Prefix:
    value = (10 << 24 | k << 8) >> (32 - length) << (32 - length)
    return Prefix(4, value, length)


_rule_fields = st.fixed_dictionaries(
    {},
    optional={
        "saddr": st.builds(_addr, st.integers(0, 3), st.sampled_from([8, 22, 23, 24, 32])),
        "daddr": st.builds(_addr, st.integers(0, 3), st.sampled_from([24, 32])),
        "protocol": st.sampled_from([6, 17]),
        "dport": st.integers(1, 3),
        "dscp": st.sampled_from([(10,), (10, 11), (46,)]),
    },
)


def _linear(rules: list[MatchRule], packet: dict[str, object]) -> str | None:
    for rule in rules:
        if _matches(rule, packet):
            return rule.class_name
    return None


def _matches(rule: MatchRule, packet: dict[str, object]) -> bool:
    for field in ("saddr", "daddr"):
        want = getattr(rule, field)
        if want is not None:
            got = packet[field]
            assert isinstance(got, int)
            if got >> (32 - want.length) != want.value >> (32 - want.length):
                return False
    if rule.protocol is not None and packet["protocol"] != rule.protocol:
        return False
    if rule.dport is not None and (
        packet["protocol"] not in (6, 17) or packet["dport"] != rule.dport
    ):
        return False
    return rule.dscp is None or packet["dscp"] in rule.dscp


def _through_segments(segs: list[Segment], packet: dict[str, object]) -> str | None:
    for seg in segs:
        if seg.dscp is not None and packet["dscp"] not in seg.dscp:
            continue
        if seg.port_guard and packet["protocol"] not in (6, 17, 132):
            continue
        hits = [r for r in seg.rules if _matches(r, packet)]
        assert len(hits) <= 1, "two keys of one map match one packet"
        if hits:
            return hits[0].class_name
    return None


@settings(max_examples=100, deadline=None)
@given(st.lists(_rule_fields, min_size=1, max_size=30), st.randoms(use_true_random=False))
def test_folding_keeps_first_match_order(
    fields: list[dict[str, object]], rnd: random.Random
) -> None:
    rules = [
        MatchRule(rank=i, filter_name=f"f{i}", class_name=f"c{i}", family=4, directions=7, **f)  # type: ignore[arg-type]
        for i, f in enumerate(fields)
    ]
    segs = segments(rules)
    for _ in range(80):
        packet = {
            "saddr": 10 << 24 | rnd.randrange(4) << 8 | rnd.choice([0, 1, 255]),
            "daddr": 10 << 24 | rnd.randrange(4) << 8 | rnd.choice([0, 1]),
            "protocol": rnd.choice([1, 6, 17]),
            "dport": rnd.randrange(1, 4),
            "dscp": rnd.choice([0, 10, 11, 46]),
        }
        assert _through_segments(segs, packet) == _linear(rules, packet)


def test_nested_prefixes_split_or_shadow() -> None:
    def rule(i: int, prefix: Prefix) -> MatchRule:
        return MatchRule(i, f"f{i}", f"c{i}", 4, 7, daddr=prefix)

    host, net = _addr(1, 32), _addr(1, 24)
    # the host first: the net overlaps it, so it needs a segment of its own
    assert [len(s.rules) for s in segments([rule(0, host), rule(1, net)])] == [1, 1]
    # the net first: the host inside it can never be the first match and is left out
    (seg,) = segments([rule(0, net), rule(1, host)])
    assert [r.rank for r in seg.rules] == [0] and [r.rank for r in seg.shadowed] == [1]


def test_ten_thousand_filters_fold_into_a_handful_of_rules() -> None:
    plan = build_plan(parse(cp.many(10_000), "many"))
    for hook in plan.hooks:
        segs = segments(plan.rules_at(hook, 4))
        assert len(segs) == 1 and len(segs[0].rules) == 10_000
        assert segments(plan.rules_at(hook, 6)) == []


@pytest.mark.parametrize("order", ["interleaved"])
def test_other_family_rules_do_not_break_a_run(order: str) -> None:
    filters: list[dict[str, object]] = []
    for i in range(10):
        filters.append({"name": f"v4_{i}", "class": "a", "daddr": f"10.0.0.{i + 1}"})
        filters.append({"name": f"v6_{i}", "class": "b", "daddr": f"fd00::{i + 1}"})
    plan = _plan(filters)
    for hook in plan.hooks:
        assert [len(s.rules) for s in segments(plan.rules_at(hook, 4))] == [10]
        assert [len(s.rules) for s in segments(plan.rules_at(hook, 6))] == [10]


def test_an_interface_name_linux_cannot_have_never_reaches_a_ruleset() -> None:
    plan = _plan([{"name": "wild", "class": "b", "if_name": "veth+"}])
    assert [(n.filter_name, n.why) for n in plan.never] == [
        ("wild", "if_name 'veth+' cannot name a Linux interface")
    ]
    assert plan.rules == ()


def test_policy_verdict_is_the_worst_class() -> None:
    exact = _plan([{"name": "x", "class": "b", "dport": 1}])
    assert policy_verdict(exact) == EXACT
    approx = _plan(
        [{"name": "x", "class": "a", "dport": 1}],
        cp.tokenmt("police", 8000, 8000, "continue", "drop"),
        classes=[("a", "police"), ("default", "continue")],
    )
    assert policy_verdict(approx) == APPROXIMATE
    daemon = _plan(
        [{"name": "x", "class": "a", "dport": 1}],
        cp.flowacct("acct"),
        classes=[("a", "acct"), ("default", "continue")],
    )
    assert policy_verdict(daemon) == DAEMON
    assert daemon.daemon_classes == ("a",)
