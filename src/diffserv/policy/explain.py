"""Plain-language summary of what a policy does, for an administrator about to apply it.

For each ipgpc class: the filters that select it, written as sentences ("UDP from
10.0.0.0/8 port 5060, outbound"), then the tree of actions a packet of that class goes
through — meter outcomes with their rates, the DSCP or 802.1p priority written, flow
accounting — down to continue or drop. Then the notes a reviewer wants: classes no filter
selects, filters another one always beats, statistics switches that do nothing.
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Iterable

import msgspec

from diffserv.codepoints import PCP_TABLE, dscp_name
from diffserv.directions import DIRECTIONS
from diffserv.policy.hosts import HostDatabase, host_database
from diffserv.policy.interpret import (
    DlcosmkParams,
    DscpmkParams,
    FlowacctParams,
    IpgpcParams,
    ModuleParams,
    TokenmtParams,
    TswtclmtParams,
    has_marker,
    interpret,
    ipgpc_params,
)
from diffserv.policy.model import (
    CONTINUE,
    DEFAULT_CLASS,
    DEFER,
    DROP,
    IP_V4,
    IP_V6,
    RED,
    YELLOW,
    Action,
    Filter,
    HostName,
    Policy,
)
from diffserv.policy.printer import format_ranges, protocol_name, service_name, user_name
from diffserv.policy.schema import DEFAULT_COLOR_MAP, IDENTITY_DSCP_MAP

# --- codepoint names ------------------------------------------------------------------


def dscp_label(dscp: int) -> str:
    """``EF (46)``; a DSCP without a well-known name is written ``DSCP 13``."""
    try:
        name = dscp_name(dscp)
    except ValueError:
        return f"DSCP {dscp}"
    return f"DSCP {dscp}" if name.isdigit() else f"{name} ({dscp})"


def _dscp_short(dscp: int) -> str:
    label = dscp_label(dscp)
    return label.split(" (", 1)[0] if "(" in label else str(dscp)


# IEEE 802.1D-1998 user priority names (the ones illumos documents for dlcosmk).
PCP_NAMES = {p.pcp: (p.legacy_acronym, p.legacy_name.lower()) for p in PCP_TABLE}

# --- units ----------------------------------------------------------------------------


def _scaled(value: int, units: tuple[str, ...], base: int = 1000) -> str:
    """``value`` in the largest unit it reaches, up to 3 decimals, trailing zeros dropped."""
    index = 0
    scale = 1
    while index + 1 < len(units) and value >= scale * base:
        scale *= base
        index += 1
    whole, rest = divmod(value, scale)
    if rest == 0:
        return f"{whole} {units[index]}"
    thousandths = (rest * 1000 + scale // 2) // scale
    if thousandths == 1000:
        whole, thousandths = whole + 1, 0
    text = f"{whole}.{thousandths:03d}".rstrip("0").rstrip(".")
    return f"{text} {units[index]}"


def format_rate(bits_per_second: int) -> str:
    """``4 Mbit/s`` (SI prefixes, as line rates are quoted)."""
    return _scaled(bits_per_second, ("bit/s", "kbit/s", "Mbit/s", "Gbit/s"))


def format_burst(bits: int) -> str:
    """A burst in bytes when whole (``500 kB``), else in bits; the raw bit count follows."""
    if bits % 8 == 0 and bits >= 8:
        return f"{_scaled(bits // 8, ('B', 'kB', 'MB', 'GB'))} ({bits} bit)"
    return f"{bits} bit"


def format_ms(ms: int) -> str:
    """``15 s``, ``250 ms``, ``2 min``."""
    if ms % 60000 == 0 and ms >= 60000:
        return f"{ms // 60000} min"
    if ms % 1000 == 0 and ms >= 1000:
        return f"{ms // 1000} s"
    return f"{ms} ms"


# --- filters --------------------------------------------------------------------------

_DIRECTION_WORDS = tuple((d.value, f"{d.meaning} ({d.keyword})") for d in DIRECTIONS)


def _address_words(address: object) -> str:
    if isinstance(address, HostName):
        if not address.addresses:
            return f"host {address.name} (did not resolve: the filter never matches)"
        shown = ", ".join(str(a.network_address) for a in address.addresses)
        return f"host {address.name} ({shown})"
    return str(address)


def describe_filter(flt: Filter, hosts: HostDatabase | None = None) -> str:
    """One filter as a sentence: ``UDP from 10.0.0.0/8 port 5060, outbound, priority 10``
    (protocols, ports and users named through ``hosts``, the built-in tables when None)."""
    database = host_database(hosts)
    words: list[str] = []
    if flt.protocol is not None:
        name = protocol_name(flt.protocol, database)
        words.append(name.upper() if not name.isdigit() else f"protocol {name}")
    elif flt.saddr is None and flt.daddr is None and flt.sport is None and flt.dport is None:
        words.append("all traffic")
    else:
        words.append("traffic")
    if flt.saddr is not None or flt.sport is not None:
        part = "from"
        if flt.saddr is not None:
            part += f" {_address_words(flt.saddr)}"
        if flt.sport is not None:
            part += f" port {_port_words(flt.sport, database)}"
        words.append(part)
    if flt.daddr is not None or flt.dport is not None:
        part = "to"
        if flt.daddr is not None:
            part += f" {_address_words(flt.daddr)}"
        if flt.dport is not None:
            part += f" port {_port_words(flt.dport, database)}"
        words.append(part)
    text = " ".join(words)
    extra: list[str] = []
    if flt.dsfield is not None and flt.dsfield_mask is not None:
        extra.append(_dsfield_words(flt.dsfield, flt.dsfield_mask))
    if flt.direction is not None:
        dirs = [w for bit, w in _DIRECTION_WORDS if flt.direction & bit]
        extra.append(" or ".join(dirs))
    if flt.if_name is not None:
        extra.append(f"on interface {flt.if_name}")
    if flt.user is not None:
        name = user_name(flt.user, database)
        who = f"user {name} (uid {flt.user})" if not name.isdigit() else f"uid {flt.user}"
        extra.append(f"sent by {who}")
    if flt.projid is not None:
        extra.append(f"sent by project {flt.projid}")
    if flt.ip_version is not None:
        fam = {IP_V4: "IPv4", IP_V6: "IPv6"}.get(flt.ip_version, "IPv4 and IPv6")
        extra.append(f"host names looked up as {fam}")
    if flt.priority is not None:
        extra.append(f"priority {flt.priority}")
    if flt.precedence is not None:
        extra.append(f"precedence {flt.precedence}")
    return ", ".join([text, *extra])


def _port_words(port: int, hosts: HostDatabase) -> str:
    name = service_name(port, hosts)
    return str(port) if name.isdigit() else f"{port} ({name})"


def _dsfield_words(value: int, mask: int) -> str:
    if mask == 0xFC:
        return f"DSCP {dscp_label(value >> 2)}"
    if mask == 0xFF:
        return f"DS byte 0x{value:02x} (DSCP {dscp_label(value >> 2)}, ECN {value & 3})"
    return f"DS byte & 0x{mask:02x} == 0x{value & mask:02x}"


# --- actions --------------------------------------------------------------------------


def _ref(name: str) -> str:
    if name == CONTINUE:
        return "continue (back to normal IP processing)"
    if name == DROP:
        return "drop"
    if name == DEFER:
        return "defer (held by a module)"
    return name


def describe_dscp_map(dscp_map: tuple[int, ...] | None) -> str:
    """``all → EF (46)``, ``AF11 → AF12, others unchanged``, or ``unchanged``."""
    if dscp_map is None or dscp_map == IDENTITY_DSCP_MAP:
        return "DSCP left unchanged (identity map)"
    outputs = set(dscp_map)
    if len(outputs) == 1:
        return f"every DSCP → {dscp_label(dscp_map[0])}"
    changed: dict[int, list[int]] = {}
    for dscp_in, dscp_out in enumerate(dscp_map):
        if dscp_in != dscp_out:
            changed.setdefault(dscp_out, []).append(dscp_in)
    parts = []
    for dscp_out in sorted(changed):
        ins = changed[dscp_out]
        if len(ins) <= 3:
            sources = ", ".join(_dscp_short(i) for i in ins)
        else:
            sources = f"DSCP {format_ranges(ins)}"
        parts.append(f"{sources} → {dscp_label(dscp_out)}")
    unchanged = 64 - sum(len(v) for v in changed.values())
    tail = ", others unchanged" if unchanged else ""
    return "; ".join(parts) + tail


def describe_color_map(color_map: tuple[int, ...] | None) -> str:
    if color_map is None or color_map == DEFAULT_COLOR_MAP:
        return "default colour map (AFx2 yellow, AFx3 red, others green)"
    parts = []
    for colour, word in ((YELLOW, "yellow"), (RED, "red")):
        dscps = [i for i, c in enumerate(color_map) if c == colour]
        if dscps:
            parts.append(f"{_dscp_list(dscps)} {word}")
    parts.append("others green" if parts else "all green")
    return "colour map: " + ", ".join(parts)


def _dscp_list(dscps: list[int]) -> str:
    if len(dscps) <= 4:
        return ", ".join(_dscp_short(d) for d in dscps)
    return f"DSCP {format_ranges(dscps)}"


class Step(msgspec.Struct):
    """One action in a class's path: a description and the branches after it."""

    text: str
    branches: list[tuple[str, str]] = msgspec.field(default_factory=list)  # (label, next action)


