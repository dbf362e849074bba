"""The flow store writer: batches in, complete hive-partitioned Parquet files out.

Every flow source (flowacct in ``diffserv run``, the collector, the nfdump importer)
hands it FlowBatches; it partitions rows by their last_seen hour, streams row groups into
hidden temporary files and makes each file visible only once it is whole and on disk
(fsync, then rename), so a reader — or a crash — never meets half a file. What a crash
can lose, and why the store is partitioned by last_seen, is in docs/flowstore.md.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import time
from collections.abc import Callable
from typing import Any, Final, NoReturn

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from diffserv.errors import HostSystemError
from diffserv.flows.schema import FlowBatch, batch_from_records
from diffserv.flows.store_arrow import SCHEMA, batch_to_table
from diffserv.flows.store_layout import HOUR_NS, file_name, partition_of, temp_name
from diffserv.records import FlowRecords

DEFAULT_ROTATE_NS: Final = 60 * 10**9
DEFAULT_ROW_GROUP_ROWS: Final = 131_072
DEFAULT_MAX_BUFFERED_ROWS: Final = 1_000_000
# Partitions with a file open at once; the least recently used one is finished beyond
# this (an import of an old archive moves through the hours, it does not revisit them).
MAX_OPEN_PARTITIONS: Final = 32

# One sequence for the whole process: two writers on one root never pick the same name.
_SEQUENCE: Final = itertools.count()


def _reason(exc: BaseException) -> str:
    """The operating system's words for ``exc`` (or Arrow's first line)."""
    if isinstance(exc, OSError) and exc.errno:
        return os.strerror(exc.errno)
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _fsync_path(path: str, *, directory: bool = False) -> None:
    fd = os.open(path, (os.O_RDONLY | os.O_DIRECTORY) if directory else os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# How the store's files are encoded. Dictionary pages only for the text columns: their
# values repeat (a few sources, exporters, actions; the busy hosts), while building a
# dictionary for every number costs more than it saves (measured on a million rows of
# flows among 5 000 hosts: 0.40 s and 17 MB with this, 0.88 s and 19 MB dictionary
# everywhere); zstd at its fastest level keeps the files small at scan speed.
PARQUET_OPTIONS: Final[dict[str, Any]] = {
    "compression": "zstd",
    "compression_level": 1,
    "use_dictionary": ["saddr", "daddr", "action", "class", "source", "exporter"],
}


class _OpenFile:
    """One partition's file being written: a Parquet writer on a hidden temporary name."""

    def __init__(self, directory: str, start_utc: str) -> None:
        self.directory = directory
        pid = os.getpid()
        while True:
            self.name = file_name(start_utc, pid, next(_SEQUENCE))
            self.final = os.path.join(directory, self.name)
            self.temp = os.path.join(directory, temp_name(self.name))
            if not os.path.lexists(self.final) and not os.path.lexists(self.temp):
                break
        self.pending: list[Any] = []  # Arrow tables not yet in a row group
        self.pending_rows = 0
        self.rows = 0  # rows in the file (row groups written and pending)
        try:
            self.writer: Any = pq.ParquetWriter(self.temp, SCHEMA, **PARQUET_OPTIONS)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(self.temp)
            raise

    def write_row_groups(self, row_group_rows: int, *, everything: bool) -> None:
        """Write full row groups from the pending rows (and the rest if ``everything``)."""
        if not self.pending_rows or (self.pending_rows < row_group_rows and not everything):
            return
        table = pa.concat_tables(self.pending).unify_dictionaries().combine_chunks()
        whole = table.num_rows if everything else table.num_rows // row_group_rows * row_group_rows
        for start in range(0, whole, row_group_rows):
            part = table.slice(start, min(row_group_rows, whole - start))
            self.writer.write_table(part, row_group_size=part.num_rows)
        rest = table.slice(whole)
        self.pending = [rest] if rest.num_rows else []
        self.pending_rows = rest.num_rows

    def finish(self, row_group_rows: int) -> str:
        """Write the rest, close, fsync and rename into place; the file's final path."""
        self.write_row_groups(row_group_rows, everything=True)
        writer, self.writer = self.writer, None
        writer.close()
        _fsync_path(self.temp)
        os.replace(self.temp, self.final)
        _fsync_path(self.directory, directory=True)
        return self.final

    def discard(self) -> None:
        """Drop the file (after a failure): close quietly, remove the temporary."""
        writer, self.writer = self.writer, None
        if writer is not None:
            with contextlib.suppress(Exception):  # it may fail again on a full disk
                writer.close()
        self.pending = []
        with contextlib.suppress(OSError):
            os.unlink(self.temp)


