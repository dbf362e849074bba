"""Each module's meaning in one place: one typed value per action, defaults from the schema."""

from __future__ import annotations

import pytest

from diffserv.policy import parse, static_resolver
from diffserv.policy.interpret import (
    MODULE_RULES,
    DlcosmkParams,
    DscpmkParams,
    FlowacctParams,
    IpgpcParams,
    MissingParameterError,
    TokenmtParams,
    TswtclmtParams,
    interpret,
)
from diffserv.policy.model import CONTINUE, DEFAULT_CLASS, DROP, Action
from diffserv.policy.schema import (
    DEFAULT_COLOR_MAP,
    IDENTITY_DSCP_MAP,
    MODULES,
    lookup_param,
)

POLICY = """\
fmt_version 1.0
action { module ipgpc name ipgpc.classify params { global_stats false }
  class { name web next_action meter }
  filter { name f class web dport 80 } }
action { module tokenmt name meter params {
  committed_rate 8000 committed_burst 16000 peak_rate 16000 peak_burst 32000
  green_action_name mark yellow_action_name tsw red_action_name drop } }
action { module tswtclmt name tsw params {
  committed_rate 1000 peak_rate 2000 window 50
  green_action_name acct yellow_action_name cos red_action_name drop } }
action { module dscpmk name mark params { next_action acct } }
action { module dlcosmk name cos params { next_action acct cos 2 } }
action { module flowacct name acct params { next_action continue max_limit 100 } }
"""


def _policy_params() -> dict[str, object]:
    policy = parse(POLICY, "i.conf", resolver=static_resolver({}))
    return {action.name: interpret(action) for action in policy.actions}


def test_one_table_covers_every_module_of_the_schema() -> None:
    assert set(MODULE_RULES) == set(MODULES)
    assert all(rules.schema is MODULES[name] for name, rules in MODULE_RULES.items())


def test_every_module_has_its_typed_meaning() -> None:
    got = _policy_params()
    ipgpc = got["ipgpc.classify"]
    assert isinstance(ipgpc, IpgpcParams)
    assert [c.name for c in ipgpc.classes] == ["web", DEFAULT_CLASS]
    assert ipgpc.class_ids == {"web": 0, DEFAULT_CLASS: 1}
    assert got["meter"] == TokenmtParams(
        committed_rate_bps=8000,
        committed_burst_bits=16000,
        peak_rate_bps=16000,
        peak_burst_bits=32000,
        colour_aware=False,
        colour_map=DEFAULT_COLOR_MAP,
        colour_map_given=False,
        green_action="mark",
        yellow_action="tsw",
        red_action=DROP,
    )
    assert got["tsw"] == TswtclmtParams(1000, 2000, 50, "acct", "cos", DROP)
    assert got["mark"] == DscpmkParams(IDENTITY_DSCP_MAP, False, "acct")
    cos = got["cos"]
    assert cos == DlcosmkParams(2, "acct")
    assert isinstance(cos, DlcosmkParams)
    assert (cos.b_band, cos.dl_max, cos.sent_as_zero, cos.pcp(), cos.pcp("plain")) == (
        0,
        0,
        True,
        0,
        2,
    )
    with pytest.raises(ValueError, match="cos mode"):
        cos.pcp("weird")


def test_defaults_are_the_schemas() -> None:
    acct = _policy_params()["acct"]
    assert isinstance(acct, FlowacctParams)
    timer, timeout = lookup_param("flowacct", "timer"), lookup_param("flowacct", "timeout")
    assert timer is not None and timeout is not None
    assert (acct.timer_ms, acct.timeout_ms) == (timer.default, timeout.default)
    assert acct.next_action == CONTINUE
    mark = _policy_params()["mark"]
    assert isinstance(mark, DscpmkParams) and mark.identity


def test_hand_built_actions_missing_what_the_module_needs() -> None:
    with pytest.raises(MissingParameterError, match="parameter max_limit is not set"):
        interpret(Action("a", "flowacct", params=(("next_action", CONTINUE),)))
    with pytest.raises(TypeError):
        interpret(Action("d", "dlcosmk", params=(("cos", "five"),)))
    with pytest.raises(KeyError):
        interpret(Action("x", "nosuchmodule"))
    # markers without next_action go on to continue, as the engine always did
    assert interpret(Action("m", "dscpmk")) == DscpmkParams(IDENTITY_DSCP_MAP, False, CONTINUE)


def test_markers_are_flagged_in_the_table() -> None:
    assert {name for name, rules in MODULE_RULES.items() if rules.marker} == {"dscpmk", "dlcosmk"}
