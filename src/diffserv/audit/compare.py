"""Two captures of the same traffic, before and after a hop, matched packet by packet.

``diffserv audit --compare BEFORE AFTER`` asks what the hop did to the marks: for each
flow (5-tuple, each direction apart) the DSCP before -> after of every packet seen on
both sides, the 802.1Q PCP and ECN likewise, which packets changed (by their numbers in
each file), and which were seen on one side only (dropped at the hop, or not from the
traffic BEFORE saw). Whether a change is the one the policy prescribes is decided from
this result by the caller.

Packets are recognised by :mod:`diffserv.audit.packet_identity` (never by the DS byte,
the TTL, a checksum or the link layer). Identical packets (a retransmission carrying the
same bytes) are matched in order, the first BEFORE copy with the first AFTER copy, so the
result is the same on every run.

Memory is bounded by a window of ``window`` BEFORE packets waiting for their AFTER copy
(about 300 bytes each), plus the identities of twice as many that left it unmatched (to
recognise late copies). Both files are read once, in order. An AFTER packet is looked up
among the waiting packets; when it is not there, BEFORE is read on until its copy turns
up, at most ``window`` packets for that one search. When reading puts more than
``window`` unmatched packets in the window, the one read earliest leaves it and counts
as ``only_before``: that is the normal fate of a packet dropped at the hop. An AFTER
packet whose copy is not found counts as ``only_after``. Packets reordered, and runs of
drops, that keep fewer than ``window`` packets waiting are matched exactly.

Beyond that, the packets concerned count as unmatched and matching carries on:

* an AFTER packet whose copy left the window not long ago is *late* (reordered further
  than the window allows; a warning says so): it does not make BEFORE read on, which
  would push more of the packets still to come out of the window;
* when a search fails, BEFORE is a window ahead: the next ``window`` misses (a burst
  seen only after the hop) read nothing, so the packets BEFORE just read stay in the
  window for the AFTER packets that follow the burst; the miss after them searches
  ``window`` packets plus one for each of those misses, so that a run of more than
  ``window`` dropped packets cannot stop the matching for good: it costs about as many
  AFTER packets after it, counted unmatched, before the two files are in step again.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from typing import Final, TypeVar

import msgspec
import numpy as np

from diffserv.audit.packet_identity import (
    PAYLOAD_BYTES,
    FlowTuple,
    PacketIdentity,
    ReadCounts,
    SidePacket,
    read_identities,
)
from diffserv.errors import UsageError
from diffserv.records import format_addresses

__all__ = [
    "DEFAULT_WINDOW",
    "FIRST_LISTED",
    "CompareTotals",
    "Comparison",
    "FlowChange",
    "FlowKey",
    "compare_captures",
]

DEFAULT_WINDOW: Final = 65536
"""BEFORE packets that may wait for their AFTER copy (about 300 bytes of memory each)."""

FIRST_LISTED: Final = 10
"""Packet numbers listed per flow (changed pairs, packets seen on one side only)."""


class FlowKey(msgspec.Struct, frozen=True):
    """A flow: one direction of a conversation (addresses as text, v4 dotted)."""

    ip_version: int
    saddr: str
    daddr: str
    sport: int
    dport: int
    protocol: int


class FlowChange(msgspec.Struct):
    """What the hop did to one flow.

    ``transitions``, ``pcp_transitions`` and ``ecn_transitions`` count the matched
    packets by (before, after) value, unchanged ones included, so each sums to
    ``matched`` (the PCP one over the pairs tagged on both sides; None when no matched
    pair is). ``changed`` counts matched packets whose DSCP or PCP differs (an ECN
    change alone, such as bleaching, is not a re-mark and shows in ``ecn_transitions``).
    ``dscp_before``/``dscp_after`` count every packet of the flow in each file, matched
    or not. ``first_changed`` holds (BEFORE packet number, AFTER packet number) of the
    first :data:`FIRST_LISTED` changed pairs in AFTER order; ``first_only_before`` and
    ``first_only_after`` the first packet numbers seen on one side only.
    """

    key: FlowKey
    packets_before: int
    packets_after: int
    matched: int
    changed: int
    only_before: int
    only_after: int
    dscp_before: dict[int, int]
    dscp_after: dict[int, int]
    transitions: dict[tuple[int, int], int]
    pcp_transitions: dict[tuple[int, int], int] | None
    ecn_transitions: dict[tuple[int, int], int]
    first_changed: list[tuple[int, int]]
    first_only_before: list[int]
    first_only_after: list[int]


class CompareTotals(msgspec.Struct):
    """The sums over all flows, plus what could not be compared at all.

    ``packets_*`` count every record of a file; ``not_compared_*`` those without a packet
    identity (not IP, malformed, IP header cut by the snap length). ``evicted`` is the
    part of ``only_before`` that left the window unmatched (the rest was still waiting,
    or unread, when AFTER ended). ``bleached`` counts matched packets that were ECN
    capable (ECT or CE) before and Not-ECT after.
    """

    packets_before: int
    packets_after: int
    not_compared_before: int
    not_compared_after: int
    matched: int
    changed: int
    dscp_changed: int
    pcp_changed: int
    bleached: int
    only_before: int
    only_after: int
    evicted: int
    late: int
    window: int
    payload_bytes: int = PAYLOAD_BYTES


class Comparison(msgspec.Struct):
    """The result of :func:`compare_captures`.

    ``flows`` are in the order of their first packet in BEFORE; flows BEFORE never saw
    follow in the order of their first packet in AFTER.
    """

    before: str
    after: str
    flows: list[FlowChange]
    totals: CompareTotals
    warnings: list[str]


_K = TypeVar("_K")


class _Tally:
    """One flow's counts while the files are read (turned into a FlowChange at the end)."""

    __slots__ = (
        "changed",
        "dscp_after",
        "dscp_before",
        "ecn",
        "first_after",
        "first_before",
        "first_changed",
        "first_only_after",
        "first_only_before",
        "matched",
        "only_after",
        "only_before",
        "packets_after",
        "packets_before",
        "pcp",
        "transitions",
    )

    def __init__(self) -> None:
        self.first_before = 0  # packet numbers start at 1: 0 = not seen
        self.first_after = 0
        self.packets_before = self.packets_after = self.matched = self.changed = 0
        self.only_before = self.only_after = 0
        self.dscp_before: dict[int, int] = {}
        self.dscp_after: dict[int, int] = {}
        self.transitions: dict[tuple[int, int], int] = {}
        self.pcp: dict[tuple[int, int], int] = {}
        self.ecn: dict[tuple[int, int], int] = {}
        self.first_changed: list[tuple[int, int]] = []
        self.first_only_before: list[int] = []
        self.first_only_after: list[int] = []


