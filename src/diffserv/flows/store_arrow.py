"""Flow batches as Arrow tables of the store's file schema, and Arrow tables back as batches.

The one mapping between :data:`schema.BATCH_COLUMNS` (numpy columns with sentinels) and
the Parquet columns every reader sees (nulls, text addresses, UTC timestamps, names
instead of codes). The writer, the reader and the nfdump importer all go through it,
so the file schema cannot drift from the batch schema.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, Final

import msgspec
import numpy as np
import pyarrow as pa
from numpy.typing import NDArray

from diffserv import _kernels
from diffserv.flows.schema import (
    BATCH_COLUMNS,
    SOURCES,
    STORE_VERSION,
    STORE_VERSION_KEY,
    Column,
    FlowBatch,
    make_batch,
)
from diffserv.records import format_addresses_utf8

TIMESTAMP: Final = pa.timestamp("ns", tz="UTC")
DICTIONARY_STRING: Final = pa.dictionary(pa.int32(), pa.string())
V4_MAPPED: Final = np.uint64(0xFFFF << 32)

# Batch columns whose store column has another name; the address halves become one
# text column named after the pair, and the codes become the names they index.
_RENAMED: Final = {
    "first_ns": "first_seen",
    "last_ns": "last_seen",
    "saddr_hi": "saddr",
    "daddr_hi": "daddr",
    "action_code": "action",
    "class_code": "class",
}
_FOLDED: Final = ("saddr_lo", "daddr_lo")  # carried by the saddr/daddr text
_CODE_NAMES: Final = {"action_code": "actions", "class_code": "classes"}
# Where a record comes from: one value per batch, a column per record in the files.
ORIGIN_COLUMNS: Final = ("source", "exporter", "domain")


class StoreColumn(msgspec.Struct, frozen=True):
    """One column of a store file and the batch column(s) it is made of."""

    name: str
    arrow: Any  # pyarrow.DataType
    nullable: bool
    batch: Column | None  # None for the origin columns
    doc: str


def _arrow_type(column: Column) -> Any:
    if column.arrow == "timestamp":
        return TIMESTAMP
    if column.name in _CODE_NAMES:
        return DICTIONARY_STRING
    return getattr(pa, column.arrow)()


_DOMAIN_DOC: Final = "IPFIX domain, v9 source id, v5 engine (type * 256 + id)"


def _layout() -> tuple[StoreColumn, ...]:
    columns = []
    for column in BATCH_COLUMNS:
        if column.name in _FOLDED:
            continue
        name = _RENAMED.get(column.name, column.name)
        doc = column.doc
        if column.name.endswith("_hi"):
            doc = doc.replace(", high 64 bits", "") + " (dotted IPv4, RFC 5952 IPv6)"
        if column.name in _CODE_NAMES:
            doc = "the flowacct action" if name == "action" else "the ipgpc class"
        nullable = column.unknown is not None
        columns.append(StoreColumn(name, _arrow_type(column), nullable, column, doc))
    columns += [
        StoreColumn(
            "source", DICTIONARY_STRING, False, None, f"what made it: {', '.join(SOURCES)}"
        ),
        StoreColumn(
            "exporter", DICTIONARY_STRING, False, None, "exporter address ('' = this host)"
        ),
        StoreColumn(
            "domain",
            pa.uint32(),
            False,
            None,
            "IPFIX domain, v9 source id, v5 engine (type * 256 + id)",
        ),
    ]
    return tuple(columns)


STORE_COLUMNS: Final = _layout()


def arrow_schema() -> Any:
    """The Arrow schema of every store file (with the store version in its metadata)."""
    return pa.schema(
        [pa.field(c.name, c.arrow, nullable=c.nullable) for c in STORE_COLUMNS],
        metadata={STORE_VERSION_KEY: str(STORE_VERSION).encode()},
    )


SCHEMA: Final = arrow_schema()


# ---------------------------------------------------------------- batch -> table


def _numeric(values: NDArray[Any], column: Column, arrow: Any) -> Any:
    """An Arrow integer column: range-checked, null where the batch holds the sentinel."""
    target = np.dtype(arrow.to_pandas_dtype())
    mask = None if column.unknown is None else values == column.unknown
    if mask is not None and mask.all():  # a column the source does not export
        return pa.nulls(values.shape[0], arrow)
    if values.dtype != target:
        info = np.iinfo(target)
        bad = (values < info.min) | (values > info.max)
        if mask is not None:
            bad &= ~mask
        if bad.any():
            value = values[np.flatnonzero(bad)[0]]
            raise ValueError(f"flow batch: column {column.name} holds {value}, outside {target}")
        values = np.where(mask, 0, values) if mask is not None else values
        values = values.astype(target)
    if mask is not None and not mask.any():
        mask = None
    return pa.array(values, type=arrow, mask=mask)


def _names(codes: NDArray[Any], names: Sequence[str], column: str) -> Any:
    """Codes into ``names`` as an Arrow dictionary column (null where the code is -1)."""
    bad = (codes < -1) | (codes >= len(names))
    if bad.any():
        code = codes[np.flatnonzero(bad)[0]]
        raise ValueError(f"flow batch: {column} {code} has no name ({len(names)} names)")
    mask = codes < 0
    indices = pa.array(np.where(mask, 0, codes).astype(np.int32), mask=mask if mask.any() else None)
    return pa.DictionaryArray.from_arrays(indices, pa.array(list(names), pa.string()))


def _constant(value: str, n: int) -> Any:
    return pa.DictionaryArray.from_arrays(
        pa.array(np.zeros(n, np.int32)), pa.array([value], pa.string())
    )


def batch_to_table(batch: FlowBatch) -> Any:
    """``batch`` as a table of :data:`SCHEMA` (ValueError for a value the schema cannot hold)."""
    n = batch.n
    cols = batch.columns
    arrays: list[Any] = []
    for store in STORE_COLUMNS:
        column = store.batch
        if column is None:
            break
        values = cols[column.name]
        if store.arrow == TIMESTAMP:
            arrays.append(pa.array(np.asarray(values, np.int64), pa.int64()).view(TIMESTAMP))
        elif column.name in ("saddr_hi", "daddr_hi"):
            lo = cols[column.name[:-3] + "_lo"]
            offsets, text = format_addresses_utf8(values, lo)
            arrays.append(pa.StringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(text)))
        elif column.name in _CODE_NAMES:
            arrays.append(_names(values, getattr(batch, _CODE_NAMES[column.name]), column.name))
        else:
            arrays.append(_numeric(values, column, store.arrow))
    if not 0 <= batch.domain <= 0xFFFFFFFF:
        raise ValueError(f"flow batch: domain {batch.domain} is outside uint32")
    arrays += [
        _constant(batch.source, n),
        _constant(batch.exporter, n),
        pa.array(np.full(n, batch.domain, np.uint32)),
    ]
    return pa.Table.from_arrays(arrays, schema=SCHEMA)


# ---------------------------------------------------------------- table -> batches


class AddressError(ValueError):
    """A text value that is not an IP address; ``row`` is its 0-based position."""

    def __init__(self, row: int, text: object) -> None:
        super().__init__(f"not an IP address: {text!r}")
        self.row = row
        self.text = text


def _parse_texts(texts: Any) -> tuple[NDArray[np.uint64], NDArray[np.uint64]]:
    """(hi, lo) of a plain Arrow string column without nulls, parsed in C: dotted IPv4
    strictly (four decimal octets, no leading zeros), text with a colon as IPv6."""
    if not (pa.types.is_string(texts.type) or pa.types.is_large_string(texts.type)):
        texts = texts.cast(pa.string())
    n = len(texts)
    hi = np.empty(n, np.uint64)
    lo = np.empty(n, np.uint64)
    if n == 0:
        return hi, lo
    _, offsets_buffer, data = texts.buffers()
    wide = np.int64 if pa.types.is_large_string(texts.type) else np.int32
    offsets = np.frombuffer(offsets_buffer, wide)[texts.offset : texts.offset + n + 1]
    bad = _kernels.parse_addresses(offsets, b"" if data is None else data, hi, lo)
    if bad >= 0:
        raise AddressError(bad, texts[bad].as_py())
    return hi, lo


def addresses_from_text(values: Any) -> tuple[NDArray[np.uint64], NDArray[np.uint64]]:
    """(hi, lo) uint64 halves of an Arrow column of address text (IPv4 as v4-mapped).

    Raises :class:`AddressError` naming the first row that is null or not an address.
    A dictionary column is parsed once per distinct text.
    """
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    if values.null_count:
        row = int(np.flatnonzero(values.is_null().to_numpy(zero_copy_only=False))[0])
        raise AddressError(row, None)
    if not pa.types.is_dictionary(values.type):
        return _parse_texts(values)
    index = values.indices.to_numpy(zero_copy_only=False)
    try:
        hi, lo = _parse_texts(values.dictionary)
    except AddressError as exc:
        rows = np.flatnonzero(index == exc.row)
        if not len(rows):  # a bad text no row uses
            hi, lo = _parse_used(values.dictionary, index)
            return hi[index], lo[index]
        raise AddressError(int(rows[0]), exc.text) from None
    return hi[index], lo[index]


def _parse_used(dictionary: Any, index: NDArray[Any]) -> tuple[NDArray[Any], NDArray[Any]]:
    """A dictionary's texts parsed where rows use them (unused ones may be anything)."""
    used = np.unique(index)
    hi = np.zeros(len(dictionary), np.uint64)
    lo = np.zeros(len(dictionary), np.uint64)
    try:
        hi[used], lo[used] = _parse_texts(dictionary.take(pa.array(used)))
    except AddressError as exc:
        raise AddressError(int(np.flatnonzero(index == used[exc.row])[0]), exc.text) from None
    return hi, lo


