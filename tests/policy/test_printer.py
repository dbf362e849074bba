"""The canonical printer: exact ipqosconf -l layout, quoting, names, arrays, enums."""

from __future__ import annotations

import ipaddress
from pathlib import Path

from diffserv.directions import FWD_OUT, LOCAL_IN, LOCAL_OUT
from diffserv.policy import StaticHostDatabase, parse
from diffserv.policy.model import (
    CLASSIFIER_ACTION,
    CONTINUE,
    DEFER,
    DROP,
    IP_V4,
    IP_V6,
    Action,
    Class,
    Filter,
    HostName,
    Policy,
)
from diffserv.policy.printer import (
    action_ref,
    array_entries,
    format_enum,
    format_policy,
    format_ranges,
    quote,
)
from diffserv.policy.schema import DEFAULT_COLOR_MAP, lookup_param

SMALL = """\
fmt_version 1.0
action {
    name markEF
    module dscpmk
    params { next_action continue dscp_map {0-63:46} }
}
action {
    module ipgpc
    name ipgpc.classify
    filter { class voice name rtp protocol udp sport 5004 direction LOCAL_OUT }
    class { next_action markEF name voice }
}
"""

SMALL_CANONICAL = """\
fmt_version 1.0

action {
\tmodule dscpmk
\tname markEF

\tparams {
\t\tglobal_stats false
\t\tnext_action continue
\t\tdscp_map {
\t\t\t0-63:46
\t\t}
\t}
}

action {
\tmodule ipgpc
\tname ipgpc.classify

\tparams {
\t\tglobal_stats false
\t}

\tclass {
\t\tname voice
\t\tnext_action markEF
\t\tenable_stats false
\t}

\tfilter {
\t\tname rtp
\t\tclass voice
\t\tdirection LOCAL_OUT
\t\tprotocol udp
\t\tsport 5004
\t}
}
"""


def test_small_policy_prints_exactly_in_listing_layout() -> None:
    assert format_policy(parse(SMALL, "small.conf")) == SMALL_CANONICAL


def test_canonical_text_is_a_fixed_point() -> None:
    assert format_policy(parse(SMALL_CANONICAL, "c.conf")) == SMALL_CANONICAL


def test_names_with_blanks_or_braces_are_quoted() -> None:
    assert quote("video out") == '"video out"'
    assert quote("a{b") == '"a{b"'
    assert quote("plain.name-1") == "plain.name-1"
    assert quote("") == '""'


def test_virtual_actions_print_short_and_defer_keeps_full_name() -> None:
    assert action_ref(CONTINUE) == "continue"
    assert action_ref(DROP) == "drop"
    # ipqosconf translates only continue and drop; `defer` would be an undefined action.
    assert action_ref(DEFER) == "ipp.defer"


def test_enums_print_by_name_with_commas() -> None:
    spec = lookup_param("ipgpc", "ip_version", "filter")
    assert spec is not None
    assert format_enum(IP_V4 | IP_V6, spec.enum) == "{ V4, V6 }"
    direction = lookup_param("ipgpc", "direction", "filter")
    assert direction is not None
    assert format_enum(LOCAL_OUT, direction.enum) == "LOCAL_OUT"
    assert format_enum(LOCAL_IN | FWD_OUT, direction.enum) == "{ LOCAL_IN, FWD_OUT }"


def test_ranges_and_array_grouping() -> None:
    assert format_ranges([5, 1, 2, 3, 9, 10]) == "1-3,5,9-10"
    colour = lookup_param("tokenmt", "color_map")
    assert array_entries(DEFAULT_COLOR_MAP, colour) == [
        "0-11,13,15-19,21,23-27,29,31-35,37,39-63:GREEN",
        "12,20,28,36:YELLOW",
        "14,22,30,38:RED",
    ]
    dscp = lookup_param("dscpmk", "dscp_map")
    identity_but_ef = tuple(0 if i == 46 else i for i in range(64))
    entries = array_entries(identity_but_ef, dscp)
    assert entries[0] == "0,46:0"
    assert len(entries) == 63


def _policy_with(flt: Filter) -> Policy:
    classifier = Action(
        CLASSIFIER_ACTION,
        "ipgpc",
        classes=(Class("c", CONTINUE),),
        filters=(flt,),
    )
    return Policy((classifier,))


def test_filter_values_print_as_names_and_prefixes() -> None:
    flt = Filter(
        name="f",
        class_name="c",
        user=0,
        direction=FWD_OUT,
        protocol=6,
        saddr=ipaddress.IPv4Network("10.0.0.0/8"),
        daddr=HostName("web.example.net", (ipaddress.IPv4Network("192.0.2.10/32"),)),
        dport=443,
        ip_version=IP_V4,
    )
    text = format_policy(_policy_with(flt), hosts=StaticHostDatabase(users={"root": 0}))
    assert "\t\tuser root\n" in text
    assert "\t\tprotocol tcp\n" in text
    assert "\t\tsaddr 10.0.0.0/8\n" in text
    assert "\t\tdaddr web.example.net\n" in text
    assert "\t\tdport https\n" in text
    assert "\t\tip_version V4\n" in text


def test_numbers_without_names_print_as_numbers() -> None:
    flt = Filter(name="f", class_name="c", protocol=253, sport=47999, user=2_000_000_000)
    text = format_policy(_policy_with(flt))
    assert "\t\tprotocol 253\n" in text
    assert "\t\tsport 47999\n" in text
    assert "\t\tuser 2000000000\n" in text


def test_ipv6_prefix_prints_compressed() -> None:
    flt = Filter(name="f", class_name="c", saddr=ipaddress.IPv6Network("2001:db8:99::/48"))
    assert "\t\tsaddr 2001:db8:99::/48\n" in format_policy(_policy_with(flt))


def test_colour_aware_meter_of_the_oracle_guide_prints_exactly() -> None:
    path = Path(__file__).resolve().parents[2] / "examples/policies/oracle-37-1-color-aware.conf"
    text = format_policy(parse(path.read_text(encoding="utf-8"), path.name))
    assert text.endswith(
        "action {\n"
        "\tmodule tokenmt\n"
        "\tname meter1\n"
        "\n"
        "\tparams {\n"
        "\t\tglobal_stats true\n"
        "\t\tred_action_name continue\n"
        "\t\tyellow_action_name continue\n"
        "\t\tgreen_action_name continue\n"
        "\t\tcommitted_rate 4000000\n"
        "\t\tcommitted_burst 4000000\n"
        "\t\tpeak_rate 8000000\n"
        "\t\tpeak_burst 8000000\n"
        "\t\tcolor_aware true\n"
        "\t\tcolor_map {\n"
        "\t\t\t0-20,22:GREEN;\n"
        "\t\t\t43-63:YELLOW;\n"
        "\t\t\t21,23-42:RED\n"
        "\t\t}\n"
        "\t}\n"
        "}\n"
    )
