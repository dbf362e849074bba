"""tokenmt as an engine operator: a token bucket meter that colours and routes packets.

Single-rate (RFC 2697) when ``peak_rate`` is unset, two-rate (RFC 2698) when it is set;
colour-blind, or colour-aware through ``color_map`` over the DSCP as earlier actions left
it. Buckets start full at the first packet the action meters; time is the packet
timestamp. The arithmetic is exact (see ``engine.meters.token_bucket``).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from diffserv.columns import PacketBatch
from diffserv.engine.context import BuildContext
from diffserv.engine.meters.common import MeterBase, interpreted, invalid
from diffserv.engine.meters.token_bucket import (
    CFG_COLOUR_AWARE,
    CFG_COMMITTED_CAPACITY,
    CFG_COMMITTED_FILL_NS,
    CFG_COMMITTED_RATE,
    CFG_PEAK_CAPACITY,
    CFG_PEAK_FILL_NS,
    CFG_PEAK_RATE,
    CFG_THREE_OUTCOMES,
    CFG_TWO_RATE,
    CONFIG_SIZE,
    NANOBITS_PER_BIT,
    STATE_SIZE,
    fill_ns,
    token_meter_kernel,
)
from diffserv.policy.interpret import tokenmt_params
from diffserv.policy.model import Action
from diffserv.policy.schema import UINT32_MAX


class TokenMeter(MeterBase):
    """One tokenmt action; bucket levels persist across batches."""

    module = "tokenmt"

    def __init__(self, action: Action, ctx: BuildContext) -> None:
        params = interpreted(action, tokenmt_params)
        super().__init__(
            action,
            ctx,
            green=params.green_action,
            yellow=params.yellow_action,
            red=params.red_action,
        )
        self.params = params
        committed_rate = params.committed_rate_bps
        committed_burst = params.committed_burst_bits
        peak_rate = params.peak_rate_bps
        has_peak_burst = params.peak_burst_bits is not None
        peak_burst = params.peak_burst_bits or 0
        values = (committed_rate, committed_burst, peak_rate or 0, peak_burst)
        if not all(0 <= value <= UINT32_MAX for value in values):
            raise invalid(action)
        if committed_rate == 0 or has_peak_burst != self.three_outcomes:
            raise invalid(action)
        if peak_rate is None:
            if committed_burst == 0 and peak_burst == 0:
                raise invalid(action)
        elif peak_rate < committed_rate or committed_burst == 0 or peak_burst == 0:
            raise invalid(action)

        self.two_rate = peak_rate is not None
        self.committed_rate_bps = committed_rate
        self.committed_burst_bits = committed_burst
        self.peak_rate_bps = peak_rate
        self.peak_burst_bits = peak_burst
        self.colour_aware = params.colour_aware
        self._colour_map: NDArray[np.uint8] = np.array(params.colour_map, dtype=np.uint8)

        c_cap = committed_burst * NANOBITS_PER_BIT
        p_cap = peak_burst * NANOBITS_PER_BIT
        config = [0] * CONFIG_SIZE
        config[CFG_TWO_RATE] = int(self.two_rate)
        config[CFG_COLOUR_AWARE] = int(self.colour_aware)
        config[CFG_THREE_OUTCOMES] = int(self.three_outcomes)
        config[CFG_COMMITTED_CAPACITY] = c_cap
        config[CFG_PEAK_CAPACITY] = p_cap
        config[CFG_COMMITTED_RATE] = committed_rate
        if peak_rate is None:
            # single-rate: the committed rate feeds C, and E through C's overflow
            config[CFG_COMMITTED_FILL_NS] = fill_ns(c_cap + p_cap, committed_rate)
        else:
            config[CFG_PEAK_RATE] = peak_rate
            config[CFG_COMMITTED_FILL_NS] = fill_ns(c_cap, committed_rate)
            config[CFG_PEAK_FILL_NS] = fill_ns(p_cap, peak_rate)
        self._config: NDArray[np.int64] = np.array(config, dtype=np.int64)
        self._state: NDArray[np.int64] = np.zeros(STATE_SIZE, dtype=np.int64)

    def process(self, batch: PacketBatch, idx: NDArray[np.int64]) -> NDArray[np.int32]:
        rows = np.ascontiguousarray(idx, dtype=np.int64)
        next_out = np.empty(rows.shape[0], dtype=np.int32)
        token_meter_kernel(
            rows,
            batch.cols.ts_ns,
            batch.cols.ip_len,
            batch.cols.ip_version,
            batch.cols.flags,
            batch.cols.ds_byte,
            batch.cols.new_ds,
            self._colour_map,
            self._config,
            self._next_ids,
            self._state,
            self._counters,
            batch.cols.colour,
            next_out,
        )
        return next_out


def build(action: Action, ctx: BuildContext) -> TokenMeter:
    """The engine's factory for a tokenmt action."""
    return TokenMeter(action, ctx)
