"""Types of the compiled kernels (C sources in src/kernels/, built at install time).

Arrays are numpy arrays of the dtype each parameter names; ``cols`` is a
``PacketColumns`` tuple. Each area of the module keeps its own section below.
"""

from collections.abc import Sequence
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

# page advice for a mapped capture, GIL released (capture_pages.c)
def advise(buf: NDArray[Any] | bytes, start: int, length: int, advice: int, /) -> None: ...
def copy_from_mapping(
    src: NDArray[Any], pos: int, dst: NDArray[Any], start: int, n: int, /
) -> None: ...

MADV_POPULATE_READ: Final[int]  # the kernel's value (Linux >= 5.14), whether or not libc has it

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
def format_addresses(hi: NDArray[Any], lo: NDArray[Any], /) -> list[str]: ...  # uint64 words
def format_addresses_utf8(
    hi: NDArray[Any], lo: NDArray[Any], offsets: NDArray[Any], /
) -> bytes: ...

# Layout in diffserv.engine.modules._flow_table; int64 pools of (rows, FLOW_NCOLS) and
# (rows, ITEM_NCOLS), a power-of-two int64 index, FLOW_NSCALARS int64 scalars and a
# (rows, FLOW_OUT_NCOLS) int64 record buffer.

FLOW_NCOLS: Final[int]
ITEM_NCOLS: Final[int]
FLOW_NSCALARS: Final[int]
FLOW_OUT_NCOLS: Final[int]

def link_free_rows(pool: NDArray[Any], start: int, link_col: int) -> int: ...
def flow_hash(shi: int, slo: int, dhi: int, dlo: int, ports: int) -> int: ...
def rebuild_index(flows: NDArray[Any], index: NDArray[Any], head: int) -> None: ...
def sweep(
    flows: NDArray[Any],
    items: NDArray[Any],
    index: NDArray[Any],
    scalars: NDArray[Any],
    out: NDArray[Any],
    when: int,
    timeout_ns: int,
) -> bool: ...
def flush_all(
    flows: NDArray[Any],
    items: NDArray[Any],
    index: NDArray[Any],
    scalars: NDArray[Any],
    out: NDArray[Any],
) -> bool: ...
def account(
    flows: NDArray[Any],
    items: NDArray[Any],
    index: NDArray[Any],
    scalars: NDArray[Any],
    out: NDArray[Any],
    timer_ns: int,
    timeout_ns: int,
    max_limit: int,
    rows: NDArray[Any],
    start: int,
    cols: PacketColumns,
    verdict: NDArray[Any],
) -> tuple[int, int]: ...

# --- meters: tokenmt, tswtclmt, random source (src/kernels/meters.c)
#
# Both kernels meter `rows` in order and write each row's colour (colour_out[row]) and
# next action id (next_out[i]); config/state/counters are the operator's own arrays,
# laid out as engine/meters/token_bucket.py, time_window.py and common.py say. A config
# or state the operator could not have built is a ValueError, a row outside the
# columns an IndexError; either leaves every array untouched.

METER_GREEN: Final[int]  # the colour column's values (diffserv.policy.model)
METER_YELLOW: Final[int]
METER_RED: Final[int]
TOKEN_CONFIG_SIZE: Final[int]
TOKEN_STATE_SIZE: Final[int]
TSW_CONFIG_SIZE: Final[int]
TSW_STATE_SIZE: Final[int]

def token_meter_kernel(
    rows: NDArray[Any],  # int64
    ts_ns: NDArray[Any],  # int64
    ip_len: NDArray[Any],  # uint32
    ip_version: NDArray[Any],  # uint8
    flags: NDArray[Any],  # uint8
    ds_byte: NDArray[Any],  # uint8
    new_ds: NDArray[Any],  # int16
    colour_map: NDArray[Any],  # uint8[64]
    config: NDArray[Any],  # int64[TOKEN_CONFIG_SIZE]
    next_ids: NDArray[Any],  # int32[3]
    state: NDArray[Any],  # int64[TOKEN_STATE_SIZE], updated
    counters: NDArray[Any],  # int64[7], updated
    colour_out: NDArray[Any],  # uint8, written at each row
    next_out: NDArray[Any],  # int32[len(rows)], written
    /,
) -> None: ...
def tsw_meter_kernel(
    rows: NDArray[Any],  # int64
    ts_ns: NDArray[Any],  # int64
    ip_len: NDArray[Any],  # uint32
    ip_version: NDArray[Any],  # uint8
    flags: NDArray[Any],  # uint8
    config: NDArray[Any],  # int64[TSW_CONFIG_SIZE]
    next_ids: NDArray[Any],  # int32[3]
    state: NDArray[Any],  # int64[TSW_STATE_SIZE], updated
    rng: NDArray[Any],  # uint64[1], the splitmix64 counter, updated
    counters: NDArray[Any],  # int64[7], updated
    colour_out: NDArray[Any],  # uint8, written at each row
    next_out: NDArray[Any],  # int32[len(rows)], written
    /,
) -> None: ...

