"""Streaming flow-record files: JSON Lines, CSV or Parquet, chosen by the file extension.

flowacct hands over expired items as they expire; each writer puts them on disk at
once (text records in one unbuffered write per batch, Parquet in small row groups),
so a run stopped by Ctrl-C leaves a complete, valid file once ``close()`` runs — the
engine closes the writer in a ``finally``. A write error keeps what can be kept (whole
text records; nothing of a Parquet file) and says so in its HostSystemError."""

from __future__ import annotations

import bisect
import contextlib
import csv
import errno
import io
import itertools
import json
import os
import stat
import sys
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, Final, NoReturn

import numpy as np

from diffserv.errors import HostSystemError, UsageError
from diffserv.records import (
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


def _reason(exc: OSError) -> str:
    """The operating system's words for ``exc`` ("No space left on device")."""
    if exc.errno:
        return os.strerror(exc.errno)
    text = (exc.strerror or str(exc) or type(exc).__name__).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _is_regular(path: str) -> bool:
    try:
        return stat.S_ISREG(os.stat(path).st_mode)
    except OSError:
        return False


class RecordWriter:
    """Base of the three writers: group, counting, context manager, idempotent close.

    A write error (disk full, I/O error) raises HostSystemError naming the file and
    what was kept of it, and sets ``failed``; the writer then refuses further
    records and its ``close()`` does nothing more.
    """

    def __init__(self, path: str, group: str) -> None:
        self.path = path
        self.group = group
        self.fields = fields_of(group)
        self.records_written = 0
        self.closed = False
        self.failed = False
        self.removed = False  # abort() removed a file that got no record
        self._failure = ""
        self._existed = os.path.lexists(path)

    def write(self, records: FlowRecords) -> None:
        """Append ``records`` to the file (a no-op for an empty batch)."""
        if self.closed:
            raise ValueError(f"{self.path}: record writer is closed")
        if self.failed:
            raise HostSystemError(self._failure)
        if records.n == 0:
            return
        try:
            self._write(records)
        except OSError as exc:
            self._fail(exc)

    def close(self) -> None:
        """Finish the file (Parquet footer); safe to call more than once."""
        if self.closed:
            return
        self.closed = True
        if self.failed:
            self._abandon()
            return
        try:
            self._close()
        except OSError as exc:
            self._fail(exc)

    def abort(self) -> None:
        """The run failed or was interrupted: close, keeping every complete record.

        Records of flows that ended before the failure are real, so they stay; a file
        this writer created that got no record at all is not left behind.
        """
        with contextlib.suppress(HostSystemError):  # a failed writer has said so itself
            self.close()
        if self.records_written or self._existed or self.path == "-":
            return
        with contextlib.suppress(OSError):
            os.unlink(self.path)
        self.removed = True

    def __enter__(self) -> RecordWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _fail(self, exc: OSError) -> NoReturn:
        """Leave the file valid (or remove it), remember and raise the failure."""
        self.failed = True
        kept = self._abandon()
        name = "standard output" if self.path == "-" else self.path
        self._failure = f"cannot write {name}: {_reason(exc)}; {kept}"
        raise HostSystemError(self._failure) from None

    def _write(self, records: FlowRecords) -> None:
        raise NotImplementedError

    def _close(self) -> None:
        raise NotImplementedError

    def _abandon(self) -> str:
        """Release the file after a failure; says what it keeps."""
        raise NotImplementedError


class _TextWriter(RecordWriter):
    """A text record file written whole records at a time, unbuffered.

    A write that stops part-way (disk full, Ctrl-C) is cut back to the end of the
    last complete record, so the file always holds whole lines only.
    """

    def __init__(self, path: str, group: str) -> None:
        super().__init__(path, group)
        self._stdout = path == "-"
        self._fd = -1
        self._regular = False
        self._size = 0  # bytes of complete records (and header) in the file
        if not self._stdout:
            try:
                flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC
                self._fd = os.open(path, flags, 0o666)
            except OSError as exc:
                raise HostSystemError(f"cannot create {path}: {_reason(exc)}") from None
            self._regular = stat.S_ISREG(os.fstat(self._fd).st_mode)

    def _emit(self, lines: list[bytes], counts_as_records: bool = True) -> None:
        """Write ``lines`` (each one whole record); on any failure keep the complete ones."""
        if self._stdout:
            sys.stdout.write(b"".join(lines).decode("utf-8"))
            sys.stdout.flush()
            if counts_as_records:
                self.records_written += len(lines)
            return
        chunk = b"".join(lines)
        view = memoryview(chunk)
        done = 0
        try:
            while done < len(chunk):
                written = os.write(self._fd, view[done:])
                if written <= 0:  # never for a file; do not spin on a strange device
                    raise OSError(errno.EIO, os.strerror(errno.EIO))
                done += written
        except BaseException:
            ends = list(itertools.accumulate(len(line) for line in lines))
            whole = bisect.bisect_right(ends, done)
            keep = ends[whole - 1] if whole else 0
            if keep < done and self._regular:
                with contextlib.suppress(OSError):
                    os.ftruncate(self._fd, self._size + keep)
                    os.lseek(self._fd, self._size + keep, os.SEEK_SET)
            self._size += keep
            if counts_as_records:
                self.records_written += whole
            raise
        self._size += len(chunk)
        if counts_as_records:
            self.records_written += len(lines)

    def _close(self) -> None:
        if self._stdout:
            sys.stdout.flush()
        else:
            fd, self._fd = self._fd, -1
            os.close(fd)

    def _abandon(self) -> str:
        if not self._stdout and self._fd >= 0:
            fd, self._fd = self._fd, -1
            with contextlib.suppress(OSError):
                os.close(fd)
        return f"kept the {self.records_written} complete records written before"


class JsonLinesWriter(_TextWriter):
    """One JSON object per record and line; times as ISO-8601 UTC text with ns.

    The path ``-`` writes to standard output (left open at close).
    """

    def _write(self, records: FlowRecords) -> None:
        cols = record_columns(records, self.group)
        _times_to_text(cols)
        names = self.fields
        self._emit(
            [
                json.dumps(dict(zip(names, row, strict=True)), separators=(",", ":")).encode()
                + b"\n"
                for row in zip(*(cols[name] for name in names), strict=True)
            ]
        )


class CsvWriter(_TextWriter):
    """RFC 4180 CSV with a header row; unknown projid/uid are empty cells."""

    def __init__(self, path: str, group: str) -> None:
        super().__init__(path, group)
        self._buffer = io.StringIO()
        self._csv = csv.writer(self._buffer, lineterminator="\n")
        try:
            self._emit([self._line(self.fields)], counts_as_records=False)
        except OSError as exc:
            self.closed = self.failed = True
            self._abandon()
            if self._size == 0 and not self._stdout and _is_regular(path):
                with contextlib.suppress(OSError):
                    os.unlink(path)
            raise HostSystemError(
                f"cannot write {path}: {_reason(exc)}; removed it, no records were kept"
            ) from None

    def _line(self, row: Iterable[Any]) -> bytes:
        self._buffer.seek(0)
        self._buffer.truncate()
        self._csv.writerow(row)
        return self._buffer.getvalue().encode("utf-8")

    def _lines(self, rows: list[tuple[Any, ...]]) -> list[bytes]:
        """Each row's line, written by the csv module in one call (a row at a time cost
        ten microseconds a record)."""
        self._buffer.seek(0)
        self._buffer.truncate()
        self._csv.writerows(rows)
        lines = self._buffer.getvalue().encode("utf-8").splitlines(keepends=True)
        if len(lines) == len(rows):
            return lines
        return [self._line(row) for row in rows]  # a field held a line break: one by one

    def _write(self, records: FlowRecords) -> None:
        cols = record_columns(records, self.group)
        _times_to_text(cols)
        self._emit(self._lines(list(zip(*(cols[name] for name in self.fields), strict=True))))


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
    """Parquet with small row groups; the footer is written by ``close()``.

    Without its footer a Parquet file is unreadable, so a write error removes the
    file: a disk-full run keeps no Parquet records (JSON Lines and CSV keep theirs).
    """

    def __init__(self, path: str, group: str) -> None:
        super().__init__(path, group)
        import pyarrow.parquet as pq

        self._schema = parquet_schema(group)
        existed = os.path.lexists(path)
        try:
            self._writer: Any = pq.ParquetWriter(path, self._schema, compression="zstd")
        except OSError as exc:
            self.closed = self.failed = True
            if not existed and _is_regular(path):  # created, then the magic did not fit
                with contextlib.suppress(OSError):
                    os.unlink(path)
            raise HostSystemError(f"cannot create {path}: {_reason(exc)}") from None
        self._pending: list[dict[str, list[Any]]] = []
        self._pending_rows = 0

    def _write(self, records: FlowRecords) -> None:
        self._pending.append(record_columns(records, self.group))
        self._pending_rows += records.n
        self.records_written += records.n
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

    def _abandon(self) -> str:
        writer, self._writer = self._writer, None
        if writer is not None:
            with contextlib.suppress(Exception):  # it may fail again on the full disk
                writer.close()
        self._pending = []
        self._pending_rows = 0
        self.records_written = 0
        if _is_regular(self.path):
            with contextlib.suppress(OSError):
                os.unlink(self.path)
        return "removed it, no records were kept"


def _times_to_text(cols: dict[str, list[Any]]) -> None:
    for name in ("first_seen", "last_seen"):
        if name in cols:
            cols[name] = iso_times(np.asarray(cols[name], dtype=np.int64))


class StoreRecordWriter(RecordWriter):
    """``--flows DIR/``: flowacct's records into the flow store (docs/flowstore.md).

    The store has one schema, so the acctadm group does not narrow it. Failure follows
    the record files: ``abort`` (a failed or interrupted run) keeps every record handed
    over, as complete files, and removes the store directory only if the run created it
    and it stayed empty.
    """

    def __init__(
        self, path: str, group: str, *, callout: int = 0, classes: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(path, group)
        from diffserv.flows.store_write import StoreWriter

        self.store = StoreWriter(path)
        self.callout = callout
        self.classes = dict(classes or {})

    def _write(self, records: FlowRecords) -> None:
        klass = self.classes.get(records.action)
        self._store_call(lambda: self.store.write(records, callout=self.callout, klass=klass))

    def _close(self) -> None:
        self._store_call(self.store.close)

    def _store_call(self, call: Callable[[], object]) -> None:
        """Run ``call`` on the store; a failure marks this writer failed, with its reason."""
        try:
            call()
        except HostSystemError as exc:
            self.failed = True
            self._failure = str(exc)
            raise
        finally:
            self.records_written = self.store.rows_written

    def _abandon(self) -> str:
        self.store.abort()
        self.records_written = self.store.rows_written
        return f"kept the {self.store.files_written} complete files written before"

    def abort(self) -> None:
        self.closed = True
        self._abandon()  # complete files stay; a store directory left empty goes
        self.removed = self.store.removed_root


def open_record_writer(
    path: str, group: str, *, callout: int = 0, classes: Mapping[str, str] | None = None
) -> RecordWriter:
    """A writer for ``path``, format by extension (.jsonl/.csv/.parquet), acctadm ``group``.

    ``-`` writes JSON Lines to standard output; a directory, or a path ending in "/",
    is a flow store (created if missing), whose records also say the run's ``callout``
    (ingress or egress) and each action's ipgpc class (``classes``), as an export does.

    Raises UsageError for an unknown extension or group, HostSystemError when the
    file cannot be created.
    """
    if group not in GROUPS:
        raise UsageError(f"unknown accounting group {group!r} (choose basic or extended)")
    from diffserv.flows.store_layout import is_store_path

    if path != "-" and is_store_path(path):
        return StoreRecordWriter(path, group, callout=callout, classes=classes)
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
