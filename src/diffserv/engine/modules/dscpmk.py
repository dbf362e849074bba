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

from diffserv.columns import PacketBatch
from diffserv.directions import FWD_IN, LOCAL_IN
from diffserv.engine.context import BuildContext
from diffserv.policy.interpret import dscpmk_params
from diffserv.policy.model import Action


def detailed_stat_name(dscp: int) -> str:
    """The kstat name of a per-DSCP counter set: ``dscpmk_dscp0x2e`` (lowercase, unpadded)."""
    return f"dscpmk_dscp0x{dscp:x}"


class Dscpmk:
    """A compiled dscpmk action."""

    module = "dscpmk"

    def __init__(self, action: Action, ctx: BuildContext) -> None:
        self.name = action.name
        params = dscpmk_params(action)
        dscp_map = params.dscp_map
        if len(dscp_map) != 64 or any(not 0 <= v <= 63 for v in dscp_map):
            raise ValueError(f"action {action.name}: dscp_map must hold 64 values 0..63")
        self.dscp_map = np.array(dscp_map, dtype=np.uint8)
        self.detailed = params.detailed_stats
        self.next_action = ctx.action_id(params.next_action)
        self.npackets = 0
        self.dscp_changed = 0
        self.dscp_unchanged = 0
        self.ipackets = 0
        self.epackets = 0
        self.per_dscp = np.zeros(64, np.int64)

    def process(self, batch: PacketBatch, idx: NDArray[np.int64]) -> NDArray[np.int32]:
        n = idx.shape[0]
        self.npackets += n
        direction = batch.cols.direction[idx]
        inbound = (direction == LOCAL_IN) | (direction == FWD_IN)
        not_ip = batch.cols.ip_version[idx] == 0
        self.ipackets += int(inbound.sum())
        self.epackets += int((not_ip & ~inbound).sum())
        work = ~(inbound | not_ip)
        rows = idx[work]
        if rows.shape[0]:
            new_ds = batch.cols.new_ds[rows]
            old = np.where(new_ds >= 0, new_ds, batch.cols.ds_byte[rows]).astype(np.uint8)
            old6 = old >> 2
            new6 = self.dscp_map[old6]
            self.per_dscp += np.bincount(new6, minlength=64).astype(np.int64)
            changed = new6 != old6
            nchanged = int(changed.sum())
            self.dscp_changed += nchanged
            self.dscp_unchanged += rows.shape[0] - nchanged
            if nchanged:
                marked = (new6[changed].astype(np.int16) << 2) | (old[changed] & 3)
                batch.cols.new_ds[rows[changed]] = marked
        return np.full(n, self.next_action, np.int32)

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
