"""Types of the compiled kernels (C sources in src/kernels/, built at install time).

Arrays are numpy arrays of the dtype each parameter names; ``cols`` is a
``PacketColumns`` tuple. Each area of the module keeps its own section below.
"""

from typing import Any, Final

from numpy.typing import NDArray

from diffserv.columns import PacketColumns

NCOLUMNS: Final[int]

def columns_rows(cols: PacketColumns) -> int: ...

# --- packet: decode, rewrite, checksums, capture walkers (src/kernels/packet*.c, capture*.c)

# --- classify: ipgpc (src/kernels/classify.c)

# --- flows: flowacct flow table (src/kernels/flows.c)
# Layout in diffserv.engine.modules._flow_table; int64 pools of (rows, FLOW_NCOLS) and
# (rows, ITEM_NCOLS), a power-of-two int64 index, FLOW_NSCALARS int64 scalars and a
# (rows, FLOW_OUT_NCOLS) int64 record buffer.

FLOW_NCOLS: Final[int]
ITEM_NCOLS: Final[int]
FLOW_NSCALARS: Final[int]
FLOW_OUT_NCOLS: Final[int]

def link_free_rows(pool: NDArray[Any], start: int, link_col: int) -> int: ...
def flow_hash(shi: int, slo: int, dhi: int, dlo: int, ports: int) -> int: ...
def rebuild_index(flows: NDArray[Any], index: NDArray[Any], head: int) -> None: ...
def sweep(
    flows: NDArray[Any],
    items: NDArray[Any],
    index: NDArray[Any],
    scalars: NDArray[Any],
    out: NDArray[Any],
    when: int,
    timeout_ns: int,
) -> bool: ...
def flush_all(
    flows: NDArray[Any],
    items: NDArray[Any],
    index: NDArray[Any],
    scalars: NDArray[Any],
    out: NDArray[Any],
) -> bool: ...
def account(
    flows: NDArray[Any],
    items: NDArray[Any],
    index: NDArray[Any],
    scalars: NDArray[Any],
    out: NDArray[Any],
    timer_ns: int,
    timeout_ns: int,
    max_limit: int,
    rows: NDArray[Any],
    start: int,
    cols: PacketColumns,
    verdict: NDArray[Any],
) -> tuple[int, int]: ...

# --- meters: tokenmt, tswtclmt, random source (src/kernels/meters.c)
