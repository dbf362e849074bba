"""Read flow-record files (JSON Lines, CSV, Parquet) back into checked columns.

Every value is validated as it is read, so a damaged or foreign file is reported
as one line naming the file and the line (text) or row (Parquet) at fault.
"""

from __future__ import annotations

import csv
import io
import ipaddress
import json
import os
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from diffserv.errors import HostSystemError, InputDataError, UsageError
from diffserv.flows.records import BASIC_FIELDS, GROUP_BASIC, GROUP_EXTENDED, parse_iso_time

_RANGES: Mapping[str, tuple[int, int]] = {
    "sport": (0, 65535),
    "dport": (0, 65535),
    "protocol": (0, 255),
    "npackets": (0, 2**63 - 1),
    "nbytes": (0, 2**63 - 1),
    "dsfield": (0, 255),
    "dscp": (0, 63),
    "ecn": (0, 3),
    "projid": (0, 2**31 - 1),
    "uid": (0, 2**31 - 1),
}


@dataclass(slots=True)
class RecordTable:
    """Flow records read back from a file; extended-only columns are empty for basic files."""

    path: str
    group: str = GROUP_BASIC
    saddr: list[str] = field(default_factory=list)
    daddr: list[str] = field(default_factory=list)
    sport: list[int] = field(default_factory=list)
    dport: list[int] = field(default_factory=list)
    protocol: list[int] = field(default_factory=list)
    npackets: list[int] = field(default_factory=list)
    nbytes: list[int] = field(default_factory=list)
    action: list[str] = field(default_factory=list)
    dsfield: list[int] = field(default_factory=list)
    first_ns: list[int] = field(default_factory=list)
    last_ns: list[int] = field(default_factory=list)

    @property
    def n(self) -> int:
        return len(self.npackets)

    def column(self, name: str) -> NDArray[np.int64]:
        values: list[int] = getattr(self, name)
        return np.asarray(values, dtype=np.int64)


TABLE_COLUMNS: tuple[str, ...] = (
    "saddr",
    "daddr",
    "sport",
    "dport",
    "protocol",
    "npackets",
    "nbytes",
    "action",
    "dsfield",
    "first_ns",
    "last_ns",
)


class _RowChecker:
    """Validates one record (a mapping of field to raw value) and appends it to a table."""

    def __init__(self, table: RecordTable, text_values: bool) -> None:
        self.table = table
        self.text = text_values
        self.addresses: set[str] = set()

    def _int(self, row: Mapping[str, Any], name: str, optional: bool = False) -> int | None:
        value = row.get(name)
        if value is None or (self.text and value == ""):
            if optional:
                return None
            raise ValueError(f"field {name} is missing")
        if isinstance(value, bool):
            raise ValueError(f"field {name} is not an integer: {value!r}")
        if isinstance(value, str):
            if not value.isdigit():
                raise ValueError(f"field {name} is not an integer: {value!r}")
            value = int(value)
        if not isinstance(value, int):
            raise ValueError(f"field {name} is not an integer: {value!r}")
        low, high = _RANGES[name]
        if not low <= value <= high:
            raise ValueError(f"field {name} is out of range ({low}..{high}): {value}")
        return value

    def _address(self, row: Mapping[str, Any], name: str) -> str:
        value = row.get(name)
        if not isinstance(value, str):
            raise ValueError(f"field {name} is not an address: {value!r}")
        if value not in self.addresses:
            try:
                ipaddress.ip_address(value)
            except ValueError:
                raise ValueError(f"field {name} is not an address: {value!r}") from None
            self.addresses.add(value)
        return value

    def _time(self, row: Mapping[str, Any], name: str) -> int:
        value = row.get(name)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if not isinstance(value, str) or not value:
            raise ValueError(f"field {name} is missing")
        return parse_iso_time(value)

    def add(self, row: Mapping[str, Any]) -> None:
        t = self.table
        saddr = self._address(row, "saddr")
        daddr = self._address(row, "daddr")
        ints = [self._int(row, name) for name in ("sport", "dport", "protocol")]
        npackets = self._int(row, "npackets")
        nbytes = self._int(row, "nbytes")
        action = row.get("action")
        if not isinstance(action, str) or not action:
            raise ValueError(f"field action is missing or not text: {action!r}")
        if t.group == GROUP_EXTENDED:
            dsfield = self._int(row, "dsfield")
            for name in ("dscp", "ecn"):
                self._int(row, name, optional=True)
            first = self._time(row, "first_seen")
            last = self._time(row, "last_seen")
            if last < first:
                raise ValueError("last_seen is before first_seen")
            self._int(row, "projid", optional=True)
            self._int(row, "uid", optional=True)
            assert dsfield is not None
            t.dsfield.append(dsfield)
            t.first_ns.append(first)
            t.last_ns.append(last)
        t.saddr.append(saddr)
        t.daddr.append(daddr)
        t.sport.append(int(ints[0] or 0))
        t.dport.append(int(ints[1] or 0))
        t.protocol.append(int(ints[2] or 0))
        t.npackets.append(int(npackets or 0))
        t.nbytes.append(int(nbytes or 0))
        t.action.append(action)