def describe_action(action: Action) -> Step:
    """What one action does, with its outgoing branches labelled."""
    try:
        params = interpret(action)
    except (KeyError, TypeError, ValueError):  # an unknown module, or an Action built by hand
        return Step(f"module {action.module}")
    return _describe(params)


@functools.singledispatch
def _describe(params: ModuleParams) -> Step:
    raise TypeError(f"no description for {type(params).__name__}")


@_describe.register
def _ipgpc(params: IpgpcParams) -> Step:
    return Step("module ipgpc")


@_describe.register
def _tswtclmt(params: TswtclmtParams) -> Step:
    cir, pir = params.committed_rate_bps, params.peak_rate_bps
    text = (
        f"time sliding window meter (RFC 2859), rate averaged over {format_ms(params.window_ms)}: "
        f"committed {format_rate(cir)}, peak {format_rate(pir)}"
    )
    return Step(
        text,
        [
            (f"green (average ≤ {format_rate(cir)})", params.green_action),
            (
                f"yellow (average above {format_rate(cir)}, with rising probability)",
                params.yellow_action,
            ),
            (
                f"red (average above {format_rate(pir)}, with rising probability)",
                params.red_action,
            ),
        ],
    )


@_describe.register
def _dscpmk(params: DscpmkParams) -> Step:
    text = describe_dscp_map(params.dscp_map) + " (ECN kept)"
    if params.detailed_stats:
        text += "; per-DSCP counters on"
    return Step(f"mark DSCP: {text}", [("then", params.next_action)])


