"""The embedded SQL engine of reports: DuckDB over the store's Parquet and in-memory tables.

Every report's SQL runs against one view, ``flows``, with the columns of
:data:`~diffserv.report.view.VIEW_COLUMNS`: the store's columns, times as integer
ns (``first_ns``, ``last_ns``), the class as ``flow_class``, and ``scale`` /
``s_packets`` / ``s_bytes``: the sampling rate (1 where a record says nothing or 1)
and the counters scaled by it.
The Spark engine builds the same view, so a report's SQL is written once.

One connection serves every query, one at a time (a lock): DuckDB parallelises each
query itself, and the web dashboard's requests then never see a half-refreshed view.

A report query that needs no addresses or ports runs on the store files' rollups
(:mod:`diffserv.report.rollup`) for the whole minutes of its time range and on the
records for the rest; a time range reads the records through a condition on the
store's own time column, so Parquet skips the row groups outside it.
"""

from __future__ import annotations

import contextlib
import ipaddress
import itertools
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Final

import duckdb
import numpy as np
import pyarrow as pa
from duckdb.func import PythonUDFType

from diffserv.errors import HostSystemError, InputDataError, first_line
from diffserv.flows.store_arrow import SCHEMA, addresses_from_text
from diffserv.report.filters import PrefixFunction, Selection, stamp_bounds
from diffserv.report.rollup import MINUTE_NS, RollupSet
from diffserv.report.sources import Sources
from diffserv.report.view import SUMMARY_COLUMNS, view_select

_NAMES: Final = itertools.count()
_SUMMARY: Final = ", ".join(SUMMARY_COLUMNS)


def prefix_matcher(network_text: str) -> Callable[[Any], Any]:
    """A vectorised test of address text against one IPv6 prefix (Arrow in, Arrow out)."""
    network = ipaddress.IPv6Network(network_text)
    base = int(network.network_address)
    mask = int(network.netmask)
    want_hi, want_lo = np.uint64(base >> 64), np.uint64(base & (2**64 - 1))
    mask_hi, mask_lo = np.uint64(mask >> 64), np.uint64(mask & (2**64 - 1))

    def matches(values: Any) -> Any:
        hi, lo = addresses_from_text(values)
        return pa.array(((hi & mask_hi) == want_hi) & ((lo & mask_lo) == want_lo))

    return matches


