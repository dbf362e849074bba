"""Streaming flow-record files: JSON Lines, CSV or Parquet, chosen by the file extension.

flowacct hands over expired items as they expire; each writer puts them on disk at
once (text files are flushed per batch, Parquet gets small row groups), so a run
stopped by Ctrl-C or an error still leaves a complete, valid file once ``close()``
runs — the engine closes the writer in a ``finally``.
"""

from __future__ import annotations

import csv
import io
import json
import os
import sys
from pathlib import Path
from types import TracebackType
from typing import Any, Final, Protocol, TextIO

import numpy as np

from diffserv.errors import HostSystemError, UsageError
from diffserv.flows.records import (
    GROUP_EXTENDED,
    GROUPS,
    FlowRecords,
    fields_of,
    format_addresses,
    iso_times,
)

EXTENSIONS: Final = (".jsonl", ".csv", ".parquet")
# Parquet rows are buffered up to this many before a row group is written.
PARQUET_ROW_GROUP: Final = 4096


class RecordSink(Protocol):
    """What flowacct needs from ``EngineOptions.flow_sink``."""

    def write(self, records: FlowRecords) -> None: ...


def record_columns(records: FlowRecords, group: str) -> dict[str, list[Any]]:
    """The records as named Python columns of ``group`` (None where unknown)."""
    cols: dict[str, list[Any]] = {
        "saddr": format_addresses(records.saddr_hi, records.saddr_lo),
        "daddr": format_addresses(records.daddr_hi, records.daddr_lo),
        "sport": records.sport.tolist(),
        "dport": records.dport.tolist(),
        "protocol": records.protocol.tolist(),
        "npackets": records.npackets.tolist(),
        "nbytes": records.nbytes.tolist(),
        "action": [records.action] * records.n,
    }
    if group == GROUP_EXTENDED:
        ds = records.dsfield.astype(np.int64)
        cols["dsfield"] = ds.tolist()
        cols["dscp"] = (ds >> 2).tolist()
        cols["ecn"] = (ds & 3).tolist()
        cols["first_seen"] = records.first_ns.tolist()
        cols["last_seen"] = records.last_ns.tolist()
        cols["projid"] = [None if v < 0 else v for v in records.projid.tolist()]
        cols["uid"] = [None if v < 0 else v for v in records.uid.tolist()]
    return cols


class RecordWriter:
    """Base of the three writers: group, counting, context manager, idempotent close."""

    def __init__(self, path: str, group: str) -> None:
        self.path = path
        self.group = group
        self.fields = fields_of(group)
        self.records_written = 0
        self.closed = False

    def write(self, records: FlowRecords) -> None:
        """Append ``records`` to the file (a no-op for an empty batch)."""
        if self.closed:
            raise ValueError(f"{self.path}: record writer is closed")
        if records.n == 0:
            return
        try:
            self._write(records)
        except OSError as exc:
            raise HostSystemError(f"cannot write {self.path}: {exc.strerror or exc}") from None
        self.records_written += records.n

    def close(self) -> None:
        """Finish the file (Parquet footer); safe to call more than once."""
        if self.closed:
            return
        self.closed = True
        try:
            self._close()
        except OSError as exc:
            raise HostSystemError(f"cannot write {self.path}: {exc.strerror or exc}") from None

    def __enter__(self) -> RecordWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _write(self, records: FlowRecords) -> None:
        raise NotImplementedError

    def _close(self) -> None:
        raise NotImplementedError


def _open_text(path: str) -> TextIO:
    try:
        return open(path, "w", encoding="utf-8", newline="")
    except OSError as exc:
        raise HostSystemError(f"cannot create {path}: {exc.strerror}") from exc


class JsonLinesWriter(RecordWriter):
    """One JSON object per record and line; times as ISO-8601 UTC text with ns.

    The path ``-`` writes to standard output (left open at close).
    """

    def __init__(self, path: str, group: str) -> None:
        super().__init__(path, group)
        self._stdout = path == "-"
        self._file = sys.stdout if self._stdout else _open_text(path)

    def _write(self, records: FlowRecords) -> None:
        cols = record_columns(records, self.group)
        _times_to_text(cols)
        out = io.StringIO()
        names = self.fields
        for row in zip(*(cols[name] for name in names), strict=True):
            out.write(json.dumps(dict(zip(names, row, strict=True)), separators=(",", ":")))
            out.write("\n")
        self._file.write(out.getvalue())
        self._file.flush()

    def _close(self) -> None:
        if self._stdout:
            self._file.flush()
        else:
            self._file.close()