@_describe.register
def _dlcosmk(params: DlcosmkParams) -> Step:
    cos = params.cos
    abbr, words = PCP_NAMES.get(cos, ("?", "unknown"))
    text = f"mark 802.1p priority {cos} ({abbr}, {words}) on VLAN frames"
    if params.sent_as_zero:
        text += "; note: illumos sends cos 1 and 2 as priority 0"
    return Step(text, [("then", params.next_action)])


@_describe.register
def _flowacct(params: FlowacctParams) -> Step:
    text = (
        f"flow accounting: a flow is written out after {format_ms(params.timeout_ms)} idle "
        f"(scan every {format_ms(params.timer_ms)}); at most {params.max_limit} records, "
        "packets of new flows beyond that are dropped"
    )
    return Step(text, [("then", params.next_action)])


@_describe.register
def _tokenmt(params: TokenmtParams) -> Step:
    cir, cbs = params.committed_rate_bps, params.committed_burst_bits
    pir, pbs = params.peak_rate_bps, params.peak_burst_bits
    yellow, green, red = params.yellow_action, params.green_action, params.red_action
    branches: list[tuple[str, str]] = []
    if pir is not None:
        peak_burst = pbs if pbs is not None else 0
        text = (
            f"two-rate token bucket meter (RFC 2698): committed {format_rate(cir)}, burst "
            f"{format_burst(cbs)}; peak {format_rate(pir)}, burst {format_burst(peak_burst)}"
        )
        branches.append((f"green (within {format_rate(cir)})", green))
        branches.append(
            (f"yellow (over {format_rate(cir)}, up to {format_rate(pir)})", yellow or CONTINUE)
        )
        branches.append((f"red (beyond {format_rate(pir)})", red))
    elif yellow is not None and pbs is not None:
        text = (
            f"single-rate token bucket meter (RFC 2697): committed {format_rate(cir)}, burst "
            f"{format_burst(cbs)}, excess burst {format_burst(pbs)}"
        )
        branches.append((f"green (within {format_rate(cir)} and its burst)", green))
        branches.append(("yellow (over the committed burst, within the excess burst)", yellow))
        branches.append(("red (beyond the excess burst)", red))
    else:
        text = f"token bucket meter: committed {format_rate(cir)}, burst {format_burst(cbs)}"
        branches.append((f"green (within {format_rate(cir)})", green))
        branches.append((f"red (beyond {format_rate(cir)} and its burst)", red))
    if params.colour_aware:
        text += "; colour-aware, " + describe_color_map(params.colour_map)
    return Step(text, branches)