def _dictionary_parts(values: Any) -> tuple[NDArray[np.int64], list[Any]]:
    """Indices (-1 where null) and dictionary values of a dictionary (or plain) column."""
    import pyarrow.compute as pc  # noqa: PLC0415 (70 ms at start-up)

    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks() if values.num_chunks != 1 else values.chunk(0)
    if not pa.types.is_dictionary(values.type):
        values = pc.dictionary_encode(values)
    indices = pc.fill_null(values.indices, -1).to_numpy().astype(np.int64)
    return indices, values.dictionary.to_pylist()


def _integers(values: Any, column: Column) -> NDArray[Any]:
    """A store integer column as the batch column: its dtype, the sentinel for null."""
    import pyarrow.compute as pc  # noqa: PLC0415 (70 ms at start-up)

    filled = pc.fill_null(values, 0) if values.null_count else values
    out = np.asarray(filled.to_numpy(zero_copy_only=False)).astype(column.dtype)
    if values.null_count:
        assert column.unknown is not None
        nulls = values.is_null()
        out[np.asarray(nulls.to_numpy(zero_copy_only=False))] = column.unknown
    return out


def _compact(
    codes: NDArray[np.int64], names: list[Any]
) -> tuple[NDArray[np.int32], tuple[str, ...]]:
    """Codes renumbered over only the names they use (so a batch names no unused action)."""
    used = np.unique(codes[codes >= 0])
    remap = np.full(len(names) + 1, -1, np.int64)
    remap[used] = np.arange(len(used))
    return remap[codes].astype(np.int32), tuple(str(names[i]) for i in used.tolist())


