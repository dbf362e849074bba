"""Whole-policy checks: references, cycles, orphans, and the illumos kernel create rules."""

from __future__ import annotations

import pytest

from diffserv.policy import check, format_diagnostic, parse, static_resolver
from diffserv.policy.model import DEFER
from diffserv.policy.schema import MAX_CLASSES, MAX_FILTERS


def policy(classes: str, *actions: str, filters: str = "") -> str:
    return (
        "fmt_version 1.0\n"
        "action {\n\tmodule ipgpc\n\tname ipgpc.classify\n"
        + classes
        + filters
        + "}\n"
        + "".join(actions)
    )


def action(module: str, name: str, params: str) -> str:
    return f"action {{\n\tmodule {module}\n\tname {name}\n\tparams {{ {params} }}\n}}\n"


def messages(text: str) -> list[str]:
    result = check(text, "v.conf", resolver=static_resolver({}))
    return [d.message for d in result.errors]


def headers(text: str) -> list[str]:
    result = check(text, "v.conf", resolver=static_resolver({}))
    return [format_diagnostic(d).splitlines()[0] for d in result.errors]


def meter(params: str) -> str:
    return policy("\tclass { name c next_action m }\n", action("tokenmt", "m", params))


GOOD_METER = "red_action_name drop green_action_name continue committed_rate 1000 "


# -- references ---------------------------------------------------------------------------


def test_duplicate_action_names() -> None:
    text = policy(
        "\tclass { name c next_action m }\n",
        action("dscpmk", "m", "next_action continue"),
        action("dscpmk", "m", "next_action drop"),
    )
    assert headers(text) == [
        "v.conf:14:7: error: duplicate named action m: first defined at line 7",
    ]


def test_duplicate_class_and_filter_names() -> None:
    text = policy(
        "\tclass { name c next_action continue }\n\tclass { name c next_action drop }\n",
        filters="\tfilter { name f class c protocol 6 }\n\tfilter { name f class c protocol 17 }\n",
    )
    assert messages(text) == [
        "duplicate named class c in action ipgpc.classify",
        "duplicate named filter f in action ipgpc.classify",
    ]


def test_undefined_class_in_filter_and_default_is_permanent() -> None:
    text = policy(
        "\tclass { name web next_action continue }\n",
        filters="\tfilter { name f class wbe protocol 6 }\n"
        "\tfilter { name g class default protocol 17 }\n",
    )
    result = check(text, "v.conf")
    (err,) = result.errors
    assert err.message == "undefined class `wbe` in filter f, action ipgpc.classify"
    assert err.hint == "did you mean `web`?"


def test_undefined_action_in_class_and_parameter() -> None:
    text = policy(
        "\tclass { name c next_action m }\n\tclass { name d next_action nowhere }\n",
        action("dscpmk", "m", "next_action acct"),
    )
    assert messages(text) == [
        "undefined action `nowhere` in class d, action ipgpc.classify",
        "undefined action `acct` in parameter next_action, action m",
    ]


def test_virtual_actions_and_defer() -> None:
    text = policy(
        "\tclass { name a next_action continue }\n"
        "\tclass { name b next_action drop }\n"
        "\tclass { name c next_action ipp.continue }\n"
        "\tclass { name d next_action ipp.defer }\n"
    )
    classes = parse(text).classifier.classes
    assert [c.next_action for c in classes] == ["ipp.continue", "ipp.drop", "ipp.continue", DEFER]
    result = check(policy("\tclass { name a next_action defer }\n"), "v.conf")
    (err,) = result.errors
    assert err.message == "undefined action `defer` in class a, action ipgpc.classify"
    assert err.hint is not None and "not translated" in err.hint


def test_cycle() -> None:
    text = policy(
        "\tclass { name c next_action a }\n",
        action("dscpmk", "a", "next_action b"),
        action("dscpmk", "b", "next_action a"),
    )
    assert headers(text) == [
        "v.conf:7:1: error: action a involved in cycle: a -> b -> a",
    ]


def test_self_reference_is_a_cycle() -> None:
    text = policy(
        "\tclass { name c next_action continue }\n", action("dscpmk", "s", "next_action s")
    )
    assert messages(text) == ["action s involved in cycle: s -> s"]


def test_orphan_action() -> None:
    text = policy(
        "\tclass { name c next_action continue }\n",
        action("dscpmk", "lonely", "next_action continue"),
    )
    assert headers(text) == [
        "v.conf:7:1: error: action lonely isn't referenced by any other actions",
    ]


