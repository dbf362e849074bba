"""Keep freed memory in the process for the next batch (glibc's malloc thresholds).

A batch command makes many temporary arrays of a megabyte or more per batch. glibc maps
such blocks fresh from the kernel and unmaps them when freed (the threshold adapts, but
the top of the heap is trimmed again), so every batch pays for its pages anew: page
faults, which in a virtual machine cost microseconds each. Measured on the audit of 10 M
flow records: 440 000 faults and 2 s of system time, 50 000 faults and 0.6 s with the
thresholds raised. Long-running services do not call this (they bound their memory).
"""

from __future__ import annotations

import ctypes
from typing import Final

_M_TRIM_THRESHOLD: Final = -1  # glibc's mallopt parameters (malloc.h)
_M_MMAP_THRESHOLD: Final = -3
_MMAP_THRESHOLD: Final = 64 << 20  # blocks smaller than this come from the heap
_TRIM_THRESHOLD: Final = 256 << 20  # free memory kept at the top of the heap


def keep_freed_memory() -> bool:
    """Raise the thresholds (True), or leave them where this is not glibc (False)."""
    try:
        mallopt = ctypes.CDLL(None).mallopt  # the C library the interpreter runs on
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return bool(
        mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD) and mallopt(_M_TRIM_THRESHOLD, _TRIM_THRESHOLD)
    )