def _count(table: dict[_K, int], key: _K) -> None:
    table[key] = table.get(key, 0) + 1


class _Waiting:
    """A BEFORE packet waiting for its AFTER copy."""

    __slots__ = ("alive", "packet", "tally")

    def __init__(self, packet: SidePacket, tally: _Tally) -> None:
        self.packet = packet
        self.tally = tally
        self.alive = True


class _Matcher:
    """The window of waiting BEFORE packets and the rule for reading BEFORE on."""

    def __init__(self, before: Iterator[SidePacket], window: int) -> None:
        self.before = before
        self.window = window
        self.flows: dict[FlowTuple, _Tally] = {}
        self.waiting: dict[PacketIdentity, deque[_Waiting]] = {}
        self.order: deque[_Waiting] = deque()  # read order; matched ones skipped lazily
        self.alive = 0
        self.exhausted = False
        self.ahead = False  # the last search failed: BEFORE is read a window ahead
        self.misses = 0  # AFTER packets not found since, without reading on
        self.evicted = 0
        # identities of the last 2 * window packets that left the window: an AFTER copy
        # of one of them is late, and no reason to read on (BEFORE is ahead already)
        self.gone: dict[PacketIdentity, int] = {}
        self.gone_order: deque[PacketIdentity] = deque()
        self.late = 0

    def tally(self, flow: FlowTuple) -> _Tally:
        tally = self.flows.get(flow)
        if tally is None:
            tally = self.flows[flow] = _Tally()
        return tally

    def find(self, identity: PacketIdentity) -> _Waiting | None:
        """The earliest waiting BEFORE copy of ``identity``, reading on by the rule above."""
        found = self._take(identity)
        if found is None:
            if self._late(identity):
                return None
            if self.ahead and self.misses < self.window:
                self.misses += 1
                return None
            found = self._search(identity, self.window + self.misses)
        self.ahead, self.misses = found is None, 0
        return found

    def _search(self, identity: PacketIdentity, reads: int) -> _Waiting | None:
        for _ in range(reads):
            if not self._read():
                return None
            if self.order[-1].packet.identity == identity:
                return self._take(identity)
        return None

    def _late(self, identity: PacketIdentity) -> bool:
        """Whether a copy of ``identity`` left the window unmatched not long ago."""
        count = self.gone.get(identity, 0)
        if not count:
            return False
        if count == 1:
            del self.gone[identity]
        else:
            self.gone[identity] = count - 1
        self.late += 1
        return True

    def _take(self, identity: PacketIdentity) -> _Waiting | None:
        queue = self.waiting.get(identity)
        if queue is None:
            return None
        found = queue.popleft()
        if not queue:
            del self.waiting[identity]
        found.alive = False
        self.alive -= 1
        return found

    def _read(self) -> bool:
        packet = next(self.before, None)
        if packet is None:
            self.exhausted = True
            return False
        tally = self.tally(packet.identity[0])
        if not tally.first_before:
            tally.first_before = packet.number
        tally.packets_before += 1
        _count(tally.dscp_before, packet.ds >> 2)
        waiting = _Waiting(packet, tally)
        self.waiting.setdefault(packet.identity, deque()).append(waiting)
        self.order.append(waiting)
        self.alive += 1
        if self.alive > self.window:
            self._evict_oldest()
        if len(self.order) > 2 * self.window + 64:
            self.order = deque(w for w in self.order if w.alive)
        return True

    def _evict_oldest(self) -> None:
        while not self.order[0].alive:
            self.order.popleft()
        oldest = self.order.popleft()
        taken = self._take(oldest.packet.identity)
        assert taken is oldest  # equal identities wait in read order
        self.evicted += 1
        _only_before(oldest)
        identity = oldest.packet.identity
        self.gone[identity] = self.gone.get(identity, 0) + 1
        self.gone_order.append(identity)
        if len(self.gone_order) > 2 * self.window:
            forgotten = self.gone_order.popleft()
            count = self.gone.get(forgotten, 0)
            if count > 1:
                self.gone[forgotten] = count - 1
            elif count:
                del self.gone[forgotten]

    def drain(self) -> None:
        """AFTER has ended: everything waiting, and the rest of BEFORE, was seen only before."""
        for waiting in self.order:
            if waiting.alive:
                _only_before(waiting)
        self.order.clear()
        self.waiting.clear()
        self.alive = 0
        while self._read():
            _only_before(self.order.pop())
            self.waiting.clear()
            self.alive = 0


