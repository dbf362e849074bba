"""The policy model compares meaning only: where a thing was written, the text a policy was
read from and its warnings take no part in == or hash; every other field does."""

from __future__ import annotations

import ipaddress

import pytest

from diffserv.policy.model import (
    Action,
    Class,
    Diagnostic,
    Filter,
    HostName,
    Location,
    Policy,
)

HERE = Location("a.conf", 3, 1)
THERE = Location("b.conf", 9, 5)


def _policy(location: Location | None, source: str | None = None) -> Policy:
    flt = Filter("f1", "web", protocol=6, dport=80, location=location)
    cls = Class("web", "ipp.continue", enable_stats=True, location=location)
    action = Action("ipgpc.classify", "ipgpc", classes=(cls,), filters=(flt,), location=location)
    warnings = () if source is None else (Diagnostic("warning", "w", location),)
    return Policy((action,), source=source, warnings=warnings)


@pytest.mark.parametrize(
    ("written_here", "written_there"),
    [
        (Filter("f1", "web", location=HERE), Filter("f1", "web", location=THERE)),
        (Filter("f1", "web", location=HERE), Filter("f1", "web")),
        (Class("web", "ipp.drop", location=HERE), Class("web", "ipp.drop", location=THERE)),
        (Action("m", "dscpmk", location=HERE), Action("m", "dscpmk", location=THERE)),
        (_policy(HERE, "text one"), _policy(THERE, "text two")),
        (_policy(HERE, "text one"), _policy(None)),
    ],
    ids=["filter", "filter-no-location", "class", "action", "policy", "policy-bare"],
)
def test_locations_source_and_warnings_take_no_part_in_equality_or_hash(
    written_here: object, written_there: object
) -> None:
    assert written_here == written_there
    assert not written_here != written_there  # noqa: SIM202 (the != operator itself)
    assert hash(written_here) == hash(written_there)
    assert len({written_here, written_there}) == 1


@pytest.mark.parametrize(
    ("one", "other"),
    [
        (Filter("f1", "web", dport=80), Filter("f1", "web", dport=81)),
        (Filter("f1", "web"), Filter("f2", "web")),
        (Class("web", "ipp.drop"), Class("web", "ipp.drop", enable_stats=True)),
        (Action("m", "dscpmk"), Action("m", "dscpmk", params=(("dscp_map", (0,) * 64),))),
        (Policy(()), Policy((), fmt_version="2.0")),
        (_policy(None), Policy(())),
    ],
    ids=["filter-selector", "filter-name", "class", "action", "policy-version", "policy-actions"],
)
def test_every_other_field_is_compared(one: object, other: object) -> None:
    assert one != other
    assert not one == other  # noqa: SIM201 (the == operator itself)


def test_a_model_value_equals_only_a_value_of_its_own_class() -> None:
    flt = Filter("f1", "web")
    assert flt != ("f1", "web")
    assert Class("web", "ipp.drop") != Filter("web", "ipp.drop")
    assert flt != object()


def test_values_compared_in_full_keep_their_locations_in_equality() -> None:
    assert Location("a.conf", 1, 1) != Location("a.conf", 1, 2)
    assert Diagnostic("error", "e", HERE) != Diagnostic("error", "e", THERE)
    net = ipaddress.ip_network("192.0.2.0/24")
    assert HostName("h", (net,)) == HostName("h", (net,))
    assert HostName("h", (net,)) != HostName("h", ())


def test_model_values_are_immutable() -> None:
    flt = Filter("f1", "web", location=HERE)
    with pytest.raises(AttributeError):
        flt.name = "f2"  # type: ignore[misc]
    with pytest.raises(AttributeError):
        _policy(HERE).source = "other"  # type: ignore[misc]
