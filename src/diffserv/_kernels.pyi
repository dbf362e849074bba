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
