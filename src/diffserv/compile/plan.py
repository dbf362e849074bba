"""A backend-neutral compile plan of a validated policy (docs/compile.md).

The plan holds what every backend needs and nothing of any backend's syntax:

* the filter instances in ipgpc rank order, each reduced to per-family match terms. The
  reduction starts from the engine's own instances (``ranked_filters``, ``filter_instances``:
  host names expanded to same-family pairs, a v4-mapped literal taken as IPv4, zero and -1
  selectors as wildcards), so the kernel ranks and matches exactly as ``diffserv run`` does;
* per action, what it does and whether the kernel can do it exactly, approximately (how)
  or only through the daemon (why); per class, its path and the worst verdict on it;
* the filters that can never match on Linux, with the reason (``--check`` lists them).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Final, Literal

import msgspec

from diffserv.compile.hooks import HOOK_DIRECTIONS, HOOKS, Hook
from diffserv.engine.modules.ipgpc import filter_instances, ranked_filters
from diffserv.engine.modules.ipgpc_index import (
    F_DADDR_HI,
    F_DADDR_LO,
    F_DPORT,
    F_DSFIELD,
    F_IFNAME,
    F_PROJID,
    F_PROTO,
    F_SADDR_HI,
    F_SADDR_LO,
    F_SPORT,
    F_UID,
    Instance,
)
from diffserv.policy.interpret import (
    DEFAULT_COS_MODE,
    dlcosmk_params,
    dscpmk_params,
    flowacct_params,
    ipgpc_params,
    tokenmt_params,
    tswtclmt_params,
)
from diffserv.policy.model import CONTINUE, DEFAULT_CLASS, DEFER, DROP, Policy

Verdict = Literal["exact", "approximate", "daemon"]
EXACT: Final = "exact"
APPROXIMATE: Final = "approximate"
DAEMON: Final = "daemon"
_WORSE: Final = {EXACT: 0, APPROXIMATE: 1, DAEMON: 2}

# the protocols whose packets have ports for ipgpc (the decoder's list): a filter with
# sport/dport only matches these
PORT_PROTOCOLS: Final = (6, 17, 132)
# what a Linux interface name can be (IFNAMSIZ 16 with the NUL): anything else names no
# interface, and nothing the user wrote ever reaches a ruleset unchecked
# (no "/", ":" or blanks, as Linux; no "+" or "*", the wildcards of iptables and nft)
_IFNAME: Final = re.compile(r"(?!\.\.?\Z)[A-Za-z0-9_.@-]{1,15}\Z")
_V4_MASK: Final = 0xFFFFFFFF


class Prefix(msgspec.Struct, frozen=True):
    """An address prefix of one family: the network as an int and its length."""

    family: int
    value: int
    length: int

    @property
    def width(self) -> int:
        return 32 if self.family == 4 else 128

    @property
    def full(self) -> bool:
        return self.length == self.width


class MatchRule(msgspec.Struct, frozen=True):
    """One filter instance for one address family, in rank order (``rank`` 0 is best).

    ``None`` is a wildcard. ``dscp``/``ecn`` are the admitted values of the DS byte's two
    parts: a masked dsfield compare is always a product of the two (the mask is bitwise),
    so two value sets express it exactly, with no masked operation in the kernel.
    """

    rank: int
    filter_name: str
    class_name: str
    family: int  # 4 or 6
    directions: int  # the hooks' callout positions it applies at (HOOK_DIRECTIONS or fewer)
    saddr: Prefix | None = None
    daddr: Prefix | None = None
    protocol: int | None = None
    sport: int | None = None
    dport: int | None = None
    dscp: tuple[int, ...] | None = None
    ecn: tuple[int, ...] | None = None
    if_name: str | None = None
    uid: int | None = None

    @property
    def has_ports(self) -> bool:
        return self.sport is not None or self.dport is not None


class NeverMatches(msgspec.Struct, frozen=True):
    """A filter (or one instance of it) left out because it cannot match on Linux."""

    filter_name: str
    why: str


class ActionPlan(msgspec.Struct, frozen=True):
    """One action: what the kernel does for it and how faithfully.

    ``outcomes`` are (outcome name, next action or virtual action) pairs: ``next`` for
    markers and flowacct, ``green``/``yellow``/``red`` for meters.
    """

    name: str
    module: str
    verdict: Verdict
    how: str  # what the kernel does, or why it cannot
    outcomes: tuple[tuple[str, str], ...]
    dscp_changes: tuple[tuple[int, int], ...] = ()  # dscpmk: (incoming, outgoing) that differ
    priority: int | None = None  # dlcosmk: skb->priority (the PCP the daemon would set)
    rate_bytes: int = 0  # approximate tokenmt: limit rate in bytes/second
    burst_bytes: int = 0  # approximate tokenmt: limit burst in bytes


class ClassPlan(msgspec.Struct, frozen=True):
    """A class: its first action, the actions on its path and the worst verdict there."""

    name: str
    next_action: str
    actions: tuple[str, ...]  # every real action reachable, first-seen order
    verdict: Verdict


class Plan(msgspec.Struct, frozen=True):
    """Everything a backend needs to write the ruleset."""

    rules: tuple[MatchRule, ...]
    classes: tuple[ClassPlan, ...]
    actions: tuple[ActionPlan, ...]
    hooks: tuple[Hook, ...]
    never: tuple[NeverMatches, ...]
    cos_mode: str

    def action(self, name: str) -> ActionPlan:
        for action in self.actions:
            if action.name == name:
                return action
        raise KeyError(name)

    def klass(self, name: str) -> ClassPlan:
        for cls in self.classes:
            if cls.name == name:
                return cls
        raise KeyError(name)

    @property
    def daemon_classes(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.classes if c.verdict == DAEMON)

    def rules_at(self, hook: Hook, family: int) -> list[MatchRule]:
        """The rules of one family that apply at ``hook``, in rank order."""
        return [r for r in self.rules if r.family == family and r.directions & hook.direction]


def admitted(dsfield: int, mask: int) -> tuple[tuple[int, ...] | None, tuple[int, ...] | None]:
    """The DSCP values and the ECN values a ``(ds & mask) == (dsfield & mask)`` compare
    admits (None: that part is not compared)."""
    dscp_mask, ecn_mask = (mask >> 2) & 0x3F, mask & 0x3
    want_dscp, want_ecn = (dsfield >> 2) & dscp_mask, dsfield & ecn_mask
    dscp = tuple(d for d in range(64) if d & dscp_mask == want_dscp) if dscp_mask else None
    ecn = tuple(e for e in range(4) if e & ecn_mask == want_ecn) if ecn_mask else None
    return dscp, ecn


def _prefix(family: int, hi: int, lo: int, mask_hi: int, mask_lo: int) -> Prefix | None:
    bits = mask_hi.bit_count() + mask_lo.bit_count()
    if bits == 0:
        return None
    if family == 4:
        return Prefix(4, lo & _V4_MASK, bits - 96)
    return Prefix(6, (hi << 64) | lo, bits)


def _rules_of(
    inst: Instance, rank: int, filter_name: str, class_name: str, if_names: dict[int, str]
) -> Iterator[MatchRule | NeverMatches]:
    mask, value = inst.mask, inst.value
    directions = (inst.direction or HOOK_DIRECTIONS) & HOOK_DIRECTIONS
    if not directions:
        yield NeverMatches(filter_name, "direction FWD_IN only: forwarded traffic is FWD_OUT")
        return
    if mask[F_PROJID]:
        yield NeverMatches(filter_name, "projid: Linux has no project ids (never known)")
        return
    if_name = if_names[value[F_IFNAME]] if mask[F_IFNAME] else None
    if if_name is not None and not _IFNAME.match(if_name):
        yield NeverMatches(filter_name, f"if_name {if_name!r} cannot name a Linux interface")
        return
    protocol = value[F_PROTO] if mask[F_PROTO] else None
    sport = value[F_SPORT] if mask[F_SPORT] else None
    dport = value[F_DPORT] if mask[F_DPORT] else None
    if (sport or dport) and protocol is not None and protocol not in PORT_PROTOCOLS:
        yield NeverMatches(filter_name, f"ports with protocol {protocol}, which has none")
        return
    dscp, ecn = admitted(value[F_DSFIELD], mask[F_DSFIELD]) if mask[F_DSFIELD] else (None, None)
    for family in (4, 6) if inst.family == 0 else (inst.family,):
        yield MatchRule(
            rank=rank,
            filter_name=filter_name,
            class_name=class_name,
            family=family,
            directions=directions,
            saddr=_prefix(
                family, value[F_SADDR_HI], value[F_SADDR_LO], mask[F_SADDR_HI], mask[F_SADDR_LO]
            ),
            daddr=_prefix(
                family, value[F_DADDR_HI], value[F_DADDR_LO], mask[F_DADDR_HI], mask[F_DADDR_LO]
            ),
            protocol=protocol,
            sport=sport,
            dport=dport,
            dscp=dscp,
            ecn=ecn,
            if_name=if_name,
            uid=value[F_UID] if mask[F_UID] else None,
        )


def _action_plan(policy: Policy, name: str, cos_mode: str) -> ActionPlan:
    action = policy.action(name)
    module = action.module
    if module == "dscpmk":
        dp = dscpmk_params(action)
        changes = tuple((d, n) for d, n in enumerate(dp.dscp_map) if d != n)
        how = f"sets the DSCP of {len(changes)} code points, ECN kept" if changes else "no-op"
        return ActionPlan(name, module, EXACT, how, (("next", dp.next_action),), changes)
    if module == "dlcosmk":
        cp = dlcosmk_params(action)
        pcp = cp.pcp(cos_mode)
        how = f"meta priority set {pcp} (the skb priority the daemon sets for cos {cp.cos})"
        return ActionPlan(name, module, EXACT, how, (("next", cp.next_action),), priority=pcp)
    if module == "tokenmt":
        tp = tokenmt_params(action)
        outcomes = [("green", tp.green_action)]
        if tp.yellow_action is not None:
            outcomes.append(("yellow", tp.yellow_action))
        outcomes.append(("red", tp.red_action))
        if tp.colour_aware:
            why = "colour-aware: the incoming colour map has no nft counterpart"
        elif tp.two_rate:
            why = "two-rate (RFC 2698) three-colour meter: nft has one bucket per limit"
        elif tp.three_outcomes:
            why = "single-rate three-colour (RFC 2697) meter: the excess bucket has no nft form"
        else:
            rate = (tp.committed_rate_bps + 4) // 8
            burst = max(1, (tp.committed_burst_bits + 7) // 8)
            how = (
                f"limit rate over {rate} bytes/second burst {burst} bytes: nft's bucket holds "
                f"rate x 1 s + burst = {rate + burst} bytes where tokenmt's holds {burst}"
                + ("" if tp.committed_rate_bps % 8 == 0 else " (rate rounded to whole bytes)")
                + "; nft's clock is the kernel's, not the packet timestamps"
            )
            return ActionPlan(
                name, module, APPROXIMATE, how, tuple(outcomes), rate_bytes=rate, burst_bytes=burst
            )
        return ActionPlan(name, module, DAEMON, why, tuple(outcomes))
    if module == "tswtclmt":
        sp = tswtclmt_params(action)
        three = (("green", sp.green_action), ("yellow", sp.yellow_action), ("red", sp.red_action))
        why = "time sliding window rate estimate (RFC 2859) and its random marking"
        return ActionPlan(name, module, DAEMON, why, three)
    if module == "flowacct":
        fp = flowacct_params(action)
        why = "flow records are kept and written by the daemon"
        return ActionPlan(name, module, DAEMON, why, (("next", fp.next_action),))
    return ActionPlan(name, module, DAEMON, f"module {module} has no kernel form", ())


def _worst(verdicts: Iterator[Verdict]) -> Verdict:
    worst: Verdict = EXACT
    for verdict in verdicts:
        if _WORSE[verdict] > _WORSE[worst]:
            worst = verdict
    return worst


def reachable(plan_actions: dict[str, ActionPlan], first: str) -> tuple[str, ...]:
    """The real actions reachable from ``first``, each once, depth first."""
    seen: dict[str, None] = {}
    stack = [first]
    while stack:
        name = stack.pop()
        if name in plan_actions and name not in seen:
            seen[name] = None
            stack.extend(target for _, target in reversed(plan_actions[name].outcomes))
    return tuple(seen)


def does_something(plan_actions: dict[str, ActionPlan], target: str, hook: Hook) -> bool:
    """Whether a packet sent to ``target`` at ``hook`` can be changed, dropped or queued."""
    if target == CONTINUE:
        return False
    if target in (DROP, DEFER):
        return True
    action = plan_actions[target]
    if action.module == "dscpmk" and (hook.inbound or not action.dscp_changes):
        return does_something(plan_actions, action.outcomes[0][1], hook)
    if action.module == "dlcosmk" and hook.inbound:
        return does_something(plan_actions, action.outcomes[0][1], hook)
    return True


def build_plan(policy: Policy, cos_mode: str = DEFAULT_COS_MODE) -> Plan:
    """The plan of a validated policy (``policy.build.load`` / ``check``)."""
    params = ipgpc_params(policy.classifier)
    class_ids = params.class_ids
    if_ids: dict[str, int] = {}
    for flt in params.filters:
        if flt.if_name is not None and flt.if_name not in if_ids:
            if_ids[flt.if_name] = len(if_ids)
    if_names = {i: name for name, i in if_ids.items()}
    rules: list[MatchRule] = []
    never: list[NeverMatches] = []
    rank = 0
    for _, flt in ranked_filters(params.filters):
        instances = filter_instances(flt, class_ids[flt.class_name], if_ids)
        if not instances:
            never.append(NeverMatches(flt.name, "its host name did not resolve"))
        for inst in instances:
            for item in _rules_of(inst, rank, flt.name, flt.class_name, if_names):
                if isinstance(item, MatchRule):
                    rules.append(item)
                else:
                    never.append(item)
            rank += 1
    actions = {
        a.name: _action_plan(policy, a.name, cos_mode)
        for a in policy.actions
        if a.module != "ipgpc"
    }
    classes = tuple(
        ClassPlan(
            cls.name,
            cls.next_action,
            path := reachable(actions, cls.next_action),
            _worst(actions[name].verdict for name in path),
        )
        for cls in params.classes
    )
    # a hook gets a chain only if some class a packet there can take does something there
    # (markers do nothing at input; a class that only continues needs no chain at all)
    next_of = {c.name: c.next_action for c in classes}
    hooks = tuple(
        hook
        for hook in HOOKS
        if any(
            does_something(actions, next_of[name], hook)
            for name in {DEFAULT_CLASS}
            | {r.class_name for r in rules if r.directions & hook.direction}
        )
    )
    return Plan(tuple(rules), classes, tuple(actions.values()), hooks, tuple(never), cos_mode)
