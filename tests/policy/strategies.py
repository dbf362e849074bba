"""Hypothesis strategies that build valid ``Policy`` objects directly from the model.

The action graph is acyclic by construction (an action only refers to actions after it in a
random order, or to a virtual action) and every action is reachable from ipgpc.classify
(an unreferenced one gets an ipgpc class of its own). Parameters respect the module
schemas and the kernel create rules, so each generated policy is one the parser must accept.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable

from hypothesis import strategies as st

from diffserv.directions import FWD_IN, FWD_OUT, LOCAL_IN, LOCAL_OUT
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
    IPNetwork,
    ParamValue,
    Policy,
)
from diffserv.policy.schema import param_order

UINT32_MAX = 2**32 - 1
RESERVED = frozenset({"continue", "drop", "defer", "ipp.continue", "ipp.drop", "ipp.defer"})
MODULES = ("tokenmt", "tswtclmt", "dscpmk", "dlcosmk", "flowacct")

# Host names the tests' resolver stub knows, with what it answers.
STUB_HOSTS: dict[str, tuple[str, ...]] = {
    "web.example.net": ("192.0.2.10", "2001:db8::10"),
    "voip-gw.example.net": ("192.0.2.20",),
    "eng-subnet": ("198.51.100.1",),
}

_NAME_START = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_."
_NAME_CHARS = _NAME_START + "-: {}"

names = st.builds(
    lambda head, tail: head + tail,
    st.sampled_from(_NAME_START),
    st.text(alphabet=_NAME_CHARS, max_size=22),
)


def _interfaces() -> list[str]:
    try:
        return [name for _, name in socket.if_nameindex() if len(name) < 16] or ["lo"]
    except OSError:
        return ["lo"]


def _unique(draw: st.DrawFn, count: int, taken: set[str]) -> list[str]:
    result: list[str] = []
    while len(result) < count:
        name = draw(names)
        if name in taken or name in RESERVED or name == CLASSIFIER_ACTION:
            continue
        taken.add(name)
        result.append(name)
    return result


u32 = st.integers(0, UINT32_MAX)
positive_u32 = st.integers(1, UINT32_MAX)
dscp_maps = st.lists(st.integers(0, 63), min_size=64, max_size=64).map(tuple)
colour_maps = st.lists(st.sampled_from((1, 2, 4)), min_size=64, max_size=64).map(tuple)


def _ordered(module: str, params: dict[str, ParamValue]) -> tuple[tuple[str, ParamValue], ...]:
    order = param_order(module)
    return tuple((name, params[name]) for name in order if name in params)


@st.composite
def module_params(
    draw: st.DrawFn, module: str, target: Callable[[], str]
) -> tuple[tuple[str, ParamValue], ...]:
    """Valid params of ``module``; ``target()`` draws an action reference."""
    p: dict[str, ParamValue] = {}
    if module == "tokenmt":
        p["red_action_name"] = target()
        p["green_action_name"] = target()
        cir = draw(positive_u32)
        p["committed_rate"] = cir
        shape = draw(st.sampled_from(("two-outcome", "single-rate", "two-rate")))
        if shape == "two-outcome":
            p["committed_burst"] = draw(positive_u32)
        elif shape == "single-rate":
            p["yellow_action_name"] = target()
            p["committed_burst"] = draw(u32)
            p["peak_burst"] = draw(positive_u32)
        else:
            p["yellow_action_name"] = target()
            p["peak_rate"] = draw(st.integers(cir, UINT32_MAX))
            p["committed_burst"] = draw(positive_u32)
            p["peak_burst"] = draw(positive_u32)
        if draw(st.booleans()):
            p["color_aware"] = draw(st.booleans())
        if draw(st.booleans()):
            p["color_map"] = draw(colour_maps)
    elif module == "tswtclmt":
        p["red_action_name"] = target()
        p["yellow_action_name"] = target()
        p["green_action_name"] = target()
        cir = draw(u32)
        p["committed_rate"] = cir
        p["peak_rate"] = draw(st.integers(cir, UINT32_MAX))
        p["window"] = draw(positive_u32)
    elif module == "dscpmk":
        p["next_action"] = target()
        if draw(st.booleans()):
            p["dscp_map"] = draw(dscp_maps)
        if draw(st.booleans()):
            p["dscp_detailed_stats"] = draw(st.booleans())
    elif module == "dlcosmk":
        p["next_action"] = target()
        p["cos"] = draw(st.integers(0, 7))
    elif module == "flowacct":
        p["next_action"] = target()
        if draw(st.booleans()):
            p["timer"] = draw(positive_u32)
        if draw(st.booleans()):
            p["timeout"] = draw(positive_u32)
        p["max_limit"] = draw(positive_u32)
    return _ordered(module, p)


def _v4(draw: st.DrawFn) -> IPNetwork:
    prefix = draw(st.integers(1, 32))
    raw = draw(st.integers(0, 2**32 - 1))
    return ipaddress.IPv4Network((raw, prefix), strict=False)


def _v6(draw: st.DrawFn) -> IPNetwork:
    prefix = draw(st.integers(1, 128))
    raw = draw(st.integers(0, 2**128 - 1))
    net = ipaddress.IPv6Network((raw, prefix), strict=False)
    if net.network_address.ipv4_mapped is not None:  # would be parsed back as IPv4
        net = ipaddress.IPv6Network(("2001:db8::", prefix), strict=False)
    return net


def _host(name: str, families: int) -> HostName:
    nets: list[IPNetwork] = []
    for text in STUB_HOSTS[name]:
        address = ipaddress.ip_address(text)
        if (address.version == 4 and families & IP_V4) or (
            address.version == 6 and families & IP_V6
        ):
            nets.append(ipaddress.ip_network(address))
    return HostName(name, tuple(nets))


@st.composite
def filters(draw: st.DrawFn, name: str, class_name: str, *, host_names: bool = False) -> Filter:
    """A valid ipgpc filter with at least one real selector."""
    while True:
        f: dict[str, object] = {}
        if draw(st.booleans()):
            f["user"] = draw(st.integers(0, 2**31 - 1))
        if draw(st.integers(0, 5)) == 0:
            f["projid"] = draw(st.integers(0, 2**31 - 1))
        if draw(st.integers(0, 5)) == 0:
            f["if_name"] = draw(st.sampled_from(_interfaces()))
        if draw(st.booleans()):
            f["direction"] = draw(st.integers(1, LOCAL_IN | LOCAL_OUT | FWD_IN | FWD_OUT))
        if draw(st.booleans()):
            f["protocol"] = draw(st.integers(1, 255))
        if draw(st.integers(0, 3)) == 0:
            f["dsfield"] = draw(st.integers(0, 255))
            f["dsfield_mask"] = draw(st.integers(1, 255))
        family = draw(st.sampled_from((0, IP_V4, IP_V6)))
        if host_names and draw(st.integers(0, 3)) == 0:
            side = draw(st.sampled_from(("saddr", "daddr")))
            f[side] = _host(draw(st.sampled_from(sorted(STUB_HOSTS))), IP_V4 | IP_V6)
        elif family == IP_V4:
            if draw(st.booleans()):
                f["saddr"] = _v4(draw)
            if draw(st.booleans()):
                f["daddr"] = _v4(draw)
        elif family == IP_V6:
            if draw(st.booleans()):
                f["saddr"] = _v6(draw)
            if draw(st.booleans()):
                f["daddr"] = _v6(draw)
        if draw(st.booleans()):
            f["sport"] = draw(st.integers(1, 65535))
        if draw(st.booleans()):
            f["dport"] = draw(st.integers(1, 65535))
        if f:
            break
    if draw(st.booleans()):
        f["priority"] = draw(u32)
    if draw(st.integers(0, 2)) == 0:
        f["precedence"] = draw(u32)
    hosts = [key for key in ("saddr", "daddr") if isinstance(f.get(key), HostName)]
    if hosts and draw(st.integers(0, 2)) == 0:
        # ip_version picks the families a host name is looked up in.
        version = draw(st.sampled_from((IP_V4, IP_V6, IP_V4 | IP_V6)))
        f["ip_version"] = version
        for key in hosts:
            host = f[key]
            assert isinstance(host, HostName)
            f[key] = _host(host.name, version)
    elif not hosts and draw(st.integers(0, 3)) == 0:
        addressed = "saddr" in f or "daddr" in f
        f["ip_version"] = family if addressed else draw(st.sampled_from((IP_V4, IP_V6, 3)))
    return Filter(name=name, class_name=class_name, **f)  # type: ignore[arg-type]


@st.composite
def policies(draw: st.DrawFn, *, max_actions: int = 6, host_names: bool = False) -> Policy:
    """A valid policy: ipgpc.classify first or anywhere, acyclic, everything reachable."""
    taken: set[str] = set()
    count = draw(st.integers(0, max_actions))
    action_names = _unique(draw, count, taken)
    modules = [draw(st.sampled_from(MODULES)) for _ in action_names]
    referenced: set[str] = set()
    built: list[Action] = []
    for index, (name, module) in enumerate(zip(action_names, modules, strict=True)):
        later = action_names[index + 1 :]

        def target(later: list[str] = later) -> str:
            choice = draw(st.sampled_from([CONTINUE, DROP, DEFER, *later, *later]))
            referenced.add(choice)
            return choice

        params = draw(module_params(module, target))
        built.append(Action(name, module, draw(st.booleans()), params))

    class_names = _unique(draw, draw(st.integers(0, 4)), {"default"})
    if draw(st.integers(0, 4)) == 0:  # redefine the permanent class
        class_names.append("default")
    classes = []
    for cls_name in class_names:
        next_action = draw(st.sampled_from([CONTINUE, DROP, *action_names]))
        referenced.add(next_action)
        classes.append(Class(cls_name, next_action, draw(st.booleans())))
    for name in action_names:
        if name not in referenced:
            cls_name = _unique(draw, 1, set(class_names))[0]
            class_names.append(cls_name)
            classes.append(Class(cls_name, name, draw(st.booleans())))
    filter_names = _unique(draw, draw(st.integers(0, 5)), set())
    flts = [
        draw(
            filters(fname, draw(st.sampled_from([*class_names, "default"])), host_names=host_names)
        )
        for fname in filter_names
    ]
    classifier = Action(
        CLASSIFIER_ACTION, "ipgpc", draw(st.booleans()), (), tuple(classes), tuple(flts)
    )
    position = draw(st.integers(0, len(built)))
    actions = [*built[:position], classifier, *built[position:]]
    return Policy(tuple(actions))
