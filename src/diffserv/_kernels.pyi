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

# decode (packet_decode.c): fill the decoded columns of every row from its frame in buf
def decode_rows(buf: NDArray[Any], linktype: NDArray[Any], cols: PacketColumns) -> None: ...

# rewrite (packet_rewrite.c): write new_ds/new_pcp in place; frames changed
def mark_rows(buf: NDArray[Any], cols: PacketColumns) -> int: ...
def fold16(total: int) -> int: ...
def incremental_checksum(old_checksum: int, old_word: int, new_word: int) -> int: ...
def ipv4_header_checksum(buf: NDArray[Any] | bytes, off: int, header_len: int) -> int: ...

# capture walkers (capture_scan.c)
def scan_pcap(
    buf: NDArray[Any],
    pos: int,
    end: int,
    big: bool,
    nanosecond: bool,
    max_record: int,
    linktype: int,
    row: int,
    capacity: int,
    cols: PacketColumns,
    /,
) -> tuple[int, int, int]: ...
def scan_idbs(
    buf: NDArray[Any], pos: int, end: int, big: bool, out: NDArray[Any], /
) -> tuple[int, int, int]: ...
def scan_pcapng(
    buf: NDArray[Any],
    pos: int,
    end: int,
    big: bool,
    if_linktype: NDArray[Any],
    if_snaplen: NDArray[Any],
    if_ifindex: NDArray[Any],
    if_ts: NDArray[Any],
    last_ts: int,
    row: int,
    capacity: int,
    cols: PacketColumns,
    /,
) -> tuple[int, int, int, int]: ...
def compact_records(
    buf: NDArray[Any],
    span_start: int,
    span_end: int,
    rec_off: NDArray[Any],
    rec_len: NDArray[Any],
    drop: NDArray[Any],
    out: NDArray[Any],
    /,
) -> int: ...

SCAN_MORE: Final[int]
SCAN_BAD: Final[int]
SCAN_CONTROL: Final[int]
SCAN_BAD_IFACE: Final[int]
SCAN_BAD_TIME: Final[int]
IDB_DONE: Final[int]
IDB_INCOMPLETE: Final[int]
IDB_BAD: Final[int]
IDB_SHORT: Final[int]
IDB_FULL: Final[int]
IDB_POS: Final[int]
IDB_LINKTYPE: Final[int]
IDB_SNAPLEN: Final[int]
IDB_NAME_AT: Final[int]
IDB_NAME_LEN: Final[int]
IDB_RESOL: Final[int]
IDB_OFFSET_AT: Final[int]
IDB_COLUMNS: Final[int]
BT_SHB: Final[int]
BT_IDB: Final[int]
BT_OPB: Final[int]
BT_SPB: Final[int]
BT_EPB: Final[int]
BYTE_ORDER_MAGIC: Final[int]
OPT_ENDOFOPT: Final[int]
OPT_IF_NAME: Final[int]
OPT_IF_TSRESOL: Final[int]
OPT_IF_TSOFFSET: Final[int]
OPT_EPB_FLAGS: Final[int]
MAX_BLOCK: Final[int]
MAX_SECONDS: Final[int]
OFFSET_CLAMP: Final[int]
MAX_DECIMAL_RESOLUTION: Final[int]
MAX_BINARY_RESOLUTION: Final[int]

# --- classify: ipgpc (src/kernels/classify.c)

# --- flows: flowacct flow table (src/kernels/flows.c)

# --- meters: tokenmt, tswtclmt, random source (src/kernels/meters.c)