# test hooks: the kernels' own arithmetic, one step at a time (ValueError outside the
# documented operand ranges: avg, bits ≥ 0, 1 ≤ window_ms < 2^32, elapsed < 2^64)
def tsw_next_avg_rate(avg: int, window_ms: int, bits: int, elapsed: int, /) -> int: ...
def tsw_next_avg_rate_wide(
    avg: int, window_ms: int, bits: int, elapsed: int, window_ns: int, /
) -> int: ...
def tsw_next_u64(rng: NDArray[Any], /) -> int: ...  # rng: uint64[1], advanced
def tsw_draw_inclusive(rng: NDArray[Any], upper: int, /) -> int: ...

# --- engine: the action graph's dispatch, dscpmk, dlcosmk, statistics (src/kernels/engine.c)
# Every kernel checks its arguments before it writes anything: a wrong dtype is a
# TypeError, a wrong length or value a ValueError, a row outside the columns an IndexError.

GRAPH_OUTCOME_SIZE: Final[int]  # (packets, bytes) of continue, drop, defer
DSCPMK_COUNTERS: Final[int]  # npackets, dscp_changed, dscp_unchanged, ipackets, epackets
DLCOSMK_COUNTERS: Final[int]  # npackets, ipackets
DSCP_TRANSITIONS: Final[int]  # 64 × 64: read DSCP × 64 + written DSCP
PACKET_CONDITIONS: Final[int]  # truncated, header_cut, length_from_frame

# start a batch: every action becomes ACTION_CONTINUE; the rows that enter the graph (IP
# or malformed), ascending, go to ip_rows[:n_ip] (int64, ≥ n items); the numbers of the
# first len(malformed_first) malformed packets to malformed_first (int64)
def graph_begin(
    cols: PacketColumns, ip_rows: NDArray[Any], malformed_first: NDArray[Any], /
) -> tuple[int, int, int, int, int]: ...  # n_ip, bytes, n_malformed, not_ip packets, bytes

# check action aid's verdicts nxt (int32) for rows (int64): a later action id (< len
# pending) or ACTION_CONTINUE/DEFER/DROP; if all are, write them to action (int32), add
# the rows each real action gets to pending (int64) and the packets and wire bytes
# (wire_len: uint32) of the rest to outcomes (int64[GRAPH_OUTCOME_SIZE]). Returns the
# position of the first invalid verdict (nothing written) or -1.
def graph_scatter(
    action: NDArray[Any],
    wire_len: NDArray[Any],
    rows: NDArray[Any],
    nxt: NDArray[Any],
    pending: NDArray[Any],
    outcomes: NDArray[Any],
    aid: int,
    /,
) -> int: ...

# the rows whose action (int32) is aid, ascending, into out (int64; at most len(out));
# returns how many rows there are
def graph_rows_at(action: NDArray[Any], aid: int, out: NDArray[Any], /) -> int: ...

# a run of dscpmk actions first, first + 1, ... in one pass over the rows at them:
# markers[k] = (dscp_map uint8[64], per_dscp int64[64], counters int64[DSCPMK_COUNTERS],
# next_action) of action first + k; the rows end scattered as graph_scatter leaves them
# (pending, outcomes); -1, or the first marker whose next action is invalid (nothing
# written)
def graph_markers(
    cols: PacketColumns,
    markers: tuple[tuple[NDArray[Any], NDArray[Any], NDArray[Any], int], ...],
    pending: NDArray[Any],
    outcomes: NDArray[Any],
    first: int,
    /,
) -> int: ...

# Session.process after the graph: dscp_transitions into transitions (int64[64 * 64]),
# packet_conditions into conditions (int64[PACKET_CONDITIONS]) and, when rewrite,
# mark_rows into buf, over one borrow of the columns; the frames changed (0 without
# rewrite)
def batch_end(
    buf: NDArray[Any],
    cols: PacketColumns,
    transitions: NDArray[Any],
    conditions: NDArray[Any],
    rewrite: bool,
    /,
) -> int: ...

