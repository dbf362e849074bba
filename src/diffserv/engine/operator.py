"""The contract between the action graph and the IPQoS modules.

Each module is an operator: it receives a batch and the indices (ascending,
so packet order is kept) of the packets currently at this action, does its
work, and returns the next action id for each of those packets. Sequential
state (token buckets, flow tables) lives inside the operator between batches,
so results never depend on how the input was cut into batches.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol, runtime_checkable

import numpy as np
from numpy.typing import NDArray

from diffserv.columns import PacketBatch


class Operator(Protocol):
    """One compiled action."""

    name: str  # the action's name in the policy
    module: str  # ipgpc, tokenmt, tswtclmt, dscpmk, dlcosmk, flowacct

    def process(self, batch: PacketBatch, idx: NDArray[np.int64]) -> NDArray[np.int32]:
        """Run the action on ``batch`` rows ``idx``; return their next action ids."""
        ...

    def finish(self) -> None:
        """End of input: flush whatever is pending (flowacct writes every flow)."""
        ...

    def counters(self) -> Mapping[str, int]:
        """Statistics under the names of the IPQoS kstats (docs/engine.md, "Statistics")."""
        ...


# (dscp_map, per_dscp, counters, next_action) of a dscpmk action: see MarkingOperator
MarkerState = tuple[NDArray[np.uint8], NDArray[np.int64], NDArray[np.int64], int]


@runtime_checkable
class MarkingOperator(Operator, Protocol):
    """A dscpmk action the graph may run without calling ``process``: a run of them in
    consecutive ids goes through one compiled pass per batch (``graph_markers``), which
    does for each row exactly what ``process`` does. Only dscpmk qualifies: it reads and
    writes nothing but its own row and its own counters, so row by row is action by
    action."""

    def marker_state(self) -> MarkerState:
        """The map, the per-DSCP and the dscpmk counters, and the next action id."""
        ...


@runtime_checkable
class TimedOperator(Operator, Protocol):
    """An operator with a timer of its own (flowacct), told when time passes without packets.

    Meters need no such call: their buckets are brought up to date by the next packet's
    time stamp, and a quiet link changes nothing they would report.
    """

    def advance(self, now_ns: int) -> None:
        """Time is now ``now_ns`` (ns since the epoch); run whatever timer is due."""
        ...


@runtime_checkable
class ClassifyingOperator(Operator, Protocol):
    """An operator with classes (ipgpc): per-class counters for the statistics."""

    def class_counters(self) -> dict[str, dict[str, int]]:
        """Per class name: ``npackets``, ``nbytes``, ``last_match`` (ns; 0 = never)."""
        ...


@runtime_checkable
class DetailedOperator(Operator, Protocol):
    """An operator with detailed kstats besides its counters (dscpmk, per output DSCP)."""

    def detailed_counters(self) -> dict[str, dict[str, int]]:
        """Per detailed statistic name: its counters."""
        ...
