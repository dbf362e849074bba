"""The tswtclmt kernel: the RFC 2859 time sliding window three colour marker.

Per metered packet (docs/meters.md, "tswtclmt"):
    bits_in_win = floor(avg_rate × window_ms / 1000) + packet_bits
    Δ           = (now − win_front) + window_ms × 1e6          (ns)
    avg_rate    = min(floor(bits_in_win × 1e9 / Δ), AVG_RATE_MAX)
    win_front   = max(win_front, now)
then green when avg_rate ≤ CIR; otherwise one draw r uniform in [0, avg_rate] gives red
when avg_rate > PIR and avg_rate − PIR ≥ r, else yellow when avg_rate − CIR ≥ r, else green.

No overflow: the rate is 64-bit and saturates at AVG_RATE_MAX = 2^62 bit/s (never
reached by real traffic: one packet raises the average by at most bits × 1000 / window_ms,
so it takes ~10^8 full-size packets with one timestamp). The fast path runs only when
avg × window_ms fits in int64 (avg ≤ INT64_MAX // window_ms, precomputed) and
bits_in_win × 1e9 fits (bits_in_win ≤ 9_223_372_036) and now − win_front < 2^62.
Otherwise the slow path computes the same floors in 128 bits: avg × window_ms < 2^94,
bits_in_win < 2^85, bits_in_win × 1e9 < 2^115, and the quotient by Δ (≥ 1e6) is
clamped. The elapsed time is capped at 2^63 ns (only negative timestamps get there),
so Δ < 2^63 + 2^52 fits in uint64.
"""

from __future__ import annotations

import numpy as np
from numba import njit
from numpy.typing import NDArray

from diffserv.engine.meters.common import (
    OUTCOME_GREEN,
    OUTCOME_RED,
    OUTCOME_YELLOW,
    is_meterable,
    packet_bits,
    record_error,
    record_outcome,
)
from diffserv.engine.meters.random_source import draw_inclusive
from diffserv.engine.meters.wide import divmod_128_by_64, mul_64x64

AVG_RATE_MAX = 1 << 62
NS_PER_S = 1_000_000_000
NS_PER_MS = 1_000_000
MS_PER_S = 1000
INT64_MAX = (1 << 63) - 1
FAST_BITS_MAX = INT64_MAX // NS_PER_S  # 9_223_372_036
FAST_ELAPSED_LIMIT = 1 << 62
ELAPSED_CAP = 1 << 63

# config slots (int64)
CFG_COMMITTED_RATE = 0
CFG_PEAK_RATE = 1
CFG_WINDOW_MS = 2
CFG_WINDOW_NS = 3
CFG_FAST_AVG_MAX = 4  # INT64_MAX // window_ms
CONFIG_SIZE = 5

# state slots (int64)
ST_STARTED = 0
ST_WIN_FRONT_NS = 1
ST_AVG_RATE = 2
STATE_SIZE = 3

_U_NS_PER_S = np.uint64(NS_PER_S)
_U_MS_PER_S = np.uint64(MS_PER_S)
_U_AVG_MAX = np.uint64(AVG_RATE_MAX)
_U_ELAPSED_CAP = np.uint64(ELAPSED_CAP)
_U_ZERO = np.uint64(0)
_U_ONE = np.uint64(1)


@njit(cache=True, nogil=True)
def next_avg_rate_wide(
    avg: np.int64, window_ms: np.int64, bits: np.int64, elapsed: np.uint64, window_ns: np.int64
) -> np.int64:
    """The new average in 128-bit arithmetic (any operands within the documented bounds)."""
    x_high, x_low = mul_64x64(np.uint64(avg), np.uint64(window_ms))
    b_high, b_low, _ = divmod_128_by_64(x_high, x_low, _U_MS_PER_S)
    summed = b_low + np.uint64(bits)
    if summed < b_low:  # carry out of the low half
        b_high += _U_ONE
    n_high, n_low = mul_64x64(summed, _U_NS_PER_S)
    n_high += b_high * _U_NS_PER_S
    delta = min(elapsed, _U_ELAPSED_CAP) + np.uint64(window_ns)
    q_high, q_low, _ = divmod_128_by_64(n_high, n_low, delta)
    if q_high > _U_ZERO or q_low > _U_AVG_MAX:
        return np.int64(AVG_RATE_MAX)
    return np.int64(q_low)


@njit(cache=True, nogil=True, inline="always")
def _next_avg_rate(  # noqa: PLR0917
    avg: np.int64,
    window_ms: np.int64,
    bits: np.int64,
    elapsed: np.uint64,
    window_ns: np.int64,
    fast_avg_max: np.int64,
) -> np.int64:
    if avg <= fast_avg_max and elapsed < np.uint64(FAST_ELAPSED_LIMIT):
        bits_in_window = avg * window_ms // MS_PER_S + bits
        if bits_in_window <= FAST_BITS_MAX:
            return bits_in_window * NS_PER_S // (np.int64(elapsed) + window_ns)
    return next_avg_rate_wide(avg, window_ms, bits, elapsed, window_ns)


@njit(cache=True, nogil=True)
def tsw_meter_kernel(  # noqa: PLR0917 (numba kernels take columns positionally)
    rows: NDArray[np.int64],
    ts_ns: NDArray[np.int64],
    ip_len: NDArray[np.uint32],
    ip_version: NDArray[np.uint8],
    flags: NDArray[np.uint8],
    config: NDArray[np.int64],
    next_ids: NDArray[np.int32],
    state: NDArray[np.int64],
    rng: NDArray[np.uint64],
    counters: NDArray[np.int64],
    colour_out: NDArray[np.uint8],
    next_out: NDArray[np.int32],
) -> None:
    """Meter ``rows`` in order; write each row's colour and next action id."""
    c_rate = config[CFG_COMMITTED_RATE]
    p_rate = config[CFG_PEAK_RATE]
    window_ms = config[CFG_WINDOW_MS]
    window_ns = config[CFG_WINDOW_NS]
    fast_avg_max = config[CFG_FAST_AVG_MAX]
    started = state[ST_STARTED] != 0
    front = state[ST_WIN_FRONT_NS]
    avg = state[ST_AVG_RATE]

    for i in range(rows.shape[0]):
        row = rows[i]
        if not is_meterable(ip_version[row], flags[row]):
            record_error(row, i, counters, colour_out, next_out)
            continue
        now = ts_ns[row]
        bits = packet_bits(ip_len[row])
        if not started:
            started = True
            front = now
            avg = c_rate
        elapsed = np.uint64(0)
        if now > front:
            elapsed = np.uint64(now) - np.uint64(front)
            front = now
        avg = _next_avg_rate(avg, window_ms, bits, elapsed, window_ns, fast_avg_max)

        outcome = OUTCOME_GREEN
        if avg > c_rate:
            draw = np.int64(draw_inclusive(rng, np.uint64(avg)))
            if avg > p_rate and avg - p_rate >= draw:
                outcome = OUTCOME_RED
            elif avg - c_rate >= draw:
                outcome = OUTCOME_YELLOW

        record_outcome(outcome, bits, row, i, next_ids, counters, colour_out, next_out)

    state[ST_STARTED] = 1 if started else 0
    state[ST_WIN_FRONT_NS] = front
    state[ST_AVG_RATE] = avg