# Dscpmk.process for distinct rows (int64): counters (int64[DSCPMK_COUNTERS]) and
# per_dscp (int64[64]) updated, new_ds (int16) written where the DSCP changes, next_out
# (int32[len(rows)]) filled with next_action
def dscpmk_rows(
    rows: NDArray[Any],
    direction: NDArray[Any],  # uint8
    ip_version: NDArray[Any],  # uint8
    ds_byte: NDArray[Any],  # uint8
    new_ds: NDArray[Any],  # int16
    dscp_map: NDArray[Any],  # uint8[64], values < 64
    per_dscp: NDArray[Any],
    counters: NDArray[Any],
    next_out: NDArray[Any],
    next_action: int,
    /,
) -> None: ...

# Dlcosmk.process: counters (int64[DLCOSMK_COUNTERS]) updated, new_pcp (int8) set to pcp
# (0..7) for outbound 802.1Q-tagged rows, next_out (int32[len(rows)]) filled
def dlcosmk_rows(
    rows: NDArray[Any],  # int64
    direction: NDArray[Any],  # uint8
    vlan_off: NDArray[Any],  # int64
    new_pcp: NDArray[Any],
    counters: NDArray[Any],
    next_out: NDArray[Any],
    pcp: int,
    next_action: int,
    untagged: int,
    /,
) -> None: ...

# statistics: add to counts (int64[DSCP_TRANSITIONS]) the (read, written) DSCP of every
# row written out (ACTION_CONTINUE, IP); add to counts (int64[PACKET_CONDITIONS]) the
# rows of flags (uint8) truncated, header-cut and length-from-frame (not malformed)
def dscp_transitions(cols: PacketColumns, counts: NDArray[Any], /) -> None: ...
def packet_conditions(flags: NDArray[Any], counts: NDArray[Any], /) -> None: ...

# --- nfqueue: the live data plane's receive and verdict path (src/kernels/nfqueue.c)

NFQ_META_WIDTH: Final[int]
NFQ_META_ID: Final[int]
NFQ_META_HOOK: Final[int]
NFQ_META_INDEV: Final[int]
NFQ_META_OUTDEV: Final[int]
NFQ_META_GID: Final[int]
NFQ_META_MARK: Final[int]
NFQ_COUNTERS: Final[int]
NFQ_BAD: Final[int]
NFQ_ERRORS: Final[int]
NFQ_LAST_ERROR: Final[int]
NFQ_OVERFLOW: Final[int]
NFQ_OTHER: Final[int]
NFQ_DROPPED: Final[int]
NFQ_REWRITTEN: Final[int]
NFQ_PRIORITY: Final[int]
NFQ_UNWRITABLE: Final[int]
NFQ_BATCHES: Final[int]
NFQ_MAX_SLOTS: Final[int]

# parse datagram k at buf[k * slot, + lengths[k]) into rows (and decode them):
# (rows, max_id, last_ts)
def nfq_parse(
    buf: NDArray[Any],
    lengths: NDArray[Any],  # int64
    slot: int,
    cols: PacketColumns,
    meta: NDArray[Any],  # int64 (rows, NFQ_META_WIDTH)
    counters: NDArray[Any],  # int64 [NFQ_COUNTERS]
    number: int,
    now_ns: int,
    floor_ns: int,
    /,
) -> tuple[int, int, int]: ...

# recvmmsg what is queued on fd into the slots of buf and parse it:
# (rows, datagrams, max_id, last_ts, errno, mapped); mapped is 1 when every row's ifindex
# was in lut (int32, kernel index -> interface table, -1 unknown) and is now its entry,
# 0 when the rows keep the kernel's indexes
def nfq_receive(
    fd: int,
    buf: NDArray[Any],
    slot: int,
    cols: PacketColumns,
    meta: NDArray[Any],
    counters: NDArray[Any],
    number: int,
    floor_ns: int,
    timeout_ms: int,
    lut: NDArray[Any],
    /,
) -> tuple[int, int, int, int, int, int]: ...

# build (and send, fd >= 0) the verdicts of rows [0, rows): (messages, bytes, errno)
def nfq_verdicts(
    fd: int,
    queue: int,
    buf: NDArray[Any],
    cols: PacketColumns,
    meta: NDArray[Any],
    out: NDArray[Any],
    counters: NDArray[Any],
    rows: int,
    max_id: int,
    /,
) -> tuple[int, int, int]: ...

# --- grouping and text (grouping.c, address_text.c)

# group_rows: ids[i] = the group of row i by 1-16 key columns of n 8-byte integers; returns
# the first row of each group (group order = order of first rows) as native int64 bytes
def group_rows(columns: Sequence[NDArray[Any]], ids: NDArray[Any], /) -> bytes: ...

# parse_addresses: address text (an Arrow string column's offsets and data) to hi/lo words,
# IPv4 v4-mapped; returns the first row that is not an address, or -1
def parse_addresses(
    offsets: NDArray[Any], data: Any, hi: NDArray[Any], lo: NDArray[Any], /
) -> int: ...
