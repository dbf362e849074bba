"""``diffserv import nfdump``: an nfcapd archive into the flow store, read by nfdump itself.

nfcapd's file format is nfdump's business (it changes between versions, compressed
blocks and all), so the importer runs the installed nfdump and reads what it prints.
nfdump 1.7.1's JSON output is the one that streams every field the store wants with
millisecond times (its CSV has whole seconds only); it prints a pretty JSON array, one
field a line, which :class:`NfdumpJsonParser` cuts into whole records and hands to
Arrow's JSON reader a chunk at a time, so memory stays bounded however long the
archive and no Python object is made per record. The decisions (what 0 means, which
fields are unknown) are in docs/flowstore.md.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import subprocess
import threading
from collections.abc import Callable
from typing import IO, Any, Final

import msgspec
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pj
from numpy.typing import NDArray

from diffserv.errors import HostSystemError, InputDataError, UsageError
from diffserv.flows.schema import SOURCE_NFDUMP, UNKNOWN, FlowBatch, ds_fields, make_batch
from diffserv.flows.store_arrow import AddressError, addresses_from_text

CHUNK_BYTES: Final = 4 << 20  # nfdump output read (and parsed) at a time
MAX_RECORD_BYTES: Final = 1 << 20  # a "record" longer than this is not nfdump's JSON
STDERR_LINES_KEPT: Final = 20

_UINT8: Final = (0, 0xFF)
_UINT16: Final = (0, 0xFFFF)
_UINT32: Final = (0, 0xFFFFFFFF)
_UINT64: Final = (0, 2**64 - 1)

# The fields of nfdump 1.7's JSON records the store uses, with the range of each
# integer; every other field is ignored.
INTEGER_FIELDS: Final = {
    "in_packets": _UINT64,
    "in_bytes": _UINT64,
    "proto": _UINT8,
    "src_port": _UINT16,
    "dst_port": _UINT16,
    "icmp_type": _UINT8,
    "icmp_code": _UINT8,
    "src_tos": _UINT8,
    "dst_tos": _UINT8,
    "input_snmp": _UINT32,
    "output_snmp": _UINT32,
    "direction": _UINT8,
    "src_vlan": _UINT16,
    "observationDoaminID": _UINT32,  # sic: nfdump's spelling
}
TEXT_FIELDS: Final = (
    "type",
    "first",
    "last",
    "tcp_flags",
    "src4_addr",
    "dst4_addr",
    "src6_addr",
    "dst6_addr",
    "ip4_router",
    "ip6_router",
)
REQUIRED_FIELDS: Final = ("first", "last", "in_packets", "in_bytes", "proto")
_JSON_SCHEMA: Final = pa.schema(
    [(name, pa.uint64() if hi > 2**63 else pa.int64()) for name, (_, hi) in INTEGER_FIELDS.items()]
    + [(name, pa.string()) for name in TEXT_FIELDS]
)
_PARSE_OPTIONS: Final = pj.ParseOptions(
    explicit_schema=_JSON_SCHEMA, unexpected_field_behavior="ignore"
)
_TIME_TEXT: Final = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,9})?$"
_FLAG_LETTERS: Final = "CEUAPRSF"  # nfdump's flag string, most significant bit first
_ICMP: Final = (1, 58)
_JUNK: Final = frozenset({b"", b"[", b"]", b"No matching flows"})


class ImportResult(msgspec.Struct):
    """What an import brought in."""

    records: int = 0  # flow records added to the store
    events: int = 0  # NSEL/NEL event records skipped (firewall and NAT logs, not flows)


def _fail(where: str, record: int, message: str) -> InputDataError:
    return InputDataError(f"{where}: record {record}", message)


def _tcp_flags(text: str) -> int:
    """nfdump's flag text ("...AP.S." or "0x52") as the flag byte (-2 if it is not one)."""
    if len(text) == 8 and all(c in (".", _FLAG_LETTERS[i]) for i, c in enumerate(text)):
        return sum(0x80 >> i for i, c in enumerate(text) if c != ".")
    if text.startswith("0x") and 2 < len(text) <= 4:
        try:
            return int(text[2:], 16)
        except ValueError:
            return -2
    return -2


