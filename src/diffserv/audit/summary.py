"""What an audit says: counts per class and verdict, the confusion table, the worst flows.

The audit judges flows batch by batch (a flow store does not fit in memory); this
module folds each judged batch into exact integer tallies keyed by small tuples, and
keeps only the ``top`` largest flows of each list, so memory follows the number of
distinct (class, verdict, mark) combinations and ``top``, not the records. Totals
never depend on how the records were batched: sums are integers, and the kept flows
are chosen by (bytes, packets, then the flow's own fields), a total order.
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence
from typing import Any, Final, NamedTuple

import numpy as np
from numpy.typing import NDArray

from diffserv.audit.verdicts import LEAK, MISMARKED, NOT_EVALUABLE, VERDICTS, allowed_labels
from diffserv.records import format_addresses, iso_time
from diffserv.report.names import dscp_label, ecn_label, protocol_name
from diffserv.rowgroups import group_rows

_COUNTERS: Final = ("flows", "packets", "bytes")


class JudgedFlows(NamedTuple):
    """One batch of flows (or packets), classified and judged: plain columns."""

    first_ns: NDArray[np.int64]
    saddr_hi: NDArray[np.uint64]
    saddr_lo: NDArray[np.uint64]
    daddr_hi: NDArray[np.uint64]
    daddr_lo: NDArray[np.uint64]
    sport: NDArray[np.int32]
    dport: NDArray[np.int32]
    protocol: NDArray[np.int16]
    packets: NDArray[np.int64]
    bytes: NDArray[np.int64]
    class_index: NDArray[np.int32]
    filter_index: NDArray[np.int32]  # -1: no filter (the default class)
    blocked_by: NDArray[np.int32]  # -1: evaluable
    dscp_in: NDArray[np.int16]  # arrival DSCP, -1 unknown
    observed: NDArray[np.int16]  # the DSCP judged, -1 not exported
    ecn_in: NDArray[np.int16]
    ecn_out: NDArray[np.int16]
    verdict: NDArray[np.int8]
    allowed: NDArray[np.uint64]
    egress: NDArray[np.bool_]  # the observed mark is the egress ToS (else the ToS)
    pcp: NDArray[np.int16]  # 802.1p priority, -1 untagged or not exported
    pcp_wrong: NDArray[np.bool_]  # mismarked (also) for its priority
    pcp_allowed: NDArray[np.int64]  # the priorities the class can leave with (bits 0-7)


class Names(NamedTuple):
    """What the indexes of a judged batch name."""

    classes: Sequence[str]
    filters: Sequence[str]  # filter index -> filter name
    filter_classes: Sequence[str]  # filter index -> its class
    missing: Sequence[str]  # filter index -> the selectors a source lacks
    expected: Sequence[str]  # class index -> what the policy allows, in words


def _mix(columns: Sequence[NDArray[Any]]) -> NDArray[np.uint64]:
    """A 64-bit mix of each row's values (a sort key; equal rows mix equal)."""
    mixed = np.full(columns[0].shape[0], np.uint64(0x9E3779B97F4A7C15), np.uint64)
    with np.errstate(over="ignore"):
        for column in columns:
            mixed = (mixed ^ column.astype(np.uint64, copy=False)) * np.uint64(0xBF58476D1CE4E5B9)
            mixed ^= mixed >> np.uint64(29)
    return mixed


def _flow_hash(flows: JudgedFlows) -> NDArray[np.uint64]:
    """A 64-bit key of each row's 5-tuple (a capture's packets: which flow each is of)."""
    return _mix(_fields(flows)[:7])