# --- the whole policy -----------------------------------------------------------------


def _counts(policy: Policy) -> tuple[int, int, int]:
    classes = sum(len(a.classes) for a in policy.actions)
    filters = sum(len(a.filters) for a in policy.actions)
    return len(policy.actions), classes, filters


def summary_line(policy: Policy) -> str:
    """``5 actions, 3 classes, 4 filters``."""
    actions, classes, filters = _counts(policy)

    def plural(n: int, word: str) -> str:
        return f"{n} {word}{'' if n == 1 else ('es' if word.endswith('s') else 's')}"

    return ", ".join(
        (plural(actions, "action"), plural(classes, "class"), plural(filters, "filter"))
    )


def _address_covers(wide: object, narrow: object) -> bool:
    if isinstance(wide, HostName) or isinstance(narrow, HostName):
        return wide == narrow
    if isinstance(wide, ipaddress.IPv4Network) and isinstance(narrow, ipaddress.IPv4Network):
        return narrow.subnet_of(wide)
    if isinstance(wide, ipaddress.IPv6Network) and isinstance(narrow, ipaddress.IPv6Network):
        return narrow.subnet_of(wide)
    return False


def covers(wide: Filter, narrow: Filter) -> bool:
    """Whether every packet ``narrow`` matches is matched by ``wide`` too."""
    for name in ("user", "projid", "if_name", "protocol", "sport", "dport"):
        w, n = getattr(wide, name), getattr(narrow, name)
        if w is not None and w != n:
            return False
    if wide.direction is not None and (
        narrow.direction is None or narrow.direction & ~wide.direction
    ):
        return False
    if wide.dsfield is not None and wide.dsfield_mask is not None:
        if narrow.dsfield is None or narrow.dsfield_mask is None:
            return False
        mask = wide.dsfield_mask
        if narrow.dsfield_mask & mask != mask:
            return False
        if (narrow.dsfield & mask) != (wide.dsfield & mask):
            return False
    for name in ("saddr", "daddr"):
        w, n = getattr(wide, name), getattr(narrow, name)
        if w is not None and (n is None or not _address_covers(w, n)):
            return False
    return True


def _never_matches(flt: Filter) -> bool:
    return any(isinstance(a, HostName) and not a.addresses for a in (flt.saddr, flt.daddr))


_EXACT_FIELDS = ("user", "projid", "if_name", "protocol", "sport", "dport")
# Pairs of filters compared at most per policy; past it the remaining notes are left out
# (an adversarial set of near-identical filters would otherwise cost n² comparisons).
SHADOW_CHECK_BUDGET = 400_000


