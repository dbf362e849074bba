"""``audit --compare``: what a hop did to each flow's marks, and whether the policy says so.

With a policy, every flow's packets are classified as the policy would see them at the
hop (``--direction``; else LOCAL_OUT, as ``diffserv run`` takes a packet that says
nothing), on the mark they arrived with (BEFORE); each DSCP change before -> after is
then *prescribed* when the class's paths can turn that arrival mark into that one,
and packets seen only BEFORE are *dropped as prescribed* when the class has a path to
``drop``. The comparison fails (exit 1) when a change or a drop is not prescribed, or
when a packet of a class the policy always drops came through.
"""

from __future__ import annotations

from typing import Any

import msgspec
import numpy as np
import pyarrow as pa

from diffserv.audit.classify import RecordClassifier
from diffserv.audit.compare import Comparison, FlowChange
from diffserv.audit.expect import ClassMarks, expected_marks
from diffserv.directions import DEFAULT, INBOUND
from diffserv.flows.schema import UNKNOWN, FlowBatch, make_batch
from diffserv.flows.store_arrow import addresses_from_text
from diffserv.policy.model import Policy
from diffserv.report.names import dscp_label, ecn_label, protocol_name


def _arrivals(flows: list[FlowChange]) -> tuple[FlowBatch, list[tuple[int, int]]]:
    """One record per (flow, DSCP it arrived with), for the classifier."""
    rows: list[tuple[int, int]] = []  # (flow index, arrival DSCP)
    for index, flow in enumerate(flows):
        marks = {before for before, _ in flow.transitions} | set(flow.dscp_before)
        rows.extend((index, dscp) for dscp in sorted(marks))
    keys = [flows[i].key for i, _ in rows]
    saddr_hi, saddr_lo = addresses_from_text(pa.array([k.saddr for k in keys], pa.string()))
    daddr_hi, daddr_lo = addresses_from_text(pa.array([k.daddr for k in keys], pa.string()))

    def column(values: list[int], dtype: Any) -> Any:
        return np.array(values, dtype=dtype)

    dscps = [dscp for _, dscp in rows]
    given = {
        "first_ns": column([0] * len(rows), np.int64),
        "last_ns": column([0] * len(rows), np.int64),
        "packets": column([1] * len(rows), np.uint64),
        "bytes": column([0] * len(rows), np.uint64),
        "ip_version": column([k.ip_version for k in keys], np.uint8),
        "saddr_hi": saddr_hi,
        "saddr_lo": saddr_lo,
        "daddr_hi": daddr_hi,
        "daddr_lo": daddr_lo,
        "sport": column([k.sport for k in keys], np.uint16),
        "dport": column([k.dport for k in keys], np.uint16),
        "protocol": column([k.protocol for k in keys], np.uint8),
        "dscp_in": column(dscps, np.int16),
        "prec_in": column([dscp >> 3 for dscp in dscps], np.int16),
        "ds_in": column([UNKNOWN] * len(rows), np.int16),
    }
    return make_batch("flowacct", "", 0, len(rows), given), rows


class _Judge:
    """The policy's view of the flows of a comparison."""

    def __init__(self, policy: Policy, position: int, flows: list[FlowChange]) -> None:
        classifier = RecordClassifier(policy)
        marks = expected_marks(policy)
        batch, rows = _arrivals(flows)
        got = classifier.classify(batch, positions=np.full(batch.n, position, np.uint8))
        self.inbound = bool(position & INBOUND)
        self.of: dict[tuple[int, int], tuple[str, str | None, ClassMarks | None]] = {}
        for j, key in enumerate(rows):
            if got.blocked_by[j] >= 0:
                blocker = classifier.filters[int(got.blocked_by[j])].name
                self.of[key] = ("not evaluable", blocker, None)
                continue
            name = classifier.classes[int(got.class_index[j])]
            flt = int(got.filter_index[j])
            self.of[key] = (name, classifier.filters[flt].name if flt >= 0 else None, marks[name])

    def pcps(self, index: int, flow: FlowChange, before: int) -> frozenset[int] | None:
        """The 802.1p priorities a frame of the flow tagged ``before`` may leave with
        (over the classes of its arrival DSCPs); None when no class is known."""
        marks = [self.of[(index, d)][2] for d in sorted(flow.dscp_before)]
        known = [m for m in marks if m is not None]
        if not known:
            return None
        return frozenset().union(
            *(m.allowed_pcps(before, inbound=self.inbound) or frozenset() for m in known)
        )


