"""tswtclmt as an engine operator: the RFC 2859 time sliding window three colour marker.

The average rate starts at ``committed_rate`` and the window front at the first packet the
action meters. Marking above the committed rate is probabilistic; the random source is
seeded from ``EngineOptions.seed`` and the action name, so the same input, policy and seed
always give the same colours (see ``engine.meters.random_source``).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from diffserv.columns import PacketBatch
from diffserv.engine.context import BuildContext
from diffserv.engine.meters.common import (
    MeterBase,
    interpreted,
    invalid,
    policy_error,
)
from diffserv.engine.meters.random_source import initial_state
from diffserv.engine.meters.time_window import (
    CFG_COMMITTED_RATE,
    CFG_FAST_AVG_MAX,
    CFG_PEAK_RATE,
    CFG_WINDOW_MS,
    CFG_WINDOW_NS,
    CONFIG_SIZE,
    INT64_MAX,
    NS_PER_MS,
    ST_AVG_RATE,
    ST_STARTED,
    STATE_SIZE,
    tsw_meter_kernel,
)
from diffserv.policy.interpret import tswtclmt_params
from diffserv.policy.model import Action
from diffserv.policy.schema import UINT32_MAX


class TimeSlidingWindowMeter(MeterBase):
    """One tswtclmt action; the rate estimate and random stream persist across batches."""

    module = "tswtclmt"
    state_attributes = ("_state", "_counters", "_rng")

    def __init__(self, action: Action, ctx: BuildContext) -> None:
        params = interpreted(action, tswtclmt_params)
        super().__init__(
            action,
            ctx,
            green=params.green_action,
            yellow=params.yellow_action,
            red=params.red_action,
        )
        self.params = params
        committed_rate = params.committed_rate_bps
        peak_rate = params.peak_rate_bps
        window_ms = params.window_ms
        if not 0 <= committed_rate <= peak_rate <= UINT32_MAX:
            raise invalid(action)
        if not 1 <= window_ms <= UINT32_MAX:
            raise policy_error(action, f"action {action.name}: window must be 1 to 4294967295 ms")
        self.committed_rate_bps = committed_rate
        self.peak_rate_bps = peak_rate
        self.window_ms = window_ms
        self.seed = ctx.options.seed

        config = [0] * CONFIG_SIZE
        config[CFG_COMMITTED_RATE] = committed_rate
        config[CFG_PEAK_RATE] = peak_rate
        config[CFG_WINDOW_MS] = window_ms
        config[CFG_WINDOW_NS] = window_ms * NS_PER_MS
        config[CFG_FAST_AVG_MAX] = INT64_MAX // window_ms
        self._config: NDArray[np.int64] = np.array(config, dtype=np.int64)
        self._state: NDArray[np.int64] = np.zeros(STATE_SIZE, dtype=np.int64)
        self._rng: NDArray[np.uint64] = np.array(
            [initial_state(self.seed, action.name)], dtype=np.uint64
        )

    @property
    def average_rate_bps(self) -> int | None:
        """The current rate estimate (bit/s); None before the first metered packet."""
        if not self._state[ST_STARTED]:
            return None
        return int(self._state[ST_AVG_RATE])

    def process(self, batch: PacketBatch, idx: NDArray[np.int64]) -> NDArray[np.int32]:
        rows = np.ascontiguousarray(idx, dtype=np.int64)
        next_out = np.empty(rows.shape[0], dtype=np.int32)
        tsw_meter_kernel(
            rows,
            batch.cols.ts_ns,
            batch.cols.ip_len,
            batch.cols.ip_version,
            batch.cols.flags,
            self._config,
            self._next_ids,
            self._state,
            self._rng,
            self._counters,
            batch.cols.colour,
            next_out,
        )
        return next_out


def build(action: Action, ctx: BuildContext) -> TimeSlidingWindowMeter:
    """The engine's factory for a tswtclmt action."""
    return TimeSlidingWindowMeter(action, ctx)
