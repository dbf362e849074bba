"""The iptables-restore form of a plan, one file per family (docs/compile.md, "iptables").

Chains of our own in the mangle table (``DSC-`` names, apart from the daemon's
``DIFFSERV-`` ones), one jump from each built-in chain the policy needs. The classifier is
linear, one rule per filter instance in rank order (without ipset there is no ``-m set``),
each ``-g``-ing to its class's path, so a path's end returns straight to the built-in
chain. dsfield/dsfield_mask is ``-m tos --tos V/M``: the same masked compare as ipgpc's
for both families. dscpmk is one rule per changed code point, each going to a chain that
sets the DSCP (``-j DSCP``, ECN kept) and then carries on with the path, so no packet is
re-marked twice; dlcosmk is ``-j CLASSIFY --set-class 0:P``; classes that need the daemon
go to ``-j NFQUEUE --queue-bypass``. Meters have no exact byte-rate form here, so the
approximate tokenmt of the nft form needs the daemon too.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Final

import msgspec

from diffserv.compile.hooks import Hook
from diffserv.compile.nft_build import (
    HybridOptions,
    address_text,
    refuse_unless_hybrid,
    safe_comment,
)
from diffserv.compile.plan import DAEMON, PORT_PROTOCOLS, MatchRule, Plan
from diffserv.policy.model import CONTINUE, DEFAULT_CLASS, DEFER, DROP

PREFIX: Final = "DSC-"
_PROTOCOL_NAMES: Final = {6: "tcp", 17: "udp", 132: "sctp"}
_BUILTINS: Final = ("PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING")


def iptables_plan(plan: Plan) -> Plan:
    """``plan`` as this backend sees it: approximate meters need the daemon here."""

    actions = tuple(
        msgspec.structs.replace(
            a, verdict=DAEMON, how="iptables has no byte-rate limit: " + a.how.split(":")[0]
        )
        if a.verdict == "approximate"
        else a
        for a in plan.actions
    )
    by_name = {a.name: a for a in actions}
    classes = tuple(
        msgspec.structs.replace(c, verdict=DAEMON)
        if any(by_name[n].verdict == DAEMON for n in c.actions)
        else c
        for c in plan.classes
    )
    return msgspec.structs.replace(plan, actions=actions, classes=classes)


class _Writer:
    def __init__(self, plan: Plan, family: int, hybrid: HybridOptions | None) -> None:
        self.plan = plan
        self.family = family
        self.hybrid = hybrid
        self.actions = {a.name: a for a in plan.actions}
        self.index = {a.name: i for i, a in enumerate(plan.actions)}
        self.chains: dict[str, list[str]] = {}
        self.daemon = set(plan.daemon_classes)
        self.next_of = {c.name: c.next_action for c in plan.classes}

    def entry(self, target: str, inbound: bool) -> list[str]:
        """The target words sending a packet on to ``target``."""
        if target == CONTINUE:
            return ["-j", "RETURN"]
        if target in (DROP, DEFER):
            return ["-j", "DROP"]
        action = self.actions[target]
        nxt = action.outcomes[0][1]
        if action.module in ("dscpmk", "dlcosmk") and (
            inbound or (action.module == "dscpmk" and not action.dscp_changes)
        ):
            return self.entry(nxt, inbound)
        name = f"{PREFIX}{'i' if inbound else ''}a{self.index[target]}"
        if name in self.chains:
            return ["-g", name]
        body: list[str] = []
        self.chains[name] = body
        if action.module == "dscpmk":
            after = self.entry(nxt, inbound)
            for old, new in action.dscp_changes:
                setter = f"{name}-{new}"
                if setter not in self.chains:
                    self.chains[setter] = [
                        f"-A {setter} -j DSCP --set-dscp {new:#x}",
                        f"-A {setter} {' '.join(after)}",
                    ]
                body.append(f"-A {name} -m dscp --dscp {old:#x} -g {setter}")
            body.append(f"-A {name} {' '.join(after)}")
        elif action.module == "dlcosmk":
            body.append(f"-A {name} -j CLASSIFY --set-class 0:{action.priority or 0:x}")
            body.append(f"-A {name} {' '.join(self.entry(nxt, inbound))}")
        else:
            raise AssertionError(f"{action.name}: {action.module} is not compiled to iptables")
        return ["-g", name]

    def class_entry(self, class_name: str, inbound: bool) -> list[str]:
        if class_name in self.daemon:
            assert self.hybrid is not None
            return ["-j", "NFQUEUE", "--queue-num", str(self.hybrid.queue), "--queue-bypass"]
        return self.entry(self.next_of[class_name], inbound)

    def hook_chain(self, hook: Hook) -> None:
        name = f"{PREFIX}{hook.name}"
        body = [f"-A {name} {hook.iptables_interface} lo -j RETURN"]
        self.chains[name] = body
        for rule in self.plan.rules_at(hook, self.family):
            body.extend(self._rule_lines(name, rule, hook))
        default = self.class_entry(DEFAULT_CLASS, hook.inbound)
        body.append(f"-A {name} {' '.join(default)}")

    def _rule_lines(self, chain: str, rule: MatchRule, hook: Hook) -> Iterator[str]:
        if rule.uid is not None and hook.name != "output":
            return  # -m owner exists at output only (no socket elsewhere)
        words: list[str] = []
        if rule.saddr is not None:
            words += ["-s", address_text(rule.saddr)]
        if rule.daddr is not None:
            words += ["-d", address_text(rule.daddr)]
        if rule.if_name is not None:
            words += [hook.iptables_interface, rule.if_name]
        if rule.dscp is not None or rule.ecn is not None:
            value, mask = _tos(rule)
            words += ["-m", "tos", "--tos", f"{value:#x}/{mask:#x}"]
        if rule.uid is not None:
            words += ["-m", "owner", "--uid-owner", str(rule.uid)]
        target = " ".join(self.class_entry(rule.class_name, hook.inbound))
        comment = safe_comment(f"{rule.filter_name} -> {rule.class_name}").replace('"', "")
        tail = f'-m comment --comment "{comment}" {target}'
        protocols: list[int | None]
        if rule.protocol is not None:
            protocols = [rule.protocol]
        elif rule.has_ports:
            protocols = list(PORT_PROTOCOLS)
        else:
            protocols = [None]
        for proto in protocols:
            proto_words: list[str] = []
            if proto is not None:
                proto_words = ["-p", _PROTOCOL_NAMES.get(proto, str(proto))]
                if rule.sport is not None:
                    proto_words += ["--sport", str(rule.sport)]
                if rule.dport is not None:
                    proto_words += ["--dport", str(rule.dport)]
            yield f"-A {chain} {' '.join(words + proto_words)} {tail}"


def _tos(rule: MatchRule) -> tuple[int, int]:
    """The (value, mask) of the DS byte compare the rule's admitted values came from."""
    value = mask = 0
    if rule.dscp is not None and len(rule.dscp) < 64:
        dscp_mask = 0x3F
        for bit in range(6):
            if len({(d >> bit) & 1 for d in rule.dscp}) == 2:
                dscp_mask &= ~(1 << bit)
        value |= (rule.dscp[0] & dscp_mask) << 2
        mask |= dscp_mask << 2
    if rule.ecn is not None and len(rule.ecn) < 4:
        ecn_mask = 0x3
        for bit in range(2):
            if len({(e >> bit) & 1 for e in rule.ecn}) == 2:
                ecn_mask &= ~(1 << bit)
        value |= rule.ecn[0] & ecn_mask
        mask |= ecn_mask
    return value, mask


def render(plan: Plan, hybrid: HybridOptions | None, family: int = 4) -> str:
    """The iptables-restore (family 4) or ip6tables-restore (6) file of ``plan``."""
    plan = iptables_plan(plan)
    refuse_unless_hybrid(plan, hybrid)
    writer = _Writer(plan, family, hybrid)
    for hook in plan.hooks:
        writer.hook_chain(hook)
    tool = "iptables-restore" if family == 4 else "ip6tables-restore"
    lines = [
        f"# diffserv compile --to iptables: load with {tool} (replaces the mangle table "
        "in one commit)",
        *(f"# filter {safe_comment(n.filter_name)}: never matches: {n.why}" for n in plan.never),
        "*mangle",
        *(f":{b} ACCEPT [0:0]" for b in _BUILTINS),
        *(f":{name} - [0:0]" for name in writer.chains),
    ]
    for chain_lines in writer.chains.values():
        lines.extend(chain_lines)
    for hook in plan.hooks:
        lines.append(f"-A {hook.iptables_chain} -j {PREFIX}{hook.name}")
    lines.append("COMMIT")
    return "\n".join(lines) + "\n"
