"""The packet column table: every per-packet field a batch carries, declared once.

A :class:`PacketBatch` is a run of packets held as columns, the unit every operator works
on. The columns are the fields of :class:`PacketColumns`, each declared on one line with
its dtype, its neutral value, who fills it and what it means; batches are allocated from
that declaration, and the compiled kernels take the whole :class:`PacketColumns` tuple as
one argument (they see it as a C struct generated from this table: ``src/kernels/``).
Adding a column, such as the NFQUEUE packet id, is one line here, the regenerated header,
plus the code that fills it.

This module sits below ``packet/`` (which decodes into the columns), ``capture/`` and the
live sources (which frame packets into them) and ``engine/`` (which writes the result
columns). Packet bytes stay in the source's own buffer: ``buf`` plus per-packet offsets,
so rewriting happens in place and every byte an action does not touch is carried through.
"""

import enum
import sys
from collections.abc import Iterable
from typing import Annotated, Any, Final, NamedTuple, get_args, get_origin

import msgspec
import numpy as np
from numpy.typing import NDArray

# ip_version column values
NOT_IP: Final = 0
IPV4: Final = 4
IPV6: Final = 6

# flags column bits
FLAG_MALFORMED: Final = 0x01  # header lengths inconsistent/truncated: passes unmodified
FLAG_FRAGMENT: Final = 0x02  # IPv4 non-first fragment or MF set, or IPv6 fragment header
FLAG_NO_PORTS: Final = 0x04  # ports not available (truncated L4, fragment, other protocol)
FLAG_TRUNCATED: Final = 0x08  # capture snap length cut the packet (caplen < wire length)
FLAG_LENGTH_FROM_FRAME: Final = 0x10  # IP length field 0 (offload): ip_len from the frame
FLAG_HEADER_CUT: Final = 0x20  # snap length cut inside the IP header: only the DS byte known

# Verdicts (action column at the end of the graph): ids of the virtual actions (ipp.h).
ACTION_CONTINUE: Final = -2
ACTION_DEFER: Final = -3
ACTION_DROP: Final = -4

UNKNOWN_ID: Final = -1  # uid/projid not known (always so in captures)
NO_CLASS: Final = -1  # class_id before ipgpc has classified the packet
UNCHANGED: Final = -1  # new_ds / new_pcp: leave the packet's field as it is


class Filler(enum.Enum):
    """Who writes a column."""

    SOURCE = "source"  # the packet source: framing (capture record, NFQUEUE message)
    DECODE = "decode"  # the L2-L4 decoder, from the packet bytes
    ENGINE = "engine"  # the actions of the policy: results


class Column(msgspec.Struct, frozen=True):
    """One line of the table: a column's neutral value, its filler and its meaning."""

    default: int
    filled_by: Filler
    doc: str
    name: str = ""
    dtype: type[np.generic] = np.int64


_S, _D, _E = Filler.SOURCE, Filler.DECODE, Filler.ENGINE