class Tally:
    """The running totals of an audit.

    ``packets``: the rows are a capture's packets, so "flows" counts the distinct
    5-tuples of each tally and the lists of flows sum their packets; memory then
    follows the number of flows in those lists, as a flow table's would.
    """

    def __init__(self, names: Names, top: int, *, packets: bool = False) -> None:
        self.names = names
        self.top = top
        self.packets = packets
        # a capture's (keys, flow hashes) per tally, counted into "flows" when asked
        self._pairs: dict[int, list[tuple[list[NDArray[Any]], NDArray[np.uint64]]]] = {}
        self._counted: set[int] = set()
        self._per_flow: dict[str, list[list[NDArray[Any]]]] = {}
        self.by_class: dict[tuple[int, int], list[int]] = {}  # (class, verdict)
        self.confusion: dict[tuple[int, int, int], list[int]] = {}  # (class, allowed, seen)
        self.blocked: dict[tuple[int], list[int]] = {}  # (filter,) -> counters
        self.marks_from = [0, 0]  # flows judged on the ToS, on the egress ToS
        self.bleached: list[int] = [0, 0, 0]
        self._worst: dict[str, list[tuple[Any, ...]]] = {"mismarked": [], "leaks": []}
        self._bleached_flows: list[tuple[Any, ...]] = []

    def add(self, flows: JudgedFlows) -> None:
        n = flows.verdict.shape[0]
        if not n:
            return
        judged = (flows.verdict != NOT_EVALUABLE) & (flows.observed >= 0)
        if self.packets:  # rows are groups of a capture's packets: count the packets
            self.marks_from[0] += int(flows.packets[judged & ~flows.egress].sum())
            self.marks_from[1] += int(flows.packets[judged & flows.egress].sum())
        else:
            self.marks_from[0] += int((judged & ~flows.egress).sum())
            self.marks_from[1] += int((judged & flows.egress).sum())
        hashes = None
        if self.packets:  # a capture's packets: one row per flow and judgment from here
            flows = _condense(flows)
            n = flows.verdict.shape[0]
            hashes = _flow_hash(flows)
        counters = (flows.packets, flows.bytes)
        cls = np.where(flows.verdict == NOT_EVALUABLE, -1, flows.class_index)
        self._fold(self.by_class, [cls, flows.verdict], counters, hashes)
        wrong = flows.verdict == MISMARKED
        if wrong.any():
            keys = [flows.class_index[wrong], flows.allowed[wrong], flows.observed[wrong]]
            self._fold(self.confusion, keys, _masked(counters, wrong), _rows(hashes, wrong))
        blocked = flows.verdict == NOT_EVALUABLE
        if blocked.any():
            keys = [flows.blocked_by[blocked]]
            self._fold(self.blocked, keys, _masked(counters, blocked), _rows(hashes, blocked))
        bleach = (flows.ecn_in > 0) & (flows.ecn_in < 3) & (flows.ecn_out == 0)
        if bleach.any():
            self.bleached[0] += int(np.count_nonzero(bleach))
            self.bleached[1] += int(flows.packets[bleach].sum())
            self.bleached[2] += int(flows.bytes[bleach].sum())
            self._keep("ecn_bleached", flows, bleach)
        self._keep("mismarked", flows, wrong)
        self._keep("leaks", flows, flows.verdict == LEAK)

    def _fold(
        self,
        into: dict[Any, list[int]],
        keys: list[NDArray[Any]],
        counters: tuple[NDArray[np.int64], NDArray[np.int64]],
        hashes: NDArray[np.uint64] | None,
    ) -> None:
        """Add the rows (flows) and their ``counters`` (packets, bytes) into ``into`` per
        distinct key (``keys``: its columns); with ``hashes``, remember which flows each
        key has seen and count those."""
        groups = group_rows(keys)
        sums = [groups.sizes(), *(groups.sums(counter) for counter in counters)]
        firsts = [column[groups.firsts].tolist() for column in keys]
        for key, row in zip(
            zip(*firsts, strict=True), zip(*(c.tolist() for c in sums), strict=True), strict=True
        ):
            entry = into.setdefault(key, [0, 0, 0])
            for i, value in enumerate(row):
                entry[i] += value
        if hashes is not None:  # a capture's: distinct flows per key counted at the end
            self._pairs.setdefault(id(into), []).append((keys, hashes))
            self._counted.discard(id(into))

    def _count_flows(self, into: dict[Any, list[int]]) -> None:
        """Set each key's "flows" to the distinct 5-tuples its packets came from."""
        parts = self._pairs.get(id(into))
        if not parts or id(into) in self._counted:
            return
        keys = [np.concatenate(column) for column in zip(*(k for k, _ in parts), strict=True)]
        hashes = np.concatenate([h for _, h in parts])
        pairs = group_rows([*keys, hashes])
        distinct = [column[pairs.firsts] for column in keys]
        per_key = group_rows(distinct)
        counts = per_key.sizes()
        firsts = [column[per_key.firsts].tolist() for column in distinct]
        for key, count in zip(zip(*firsts, strict=True), counts.tolist(), strict=True):
            into[key][0] = int(count)
        self._counted.add(id(into))

    def _keep(self, which: str, flows: JudgedFlows, mask: NDArray[np.bool_]) -> None:
        """Keep the largest flows of list ``which`` (a capture's: every flow, summed)."""
        rows = np.flatnonzero(mask)
        if not rows.size:
            return
        kept = self._bleached_flows if which == "ecn_bleached" else self._worst[which]
        if self.packets:
            self._sum_flows(which, flows, rows)
            return
        if rows.size > self.top:  # the rows with the top byte counts, ties included
            sizes = flows.bytes[rows]
            cut = np.partition(sizes, sizes.size - self.top)[sizes.size - self.top]
            rows = rows[sizes >= cut]
        order = np.lexsort((-flows.packets[rows], -flows.bytes[rows]))
        if order.size > self.top:  # keep every row tied with the last one kept
            last = order[self.top - 1]
            key_b, key_p = flows.bytes[rows][last], flows.packets[rows][last]
            ranked_b, ranked_p = flows.bytes[rows][order], flows.packets[rows][order]
            order = order[(ranked_b > key_b) | ((ranked_b == key_b) & (ranked_p >= key_p))]
        picked = rows[order]
        saddrs = format_addresses(flows.saddr_hi[picked], flows.saddr_lo[picked])
        daddrs = format_addresses(flows.daddr_hi[picked], flows.daddr_lo[picked])
        for j, row in enumerate(picked.tolist()):
            entry = (
                int(flows.bytes[row]),
                int(flows.packets[row]),
                -int(flows.first_ns[row]),
                saddrs[j],
                daddrs[j],
                int(flows.sport[row]),
                int(flows.dport[row]),
                int(flows.protocol[row]),
                int(flows.class_index[row]),
                int(flows.filter_index[row]),
                int(flows.allowed[row]),
                int(flows.observed[row]),
                int(flows.dscp_in[row]),
                bool(flows.egress[row]),
                int(flows.ecn_in[row]),
                int(flows.ecn_out[row]),
                int(flows.pcp[row]),
                bool(flows.pcp_wrong[row]),
                int(flows.pcp_allowed[row]),
            )
            self._offer(kept, entry)

    def _offer(self, kept: list[tuple[Any, ...]], entry: tuple[Any, ...]) -> None:
        """Keep ``entry`` if it is among the ``top`` largest so far (a total order)."""
        if len(kept) < self.top:
            heapq.heappush(kept, entry)
        elif entry > kept[0]:
            heapq.heapreplace(kept, entry)

    def merge(self, other: Tally) -> None:
        """Add the tally of other records of the same audit (a worker's share of them).

        Counts add up, and each list keeps the largest flows of both: flows are ordered
        totally, so the kept ones are those one tally of all the records keeps.
        """
        if self.packets or other.packets:
            raise ValueError("a capture's tallies count flows across batches: not merged")
        for mine, theirs in (
            (self.by_class, other.by_class),
            (self.confusion, other.confusion),
            (self.blocked, other.blocked),
        ):
            for key, counts in theirs.items():
                entry = mine.setdefault(key, [0, 0, 0])  # type: ignore[arg-type]
                for i, value in enumerate(counts):
                    entry[i] += value
        for i, value in enumerate(other.marks_from):
            self.marks_from[i] += value
        for i, value in enumerate(other.bleached):
            self.bleached[i] += value
        for name, kept in self._worst.items():
            for flow in other._worst[name]:
                self._offer(kept, flow)
        for flow in other._bleached_flows:
            self._offer(self._bleached_flows, flow)

    def _sum_flows(self, which: str, flows: JudgedFlows, rows: NDArray[np.intp]) -> None:
        """Sum a capture's packets per flow and judged mark within the batch (numpy);
        the batches' sums are summed again once, at the end."""
        fields = [f[rows] for f in _fields(flows)]
        groups = group_rows(fields)
        sums = [
            groups.sums(flows.bytes[rows]),
            groups.sums(flows.packets[rows]),
            groups.minima(flows.first_ns[rows]),
        ]
        self._per_flow.setdefault(which, []).append([f[groups.firsts] for f in fields] + sums)

    def _summed(self, which: str) -> list[tuple[Any, ...]]:
        """A capture's summed flows of list ``which``, as the entries of a record list."""
        parts = self._per_flow.get(which)
        if not parts:
            return []
        columns = [np.concatenate(c) for c in zip(*parts, strict=True)]
        fields, (sizes, counts, times) = columns[:-3], columns[-3:]
        groups = group_rows(fields)
        nbytes = groups.sums(sizes)
        packets = groups.sums(counts)
        first = groups.minima(times)
        best = np.lexsort((first, -packets, -nbytes))[: self.top]
        picked = groups.firsts[best]
        saddrs = format_addresses(fields[0][picked], fields[1][picked])
        daddrs = format_addresses(fields[2][picked], fields[3][picked])
        rest = zip(*(f[picked].tolist() for f in fields[4:]), strict=True)
        return [
            (int(nbytes[k]), int(packets[k]), -int(first[k]), saddrs[j], daddrs[j], *values)
            for j, (k, values) in enumerate(zip(best.tolist(), rest, strict=True))
        ]

    # ------------------------------------------------------------------ output

    def totals(self) -> dict[str, dict[str, int]]:
        self._count_flows(self.by_class)
        out = {name: dict.fromkeys(_COUNTERS, 0) for name in VERDICTS}
        for (_, verdict), counts in self.by_class.items():
            for name, value in zip(_COUNTERS, counts, strict=True):
                out[VERDICTS[verdict]][name] += value
        return out

    def failed(self) -> bool:
        """Whether anything evaluable is mismarked or leaks a priority mark."""
        totals = self.totals()
        return bool(totals["mismarked"]["flows"] or totals["leak"]["flows"])

    def classes(self) -> list[dict[str, Any]]:
        self._count_flows(self.by_class)
        names = self.names
        rows = []
        for index, name in enumerate(names.classes):
            row: dict[str, Any] = {"class": name, "expected": names.expected[index]}
            seen = False
            for verdict, label in enumerate(VERDICTS):
                counts = self.by_class.get((index, verdict), [0, 0, 0])
                seen = seen or any(counts)
                row[label] = dict(zip(_COUNTERS, counts, strict=True))
            if seen:
                rows.append(row)
        rows.sort(key=lambda r: (-sum(r[v]["bytes"] for v in VERDICTS), r["class"]))
        return rows

    def confusion_rows(self) -> list[dict[str, Any]]:
        self._count_flows(self.confusion)
        rows: list[dict[str, Any]] = []
        for (cls, allowed, seen), counts in self.confusion.items():
            rows.append(
                {
                    "class": self.names.classes[cls],
                    "expected": allowed_labels(allowed),
                    "observed": dscp_label(seen),
                    "observed_dscp": seen,
                    **dict(zip(_COUNTERS, counts, strict=True)),
                }
            )
        rows.sort(key=lambda r: (-r["bytes"], -r["packets"], r["class"], r["observed_dscp"]))
        return rows

    def blocked_rows(self) -> list[dict[str, Any]]:
        self._count_flows(self.blocked)
        names = self.names
        rows: list[dict[str, Any]] = [
            {
                "filter": names.filters[index],
                "class": names.filter_classes[index],
                "missing": names.missing[index],
                **dict(zip(_COUNTERS, counts, strict=True)),
            }
            for (index,), counts in self.blocked.items()
        ]
        rows.sort(key=lambda r: (-r["flows"], r["filter"]))
        return rows

    def flow_rows(self, which: str) -> list[dict[str, Any]]:
        if self.packets:
            return [self._flow(entry) for entry in self._summed(which)]
        kept = self._bleached_flows if which == "ecn_bleached" else self._worst[which]
        return [self._flow(entry) for entry in sorted(kept, reverse=True)]

    def _flow(self, entry: tuple[Any, ...]) -> dict[str, Any]:
        (nbytes, packets, neg_first, saddr, daddr, sport, dport, protocol, cls, flt, allowed,
         observed, dscp_in, egress, ecn_in, ecn_out, pcp, pcp_wrong,
         pcp_allowed) = entry  # fmt: skip
        names = self.names
        return {
            "first_seen": iso_time(-neg_first),
            "saddr": saddr,
            "sport": sport,
            "daddr": daddr,
            "dport": dport,
            "protocol": protocol,
            "protocol_name": protocol_name(protocol),
            "class": names.classes[cls],
            "filter": names.filters[flt] if flt >= 0 else None,
            "expected": allowed_labels(allowed),
            "observed": dscp_label(observed if observed >= 0 else None),
            "arrived": dscp_label(dscp_in) if dscp_in >= 0 else None,
            "mark_from": "egress ToS" if egress else "ToS",
            "ecn_in": ecn_label(ecn_in if ecn_in >= 0 else None),
            "ecn_out": ecn_label(ecn_out if ecn_out >= 0 else None),
            "pcp": pcp if pcp >= 0 else None,
            "pcp_wrong": bool(pcp_wrong),
            "expected_pcp": [p for p in range(8) if pcp_allowed >> p & 1],
            "packets": packets,
            "bytes": nbytes,
        }


