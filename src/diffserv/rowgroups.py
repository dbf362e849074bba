"""Exact grouping of rows by several integer columns, in one pass (a C hash table).

The audit folds millions of judged flows into tallies and sums a capture's packets per
flow; sorting for that costs O(n log n) per batch and dominated its time. The kernel
compares every key word on a hash hit, so two different keys are never merged, and
numbers the groups in the order of their first row: the same rows in the same order
always give the same groups, however they hash.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np
from numpy.typing import NDArray

from diffserv import _kernels


class Groups(NamedTuple):
    """``ids[i]``: the group of row ``i``; ``firsts[g]``: the first row of group ``g``."""

    ids: NDArray[np.int64]
    firsts: NDArray[np.int64]

    @property
    def groups(self) -> int:
        return int(self.firsts.shape[0])

    def sums(self, values: NDArray[Any]) -> NDArray[np.int64]:
        """Exact int64 sums of ``values`` (one per row) per group."""
        out = np.zeros(self.groups, np.int64)
        np.add.at(out, self.ids, values.astype(np.int64, copy=False))
        return out

    def sizes(self) -> NDArray[np.int64]:
        """How many rows each group has."""
        return np.bincount(self.ids, minlength=self.groups).astype(np.int64)

    def minima(self, values: NDArray[np.int64]) -> NDArray[np.int64]:
        out = np.full(self.groups, np.iinfo(np.int64).max, np.int64)
        np.minimum.at(out, self.ids, values)
        return out

    def maxima(self, values: NDArray[np.int64]) -> NDArray[np.int64]:
        out = np.full(self.groups, np.iinfo(np.int64).min, np.int64)
        np.maximum.at(out, self.ids, values)
        return out


def group_rows(columns: Sequence[NDArray[Any]]) -> Groups:
    """The groups of the rows of ``columns`` (1 to 16 integer or bool arrays of one
    length): rows are in one group exactly when they are equal in every column."""
    n = columns[0].shape[0]
    # a column with one value in every row tells no rows apart: the kernel skips it
    words = [_words(column) for column in columns if n and not (column == column[0]).all()]
    if not words:  # every row alike (or none)
        return Groups(np.zeros(n, np.int64), np.zeros(min(n, 1), np.int64))
    ids = np.empty(n, np.int64)
    firsts = np.frombuffer(_kernels.group_rows(words, ids), np.int64)
    return Groups(ids, firsts)


def _words(column: NDArray[Any]) -> NDArray[Any]:
    """A column as contiguous 8-byte integers (signed values wrap: equal stays equal)."""
    if column.dtype.itemsize == 8 and column.dtype.kind in "iu":
        return np.ascontiguousarray(column)
    return column.astype(np.int64)