class DuckDBEngine:
    """Reports' SQL on an in-process DuckDB over the sources ``resolve`` returns.

    ``refresh`` resolves the sources again (a collector may have closed new files) and
    rebuilds the view when they changed. ``rollup=False`` reads records only (the
    tests compare the two).
    """

    name = "duckdb"
    wide_int = "HUGEINT"

    def __init__(self, resolve: Callable[[], Sources], *, rollup: bool = True) -> None:
        self._resolve = resolve
        self._lock = threading.Lock()
        self._con = duckdb.connect(":memory:")
        self._registered: list[str] = []
        self._rollups = RollupSet() if rollup else None
        self._summary = False  # whether the view rollup_flows is there to read
        self._select = ""
        self.sources = Sources()
        self.sampled = False
        self._signature: tuple[Any, ...] | None = None
        self.refresh()

    def refresh(self) -> None:
        sources = self._resolve()
        signature = (tuple(sources.files), tuple(id(t) for t in sources.tables))
        with self._lock:
            if signature == self._signature:
                return
            self._build(sources)
            self._signature = signature
            self.sources = sources

    def _union(
        self, name: str, files: Sequence[str], tables: Sequence[Any], *, by_name: bool = False
    ) -> None:
        """The view ``name``: Parquet ``files`` and Arrow ``tables``, columns by name.

        ``by_name``: match the files' columns by name (store files are checked to have
        the store's columns in order; rollups written by another diffserv may not)."""
        con = self._con
        parts = []
        if files:
            con.read_parquet(list(files), union_by_name=by_name).create_view(
                f"{name}_files", replace=True
            )
            parts.append(f"SELECT * FROM {name}_files")
        for table in tables:
            table_name = f"{name}_{len(self._registered)}"
            con.register(table_name, table)
            self._registered.append(table_name)
            parts.append(f"SELECT * FROM {table_name}")
        con.execute(f"CREATE OR REPLACE TEMP VIEW {name} AS {' UNION ALL BY NAME '.join(parts)}")

    def _build(self, sources: Sources) -> None:
        con = self._con
        for name in self._registered:
            con.unregister(name)
        self._registered = []
        rollups = None
        try:
            tables = list(sources.tables) or ([] if sources.files else [sources.empty_table()])
            self._union("raw", sources.files, tables)
            if self._rollups is not None and sources.files and not sources.tables:
                rollups = self._rollups.update(con, sources.files)
            if rollups is not None:
                self._union("rollup_raw", *rollups, by_name=True)
            top = con.execute(
                f"SELECT max(sampling) FROM {'rollup_raw' if rollups else 'raw'}"
            ).fetchone()
        except duckdb.IOException as exc:
            raise HostSystemError(f"cannot read the flow store: {_first_line(exc)}") from None
        except duckdb.Error as exc:
            raise InputDataError("flow store", _first_line(exc)) from None
        self.sampled = bool(top and top[0] is not None and top[0] > 1)
        times = ("epoch_ns(first_seen)", "epoch_ns(last_seen)")
        self._select = view_select(*times, self.sampled, self.wide_int)
        con.execute(f"CREATE OR REPLACE TEMP VIEW flows AS SELECT {self._select} FROM raw")
        self._summary = rollups is not None
        if rollups is not None:
            summary = view_select(
                *times, self.sampled, self.wide_int, columns=SUMMARY_COLUMNS, count="n"
            )
            con.execute(
                f"CREATE OR REPLACE TEMP VIEW rollup_flows AS SELECT {summary} FROM rollup_raw"
            )

    def relation(self, from_ns: int | None, to_ns: int | None, summary: bool) -> str:
        """The SQL relation a query over ``[from_ns, to_ns)`` reads in place of ``flows``.

        ``summary``: the query reads only the rollup's columns and counts records as
        ``sum(n)``; it then reads the rollups for the whole minutes of the range and
        the records of the minutes at its edges. The bounds are integers, not user text.
        """
        if not (summary and self._summary):
            if from_ns is None and to_ns is None:
                return "flows"
            return self._records(from_ns, to_ns)
        low = None if from_ns is None else -(-from_ns // MINUTE_NS) * MINUTE_NS
        high = None if to_ns is None else to_ns // MINUTE_NS * MINUTE_NS
        if low is not None and high is not None and low >= high:
            return self._records(from_ns, to_ns)  # no whole minute inside
        parts = [f"SELECT {_SUMMARY} FROM rollup_flows WHERE {_bounds('first_ns', low, high)}"]
        if from_ns is not None and low is not None and from_ns < low:
            parts.append(f"SELECT {_SUMMARY} FROM {self._records(from_ns, low)}")
        if to_ns is not None and high is not None and high < to_ns:
            parts.append(f"SELECT {_SUMMARY} FROM {self._records(high, to_ns)}")
        return f"({' UNION ALL '.join(parts)})"

    def _records(self, from_ns: int | None, to_ns: int | None) -> str:
        """The flows view of the records first seen in ``[from_ns, to_ns)``."""
        return f"(SELECT {self._select} FROM raw WHERE {_first_seen_in(from_ns, to_ns)})"

    @contextlib.contextmanager
    def _query(self, sql: str, functions: Sequence[PrefixFunction]) -> Iterator[str]:
        """Under the lock: ``sql`` calling the prefix functions registered for it (and
        removed after), with DuckDB's errors as diffserv's one-line ones."""
        with self._lock:
            con = self._con
            renamed = sql
            made = []
            try:
                for function in functions:
                    name = f"ds_prefix_{next(_NAMES)}"
                    con.create_function(
                        name,
                        prefix_matcher(function.network),
                        ["varchar"],
                        "boolean",
                        type=PythonUDFType.ARROW,
                    )
                    made.append(name)
                    renamed = renamed.replace(f"{function.name}(", f"{name}(")
                yield renamed
            except duckdb.IOException as exc:
                raise HostSystemError(f"cannot read the flow store: {_first_line(exc)}") from None
            except duckdb.Error as exc:
                raise InputDataError("flow store", _first_line(exc)) from None
            finally:
                for name in made:
                    con.remove_function(name)

    def rows(
        self, sql: str, params: Sequence[Any], functions: Sequence[PrefixFunction] = ()
    ) -> list[tuple[Any, ...]]:
        """The rows of one query (``?`` parameters), with the prefix functions it calls."""
        with self._query(sql, functions) as renamed:
            return self._con.execute(renamed, list(params)).fetchall()

    def record_batches(
        self, selection: Selection, batch_rows: int, columns: Sequence[str] | None = None
    ) -> Iterator[Any]:
        """The records ``selection`` selects, in Arrow batches of the store's columns
        (``columns``: only these; what the marking audit judges a batch at a time)."""
        wanted = SCHEMA.names if columns is None else [n for n in SCHEMA.names if n in columns]
        listed = ", ".join(f'"{name}"' for name in wanted)  # diffserv's own names
        inside = _first_seen_in(selection.from_ns, selection.to_ns)
        sql = (
            f"SELECT {listed} FROM (SELECT *, epoch_ns(first_seen) AS first_ns, "
            f"class AS flow_class FROM raw WHERE {inside}) WHERE {selection.where}"
        )
        with self._query(sql, selection.functions) as renamed:
            relation = self._con.sql(renamed, params=list(selection.params))
            reader: Any = relation.to_arrow_reader(batch_rows)
            yield from reader

    def close(self) -> None:
        with self._lock:
            self._con.close()


def _first_seen_in(from_ns: int | None, to_ns: int | None) -> str:
    """``[from_ns, to_ns)`` as a condition on the stored timestamps, which Parquet's
    statistics can skip row groups by (a condition on epoch_ns() could not)."""
    bounds = stamp_bounds(from_ns, to_ns)
    if bounds is None:
        return "FALSE"  # a bound past what a timestamp holds: no record inside
    return _bounds("first_seen", *bounds, "CAST(make_timestamp_ns({}) AS TIMESTAMPTZ_NS)")


def _bounds(column: str, low: int | None, high: int | None, spell: str = "{}") -> str:
    parts = []
    if low is not None:
        parts.append(f"{column} >= {spell.format(int(low))}")
    if high is not None:
        parts.append(f"{column} < {spell.format(int(high))}")
    return " AND ".join(parts) or "TRUE"


def _first_line(exc: BaseException) -> str:
    return first_line(str(exc)) or type(exc).__name__
