"""The terminal summary of a `diffserv run`, built from its typed statistics only.

Plain aligned text (no rich import on the run path): packets per class, each action's
outcome (generic over operators' counters: meters show their green/yellow/red shares of
packets and bytes, markers what they changed), DSCP before → after by name, and the
packets the engine could not classify.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from diffserv.codepoints import dscp_name
from diffserv.textfmt import human_bytes, text_table

if TYPE_CHECKING:
    from diffserv.engine.stats import SessionStats

MAX_TRANSITIONS = 12


def _dscp(dscp: int) -> str:
    """``EF (46)``; a DSCP without a name (or a number that is no DSCP) is its number."""
    try:
        name = dscp_name(dscp)
    except ValueError:
        return str(dscp)
    return name if name == str(dscp) else f"{name} ({dscp})"


def _pct(part: int, whole: int) -> str:
    return f"{100.0 * part / whole:5.1f}%" if whole else "    -"


def _meter_text(counters: dict[str, int]) -> str:
    colours = ("green", "yellow", "red")
    packets = {c: counters.get(f"{c}_packets", 0) for c in colours}
    bits = {c: counters.get(f"{c}_bits", 0) for c in colours}
    total_p = sum(packets.values())
    total_b = sum(bits.values())
    parts = [
        f"{c} {_pct(packets[c], total_p).strip()} pkts / {_pct(bits[c], total_b).strip()} bytes"
        for c in colours
    ]
    return ", ".join(parts)


def _dscpmk_text(counters: dict[str, int]) -> str:
    return (
        f"{counters.get('dscp_changed', 0):,} re-marked, "
        f"{counters.get('dscp_unchanged', 0):,} unchanged, "
        f"{counters.get('ipackets', 0):,} inbound (not marked)"
    )


def _dlcosmk_text(counters: dict[str, int]) -> str:
    marked = counters.get("npackets", 0) - counters.get("ipackets", 0)
    return (
        f"{marked:,} tagged frames set to PCP, {counters.get('ipackets', 0):,} passed "
        f"(inbound or untagged); cos {counters.get('usr_pri', 0)}"
    )


def _flowacct_text(counters: dict[str, int]) -> str:
    return (
        f"{counters.get('npackets', 0):,} packets / "
        f"{human_bytes(counters.get('nbytes', 0))} accounted in flows"
    )


def _ipgpc_text(counters: dict[str, int]) -> str:
    return (
        f"{counters.get('npackets', 0):,} classified by {counters.get('nfilters', 0):,} "
        f"filters into {counters.get('nclasses', 0):,} classes"
    )


# the outcome line of each module's action in the summary, from its kstat counters
_ACTION_TEXT: Mapping[str, Callable[[dict[str, int]], str]] = {
    "ipgpc": _ipgpc_text,
    "tokenmt": _meter_text,
    "tswtclmt": _meter_text,
    "dscpmk": _dscpmk_text,
    "dlcosmk": _dlcosmk_text,
    "flowacct": _flowacct_text,
}


def _action_text(module: str, counters: dict[str, int]) -> str:
    text = _ACTION_TEXT.get(module)
    if text is not None:
        return text(counters)
    return ", ".join(f"{k} {v:,}" for k, v in counters.items())


def format_summary(stats: SessionStats) -> str:
    """The human summary of a session's statistics (the same figures as ``--stats``)."""
    total = stats.packets
    elapsed = stats.elapsed_s
    rate = f", {total / elapsed:,.0f} packets/s" if elapsed > 0 else ""
    source = "standard input" if stats.input == "-" else stats.input
    lines = [
        f"{source}: {total:,} packets ({human_bytes(stats.bytes)}) in {elapsed:.2f} s{rate}",
        f"  written {stats.written:,}, dropped {stats.dropped:,}"
        + (f", deferred {stats.deferred:,}" if stats.deferred else "")
        + f", not IP {stats.not_ip.packets:,} (passed unchanged)",
    ]
    if stats.malformed:
        first = ", ".join(str(n) for n in stats.malformed_first)
        more = " …" if stats.malformed > len(stats.malformed_first) else ""
        lines.append(f"  malformed {stats.malformed:,} (passed unmodified): packets {first}{more}")
    if stats.truncated:
        cut = f"  cut by the snap length: {stats.truncated:,} (classified)"
        if stats.header_cut:
            cut += (
                f", {stats.header_cut:,} of them inside the IP header "
                "(only the DS byte was there to classify on)"
            )
        lines.append(cut)
    if stats.length_from_frame:
        lines.append(
            f"  IP length 0 (segmentation offload): {stats.length_from_frame:,}, "
            "length taken from the frame"
        )
    if stats.classes:
        classified = sum(c.packets for c in stats.classes.values())
        rows = [
            [
                name,
                f"{c.packets:,}",
                _pct(c.packets, classified),
                human_bytes(c.bytes),
                c.next_action,
            ]
            for name, c in sorted(stats.classes.items(), key=lambda kv: -kv[1].packets)
        ]
        lines.append("")
        lines.extend(
            text_table(
                ["class", "packets", "share", "bytes", "next action"], rows, {1, 2, 3}, indent="  "
            )
        )
    rows = [
        [name, action.module, _action_text(action.module, dict(action.counters))]
        for name, action in stats.actions.items()
        if action.module != "ipgpc"
    ]
    if rows:
        lines.append("")
        lines.extend(text_table(["action", "module", "outcome"], rows, set(), indent="  "))
    changed = [t for t in stats.dscp_transitions if t.source != t.to]
    if changed:
        rows = [
            [_dscp(t.source), "→", _dscp(t.to), f"{t.packets:,}"] for t in changed[:MAX_TRANSITIONS]
        ]
        lines.append("")
        lines.extend(text_table(["DSCP before", "", "after", "packets"], rows, {3}, indent="  "))
        if len(changed) > MAX_TRANSITIONS:
            lines.append(f"  … and {len(changed) - MAX_TRANSITIONS} more (see --stats)")
    return "\n".join(lines)
