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

from diffserv.audit.verdicts import LEAK, MISMARKED, NOT_EVALUABLE, VERDICTS, dscps_of
from diffserv.records import format_addresses, iso_time
from diffserv.report.names import dscp_label, ecn_label, protocol_name

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


class Names(NamedTuple):
    """What the indexes of a judged batch name."""

    classes: Sequence[str]
    filters: Sequence[str]  # filter index -> filter name
    filter_classes: Sequence[str]  # filter index -> its class
    missing: Sequence[str]  # filter index -> the selectors a source lacks
    expected: Sequence[str]  # class index -> what the policy allows, in words


class Tally:
    """The running totals of an audit."""

    def __init__(self, names: Names, top: int) -> None:
        self.names = names
        self.top = top
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
        counters = np.stack([np.ones(n, np.int64), flows.packets, flows.bytes], axis=1)
        cls = np.where(flows.verdict == NOT_EVALUABLE, -1, flows.class_index)
        _fold(self.by_class, np.stack([cls, flows.verdict.astype(np.int64)], 1), counters)
        wrong = flows.verdict == MISMARKED
        if wrong.any():
            keys = np.stack(
                [
                    flows.class_index[wrong].astype(np.int64),
                    flows.allowed[wrong].astype(np.int64),  # same 64 bits, as a key
                    flows.observed[wrong].astype(np.int64),
                ],
                1,
            )
            _fold(self.confusion, keys, counters[wrong])
        blocked = flows.verdict == NOT_EVALUABLE
        if blocked.any():
            _fold(self.blocked, flows.blocked_by[blocked, None].astype(np.int64), counters[blocked])
        judged = (flows.verdict != NOT_EVALUABLE) & (flows.observed >= 0)
        self.marks_from[0] += int((judged & ~flows.egress).sum())
        self.marks_from[1] += int((judged & flows.egress).sum())
        bleach = (flows.ecn_in > 0) & (flows.ecn_in < 3) & (flows.ecn_out == 0)
        if bleach.any():
            for i, column in enumerate(counters[bleach].sum(axis=0).tolist()):
                self.bleached[i] += int(column)
            self._keep(self._bleached_flows, flows, bleach)
        self._keep(self._worst["mismarked"], flows, wrong)
        self._keep(self._worst["leaks"], flows, flows.verdict == LEAK)

    def _keep(
        self, kept: list[tuple[Any, ...]], flows: JudgedFlows, mask: NDArray[np.bool_]
    ) -> None:
        rows = np.flatnonzero(mask)
        if not rows.size:
            return
        order = np.lexsort((-flows.packets[rows], -flows.bytes[rows]))[: self.top]
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
            )
            if len(kept) < self.top:
                heapq.heappush(kept, entry)
            elif entry > kept[0]:
                heapq.heapreplace(kept, entry)

    # ------------------------------------------------------------------ output

    def totals(self) -> dict[str, dict[str, int]]:
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
        rows = []
        for (cls, allowed, seen), counts in self.confusion.items():
            rows.append(
                {
                    "class": self.names.classes[cls],
                    "expected": [dscp_label(d) for d in dscps_of(allowed & (2**64 - 1))],
                    "observed": dscp_label(seen),
                    "observed_dscp": seen,
                    **dict(zip(_COUNTERS, counts, strict=True)),
                }
            )
        rows.sort(key=lambda r: (-r["bytes"], -r["packets"], r["class"], r["observed_dscp"]))
        return rows

    def blocked_rows(self) -> list[dict[str, Any]]:
        names = self.names
        rows = [
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
        kept = self._bleached_flows if which == "ecn_bleached" else self._worst[which]
        return [self._flow(entry) for entry in sorted(kept, reverse=True)]

    def _flow(self, entry: tuple[Any, ...]) -> dict[str, Any]:
        (nbytes, packets, neg_first, saddr, daddr, sport, dport, protocol, cls, flt, allowed,
         observed, dscp_in, egress, ecn_in, ecn_out) = entry  # fmt: skip
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
            "expected": [dscp_label(d) for d in dscps_of(allowed)],
            "observed": dscp_label(observed if observed >= 0 else None),
            "arrived": dscp_label(dscp_in) if dscp_in >= 0 else None,
            "mark_from": "egress ToS" if egress else "ToS",
            "ecn_in": ecn_label(ecn_in if ecn_in >= 0 else None),
            "ecn_out": ecn_label(ecn_out if ecn_out >= 0 else None),
            "packets": packets,
            "bytes": nbytes,
        }


def _fold(into: dict[Any, list[int]], keys: NDArray[np.int64], counters: NDArray[np.int64]) -> None:
    """Add ``counters`` (rows: flows, packets, bytes) into ``into`` per distinct key row."""
    unique, inverse = np.unique(keys, axis=0, return_inverse=True)
    sums = np.zeros((unique.shape[0], counters.shape[1]), np.int64)
    np.add.at(sums, inverse.reshape(-1), counters)
    for key, row in zip(unique.tolist(), sums.tolist(), strict=True):
        k = tuple(key)
        entry = into.setdefault(k, [0, 0, 0])
        for i, value in enumerate(row):
            entry[i] += value