class NfdumpJsonParser:
    """nfdump 1.7 ``-o json`` output, fed in arbitrary pieces, as FlowBatches (sans I/O).

    ``where`` names the input in messages ("archive/ (nfdump -o json)"); records are
    numbered from 1 in the order nfdump prints them, events included.
    """

    def __init__(self, where: str) -> None:
        self.where = where
        self.result = ImportResult()
        self._carry = b""
        self._seen = 0  # records parsed so far (flows and events)

    def feed(self, data: bytes) -> list[FlowBatch]:
        """The batches of every record that ``data`` completes."""
        buffer = self._carry + data
        end = buffer.rfind(b"\n}")
        if end < 0:
            if len(buffer) > MAX_RECORD_BYTES:
                raise _fail(self.where, self._seen + 1, "not nfdump JSON (no record end)")
            self._carry = buffer
            return []
        self._carry = buffer[end + 2 :]
        return self._records(buffer[: end + 2])

    def finish(self) -> list[FlowBatch]:
        """End of output: what is left must be the array's end (or nfdump's "no flows")."""
        rest, self._carry = self._carry, b""
        for line in rest.replace(b",", b"\n").splitlines():
            if line.strip() not in _JUNK:
                text = line.strip()[:60].decode("utf-8", "replace")
                raise _fail(self.where, self._seen + 1, f"not nfdump JSON: {text!r}")
        return []

    def _records(self, text: bytes) -> list[FlowBatch]:
        """Whole pretty-printed records as JSON Lines, then as Arrow columns."""
        lines = (
            text.replace(b"\n\t", b" ")
            .replace(b"\n}", b" }")
            .replace(b"},\n{", b"}\n{")
            .lstrip(b"[,\n\t\r ")
        )
        if not lines.startswith(b"{"):
            junk = lines.split(b"\n", 1)[0][:60].decode("utf-8", "replace")
            raise _fail(self.where, self._seen + 1, f"not nfdump JSON: {junk!r}")
        count = lines.count(b"\n") + 1
        try:
            table = pj.read_json(
                io.BytesIO(lines),
                read_options=pj.ReadOptions(block_size=max(len(lines) + 1, 1 << 16)),
                parse_options=_PARSE_OPTIONS,
            )
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
            raise self._locate(lines, exc) from None
        if table.num_rows != count:
            raise _fail(self.where, self._seen + 1, "not nfdump JSON (records run together)")
        first = self._seen + 1
        self._seen += table.num_rows
        return _batches(table, self.where, first, self.result)

    def _locate(self, lines: bytes, exc: Exception) -> InputDataError:
        """The record Arrow could not read, found the slow way (only after a failure)."""
        for offset, line in enumerate(lines.split(b"\n")):
            record = self._seen + offset + 1
            try:
                row = json.loads(line)
            except (ValueError, RecursionError) as error:
                message = getattr(error, "msg", str(error))
                return _fail(self.where, record, f"not JSON ({message})")
            if not isinstance(row, dict):
                return _fail(self.where, record, "a record must be a JSON object")
            for name, (low, high) in INTEGER_FIELDS.items():
                value = row.get(name)
                if value is None:
                    continue
                if type(value) is not int:
                    return _fail(self.where, record, f"field {name} is not an integer: {value!r}")
                if not low <= value <= high:
                    return _fail(
                        self.where, record, f"field {name} is out of range ({low}..{high}): {value}"
                    )
            for name in TEXT_FIELDS:
                value = row.get(name)
                if value is not None and not isinstance(value, str):
                    return _fail(self.where, record, f"field {name} is not text: {value!r}")
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return _fail(self.where, self._seen + 1, f"not nfdump JSON ({text})")