def _group_of(columns: list[str] | tuple[str, ...], where: str) -> str:
    missing = [name for name in BASIC_FIELDS if name not in columns]
    if missing:
        raise InputDataError(where, f"not a flow record file: no {', '.join(missing)} field")
    return GROUP_EXTENDED if "dsfield" in columns else GROUP_BASIC


def _text(path: str) -> str:
    if path == "-":
        data = sys.stdin.buffer.read()
    else:
        with open(path, "rb") as f:
            data = f.read()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise InputDataError(f"{path}: line {line}", "not UTF-8 text") from None


def _read_jsonl(path: str, table: RecordTable) -> None:
    checker: _RowChecker | None = None
    lines: Iterator[str] = iter(io.StringIO(_text(path)))
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        where = f"{path}: line {number}"
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InputDataError(where, f"not JSON ({exc.msg})") from None
        if not isinstance(row, dict):
            raise InputDataError(where, "a record must be a JSON object")
        if checker is None:
            table.group = _group_of(list(row), where)
            checker = _RowChecker(table, text_values=False)
        try:
            checker.add(row)
        except ValueError as exc:
            raise InputDataError(where, str(exc)) from None


def _read_csv(path: str, table: RecordTable) -> None:
    with io.StringIO(_text(path), newline="") as f:
        reader = csv.reader(f)
        try:
            header = next(reader)
        except StopIteration:
            raise InputDataError(f"{path}: line 1", "empty file, no CSV header") from None
        except csv.Error as exc:
            raise InputDataError(f"{path}: line 1", f"bad CSV ({exc})") from None
        table.group = _group_of(header, f"{path}: line 1")
        checker = _RowChecker(table, text_values=True)
        while True:
            try:
                values = next(reader)
            except StopIteration:
                break
            except csv.Error as exc:
                raise InputDataError(
                    f"{path}: line {reader.line_num}", f"bad CSV ({exc})"
                ) from None
            where = f"{path}: line {reader.line_num}"
            if not values:
                continue
            if len(values) != len(header):
                raise InputDataError(
                    where, f"{len(values)} fields where the header has {len(header)}"
                )
            try:
                checker.add(dict(zip(header, values, strict=True)))
            except ValueError as exc:
                raise InputDataError(where, str(exc)) from None


def _arrow_problem(exc: BaseException) -> str:
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return first if len(first) <= 160 else first[:157] + "..."


def _read_parquet(path: str, table: RecordTable) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    columns: dict[str, list[Any]] = {}
    try:
        data = pq.read_table(path)
        table.group = _group_of(data.column_names, path)
        for name in data.column_names:
            col = data.column(name)
            if pa.types.is_timestamp(col.type):
                col = col.cast(pa.int64())
            columns[name] = col.to_pylist()
    except FileNotFoundError:
        raise
    except (pa.ArrowException, OSError, UnicodeDecodeError, ValueError) as exc:
        raise InputDataError(path, f"not a valid Parquet file ({_arrow_problem(exc)})") from None
    checker = _RowChecker(table, text_values=False)
    names = list(columns)
    for i, values in enumerate(zip(*(columns[n] for n in names), strict=True)):
        try:
            checker.add(dict(zip(names, values, strict=True)))
        except ValueError as exc:
            raise InputDataError(f"{path}: row {i + 1}", str(exc)) from None


def read_records(path: str) -> RecordTable:
    """Read a record file written by ``diffserv run --flows`` (format by extension).

    ``-`` reads JSON Lines from standard input.
    """
    ext = ".jsonl" if path == "-" else os.path.splitext(path)[1].lower()
    readers = {".jsonl": _read_jsonl, ".csv": _read_csv, ".parquet": _read_parquet}
    if ext not in readers:
        raise UsageError(
            f"{path}: unknown flow record format {ext or '(no extension)'!r}; "
            "use .jsonl, .csv or .parquet"
        )
    table = RecordTable(path=path)
    try:
        readers[ext](path, table)
    except OSError as exc:
        raise HostSystemError(f"cannot read {path}: {exc.strerror or exc}") from None
    return table


def merge_tables(tables: list[RecordTable]) -> RecordTable:
    """Several files' records as one table (all basic or all extended)."""
    if len(tables) == 1:
        return tables[0]
    groups = {t.group for t in tables}
    if len(groups) > 1:
        basic = next(t.path for t in tables if t.group == GROUP_BASIC)
        extended = next(t.path for t in tables if t.group == GROUP_EXTENDED)
        raise UsageError(f"cannot sum basic records ({basic}) with extended records ({extended})")
    merged = RecordTable(path=", ".join(t.path for t in tables), group=tables[0].group)
    for name in TABLE_COLUMNS:
        column: list[Any] = getattr(merged, name)
        for t in tables:
            column.extend(getattr(t, name))
    return merged