def _only_before(waiting: _Waiting) -> None:
    tally = waiting.tally
    tally.only_before += 1
    if len(tally.first_only_before) < FIRST_LISTED:
        tally.first_only_before.append(waiting.packet.number)


class _Sums:
    """The totals over matched pairs, kept as they happen."""

    __slots__ = ("bleached", "dscp_changed", "matched", "pcp_changed")

    def __init__(self) -> None:
        self.matched = self.dscp_changed = self.pcp_changed = self.bleached = 0


def _pair(tally: _Tally, before: SidePacket, after: SidePacket, sums: _Sums) -> None:
    dscp = (before.ds >> 2, after.ds >> 2)
    ecn = (before.ds & 3, after.ds & 3)
    tally.matched += 1
    sums.matched += 1
    _count(tally.transitions, dscp)
    _count(tally.ecn, ecn)
    changed = dscp[0] != dscp[1]
    sums.dscp_changed += changed
    if ecn[0] and not ecn[1]:
        sums.bleached += 1
    if before.pcp >= 0 and after.pcp >= 0:
        pcp = (before.pcp, after.pcp)
        _count(tally.pcp, pcp)
        if pcp[0] != pcp[1]:
            sums.pcp_changed += 1
            changed = True
    if changed:
        tally.changed += 1
        if len(tally.first_changed) < FIRST_LISTED:
            tally.first_changed.append((before.number, after.number))


