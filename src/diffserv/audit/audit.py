"""One audit: flows (or packets) classified by the policy, judged, and tallied.

A flow record is judged on the egress ToS where the exporter sent one (the mark the
device left it with; its ToS is then the arrival mark the policy maps from), else on
its ToS, with the arrival unknown. A captured packet is judged on its DS byte, arrival
unknown: a capture is one point of the path.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from diffserv.audit.classify import RecordClassifier
from diffserv.audit.expect import expected_marks
from diffserv.audit.summary import JudgedFlows, Names, Tally
from diffserv.audit.verdicts import PRIORITY_DSCPS, MarkTable, judge
from diffserv.directions import INBOUND
from diffserv.flows.schema import FlowBatch
from diffserv.policy.model import DEFAULT_CLASS, Policy


class Audit:
    """The policy's classifier and marks, and the tallies of everything judged so far."""

    def __init__(
        self,
        policy: Policy,
        *,
        top: int = 10,
        priority: frozenset[int] = PRIORITY_DSCPS,
        packets: bool = False,
    ) -> None:
        self.classifier = RecordClassifier(policy)
        marks = expected_marks(policy)
        classes = list(self.classifier.classes)
        self.table = MarkTable.of([marks[name] for name in classes], classes.index(DEFAULT_CLASS))
        filters = self.classifier.filters
        self.missing = [""] * len(filters)  # what each filter lacked, as records showed
        self.names = Names(
            classes=classes,
            filters=[f.name for f in filters],
            filter_classes=[f.class_name for f in filters],
            missing=self.missing,
            expected=[marks[name].describe() for name in classes],
        )
        self.priority = priority
        self.tally = Tally(self.names, top, packets=packets)
        self.records = 0  # flow records judged (a capture's packets are counted apart)
        self.warnings: list[str] = []

    def add(
        self, batch: FlowBatch, *, positions: NDArray[Any] | None = None, packets: bool = False
    ) -> None:
        """Judge one batch of flow records (``packets``: a capture's, one-packet flows).

        ``positions``: the exact callout position of each (a capture's packets have
        one; ``--direction`` gives all the same); None: records say ingress or egress.
        """
        if not batch.n:
            return
        if not packets:
            self.records += batch.n
        c = batch.columns
        got = self.classifier.classify(batch, positions=positions)
        if positions is not None:
            inbound = (np.asarray(positions).astype(np.int64, copy=False) & INBOUND) != 0
        else:
            # an exporter's "ingress" is where it saw the flow, not where the policy's
            # marker sits: records are held to the marks the policy writes going out
            inbound = np.zeros(batch.n, np.bool_)
        egress = c["dscp_out"] >= 0
        observed = np.where(egress, c["dscp_out"], c["dscp_in"]).astype(np.int16, copy=False)
        arrived = np.where(egress, c["dscp_in"], -1).astype(np.int16, copy=False)
        blocked = got.blocked_by >= 0
        for index, lacked in enumerate(got.missing):
            self._lacked(index, lacked)
        pcp = c["pcp"].astype(np.int16, copy=False)
        judged = judge(
            self.table, got.class_index, blocked, arrived, observed, inbound, self.priority, pcp
        )
        self.tally.add(
            JudgedFlows(
                first_ns=c["first_ns"],
                saddr_hi=c["saddr_hi"],
                saddr_lo=c["saddr_lo"],
                daddr_hi=c["daddr_hi"],
                daddr_lo=c["daddr_lo"],
                sport=c["sport"].astype(np.int32, copy=False),
                dport=c["dport"].astype(np.int32, copy=False),
                protocol=c["protocol"].astype(np.int16, copy=False),
                packets=c["packets"].astype(np.int64, copy=False),
                bytes=c["bytes"].astype(np.int64, copy=False),
                class_index=got.class_index,
                filter_index=got.filter_index,
                blocked_by=got.blocked_by,
                dscp_in=arrived,
                observed=observed,
                ecn_in=c["ecn_in"].astype(np.int16, copy=False),
                ecn_out=c["ecn_out"].astype(np.int16, copy=False),
                verdict=judged.verdict,
                allowed=judged.allowed,
                egress=egress,
                pcp=pcp,
                pcp_wrong=judged.pcp_wrong,
                pcp_allowed=judged.pcp_allowed,
            )
        )

    def share(self) -> tuple[Tally, int, list[str], list[str]]:
        """What judging some of the records added (a worker process sends it back)."""
        return self.tally, self.records, self.missing, self.warnings

    def merge(self, share: tuple[Tally, int, list[str], list[str]]) -> None:
        """Add a worker's :meth:`share` of the same audit's records."""
        tally, records, missing, warnings = share
        self.tally.merge(tally)
        self.records += records
        for index, lacked in enumerate(missing):
            self._lacked(index, lacked)
        self.warnings.extend(warnings)

    def _lacked(self, index: int, lacked: str) -> None:
        """Note that records lacked ``lacked`` (selector names) for filter ``index``."""
        if lacked and lacked not in self.missing[index]:
            merged = {*filter(None, self.missing[index].split(", ")), *lacked.split(", ")}
            self.missing[index] = ", ".join(sorted(merged))

    def result(self, meta: dict[str, Any]) -> dict[str, Any]:
        """The audit as JSON-ready data (the keys docs/audit.md lists)."""
        tally = self.tally
        return {
            "verdicts": tally.totals(),
            "classes": tally.classes(),
            "confusion": tally.confusion_rows(),
            "mismarked": tally.flow_rows("mismarked"),
            "leaks": tally.flow_rows("leaks"),
            "not_evaluable": tally.blocked_rows(),
            "ecn_bleached": tally.flow_rows("ecn_bleached"),
            "meta": {
                **meta,
                "judged_on": {"tos": tally.marks_from[0], "egress_tos": tally.marks_from[1]},
                "priority_dscps": sorted(self.priority),
                "passed": not tally.failed(),
            },
        }
