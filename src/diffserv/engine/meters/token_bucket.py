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

The loop over the rows is compiled (``token_meter_kernel`` in src/kernels/meters.c);
it refuses a config whose capacities, rates or fill intervals are not the ones
``engine.modules.tokenmt`` builds from the bounds above, since the proof needs them.
"""

from __future__ import annotations

from diffserv._kernels import token_meter_kernel

__all__ = ["fill_ns", "token_meter_kernel"]

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
