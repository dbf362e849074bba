"""dlcosmk, the 802.1D user-priority marker (docs/engine.md, "Markers"), as an 802.1Q PCP rewrite.

On illumos the marker hands the driver a b_band / dl_max value from fixed maps in which
cos 1 and 2 give 0, so they are indistinguishable from cos 0; ``cos_mode="illumos"`` (the
default) reproduces that, ``cos_mode="plain"`` writes the cos value itself. Only frames
that carry an 802.1Q tag can be marked: untagged frames (no CoS-capable interface) and
inbound packets pass unchanged and count as ``ipackets``, except on a live data plane
(``EngineOptions.cos_untagged``), whose verdicts carry the CoS as the packet's priority.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from numpy.typing import NDArray

from diffserv._kernels import DLCOSMK_COUNTERS, dlcosmk_rows
from diffserv.columns import PacketBatch
from diffserv.engine.context import BuildContext
from diffserv.policy.interpret import dlcosmk_params
from diffserv.policy.model import Action


class Dlcosmk:
    """A compiled dlcosmk action."""

    module = "dlcosmk"
    # what a policy swap carries over when the action is unchanged (engine.carry)
    state_attributes = ("_counts", "epackets")

    def __init__(self, action: Action, ctx: BuildContext) -> None:
        self.name = action.name
        self.params = dlcosmk_params(action)
        self.cos = self.params.cos
        self.pcp = self.params.pcp(ctx.options.cos_mode)
        self.next_action = ctx.action_id(self.params.next_action)
        # a live sink sets the CoS out of band (skb priority): untagged frames get it too
        self.untagged = int(ctx.options.cos_untagged)
        self._counts = np.zeros(DLCOSMK_COUNTERS, np.int64)  # npackets, ipackets
        self.epackets = 0

    def process(self, batch: PacketBatch, idx: NDArray[np.int64]) -> NDArray[np.int32]:
        """Mark rows ``idx`` in one C pass."""
        rows = np.ascontiguousarray(idx, dtype=np.int64)
        next_out = np.empty(rows.shape[0], np.int32)
        cols = batch.cols
        dlcosmk_rows(
            rows,
            cols.direction,
            cols.vlan_off,
            cols.new_pcp,
            self._counts,
            next_out,
            self.pcp,
            self.next_action,
            self.untagged,
        )
        return next_out

    @property
    def npackets(self) -> int:
        return int(self._counts[0])

    @property
    def ipackets(self) -> int:
        return int(self._counts[1])

    def finish(self) -> None:
        return None

    def counters(self) -> Mapping[str, int]:
        return {
            "npackets": self.npackets,
            "ipackets": self.ipackets,
            "epackets": self.epackets,
            "usr_pri": self.cos,
            "b_band": self.params.b_band,
            "dl_max": self.params.dl_max,
        }


def build(action: Action, ctx: BuildContext) -> Dlcosmk:
    return Dlcosmk(action, ctx)
