"""The grouping kernel against a dictionary: same groups, numbered by first row."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from diffserv import _kernels
from diffserv.rowgroups import group_rows

# few distinct values per column, so rows repeat; words near 0 and 2**64 - 1 both
_VALUES = st.sampled_from([0, 1, 2, 2**32, 2**63, 2**64 - 1])


@settings(max_examples=300, deadline=None)
@given(st.integers(1, 5).flatmap(lambda k: st.lists(st.tuples(*[_VALUES] * k), max_size=300)))
def test_groups_are_the_distinct_rows_in_order_of_first_appearance(
    rows: list[tuple[int, ...]],
) -> None:
    if not rows:
        return
    columns = [np.array(column, np.uint64) for column in zip(*rows, strict=True)]
    groups = group_rows(columns)
    first_of: dict[tuple[int, ...], int] = {}
    for i, row in enumerate(rows):
        first_of.setdefault(row, i)
    assert groups.firsts.tolist() == list(first_of.values())
    expected = [list(first_of).index(row) for row in rows]
    assert groups.ids.tolist() == expected


def test_sums_minima_and_sizes_are_exact_per_group() -> None:
    key = np.array([5, 7, 5, 5, 9, 7], np.int64)
    big = 2**61
    values = np.array([big, 1, big, 3, -4, 5], np.int64)
    groups = group_rows([key])
    assert groups.groups == 3
    assert groups.sizes().tolist() == [3, 2, 1]
    assert groups.sums(values).tolist() == [2 * big + 3, 6, -4]
    assert groups.minima(values).tolist() == [3, 1, -4]
    assert groups.maxima(values).tolist() == [big, 5, -4]


def test_signed_and_unsigned_columns_group_alike() -> None:
    signed = np.array([-1, 0, -1, 3], np.int64)
    groups = group_rows([signed, np.array([True, False, True, False])])
    assert groups.ids.tolist() == [0, 1, 0, 2]


def test_many_distinct_rows_grow_the_table() -> None:
    n = 200_000
    rng = np.random.default_rng(7)
    a = rng.integers(0, 2**63, n, dtype=np.int64)
    columns = [np.concatenate([a, a[::-1]]), np.zeros(2 * n, np.int64)]
    groups = group_rows(columns)
    assert groups.groups == len(np.unique(a))
    assert (groups.sizes() == 2).all() or len(np.unique(a)) < n


def test_the_kernel_refuses_a_wrong_shape() -> None:
    with pytest.raises(TypeError):
        _kernels.group_rows([np.zeros(4, np.uint8)], np.empty(4, np.int64))
    with pytest.raises(ValueError):
        _kernels.group_rows([np.zeros(4, np.uint64)], np.empty(3, np.int64))


def test_columns_of_one_value_and_no_rows() -> None:
    same = np.full(5, 7, np.int64)
    groups = group_rows([same, same.astype(np.uint8)])
    assert (groups.ids.tolist(), groups.firsts.tolist()) == ([0] * 5, [0])
    groups = group_rows([same, np.array([1, 2, 1, 2, 3])])
    assert (groups.ids.tolist(), groups.firsts.tolist()) == ([0, 1, 0, 1, 2], [0, 1, 4])
    empty = group_rows([np.zeros(0, np.int64)])
    assert (empty.groups, empty.ids.shape) == (0, (0,))
