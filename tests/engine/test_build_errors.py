"""Errors by blame: the engine rejects a policy with the location of the action at fault."""

from __future__ import annotations

import pytest
from engine_helpers import classifier_policy

from diffserv.engine.graph import compile_policy, topological_order
from diffserv.errors import PolicyFileError
from diffserv.policy import check, static_resolver
from diffserv.policy.diagnostics import LocatedPolicyError, diagnostics_to_json
from diffserv.policy.model import Action, Class, Filter, Location
from diffserv.policy.refgraph import find_cycles

AT = Location("policy.conf", 12, 1)


def _with(*extra: Action, first: str) -> object:
    return classifier_policy(
        [Filter("w", "web", dport=80)], extra=extra, classes=[Class("web", first)]
    )


def test_a_rejected_action_carries_its_location() -> None:
    policy = _with(Action("m", "dlcosmk", params=(("cos", 9),), location=AT), first="m")
    with pytest.raises(PolicyFileError) as info:
        compile_policy(policy)  # type: ignore[arg-type]
    error = info.value
    assert isinstance(error, LocatedPolicyError)
    assert str(error) == "policy.conf:12:1: action m: action m: cos must be 0..7"
    assert (error.action, error.location) == ("m", AT)
    assert error.diagnostic.location == AT
    assert error.diagnostic.message == "action m: action m: cos must be 0..7"
    assert '"line": 12' in diagnostics_to_json([error.diagnostic])


def test_a_module_worded_rejection_keeps_its_text_and_gains_a_location() -> None:
    meter = Action(
        "t",
        "tokenmt",
        params=(
            ("red_action_name", "ipp.drop"),
            ("green_action_name", "ipp.continue"),
            ("committed_rate", 0),
            ("committed_burst", 8000),
        ),
        location=AT,
    )
    with pytest.raises(LocatedPolicyError) as info:
        compile_policy(_with(meter, first="t"))  # type: ignore[arg-type]
    assert str(info.value) == "policy.conf:12:1: error: Invalid Parameters for action t."
    assert info.value.location == AT
    assert info.value.diagnostic.message == "Invalid Parameters for action t."


def test_cycles_and_undefined_references_are_blamed_on_an_action() -> None:
    a_at, b_at = Location("c.conf", 3, 1), Location("c.conf", 9, 1)
    cyclic = _with(
        Action("a", "dscpmk", params=(("next_action", "b"),), location=a_at),
        Action("b", "dscpmk", params=(("next_action", "a"),), location=b_at),
        first="a",
    )
    with pytest.raises(LocatedPolicyError, match="involved in cycle") as info:
        topological_order(cyclic)  # type: ignore[arg-type]
    assert info.value.location == a_at
    dangling = _with(
        Action("a", "dscpmk", params=(("next_action", "nowhere"),), location=a_at), first="a"
    )
    with pytest.raises(LocatedPolicyError, match="undefined action nowhere") as info:
        topological_order(dangling)  # type: ignore[arg-type]
    assert info.value.location == a_at


def test_the_checker_and_the_engine_share_one_cycle_walk() -> None:
    edges = {"ipgpc.classify": ["a"], "a": ["b"], "b": ["a", "c"], "c": ["c"]}
    assert find_cycles(edges, edges) == [["a", "b", "a"], ["c", "c"]]
    assert find_cycles(["x"], {"x": ["y"], "y": []}) == []
    text = """fmt_version 1.0
action { module ipgpc name ipgpc.classify params { global_stats false }
  class { name web next_action a }
  filter { name f class web dport 80 } }
action { module dscpmk name a params { next_action b } }
action { module dscpmk name b params { next_action a } }
"""
    result = check(text, "c.conf", resolver=static_resolver({}))
    assert [d.message for d in result.diagnostics if "cycle" in d.message] == [
        "action a involved in cycle: a -> b -> a"
    ]
