"""Every configuration example of the IPQoS documentation, checked as ipqosconf would.

The files under examples/policies/ are re-typed from the illumos samples, the
ipqosconf(8) man page and the Oracle IPQoS guide, quirks included (see each file's
header). The table says what ipqosconf makes of each: valid, or the first error's line
and text. Host names go to a stub resolver, never to DNS.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from diffserv.policy import CheckResult, check, parse, static_resolver
from diffserv.policy.explain import explain_policy
from diffserv.policy.printer import format_policy

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "policies"
RESOLVER = static_resolver({"eng-subnet": ["192.0.2.1"], "ebay-subnet": ["198.51.100.7"]})

# file → (valid?, line of the first error, words of its message, number of warnings)
EXPECTED: dict[str, tuple[bool, int | None, tuple[str, ...], int]] = {
    "illumos-sample-1.conf": (False, 74, ("invalid port", "__videoport__"), 0),
    "illumos-sample-2.conf": (False, 54, ("invalid port", "myport"), 1),
    "illumos-sample-3.conf": (True, None, (), 1),
    "ipqosconf-8-example.conf": (True, None, (), 0),
    "oracle-34-1-goldweb.conf": (False, 33, ("invalid port", "videosrv"), 0),
    "oracle-34-2-userweb.conf": (True, None, (), 0),
    "oracle-34-3-bigapps.conf": (
        False,
        72,
        ("undefined action", "AF31", "red_action_name", "meterftp"),
        0,
    ),
    "oracle-37-1-color-aware.conf": (True, None, (), 0),
    "oracle-37-2-vlan.conf": (True, None, (), 0),
    # Our own examples (used by the engine demo): valid, no warnings.
    "enterprise-edge.conf": (True, None, (), 0),
    "branch-uplink.conf": (True, None, (), 0),
    "vlan-host.conf": (True, None, (), 0),
}


def _check(name: str) -> tuple[str, CheckResult]:
    path = EXAMPLES / name
    text = path.read_text(encoding="utf-8")
    return text, check(text, name, resolver=RESOLVER)


def test_table_files_exist_and_other_bundled_policies_are_valid() -> None:
    present = {p.name for p in EXAMPLES.glob("*.conf")}
    assert set(EXPECTED) <= present
    for name in sorted(present - set(EXPECTED)):  # examples added later must at least be valid
        _, result = _check(name)
        assert result.ok, (name, [d.message for d in result.errors])


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_example_outcome(name: str) -> None:
    valid, line, words, warnings = EXPECTED[name]
    _, result = _check(name)
    assert result.ok is valid, [d.message for d in result.diagnostics]
    assert len(result.warnings) == warnings
    if not valid:
        first = result.errors[0]
        assert first.location is not None
        assert first.location.filename == name
        assert first.location.line == line
        for word in words:
            assert word in first.message


def test_sample_1_also_reports_uid_with_a_hint_to_user() -> None:
    _, result = _check("illumos-sample-1.conf")
    uid = [d for d in result.errors if "uid" in d.message]
    assert uid and uid[0].location is not None and uid[0].location.line == 90
    assert uid[0].hint is not None and "user" in uid[0].hint


def test_bigapps_reports_the_orphaned_marker() -> None:
    _, result = _check("oracle-34-3-bigapps.conf")
    messages = [d.message for d in result.errors]
    assert any("markAF31" in m and "referenced" in m for m in messages)


def test_sample_3_is_an_error_under_strict() -> None:
    text = (EXAMPLES / "illumos-sample-3.conf").read_text(encoding="utf-8")
    result = check(text, "s3", strict=True, resolver=RESOLVER)
    assert not result.ok
    assert result.errors[0].location is not None and result.errors[0].location.line == 61


@pytest.mark.parametrize("name", sorted(n for n, e in EXPECTED.items() if e[0]))
def test_valid_examples_round_trip_through_the_printer(name: str) -> None:
    policy = parse((EXAMPLES / name).read_text(encoding="utf-8"), name, resolver=RESOLVER)
    text = format_policy(policy)
    again = parse(text, name, resolver=RESOLVER)
    assert again == policy
    assert format_policy(again) == text
    assert explain_policy(policy)  # explains without failing


def test_man_page_example_explained() -> None:
    name = "ipqosconf-8-example.conf"
    policy = parse((EXAMPLES / name).read_text(encoding="utf-8"), name, resolver=RESOLVER)
    text = explain_policy(policy)
    assert "filter from_eng: all traffic" not in text
    assert "from host eng-subnet (192.0.2.1)" in text
    assert "committed 64 bit/s" in text
    assert "every DSCP → AF32 (28)" in text
    assert "flow accounting: a flow is written out after 30 ms idle (scan every 10 ms)" in text
