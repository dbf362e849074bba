"""The flow records a report reads, from whatever the user names.

* a **flow store** directory (``collect``, ``run --flows DIR/``, ``import nfdump``):
  its finished files, each checked against the store's schema, read in place by the
  SQL engine; partitions that end before ``--from`` are not opened;
* a **store file** (``.parquet`` carrying the store's version);
* a **record file** (``.jsonl``, ``.csv``, ``.parquet`` written by ``run --flows FILE``
  with ``--acct extended``; ``-`` is JSON Lines on stdin);
* a **capture** (pcap or pcapng): turned into flows on the fly by flowacct with
  IPQoS's defaults (60 s idle timeout) over every packet, as if a policy accounted
  all traffic.

Record files and captures become Arrow tables of the store's schema, so every report
runs on one shape of data whatever its origin.
"""

from __future__ import annotations

import datetime as dt
import os
import re
from collections.abc import Sequence
from typing import Any, Final

import msgspec
import pyarrow as pa
import pyarrow.parquet as pq

from diffserv.errors import InputDataError, UsageError
from diffserv.flows.schema import STORE_VERSION_KEY
from diffserv.flows.store_arrow import SCHEMA, batch_to_table
from diffserv.flows.store_read import open_store_file, store_files
from diffserv.records import FlowRecords

_HOUR_NS: Final = 3600 * 1_000_000_000
_PARTITION: Final = re.compile(r"date=(\d{4})-(\d{2})-(\d{2})" + re.escape(os.sep) + r"hour=(\d+)")
_CAPTURE_MAGIC: Final = (
    b"\xd4\xc3\xb2\xa1",  # pcap, little-endian, µs
    b"\xa1\xb2\xc3\xd4",
    b"\x4d\x3c\xb2\xa1",  # pcap, ns
    b"\xa1\xb2\x3c\x4d",
    b"\x0a\x0d\x0d\x0a",  # pcapng section header
)
# Every packet (ipgpc's default class takes what no filter matches) into one flowacct
# action with IPQoS's defaults, but a flow table big enough that no flow of a capture
# is refused for room.
CAPTURE_POLICY: Final = """fmt_version 1.0

action {
	module ipgpc
	name ipgpc.classify
	class {
		name default
		next_action acct
	}
}

action {
	module flowacct
	name acct
	params {
		timer 15000
		timeout 60000
		max_limit 16000000
		next_action continue
	}
}
"""


class Sources(msgspec.Struct):
    """What a report reads: store files for the engine to scan, and in-memory tables."""

    files: list[str] = msgspec.field(default_factory=list)
    tables: list[Any] = msgspec.field(default_factory=list)  # pyarrow.Table, SCHEMA
    names: list[str] = msgspec.field(default_factory=list)
    warnings: list[str] = msgspec.field(default_factory=list)
    pruned: int = 0  # store files left out because they end before --from

    def empty_table(self) -> Any:
        return SCHEMA.empty_table()


def _partition_end_ns(path: str) -> int | None:
    """The end of the hour a store file's partition path names (None if it names none)."""
    match = _PARTITION.search(path)
    if match is None:
        return None
    year, month, day, hour = (int(g) for g in match.groups())
    try:
        days = (dt.date(year, month, day) - dt.date(1970, 1, 1)).days
    except ValueError:
        return None
    return (days * 24 + hour + 1) * _HOUR_NS


def is_capture(path: str) -> bool:
    """Whether ``path`` starts like a pcap or pcapng file."""
    try:
        with open(path, "rb") as stream:
            return stream.read(4) in _CAPTURE_MAGIC
    except OSError:
        return False


def _is_store_file(path: str) -> bool:
    try:
        metadata = pq.read_schema(path).metadata or {}
    except Exception:  # not Parquet at all: the record reader says what is wrong
        return False
    return STORE_VERSION_KEY in metadata


