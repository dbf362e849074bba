"""The seeded random source of tswtclmt: splitmix64 plus an unbiased bounded draw.

splitmix64 (Steele, Lea, Flood 2014) is a 64-bit counter passed through a fixed mixing
function: tiny state, full period 2^64, and easy to re-implement bit for bit, so a run
can be reproduced from (seed, action name) alone. A bounded draw uses Lemire's
multiply-and-reject method, which has no modulo bias and costs one 64×64→128 multiply
(a division only on the rare rejection path).

The generator itself is compiled (src/kernels/meters.c), where tsw_meter_kernel draws
from it; ``tsw_next_u64`` and ``tsw_draw_inclusive`` are that same code one call at a
time, on a one-item uint64 state array, so the tests can hold it to the documented
algorithm.
"""

from __future__ import annotations

import hashlib

from diffserv._kernels import tsw_draw_inclusive, tsw_next_u64

__all__ = ["initial_state", "tsw_draw_inclusive", "tsw_next_u64"]

MASK64 = (1 << 64) - 1
SPLITMIX_GAMMA = 0x9E3779B97F4A7C15
SPLITMIX_MUL1 = 0xBF58476D1CE4E5B9
SPLITMIX_MUL2 = 0x94D049BB133111EB


def initial_state(seed: int, action_name: str) -> int:
    """The generator's starting counter: the run seed mixed with a stable hash of the name.

    BLAKE2b (not Python's per-process randomised ``hash``) keeps the value identical
    across runs and machines; each meter action gets its own stream.
    """
    digest = hashlib.blake2b(action_name.encode("utf-8"), digest_size=8).digest()
    return (seed ^ int.from_bytes(digest, "little")) & MASK64