class PacketColumns(NamedTuple):
    """The columns of a batch, all of the same length. This class *is* the table."""

    number: Annotated[NDArray[np.int64], Column(0, _S, "1-based packet number in the input")]
    rec_off: Annotated[NDArray[np.int64], Column(0, _S, "offset in buf of the whole record")]
    rec_len: Annotated[NDArray[np.int64], Column(0, _S, "length in buf of that record")]
    ts_ns: Annotated[NDArray[np.int64], Column(0, _S, "time stamp, ns since the epoch")]
    wire_len: Annotated[NDArray[np.uint32], Column(0, _S, "length on the wire")]
    cap_len: Annotated[NDArray[np.uint32], Column(0, _S, "bytes of the packet present in buf")]
    pkt_off: Annotated[NDArray[np.int64], Column(0, _S, "offset in buf of the first L2 byte")]
    ifindex: Annotated[NDArray[np.int32], Column(0, _S, "index into interfaces, 0 unknown")]
    direction: Annotated[NDArray[np.uint8], Column(0, _S, "callout position, 0 unknown")]
    uid: Annotated[NDArray[np.int32], Column(UNKNOWN_ID, _S, "sending user, -1 unknown")]
    projid: Annotated[NDArray[np.int32], Column(UNKNOWN_ID, _S, "project id, -1 unknown")]
    l3_off: Annotated[NDArray[np.int64], Column(-1, _D, "offset of the IP header, -1 not IP")]
    vlan_off: Annotated[NDArray[np.int64], Column(-1, _D, "offset of the outer 802.1Q TCI")]
    ip_version: Annotated[NDArray[np.uint8], Column(NOT_IP, _D, "0 (not IP), 4 or 6")]
    ds_byte: Annotated[NDArray[np.uint8], Column(0, _D, "the whole DS byte as received")]
    protocol: Annotated[NDArray[np.uint8], Column(0, _D, "transport protocol after ext hdrs")]
    saddr_hi: Annotated[NDArray[np.uint64], Column(0, _D, "source address, high 64 bits")]
    saddr_lo: Annotated[NDArray[np.uint64], Column(0, _D, "source address, low 64 (v4-mapped)")]
    daddr_hi: Annotated[NDArray[np.uint64], Column(0, _D, "destination address, high 64 bits")]
    daddr_lo: Annotated[NDArray[np.uint64], Column(0, _D, "destination address, low 64 bits")]
    sport: Annotated[NDArray[np.uint16], Column(0, _D, "source port, 0 if none")]
    dport: Annotated[NDArray[np.uint16], Column(0, _D, "destination port, 0 if none")]
    ip_len: Annotated[NDArray[np.uint32], Column(0, _D, "IP datagram length")]
    flags: Annotated[NDArray[np.uint8], Column(0, _D, "FLAG_* bits")]
    class_id: Annotated[NDArray[np.int32], Column(NO_CLASS, _E, "ipgpc class index, -1 none")]
    action: Annotated[NDArray[np.int32], Column(0, _E, "next action id; at the end a verdict")]
    new_ds: Annotated[NDArray[np.int16], Column(UNCHANGED, _E, "DS byte to write, -1 keep")]
    new_pcp: Annotated[NDArray[np.int8], Column(UNCHANGED, _E, "802.1Q PCP to write, -1 keep")]
    colour: Annotated[NDArray[np.uint8], Column(0, _E, "last meter colour (1 g, 2 y, 4 r), 0")]


def _dtype_of(array_hint: Any) -> type[np.generic]:
    """``np.int64`` from the hint ``NDArray[np.int64]``."""
    dtype_hint = get_args(array_hint)[-1]
    scalar: type[np.generic] = get_args(dtype_hint)[0]
    return scalar


def _table() -> tuple[Column, ...]:
    # the annotations are objects, not strings (no postponed evaluation in this module):
    # read as they are, without get_type_hints evaluating 29 strings at every start-up
    hints: dict[str, Any] = PacketColumns.__annotations__
    table = []
    for name in PacketColumns._fields:
        hint = hints[name]
        assert get_origin(hint) is Annotated, name
        array_hint, column = get_args(hint)[:2]
        table.append(
            Column(column.default, column.filled_by, column.doc, name, _dtype_of(array_hint))
        )
    return tuple(table)


COLUMNS: Final[tuple[Column, ...]] = _table()
COLUMN: Final[dict[str, Column]] = {column.name: column for column in COLUMNS}


def columns_of(arrays: Iterable[NDArray[Any]]) -> PacketColumns:
    """Columns from arrays given in table order (each of the column's dtype)."""
    return PacketColumns(*arrays)


def allocate_columns(n: int, *, initialise: bool = True) -> PacketColumns:
    """Columns for ``n`` packets at their neutral values (uninitialised if not ``initialise``).

    A packet source that writes every row it uses before reading it (a capture reader's
    reusable capacity) may skip the fill, and then gets its memory from the pool.
    """
    if not initialise:
        return _POOL.columns(n)
    return columns_of(np.full(n, column.default, column.dtype) for column in COLUMNS)


_ROW_BYTES: Final = sum(np.dtype(column.dtype).itemsize for column in COLUMNS)
# widest first, so every column of a block is aligned to its item size
_BLOCK_ORDER: Final = sorted(
    range(len(COLUMNS)), key=lambda i: -np.dtype(COLUMNS[i].dtype).itemsize
)


