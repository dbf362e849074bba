"""The seeded random source of tswtclmt: splitmix64 plus an unbiased bounded draw.

splitmix64 (Steele, Lea, Flood 2014) is a 64-bit counter passed through a fixed mixing
function: tiny state, full period 2^64, and easy to re-implement bit for bit, so a run
can be reproduced from (seed, action name) alone. A bounded draw uses Lemire's
multiply-and-reject method, which has no modulo bias and costs one 64×64→128 multiply
(a division only on the rare rejection path).
"""

from __future__ import annotations

import hashlib

import numpy as np
from numba import njit
from numpy.typing import NDArray

from diffserv.engine.meters.wide import mul_64x64

MASK64 = (1 << 64) - 1
SPLITMIX_GAMMA = 0x9E3779B97F4A7C15
SPLITMIX_MUL1 = 0xBF58476D1CE4E5B9
SPLITMIX_MUL2 = 0x94D049BB133111EB

_GAMMA = np.uint64(SPLITMIX_GAMMA)
_MUL1 = np.uint64(SPLITMIX_MUL1)
_MUL2 = np.uint64(SPLITMIX_MUL2)
_S30 = np.uint64(30)
_S27 = np.uint64(27)
_S31 = np.uint64(31)
_ONE = np.uint64(1)
_ZERO = np.uint64(0)


def initial_state(seed: int, action_name: str) -> int:
    """The generator's starting counter: the run seed mixed with a stable hash of the name.

    BLAKE2b (not Python's per-process randomised ``hash``) keeps the value identical
    across runs and machines; each meter action gets its own stream.
    """
    digest = hashlib.blake2b(action_name.encode("utf-8"), digest_size=8).digest()
    return (seed ^ int.from_bytes(digest, "little")) & MASK64


@njit(cache=True, nogil=True)
def next_u64(rng: NDArray[np.uint64]) -> np.uint64:
    """Advance the counter in ``rng[0]`` and return the next 64-bit output."""
    rng[0] = rng[0] + _GAMMA
    z = rng[0]
    z = (z ^ (z >> _S30)) * _MUL1
    z = (z ^ (z >> _S27)) * _MUL2
    return np.uint64(z ^ (z >> _S31))


@njit(cache=True, nogil=True)
def draw_inclusive(rng: NDArray[np.uint64], upper: np.uint64) -> np.uint64:
    """Uniform integer in [0, upper] for upper < 2^64 − 1 (Lemire's nearly divisionless)."""
    span = upper + _ONE
    high, low = mul_64x64(next_u64(rng), span)
    if low < span:
        threshold = (_ZERO - span) % span  # 2^64 mod span
        while low < threshold:
            high, low = mul_64x64(next_u64(rng), span)
    return high
