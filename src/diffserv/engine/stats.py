"""Session statistics as typed values, with one JSON form (``SessionStats.to_json``).

Offline, statistics are always collected whatever ``global_stats`` / ``enable_stats`` say
(they only gate the kernel's kstats). A finished session yields one :class:`SessionStats`:
every action's module and counters under the kstat names, every ipgpc class's packets and
bytes, the DSCP before → after transitions of the packets written, and the packet-level
counts (written, dropped, not IP, malformed, snap-length cuts, header cuts, offload
lengths). The counts are taken from the batches themselves, so they are the same
whichever source the packets came from. docs/engine.md describes the JSON document.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

import msgspec
import numpy as np
from numpy.typing import NDArray

from diffserv._kernels import (
    DSCP_TRANSITIONS,
    PACKET_CONDITIONS,
    dscp_transitions,
    packet_conditions,
)
from diffserv.columns import PacketBatch

STATS_FORMAT: Final = "diffserv-run-stats/1"


class Volume(msgspec.Struct, frozen=True):
    """Packets and bytes (on the wire)."""

    packets: int = 0
    bytes: int = 0

    def to_json(self) -> dict[str, int]:
        return {"packets": self.packets, "bytes": self.bytes}


class ClassStats(msgspec.Struct, frozen=True):
    """One ipgpc class: what it matched and where it sends packets."""

    packets: int
    bytes: int
    last_match_ns: int  # 0: never matched
    next_action: str  # without the ``ipp.`` prefix of the virtual actions

    def to_json(self) -> dict[str, Any]:
        return {
            "packets": self.packets,
            "bytes": self.bytes,
            "last_match_ns": self.last_match_ns,
            "next_action": self.next_action,
        }


class ActionStats(msgspec.Struct, frozen=True):
    """One action: its module's kstat counters, plus per-class or per-DSCP detail."""

    module: str
    counters: Mapping[str, int]
    classes: Mapping[str, Mapping[str, int]] | None = None  # ipgpc
    detailed: Mapping[str, Mapping[str, int]] | None = None  # dscpmk

    def to_json(self) -> dict[str, Any]:
        entry: dict[str, Any] = {"module": self.module, "counters": dict(self.counters)}
        if self.classes is not None:
            entry["classes"] = {name: dict(c) for name, c in self.classes.items()}
        if self.detailed is not None:
            entry["detailed"] = {name: dict(c) for name, c in self.detailed.items()}
        return entry


class Transition(msgspec.Struct, frozen=True):
    """Packets written with DSCP ``to`` that were read with DSCP ``source``."""

    source: int
    to: int
    packets: int

    def to_json(self) -> dict[str, int]:
        return {"from": self.source, "to": self.to, "packets": self.packets}


class SessionStats(msgspec.Struct, frozen=True):
    """Everything a finished (or cut short) session counted."""

    policy: str
    input: str
    output: str
    elapsed_s: float
    packets: int
    bytes: int
    written: int
    not_ip: Volume
    malformed: int
    malformed_first: tuple[int, ...]
    truncated: int
    header_cut: int
    length_from_frame: int
    outcomes: Mapping[str, Volume]  # continue, drop, defer
    actions: Mapping[str, ActionStats]
    classes: Mapping[str, ClassStats]
    dscp_transitions: tuple[Transition, ...]
    input_error: str | None = None  # the damage that ended the input early
    trace: Mapping[int, tuple[str, ...]] = msgspec.field(default_factory=dict)

    @property
    def dropped(self) -> int:
        return self.outcomes["drop"].packets

    @property
    def deferred(self) -> int:
        return self.outcomes["defer"].packets

    def to_json(self) -> dict[str, Any]:
        """The statistics document (format ``diffserv-run-stats/1``, docs/engine.md)."""
        doc: dict[str, Any] = {
            "policy": self.policy,
            "format": STATS_FORMAT,
            "input": self.input,
            "output": self.output,
            "elapsed_s": round(self.elapsed_s, 6),
            "packets": self.packets,
            "bytes": self.bytes,
            "written": self.written,
            "dropped": self.dropped,
            "deferred": self.deferred,
            "not_ip": self.not_ip.to_json(),
            "malformed": {"count": self.malformed, "first": list(self.malformed_first)},
            "truncated": self.truncated,
            "header_cut": self.header_cut,
            "length_from_frame": self.length_from_frame,
            "outcomes": {name: v.to_json() for name, v in self.outcomes.items()},
            "actions": {name: a.to_json() for name, a in self.actions.items()},
            "classes": {name: c.to_json() for name, c in self.classes.items()},
            "dscp_transitions": [t.to_json() for t in self.dscp_transitions],
        }
        if self.input_error is not None:
            doc["input_error"] = self.input_error
        if self.trace:
            doc["trace"] = {str(number): list(steps) for number, steps in self.trace.items()}
        return doc


class DscpTransitions(msgspec.Struct):
    """A 64 × 64 count of (DSCP as read, DSCP as written) over the packets written out."""

    counts: NDArray[np.int64] = msgspec.field(
        default_factory=lambda: np.zeros(DSCP_TRANSITIONS, np.int64)
    )

    def update(self, batch: PacketBatch) -> None:
        """Count the batch's packets written out (ACTION_CONTINUE, IP): one C pass."""
        dscp_transitions(batch.cols, self.counts)

    def rows(self) -> tuple[Transition, ...]:
        """Non-zero transitions, largest first (ties by DSCP values)."""
        out = [
            Transition(int(p // 64), int(p % 64), int(self.counts[p]))
            for p in np.flatnonzero(self.counts)
        ]
        out.sort(key=lambda t: (-t.packets, t.source, t.to))
        return tuple(out)


class PacketConditions(msgspec.Struct):
    """Snap-length cuts, header cuts and offload lengths, counted from the flags column
    into ``counts`` (the PACKET_CONDITIONS slots ``packet_conditions`` and the session's
    ``batch_end`` pass add to)."""

    counts: NDArray[np.int64] = msgspec.field(
        default_factory=lambda: np.zeros(PACKET_CONDITIONS, np.int64)
    )

    @property
    def truncated(self) -> int:
        return int(self.counts[0])

    @property
    def header_cut(self) -> int:
        return int(self.counts[1])

    @property
    def length_from_frame(self) -> int:
        return int(self.counts[2])

    def update(self, batch: PacketBatch) -> None:
        """One C pass over the flags (a malformed packet counts only as malformed)."""
        packet_conditions(batch.cols.flags, self.counts)