def test_meter_outcome_references_count() -> None:
    text = policy(
        "\tclass { name c next_action m }\n",
        action("tokenmt", "m", GOOD_METER + "committed_burst 1 red_action_name x"),
    )
    assert "duplicate parameter `red_action_name`" in messages(text)
    text = policy(
        "\tclass { name c next_action m }\n",
        action(
            "tokenmt",
            "m",
            "red_action_name r green_action_name continue committed_rate 1 committed_burst 1",
        ),
        action("dscpmk", "r", "next_action drop"),
    )
    assert messages(text) == []


def test_no_ipgpc_action() -> None:
    text = "fmt_version 1.0\n"
    result = check(text, "v.conf")
    assert [format_diagnostic(d).splitlines()[0] for d in result.errors] == [
        "v.conf: error: no ipgpc action defined"
    ]


def test_classes_only_in_ipgpc() -> None:
    text = policy(
        "\tclass { name c next_action m }\n",
        "action {\n\tmodule dscpmk\n\tname m\n\tparams { next_action continue }\n"
        "\tclass { name x next_action continue }\n}\n",
    )
    assert messages(text) == ["module dscpmk has no classes or filters (only ipgpc classifies)"]


# -- tokenmt -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "params",
    [
        GOOD_METER + "committed_burst 1000",  # single rate, 2 outcomes
        GOOD_METER + "committed_burst 0 peak_burst 10 yellow_action_name continue",
        GOOD_METER + "committed_burst 8 peak_burst 16 yellow_action_name continue peak_rate 2000",
        GOOD_METER + "committed_burst 8 peak_burst 16 yellow_action_name continue peak_rate 1000",
    ],
)
def test_tokenmt_valid(params: str) -> None:
    assert messages(meter(params)) == []


@pytest.mark.parametrize(
    ("params", "message"),
    [
        (
            "red_action_name drop committed_rate 5",
            "missing required parameter for action m: `green_action_name`, `committed_burst`",
        ),
        (
            GOOD_METER.replace("1000", "0") + "committed_burst 10",
            "invalid parameters for action m: committed_rate must not be 0",
        ),
        (
            GOOD_METER + "committed_burst 10 yellow_action_name continue",
            "invalid parameters for action m: yellow_action_name and peak_burst must be given "
            "together",
        ),
        (
            GOOD_METER + "committed_burst 10 peak_burst 10",
            "invalid parameters for action m: yellow_action_name and peak_burst must be given "
            "together",
        ),
        (
            GOOD_METER + "committed_burst 10 peak_burst 10 yellow_action_name continue "
            "peak_rate 999",
            "invalid parameters for action m: peak_rate 999 is below committed_rate 1000",
        ),
        (
            GOOD_METER + "committed_burst 10 peak_burst 10 yellow_action_name continue peak_rate 0",
            "invalid parameters for action m: peak_rate must not be 0",
        ),
        (
            GOOD_METER + "committed_burst 10 peak_rate 2000",
            "invalid parameters for action m: a two-rate meter (peak_rate) needs "
            "yellow_action_name and peak_burst",
        ),
        (
            GOOD_METER + "committed_burst 0 peak_burst 10 yellow_action_name continue "
            "peak_rate 2000",
            "invalid parameters for action m: a two-rate meter needs non-zero committed_burst "
            "and peak_burst",
        ),
        (
            GOOD_METER + "committed_burst 0",
            "invalid parameters for action m: committed_burst and peak_burst cannot both be 0",
        ),
    ],
)
def test_tokenmt_invalid(params: str, message: str) -> None:
    assert messages(meter(params)) == [message]


def test_tokenmt_error_points_at_value() -> None:
    text = meter(GOOD_METER.replace("1000", "0") + "committed_burst 10")
    assert headers(text)[0].startswith("v.conf:10:74: error: invalid parameters for action m")


# -- other modules ------------------------------------------------------------------------


def tsw(params: str) -> str:
    return policy("\tclass { name c next_action t }\n", action("tswtclmt", "t", params))


TSW = "red_action_name drop yellow_action_name continue green_action_name continue "


def test_tswtclmt() -> None:
    assert messages(tsw(TSW + "committed_rate 10 peak_rate 10 window 1")) == []
    assert messages(tsw(TSW + "committed_rate 10 peak_rate 9 window 5")) == [
        "invalid parameters for action t: peak_rate 9 is below committed_rate 10"
    ]
    assert messages(tsw(TSW + "committed_rate 10 peak_rate 10 window 0")) == [
        "invalid parameters for action t: window must be at least 1 ms"
    ]
    assert messages(tsw("committed_rate 10 peak_rate 10")) == [
        "missing required parameter for action t: `red_action_name`, `yellow_action_name`, "
        "`green_action_name`, `window`"
    ]