def _record_table(path: str) -> Any:
    # record files need the readers and the export's batching; a store does not
    from diffserv.flows.export import table_batches
    from diffserv.flows.reader import read_records
    from diffserv.records import GROUP_EXTENDED

    table = read_records(path)
    if table.group != GROUP_EXTENDED and table.n:  # an empty file cannot mislead
        raise InputDataError(
            path,
            "basic flow records have no times or DS byte to report; "
            "write them with --acct extended",
        )
    if not table.n:
        return SCHEMA.empty_table()
    tables = [batch_to_table(batch) for batch in table_batches(table)]
    return pa.concat_tables(tables) if tables else SCHEMA.empty_table()


class _Collect:
    """The record sink of a capture's session: every expired record as store rows."""

    def __init__(self) -> None:
        self.tables: list[Any] = []

    def write(self, records: FlowRecords) -> None:
        from diffserv.flows.schema import batch_from_records

        if records.n:
            self.tables.append(batch_to_table(batch_from_records(records)))

    def close(self) -> None:
        pass

    def abort(self) -> None:
        pass


def capture_table(path: str) -> tuple[Any, list[str]]:
    """A capture's flows (one store row per flowacct record) and what to warn about."""
    from diffserv.capture import open_capture
    from diffserv.engine.context import DEFAULT_SEED, EngineOptions
    from diffserv.engine.session import Session, drive
    from diffserv.policy.build import parse

    policy = parse(CAPTURE_POLICY, "<capture accounting>")
    sink = _Collect()
    warnings: list[str] = []
    with open_capture(path) as reader:
        session = Session(policy, EngineOptions(seed=DEFAULT_SEED, record_sink=sink))
        stats = drive(session, reader)
        warnings.extend(f"{path}: {warning}" for warning in reader.warnings)
    if stats.input_error:
        warnings.append(f"{stats.input_error} (the flows before it are reported)")
    table = pa.concat_tables(sink.tables) if sink.tables else SCHEMA.empty_table()
    return table, warnings


class SourceSet:
    """The named sources, read again on each :meth:`resolve` only where they can change.

    Record files and captures are read once; flow-store directories are listed anew each
    time (a collector keeps closing files into them), and each store file is checked
    against the schema once.
    """

    def __init__(self, paths: Sequence[str]) -> None:
        if not paths:
            raise UsageError("report: name at least one SOURCE (a flow store, records, a capture)")
        self.paths = list(paths)
        self._tables: dict[str, Any] = {}
        self._warnings: list[str] = []
        self._checked: set[str] = set()
        self._store_files: dict[str, bool] = {}
        for path in self.paths:
            self._load(path)

    def _load(self, path: str) -> None:
        if not path:
            raise UsageError("report: SOURCE must not be empty")
        if path != "-" and os.path.isdir(path):
            store_files(path)  # a directory the store reader cannot list fails here
            return
        if path != "-" and not os.path.exists(path):
            raise UsageError(f"cannot read {path}: No such file or directory")
        if path != "-" and is_capture(path):
            table, warnings = capture_table(path)
            self._tables[path] = table
            self._warnings.extend(warnings)
        elif path.endswith(".parquet") and _is_store_file(path):
            open_store_file(path)
            self._store_files[path] = True
        else:
            self._tables[path] = _record_table(path)

    def resolve(self, from_ns: int | None = None) -> Sources:
        """The sources as they are now; store partitions ending before ``from_ns`` left out."""
        sources = Sources(names=list(self.paths), warnings=list(self._warnings))
        for path in self.paths:
            if path in self._tables:
                sources.tables.append(self._tables[path])
            elif path in self._store_files:
                sources.files.append(path)
            else:
                for file in store_files(path):
                    end = _partition_end_ns(os.path.relpath(file, path))
                    if from_ns is not None and end is not None and end <= from_ns:
                        sources.pruned += 1
                        continue
                    if file not in self._checked:
                        open_store_file(file)  # refuses a file that is not the store's
                        self._checked.add(file)
                    sources.files.append(file)
        return sources