def table_to_batches(table: Any) -> Iterator[FlowBatch]:
    """The rows of a store table (or record batch) as FlowBatches, one per origin.

    Rows keep their order within each (source, exporter, domain); origins come in the
    order of their first row. Raises :class:`AddressError` for an address column that
    does not hold addresses (the schema check leaves only that to the values).

    A table of only some of the store's columns (a reader that needs a few, as the
    audit does) gives batches whose other columns are unknown (a missing last time is
    the first time); without the origin columns its rows are one batch of no named
    origin.
    """
    n = table.num_rows
    if n == 0:
        return
    column = table.column
    present = set(table.schema.names)
    given: dict[str, NDArray[Any]] = {}
    code_parts: dict[str, tuple[NDArray[np.int64], list[Any]]] = {}
    for store in STORE_COLUMNS:
        batch_column = store.batch
        if batch_column is None:
            break
        if store.name not in present:
            continue
        values = column(store.name)
        if isinstance(values, pa.ChunkedArray):
            values = values.combine_chunks()
        name = batch_column.name
        if store.arrow == TIMESTAMP:
            given[name] = values.cast(pa.int64()).to_numpy(zero_copy_only=False)
        elif name in ("saddr_hi", "daddr_hi"):
            given[name], given[name[:-3] + "_lo"] = addresses_from_text(values)
        elif name in _CODE_NAMES:
            code_parts[name] = _dictionary_parts(values)
        else:
            given[name] = _integers(values, batch_column)
    if "last_ns" not in given and "first_ns" in given:
        given["last_ns"] = given["first_ns"]
    if not present.issuperset(ORIGIN_COLUMNS):
        code_names: dict[str, tuple[str, ...]] = {}
        for code_column, (codes, dictionary) in code_parts.items():
            given[code_column], code_names[code_column] = _compact(codes, dictionary)
        yield make_batch(
            "", "", 0, n, given,
            actions=code_names.get("action_code", ()), classes=code_names.get("class_code", ()),
        )  # fmt: skip
        return
    source, sources = _dictionary_parts(column("source"))
    exporter, exporters = _dictionary_parts(column("exporter"))
    domain = _integers(column("domain"), Column("domain", "int64", "uint32", None, ""))
    keys = np.stack([source, exporter, domain], axis=1)
    unique, first, inverse = np.unique(keys, axis=0, return_index=True, return_inverse=True)
    inverse = inverse.reshape(-1)
    for group in np.argsort(first, kind="stable").tolist():
        rows = None if len(unique) == 1 else np.flatnonzero(inverse == group)
        part = {k: v if rows is None else v[rows] for k, v in given.items()}
        names: dict[str, tuple[str, ...]] = {}
        for code_column, (codes, dictionary) in code_parts.items():
            part[code_column], names[code_column] = _compact(
                codes if rows is None else codes[rows], dictionary
            )
        s, e, d = unique[group].tolist()
        yield make_batch(
            str(sources[s]),
            str(exporters[e]),
            int(d),
            n if rows is None else len(rows),
            part,
            actions=names["action_code"],
            classes=names["class_code"],
        )
