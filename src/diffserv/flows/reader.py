"""Read flow-record files (JSON Lines, CSV, Parquet) back into checked columns.

Every value is validated as it is read, so a damaged or foreign file is reported
as one line naming the file and the line (text) or row (Parquet) at fault. Files
are streamed: memory follows the number of records, never one line or one claim
in a file's metadata.
"""

from __future__ import annotations

import codecs
import csv
import json
import os
import re
import sys
from collections.abc import Iterator, Mapping
from typing import IO, Any, Final

import msgspec
import numpy as np
from numpy.typing import NDArray

from diffserv.errors import HostSystemError, InputDataError, UsageError
from diffserv.records import (
    BASIC_FIELDS,
    GROUP_BASIC,
    GROUP_EXTENDED,
    TIME_MAX_NS,
    TIME_MIN_NS,
    fields_of,
    format_address,
    iso_time,
    parse_address,
    parse_iso_time,
)

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
INT_FIELDS: Final = tuple(_RANGES)
TIME_FIELDS: Final = ("first_seen", "last_seen")
TEXT_FIELDS: Final = ("saddr", "daddr", "action")
# The longest line (JSON Lines) or row (CSV) read; a record takes a few hundred bytes.
MAX_LINE_BYTES: Final = 1 << 20
MAX_ACTION_CHARS: Final = 256
# No field needs more digits than 2**64 has (20); longer numbers are never converted.
_MAX_DIGITS: Final = 20
_TIME_RANGE: Final = f"{iso_time(TIME_MIN_NS)}..{iso_time(TIME_MAX_NS)}"
_DIGITS: Final = re.compile(r"[0-9]+")
_BOM: Final = codecs.BOM_UTF8


class RecordTable(msgspec.Struct):
    """Flow records read back from a file; extended-only columns are empty for basic files.

    Values are exact Python ints; times are ns since the epoch within int64.
    """

    path: str
    group: str = GROUP_BASIC
    saddr: list[str] = msgspec.field(default_factory=list)
    daddr: list[str] = msgspec.field(default_factory=list)
    sport: list[int] = msgspec.field(default_factory=list)
    dport: list[int] = msgspec.field(default_factory=list)
    protocol: list[int] = msgspec.field(default_factory=list)
    npackets: list[int] = msgspec.field(default_factory=list)
    nbytes: list[int] = msgspec.field(default_factory=list)
    action: list[str] = msgspec.field(default_factory=list)
    dsfield: list[int] = msgspec.field(default_factory=list)
    first_ns: list[int] = msgspec.field(default_factory=list)
    last_ns: list[int] = msgspec.field(default_factory=list)

    @property
    def n(self) -> int:
        return len(self.npackets)

    def column(self, name: str) -> NDArray[np.int64]:
        """One integer column as int64 (every checked value fits)."""
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


class _FieldError(Exception):
    """One field of one record is wrong (the message says which and why)."""


class _HugeNumber:
    """A JSON integer literal too long to be any field's value; never converted to int."""

    __slots__ = ("digits",)

    def __init__(self, literal: str) -> None:
        self.digits = len(literal.lstrip("-"))


def _json_int(literal: str) -> int | _HugeNumber:
    return _HugeNumber(literal) if len(literal) > _MAX_DIGITS + 1 else int(literal)


def _json_constant(name: str) -> float:
    raise _FieldError(f"{name} is not a JSON value")


_FAST_JSON: Final = json.JSONDecoder(parse_constant=_json_constant)
_CAREFUL_JSON: Final = json.JSONDecoder(parse_int=_json_int, parse_constant=_json_constant)
_LONG_DIGITS: Final = re.compile(f"[0-9]{{{_MAX_DIGITS + 1},}}")


def _show(value: Any) -> str:
    """A short, one-line picture of a bad value for an error message."""
    if isinstance(value, str):
        return repr(value) if len(value) <= 48 else repr(value[:45]) + "..."
    if isinstance(value, _HugeNumber):
        return f"a {value.digits}-digit number"
    if value is None:
        return "null"
    if isinstance(value, bool | int | float):
        return repr(value)
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return f"a value of type {type(value).__name__}"