def compare_captures(before: str, after: str, *, window: int = DEFAULT_WINDOW) -> Comparison:
    """Match every packet of ``after`` with its copy in ``before``; the result per flow.

    Raises UsageError for a window below 1 or both files on standard input, and
    InputDataError (``FILE: packet N: ...``) for an unreadable, damaged or truncated
    capture.
    """
    if window < 1:
        raise UsageError(f"--window must be at least 1 packet, not {window}")
    if before == "-" and after == "-":
        raise UsageError("--compare: only one of BEFORE and AFTER can be standard input")
    before_counts, after_counts = ReadCounts(), ReadCounts()
    matcher = _Matcher(read_identities(before, before_counts), window)
    sums = _Sums()
    only_after = 0
    for packet in read_identities(after, after_counts):
        tally = matcher.tally(packet.identity[0])
        if not tally.first_after:
            tally.first_after = packet.number
        tally.packets_after += 1
        _count(tally.dscp_after, packet.ds >> 2)
        found = matcher.find(packet.identity)
        if found is None:
            only_after += 1
            tally.only_after += 1
            if len(tally.first_only_after) < FIRST_LISTED:
                tally.first_only_after.append(packet.number)
        else:
            _pair(tally, found.packet, packet, sums)
    matcher.drain()

    flows = _flow_changes(matcher.flows)
    only_before = sum(flow.only_before for flow in flows)
    totals = CompareTotals(
        packets_before=before_counts.packets,
        packets_after=after_counts.packets,
        not_compared_before=before_counts.not_compared,
        not_compared_after=after_counts.not_compared,
        matched=sums.matched,
        changed=sum(flow.changed for flow in flows),
        dscp_changed=sums.dscp_changed,
        pcp_changed=sums.pcp_changed,
        bleached=sums.bleached,
        only_before=only_before,
        only_after=only_after,
        evicted=matcher.evicted,
        late=matcher.late,
        window=window,
    )
    warnings = _warnings(before, after, before_counts, after_counts, totals)
    return Comparison(before, after, flows, totals, warnings)


def _flow_changes(flows: dict[FlowTuple, _Tally]) -> list[FlowChange]:
    items = sorted(
        flows.items(),
        key=lambda item: (not item[1].first_before, item[1].first_before, item[1].first_after),
    )
    if not items:
        return []
    keys = np.array([flow for flow, _ in items], np.uint64)
    saddrs = format_addresses(keys[:, 1], keys[:, 2])
    daddrs = format_addresses(keys[:, 3], keys[:, 4])
    return [
        FlowChange(
            key=FlowKey(flow[0], saddr, daddr, flow[5], flow[6], flow[7]),
            packets_before=tally.packets_before,
            packets_after=tally.packets_after,
            matched=tally.matched,
            changed=tally.changed,
            only_before=tally.only_before,
            only_after=tally.only_after,
            dscp_before=dict(sorted(tally.dscp_before.items())),
            dscp_after=dict(sorted(tally.dscp_after.items())),
            transitions=dict(sorted(tally.transitions.items())),
            pcp_transitions=dict(sorted(tally.pcp.items())) if tally.pcp else None,
            ecn_transitions=dict(sorted(tally.ecn.items())),
            first_changed=tally.first_changed,
            first_only_before=tally.first_only_before,
            first_only_after=tally.first_only_after,
        )
        for (flow, tally), saddr, daddr in zip(items, saddrs, daddrs, strict=True)
    ]


def _warnings(
    before: str, after: str, before_counts: ReadCounts, after_counts: ReadCounts, t: CompareTotals
) -> list[str]:
    out = [*before_counts.warnings, *after_counts.warnings]
    for path, counts in ((before, before_counts), (after, after_counts)):
        if counts.payload_cut:
            out.append(
                f"{path}: the snap length cut {counts.payload_cut:,} packets within the first "
                f"{PAYLOAD_BYTES} payload bytes; they match only a copy cut at the same place"
            )
    if t.late:
        out.append(
            f"{t.late:,} packets of {after} came later than a window of {t.window:,} "
            f"packets allows: they count as seen only after, and their copies in {before} "
            "as seen only before; give a larger window"
        )
    if not t.matched and t.only_before and t.only_after:
        out.append(
            f"no packet of {after} matched one of {before}: are they captures of the same "
            "traffic? (a NAT or a tunnel between them changes what packets are matched by)"
        )
    return out