def shadowed_filters(filters: Iterable[Filter]) -> list[tuple[Filter, Filter]]:
    """(loser, winner) pairs: the winner matches every packet the loser matches and ranks
    higher, so the loser never decides a class; the winner named is the first such filter
    in the file.

    Ranking is priority (higher wins), then precedence (lower wins), then file order.
    Winners are looked up by the selectors that must be equal (or a wildcard) to cover,
    best rank first, so only plausible pairs are compared.
    """
    ordered = list(filters)
    buckets: dict[tuple[object, ...], list[tuple[tuple[int, int], int, Filter]]] = {}
    for index, flt in enumerate(ordered):
        if not _never_matches(flt):
            key = tuple(getattr(flt, name) for name in _EXACT_FIELDS)
            buckets.setdefault(key, []).append((_rank(flt), index, flt))
    for bucket in buckets.values():
        bucket.sort(key=lambda entry: (-entry[0][0], -entry[0][1], entry[1]))
    pairs: list[tuple[Filter, Filter]] = []
    budget = SHADOW_CHECK_BUDGET
    for index, loser in enumerate(ordered):
        rank = _rank(loser)
        values = [getattr(loser, name) for name in _EXACT_FIELDS]
        winner: tuple[int, Filter] | None = None
        for key in _wildcard_keys(values):
            for other_rank, other_index, other in buckets.get(key, ()):
                if other_rank < rank:
                    break  # the rest of this bucket ranks lower still
                if other_index == index or (other_rank == rank and other_index > index):
                    continue
                if winner is not None and other_index >= winner[0]:
                    continue
                budget -= 1
                if budget < 0:
                    return pairs
                if covers(other, loser):
                    winner = (other_index, other)
        if winner is not None:
            pairs.append((loser, winner[1]))
    return pairs


def _wildcard_keys(values: list[object]) -> list[tuple[object, ...]]:
    """Every key whose fields are each the loser's value or None (a wildcard)."""
    keys: list[tuple[object, ...]] = [()]
    for value in values:
        if value is None:
            keys = [(*key, None) for key in keys]
        else:
            keys = [(*key, choice) for key in keys for choice in (value, None)]
    return keys


def _rank(flt: Filter) -> tuple[int, int]:
    return (flt.effective_priority, -flt.effective_precedence)


FULL_SIZE_PACKET_BITS = 1500 * 8


def _burst_notes(name: str, params: TokenmtParams) -> list[str]:
    """Buckets smaller than one full-size packet: such packets can never conform."""
    notes = []
    cbs, pbs = params.committed_burst_bits, params.peak_burst_bits
    largest = cbs if pbs is None else max(cbs, pbs)
    if 0 < cbs < FULL_SIZE_PACKET_BITS:
        notes.append(
            f"action {name}: committed_burst is {cbs} bit (bursts are in bits), less "
            f"than one 1500-byte packet; packets over {cbs // 8} bytes are never green"
        )
    if largest < FULL_SIZE_PACKET_BITS:
        notes.append(
            f"action {name}: no bucket holds a 1500-byte packet; packets over "
            f"{largest // 8} bytes are always red"
        )
    return notes


MAX_TREE_DEPTH = 16  # deeper steps of a chain are not indented further
REPEAT_LINES = 40  # a larger subtree already shown under another class is referred to


class _Tree:
    """The action trees of the classes of one policy.

    Within a class an action is described once ("as above" after); under a later class a
    subtree is repeated only when it is small, so the output stays proportional to the
    policy. The walk uses an explicit stack: chains of any length are fine.
    """

    def __init__(self, policy: Policy) -> None:
        self.by_name = {a.name: a for a in policy.actions}
        self.steps: dict[str, Step] = {}
        self.first: dict[str, tuple[str, int]] = {}  # action -> (class shown under, lines)

    def _step(self, action: Action) -> Step:
        if action.name not in self.steps:
            self.steps[action.name] = describe_action(action)
        return self.steps[action.name]

    def walk(self, class_name: str, root: str, indent: str) -> list[str]:
        """The lines of the tree of ``root`` for class ``class_name``."""
        lines: list[str] = []
        seen: set[str] = set()
        # Entries: (action, indent, label, depth), or (action, None, "", start line) to
        # close a subtree and record its size.
        stack: list[tuple[str, str | None, str, int]] = [(root, indent, "", 0)]
        while stack:
            name, pad, label, depth = stack.pop()
            if pad is None:
                self.first.setdefault(name, (class_name, len(lines) - depth))
                continue
            head = f"{pad}{label}→ "
            action = self.by_name.get(name)
            if action is None:
                lines.append(head + _ref(name))
                continue
            if name in seen:
                lines.append(head + f"{name} (as above)")
                continue
            seen.add(name)
            shown = self.first.get(name)
            if shown is not None and shown[0] != class_name and shown[1] > REPEAT_LINES:
                lines.append(head + f"{name} [{action.module}] (as under class {shown[0]})")
                continue
            step = self._step(action)
            lines.append(head + f"{name} [{action.module}]: {step.text}")
            stack.append((name, None, "", len(lines) - 1))
            child_pad = pad + "    " if depth < MAX_TREE_DEPTH else pad
            if len(step.branches) == 1:
                stack.append((step.branches[0][1], child_pad, "", depth + 1))
                continue
            for branch_label, target in reversed(step.branches):
                stack.append((target, child_pad, f"{branch_label} ", depth + 1))
        return lines


