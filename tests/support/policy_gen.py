"""Seeded random IPQoS policies and the packets that exercise them, for equivalence tests.

The compiled kernel ruleset is checked against the offline engine packet by packet; the
interesting cases are the ones where a compiler can go wrong, so the generator makes them
common rather than rare:

* filters OVERLAP: addresses come from a small pool of nested prefixes (a /16, a /24
  inside it, a /32 inside that) and ports from a handful of values, so one packet usually
  matches several filters and the ranking (priority, then precedence, then file order)
  decides its class; exact ties occur too;
* ``dsfield`` with masks that cover only the DSCP, part of it, or the ECN bits as well
  (an IPv6 masked match is a known trap of nft 1.0.6);
* ``direction`` lists with and without FWD_OUT (the router forwards, so a filter without
  it must never match there), and ``ip_version``, which is not a selector;
* classes end in dscpmk maps that depend on the incoming DSCP (partial maps leave the
  rest unchanged), dlcosmk, chains of both, ``drop``, and a redefined ``default``.

Packets: for every filter some built to match it (v4 and v6 unless its addresses fix the
family, TCP and UDP unless its protocol does, every ECN value, DSCPs the mask admits),
plus random ones that match nothing in particular. Each packet has a unique id that goes
into its payload, so the wire capture can be matched to the oracle's output.

Everything is deterministic for a seed: a failing case is reproduced from its seed.
"""

from __future__ import annotations

import ipaddress
import random
from dataclasses import dataclass, field

# address pools: nested, so filters overlap; none of them inside 10.99/16 or fd99::/16,
# which the test's own links use, and none a martian the router would refuse to forward
V4_POOL = ("172.20.0.0/16", "172.20.5.0/24", "172.20.5.7/32", "198.18.0.0/15", "198.18.9.0/24")
V6_POOL = ("2001:db8:a::/48", "2001:db8:a:5::/64", "2001:db8:a:5::7/128", "2001:db8:b::/48")
V4_FREE = "203.0.113.0/24"  # addresses that no filter names
V6_FREE = "2001:db8:ff::/64"
PORTS = (53, 80, 443, 5060, 8080)
MASKS = (0xFC, 0xFC, 0xE0, 0x1C, 0xFF, 0x03)
DIRECTIONS = ("FWD_OUT", "FWD_OUT", "LOCAL_OUT", "LOCAL_IN", "{ LOCAL_OUT, FWD_OUT }", "FWD_IN")
PROTOCOLS = {"tcp": 6, "udp": 17}
# the code points maps name and packets mostly carry, so a map's outcome varies with them
DSCP_POOL = (0, 8, 10, 12, 18, 26, 34, 46, 48)


@dataclass(frozen=True)
class FilterSpec:
    """One ipgpc filter: its selectors as the policy file has them (None = absent)."""

    name: str
    klass: str
    saddr: str | None = None
    daddr: str | None = None
    sport: int | None = None
    dport: int | None = None
    protocol: str | None = None
    dsfield: tuple[int, int] | None = None  # (value, mask)
    direction: str | None = None
    ip_version: str | None = None
    priority: int | None = None
    precedence: int | None = None

    def family(self) -> int | None:
        """The address family its addresses fix, or None."""
        for addr in (self.saddr, self.daddr):
            if addr is not None:
                return ipaddress.ip_network(addr).version
        return None

    def text(self) -> str:
        lines = [f"\tfilter {{\n\t\tname {self.name}\n\t\tclass {self.klass}"]
        for key in ("saddr", "daddr", "sport", "dport", "protocol", "direction", "ip_version"):
            value = getattr(self, key)
            if value is not None:
                lines.append(f"\t\t{key} {value}")
        if self.dsfield is not None:
            lines.append(
                f"\t\tdsfield {self.dsfield[0]:#04x}\n\t\tdsfield_mask {self.dsfield[1]:#04x}"
            )
        for key in ("priority", "precedence"):
            value = getattr(self, key)
            if value is not None:
                lines.append(f"\t\t{key} {value}")
        return "\n".join(lines) + "\n\t}\n"


@dataclass
class PolicySpec:
    """A whole generated policy: its text and its filters (to build matching packets)."""

    text: str
    filters: list[FilterSpec] = field(default_factory=list)


@dataclass(frozen=True)
class PacketSpec:
    """One test packet, before it is framed."""

    pid: int  # unique id, carried in the payload
    family: int
    src: str
    dst: str
    proto: int  # 6 or 17
    sport: int
    dport: int
    tos: int  # the whole DS byte (DSCP << 2 | ECN)


def _action(name: str, module: str, params: str) -> str:
    return f"action {{\n\tmodule {module}\n\tname {name}\n\tparams {{\n{params}\t}}\n}}\n"


