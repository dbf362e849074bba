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

# --- meters: tokenmt, tswtclmt, random source (src/kernels/meters.c)
#
# Both kernels meter `rows` in order and write each row's colour (colour_out[row]) and
# next action id (next_out[i]); config/state/counters are the operator's own arrays,
# laid out as engine/meters/token_bucket.py, time_window.py and common.py say. A config
# or state the operator could not have built is a ValueError, a row outside the
# columns an IndexError; either leaves every array untouched.

METER_GREEN: Final[int]  # the colour column's values (diffserv.policy.model)
METER_YELLOW: Final[int]
METER_RED: Final[int]
TOKEN_CONFIG_SIZE: Final[int]
TOKEN_STATE_SIZE: Final[int]
TSW_CONFIG_SIZE: Final[int]
TSW_STATE_SIZE: Final[int]

def token_meter_kernel(
    rows: NDArray[Any],  # int64
    ts_ns: NDArray[Any],  # int64
    ip_len: NDArray[Any],  # uint32
    ip_version: NDArray[Any],  # uint8
    flags: NDArray[Any],  # uint8
    ds_byte: NDArray[Any],  # uint8
    new_ds: NDArray[Any],  # int16
    colour_map: NDArray[Any],  # uint8[64]
    config: NDArray[Any],  # int64[TOKEN_CONFIG_SIZE]
    next_ids: NDArray[Any],  # int32[3]
    state: NDArray[Any],  # int64[TOKEN_STATE_SIZE], updated
    counters: NDArray[Any],  # int64[7], updated
    colour_out: NDArray[Any],  # uint8, written at each row
    next_out: NDArray[Any],  # int32[len(rows)], written
    /,
) -> None: ...
def tsw_meter_kernel(
    rows: NDArray[Any],  # int64
    ts_ns: NDArray[Any],  # int64
    ip_len: NDArray[Any],  # uint32
    ip_version: NDArray[Any],  # uint8
    flags: NDArray[Any],  # uint8
    config: NDArray[Any],  # int64[TSW_CONFIG_SIZE]
    next_ids: NDArray[Any],  # int32[3]
    state: NDArray[Any],  # int64[TSW_STATE_SIZE], updated
    rng: NDArray[Any],  # uint64[1], the splitmix64 counter, updated
    counters: NDArray[Any],  # int64[7], updated
    colour_out: NDArray[Any],  # uint8, written at each row
    next_out: NDArray[Any],  # int32[len(rows)], written
    /,
) -> None: ...

# test hooks: the kernels' own arithmetic, one step at a time (ValueError outside the
# documented operand ranges: avg, bits ≥ 0, 1 ≤ window_ms < 2^32, elapsed < 2^64)
def tsw_next_avg_rate(avg: int, window_ms: int, bits: int, elapsed: int, /) -> int: ...
def tsw_next_avg_rate_wide(
    avg: int, window_ms: int, bits: int, elapsed: int, window_ns: int, /
) -> int: ...
def tsw_next_u64(rng: NDArray[Any], /) -> int: ...  # rng: uint64[1], advanced
def tsw_draw_inclusive(rng: NDArray[Any], upper: int, /) -> int: ...
