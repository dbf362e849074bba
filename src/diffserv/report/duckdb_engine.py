"""The embedded SQL engine of reports: DuckDB over the store's Parquet and in-memory tables.

Every report's SQL runs against one view, ``flows``, with the columns of
:data:`~diffserv.report.view.VIEW_COLUMNS`: the store's columns, times as integer
ns (``first_ns``, ``last_ns``), the class as ``flow_class``, and ``scale`` /
``s_packets`` / ``s_bytes``: the sampling rate (1 where a record says nothing or 1)
and the counters scaled by it.
The Spark engine builds the same view, so a report's SQL is written once.

One connection serves every query, one at a time (a lock): DuckDB parallelises each
query itself, and the web dashboard's requests then never see a half-refreshed view.
"""

from __future__ import annotations

import ipaddress
import itertools
import threading
from collections.abc import Callable, Sequence
from typing import Any, Final

import duckdb
import numpy as np
import pyarrow as pa
from duckdb.func import PythonUDFType

from diffserv.errors import HostSystemError, InputDataError, first_line
from diffserv.flows.store_arrow import addresses_from_text
from diffserv.report.filters import PrefixFunction
from diffserv.report.sources import Sources
from diffserv.report.view import view_select

_NAMES: Final = itertools.count()


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
    rebuilds the view when they changed.
    """

    name = "duckdb"

    def __init__(self, resolve: Callable[[], Sources]) -> None:
        self._resolve = resolve
        self._lock = threading.Lock()
        self._con = duckdb.connect(":memory:")
        self._registered: list[str] = []
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

    def _build(self, sources: Sources) -> None:
        con = self._con
        for name in self._registered:
            con.unregister(name)
        self._registered = []
        parts = []
        try:
            if sources.files:
                con.read_parquet(list(sources.files)).create_view("store_files", replace=True)
                parts.append("SELECT * FROM store_files")
            tables = list(sources.tables) or ([] if sources.files else [sources.empty_table()])
            for i, table in enumerate(tables):
                name = f"memory_{i}"
                con.register(name, table)
                self._registered.append(name)
                parts.append(f"SELECT * FROM {name}")
            con.execute(f"CREATE OR REPLACE TEMP VIEW raw AS {' UNION ALL BY NAME '.join(parts)}")
            top = con.execute("SELECT max(sampling) FROM raw").fetchone()
        except duckdb.IOException as exc:
            raise HostSystemError(f"cannot read the flow store: {_first_line(exc)}") from None
        except duckdb.Error as exc:
            raise InputDataError("flow store", _first_line(exc)) from None
        self.sampled = bool(top and top[0] is not None and top[0] > 1)
        select = view_select("epoch_ns(first_seen)", "epoch_ns(last_seen)", self.sampled, "HUGEINT")
        con.execute(f"CREATE OR REPLACE TEMP VIEW flows AS SELECT {select} FROM raw")

    def rows(
        self, sql: str, params: Sequence[Any], functions: Sequence[PrefixFunction] = ()
    ) -> list[tuple[Any, ...]]:
        """The rows of one query (``?`` parameters), with the prefix functions it calls."""
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
                return con.execute(renamed, list(params)).fetchall()
            except duckdb.IOException as exc:
                raise HostSystemError(f"cannot read the flow store: {_first_line(exc)}") from None
            except duckdb.Error as exc:
                raise InputDataError("flow store", _first_line(exc)) from None
            finally:
                for name in made:
                    con.remove_function(name)

    def close(self) -> None:
        with self._lock:
            self._con.close()


def _first_line(exc: BaseException) -> str:
    return first_line(str(exc)) or type(exc).__name__