def _rows(hashes: NDArray[np.uint64] | None, mask: NDArray[np.bool_]) -> NDArray[np.uint64] | None:
    return None if hashes is None else hashes[mask]


def _masked(
    counters: tuple[NDArray[np.int64], NDArray[np.int64]], mask: NDArray[np.bool_]
) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    return counters[0][mask], counters[1][mask]


def _fields(flows: JudgedFlows) -> list[NDArray[Any]]:
    """The columns that tell a flow of a list apart: its 5-tuple and how it was judged."""
    return [
        flows.saddr_hi,
        flows.saddr_lo,
        flows.daddr_hi,
        flows.daddr_lo,
        flows.sport,
        flows.dport,
        flows.protocol,
        flows.class_index,
        flows.filter_index,
        flows.allowed,
        flows.observed,
        flows.dscp_in,
        flows.egress,
        flows.ecn_in,
        flows.ecn_out,
        flows.pcp,
        flows.pcp_wrong,
        flows.pcp_allowed,
    ]


def _condense(flows: JudgedFlows) -> JudgedFlows:
    """A capture's judged packets summed per flow and judgment (one exact grouping, on
    the 5-tuple and every judged field packed into few columns)."""
    small = (
        flows.sport.astype(np.int64, copy=False)
        | flows.dport.astype(np.int64, copy=False) << 16
        | flows.protocol.astype(np.int64, copy=False) << 32
        | flows.verdict.astype(np.int64, copy=False) << 40
        | flows.egress.astype(np.int64, copy=False) << 44
        | (flows.ecn_in.astype(np.int64, copy=False) + 1) << 45
        | (flows.ecn_out.astype(np.int64, copy=False) + 1) << 48
        | (flows.observed.astype(np.int64, copy=False) + 1) << 51
        | (flows.pcp.astype(np.int64, copy=False) + 1) << 58
        | flows.pcp_wrong.astype(np.int64, copy=False) << 62
    )
    judged = (
        (flows.class_index.astype(np.int64, copy=False) + 1) << 32
        | (flows.filter_index.astype(np.int64, copy=False) + 1) << 8
        | (flows.dscp_in.astype(np.int64, copy=False) + 1)
    )
    columns = [flows.saddr_lo, flows.daddr_lo, flows.saddr_hi, flows.daddr_hi, small, judged]
    groups = group_rows([*columns, flows.allowed, flows.blocked_by, flows.pcp_allowed])
    taken: list[Any] = [column[groups.firsts] for column in flows]
    out = JudgedFlows(*taken)
    return out._replace(
        packets=groups.sums(flows.packets),
        bytes=groups.sums(flows.bytes),
        first_ns=groups.minima(flows.first_ns),
    )
