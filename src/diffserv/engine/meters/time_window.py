"""The tswtclmt kernel: the RFC 2859 time sliding window three colour marker.

The loop over the rows is compiled (``tsw_meter_kernel`` in src/kernels/meters.c); this
module holds its config and state layout and says what it computes.

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

``tsw_next_avg_rate(avg, window_ms, bits, elapsed)`` is the kernel's average step, one
call at a time (the fast path when it fits), and ``tsw_next_avg_rate_wide(..., window_ns)``
its 128-bit path alone, so the tests can hold both to the exact floor in Python ints.
"""

from __future__ import annotations

from diffserv._kernels import tsw_meter_kernel, tsw_next_avg_rate, tsw_next_avg_rate_wide

__all__ = ["tsw_meter_kernel", "tsw_next_avg_rate", "tsw_next_avg_rate_wide"]

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