def _is_clean_text(text: str) -> bool:
    """True unless ``text`` holds lone surrogates (cannot be printed or re-written as UTF-8)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


class _RowChecker:
    """Validates one record (a mapping of field to raw value) and appends it to a table.

    ``text_values``: the values are CSV cells (text), else JSON/Parquet values.
    """

    def __init__(self, table: RecordTable, text_values: bool) -> None:
        self.table = table
        self.text = text_values
        self.addresses: dict[str, str] = {}
        self.actions: set[str] = set()

    def _int(self, row: Mapping[str, Any], name: str, optional: bool = False) -> int | None:
        value = row.get(name)
        if type(value) is int:  # the common case first: a JSON or Parquet integer
            low, high = _RANGES[name]
            if low <= value <= high:
                return value
        return self._int_slowly(value, name, optional)

    def _int_slowly(self, value: Any, name: str, optional: bool) -> int | None:
        if value is None or (self.text and value == ""):
            if optional:
                return None
            raise _FieldError(f"field {name} is missing")
        low, high = _RANGES[name]
        if self.text:
            if not isinstance(value, str) or not _DIGITS.fullmatch(value):
                raise _FieldError(f"field {name} is not an integer: {_show(value)}")
            if len(value) > _MAX_DIGITS:
                raise _FieldError(f"field {name} is out of range ({low}..{high}): {_show(value)}")
            value = int(value)
        elif isinstance(value, _HugeNumber):
            raise _FieldError(f"field {name} is out of range ({low}..{high}): {_show(value)}")
        elif type(value) is not int:
            raise _FieldError(f"field {name} is not an integer: {_show(value)}")
        if not low <= value <= high:
            raise _FieldError(f"field {name} is out of range ({low}..{high}): {value}")
        return int(value)

    def _address(self, row: Mapping[str, Any], name: str) -> str:
        value = row.get(name)
        if not isinstance(value, str):
            raise _FieldError(f"field {name} is not an address: {_show(value)}")
        canonical = self.addresses.get(value)
        if canonical is None:
            if "%" in value or len(value) > 64:  # no zone index: records carry 128 bits
                raise _FieldError(f"field {name} is not an address: {_show(value)}")
            try:
                canonical = format_address(*parse_address(value))
            except ValueError:
                raise _FieldError(f"field {name} is not an address: {_show(value)}") from None
            self.addresses[value] = canonical
        return canonical

    def _action(self, row: Mapping[str, Any]) -> str:
        value = row.get("action")
        if not isinstance(value, str) or not value:
            raise _FieldError(f"field action is missing or not text: {_show(value)}")
        if value in self.actions:
            return value
        if len(value) > MAX_ACTION_CHARS:
            raise _FieldError(f"field action is longer than {MAX_ACTION_CHARS} characters")
        if not _is_clean_text(value):
            raise _FieldError(f"field action is not valid text: {_show(value)}")
        self.actions.add(value)
        return value

    def _time(self, row: Mapping[str, Any], name: str) -> int:
        value = row.get(name)
        if isinstance(value, _HugeNumber):
            raise _FieldError(f"field {name} is out of range ({_TIME_RANGE}): {_show(value)}")
        if type(value) is int:
            ns = value
        elif not isinstance(value, str) or not value:
            if value is None or value == "":
                raise _FieldError(f"field {name} is missing")
            raise _FieldError(f"field {name} is not a time: {_show(value)}")
        else:
            try:
                ns = parse_iso_time(value)
            except ValueError:
                raise _FieldError(
                    f"field {name} is not an ISO-8601 UTC time "
                    f"(like 2026-01-01T00:00:00.5Z): {_show(value)}"
                ) from None
        if not TIME_MIN_NS <= ns <= TIME_MAX_NS:
            raise _FieldError(f"field {name} is out of range ({_TIME_RANGE}): {_show(value)}")
        return ns

    def add(self, row: Mapping[str, Any]) -> None:
        """Check ``row``; append it only if every field is right (raises _FieldError)."""
        t = self.table
        saddr = self._address(row, "saddr")
        daddr = self._address(row, "daddr")
        sport = self._int(row, "sport")
        dport = self._int(row, "dport")
        protocol = self._int(row, "protocol")
        npackets = self._int(row, "npackets")
        nbytes = self._int(row, "nbytes")
        action = self._action(row)
        assert None not in (sport, dport, protocol, npackets, nbytes)
        if t.group == GROUP_EXTENDED:
            dsfield = self._int(row, "dsfield")
            assert dsfield is not None
            for name, derived in (("dscp", dsfield >> 2), ("ecn", dsfield & 3)):
                value = self._int(row, name, optional=True)
                if value is not None and value != derived:
                    raise _FieldError(
                        f"field {name} is {value}, but dsfield {dsfield} says {derived}"
                    )
            first = self._time(row, "first_seen")
            last = self._time(row, "last_seen")
            if last < first:
                raise _FieldError("last_seen is before first_seen")
            self._int(row, "projid", optional=True)
            self._int(row, "uid", optional=True)
            t.dsfield.append(dsfield)
            t.first_ns.append(first)
            t.last_ns.append(last)
        t.saddr.append(saddr)
        t.daddr.append(daddr)
        t.sport.append(sport or 0)
        t.dport.append(dport or 0)
        t.protocol.append(protocol or 0)
        t.npackets.append(npackets or 0)
        t.nbytes.append(nbytes or 0)
        t.action.append(action)


def _group_of(columns: list[str] | tuple[str, ...], where: str) -> str:
    missing = [name for name in BASIC_FIELDS if name not in columns]
    if missing:
        raise InputDataError(where, f"not a flow record file: no {', '.join(missing)} field")
    return GROUP_EXTENDED if "dsfield" in columns else GROUP_BASIC


def _lines(stream: IO[bytes], path: str) -> Iterator[tuple[int, str]]:
    """(line number, text) of each line, UTF-8 checked, at most MAX_LINE_BYTES each.

    A UTF-8 byte order mark at the start of the file is skipped.
    """
    number = 0
    while True:
        raw = stream.readline(MAX_LINE_BYTES + 1)
        if not raw:
            return
        number += 1
        if len(raw) > MAX_LINE_BYTES:
            raise InputDataError(
                f"{path}: line {number}",
                f"line longer than {MAX_LINE_BYTES} bytes, not a flow record",
            )
        if number == 1 and raw.startswith(_BOM):
            raw = raw[len(_BOM) :]
        try:
            yield number, raw.decode("utf-8")
        except UnicodeDecodeError:
            raise InputDataError(f"{path}: line {number}", "not UTF-8 text") from None


def _read_jsonl(stream: IO[bytes], path: str, table: RecordTable) -> None:
    checker: _RowChecker | None = None
    for number, line in _lines(stream, path):
        if not line.strip():
            continue
        where = f"{path}: line {number}"
        # long digit runs are parsed without int() (4300+ digits would raise ValueError)
        decoder = _CAREFUL_JSON if _LONG_DIGITS.search(line) else _FAST_JSON
        try:
            row = decoder.decode(line)
        except json.JSONDecodeError as exc:
            raise InputDataError(where, f"not JSON ({exc.msg})") from None
        except RecursionError:
            raise InputDataError(where, "not a flow record (JSON nested too deeply)") from None
        except _FieldError as exc:
            raise InputDataError(where, f"not JSON ({exc})") from None
        if not isinstance(row, dict):
            raise InputDataError(where, "a record must be a JSON object")
        if checker is None:
            table.group = _group_of(list(row), where)
            checker = _RowChecker(table, text_values=False)
        try:
            checker.add(row)
        except _FieldError as exc:
            raise InputDataError(where, str(exc)) from None


class _CsvLines:
    """Feeds checked text lines to csv.reader and remembers the last line number."""

    def __init__(self, stream: IO[bytes], path: str) -> None:
        self._lines = _lines(stream, path)
        self._path = path
        self.number = 0
        self.row_chars = 0  # characters of the row being read, across quoted newlines

    def __iter__(self) -> Iterator[str]:
        return self

    def __next__(self) -> str:
        self.number, text = next(self._lines)
        self.row_chars += len(text)
        if self.row_chars > MAX_LINE_BYTES:
            raise InputDataError(
                f"{self._path}: line {self.number}",
                f"row longer than {MAX_LINE_BYTES} characters, not a flow record",
            )
        return text


def _read_csv(stream: IO[bytes], path: str, table: RecordTable) -> None:
    lines = _CsvLines(stream, path)
    reader = csv.reader(lines, strict=True)

    def next_row() -> list[str] | None:
        lines.row_chars = 0
        try:
            return next(reader)
        except StopIteration:
            return None
        except csv.Error as exc:
            where = f"{path}: line {max(lines.number, 1)}"
            raise InputDataError(where, f"bad CSV ({exc})") from None

    header = next_row()
    if header is None:
        raise InputDataError(f"{path}: line 1", "empty file, no CSV header")
    table.group = _group_of(header, f"{path}: line {lines.number}")
    checker = _RowChecker(table, text_values=True)
    while (values := next_row()) is not None:
        where = f"{path}: line {lines.number}"
        if not values:
            continue
        if len(values) != len(header):
            raise InputDataError(where, f"{len(values)} fields where the header has {len(header)}")
        try:
            checker.add(dict(zip(header, values, strict=True)))
        except _FieldError as exc:
            raise InputDataError(where, str(exc)) from None


def _arrow_problem(exc: BaseException) -> str:
    text = str(exc).strip()
    first = text.splitlines()[0] if text else type(exc).__name__
    return first if len(first) <= 160 else first[:157] + "..."


# What pyarrow raises on a damaged file (ArrowException subclasses several of these).
_ARROW_ERRORS: Final = (
    OSError,
    ValueError,
    TypeError,
    IndexError,
    KeyError,
    OverflowError,
    MemoryError,
    NotImplementedError,
    UnicodeDecodeError,
)
PARQUET_BATCH_ROWS: Final = 16_384
_UNIT_NS: Final = {"s": 1_000_000_000, "ms": 1_000_000, "us": 1_000, "ns": 1}


def _want(name: str) -> str:
    if name in INT_FIELDS:
        return "an integer"
    if name in TIME_FIELDS:
        return "a time"
    return "an address" if name in ("saddr", "daddr") else "text"


def _type_fits(name: str, arrow_type: Any) -> bool:
    """Whether a column of ``arrow_type`` can hold field ``name`` (values are checked later)."""
    import pyarrow as pa

    t = arrow_type.value_type if pa.types.is_dictionary(arrow_type) else arrow_type
    if pa.types.is_null(t):
        return True  # all null: reported as a missing field of row 1
    text = pa.types.is_string(t) or pa.types.is_large_string(t)
    if name in INT_FIELDS:
        return bool(pa.types.is_integer(t))
    if name in TIME_FIELDS:
        return bool(pa.types.is_integer(t) or pa.types.is_timestamp(t) or text)
    return bool(text)


def _py_values(array: Any) -> list[Any]:
    """Exact Python values of one Arrow column chunk; times as int ns."""
    import pyarrow as pa

    if pa.types.is_dictionary(array.type):
        array = array.dictionary_decode()
    if pa.types.is_timestamp(array.type):
        scale = _UNIT_NS[array.type.unit]
        raw = array.cast(pa.int64()).to_pylist()
        return raw if scale == 1 else [None if v is None else v * scale for v in raw]
    values: list[Any] = array.to_pylist()
    return values


def _read_parquet(stream: IO[bytes], path: str, table: RecordTable) -> None:
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(stream)
        names: list[str] = list(parquet.schema_arrow.names)
        metadata = parquet.metadata
        num_rows = int(metadata.num_rows)
    except _ARROW_ERRORS as exc:
        raise InputDataError(path, f"not a valid Parquet file ({_arrow_problem(exc)})") from None
    table.group = _group_of(names, path)
    first_row = f"{path}: row 1" if num_rows else path
    wanted = [name for name in fields_of(table.group) if name in names]  # others are not read
    schema = parquet.schema_arrow
    for name in wanted:
        if names.count(name) > 1:
            raise InputDataError(path, f"not a flow record file: column {name} appears twice")
        arrow_type = schema.field(name).type
        if not _type_fits(name, arrow_type):
            raise InputDataError(
                first_row, f"field {name} is not {_want(name)} (column of type {arrow_type})"
            )
    checker = _RowChecker(table, text_values=False)
    row = 0
    batches = parquet.iter_batches(batch_size=PARQUET_BATCH_ROWS, columns=wanted)
    while True:
        try:
            batch = next(batches, None)
            if batch is None:
                break
            columns = [_py_values(batch.column(i)) for i in range(len(wanted))]
        except _ARROW_ERRORS as exc:
            raise InputDataError(
                f"{path}: row {row + 1}", f"damaged Parquet data ({_arrow_problem(exc)})"
            ) from None
        for values in zip(*columns, strict=True):
            row += 1
            try:
                checker.add(dict(zip(wanted, values, strict=True)))
            except _FieldError as exc:
                raise InputDataError(f"{path}: row {row}", str(exc)) from None
    if row != num_rows:
        raise InputDataError(
            path, f"damaged Parquet file: {row} rows where the footer says {num_rows}"
        )


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
        if path == "-":
            _read_jsonl(sys.stdin.buffer, path, table)
        else:
            with open(path, "rb") as stream:
                readers[ext](stream, path, table)
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