def _interpreted(action: Action) -> ModuleParams | None:
    try:
        return interpret(action)
    except (KeyError, TypeError, ValueError):
        return None


def explain_policy(
    policy: Policy, title: str | None = None, *, hosts: HostDatabase | None = None
) -> str:
    """The whole explanation as text (one trailing newline); names through ``hosts``."""
    database = host_database(hosts)
    out: list[str] = []
    name = title or policy.source or "policy"
    out.append(f"{name}: {summary_line(policy)}")
    try:
        classifier = policy.classifier
    except KeyError:
        return "\n".join([*out, "no ipgpc.classify action: nothing is classified"]) + "\n"
    stats_on = classifier.global_stats
    out.append(
        "Every packet is classified by ipgpc.classify: among the filters that match it, the "
        "highest priority wins, then the lowest precedence, then the first in the file."
    )
    if has_marker(policy):
        out.append("Markers leave inbound packets (LOCAL_IN, FWD_IN) unchanged.")
    by_class: dict[str, list[Filter]] = {}
    for flt in classifier.filters:
        by_class.setdefault(flt.class_name, []).append(flt)
    classes = ipgpc_params(classifier).classes  # the permanent `default` class included
    notes: list[str] = []
    tree = _Tree(policy)
    for cls in classes:
        out.append("")
        stats = " (statistics on)" if cls.enable_stats and stats_on else ""
        out.append(f"Class {cls.name}{stats}")
        selecting = by_class.get(cls.name, [])
        if cls.name == DEFAULT_CLASS:
            out.append("  gets every packet no filter selects")
        elif not selecting:
            notes.append(f"class {cls.name}: no filter selects it, so it never sees a packet")
            out.append("  selected by: no filter")
        elif cls.name != DEFAULT_CLASS and all(_never_matches(f) for f in selecting):
            notes.append(
                f"class {cls.name}: none of its filters can match (unresolved host names), "
                "so it never sees a packet"
            )
        for flt in selecting:
            out.append(f"  filter {flt.name}: {describe_filter(flt, database)}")
        out.extend(tree.walk(cls.name, cls.next_action, "  "))
        if cls.enable_stats and not stats_on:
            notes.append(
                f"class {cls.name}: enable_stats has no effect without global_stats true "
                "on ipgpc.classify"
            )
    for loser, winner in shadowed_filters(classifier.filters):
        notes.append(
            f"filter {loser.name} never wins: filter {winner.name} matches all its packets "
            "and ranks higher"
        )
    for flt in classifier.filters:
        if flt.direction is not None and flt.direction & (flt.direction - 1):
            notes.append(
                f"filter {flt.name}: direction lists several values; diffserv matches any of "
                "them, illumos never matches such a filter"
            )
    for action in policy.actions:
        params = _interpreted(action)
        if isinstance(params, TokenmtParams):
            notes.extend(_burst_notes(action.name, params))
            if params.colour_map_given and not params.colour_aware:
                notes.append(f"action {action.name}: color_map is ignored (color_aware is false)")
        for flt in action.filters:
            for addr in (flt.saddr, flt.daddr):
                if isinstance(addr, HostName) and not addr.addresses:
                    notes.append(
                        f"filter {flt.name}: host {addr.name} did not resolve; never matches"
                    )
    if notes:
        out.append("")
        out.append("Notes:")
        out.extend(f"  - {note}" for note in notes)
    return "\n".join(out) + "\n"