class CsvWriter(RecordWriter):
    """RFC 4180 CSV with a header row; unknown projid/uid are empty cells."""

    def __init__(self, path: str, group: str) -> None:
        super().__init__(path, group)
        self._file = _open_text(path)
        self._csv = csv.writer(self._file, lineterminator="\n")
        self._csv.writerow(self.fields)
        self._file.flush()

    def _write(self, records: FlowRecords) -> None:
        cols = record_columns(records, self.group)
        _times_to_text(cols)
        self._csv.writerows(zip(*(cols[name] for name in self.fields), strict=True))
        self._file.flush()

    def _close(self) -> None:
        self._file.close()


def parquet_schema(group: str) -> Any:
    """The Arrow schema of a record file of ``group``."""
    import pyarrow as pa

    types: dict[str, Any] = {
        "saddr": pa.string(),
        "daddr": pa.string(),
        "sport": pa.uint16(),
        "dport": pa.uint16(),
        "protocol": pa.uint8(),
        "npackets": pa.uint64(),
        "nbytes": pa.uint64(),
        "action": pa.string(),
        "dsfield": pa.uint8(),
        "dscp": pa.uint8(),
        "ecn": pa.uint8(),
        "first_seen": pa.timestamp("ns", tz="UTC"),
        "last_seen": pa.timestamp("ns", tz="UTC"),
        "projid": pa.int32(),
        "uid": pa.int32(),
    }
    return pa.schema([(name, types[name]) for name in fields_of(group)])


class ParquetWriter(RecordWriter):
    """Parquet with small row groups; the footer is written by ``close()``."""

    def __init__(self, path: str, group: str) -> None:
        super().__init__(path, group)
        import pyarrow.parquet as pq

        self._schema = parquet_schema(group)
        try:
            self._writer = pq.ParquetWriter(path, self._schema, compression="zstd")
        except OSError as exc:
            raise HostSystemError(f"cannot create {path}: {exc}") from exc
        self._pending: list[dict[str, list[Any]]] = []
        self._pending_rows = 0

    def _write(self, records: FlowRecords) -> None:
        self._pending.append(record_columns(records, self.group))
        self._pending_rows += records.n
        if self._pending_rows >= PARQUET_ROW_GROUP:
            self._flush()

    def _flush(self) -> None:
        import pyarrow as pa

        if not self._pending_rows:
            return
        merged = {name: [v for part in self._pending for v in part[name]] for name in self.fields}
        table = pa.Table.from_pydict(merged, schema=self._schema)
        self._writer.write_table(table, row_group_size=max(1, table.num_rows))
        self._pending = []
        self._pending_rows = 0

    def _close(self) -> None:
        try:
            self._flush()
        finally:
            self._writer.close()


def _times_to_text(cols: dict[str, list[Any]]) -> None:
    for name in ("first_seen", "last_seen"):
        if name in cols:
            cols[name] = iso_times(np.asarray(cols[name], dtype=np.int64))


def open_record_writer(path: str, group: str) -> RecordWriter:
    """A writer for ``path``, format by extension (.jsonl/.csv/.parquet), acctadm ``group``.

    ``-`` writes JSON Lines to standard output.

    Raises UsageError for an unknown extension or group, HostSystemError when the
    file cannot be created.
    """
    if group not in GROUPS:
        raise UsageError(f"unknown accounting group {group!r} (choose basic or extended)")
    ext = os.path.splitext(path)[1].lower()
    if ext == ".jsonl" or path == "-":
        return JsonLinesWriter(path, group)
    if ext == ".csv":
        return CsvWriter(path, group)
    if ext == ".parquet":
        return ParquetWriter(path, group)
    raise UsageError(
        f"{Path(path).name}: unknown flow record format {ext or '(no extension)'!r}; "
        "use .jsonl, .csv or .parquet"
    )
