"""The flowacct flow table: its layout here, its kernels in C (src/kernels/flows.c).

The kernels (``account``, ``sweep``, ``flush_all``, ``rebuild_index``,
``link_free_rows``, ``flow_hash``) come from ``diffserv._kernels``; every array they
work on is made and owned here, so the table's memory is exactly these arrays.

Flows (5-tuples) live in a pool of rows of an int64 matrix; a power-of-two index
array maps hashes to pool rows with linear probing and backward-shift deletion, so
rows never move and the timeout list (a doubly-linked list threaded through the
rows, oldest last-seen first) stays valid. Items (dsfield, projid, uid under a flow)
live in a second pool, chained per flow in creation order. The kernel stops and
asks Python to grow a pool or to drain the record buffer; it never allocates.
"""

from __future__ import annotations

from typing import Final

import numpy as np
from numpy.typing import NDArray

from diffserv import _kernels
from diffserv._kernels import account, flow_hash, flush_all, link_free_rows, rebuild_index, sweep

# The kernels are re-exported: flowacct reaches the whole table through this module.
__all__ = [
    "DONE",
    "EMPTY",
    "F_DHI",
    "F_DLO",
    "F_HASH",
    "F_IHEAD",
    "F_ITAIL",
    "F_LAST",
    "F_NCOLS",
    "F_NEXT",
    "F_PORTS",
    "F_PREV",
    "F_SHI",
    "F_SLO",
    "I_DS",
    "I_FIRST",
    "I_LAST",
    "I_NBY",
    "I_NCOLS",
    "I_NEXT",
    "I_NPK",
    "I_PROJ",
    "I_UID",
    "NEED_DRAIN",
    "NEED_GROW",
    "OUT_NCOLS",
    "S_CLOCK",
    "S_DEADLINE",
    "S_EPACKETS",
    "S_FFREE",
    "S_HEAD",
    "S_IFREE",
    "S_NBYTES",
    "S_NFLOWS",
    "S_NITEMS",
    "S_NOUT",
    "S_NPACKETS",
    "S_NSCALARS",
    "S_PENDING",
    "S_STARTED",
    "S_SWEEP_AT",
    "S_TAIL",
    "S_TBYTES",
    "V_FAIL",
    "V_PASS",
    "account",
    "flow_hash",
    "flush_all",
    "link_free_rows",
    "new_flow_pool",
    "new_item_pool",
    "new_scalars",
    "rebuild_index",
    "sweep",
]

# Flow pool columns.
F_SHI: Final = 0
F_SLO: Final = 1
F_DHI: Final = 2
F_DLO: Final = 3
F_PORTS: Final = 4  # sport << 24 | dport << 8 | proto
F_LAST: Final = 5
F_PREV: Final = 6
F_NEXT: Final = 7  # timeout-list successor; free-list link when free
F_IHEAD: Final = 8
F_ITAIL: Final = 9
F_HASH: Final = 10
F_NCOLS: Final = 11

# Item pool columns.
I_DS: Final = 0
I_PROJ: Final = 1
I_UID: Final = 2
I_NPK: Final = 3
I_NBY: Final = 4
I_FIRST: Final = 5
I_LAST: Final = 6
I_NEXT: Final = 7  # next item of the same flow; free-list link when free
I_NCOLS: Final = 8

# Scalar state.
S_NITEMS: Final = 0
S_NFLOWS: Final = 1
S_FFREE: Final = 2
S_IFREE: Final = 3
S_HEAD: Final = 4
S_TAIL: Final = 5
S_STARTED: Final = 6
S_DEADLINE: Final = 7
S_CLOCK: Final = 8
S_NPACKETS: Final = 9
S_NBYTES: Final = 10
S_TBYTES: Final = 11
S_EPACKETS: Final = 12
S_NOUT: Final = 13
S_PENDING: Final = 14  # 1 while a sweep stopped by a full record buffer is unfinished
S_SWEEP_AT: Final = 15  # the time that sweep runs as of
S_NSCALARS: Final = 16

# Output record columns (diffserv.records.RECORD_COLUMNS).
OUT_NCOLS: Final = 14

# Kernel return status.
DONE: Final = 0
NEED_GROW: Final = 1
NEED_DRAIN: Final = 2

# Per-packet verdicts written by the kernel.
V_PASS: Final = 0
V_FAIL: Final = 1

EMPTY: Final = -1


def new_scalars() -> NDArray[np.int64]:
    scalars = np.zeros(S_NSCALARS, np.int64)
    scalars[S_HEAD] = EMPTY
    scalars[S_TAIL] = EMPTY
    return scalars


def new_flow_pool(capacity: int) -> NDArray[np.int64]:
    return np.full((capacity, F_NCOLS), EMPTY, np.int64)


def new_item_pool(capacity: int) -> NDArray[np.int64]:
    return np.full((capacity, I_NCOLS), EMPTY, np.int64)


# The C side names the same layout; a mismatch would corrupt the table silently.
if (F_NCOLS, I_NCOLS, S_NSCALARS, OUT_NCOLS) != (
    _kernels.FLOW_NCOLS,
    _kernels.ITEM_NCOLS,
    _kernels.FLOW_NSCALARS,
    _kernels.FLOW_OUT_NCOLS,
):  # pragma: no cover (a build from other sources)
    raise ImportError("diffserv._kernels was built for another flow table layout")
