"""parse(format_policy(p)) == p for every valid policy, and printing is stable."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from strategies import STUB_HOSTS, policies

from diffserv.policy import parse, static_resolver
from diffserv.policy.model import Policy
from diffserv.policy.printer import format_policy

RESOLVER = static_resolver(STUB_HOSTS)


def _parse(text: str) -> Policy:
    return parse(text, "generated.conf", resolver=RESOLVER)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(policies(host_names=True))
def test_parse_of_format_gives_the_same_policy(policy: Policy) -> None:
    text = format_policy(policy)
    assert _parse(text) == policy, text


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(policies())
def test_format_is_stable(policy: Policy) -> None:
    text = format_policy(policy)
    assert format_policy(_parse(text)) == text
