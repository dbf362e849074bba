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

# the key words of a filter instance / packet, in order (FilterIndex value and mask rows)
F_SADDR_HI: Final[int]
F_SADDR_LO: Final[int]
F_DADDR_HI: Final[int]
F_DADDR_LO: Final[int]
F_PROTO: Final[int]
F_SPORT: Final[int]
F_DPORT: Final[int]
F_DSFIELD: Final[int]
F_IFNAME: Final[int]
F_UID: Final[int]
F_PROJID: Final[int]
NKEY: Final[int]

def instance_hashes(
    values: NDArray[Any], group: NDArray[Any], gmask: NDArray[Any], out: NDArray[Any], /
) -> None: ...
def classify_rows(
    idx: NDArray[Any],
    cols: PacketColumns,
    if_table: NDArray[Any] | None,
    index: Any,
    default_class: int,
    class_next: NDArray[Any],
    c_packets: NDArray[Any],
    c_bytes: NDArray[Any],
    c_last: NDArray[Any],
    next: NDArray[Any],
    /,
) -> int: ...

# --- flows: flowacct flow table (src/kernels/flows.c)

# --- meters: tokenmt, tswtclmt, random source (src/kernels/meters.c)