class _RowError(Exception):
    """A bad value at ``row`` of a chunk's table (turned into a record number by the caller)."""

    def __init__(self, row: int, message: str) -> None:
        super().__init__(message)
        self.row = row
        self.message = message


def _numpy(values: Any, fill: int) -> NDArray[Any]:
    """An integer column as numpy, ``fill`` for null (uint64 counters stay uint64)."""
    if values.null_count:
        values = pc.fill_null(values, fill)
    return np.asarray(values.to_numpy(zero_copy_only=False))


def _mask(values: Any) -> NDArray[np.bool_]:
    return np.asarray(values.to_numpy(zero_copy_only=False), dtype=bool)


def _check(bad: NDArray[np.bool_], message: Callable[[int], str]) -> None:
    """Raise _RowError for the first True of ``bad`` (``message`` of its row)."""
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise _RowError(row, message(row))


def _times(values: Any, name: str) -> NDArray[np.int64]:
    """ISO-8601 text (UTC, as nfdump prints it with TZ=UTC) as int64 ns."""

    def shown(row: int) -> str:
        return f"field {name} is not a time: {values[row].as_py()!r}"

    _check(~_mask(pc.fill_null(pc.match_substring_regex(values, _TIME_TEXT), False)), shown)
    try:
        ns = values.cast(pa.timestamp("ns")).cast(pa.int64())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        for row in range(len(values)):  # only after a failure: which one
            try:
                values.slice(row, 1).cast(pa.timestamp("ns"))
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                text = values[row].as_py()
                raise _RowError(
                    row, f"field {name} is out of range (1677..2262): {text!r}"
                ) from None
        raise
    return np.asarray(ns.to_numpy(zero_copy_only=False), np.int64)


def _flag_bytes(values: Any) -> NDArray[np.int64]:
    """nfdump's flag strings as flag bytes, one conversion per distinct string."""
    encoded = pc.dictionary_encode(values)
    table = np.array(
        [_tcp_flags(str(t)) for t in encoded.dictionary.to_pylist()] + [UNKNOWN], np.int64
    )
    flags: NDArray[np.int64] = table[_numpy(encoded.indices, len(encoded.dictionary))]

    def shown(row: int) -> str:
        return f"field tcp_flags is not TCP flags: {values[row].as_py()!r}"

    _check(flags == -2, shown)
    return flags


def _integers(table: Any) -> dict[str, NDArray[Any]]:
    """Every integer field, range-checked; -1 where absent (0 for the uint64 counters)."""
    ints: dict[str, NDArray[Any]] = {}
    for name, (low, high) in INTEGER_FIELDS.items():
        values = table.column(name).combine_chunks()
        array = _numpy(values, -1 if high < 2**63 else 0)
        if high < 2**63:
            known = _mask(values.is_valid())
            bad = known & ((array < low) | (array > high))
            _check(bad, lambda row: f"field {name} is out of range ({low}..{high}): {array[row]}")  # noqa: B023
        ints[name] = array
    return ints


def _addresses(table: Any) -> tuple[NDArray[np.bool_], dict[str, tuple[Any, Any]]]:
    """Whether each record is IPv4, and (hi, lo) of its source and destination."""

    def present(name: str) -> NDArray[np.bool_]:
        return _mask(table.column(name).is_valid())

    v4 = present("src4_addr") & present("dst4_addr")
    v6 = present("src6_addr") & present("dst6_addr")
    _check(~(v4 | v6), lambda _row: "no source and destination address")
    addresses = {}
    for end in ("src", "dst"):
        four = table.column(f"{end}4_addr").combine_chunks()
        six = table.column(f"{end}6_addr").combine_chunks()
        try:
            addresses[end] = addresses_from_text(pc.if_else(pa.array(v4), four, six))
        except AddressError as exc:
            raise _RowError(exc.row, f"field {end}_addr: {exc}") from None
    return v4, addresses


