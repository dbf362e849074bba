"""One test per ipqosconf error: FILE:LINE:COL (ipqosconf's line) and the message."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from diffserv.policy import check, format_diagnostic, static_resolver

RESOLVER = static_resolver({"web.example.net": ["192.0.2.10", "2001:db8::10"]})

HEAD = "fmt_version 1.0\naction {\n\tmodule ipgpc\n\tname ipgpc.classify\n"  # lines 1-4
CLASS = "\tclass {\n\t\tname c\n\t\tnext_action continue\n\t}\n"  # 4 lines


def filter_policy(selectors: str) -> str:
    """Selectors start on line 12."""
    return HEAD + CLASS + "\tfilter {\n\t\tname f\n\t\tclass c\n" + selectors + "\t}\n}\n"


def marker(module: str, params: str) -> str:
    """A classifier sending class c to action `m` of ``module`` whose params start on line 13."""
    return (
        HEAD
        + "\tclass {\n\t\tname c\n\t\tnext_action m\n\t}\n}\n"  # lines 5-9
        + f"action {{\n\tmodule {module}\n\tname m\n\tparams {{\n"  # lines 10-13
        + params
        + "\t}\n}\n"
    )


def errors(text: str, *, strict: bool = False) -> list[str]:
    result = check(text, "t.conf", strict=strict, resolver=RESOLVER)
    return [format_diagnostic(d).splitlines()[0] for d in result.diagnostics]


CASES: list[tuple[str, str, str]] = [
    # lexical
    (
        "quoted string exceeds line",
        HEAD + '\tclass {\n\t\tname "c\n',
        "t.conf:6:8: error: quoted string exceeds line (no closing '\"' on this line)",
    ),
    # file level
    (
        "fmt_version missing",
        "action {\n",
        "t.conf:1:1: error: missing/invalid config file fmt_version: it must be the first token",
    ),
    (
        "fmt_version invalid",
        "fmt_version 1\n",
        "t.conf:1:13: error: missing/invalid config file fmt_version: expected `fmt_version 1.0`",
    ),
    (
        "fmt_version empty file",
        "# nothing\n\n",
        "t.conf: error: missing/invalid config file fmt_version: the file is empty",
    ),
    (
        "unsupported version 1.1",
        "fmt_version 1.1\n",
        "t.conf:1:13: error: unsupported config file format version 1.1: only 1.0 is supported",
    ),
    (
        "unsupported version 2.0",
        "fmt_version 2.0\n",
        "t.conf:1:13: error: unsupported config file format version 2.0: only 1.0 is supported",
    ),
    (
        "missing action token",
        "fmt_version 1.0\nactions {\n",
        "t.conf:2:1: error: missing action token: found `actions`",
    ),
    (
        "keywords are case-sensitive",
        "fmt_version 1.0\nAction {\n",
        "t.conf:2:1: error: missing action token: found `Action`",
    ),
    (
        "brace missing after action",
        "fmt_version 1.0\naction\nmodule ipgpc\n",
        "t.conf:3:1: error: '{' missing after `action`",
    ),
    (
        "brace missing after params",
        HEAD + "\tparams\n\t\tglobal_stats true\n",
        "t.conf:6:3: error: '{' missing after `params`",
    ),
    (
        "unexpected EOF",
        HEAD + "\tclass {\n\t\tname c\n",
        "t.conf:6:9: error: unexpected EOF: class clause is not closed with '}'",
    ),
    # head
    (
        "missing action name/module before }",
        "fmt_version 1.0\naction {\n\tmodule ipgpc\n}\n",
        "t.conf:4:1: error: missing action name/module before this '}': an action needs both "
        "`name` and `module`",
    ),
    (
        "clause before head complete",
        "fmt_version 1.0\naction {\n\tmodule ipgpc\n\tparams {\n",
        "t.conf:4:2: error: unexpected parameter `params`",
    ),
    (
        "invalid module name",
        "fmt_version 1.0\naction {\n\tmodule dscpmark\n\tname x\n}\n",
        "t.conf:3:9: error: invalid module name `dscpmark`",
    ),
    (
        "ipgpc incorrect name",
        "fmt_version 1.0\naction {\n\tmodule ipgpc\n\tname classify\n}\n",
        "t.conf:2:1: error: ipgpc action has incorrect name `classify`: the classifier must be "
        "named ipgpc.classify",
    ),
    # clauses
    (
        "second params clause",
        HEAD + "\tparams {\n\t}\n\tparams {\n\t}\n}\n",
        "t.conf:7:2: error: second parameter clause not supported",
    ),
    (
        "clause expected",
        HEAD + "\tclasses {\n",
        "t.conf:5:2: error: params/filter/class clause expected, found `classes`",
    ),
    (
        "missing class name/next action",
        HEAD + "\tclass {\n\t\tname c\n\t}\n}\n",
        "t.conf:7:2: error: missing class name/next action before this '}'",
    ),
    (
        "unexpected parameter in class",
        HEAD + "\tclass {\n\t\tname c\n\t\tnext c\n\t\tnext_action continue\n\t}\n}\n",
        "t.conf:7:3: error: unexpected parameter `next` in class",
    ),
    (
        "duplicate parameter in class",
        HEAD + "\tclass {\n\t\tname c\n\t\tname d\n\t\tnext_action continue\n\t}\n}\n",
        "t.conf:7:3: error: duplicate parameter `name`",
    ),
    (
        "missing filter/class name",
        HEAD + CLASS + "\tfilter {\n\t\tname f\n\t\tprotocol tcp\n\t}\n}\n",
        "t.conf:12:2: error: missing filter/class name before this '}'",
    ),
    (
        "missing parameter value",
        filter_policy("\t\tprotocol\n"),
        "t.conf:13:2: error: missing parameter value for `protocol`",
    ),
    # parameters
    (
        "invalid parameter uid",
        filter_policy("\t\tuid 0\n"),
        "t.conf:12:3: error: invalid parameter, uid, for module ipgpc",
    ),
    (
        "duplicate filter parameter",
        filter_policy("\t\tprotocol tcp\n\t\tprotocol udp\n"),
        "t.conf:13:3: error: duplicate parameter `protocol`",
    ),
    (
        "duplicate params parameter",
        marker("dscpmk", "\t\tnext_action continue\n\t\tnext_action drop\n"),
        "t.conf:15:3: error: duplicate parameter `next_action`",
    ),
    (
        "params parameter in a filter",
        filter_policy("\t\tglobal_stats true\n"),
        "t.conf:12:3: error: invalid parameter, global_stats, for module ipgpc",
    ),
    # values
    (
        "invalid uint8",
        filter_policy("\t\tdsfield 256\n\t\tdsfield_mask 0xff\n"),
        "t.conf:12:11: error: invalid uint8 `256`: out of range 0..255",
    ),
    (
        "invalid int32",
        filter_policy("\t\tprojid ten\n"),
        "t.conf:12:10: error: invalid int32 `ten`",
    ),
    (
        "invalid uint32 trailing garbage",
        marker("flowacct", "\t\tnext_action continue\n\t\tmax_limit 5000abc\n"),
        "t.conf:15:13: error: invalid uint32 `5000abc`",
    ),
    (
        "invalid uint32 octal",
        marker("flowacct", "\t\tnext_action continue\n\t\tmax_limit 010\n"),
        "t.conf:15:13: error: invalid uint32 `010`",
    ),
    (
        "invalid boolean",
        HEAD + "\tparams {\n\t\tglobal_stats yes\n\t}\n}\n",
        "t.conf:6:16: error: invalid boolean `yes`",
    ),
    (
        "invalid port",
        filter_policy("\t\tsport 70000\n"),
        "t.conf:12:9: error: invalid port `70000`: out of range 1..65535",
    ),
    (
        "protocol 0",
        filter_policy("\t\tprotocol 0\n"),
        "t.conf:12:12: error: invalid protocol `0`: protocol must be 1..255",
    ),
    (
        "unrecognized enum value",
        filter_policy("\t\tdirection OUT\n"),
        "t.conf:12:13: error: unrecognized value, OUT, for `direction`",
    ),
    (
        "malformed value list",
        filter_policy("\t\tip_version { V4 V6 }\n"),
        "t.conf:12:14: error: malformed value list `{ V4 V6 }`",
    ),
    (
        "invalid interface name",
        filter_policy("\t\tif_name averyveryverylongname\n"),
        "t.conf:12:11: error: invalid interface name `averyveryverylongname`",
    ),
    (
        "unknown user name",
        filter_policy("\t\tuser nosuchuser_xyz\n"),
        "t.conf:12:8: error: invalid user `nosuchuser_xyz`: no such user name on this host",
    ),
    (
        "cos 8",
        marker("dlcosmk", "\t\tcos 8\n\t\tnext_action continue\n"),
        "t.conf:14:7: error: invalid value, 8, for `cos`: must be 0..7",
    ),
    (
        "cos not a number",
        marker("dlcosmk", "\t\tcos high\n\t\tnext_action continue\n"),
        "t.conf:14:7: error: invalid uint8 `high`",
    ),
    (
        "array index 64",
        marker("dscpmk", "\t\tnext_action continue\n\t\tdscp_map {0-64:46}\n"),
        "t.conf:15:13: error: array declaration for `dscp_map` is invalid: index 64 is out of "
        "range 0..63 in entry `0-64:46`",
    ),
    (
        "array brace missing",
        marker("dscpmk", "\t\tnext_action continue\n\t\tdscp_map 0-63:46\n"),
        "t.conf:15:12: error: '{' missing at `0-63:46`: `dscp_map` is an array like {0-63:0}",
    ),
    (
        "braces on a scalar",
        filter_policy("\t\tprotocol { tcp }\n"),
        "t.conf:12:12: error: invalid protocol: `protocol` takes a single value",
    ),
    # names
    (
        "action name too long",
        marker("dscpmk", "\t\tnext_action continue\n").replace(
            "name m\n", "name m23456789012345678901234\n"
        ),
        "t.conf:12:7: error: name `m23456789012345678901234` exceeds maximum name length "
        "(23 characters)",
    ),
    (
        "class name starts with !",
        HEAD + "\tclass {\n\t\tname !c\n\t\tnext_action continue\n\t}\n}\n",
        "t.conf:6:8: error: name `!c` not allowed to start with '!'",
    ),
    (
        "reserved action name",
        HEAD + "}\naction {\n\tmodule dscpmk\n\tname ipp.drop\n\tparams { next_action drop }\n}\n",
        "t.conf:8:7: error: invalid action name `ipp.drop`: reserved for a virtual action",
    ),
    # addresses
    (
        "cidr /0",
        filter_policy("\t\tsaddr 0.0.0.0/0\n"),
        "t.conf:12:9: error: invalid CIDR mask `/0`: must be /1../32",
    ),
    (
        "mask on host name",
        filter_policy("\t\tdaddr web.example.net/24\n"),
        "t.conf:12:9: error: address masks aren't allowed for host names (`web.example.net/24`)",
    ),
    (
        "incompatible saddr/daddr",
        filter_policy("\t\tsaddr 10.0.0.1\n\t\tdaddr 2001:db8::1\n"),
        "t.conf:13:9: error: incompatible address version: `daddr` is IPv6 but the other is not",
    ),
    (
        "incompatible with ip_version",
        filter_policy("\t\tip_version V6\n\t\tsaddr 10.0.0.1\n"),
        "t.conf:13:9: error: incompatible address version: `saddr` is IPv4 but ip_version "
        "excludes it",
    ),
]


@pytest.mark.parametrize(("text", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_error_message_and_position(text: str, expected: str) -> None:
    assert expected in errors(text)


def test_unresolved_host_warning_position() -> None:
    text = filter_policy("\t\tdaddr nowhere.example.net\n")
    assert errors(text) == [
        "t.conf:12:9: warning: failed to resolve dst host name `nowhere.example.net` for filter "
        "`f`: the filter is ignored (never matches)"
    ]
    assert errors(text, strict=True)[0].startswith("t.conf:12:9: error: failed to resolve dst")


def test_hints() -> None:
    result = check(filter_policy("\t\tuid 0\n"), "t.conf")
    assert result.errors[0].hint == "did you mean `user`?"
    result = check(
        filter_policy("\t\tsaddr 10.0.0.1\n").replace("next_action continue", "next_action AF31")
        + "action {\n\tmodule dscpmk\n\tname markAF31\n\tparams { next_action continue }\n}\n",
        "t.conf",
    )
    err = result.errors[0]
    assert err.message == "undefined action `AF31` in class c, action ipgpc.classify"
    assert err.hint == "did you mean `markAF31`?"
    result = check(filter_policy("\t\tdirection local_out\n"), "t.conf")
    assert result.errors[0].hint == "did you mean `LOCAL_OUT`?"
    result = check("fmt_version 1.0\naction {\n\tmodule dscpmak\n\tname x\n}\n", "t.conf")
    assert result.errors[0].hint == "did you mean `dscpmk`?"
    result = check(marker("tokenmt", "\t\tcir 100\n"), "t.conf")
    assert result.errors[0].hint == "did you mean `committed_rate`?"
    result = check(marker("dscpmk", "\t\tsaddr 10.0.0.1\n"), "t.conf")
    assert result.errors[0].hint == "`saddr` is a parameter of ipgpc filter clauses"
    result = check(filter_policy("\t\tglobal_stats true\n"), "t.conf")
    assert result.errors[0].hint == "`global_stats` belongs in a params clause"


def test_caret_output_format() -> None:
    result = check(filter_policy("\t\tsport 0x10000\n"), "t.conf")
    assert format_diagnostic(result.errors[0]) == (
        "t.conf:12:9: error: invalid port `0x10000`: out of range 1..65535\n"
        "    \t\tsport 0x10000\n"
        "    \t\t      ^"
    )


def test_all_errors_are_reported_with_recovery() -> None:
    text = (
        "fmt_version 1.0\n"  # 1
        "action {\n"  # 2
        "\tmodule ipgpc\n"  # 3
        "\tname ipgpc.classify\n"  # 4
        "\tfilter { name f class c protocol 0 dport 99999 }\n"  # 5
        "\tclass { name c next_action m }\n"  # 6
        "\tbogus\n"  # 7: broken block -> resync at next action
        "\tfilter { name g class c protocol 0 }\n"  # 8: skipped
        "}\n"  # 9
        "action {\n"  # 10
        "\tmodule dscpmk\n"  # 11
        "\tname m\n"  # 12
        "\tparams { next_action continue dscp_map {0:99} }\n"  # 13
        "}\n"  # 14
        "action {\n"  # 15
        "\tmodule flowacct\n"  # 16
        "\tname acct\n"  # 17
        "\tparams { next_action continue max_limit x }\n"  # 18
        "}\n"
    )
    assert errors(text) == [
        "t.conf:5:35: error: invalid protocol `0`: protocol must be 1..255",
        "t.conf:5:43: error: invalid port `99999`: out of range 1..65535",
        "t.conf:7:2: error: params/filter/class clause expected, found `bogus`",
        "t.conf:13:42: error: array declaration for `dscp_map` is invalid: value 99 is out of "
        "range 0..63 in entry `0:99`",
        "t.conf:18:42: error: invalid uint32 `x`",
    ]


def test_missing_brace_resyncs_at_next_action() -> None:
    text = (
        "fmt_version 1.0\n"
        "action {\n"
        "\tmodule ipgpc\n"
        "\tname ipgpc.classify\n"
        "\tclass { name c next_action m }\n"
        "\n"
        "action {\n"  # 7: the ipgpc action is not closed
        "\tmodule dscpmk\n"
        "\tname m\n"
        "\tparams { next_action continue dscp_map {0:64} }\n"  # 10
        "}\n"
    )
    found = errors(text)
    assert found[0] == (
        "t.conf:7:1: error: '}' missing: action `ipgpc.classify` is not closed before this action"
    )
    assert found[1].startswith("t.conf:10:42: error: array declaration for `dscp_map`")


@pytest.mark.parametrize("block", ["params {\n\t\tglobal_stats true\n", "class {\n\t\tname c\n"])
def test_unclosed_inner_block_resyncs(block: str) -> None:
    text = (
        HEAD
        + "\t"
        + block  # lines 5-6, never closed
        + "}\n"  # 7 closes the block, not the action
        + "action {\n"  # 8
        + "\tmodule dscpmk\n\tname m\n\tparams { next_action continue dscp_map {0:64} }\n}\n"
    )
    found = errors(text)
    assert any(
        f.startswith("t.conf:8:1: error: '}' missing: action `ipgpc.classify`") for f in found
    )
    assert found[-1].startswith("t.conf:11:42: error: array declaration for `dscp_map`")


VOCAB = [
    "fmt_version",
    "1.0",
    "action",
    "{",
    "}",
    "module",
    "ipgpc",
    "dscpmk",
    "tokenmt",
    "name",
    "ipgpc.classify",
    "params",
    "class",
    "filter",
    "next_action",
    "continue",
    "c",
    "m",
    "global_stats",
    "true",
    "dscp_map",
    "0-63:1",
    "protocol",
    "tcp",
    "daddr",
    "web.example.net",
    "10.0.0.0/8",
    '"q',
    '"a b"',
    "#",
    "\n",
    "direction",
    "{LOCAL_IN,",
    "enable_stats",
    "committed_rate",
    "0x10",
]


@given(st.lists(st.sampled_from(VOCAB), max_size=60))
@settings(max_examples=150, deadline=None)
def test_any_token_soup_gives_diagnostics_not_exceptions(words: list[str]) -> None:
    text = " ".join(words)
    result = check(text, "fuzz.conf", resolver=RESOLVER)
    assert result.ok == (not result.errors)
    for diagnostic in result.diagnostics:
        assert diagnostic.location is not None and diagnostic.location.filename == "fuzz.conf"
        format_diagnostic(diagnostic)


@given(st.text(max_size=200))
@settings(max_examples=100, deadline=None)
def test_any_text_gives_diagnostics_not_exceptions(text: str) -> None:
    result = check("fmt_version 1.0\naction {\n" + text, "fuzz.conf", resolver=RESOLVER)
    assert result.policy is None or not result.errors


def test_class_items_in_params_get_hints() -> None:
    result = check(
        marker("flowacct", "\t\tnext_action continue\n\t\tmax_limit 1\n\t\tenable_stats TRUE\n"),
        "t.conf",
    )
    (err,) = result.errors
    assert err.message == "invalid parameter, enable_stats, for module flowacct"
    assert err.hint == "per-class `enable_stats` exists only in ipgpc classes; use global_stats"
    result = check(HEAD + "\tparams {\n\t\tnext_action continue\n\t}\n}\n", "t.conf")
    assert result.errors[0].hint == "`next_action` belongs in a class clause"


def test_array_errors_point_at_the_entry_on_the_starting_line() -> None:
    same_line = marker("dscpmk", "\t\tnext_action continue\n\t\tdscp_map { 0-9:10; 10-63:x }\n")
    assert errors(same_line) == [
        "t.conf:15:22: error: array declaration for `dscp_map` is invalid: value `x` is not a "
        "decimal number in entry `10-63:x`"
    ]
    # ipqosconf reports the line where the array starts, so a later bad line points at `{`
    later_line = marker(
        "dscpmk", "\t\tnext_action continue\n\t\tdscp_map {\n\t\t\t0-63:77\n\t\t}\n"
    )
    assert errors(later_line)[0].startswith("t.conf:15:12: error: array declaration")


def test_enum_list_error_points_at_the_bad_name() -> None:
    text = filter_policy("\t\tdirection {\n\t\t\tLOCAL_IN,\n\t\t\tFWD_INN\n\t\t}\n")
    assert errors(text) == ["t.conf:14:4: error: unrecognized value, FWD_INN, for `direction`"]