class StoreWriter:
    """Writes flow batches into the store at ``root`` (also a flowacct record sink).

    Rows wait in memory until a partition has ``row_group_rows`` of them, then go to its
    open (hidden) file as a row group. Every ``rotate_ns`` of wall-clock time since the
    oldest row not yet in a finished file, when ``max_buffered_rows`` rows are waiting,
    on :meth:`rotate` and on :meth:`close`, every open file is finished and appears.
    ``clock`` is the monotonic clock in ns (tests pass their own); ``rotate_ns=None`` is
    the default interval.

    A write error raises HostSystemError naming the file; the writer then keeps every
    file finished before, removes its temporaries, and refuses further batches.
    """

    def __init__(
        self,
        root: str,
        *,
        rotate_ns: int | None = DEFAULT_ROTATE_NS,
        row_group_rows: int = DEFAULT_ROW_GROUP_ROWS,
        max_buffered_rows: int = DEFAULT_MAX_BUFFERED_ROWS,
        clock: Callable[[], int] = time.monotonic_ns,
    ) -> None:
        if rotate_ns is None:  # the caller has no interval of its own
            rotate_ns = DEFAULT_ROTATE_NS
        if rotate_ns <= 0 or row_group_rows <= 0 or max_buffered_rows <= 0:
            raise ValueError("store writer: rotate_ns, row_group_rows, max_buffered_rows > 0")
        self.root = root
        self.rotate_ns = rotate_ns
        self.row_group_rows = row_group_rows
        self.max_buffered_rows = max_buffered_rows
        self.files_written = 0
        self.rows_written = 0  # rows in finished files
        self.paths: list[str] = []  # the finished files, in the order they appeared
        self.closed = False
        self.failed = False
        self.removed_root = False  # abort() removed a root it created that stayed empty
        self._clock = clock
        self._open: dict[int, _OpenFile] = {}  # hour -> file, least recently used first
        self._buffered = 0  # rows handed over and not yet in a finished file
        self._oldest: int | None = None  # clock when the oldest buffered row arrived
        self._failure = ""
        self._created_dirs: list[str] = []
        self._make_dirs(root)

    @property
    def buffered_rows(self) -> int:
        """Rows handed over that are not in a finished file yet (what a crash would lose)."""
        return self._buffered

    # ------------------------------------------------------------ RecordSink

    def write(self, records: FlowRecords, *, callout: int = 0, klass: str | None = None) -> None:
        """flowacct's record sink: ``records`` as a ``flowacct`` batch (see batch_from_records)."""
        if records.n:
            self.add(batch_from_records(records, callout=callout, klass=klass))

    # ------------------------------------------------------------ batches

    def add(self, batch: FlowBatch) -> None:
        """Buffer ``batch``'s rows; write row groups and finish files when due."""
        self._check_open()
        if batch.n == 0:
            self.tick()
            return
        table = batch_to_table(batch)  # a bad batch is the caller's bug: before any I/O
        hours = np.floor_divide(batch.columns["last_ns"], HOUR_NS)
        try:
            if hours.min() == hours.max():
                self._append(int(hours[0]), table)
            else:
                order = np.argsort(hours, kind="stable")
                sorted_hours = hours[order]
                starts = np.flatnonzero(np.r_[True, sorted_hours[1:] != sorted_hours[:-1]])
                ends = np.r_[starts[1:], len(order)]
                for start, end in zip(starts.tolist(), ends.tolist(), strict=True):
                    rows = table.take(order[start:end])
                    self._append(int(sorted_hours[start]), rows)
        except HostSystemError:
            raise
        except Exception as exc:
            self._fail(exc)
        if self._oldest is None:
            self._oldest = self._clock()
        if self._buffered >= self.max_buffered_rows:
            self.rotate()
        else:
            self.tick()

    def tick(self) -> list[str]:
        """Finish the open files if the rotation interval has passed (collectors call this
        on idle wake-ups too); the paths that appeared."""
        if self._oldest is not None and self._clock() - self._oldest >= self.rotate_ns:
            return self.rotate()
        return []

    def rotate(self) -> list[str]:
        """Finish every open file now (SIGHUP, ``--rotate``); the paths that appeared."""
        self._check_open()
        done: list[str] = []
        while self._open:
            hour = next(iter(self._open))
            done.append(self._finish(hour))
        self._buffered = 0
        self._oldest = None
        return done

    def close(self) -> list[str]:
        """Finish everything; safe to call more than once. The paths that appeared."""
        if self.closed:
            return []
        if self.failed:
            self.closed = True
            return []
        try:
            return self.rotate()
        finally:
            self.closed = True

    def abort(self) -> None:
        """The session failed or was interrupted: keep everything handed over that can be
        kept, as complete files; never leave half a file (nor a root left empty)."""
        self._stop()
        self._remove_empty_dirs()

    def discard(self) -> int:
        """Abort, then remove every file this writer finished: an all-or-nothing import
        that failed leaves the store as it found it. The number of files removed."""
        self.closed = True
        self._abandon()  # what is still buffered is dropped, not finished first
        removed = 0
        for path in self.paths:
            with contextlib.suppress(OSError):
                os.unlink(path)
                removed += 1
        self.paths = []
        self.files_written = 0
        self.rows_written = 0
        self._remove_empty_dirs()
        return removed

    # ------------------------------------------------------------ internals

    def _stop(self) -> None:
        if not self.closed:
            with contextlib.suppress(HostSystemError):  # a failed writer has said so itself
                self.close()
        self.closed = True
        self._abandon()

    def _remove_empty_dirs(self) -> None:
        """Remove the directories this writer created that hold nothing (deepest first)."""
        for directory in reversed(self._created_dirs):
            try:
                os.rmdir(directory)
            except OSError:
                continue
            if directory == os.path.normpath(self.root):
                self.removed_root = True
        self._created_dirs = []

    def _check_open(self) -> None:
        if self.closed:
            raise ValueError(f"{self.root}: store writer is closed")
        if self.failed:
            raise HostSystemError(self._failure)

    def _make_dirs(self, path: str) -> None:
        """Create ``path`` and its missing parents, remembering which were new."""
        missing = []
        probe = os.path.normpath(path)
        while not os.path.isdir(probe):
            missing.append(probe)
            parent = os.path.dirname(probe)
            if not parent or parent == probe:
                break
            probe = parent
        for directory in reversed(missing):
            try:
                os.mkdir(directory)
            except FileExistsError:
                if os.path.isdir(directory):
                    continue
                raise HostSystemError(
                    f"cannot write the flow store {self.root}: {directory} is not a directory"
                ) from None
            except OSError as exc:
                raise HostSystemError(
                    f"cannot write the flow store {self.root}: {directory}: {_reason(exc)}"
                ) from None
            self._created_dirs.append(directory)

    def _append(self, hour: int, table: Any) -> None:
        part = self._open.pop(hour, None)
        if part is None:
            if len(self._open) >= MAX_OPEN_PARTITIONS:
                self._finish(next(iter(self._open)))
            directory = os.path.join(self.root, *partition_of(hour))
            self._make_dirs(directory)
            start = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
            part = _OpenFile(directory, start)
        self._open[hour] = part  # now the most recently used
        part.pending.append(table)
        part.pending_rows += table.num_rows
        part.rows += table.num_rows
        self._buffered += table.num_rows
        part.write_row_groups(self.row_group_rows, everything=False)

    def _finish(self, hour: int) -> str:
        part = self._open.pop(hour)
        try:
            path = part.finish(self.row_group_rows)
        except Exception as exc:
            part.discard()
            self._fail(exc, part.final)
        self.files_written += 1
        self.rows_written += part.rows
        self._buffered -= part.rows
        self.paths.append(path)
        return path

    def _fail(self, exc: BaseException, path: str | None = None) -> NoReturn:
        self.failed = True
        self._abandon()
        kept = f"kept the {self.files_written} complete files written before"
        self._failure = f"cannot write {path or self.root}: {_reason(exc)}; {kept}"
        raise HostSystemError(self._failure) from None

    def _abandon(self) -> None:
        for part in self._open.values():
            part.discard()
        self._open = {}
        self._buffered = 0
        self._oldest = None
