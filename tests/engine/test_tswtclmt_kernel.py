"""The compiled tswtclmt kernel at its boundary: layout shared with Python, refused input.

The fast path's int64 bounds and the 128-bit path's divisor come from the config the
operator builds (engine/meters/time_window.py) and from an average the kernel never
lets past 2^62, so the kernel checks both, and the rows, before it touches anything.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from meter_reference import Packet, TswModel, build, make_batch, tswtclmt_action
from numpy.typing import NDArray

from diffserv import _kernels
from diffserv.engine.meters import time_window
from diffserv.engine.modules.tswtclmt import TimeSlidingWindowMeter

Args = list[NDArray[Any]]


def kernel_args(rows: list[int]) -> tuple[TimeSlidingWindowMeter, Args]:
    """A meter well above its rates (so it draws) and the arguments process() would pass."""
    op = build(tswtclmt_action(TswModel(1000, 2000, 10)))
    assert isinstance(op, TimeSlidingWindowMeter)
    batch = make_batch([Packet(i * 1000, 1500) for i in range(4)])
    c = batch.cols
    args: Args = [
        np.array(rows, dtype=np.int64),
        c.ts_ns, c.ip_len, c.ip_version, c.flags,
        op._config, op._next_ids, op._state, op._rng, op._counters,
        c.colour, np.zeros(len(rows), dtype=np.int32),
    ]  # fmt: skip
    return op, args


def snapshot(args: Args) -> list[bytes]:
    return [a.tobytes() for a in args]


def test_the_layout_is_the_one_python_builds() -> None:
    assert _kernels.TSW_CONFIG_SIZE == time_window.CONFIG_SIZE
    assert _kernels.TSW_STATE_SIZE == time_window.STATE_SIZE


def test_a_call_meters_and_draws() -> None:
    op, args = kernel_args([0, 1, 2, 3])
    rng_before = int(op._rng[0])
    _kernels.tsw_meter_kernel(*args)
    assert op.average_rate_bps is not None and op.average_rate_bps > 2000
    assert int(op._rng[0]) != rng_before
    counters = op.counters()
    assert sum(counters[f"{c}_packets"] for c in ("green", "yellow", "red")) == 4
    assert args[-1].tolist() == [12, 12, 12, 12]  # red_act: 1.2 Mbit/s against 2 kbit/s
    _kernels.tsw_meter_kernel(*kernel_args([])[1])  # no rows: nothing to do


@pytest.mark.parametrize("row", [-1, 4, -(2**63)])
def test_a_row_outside_the_columns_is_refused_before_anything_changes(row: int) -> None:
    _, args = kernel_args([0, 1, row])
    before = snapshot(args)
    with pytest.raises(IndexError, match=r"outside \[0, 4\)"):
        _kernels.tsw_meter_kernel(*args)
    assert snapshot(args) == before


@pytest.mark.parametrize(
    ("slot", "value"),
    [
        (time_window.CFG_WINDOW_MS, 0),
        (time_window.CFG_WINDOW_MS, 2**32),
        (time_window.CFG_WINDOW_NS, 0),
        (time_window.CFG_FAST_AVG_MAX, 2**63 - 1),
        (time_window.CFG_COMMITTED_RATE, -1),
        (time_window.CFG_PEAK_RATE, 2**32),
    ],
)
def test_a_config_the_operator_cannot_build_is_refused(slot: int, value: int) -> None:
    op, args = kernel_args([0])
    op._config[slot] = value
    before = snapshot(args)
    with pytest.raises(ValueError, match="config"):
        _kernels.tsw_meter_kernel(*args)
    assert snapshot(args) == before


@pytest.mark.parametrize("avg", [-1, 2**62 + 1])
def test_an_average_the_kernel_never_leaves_is_refused(avg: int) -> None:
    op, args = kernel_args([0])
    op._state[time_window.ST_AVG_RATE] = avg
    with pytest.raises(ValueError, match="average"):
        _kernels.tsw_meter_kernel(*args)


@pytest.mark.parametrize(
    ("position", "replacement", "error", "message"),
    [
        (1, np.zeros(4, dtype=np.uint64), TypeError, "ts_ns"),
        (8, np.zeros(1, dtype=np.int64), TypeError, "rng"),
        (8, np.zeros(2, dtype=np.uint64), ValueError, "rng has 2 items"),
        (7, np.zeros(4, dtype=np.int64), ValueError, "state has 4 items"),
        (6, np.zeros(3, dtype=np.int64), TypeError, "next_ids"),
        (10, np.zeros(4, dtype=np.bool_), TypeError, "colour_out"),
    ],
)
def test_arguments_are_checked_at_the_boundary(
    position: int, replacement: Any, error: type[Exception], message: str
) -> None:
    _, args = kernel_args([0])
    args[position] = replacement
    with pytest.raises(error, match=message):
        _kernels.tsw_meter_kernel(*args)
