"""The nftables ruleset of a plan (docs/compile.md).

Layout: one base chain per hook the policy needs (priority mangle - 1, so a mark it sets
is there before the iptables mangle table runs), which skips loopback traffic as the
daemon does and sends each family to its own chain; there the segments of the rank order
(``grouping``) are tried in turn, and the first that matches sends the packet to its
class's path; a packet no segment matches takes the ``default`` class. Every action is a
chain of its own ending in the next one (``goto``), ``continue`` is ``accept`` and
``drop`` is ``drop``; a dscpmk action is one lookup of the incoming DSCP that jumps to a
chain setting the outgoing one (nft 1.0.6 cannot set the DSCP from a map), so each packet
is re-marked once, ECN kept. At the input hook (an inbound position) markers do nothing.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Final, Literal

import msgspec

from diffserv.compile.grouping import Segment, key_of, segments
from diffserv.compile.hooks import Hook
from diffserv.compile.plan import (
    APPROXIMATE,
    DAEMON,
    PORT_PROTOCOLS,
    ActionPlan,
    Plan,
    Prefix,
    actions_with,
)
from diffserv.compile.ruleset import (
    Chain,
    Goto,
    InlineVmap,
    LimitOver,
    Lookup,
    Map,
    Match,
    NamedLimit,
    Queue,
    Rule,
    Ruleset,
    SetDscp,
    SetMarkBit,
    SetPriority,
    Statement,
    Symbol,
    Terminal,
    Text,
    Unfragmented,
    Value,
    Verdict,
)
from diffserv.directions import DIRECTIONS
from diffserv.errors import DiffservError, UsageError
from diffserv.policy.model import CONTINUE, DEFAULT_CLASS, DEFER, DROP

DEFAULT_TABLE: Final = "diffserv"
DEFAULT_QUEUE: Final = 0
# the meta mark bit the ruleset sets on packets for the daemon (--queue-via mark); the
# companion iptables rule queues packets carrying it
QUEUE_MARK: Final = 0x10000000
BASE_PRIORITY: Final = -151  # NF_IP_PRI_MANGLE - 1: before iptables' mangle chains
QueueVia = Literal["nft", "mark"]
_TABLE_NAME: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,31}\Z")
_PROTOCOL_NAMES: Final = {6: "tcp", 17: "udp", 132: "sctp"}
_MAP_TYPES: Final = {
    "protocol": "inet_proto",
    "sport": "inet_service",
    "dport": "inet_service",
    "if_name": "ifname",
    "uid": "uid",
}


class CompileRefusedError(DiffservError):
    """The policy needs the daemon and the compile was not asked for a hybrid ruleset."""


class HybridOptions(msgspec.Struct, frozen=True):
    """Where classes that need the daemon go: NFQUEUE ``queue`` (via nft's queue
    statement, or a mark bit a companion iptables rule queues on)."""

    queue: int = DEFAULT_QUEUE
    via: QueueVia = "nft"
    mark: int = QUEUE_MARK


def check_table_name(name: str) -> str:
    """``name`` if it can be an nft table name (it goes into the script unquoted)."""
    if not _TABLE_NAME.match(name):
        raise UsageError(
            f"--table {name!r}: a table name is a letter or _ then letters, digits or _ "
            "(at most 32)"
        )
    return name


def _ident(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]", "_", text)[:40]


def safe_comment(text: str) -> str:
    """A comment string nothing in the policy can break out of (nft limits it to 128)."""
    return re.sub(r"[^A-Za-z0-9_.,:;/=+()<> -]", "_", text)[:127]


def refuse_unless_hybrid(plan: Plan, hybrid: HybridOptions | None) -> None:
    if hybrid is not None:
        return
    needs = actions_with(plan, DAEMON)
    if needs:
        listed = "; ".join(f"{a.name} ({a.module}: {a.how})" for a in needs)
        raise CompileRefusedError(
            f"these actions need the daemon: {listed}; --hybrid sends their classes to it "
            "(--check lists every action)"
        )


class _Builder:
    def __init__(self, plan: Plan, table: str, hybrid: HybridOptions | None) -> None:
        self.plan = plan
        self.table = table
        self.hybrid = hybrid
        self.actions = {a.name: a for a in plan.actions}
        self.action_index = {a.name: i for i, a in enumerate(plan.actions)}
        self.chains: dict[str, Chain] = {}
        self.maps: list[Map] = []
        self.limits: dict[str, NamedLimit] = {}
        self.daemon = set(plan.daemon_classes)
        self.next_of = {c.name: c.next_action for c in plan.classes}
        # hooks usually share their rules: cut each distinct list into segments once
        self._segments: dict[tuple[int, ...], list[Segment]] = {}

    # --- the paths ------------------------------------------------------------------

    def entry(self, target: str, inbound: bool) -> Verdict:
        """The verdict that sends a packet on to ``target`` (building its chain)."""
        if target == CONTINUE:
            return Terminal("accept")
        if target in (DROP, DEFER):
            return Terminal("drop")
        action = self.actions[target]
        if action.module in ("dscpmk", "dlcosmk") and (
            inbound or (action.module == "dscpmk" and not action.dscp_changes)
        ):
            return self.entry(action.outcomes[0][1], inbound)
        name = f"{'i' if inbound else ''}a{self.action_index[target]}_{_ident(target)}"
        if name not in self.chains:
            # claimed before its successors are built: chains come out in path order
            self.chains[name] = Chain(name, ())
            self.chains[name] = Chain(name, self._action_rules(action, inbound))
        return Goto(name)

    def _action_rules(self, action: ActionPlan, inbound: bool) -> tuple[Rule, ...]:
        nxt = action.outcomes[0][1]
        if action.module == "dscpmk":
            rules = []
            targets = {new for _, new in action.dscp_changes}
            if len(targets) == 1:
                # one outgoing code point (the usual "mark this class EF"): a set match and
                # the set itself, no jump; one rule per family, so no rule sees another's
                # rewrite
                olds = tuple(old for old, _ in action.dscp_changes)
                for selector in ("ip dscp", "ip6 dscp"):
                    rules.append(Rule((Match(selector, olds), SetDscp(selector, *targets))))
                rules.append(Rule((self.entry(nxt, inbound),)))
                return tuple(rules)
            for family, selector in ((4, "ip dscp"), (6, "ip6 dscp")):
                elements = tuple(
                    (old, Goto(self._dscp_chain(family, new), back=True))
                    for old, new in action.dscp_changes
                )
                rules.append(Rule((InlineVmap(selector, elements),)))
            rules.append(Rule((self.entry(nxt, inbound),)))
            return tuple(rules)
        if action.module == "dlcosmk":
            assert action.priority is not None
            return (Rule((SetPriority(action.priority), self.entry(nxt, inbound))),)
        if action.module == "tokenmt" and action.verdict == APPROXIMATE:
            outcomes = dict(action.outcomes)
            limit = f"m{self.action_index[action.name]}_{_ident(action.name)}"
            if limit not in self.limits:
                self.limits[limit] = NamedLimit(limit, action.rate_bytes, action.burst_bytes)
            over = Rule(
                (
                    LimitOver(limit),
                    self.entry(outcomes["red"], inbound),
                ),
                comment=safe_comment(f"approximate {action.name}: red when over the limit"),
            )
            return over, Rule((self.entry(outcomes["green"], inbound),))
        raise AssertionError(f"{action.name}: {action.module} is not compiled to the kernel")

    def _dscp_chain(self, family: int, dscp: int) -> str:
        name = f"set{family}_{dscp}"
        if name not in self.chains:
            selector = "ip dscp" if family == 4 else "ip6 dscp"
            self.chains[name] = Chain(name, (Rule((SetDscp(selector, dscp),)),))
        return name

    def class_entry(self, class_name: str, inbound: bool) -> Verdict:
        if class_name in self.daemon:
            return Goto(self._queue_chain())
        return self.entry(self.next_of[class_name], inbound)

    def _queue_chain(self) -> str:
        hybrid = self.hybrid
        assert hybrid is not None
        if "to_daemon" not in self.chains:
            statements: tuple[Statement, ...]
            if hybrid.via == "nft":
                statements = (Queue(hybrid.queue),)
            else:
                statements = (SetMarkBit(hybrid.mark), Terminal("accept"))
            self.chains["to_daemon"] = Chain(
                "to_daemon",
                (Rule(statements, comment="classes the daemon runs"),),
            )
        return "to_daemon"

    # --- the classifier -------------------------------------------------------------

    def hook_chains(self, hook: Hook) -> None:
        skip_lo = Rule((Match(hook.interface, (Text("lo"),)), Terminal("accept")))
        family_rules = [skip_lo]
        for family, proto in ((4, "ipv4"), (6, "ipv6")):
            name = f"{hook.name}_v{family}"
            body = [
                self._segment_rule(seg, hook, family, k)
                for k, seg in enumerate(self._segments_of(hook, family))
            ]
            default = self.class_entry(DEFAULT_CLASS, hook.inbound)
            body.append(Rule((default,), comment="default class"))
            self.chains[name] = Chain(name, tuple(body))
            family_rules.append(Rule((Match("meta nfproto", (Symbol(proto),)), Goto(name))))
        self.chains[hook.name] = Chain(
            hook.name,
            tuple(family_rules),
            hook=hook.name,
            priority=BASE_PRIORITY,
            notes=(f"hook {hook.name}: callout position {_position(hook.direction)}",),
        )

    def _segments_of(self, hook: Hook, family: int) -> list[Segment]:
        rules = self.plan.rules_at(hook, family)
        key = (family, *(r.rank for r in rules))
        if key not in self._segments:
            self._segments[key] = segments(rules)
        return self._segments[key]

    def _segment_rule(self, seg: Segment, hook: Hook, family: int, k: int) -> Rule:
        ip = "ip" if family == 4 else "ip6"
        statements: list[Statement] = []
        if seg.port_guard and "protocol" not in seg.fields:
            protocols = tuple(Symbol(_PROTOCOL_NAMES[p]) for p in PORT_PROTOCOLS)
            statements.append(Match("meta l4proto", protocols))
        if seg.port_guard or (family == 6 and "protocol" in seg.fields):
            statements.append(Unfragmented(family))
        if seg.dscp is not None:
            statements.append(Match(f"{ip} dscp", seg.dscp))
        if seg.ecn is not None:
            statements.append(Match(f"{ip} ecn", seg.ecn))
        selectors = tuple(_selector(f, hook, ip) for f in seg.fields)
        inbound = hook.inbound
        if len(seg.rules) == 1:
            rule = seg.rules[0]
            for selector, value in zip(selectors, key_of(rule, seg.fields), strict=True):
                statements.append(Match(selector, (_value(value),)))
            statements.append(self.class_entry(rule.class_name, inbound))
            note = f"{rule.filter_name} -> {rule.class_name}"
            return Rule(tuple(statements), comment=safe_comment(note))
        name = f"{hook.name}_v{family}_{k}"
        elements = tuple(
            (
                tuple(_value(v) for v in key_of(rule, seg.fields)),
                self.class_entry(rule.class_name, inbound),
            )
            for rule in seg.rules
        )
        types = tuple(_map_type(f, family) for f in seg.fields)
        self.maps.append(Map(name, types, seg.interval, elements))
        statements.append(Lookup(selectors, name))
        note = f"{len(seg.rules)} filters, ranks {seg.rules[0].rank}-{seg.rules[-1].rank}"
        return Rule(tuple(statements), comment=note)


def _position(direction: int) -> str:
    return next(d.keyword for d in DIRECTIONS if d.value == direction)


def _selector(field: str, hook: Hook, ip: str) -> str:
    if field in ("saddr", "daddr"):
        return f"{ip} {field}"
    if field == "protocol":
        return "meta l4proto"
    if field in ("sport", "dport"):
        return f"th {field}"
    if field == "if_name":
        return hook.interface
    if field == "uid":
        return "meta skuid"
    raise AssertionError(field)


def _map_type(field: str, family: int) -> str:
    if field in ("saddr", "daddr"):
        return "ipv4_addr" if family == 4 else "ipv6_addr"
    return _MAP_TYPES[field]


def _value(value: object) -> Value:
    if isinstance(value, Prefix | int):
        return value
    if isinstance(value, str):
        return Text(value)
    raise AssertionError(value)


def address_text(prefix: Prefix) -> str:
    """``10.0.0.0/8``, or the bare address for a whole one."""
    addr = (
        ipaddress.IPv4Address(prefix.value)
        if prefix.family == 4
        else ipaddress.IPv6Address(prefix.value)
    )
    return str(addr) if prefix.full else f"{addr}/{prefix.length}"


def build_ruleset(
    plan: Plan, table: str = DEFAULT_TABLE, hybrid: HybridOptions | None = None
) -> Ruleset:
    """The ruleset of ``plan``; CompileRefusedError when a class needs the daemon and
    ``hybrid`` is None."""
    check_table_name(table)
    refuse_unless_hybrid(plan, hybrid)
    builder = _Builder(plan, table, hybrid)
    for hook in plan.hooks:
        builder.hook_chains(hook)
    notes = [
        f"diffserv compile: table inet {table}, replaced as a whole (one transaction)",
        *(f"filter {n.filter_name}: never matches: {n.why}" for n in plan.never),
        *(
            f"APPROXIMATE {a.name}: {a.how}"
            for a in plan.actions
            if a.verdict == APPROXIMATE and any(a.name in c.actions for c in plan.classes)
        ),
    ]
    if hybrid is not None and builder.daemon:
        how = (
            f"queue num {hybrid.queue} bypass"
            if hybrid.via == "nft"
            else f"meta mark bit {hybrid.mark:#x}, queued to {hybrid.queue} by iptables"
        )
        notes.append(f"to the daemon ({how}): classes {', '.join(sorted(builder.daemon))}")
    base = [builder.chains[h.name] for h in plan.hooks]
    rest = [c for name, c in builder.chains.items() if name not in {h.name for h in plan.hooks}]
    limits = tuple(builder.limits.values())
    return Ruleset(table, tuple(builder.maps), tuple(base + rest), tuple(notes), limits)
