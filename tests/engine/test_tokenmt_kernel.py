"""The compiled tokenmt kernel at its boundary: layout shared with Python, refused input.

The kernel trusts its config and state only as far as the no-overflow proof needs
(engine/meters/token_bucket.py), so it checks them, and the rows, before it touches
anything: a refused call must leave every array as it was.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from meter_reference import Packet, TokenMeterModel, build, make_batch, tokenmt_action
from numpy.typing import NDArray

from diffserv import _kernels
from diffserv.engine.meters import common, token_bucket
from diffserv.engine.modules.tokenmt import TokenMeter
from diffserv.policy.model import GREEN, RED, YELLOW

Args = list[NDArray[Any]]


def kernel_args(rows: list[int]) -> tuple[TokenMeter, Args]:
    """A two-rate colour-aware meter and the arguments its process() would pass."""
    model = TokenMeterModel(cir=1000, cbs=12_000, pir=2000, pbs=24_000, aware=True)
    op = build(tokenmt_action(model))
    assert isinstance(op, TokenMeter)
    batch = make_batch([Packet(i * 1000, 100, ds=i) for i in range(4)])
    c = batch.cols
    args: Args = [
        np.array(rows, dtype=np.int64),
        c.ts_ns, c.ip_len, c.ip_version, c.flags, c.ds_byte, c.new_ds,
        op._colour_map, op._config, op._next_ids, op._state, op._counters,
        c.colour, np.zeros(len(rows), dtype=np.int32),
    ]  # fmt: skip
    return op, args


def snapshot(args: Args) -> list[bytes]:
    return [a.tobytes() for a in args]


def test_the_layout_is_the_one_python_builds() -> None:
    assert _kernels.TOKEN_CONFIG_SIZE == token_bucket.CONFIG_SIZE
    assert _kernels.TOKEN_STATE_SIZE == token_bucket.STATE_SIZE
    assert (_kernels.METER_GREEN, _kernels.METER_YELLOW, _kernels.METER_RED) == (
        GREEN,
        YELLOW,
        RED,
    )
    assert common.OUTCOME_COLOURS.tolist() == [GREEN, YELLOW, RED]


def test_a_call_meters_the_rows_it_is_given() -> None:
    op, args = kernel_args([0, 2, 3])
    _kernels.token_meter_kernel(*args)
    assert args[-1].tolist() == [10, 10, 10]  # green_act
    assert args[-2].tolist() == [GREEN, 0, GREEN, GREEN]
    assert op.counters()["green_packets"] == 3
    _kernels.token_meter_kernel(*kernel_args([])[1])  # no rows: nothing to do


@pytest.mark.parametrize("row", [-1, 4, 2**62])
def test_a_row_outside_the_columns_is_refused_before_anything_changes(row: int) -> None:
    _, args = kernel_args([0, row])
    before = snapshot(args)
    with pytest.raises(IndexError, match=r"outside \[0, 4\)"):
        _kernels.token_meter_kernel(*args)
    assert snapshot(args) == before


def test_rows_are_checked_against_the_shortest_column() -> None:
    _, args = kernel_args([3])
    args[6] = args[6][:3].copy()  # new_ds
    with pytest.raises(IndexError, match=r"outside \[0, 3\)"):
        _kernels.token_meter_kernel(*args)


def _set(slot: int, value: int) -> Callable[[TokenMeter], None]:
    def tamper(op: TokenMeter) -> None:
        op._config[slot] = value

    return tamper


@pytest.mark.parametrize(
    ("tamper", "message"),
    [
        (_set(token_bucket.CFG_COMMITTED_FILL_NS, 1), "config"),
        (_set(token_bucket.CFG_PEAK_FILL_NS, 10**18), "config"),
        (_set(token_bucket.CFG_COMMITTED_CAPACITY, 2**63 - 1), "config"),
        (_set(token_bucket.CFG_PEAK_RATE, -1), "config"),
        (_set(token_bucket.CFG_COMMITTED_RATE, 2**32), "config"),
        (lambda op: op._state.__setitem__(token_bucket.ST_COMMITTED, -1), "state"),
        (lambda op: op._state.__setitem__(token_bucket.ST_PEAK, 24_000 * 10**9 + 1), "state"),
    ],
)
def test_a_config_or_state_the_operator_cannot_build_is_refused(
    tamper: Callable[[TokenMeter], None], message: str
) -> None:
    op, args = kernel_args([0, 1])
    tamper(op)
    before = snapshot(args)
    with pytest.raises(ValueError, match=message):
        _kernels.token_meter_kernel(*args)
    assert snapshot(args) == before


@pytest.mark.parametrize(
    ("position", "replacement", "error", "message"),
    [
        (0, np.zeros(2, dtype=np.int32), TypeError, "rows"),
        (2, np.zeros(4, dtype=np.int32), TypeError, "ip_len"),
        (6, np.zeros(4, dtype=np.uint16), TypeError, "new_ds"),
        (7, np.zeros(63, dtype=np.uint8), ValueError, "colour_map has 63 items"),
        (8, np.zeros(10, dtype=np.int64), ValueError, "config has 10 items"),
        (11, np.zeros(6, dtype=np.int64), ValueError, "counters has 6 items"),
        (13, np.zeros(3, dtype=np.int32), ValueError, "next_out has 3 items for 2 rows"),
        (0, np.zeros(4, dtype=np.int64)[::2], TypeError, "rows"),  # not contiguous
        (0, [0, 1], TypeError, "rows"),
    ],
)
def test_arguments_are_checked_at_the_boundary(
    position: int, replacement: Any, error: type[Exception], message: str
) -> None:
    _, args = kernel_args([0, 1])
    args[position] = replacement
    with pytest.raises(error, match=message):
        _kernels.token_meter_kernel(*args)


def test_outputs_must_be_writable_and_the_count_right() -> None:
    _, args = kernel_args([0])
    args[10].setflags(write=False)  # state
    with pytest.raises(TypeError, match="writable"):
        _kernels.token_meter_kernel(*args)
    with pytest.raises(TypeError, match="takes 14 arguments"):
        _kernels.token_meter_kernel(*args[:13])