def _columns(table: Any) -> dict[str, NDArray[Any]]:
    """The flow records of a chunk (no events) as batch columns (raises _RowError)."""
    for name in REQUIRED_FIELDS:
        _check(
            _mask(table.column(name).is_null()),
            lambda _row: f"field {name} is missing",  # noqa: B023
        )
    ints = _integers(table)
    first_ns = _times(table.column("first").combine_chunks(), "first")
    last_ns = _times(table.column("last").combine_chunks(), "last")
    v4, addresses = _addresses(table)
    protocol = ints["proto"]
    icmp = np.isin(protocol, _ICMP)
    # ICMP has no ports: type and code go where NetFlow v5 puts them, the destination port
    icmp_type_code = (np.maximum(ints["icmp_type"], 0) << 8) | np.maximum(ints["icmp_code"], 0)
    ds_in = ds_fields(ints["src_tos"])
    # nfdump prints dst_tos 0 also when the exporter sent no post-ToS (docs/flowstore.md)
    ds_out = ds_fields(np.where(ints["dst_tos"] > 0, ints["dst_tos"], UNKNOWN))
    return {
        "first_ns": first_ns,
        "last_ns": last_ns,
        "ip_version": np.where(v4, 4, 6).astype(np.uint8),
        "saddr_hi": addresses["src"][0],
        "saddr_lo": addresses["src"][1],
        "daddr_hi": addresses["dst"][0],
        "daddr_lo": addresses["dst"][1],
        "sport": np.where(icmp, 0, np.maximum(ints["src_port"], 0)),
        "dport": np.where(icmp, icmp_type_code, np.maximum(ints["dst_port"], 0)),
        "protocol": protocol,
        "tcp_flags": _flag_bytes(table.column("tcp_flags").combine_chunks()),
        "in_if": ints["input_snmp"],
        "out_if": ints["output_snmp"],
        "direction": np.where(np.isin(ints["direction"], (0, 1)), ints["direction"], UNKNOWN),
        "ds_in": ds_in["ds"],
        "dscp_in": ds_in["dscp"],
        "ecn_in": ds_in["ecn"],
        "prec_in": ds_in["prec"],
        "ds_out": ds_out["ds"],
        "dscp_out": ds_out["dscp"],
        "ecn_out": ds_out["ecn"],
        "prec_out": ds_out["prec"],
        "vlan": np.where(ints["src_vlan"] > 0, ints["src_vlan"], UNKNOWN),
        "packets": ints["in_packets"],
        "bytes": ints["in_bytes"],
        "domain": np.maximum(ints["observationDoaminID"], 0),  # taken out again below
    }


def _batches(table: Any, where: str, first: int, result: ImportResult) -> list[FlowBatch]:
    """Records (a chunk's Arrow table) as FlowBatches by exporter; events are skipped."""
    kinds = table.column("type").combine_chunks()
    number = np.arange(first, first + table.num_rows, dtype=np.int64)
    if kinds.null_count:
        row = int(np.flatnonzero(_mask(kinds.is_null()))[0])
        raise _fail(where, int(number[row]), "field type is missing")
    flows = _mask(pc.equal(kinds, "FLOW"))
    if not flows.all():
        result.events += int(len(flows) - flows.sum())
        table = table.filter(pa.array(flows))
        number = number[flows]
    n = table.num_rows
    if n == 0:
        return []
    try:
        given = _columns(table)
    except _RowError as exc:
        raise _fail(where, int(number[exc.row]), exc.message) from None
    domain = given.pop("domain")
    exporter = pc.coalesce(
        table.column("ip4_router").combine_chunks(),
        table.column("ip6_router").combine_chunks(),
        pa.scalar(""),
    )
    encoded = pc.dictionary_encode(exporter)
    exporters = encoded.dictionary.to_pylist()
    keys = np.stack([_numpy(encoded.indices, 0).astype(np.int64), domain], axis=1)
    unique, first_row, inverse = np.unique(keys, axis=0, return_index=True, return_inverse=True)
    inverse = inverse.reshape(-1)
    batches = []
    for group in np.argsort(first_row, kind="stable").tolist():
        rows = None if len(unique) == 1 else np.flatnonzero(inverse == group)
        part = given if rows is None else {k: v[rows] for k, v in given.items()}
        count = n if rows is None else len(rows)
        e, d = unique[group].tolist()
        batches.append(make_batch(SOURCE_NFDUMP, str(exporters[e]), int(d), count, part))
    result.records += n
    return batches