def _dscp_map(rng: random.Random) -> str:
    """A map that is constant, or partial (unlisted code points unchanged), or a remap
    of a few specific incoming values: the outcome depends on the incoming DSCP."""
    kind = rng.choice(("constant", "partial", "remap", "remap"))
    if kind == "constant":
        return f"0-63:{rng.randrange(64)}"
    if kind == "partial":
        low = rng.choice(DSCP_POOL)
        return f"{low}-{low + rng.randrange(1, 20)}:{rng.randrange(64)}"
    picks = rng.sample(DSCP_POOL, 4)
    return ";".join(f"{p}:{rng.randrange(64)}" for p in picks)


def _markers(rng: random.Random, classes: list[str]) -> tuple[dict[str, str], list[str]]:
    """Each class's next action and the action definitions it needs."""
    out: dict[str, str] = {}
    actions: list[str] = []
    for i, klass in enumerate(classes):
        kinds = ("dscp", "dscp", "dscp", "cos", "cos+dscp", "dscp+cos", "drop", "continue")
        kind = ("cos+dscp", "drop")[i] if i < 2 else rng.choice(kinds)  # always a chain, a drop
        if kind in {"drop", "continue"}:
            out[klass] = kind
            continue
        dscp, cos = f"mk_{klass}", f"cos_{klass}"
        cos_value = rng.randrange(8)
        dscp_map = _dscp_map(rng)
        if kind == "dscp":
            actions.append(
                _action(dscp, "dscpmk", f"\t\tdscp_map {{{dscp_map}}}\n\t\tnext_action continue\n")
            )
            out[klass] = dscp
        elif kind == "cos":
            actions.append(
                _action(cos, "dlcosmk", f"\t\tcos {cos_value}\n\t\tnext_action continue\n")
            )
            out[klass] = cos
        elif kind == "cos+dscp":
            actions.append(
                _action(cos, "dlcosmk", f"\t\tcos {cos_value}\n\t\tnext_action {dscp}\n")
            )
            actions.append(
                _action(dscp, "dscpmk", f"\t\tdscp_map {{{dscp_map}}}\n\t\tnext_action continue\n")
            )
            out[klass] = cos
        else:
            actions.append(
                _action(dscp, "dscpmk", f"\t\tdscp_map {{{dscp_map}}}\n\t\tnext_action {cos}\n")
            )
            actions.append(
                _action(cos, "dlcosmk", f"\t\tcos {cos_value}\n\t\tnext_action continue\n")
            )
            out[klass] = dscp
    return out, actions


def _policy_text(classes: dict[str, str], filters: list[FilterSpec], actions: list[str]) -> str:
    parts = ["fmt_version 1.0\n\naction {\n\tmodule ipgpc\n\tname ipgpc.classify\n"]
    for klass, nxt in classes.items():
        parts.append(f"\tclass {{\n\t\tname {klass}\n\t\tnext_action {nxt}\n\t}}\n")
    parts.extend(f.text() for f in filters)
    parts.append("}\n\n")
    parts.append("\n".join(actions))
    return "".join(parts)


def random_policy(seed: int, n_filters: int = 30, n_classes: int = 8) -> PolicySpec:
    """A policy of overlapping filters over every selector the compiler handles."""
    rng = random.Random(seed)
    names = [f"c{i}" for i in range(n_classes)]
    nxt, actions = _markers(rng, [*names, "default"])
    filters: list[FilterSpec] = []
    for i in range(n_filters):
        family = rng.choice((4, 4, 6, None))
        pool = V4_POOL if family == 4 else V6_POOL
        kw: dict[str, object] = {}
        if family is not None:
            for key in rng.sample(("saddr", "daddr"), rng.choice((1, 1, 2))):
                kw[key] = rng.choice(pool)
        if rng.random() < 0.5:
            kw["dport"] = rng.choice(PORTS)
        if rng.random() < 0.15:
            kw["sport"] = rng.choice(PORTS)
        if rng.random() < 0.4 and (kw or rng.random() < 0.2):  # rarely alone: too broad
            kw["protocol"] = rng.choice(("tcp", "udp"))
        if rng.random() < 0.3 or (not kw and rng.random() < 0.8):
            mask = rng.choice(MASKS)
            kw["dsfield"] = (rng.randrange(256) & mask, mask)
        if not kw:
            kw["dport"] = rng.choice(PORTS)
        if rng.random() < 0.25:
            kw["direction"] = rng.choice(DIRECTIONS)
        if rng.random() < 0.1:  # not a selector: it must change nothing
            kw["ip_version"] = {4: "V4", 6: "V6", None: rng.choice(("V4", "V6"))}[family]
        if rng.random() < 0.6:
            kw["priority"] = rng.choice((0, 1, 1, 5, 10))
        if rng.random() < 0.5:
            kw["precedence"] = rng.choice((1, 2, 3, 10, 50))
        filters.append(FilterSpec(f"f{i}", rng.choice(names), **kw))  # type: ignore[arg-type]
    classes = dict.fromkeys(names, "")
    for klass in names:
        classes[klass] = nxt[klass]
    classes["default"] = nxt["default"]
    return PolicySpec(_policy_text(classes, filters, actions), filters)


