"""The rollup of a store file: its records summed per minute of first packet and per mark.

Why: most reports (top DSCP, groups, the time series, ToS, ECN, re-marking, silent
exporters) and most filters (time, exporter, interface, direction, protocol, marks)
never look at addresses or ports. Summed away, those leave some ten thousand rows for
ten million records, so such a report reads the rollup in milliseconds where a scan
of the records takes seconds. A report that needs addresses or ports (applications,
conversations, flows, address and port filters) reads the records as before, and any
time bound that is not a whole minute reads the records of its edge minutes.

A rollup is a Parquet file of its own, ``.rollup/<store file's stem>.rollup`` in the
store file's directory: hidden from the store's readers as Hive and Spark hide dot
directories, and not named ``*.parquet``, so a ``**/*.parquet`` glob over the store
(DuckDB's globs do enter dot directories) still finds the records only.

Store files never change once written, so a rollup stays valid while its store file
has the size and modification time recorded in the rollup's metadata; the first report
after a file appears builds it (one scan of that file), and later reports only check
the two numbers. Where the store is not writable (a read-only mount, another
user's store), the rollup is built for the engine's lifetime only, in memory.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Sequence
from typing import Any, Final

import duckdb
import pyarrow.parquet as pq

from diffserv.report.view import ROLLUP_KEYS

MINUTE_NS: Final = 60_000_000_000
ROLLUP_DIR: Final = ".rollup"
ROLLUP_SUFFIX: Final = ".rollup"
ROLLUP_VERSION: Final = 1
VERSION_KEY: Final = b"diffserv.rollup_version"
SOURCE_KEY: Final = b"diffserv.rollup_source"  # "<size>:<mtime_ns>" of the store file

# the minute number of the first packet, floored as report intervals are (DuckDB's
# `//` truncates toward zero; a minute number cannot overflow where a time in ns can)
_T: Final = "epoch_ns(first_seen)"
_MINUTE: Final = f"{_T} // {MINUTE_NS} - CASE WHEN {_T} % {MINUTE_NS} < 0 THEN 1 ELSE 0 END"
_KEYS: Final = ", ".join(ROLLUP_KEYS)
# Counters are summed within one minute and one value of every key: a 64-bit sum
# overflows only past 2^64 bytes in a minute, and then the cast fails and the report
# reads the records instead.
_ROLLUP_SQL: Final = (
    f"SELECT min(first_seen) AS first_seen, max(last_seen) AS last_seen, {_KEYS}, "
    "count(*) AS n, CAST(sum(packets) AS UBIGINT) AS packets, "
    "CAST(sum(bytes) AS UBIGINT) AS bytes "
    f"FROM records GROUP BY {_MINUTE}, {_KEYS}"
)


def rollup_path(store_file: str) -> str:
    """Where the rollup of ``store_file`` lives: ``.rollup/<stem>.rollup`` beside it."""
    directory, name = os.path.split(store_file)
    stem = name.removesuffix(".parquet")
    return os.path.join(directory, ROLLUP_DIR, stem + ROLLUP_SUFFIX)


def _signature(store_file: str) -> str:
    status = os.stat(store_file)
    return f"{status.st_size}:{status.st_mtime_ns}"


def _valid_on_disk(path: str, signature: str) -> bool:
    try:
        metadata = pq.read_schema(path).metadata or {}
    except Exception:  # missing, half-written by a crashed writer, not Parquet: rebuild
        return False
    return (
        metadata.get(VERSION_KEY) == str(ROLLUP_VERSION).encode()
        and metadata.get(SOURCE_KEY) == signature.encode()
    )


def _write(table: Any, path: str) -> bool:
    """Write ``table`` to ``path`` (atomically); False when the store is not writable."""
    temp = os.path.join(os.path.dirname(path), f".{os.path.basename(path)}.{os.getpid()}.tmp")
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        pq.write_table(table, temp, compression="zstd")
        os.replace(temp, path)
    except OSError:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        return False
    return True


class RollupSet:
    """The rollups of the store files an engine reads, found on disk or built.

    :meth:`update` answers, for the engine's current files, the rollup files to read and
    the rollups held in memory; or None when some file's rollup cannot be made (a damaged
    file, a counter past 64 bits), and the engine then reads records only.
    """

    def __init__(self) -> None:
        self._known: dict[str, tuple[str, str | Any]] = {}  # file -> (signature, rollup)

    def update(
        self, con: duckdb.DuckDBPyConnection, files: Sequence[str]
    ) -> tuple[list[str], list[Any]] | None:
        paths: list[str] = []
        tables: list[Any] = []
        known: dict[str, tuple[str, str | Any]] = {}
        for file in files:
            try:
                signature = _signature(file)
            except OSError:
                return None
            entry = self._known.get(file)
            if entry is None or entry[0] != signature:
                rollup = self._find_or_build(con, file, signature)
                if rollup is None:
                    return None
                entry = (signature, rollup)
            known[file] = entry
            if isinstance(entry[1], str):
                paths.append(entry[1])
            else:
                tables.append(entry[1])
        self._known = known
        return paths, tables

    @staticmethod
    def _find_or_build(
        con: duckdb.DuckDBPyConnection, file: str, signature: str
    ) -> str | Any | None:
        path = rollup_path(file)
        if _valid_on_disk(path, signature):
            return path
        try:
            summed = con.from_parquet(file).query("records", _ROLLUP_SQL)
            table = None if summed is None else summed.to_arrow_table()
        except duckdb.Error:
            return None
        if table is None:
            return None
        metadata = {VERSION_KEY: str(ROLLUP_VERSION).encode(), SOURCE_KEY: signature.encode()}
        table = table.replace_schema_metadata(metadata)
        return path if _write(table, path) else table