# ---------------------------------------------------------------- running nfdump


def find_nfdump(program: str | None = None) -> str:
    """The nfdump program to run (UsageError with a hint to install it when missing)."""
    path = shutil.which(program or "nfdump")
    if path is None:
        name = program or "nfdump"
        raise UsageError(
            f"{name}: not found; diffserv import nfdump runs nfdump to read nfcapd files "
            "(install it: apt install nfdump)"
        )
    return path


def nfdump_command(program: str, source: str, nfdump_filter: str | None = None) -> list[str]:
    """nfdump's argument list for ``source`` (a file: -r, a directory: -R)."""
    command = [program, "-R" if os.path.isdir(source) else "-r", source, "-o", "json"]
    if nfdump_filter:
        command.append(nfdump_filter)
    return command


class _Stderr:
    """Collects the first lines nfdump writes to stderr, in a thread (no pipe deadlock)."""

    def __init__(self, stream: IO[bytes]) -> None:
        self.lines: list[str] = []
        self._stream = stream
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        for raw in self._stream:
            line = raw.decode("utf-8", "replace").strip()
            if line and len(self.lines) < STDERR_LINES_KEPT:
                self.lines.append(line)

    def join(self) -> None:
        self._thread.join(timeout=10)


def import_nfdump(
    source: str,
    add: Callable[[FlowBatch], None],
    *,
    program: str | None = None,
    nfdump_filter: str | None = None,
    chunk_bytes: int = CHUNK_BYTES,
) -> ImportResult:
    """Run nfdump over ``source`` (an nfcapd file or directory) and ``add`` each batch.

    Fails with nfdump's own first line when it complains (it exits 0 after skipping a
    damaged file, so any line on its stderr is taken as a failure), and with a line
    naming the record when its output does not parse.
    """
    executable = find_nfdump(program)
    if not os.path.exists(source):
        raise HostSystemError(f"cannot read {source}: No such file or directory")
    where = f"{source} (nfdump -o json)"
    parser = NfdumpJsonParser(where)
    env = {**os.environ, "TZ": "UTC", "LC_ALL": "C"}  # nfdump prints local times
    try:
        process = subprocess.Popen(
            nfdump_command(executable, source, nfdump_filter),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
        )
    except OSError as exc:
        raise HostSystemError(f"cannot run {executable}: {exc.strerror or exc}") from None
    assert process.stdout is not None and process.stderr is not None
    stderr = _Stderr(process.stderr)

    def complaint() -> InputDataError:
        return InputDataError(source, f"nfdump: {stderr.lines[0]}")

    try:
        stdout = process.stdout
        while True:
            data = stdout.read1(chunk_bytes)  # type: ignore[attr-defined]
            if not data:
                break
            for batch in parser.feed(data):
                add(batch)
            if stderr.lines:
                raise complaint()
        parser.finish()
        status = process.wait()
        stderr.join()
        if stderr.lines:
            raise complaint()
        if status != 0:
            raise InputDataError(source, f"nfdump exited with status {status}")
    finally:
        if process.poll() is None:
            process.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=10)
        process.stdout.close()
        process.stderr.close()
    return parser.result
