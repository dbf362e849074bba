"""Reading the flow store back: the finished files, each checked against the schema.

Exports and tests read the store through here; a file another program (or a newer
diffserv) wrote in a shape this one does not know is refused with one line naming the
file, never half-read. Temporaries and hidden files are not part of the store.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from typing import Any, Final

import pyarrow as pa
import pyarrow.parquet as pq

from diffserv.errors import HostSystemError, InputDataError, first_line
from diffserv.flows.schema import STORE_VERSION, STORE_VERSION_KEY, FlowBatch
from diffserv.flows.store_arrow import SCHEMA, AddressError, table_to_batches
from diffserv.flows.store_layout import entry_order, is_data_dir, is_data_file

READ_BATCH_ROWS: Final = 65_536


def store_files(root: str) -> list[str]:
    """Every finished file of the store at ``root``, in partition and name order."""
    if not os.path.isdir(root):
        reason = "not a directory" if os.path.exists(root) else "No such file or directory"
        raise HostSystemError(f"cannot read the flow store {root}: {reason}")
    found: list[str] = []

    def fail(exc: OSError) -> None:
        raise HostSystemError(f"cannot read the flow store {root}: {exc.strerror or exc}")

    for directory, dirs, files in os.walk(root, onerror=fail):
        dirs[:] = sorted((d for d in dirs if is_data_dir(d)), key=entry_order)
        found.extend(os.path.join(directory, f) for f in sorted(files) if is_data_file(f))
    return found


def _problem(exc: BaseException) -> str:
    first = first_line(str(exc)) or type(exc).__name__
    return first if len(first) <= 160 else first[:157] + "..."


def _as_stored(schema: Any, read_dictionary: Sequence[str]) -> Any:
    """The schema a file stores, whatever columns are read as dictionaries."""
    if not read_dictionary:
        return schema
    fields = [
        field.with_type(field.type.value_type)
        if field.name in read_dictionary and pa.types.is_dictionary(field.type)
        else field
        for field in schema
    ]
    return pa.schema(fields, metadata=schema.metadata)


def _schema_difference(schema: Any) -> str | None:
    """What makes ``schema`` not the store's (None when it is the store's)."""
    if schema.equals(SCHEMA, check_metadata=False):
        return None
    have = {f.name: f for f in schema}
    for position, want in enumerate(SCHEMA):
        got = have.get(want.name)
        if got is None:
            return f"no column {want.name}"
        if not got.type.equals(want.type) or got.nullable != want.nullable:
            null = "" if got.nullable else " not null"
            return f"column {want.name} is {got.type}{null}, the store's is {want.type}"
        if schema.get_field_index(want.name) != position:
            return f"column {want.name} is not column {position + 1}"
    extra = [name for name in schema.names if name not in SCHEMA.names]
    return f"columns the store does not have: {', '.join(extra)}" if extra else "columns differ"


def open_store_file(path: str, *, read_dictionary: Sequence[str] = ()) -> Any:
    """The ``pyarrow.parquet.ParquetFile`` at ``path``, once it proves to be a store file.

    Refuses (InputDataError naming the file) what is not Parquet, has no store version or
    a newer one, or whose columns are not the store's. ``read_dictionary``: text columns
    to read as Arrow dictionaries (as Parquet keeps them: each distinct text once).
    """
    try:
        parquet = pq.ParquetFile(path, read_dictionary=list(read_dictionary) or None)
        schema = _as_stored(parquet.schema_arrow, read_dictionary)
    except OSError as exc:
        if exc.errno:
            raise HostSystemError(f"cannot read {path}: {os.strerror(exc.errno)}") from None
        raise InputDataError(path, f"not a valid Parquet file ({_problem(exc)})") from None
    except Exception as exc:
        raise InputDataError(path, f"not a valid Parquet file ({_problem(exc)})") from None
    raw = (schema.metadata or {}).get(STORE_VERSION_KEY)
    try:
        version = int(raw.decode()) if raw is not None else None
    except (UnicodeDecodeError, ValueError):
        version = None
    if version is None:
        key = STORE_VERSION_KEY.decode()
        raise InputDataError(path, f"not a flow store file (no {key} in its metadata)")
    if version > STORE_VERSION:
        raise InputDataError(
            path,
            f"written by a newer diffserv (store version {version}; "
            f"this one reads up to {STORE_VERSION})",
        )
    difference = _schema_difference(schema)
    if difference is not None:
        raise InputDataError(
            path, f"not the flow store's columns (version {version}): {difference}"
        )
    return parquet


def file_batches(
    path: str,
    parquet: Any,
    *,
    batch_rows: int,
    columns: Sequence[str] | None = None,
    row_group: int | None = None,
) -> Iterator[tuple[Any, int]]:
    """The Arrow record batches of an open store file (``columns``: only these; ``row_group``:
    only that one), each with the 0-based row of the file it starts at; damaged data is an
    error naming the row."""
    row = 0
    groups = None
    if row_group is not None:
        groups = [row_group]
        row = sum(parquet.metadata.row_group(i).num_rows for i in range(row_group))
    batches = parquet.iter_batches(
        batch_size=batch_rows,
        row_groups=groups,
        columns=None if columns is None else list(columns),
    )
    while True:
        try:
            batch = next(batches, None)
        except Exception as exc:
            raise InputDataError(
                f"{path}: row {row + 1}", f"damaged Parquet data ({_problem(exc)})"
            ) from None
        if batch is None:
            return
        yield batch, row
        row += batch.num_rows


def iter_store_batches(root: str, *, batch_rows: int = READ_BATCH_ROWS) -> Iterator[FlowBatch]:
    """Every record of the store as FlowBatches, a file and up to ``batch_rows`` rows at a
    time (memory follows ``batch_rows``, not the store)."""
    for path in store_files(root):
        for batch, row in file_batches(path, open_store_file(path), batch_rows=batch_rows):
            yield from flow_batches(batch, f"{path}: row", row)


def flow_batches(arrow: Any, where: str, row: int) -> Iterator[FlowBatch]:
    """:func:`table_to_batches` of Arrow rows read from ``where`` (a file's "PATH: row")
    starting at 0-based ``row``; an address that is not one is an error naming its row."""
    try:
        yield from table_to_batches(arrow)
    except AddressError as exc:
        raise InputDataError(f"{where} {row + exc.row + 1}", str(exc)) from None


def read_store(root: str) -> Any:
    """The whole store as one ``pyarrow.Table`` of the store schema (every file checked).

    The partition columns are not in it: ``date`` and ``hour`` are last_seen's (UTC).
    """
    tables = []
    for path in store_files(root):
        parquet = open_store_file(path)
        try:
            tables.append(parquet.read())
        except Exception as exc:
            raise InputDataError(path, f"damaged Parquet data ({_problem(exc)})") from None
    if not tables:
        return SCHEMA.empty_table()
    return pa.concat_tables(tables)