def compare_result(
    comparison: Comparison, policy: Policy | None, *, position: int | None, policy_name: str
) -> dict[str, Any]:
    """The comparison as JSON-ready data, judged against ``policy`` when one is given."""
    flows = comparison.flows
    judge = _Judge(policy, position or DEFAULT, flows) if policy is not None else None
    problems = 0
    out = []
    for index, flow in enumerate(flows):
        key = msgspec.to_builtins(flow.key)
        transitions = []
        classes: set[str] = set()
        for (before, after), packets in sorted(flow.transitions.items()):
            entry: dict[str, Any] = {
                "before": dscp_label(before),
                "after": dscp_label(after),
                "before_dscp": before,
                "after_dscp": after,
                "packets": packets,
            }
            if judge is not None:
                name, flt, marks = judge.of[(index, before)]
                classes.add(name)
                entry["class"], entry["filter"] = name, flt
                if marks is None:
                    entry["prescribed"] = None
                else:
                    allowed = marks.allowed_dscps(before, inbound=judge.inbound)
                    entry["prescribed"] = after in allowed
                    entry["expected"] = [dscp_label(d) for d in sorted(allowed)] or ["dropped"]
                    problems += 0 if entry["prescribed"] else packets
            transitions.append(entry)
        dropped: dict[str, Any] = {"packets": flow.only_before}
        if judge is not None and flow.only_before:
            verdicts = [judge.of[(index, d)] for d in sorted(flow.dscp_before)]
            may_drop = any(m is not None and m.can_drop() for _, _, m in verdicts)
            dropped["prescribed"] = may_drop
            problems += 0 if may_drop else flow.only_before
        pcps: list[dict[str, Any]] = []
        for (before, after), packets in sorted((flow.pcp_transitions or {}).items()):
            pcp: dict[str, Any] = {"before": before, "after": after, "packets": packets}
            if judge is not None:
                priorities = judge.pcps(index, flow, before)
                pcp["prescribed"] = None if priorities is None else after in priorities
                problems += packets if pcp["prescribed"] is False else 0
            pcps.append(pcp)
        out.append(
            {
                **key,
                "protocol_name": protocol_name(flow.key.protocol),
                "classes": sorted(classes),
                "packets_before": flow.packets_before,
                "packets_after": flow.packets_after,
                "matched": flow.matched,
                "changed": flow.changed,
                "only_before": dropped,
                "only_after": flow.only_after,
                "transitions": transitions,
                "pcp": pcps,
                "ecn": [
                    {
                        "before": ecn_label(b),
                        "after": ecn_label(a),
                        "packets": n,
                        "bleached": b in (1, 2) and a == 0,
                    }
                    for (b, a), n in sorted(flow.ecn_transitions.items())
                ],
                "first_changed": [list(pair) for pair in flow.first_changed],
                "first_only_before": flow.first_only_before,
                "first_only_after": flow.first_only_after,
            }
        )
    return {
        "flows": out,
        "totals": msgspec.to_builtins(comparison.totals),
        "meta": {
            "before": comparison.before,
            "after": comparison.after,
            "policy": policy_name or None,
            "position": position,
            "not_prescribed_packets": problems if judge is not None else None,
            "passed": problems == 0,
            "warnings": comparison.warnings,
        },
    }
