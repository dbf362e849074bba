"""Run statistics: the §12 counters of every action plus what a run summary needs.

Offline, statistics are always collected whatever ``global_stats`` / ``enable_stats`` say
(they only gate the kernel's kstats). ``run_stats`` turns a finished ActionGraph into one
JSON-ready document: every action's module and counters under the kstat names, every
ipgpc class's packets and bytes, the DSCP before → after transitions of the packets
written, and the capture-level counts (written, dropped, not IP, malformed, snap-length
cuts, header cuts, offload lengths).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from diffserv.columns import ACTION_CONTINUE, NOT_IP, PacketBatch
from diffserv.engine.graph import ActionGraph

STATS_FORMAT = "diffserv-run-stats/1"


@dataclass(slots=True)
class DscpTransitions:
    """A 64 × 64 count of (DSCP as read, DSCP as written) over the packets written out."""

    counts: NDArray[np.int64] = field(default_factory=lambda: np.zeros(64 * 64, np.int64))

    def update(self, batch: PacketBatch) -> None:
        keep = (batch.cols.action == ACTION_CONTINUE) & (batch.cols.ip_version != NOT_IP)
        before = batch.cols.ds_byte[keep] >> 2
        after = batch.current_ds()[keep] >> 2
        pair = before.astype(np.int64) * 64 + after.astype(np.int64)
        self.counts += np.bincount(pair, minlength=64 * 64)

    def rows(self) -> list[dict[str, int]]:
        """Non-zero transitions, largest first (ties by DSCP values)."""
        nz = np.flatnonzero(self.counts)
        out = [
            {"from": int(p // 64), "to": int(p % 64), "packets": int(self.counts[p])} for p in nz
        ]
        out.sort(key=lambda row: (-row["packets"], row["from"], row["to"]))
        return out


@dataclass(slots=True)
class RunInfo:
    """Facts about the run outside the graph: files, timings, reader counts."""

    input: str
    output: str
    elapsed_s: float = 0.0
    written: int = 0
    truncated: int = 0  # the reader's counters (CaptureCounters.as_stats)
    header_cut: int = 0
    length_from_frame: int = 0


def run_stats(graph: ActionGraph, info: RunInfo, transitions: DscpTransitions) -> dict[str, Any]:
    """The whole statistics document of a finished run (see docs/engine.md for the schema)."""
    actions: dict[str, Any] = {}
    classes: dict[str, Any] = {}
    for op in graph.operators:
        entry: dict[str, Any] = {"module": op.module, "counters": dict(op.counters())}
        class_counters = getattr(op, "class_counters", None)
        if callable(class_counters):
            per_class: dict[str, dict[str, int]] = class_counters()
            entry["classes"] = per_class
            action = graph.policy.action(op.name)
            next_of = {cls.name: cls.next_action for cls in action.classes}
            for name, counts in per_class.items():
                classes[name] = {
                    "packets": counts["npackets"],
                    "bytes": counts["nbytes"],
                    "last_match_ns": counts["last_match"],
                    "next_action": _short(next_of.get(name, "ipp.continue")),
                }
        detailed = getattr(op, "detailed_counters", None)
        if callable(detailed):
            entry["detailed"] = detailed()
        actions[op.name] = entry
    outcomes = {
        name: {"packets": o.packets, "bytes": o.bytes} for name, o in graph.outcomes.items()
    }
    for name in ("continue", "drop", "defer"):
        outcomes.setdefault(name, {"packets": 0, "bytes": 0})
    return {
        "format": STATS_FORMAT,
        "input": info.input,
        "output": info.output,
        "elapsed_s": round(info.elapsed_s, 6),
        "packets": graph.packets,
        "bytes": graph.bytes,
        "written": info.written,
        "dropped": outcomes["drop"]["packets"],
        "deferred": outcomes["defer"]["packets"],
        "not_ip": {"packets": graph.not_ip.packets, "bytes": graph.not_ip.bytes},
        "malformed": {"count": graph.malformed_count, "first": list(graph.malformed_numbers)},
        "truncated": info.truncated,
        "header_cut": info.header_cut,
        "length_from_frame": info.length_from_frame,
        "outcomes": outcomes,
        "actions": actions,
        "classes": classes,
        "dscp_transitions": transitions.rows(),
    }


def _short(name: str) -> str:
    return name.removeprefix("ipp.")
