"""explain: the plain-language summary an administrator reads before applying a policy."""

from __future__ import annotations

import ipaddress

from hypothesis import HealthCheck, given, settings
from strategies import policies

from diffserv.directions import FWD_OUT, LOCAL_OUT
from diffserv.policy import parse, static_resolver
from diffserv.policy.explain import (
    covers,
    describe_color_map,
    describe_dscp_map,
    dscp_label,
    explain_policy,
    format_burst,
    format_ms,
    format_rate,
    shadowed_filters,
    summary_line,
)
from diffserv.policy.model import Filter, Policy
from diffserv.policy.schema import DEFAULT_COLOR_MAP

HEAD = "fmt_version 1.0\n"


def _explain(body: str) -> str:
    policy = parse(HEAD + body, "t.conf", resolver=static_resolver({"gw.example": ["192.0.2.1"]}))
    return explain_policy(policy)


def test_units() -> None:
    assert format_rate(4_000_000) == "4 Mbit/s"
    assert format_rate(1_500_000) == "1.5 Mbit/s"
    assert format_rate(64) == "64 bit/s"
    assert format_rate(10_000_000_000 // 10) == "1 Gbit/s"
    assert format_burst(4_000_000) == "500 kB (4000000 bit)"
    assert format_burst(75) == "75 bit"
    assert format_ms(15000) == "15 s"
    assert format_ms(60000) == "1 min"
    assert format_ms(250) == "250 ms"


def test_dscp_labels() -> None:
    assert dscp_label(46) == "EF (46)"
    assert dscp_label(10) == "AF11 (10)"
    assert dscp_label(13) == "DSCP 13"


def test_dscp_map_summaries() -> None:
    assert describe_dscp_map(None) == "DSCP left unchanged (identity map)"
    assert describe_dscp_map((46,) * 64) == "every DSCP → EF (46)"
    af11_to_af12 = tuple(12 if i == 10 else i for i in range(64))
    assert describe_dscp_map(af11_to_af12) == "AF11 → AF12 (12), others unchanged"


def test_colour_map_summaries() -> None:
    assert describe_color_map(DEFAULT_COLOR_MAP).startswith("default colour map")
    custom = tuple(4 if i == 46 else 1 for i in range(64))
    assert describe_color_map(custom) == "colour map: EF red, others green"


CLASSIFIER = """\
action {
    module ipgpc
    name ipgpc.classify
    params { global_stats true }
    class { name voice next_action %s enable_stats true }
    filter { name sip class voice protocol udp saddr 10.0.0.0/8 sport 5060
             direction LOCAL_OUT priority 10 }
}
"""


def test_filter_in_plain_words_and_chain_to_marker() -> None:
    text = _explain(
        CLASSIFIER % "markEF"
        + "action { module dscpmk name markEF params { dscp_map {0-63:46} next_action continue } }"
    )
    assert "t.conf: 2 actions, 1 class, 1 filter" in text
    assert "Class voice (statistics on)" in text
    assert (
        "filter sip: UDP from 10.0.0.0/8 port 5060 (sip), outbound from this host (LOCAL_OUT), "
        "priority 10"
    ) in text
    assert "→ markEF [dscpmk]: mark DSCP: every DSCP → EF (46) (ECN kept)" in text
    assert "→ continue (back to normal IP processing)" in text
    assert "Class default\n  gets every packet no filter selects\n  → continue" in text


def test_two_rate_meter_outcomes() -> None:
    text = _explain(
        CLASSIFIER % "m"
        + """
action { module tokenmt name m params {
    committed_rate 4000000 committed_burst 4000000 peak_rate 8000000 peak_burst 8000000
    green_action_name continue yellow_action_name y red_action_name drop } }
action { module dscpmk name y params { dscp_map {10:12} next_action continue } }
"""
    )
    assert (
        "two-rate token bucket meter (RFC 2698): committed 4 Mbit/s, burst 500 kB (4000000 bit); "
        "peak 8 Mbit/s, burst 1 MB (8000000 bit)"
    ) in text
    assert "green (within 4 Mbit/s) → continue" in text
    assert (
        "yellow (over 4 Mbit/s, up to 8 Mbit/s) → y [dscpmk]: mark DSCP: AF11 → AF12 (12)" in text
    )
    assert "red (beyond 8 Mbit/s) → drop" in text


def test_single_rate_two_outcome_and_colour_aware() -> None:
    text = _explain(
        CLASSIFIER % "m"
        + """
action { module tokenmt name m params {
    committed_rate 64 committed_burst 75 color_aware true
    green_action_name continue red_action_name drop } }
"""
    )
    assert (
        "token bucket meter: committed 64 bit/s, burst 75 bit; colour-aware, default colour" in text
    )
    assert "green (within 64 bit/s) → continue" in text
    assert "red (beyond 64 bit/s and its burst) → drop" in text
    assert "yellow (" not in text


def test_tswtclmt_dlcosmk_flowacct() -> None:
    text = _explain(
        CLASSIFIER % "t"
        + """
action { module tswtclmt name t params { committed_rate 5000000 peak_rate 10000000
    window 1000 green_action_name c yellow_action_name c red_action_name drop } }
action { module dlcosmk name c params { cos 1 next_action a } }
action { module flowacct name a params { max_limit 2048 next_action continue } }
"""
    )
    assert "time sliding window meter (RFC 2859), rate averaged over 1 s" in text
    assert "mark 802.1p priority 1 (BK, background)" in text
    assert "illumos sends cos 1 and 2 as priority 0" in text
    assert "written out after 1 min idle (scan every 15 s); at most 2048 records" in text
    assert "→ c (as above)" in text


def test_notes_for_dead_classes_shadowed_filters_and_stats() -> None:
    text = _explain(
        """\
action {
    module ipgpc
    name ipgpc.classify
    class { name a next_action continue enable_stats true }
    class { name lonely next_action drop }
    filter { name f1 class a dport 80 priority 5 }
    filter { name f2 class a dport 80 priority 1 }
}
"""
    )
    assert "Notes:" in text
    assert "class lonely: no filter selects it" in text
    assert "filter f2 never wins: filter f1 matches all its packets and ranks higher" in text
    assert "class a: enable_stats has no effect without global_stats true" in text


def test_unresolved_host_is_noted() -> None:
    text = _explain(
        """\
action {
    module ipgpc
    name ipgpc.classify
    class { name a next_action continue }
    filter { name f class a daddr nowhere.example }
}
"""
    )
    assert "host nowhere.example (did not resolve: the filter never matches)" in text
    assert "filter f: host nowhere.example did not resolve; never matches" in text
    assert "class a: none of its filters can match (unresolved host names)" in text


def test_summary_line_plurals() -> None:
    policy = parse(HEAD + CLASSIFIER % "continue", "x")
    assert summary_line(policy) == "1 action, 1 class, 1 filter"


def test_tiny_buckets_and_multi_direction_are_noted() -> None:
    text = _explain(
        """\
action {
    module ipgpc
    name ipgpc.classify
    class { name c next_action m }
    filter { name both class c dport 80 direction { LOCAL_OUT, FWD_OUT } }
}
action { module tokenmt name m params {
    committed_rate 64 committed_burst 75 peak_burst 150
    green_action_name continue yellow_action_name continue red_action_name drop } }
"""
    )
    assert (
        "action m: committed_burst is 75 bit (bursts are in bits), less than one 1500-byte "
        "packet; packets over 9 bytes are never green"
    ) in text
    assert "action m: no bucket holds a 1500-byte packet; packets over 18 bytes are always red" in (
        text
    )
    assert "filter both: direction lists several values; diffserv matches any of them" in text


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(policies(host_names=True))
def test_every_valid_policy_is_explained(policy: Policy) -> None:
    text = explain_policy(policy)
    assert text.endswith("\n")
    for cls in policy.classifier.classes:
        assert f"Class {cls.name}" in text
    for flt in policy.classifier.filters:
        assert f"filter {flt.name}: " in text


def _f(name: str, **selectors: object) -> Filter:
    return Filter(name=name, class_name="c", **selectors)  # type: ignore[arg-type]


def test_shadowing_by_a_wider_higher_ranked_filter() -> None:
    wide = _f("wide", saddr=ipaddress.ip_network("10.0.0.0/8"), priority=5)
    narrow = _f("narrow", saddr=ipaddress.ip_network("10.1.0.0/16"), protocol=6)
    assert shadowed_filters([wide, narrow]) == [(narrow, wide)]
    # A more specific filter that ranks higher is fine, and so is a lower-ranked wide one.
    assert shadowed_filters([_f("n", dport=80, protocol=6, priority=9), _f("w", dport=80)]) == []
    # Equal rank: the first in the file wins.
    first, second = _f("a", dport=80), _f("b", dport=80)
    assert shadowed_filters([first, second]) == [(second, first)]
    # Direction sets: LOCAL_OUT alone is covered by { LOCAL_OUT, FWD_OUT }.
    both = _f("both", direction=LOCAL_OUT | FWD_OUT, priority=1)
    assert shadowed_filters([_f("out", direction=LOCAL_OUT), both])[0][1] is both
    # DS field: mask 0xfc on EF covers the exact byte 0xb8 but not 0xb9.
    ef = _f("ef", dsfield=0xB8, dsfield_mask=0xFC, priority=1)
    assert shadowed_filters([ef, _f("x", dsfield=0xB9, dsfield_mask=0xFF)]) != []
    assert shadowed_filters([_f("y", dsfield=0x28, dsfield_mask=0xFF), ef]) == []
    assert not covers(
        _f("v6", saddr=ipaddress.ip_network("::/1")),
        _f("v4", saddr=ipaddress.ip_network("10.0.0.0/8")),
    )
