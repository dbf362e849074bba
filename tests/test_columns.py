"""The packet column table: one declaration drives allocation, resets and batch views."""

from __future__ import annotations

import itertools
from typing import get_args, get_type_hints

import numpy as np
import pytest

from diffserv import _kernels
from diffserv.columns import (
    COLUMN,
    COLUMNS,
    Filler,
    PacketBatch,
    PacketColumns,
    allocate_columns,
    reset_columns,
)


def test_every_field_of_the_named_tuple_is_a_declared_column() -> None:
    assert tuple(column.name for column in COLUMNS) == PacketColumns._fields
    hints = get_type_hints(PacketColumns, include_extras=True)
    for column in COLUMNS:
        # the dtype comes from the field's own annotation, written once
        array_hint = get_args(hints[column.name])[0]
        assert get_args(get_args(array_hint)[-1]) == (column.dtype,), column.name
        assert column.doc


def test_allocation_gives_each_column_its_dtype_and_neutral_value() -> None:
    cols = allocate_columns(5)
    for column, array in zip(COLUMNS, cols, strict=True):
        assert array.dtype == np.dtype(column.dtype), column.name
        assert array.shape == (5,)
        assert (array == column.default).all(), column.name
    # the neutral values that matter downstream
    assert (cols.l3_off == -1).all() and (cols.class_id == -1).all()
    assert (cols.new_ds == -1).all() and (cols.uid == -1).all()


def test_reset_touches_only_the_columns_of_one_filler() -> None:
    cols = allocate_columns(3)
    for array in cols:
        array[:] = 7
    reset_columns(cols, Filler.ENGINE)
    for column, array in zip(COLUMNS, cols, strict=True):
        expected = column.default if column.filled_by is Filler.ENGINE else 7
        assert (array == expected).all(), column.name
    assert COLUMN["new_pcp"].filled_by is Filler.ENGINE
    assert COLUMN["ds_byte"].filled_by is Filler.DECODE
    assert COLUMN["ts_ns"].filled_by is Filler.SOURCE


def test_head_is_a_view_over_the_same_buffer_and_arrays() -> None:
    buf = np.arange(10, dtype=np.uint8)
    batch = PacketBatch.allocate(buf, 4)
    batch.interfaces = ("", "eth0")
    first = batch.head(2)
    assert first.n == 2 and first.buf is buf and first.interfaces == ("", "eth0")
    first.cols.ds_byte[1] = 0xB8
    assert batch.cols.ds_byte[1] == 0xB8


def test_current_ds_is_the_mark_when_set_else_the_byte_read() -> None:
    batch = PacketBatch.allocate(np.zeros(1, np.uint8), 3)
    batch.cols.ds_byte[:] = [0x00, 0x2A, 0xB9]
    batch.cols.new_ds[:] = [-1, 0x28, -1]
    assert batch.current_ds().tolist() == [0x00, 0x28, 0xB9]


def test_the_compiled_kernels_see_the_same_table() -> None:
    """The C header is generated from this table; a stale one would misread columns."""
    cols = allocate_columns(3)
    assert len(COLUMNS) == _kernels.NCOLUMNS
    assert _kernels.columns_rows(cols) == 3


@pytest.mark.parametrize("column", [c.name for c in COLUMNS])
def test_a_column_of_the_wrong_dtype_is_refused_not_misread(column: str) -> None:
    cols = allocate_columns(2)
    wrong = np.float32 if COLUMN[column].dtype is not np.float32 else np.int8
    with pytest.raises(TypeError, match=column):
        _kernels.columns_rows(cols._replace(**{column: np.zeros(2, wrong)}))


def test_columns_of_different_lengths_are_refused() -> None:
    cols = allocate_columns(4)
    with pytest.raises(ValueError, match="ds_byte has 3 rows, not 4"):
        _kernels.columns_rows(cols._replace(ds_byte=np.zeros(3, np.uint8)))
    with pytest.raises(TypeError, match="29 columns"):
        _kernels.columns_rows(tuple(cols)[:-1])  # type: ignore[arg-type]


def test_a_view_with_strides_is_refused() -> None:
    cols = allocate_columns(4)
    with pytest.raises(TypeError, match="contiguous"):
        _kernels.columns_rows(cols._replace(number=np.zeros(8, np.int64)[::2]))


def test_uninitialised_columns_reuse_memory_only_once_every_array_is_gone() -> None:
    first = allocate_columns(1000, initialise=False)
    first.ds_byte[:] = 7
    kept = first.saddr_lo[5:9]  # a view of one column is enough to keep the block
    block = id(first.number.base)
    del first
    second = allocate_columns(1000, initialise=False)
    assert id(second.number.base) != block  # still in use through `kept`
    second.ds_byte[:] = 9
    del kept
    third = allocate_columns(1000, initialise=False)
    assert id(third.number.base) == block  # free again: reused, contents as left
    assert int(third.ds_byte[0]) == 7
    assert int(second.ds_byte[0]) == 9  # the batch still alive was never touched


def test_pooled_columns_have_the_table_dtypes_lengths_and_alignment() -> None:
    cols = allocate_columns(333, initialise=False)
    assert _kernels.columns_rows(cols) == 333
    for column, array in zip(COLUMNS, cols, strict=True):
        assert array.dtype == column.dtype and array.shape == (333,)
        assert array.ctypes.data % array.itemsize == 0
    starts = sorted((a.ctypes.data, a.ctypes.data + a.nbytes) for a in cols)
    assert all(end <= start for (_, end), (start, _) in itertools.pairwise(starts))