class _ColumnPool:
    """Column memory reused from one batch to a later one, once nothing holds the first.

    Fresh columns for every batch cost more than scanning and decoding it: the 8.7 MB a
    65 536-row batch needs is new memory the kernel must fault in page by page. A block
    is handed out again only when no array of the batch made from it is alive any more
    (its reference count is back to the pool's own), so a batch someone keeps — a test
    collecting batches, a writer still flushing one — is never overwritten; it merely
    costs a new block.
    """

    def __init__(self, keep: int) -> None:
        self._keep = keep
        self._blocks: list[NDArray[np.uint8]] = []

    def columns(self, n: int) -> PacketColumns:
        block = self._free_block(n)
        arrays: list[NDArray[Any]] = [np.empty(0)] * len(COLUMNS)
        offset = 0
        for i in _BLOCK_ORDER:
            dtype = np.dtype(COLUMNS[i].dtype)
            size = n * dtype.itemsize
            arrays[i] = block[offset : offset + size].view(dtype)
            offset += size
        return columns_of(arrays)

    def _free_block(self, n: int) -> NDArray[np.uint8]:
        size = n * _ROW_BYTES
        for block in self._blocks:
            # referenced by the list, this loop and getrefcount's argument: nobody else
            if block.shape[0] == size and sys.getrefcount(block) == _FREE_REFS:
                return block
        # blocks of another size nobody uses are dropped: the new size is the one in use
        self._blocks = [b for b in self._blocks if sys.getrefcount(b) > _FREE_REFS]
        block = np.empty(size, np.uint8)
        if len(self._blocks) < self._keep:
            self._blocks.append(block)
        return block


_FREE_REFS: Final = 3
_POOL: Final = _ColumnPool(keep=4)


def reset_columns(columns: PacketColumns, filled_by: Filler) -> None:
    """Put every column one filler writes back to its neutral value."""
    arrays: tuple[NDArray[Any], ...] = columns
    for column, array in zip(COLUMNS, arrays, strict=True):
        if column.filled_by is filled_by:
            array.fill(column.default)


class PacketBatch(msgspec.Struct):
    """``n`` packets: their columns, the buffer their bytes live in, and their interfaces."""

    buf: NDArray[np.uint8]
    cols: PacketColumns
    # names of the interfaces ifindex refers to; index 0 is "" (unknown)
    interfaces: tuple[str, ...] = ("",)
    # [span_start, span_end) of buf belongs to this batch, in input order: packet
    # records plus any non-packet blocks between them, which a writer keeps as they are
    span_start: int = 0
    span_end: int = 0

    @property
    def n(self) -> int:
        return int(self.cols.number.shape[0])

    @classmethod
    def allocate(cls, buf: NDArray[np.uint8], n: int) -> "PacketBatch":
        """A batch of ``n`` packets over ``buf`` with every column at its neutral value."""
        return cls(buf=buf, cols=allocate_columns(n))

    def head(self, n: int) -> "PacketBatch":
        """The first ``n`` rows (views of the same arrays) over the same buffer."""
        return PacketBatch(
            buf=self.buf,
            cols=columns_of(array[:n] for array in self.cols),
            interfaces=self.interfaces,
            span_start=self.span_start,
            span_end=self.span_end,
        )

    def priorities(self, rows: Any) -> NDArray[np.int16]:
        """The 802.1Q priority (PCP) of each of ``rows`` as received, from the outer tag;
        -1 for an untagged frame."""
        at = self.cols.vlan_off[rows]
        tagged = at >= 0
        out = np.full(at.shape[0], -1, np.int16)
        if tagged.any():
            out[tagged] = np.frombuffer(self.buf, np.uint8)[at[tagged]] >> 5
        return out

    def current_ds(self) -> NDArray[np.uint8]:
        """The DS byte as earlier actions left it (what later actions see)."""
        cols = self.cols
        return np.where(cols.new_ds >= 0, cols.new_ds, cols.ds_byte).astype(np.uint8)
