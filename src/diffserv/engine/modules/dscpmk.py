"""dscpmk, the DSCP marker (docs/engine.md): rewrites the DSCP through a 64-entry map, keeps ECN.

It reads the DS byte as earlier actions left it and records the new byte in ``new_ds``; the
rewrite of the packet bytes and the IPv4 checksum is the sink's job (``packet.rewrite``).
Inbound packets (LOCAL_IN, FWD_IN) are never re-marked and count as ``ipackets``; a packet
without an IP header (cannot happen behind ipgpc, kept for safety) counts as ``epackets``.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from numpy.typing import NDArray

from diffserv._kernels import DSCPMK_COUNTERS, dscpmk_rows
from diffserv.columns import PacketBatch
from diffserv.engine.context import BuildContext
from diffserv.engine.operator import MarkerState
from diffserv.policy.interpret import dscpmk_params
from diffserv.policy.model import Action

# slots of the counters dscpmk_rows adds to (src/kernels/engine.c, DSCPMK_*)
_NPACKETS, _CHANGED, _UNCHANGED, _IPACKETS, _EPACKETS = range(5)


def detailed_stat_name(dscp: int) -> str:
    """The kstat name of a per-DSCP counter set: ``dscpmk_dscp0x2e`` (lowercase, unpadded)."""
    return f"dscpmk_dscp0x{dscp:x}"


class Dscpmk:
    """A compiled dscpmk action."""

    module = "dscpmk"
    # what a policy swap carries over when the action is unchanged (engine.carry)
    state_attributes = ("_counts", "per_dscp")

    def __init__(self, action: Action, ctx: BuildContext) -> None:
        self.name = action.name
        params = dscpmk_params(action)
        dscp_map = params.dscp_map
        if len(dscp_map) != 64 or any(not 0 <= v <= 63 for v in dscp_map):
            raise ValueError(f"action {action.name}: dscp_map must hold 64 values 0..63")
        self.dscp_map = np.array(dscp_map, dtype=np.uint8)
        self.detailed = params.detailed_stats
        self.next_action = ctx.action_id(params.next_action)
        self._counts = np.zeros(DSCPMK_COUNTERS, np.int64)  # the _NPACKETS... slots
        self.per_dscp = np.zeros(64, np.int64)

    def process(self, batch: PacketBatch, idx: NDArray[np.int64]) -> NDArray[np.int32]:
        """Mark rows ``idx`` (distinct, as the graph gives them) in one C pass."""
        rows = np.ascontiguousarray(idx, dtype=np.int64)
        next_out = np.empty(rows.shape[0], np.int32)
        cols = batch.cols
        dscpmk_rows(
            rows,
            cols.direction,
            cols.ip_version,
            cols.ds_byte,
            cols.new_ds,
            self.dscp_map,
            self.per_dscp,
            self._counts,
            next_out,
            self.next_action,
        )
        return next_out

    def marker_state(self) -> MarkerState:
        """What the graph's one-pass walk of a run of markers needs (``graph_markers``):
        read at every batch, so the arrays a policy swap carries over are the ones used."""
        return (self.dscp_map, self.per_dscp, self._counts, self.next_action)

    @property
    def npackets(self) -> int:
        return int(self._counts[_NPACKETS])

    @property
    def dscp_changed(self) -> int:
        return int(self._counts[_CHANGED])

    @property
    def dscp_unchanged(self) -> int:
        return int(self._counts[_UNCHANGED])

    @property
    def ipackets(self) -> int:
        return int(self._counts[_IPACKETS])

    @property
    def epackets(self) -> int:
        return int(self._counts[_EPACKETS])

    def finish(self) -> None:
        return None

    def counters(self) -> Mapping[str, int]:
        return {
            "npackets": self.npackets,
            "dscp_changed": self.dscp_changed,
            "dscp_unchanged": self.dscp_unchanged,
            "ipackets": self.ipackets,
            "epackets": self.epackets,
        }

    def detailed_counters(self) -> dict[str, dict[str, int]]:
        """One set per distinct output DSCP of the map, as illumos creates them."""
        return {
            detailed_stat_name(dscp): {"dscp": dscp, "npackets": int(self.per_dscp[dscp])}
            for dscp in sorted(set(int(v) for v in self.dscp_map))
        }


def build(action: Action, ctx: BuildContext) -> Dscpmk:
    return Dscpmk(action, ctx)
