"""The tokenmt kernel: srTCM (RFC 2697) and trTCM (RFC 2698), colour-blind or colour-aware.

Exactness. Buckets hold *nanobits* (bits × 1e9). A rate in bit/s times an interval in
ns is then exactly the number of nanobits that arrived, so no fraction of a token is
ever dropped, however small the rate or the packet spacing (illumos floors the bits
per packet and loses the rest; docs/meters.md).

No overflow, proved on int64 (max 2^63 − 1 ≈ 9.223e18):
* a bucket holds at most (2^32 − 1) × 1e9 < 4.295e18 nanobits;
* a packet is compared as min(bits, 2^33) × 1e9 ≤ 8.590e18 (a packet above 2^32 − 1
  bits cannot fit in any bucket, so the clamp never changes an outcome);
* the interval is first capped at fill_ns = ceil(capacity / rate), the time that fills
  every bucket the rate feeds from empty (capacity = CBS + EBS for single-rate, whose
  overflow spills into E; CBS, resp. PBS, for the two-rate buckets). Tokens are never
  negative, so after fill_ns the buckets are full whatever the interval, and the capped
  product is rate × fill_ns < capacity + rate ≤ 8.590e18 + 2^32 < 2^63;
* a bucket is topped up by comparing the arrival with the room left (capacity − level),
  never by adding first, so no sum exceeds the arrival itself.
The interval is taken in uint64 (now − last wraps to the exact difference whenever
now > last, even across the int64 range) and only compared with fill_ns there.
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
from diffserv.policy.model import GREEN, RED, YELLOW

NANOBITS_PER_BIT = 1_000_000_000
PACKET_BITS_CLAMP = 1 << 33

# config slots (int64)
CFG_TWO_RATE = 0
CFG_COLOUR_AWARE = 1
CFG_THREE_OUTCOMES = 2
CFG_COMMITTED_CAPACITY = 3  # CBS in nanobits
CFG_PEAK_CAPACITY = 4  # PBS (two-rate) or EBS (single-rate) in nanobits
CFG_COMMITTED_RATE = 5  # bit/s
CFG_PEAK_RATE = 6  # bit/s (two-rate only)
CFG_COMMITTED_FILL_NS = 7  # interval that fills the committed (and, single-rate, excess) bucket
CFG_PEAK_FILL_NS = 8
CONFIG_SIZE = 9

# state slots (int64)
ST_STARTED = 0
ST_LAST_NS = 1
ST_COMMITTED = 2  # C, nanobits
ST_PEAK = 3  # P (two-rate) or E (single-rate), nanobits
STATE_SIZE = 4


def fill_ns(capacity_nanobits: int, rate_bps: int) -> int:
    """Nanoseconds after which ``rate_bps`` has filled ``capacity_nanobits`` from empty."""
    if rate_bps <= 0:
        return 0
    return -(-capacity_nanobits // rate_bps)


@njit(cache=True, nogil=True, inline="always")
def _arrived(rate: np.int64, elapsed: np.uint64, fill: np.int64) -> np.int64:
    """Nanobits a rate delivers over ``elapsed`` ns, capped at the fill interval."""
    if elapsed >= np.uint64(fill):
        return rate * fill
    return rate * np.int64(elapsed)


@njit(cache=True, nogil=True, inline="always")
def _top_up(level: np.int64, capacity: np.int64, arrival: np.int64) -> tuple[np.int64, np.int64]:
    """(new level, overflow) after ``arrival`` nanobits reach a bucket."""
    room = capacity - level
    if arrival >= room:
        return capacity, arrival - room
    return level + arrival, np.int64(0)


@njit(cache=True, nogil=True)
def token_meter_kernel(  # noqa: PLR0917 (numba kernels take columns positionally)
    rows: NDArray[np.int64],
    ts_ns: NDArray[np.int64],
    ip_len: NDArray[np.uint32],
    ip_version: NDArray[np.uint8],
    flags: NDArray[np.uint8],
    ds_byte: NDArray[np.uint8],
    new_ds: NDArray[np.int16],
    colour_map: NDArray[np.uint8],
    config: NDArray[np.int64],
    next_ids: NDArray[np.int32],
    state: NDArray[np.int64],
    counters: NDArray[np.int64],
    colour_out: NDArray[np.uint8],
    next_out: NDArray[np.int32],
) -> None:
    """Meter ``rows`` in order; write each row's colour and next action id."""
    two_rate = config[CFG_TWO_RATE] != 0
    aware = config[CFG_COLOUR_AWARE] != 0
    three = config[CFG_THREE_OUTCOMES] != 0
    c_cap = config[CFG_COMMITTED_CAPACITY]
    p_cap = config[CFG_PEAK_CAPACITY]
    c_rate = config[CFG_COMMITTED_RATE]
    p_rate = config[CFG_PEAK_RATE]
    c_fill = config[CFG_COMMITTED_FILL_NS]
    p_fill = config[CFG_PEAK_FILL_NS]
    started = state[ST_STARTED] != 0
    last = state[ST_LAST_NS]
    tokens_c = state[ST_COMMITTED]
    tokens_p = state[ST_PEAK]

    for i in range(rows.shape[0]):
        row = rows[i]
        if not is_meterable(ip_version[row], flags[row]):
            record_error(row, i, counters, colour_out, next_out)
            continue
        now = ts_ns[row]
        bits = packet_bits(ip_len[row])
        need = min(bits, np.int64(PACKET_BITS_CLAMP)) * np.int64(NANOBITS_PER_BIT)

        if not started:
            started = True
            last = now
            tokens_c = c_cap
            tokens_p = p_cap
        elif now > last:
            elapsed = np.uint64(now) - np.uint64(last)
            if two_rate:
                tokens_c = _top_up(tokens_c, c_cap, _arrived(c_rate, elapsed, c_fill))[0]
                tokens_p = _top_up(tokens_p, p_cap, _arrived(p_rate, elapsed, p_fill))[0]
            else:
                tokens_c, spill = _top_up(tokens_c, c_cap, _arrived(c_rate, elapsed, c_fill))
                if spill > 0:
                    tokens_p = _top_up(tokens_p, p_cap, spill)[0]
            last = now

        pre = GREEN
        if aware:
            marked = new_ds[row]
            ds = np.int64(marked) if marked >= 0 else np.int64(ds_byte[row])
            pre = colour_map[(ds >> 2) & 63]

        if two_rate:
            if (aware and pre == RED) or need > tokens_p:
                outcome = OUTCOME_RED
            elif (aware and pre == YELLOW) or need > tokens_c:
                outcome = OUTCOME_YELLOW
                tokens_p -= need
            else:
                outcome = OUTCOME_GREEN
                tokens_c -= need
                tokens_p -= need
        elif pre == GREEN and need <= tokens_c:
            outcome = OUTCOME_GREEN
            tokens_c -= need
        elif three and pre in (GREEN, YELLOW) and need <= tokens_p:
            outcome = OUTCOME_YELLOW
            tokens_p -= need
        else:
            outcome = OUTCOME_RED

        record_outcome(outcome, bits, row, i, next_ids, counters, colour_out, next_out)

    state[ST_STARTED] = 1 if started else 0
    state[ST_LAST_NS] = last
    state[ST_COMMITTED] = tokens_c
    state[ST_PEAK] = tokens_p