def many_destinations(seed: int, n_filters: int = 5000) -> PolicySpec:
    """Thousands of filters: /32 and /24 destinations (v4, and some v6 /128) with ports,
    in a few classes, plus a few broad filters of higher priority that override some."""
    rng = random.Random(seed)
    names = [f"m{i}" for i in range(6)]
    nxt, actions = _markers(rng, [*names, "default"])
    nxt["m0"] = nxt["m0"] if nxt["m0"] != "drop" else "continue"
    filters: list[FilterSpec] = []
    v4 = ipaddress.ip_network("100.64.0.0/10")  # room for 16 384 /24s
    for i in range(n_filters):
        kw: dict[str, object] = {}
        if i % 10 == 9:
            kw["daddr"] = f"2001:db8:c:{i // 256:x}::{i % 256 + 1:x}/128"
        elif i % 7 == 3:
            base = int(v4.network_address) + (i << 8)
            kw["daddr"] = f"{ipaddress.ip_address(base)}/24"
        else:
            kw["daddr"] = (
                f"{ipaddress.ip_address(int(v4.network_address) + (i << 8) + 1 + i % 200)}/32"
            )
        if i % 3 == 0:
            kw["dport"] = PORTS[i % len(PORTS)]
        if i % 5 == 1:
            kw["protocol"] = "udp"
        filters.append(FilterSpec(f"d{i}", names[i % len(names)], **kw))  # type: ignore[arg-type]
    filters.append(FilterSpec("hi_dns", "m1", dport=53, protocol="udp", priority=3))
    filters.append(FilterSpec("hi_ef", "m2", dsfield=(0xB8, 0xFC), priority=2))
    classes = {klass: nxt[klass] for klass in [*names, "default"]}
    return PolicySpec(_policy_text(classes, filters, actions), filters)


def _host_in(rng: random.Random, net: str) -> str:
    network = ipaddress.ip_network(net)
    if network.num_addresses <= 2:
        return str(network.network_address)
    return str(network.network_address + rng.randrange(1, min(network.num_addresses - 1, 1 << 30)))


def _random_tos(rng: random.Random) -> int:
    dscp = rng.choice(DSCP_POOL) if rng.random() < 0.7 else rng.randrange(64)
    return dscp << 2 | rng.randrange(4)


def packets_for(
    spec: PolicySpec, seed: int, per_filter: int = 6, unmatched: int = 60
) -> list[PacketSpec]:
    """Packets that match each filter (several, varying what it leaves open) and packets
    from addresses no filter names; ids are 0, 1, 2, ..."""
    rng = random.Random(seed)
    out: list[PacketSpec] = []

    def add(*fields: object) -> None:  # family, src, dst, proto, sport, dport, tos
        out.append(PacketSpec(len(out), *fields))  # type: ignore[arg-type]

    for f in spec.filters:
        fixed = f.family()
        for k in range(per_filter):
            family = fixed or (4 if k % 2 == 0 else 6)
            pool_free = V4_FREE if family == 4 else V6_FREE
            src = _host_in(rng, f.saddr) if f.saddr else _host_in(rng, pool_free)
            dst = _host_in(rng, f.daddr) if f.daddr else _host_in(rng, pool_free)
            proto = PROTOCOLS[f.protocol] if f.protocol else (6 if k % 4 < 2 else 17)
            sport = f.sport if f.sport is not None else rng.randrange(1024, 65536)
            dport = (
                f.dport if f.dport is not None else rng.choice((*PORTS, rng.randrange(1024, 65536)))
            )
            tos = _random_tos(rng)
            if f.dsfield is not None:
                value, mask = f.dsfield
                tos = (value & mask) | (tos & ~mask & 0xFF)
            if f.dsfield is None or f.dsfield[1] & 3 == 0:
                tos = (tos & ~3) | len(out) % 4  # every ECN value: not-ECT, ECT(1), ECT(0), CE
            add(family, src, dst, proto, sport, dport, tos)
    for k in range(unmatched):
        family = 4 if k % 2 == 0 else 6
        pool = (V4_POOL if family == 4 else V6_POOL) + ((V4_FREE,) if family == 4 else (V6_FREE,))
        src, dst = _host_in(rng, rng.choice(pool)), _host_in(rng, rng.choice(pool))
        proto = 6 if k % 4 < 2 else 17
        add(
            family,
            src,
            dst,
            proto,
            rng.randrange(1, 65536),
            rng.randrange(1, 65536),
            _random_tos(rng),
        )
    return out


def unranked(spec: PolicySpec) -> str:
    """The policy with its ranking scrambled: filters in reverse file order, without
    priority and precedence. A case whose outcomes this changes depends on the ranking."""
    head, _, tail = spec.text.partition("\tfilter {")
    body_end = tail.index("}\n\n")  # the end of the ipgpc action
    rest = tail[body_end:]
    plain = [
        FilterSpec(**{**f.__dict__, "priority": None, "precedence": None})
        for f in reversed(spec.filters)
    ]
    return head + "".join(f.text() for f in plain) + rest
