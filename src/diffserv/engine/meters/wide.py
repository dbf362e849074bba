"""Unsigned 128-bit multiply and divide for numba kernels, with no Python ints involved.

The time sliding window estimator multiplies a 64-bit average rate by a 32-bit window
and by 1e9 before dividing by a nanosecond interval; the intermediate does not fit in
64 bits for large windows or rates, so it is carried as a (high, low) pair of uint64.
Every constant is a ``np.uint64`` so numba never mixes signed and unsigned operands
(which it would silently do in float64).
"""

from __future__ import annotations

import numpy as np
from numba import njit

_MASK32 = np.uint64(0xFFFFFFFF)
_BASE32 = np.uint64(1 << 32)
_S32 = np.uint64(32)
_S64 = np.uint64(64)
_ZERO = np.uint64(0)
_ONE = np.uint64(1)


@njit(cache=True, nogil=True)
def mul_64x64(a: np.uint64, b: np.uint64) -> tuple[np.uint64, np.uint64]:
    """The full product a·b as (high, low) 64-bit halves."""
    a_lo = a & _MASK32
    a_hi = a >> _S32
    b_lo = b & _MASK32
    b_hi = b >> _S32
    p00 = a_lo * b_lo
    p01 = a_lo * b_hi
    p10 = a_hi * b_lo
    p11 = a_hi * b_hi
    # each term < 2^32, so the sum < 3·2^32: no wrap
    middle = (p00 >> _S32) + (p01 & _MASK32) + (p10 & _MASK32)
    low = (middle << _S32) | (p00 & _MASK32)
    high = p11 + (p01 >> _S32) + (p10 >> _S32) + (middle >> _S32)
    return high, low


@njit(cache=True, nogil=True)
def leading_zeros_64(value: np.uint64) -> np.uint64:
    """Number of leading zero bits of a non-zero uint64 (binary search, six steps)."""
    count = _ZERO
    if value <= np.uint64(0x00000000FFFFFFFF):
        count += np.uint64(32)
        value = value << np.uint64(32)
    if value <= np.uint64(0x0000FFFFFFFFFFFF):
        count += np.uint64(16)
        value = value << np.uint64(16)
    if value <= np.uint64(0x00FFFFFFFFFFFFFF):
        count += np.uint64(8)
        value = value << np.uint64(8)
    if value <= np.uint64(0x0FFFFFFFFFFFFFFF):
        count += np.uint64(4)
        value = value << np.uint64(4)
    if value <= np.uint64(0x3FFFFFFFFFFFFFFF):
        count += np.uint64(2)
        value = value << np.uint64(2)
    if value <= np.uint64(0x7FFFFFFFFFFFFFFF):
        count += _ONE
    return count


@njit(cache=True, nogil=True)
def div_128_by_64(
    high: np.uint64, low: np.uint64, divisor: np.uint64
) -> tuple[np.uint64, np.uint64]:
    """(quotient, remainder) of (high·2^64 + low) / divisor, for high < divisor.

    Schoolbook division in base 2^32 on the normalised divisor (Knuth's algorithm D
    specialised to a two-digit divisor): each quotient digit is estimated from the top
    divisor digit and corrected at most twice. ``high < divisor`` guarantees the quotient
    fits in 64 bits. Intermediate values that exceed 64 bits are only ever needed modulo
    2^64, where uint64 wrap-around gives them exactly.
    """
    shift = leading_zeros_64(divisor)
    divisor = divisor << shift
    # a shift by 64 is undefined, hence the guard when the divisor is already normalised
    top = (high << shift) | (low >> (_S64 - shift)) if shift > _ZERO else high
    low = low << shift
    d_hi = divisor >> _S32
    d_lo = divisor & _MASK32
    n_hi = low >> _S32
    n_lo = low & _MASK32

    q_hi = top // d_hi
    rem = top - q_hi * d_hi
    while q_hi >= _BASE32 or q_hi * d_lo > ((rem << _S32) | n_hi):
        q_hi -= _ONE
        rem += d_hi
        if rem >= _BASE32:
            break
    middle = (top << _S32) + n_hi - q_hi * divisor  # true value < divisor

    q_lo = middle // d_hi
    rem = middle - q_lo * d_hi
    while q_lo >= _BASE32 or q_lo * d_lo > ((rem << _S32) | n_lo):
        q_lo -= _ONE
        rem += d_hi
        if rem >= _BASE32:
            break
    remainder = ((middle << _S32) + n_lo - q_lo * divisor) >> shift
    return (q_hi << _S32) | q_lo, remainder


@njit(cache=True, nogil=True)
def divmod_128_by_64(
    high: np.uint64, low: np.uint64, divisor: np.uint64
) -> tuple[np.uint64, np.uint64, np.uint64]:
    """(quotient high, quotient low, remainder) of (high·2^64 + low) / divisor, divisor > 0."""
    q_high = high // divisor
    q_low, remainder = div_128_by_64(high - q_high * divisor, low, divisor)
    return q_high, q_low, remainder