@pytest.mark.parametrize(
    ("module", "params", "missing"),
    [
        ("dscpmk", "dscp_map {0-63:0}", "`next_action`"),
        ("dlcosmk", "next_action continue", "`cos`"),
        ("dlcosmk", "", "`next_action`, `cos`"),
        ("flowacct", "next_action continue timer 10", "`max_limit`"),
    ],
)
def test_required_parameters(module: str, params: str, missing: str) -> None:
    text = policy("\tclass { name c next_action x }\n", action(module, "x", params))
    assert messages(text) == [f"missing required parameter for action x: {missing}"]


def test_action_without_params_clause() -> None:
    text = policy(
        "\tclass { name c next_action x }\n", "action {\n\tmodule flowacct\n\tname x\n}\n"
    )
    assert headers(text) == [
        "v.conf:7:1: error: missing required parameter for action x: `next_action`, `max_limit`"
    ]


def test_flowacct_timer_zero() -> None:
    text = policy(
        "\tclass { name c next_action x }\n",
        action("flowacct", "x", "next_action continue max_limit 1 timer 0"),
    )
    assert messages(text) == ["invalid parameters for action x: timer must be at least 1 ms"]


# -- ipgpc filters ------------------------------------------------------------------------

CLS = "\tclass { name c next_action continue }\n"


def one_filter(selectors: str) -> str:
    return policy(CLS, filters=f"\tfilter {{ name f class c {selectors} }}\n")


@pytest.mark.parametrize(
    "selectors",
    ["", "ip_version V4", "priority 3 precedence 1", "projid -1", "dsfield 0x28 dsfield_mask 0"],
)
def test_catch_all_filters_are_rejected(selectors: str) -> None:
    (message,) = messages(one_filter(selectors))
    assert message.startswith(
        "invalid/missing parameters for filter f in action ipgpc.classify: catch-all filters "
        "are not supported"
    )


@pytest.mark.parametrize(
    "selectors",
    ["projid 0", "dsfield 0x28 dsfield_mask 0xfc", "user 0", "direction LOCAL_IN", "dport 1"],
)
def test_single_selector_filters_are_accepted(selectors: str) -> None:
    assert messages(one_filter(selectors)) == []


@pytest.mark.parametrize("selectors", ["dsfield 0x28", "dsfield_mask 0xfc protocol 6"])
def test_dsfield_needs_mask(selectors: str) -> None:
    assert messages(one_filter(selectors)) == [
        "invalid/missing parameters for filter f in action ipgpc.classify: dsfield and "
        "dsfield_mask must be given together"
    ]


def test_class_limit_counts_default() -> None:
    ok = "".join(f"\tclass {{ name c{i} next_action continue }}\n" for i in range(MAX_CLASSES - 1))
    assert messages(policy(ok)) == []
    over = ok + "\tclass { name extra next_action continue }\n"
    (message,) = messages(policy(over))
    assert message == (
        "max number of classes reached in ipgpc: 10007 classes (with `default`), limit 10006"
    )
    # a file that defines `default` itself does not add one
    redefined = ok + "\tclass { name default next_action drop }\n"
    assert messages(policy(redefined)) == []


def test_filter_limit_counts_host_name_instances() -> None:
    flt = "".join(f"\tfilter {{ name f{i} class c dport {i + 1} }}\n" for i in range(MAX_FILTERS))
    assert messages(policy(CLS, filters=flt)) == []
    over = flt + "\tfilter { name extra class c protocol 6 }\n"
    assert messages(policy(CLS, filters=over)) == [
        "max number of filters reached in action ipgpc: 10007 filters (each host-name address "
        "counts), limit 10006"
    ]
    resolver = static_resolver({"h": ["192.0.2.1", "192.0.2.2", "2001:db8::1"]})
    n = MAX_FILTERS // 3 + 1  # 3 instances each
    many = "".join(f"\tfilter {{ name f{i} class c daddr h }}\n" for i in range(n))
    result = check(policy(CLS, filters=many), "v.conf", resolver=resolver)
    assert [d.message for d in result.errors] == [
        f"max number of filters reached in action ipgpc: {3 * n} filters (each host-name "
        "address counts), limit 10006"
    ]
