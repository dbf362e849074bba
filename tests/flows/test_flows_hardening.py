"""Damaged, foreign and extreme record files: one line and exit 2, exact numbers, no tracebacks.

Also what a failed write keeps (a real full file system: a 64 kB tmpfs), and the
fuzz targets of tests/fuzz/targets_flows.py run on mutated seeds and random bytes.
"""

from __future__ import annotations

import csv
import functools
import json
import os
import re
import subprocess
import sys
import tracemalloc
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "fuzz"))

from harness import FuzzTarget, check_one
from mutations import mutated
from targets_flows import TARGETS, sample_records

from diffserv.cli.main import main
from diffserv.errors import HostSystemError, InputDataError
from diffserv.flows import writers
from diffserv.flows.export import table_batches
from diffserv.flows.reader import MAX_LINE_BYTES, RecordTable, read_records
from diffserv.flows.store_arrow import batch_to_table
from diffserv.flows.writers import open_record_writer
from diffserv.records import (
    TIME_MAX_NS,
    TIME_MIN_NS,
    FlowRecords,
    format_address,
    iso_time,
    iso_times,
    parse_iso_time,
)
from diffserv.report.duckdb_engine import DuckDBEngine
from diffserv.report.filters import build_selection
from diffserv.report.groups import default_groups
from diffserv.report.names import PORT_PROTOCOLS
from diffserv.report.queries import Report, ReportRequest, run_report
from diffserv.report.sources import Sources

INT64_MAX = 2**63 - 1
TIME_RANGE = r"\(1677-09-21T00:12:43\.145224192Z\.\.2262-04-11T23:47:16\.854775807Z\)"

RECORD: dict[str, Any] = {
    "saddr": "10.0.0.1",
    "daddr": "192.0.2.1",
    "sport": 40000,
    "dport": 443,
    "protocol": 6,
    "npackets": 3,
    "nbytes": 4500,
    "action": "acct",
    "dsfield": 184,
    "dscp": 46,
    "ecn": 0,
    "first_seen": "2026-01-01T00:00:00.000000000Z",
    "last_seen": "2026-01-01T00:00:01.000000000Z",
    "projid": None,
    "uid": None,
}


def jsonl_record(**raw: str) -> str:
    """One JSON Lines record; ``raw`` replaces fields by literal JSON text."""
    parts = {k: json.dumps(v) for k, v in RECORD.items()}
    parts.update(raw)
    return "{" + ",".join(f"{json.dumps(k)}:{v}" for k, v in parts.items()) + "}\n"


def csv_text(*rows: str) -> bytes:
    header = ",".join(RECORD)
    good = ",".join("" if v is None else str(v) for v in RECORD.values())
    return "\n".join([header, good, *rows, ""]).encode()


def flows(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    status = main(["flows", *argv])
    out, err = capsys.readouterr()
    return status, out, err


def flows_json(capsys: pytest.CaptureFixture[str], *argv: str) -> dict[str, Any]:
    """The reports `diffserv flows --json` prints, by name."""
    status, out, err = flows(capsys, *argv, "--json")
    assert status == 0, err
    found: dict[str, Any] = json.loads(out)["reports"]
    return found


def engine_reports(table: RecordTable, top: int, by: str) -> dict[str, Report]:
    """`diffserv flows`' reports of a record table, through the report engine itself."""
    stored = [batch_to_table(batch) for batch in table_batches(table)]
    sources = Sources(tables=[pa.concat_tables(stored)] if stored else [])
    engine = DuckDBEngine(lambda: sources)
    groups = default_groups()
    selection = build_selection([], groups)
    try:
        return {
            name: run_report(engine, ReportRequest(name, selection, groups, top=top, by=by))
            for name in ("top-dscp", "apps", "conversations", "flows")
        }
    finally:
        engine.close()


def assert_one_line_error(
    capsys: pytest.CaptureFixture[str], path: Path, where: str, pattern: str
) -> None:
    """What a user sees for a bad file: one line naming file and place, exit status 2."""
    for extra in ([], ["--json"]):
        status, out, err = flows(capsys, str(path), *extra)
        assert status == 2, err
        assert out == ""
        assert err.count("\n") == 1, err
        prefix = f"error: {path}: {where}"
        assert err.startswith(prefix), err
        assert re.search(pattern, err[len(prefix) :]), err


# --- finding 1: damaged and foreign input is one line, exit 2 ---------------------------------

JSONL_BAD = [
    ("huge-number", {"nbytes": "9" * 5000}, r"field nbytes is out of range .*a 5000-digit number"),
    ("huge-negative", {"sport": "-" + "1" * 4400}, r"field sport is out of range"),
    ("deep-array", {"sport": "[" * 100_000 + "]" * 100_000}, r"JSON nested too deeply"),
    ("deep-object", {"action": '{"a":' * 50_000 + "1" + "}" * 50_000}, r"JSON nested too deeply"),
    ("year-9999", {"first_seen": '"9999-01-01T00:00:00Z"'}, "field first_seen is out of range"),
    ("after-2262", {"last_seen": '"2262-04-11T23:47:16.854775808Z"'}, TIME_RANGE),
    ("before-1677", {"first_seen": '"1677-09-21T00:12:43.145224191Z"'}, TIME_RANGE),
    ("int-time-beyond-int64", {"last_seen": str(2**63)}, r"field last_seen is out of range"),
    ("uint64-time", {"first_seen": str(2**64 - 1)}, r"field first_seen is out of range"),
    ("no-such-day", {"first_seen": '"2026-02-30T00:00:00Z"'}, r"not an ISO-8601 UTC time"),
    ("wide-digits", {"first_seen": '"２０２６-01-01T00:00:00Z"'}, r"not an ISO-8601 UTC time"),
    ("nan", {"nbytes": "NaN"}, r"not JSON \(NaN is not a JSON value\)"),
    ("infinite", {"nbytes": "1e400"}, r"field nbytes is not an integer: inf"),
    ("string-number", {"sport": '"80"'}, r"field sport is not an integer: '80'"),
    ("bool", {"protocol": "true"}, r"field protocol is not an integer: True"),
    ("surrogate", {"action": '"\\ud800"'}, r"field action is not valid text"),
    ("zone-index", {"saddr": '"fe80::1%eth0"'}, r"field saddr is not an address"),
    ("dscp-disagrees", {"dscp": "1"}, r"field dscp is 1, but dsfield 184 says 46"),
    ("long-value", {"saddr": json.dumps("x" * 10_000)}, r"not an address: 'xxxxx+'\.\.\.$"),
]


@pytest.mark.parametrize(("case", "raw", "pattern"), JSONL_BAD, ids=[c[0] for c in JSONL_BAD])
def test_jsonl_damage_is_one_line_naming_the_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], case: str, raw: dict[str, str], pattern: str
) -> None:
    path = tmp_path / "flows.jsonl"
    path.write_text(jsonl_record() + jsonl_record(**raw))
    assert_one_line_error(capsys, path, "line 2: ", pattern)


def test_jsonl_line_17_and_not_a_record(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "flows.jsonl"
    path.write_text(jsonl_record() * 16 + "[" * 200_000 + "\n")
    assert_one_line_error(capsys, path, "line 17: ", "nested too deeply")


def test_huge_line_is_refused_with_bounded_memory(tmp_path: Path) -> None:
    path = tmp_path / "flows.jsonl"
    with open(path, "wb") as f:
        f.write(jsonl_record().encode())
        f.write(b'{"saddr":"' + b"a" * (8 * MAX_LINE_BYTES) + b'"}\n')
    tracemalloc.start()
    try:
        with pytest.raises(InputDataError, match=r"flows\.jsonl: line 2: line longer than"):
            read_records(str(path))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 3 * MAX_LINE_BYTES


PARQUET_BASE: dict[str, Any] = {
    "saddr": ["10.0.0.1", "10.0.0.2"],
    "daddr": ["192.0.2.1", "2001:db8::1"],
    "sport": pa.array([1, 2], pa.uint16()),
    "dport": pa.array([443, 53], pa.uint16()),
    "protocol": pa.array([6, 17], pa.uint8()),
    "npackets": pa.array([1, 2], pa.uint64()),
    "nbytes": pa.array([40, 80], pa.uint64()),
    "action": ["a", "b"],
    "dsfield": pa.array([0, 184], pa.uint8()),
    "first_seen": pa.array([0, 1], pa.timestamp("ns", tz="UTC")),
    "last_seen": pa.array([5, 6], pa.timestamp("ns", tz="UTC")),
}

PARQUET_BAD = [
    ("uint64-bytes", {"nbytes": pa.array([1, 2**64 - 1], pa.uint64())}, 2, "field nbytes is out"),
    ("uint64-time", {"first_seen": pa.array([0, 2**63], pa.uint64())}, 2, "first_seen is out of"),
    (
        "seconds-past-2262",
        {"last_seen": pa.array([5, 10**12], pa.timestamp("s", tz="UTC"))},
        2,
        "field last_seen is out of range " + TIME_RANGE,
    ),
    ("string-port", {"sport": ["1", "2"]}, 1, r"field sport is not an integer \(column of type st"),
    ("null-address", {"saddr": ["10.0.0.1", None]}, 2, "field saddr is not an address: null"),
    ("nested-list", {"dport": pa.array([[1], [2, 3]])}, 1, r"dport is not an integer \(column of"),
    ("double", {"nbytes": [1.5, 2.0]}, 1, r"nbytes is not an integer \(column of type double\)"),
    ("bool", {"protocol": [True, False]}, 1, r"field protocol is not an integer"),
    ("binary", {"daddr": pa.array([b"\x00", b"\xff"])}, 1, r"field daddr is not an address"),
    ("all-null", {"dsfield": pa.nulls(2)}, 1, r"field dsfield is missing"),
    ("dict-bad", {"saddr": pa.array(["10.0.0.1", "x"]).dictionary_encode()}, 2, "not an address"),
    ("dict-ints", {"sport": pa.array([1, 70000]).dictionary_encode()}, 2, "sport is out of range"),
]


def write_parquet(path: Path, **columns: Any) -> None:
    pq.write_table(pa.table(dict(PARQUET_BASE, **columns)), path)


@pytest.mark.parametrize(
    ("case", "cols", "row", "pattern"), PARQUET_BAD, ids=[c[0] for c in PARQUET_BAD]
)
def test_parquet_foreign_types_are_one_line_naming_the_row(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    case: str,
    cols: dict[str, Any],
    *,
    row: int,
    pattern: str,
) -> None:
    path = tmp_path / "flows.parquet"
    write_parquet(path, **cols)
    assert_one_line_error(capsys, path, f"row {row}: ", pattern)


def test_parquet_other_encodings_of_the_right_values_read(tmp_path: Path) -> None:
    path = tmp_path / "flows.parquet"
    write_parquet(
        path,
        action=pa.array(["a", "b"]).dictionary_encode(),
        saddr=pa.array(["10.0.0.1", "10.0.0.2"], pa.large_string()),
        sport=pa.array([1, 2], pa.int64()),
        first_seen=pa.array([0, 1], pa.int64()),
        last_seen=pa.array([0, 1], pa.timestamp("us")),
    )
    table = read_records(str(path))
    assert table.action == ["a", "b"] and table.sport == [1, 2]
    assert table.first_ns == [0, 1] and table.last_ns == [0, 1000]


def test_parquet_damaged_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = tmp_path / "good.parquet"
    write_parquet(good)
    data = good.read_bytes()
    twice = tmp_path / "twice.parquet"
    pq.write_table(
        pa.Table.from_arrays(
            [*pa.table(PARQUET_BASE).columns, pa.array(["x", "y"])],
            names=[*PARQUET_BASE, "saddr"],
        ),
        twice,
    )
    assert_one_line_error(capsys, twice, "", "column saddr appears twice")
    for name, content in [
        ("cut", data[: len(data) // 2]),
        ("footer-claims-2GiB", data[:-8] + (2**31 - 1).to_bytes(4, "little") + b"PAR1"),
        ("empty", b""),
    ]:
        path = tmp_path / f"{name}.parquet"
        path.write_bytes(content)
        assert_one_line_error(capsys, path, "", r"^not a valid Parquet file \(")


CSV_BAD = [
    ("huge-number", csv_text("10.0.0.1,192.0.2.1,1,2,6,1," + "9" * 5000 + ",a,0,0,0,,,,"), 3),
    ("extra-field", csv_text(csv_text().decode().splitlines()[1] + ",x"), 3),
    ("missing-fields", csv_text("10.0.0.1,192.0.2.1"), 3),
    ("garbage", csv_text() + b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\n", 3),
    ("nul", csv_text().replace(b"10.0.0.1,", b"10.0.0.1\x00,", 1), 2),
    ("bad-utf8", csv_text() + b"10.0.0.1,\xc3\x28\n", 3),
    ("arabic-digits", csv_text().replace(b",40000,", ",٤٠٠٠٠,".encode()), 2),
    ("unterminated-quote", csv_text('"10.0.0.1,192.0.2.1'), 3),
]
CSV_MESSAGES = {
    "huge-number": r"field nbytes is out of range \(0\.\.9223372036854775807\): '9{45}'\.\.\.$",
    "extra-field": "16 fields where the header has 15",
    "missing-fields": "2 fields where the header has 15",
    "garbage": "not UTF-8 text",
    "nul": r"field saddr is not an address: '10\.0\.0\.1\\x00'",
    "bad-utf8": "not UTF-8 text",
    "arabic-digits": "field sport is not an integer",
    "unterminated-quote": r"bad CSV",
}


@pytest.mark.parametrize(("case", "content", "line"), CSV_BAD, ids=[c[0] for c in CSV_BAD])
def test_csv_damage_is_one_line_naming_the_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], case: str, content: bytes, line: int
) -> None:
    path = tmp_path / "flows.csv"
    path.write_bytes(content)
    assert_one_line_error(capsys, path, f"line {line}: ", CSV_MESSAGES[case])


def test_byte_order_marks_are_skipped(tmp_path: Path) -> None:
    for name, content in [("b.csv", csv_text()), ("b.jsonl", jsonl_record().encode())]:
        path = tmp_path / name
        path.write_bytes(b"\xef\xbb\xbf" + content)
        table = read_records(str(path))
        assert (table.n, table.saddr, table.nbytes) == (1, ["10.0.0.1"], [4500])


def test_addresses_are_read_in_their_canonical_form(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "a.jsonl"
    path.write_text(
        jsonl_record(saddr='"::ffff:10.0.0.1"', daddr='"2001:DB8:0:0::1"')
        + jsonl_record(daddr='"2001:db8::1"')
    )
    table = read_records(str(path))
    assert table.saddr == ["10.0.0.1", "10.0.0.1"]
    assert table.daddr == ["2001:db8::1", "2001:db8::1"]
    found = flows_json(capsys, str(path))
    assert [(r["addr_a"], r["addr_b"], r["flows"]) for r in found["conversations"]["rows"]] == [
        ("10.0.0.1", "2001:db8::1", 2)
    ]


def test_control_characters_in_names_are_escaped_on_the_terminal(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    evil = "evil\x1b[2J\n"
    path = tmp_path / "c\x1bname.jsonl"
    path.write_text(jsonl_record(action=json.dumps(evil)) + jsonl_record(nbytes="1"))
    status, out, _ = flows(capsys, str(path))
    assert status == 0
    assert "\x1b" not in out and out.startswith(str(path).replace("\x1b", "\\x1b") + "\n")
    status, out, err = flows(capsys, str(path), "--action", "nope")
    assert (status, out) == (2, "") and err.count("\n") == 1
    assert "\x1b" not in err and "(actions in the file: acct, evil\\x1b[2J\\x0a)" in err
    status, out, _ = flows(capsys, str(path), "--action", evil)
    assert status == 0 and "\x1b" not in out
    assert "1 records, 3 packets, 4.5 kB" in out and "filters: action=evil\\x1b[2J\n" in out
    found = flows_json(capsys, str(path), "--action", evil)
    assert found["flows"]["meta"]["filters"] == ["action=evil\x1b[2J"]  # JSON: the text, stripped
    assert found["flows"]["meta"]["totals"] == {"flows": 1, "packets": 3, "bytes": 4500}


# --- finding 2: exact numbers, never wrapped ---------------------------------------------------


def test_totals_beyond_int64_are_exact(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "big.jsonl"
    big = str(INT64_MAX)
    path.write_text(
        jsonl_record(npackets=big, nbytes=big)
        + jsonl_record(npackets=big, nbytes=big, dsfield="1", dscp="0", ecn="1")
    )
    found = flows_json(capsys, str(path))
    total = 2 * INT64_MAX  # sums computed here in Python, compared with DuckDB's HUGEINT sums
    assert found["top-dscp"]["meta"]["totals"] == {"flows": 2, "packets": total, "bytes": total}
    assert found["top-dscp"]["meta"]["span_ns"] == 10**9
    assert [(r["dscp"], r["bytes"], r["share"]) for r in found["top-dscp"]["rows"]] == [
        (0, INT64_MAX, 50.0),
        (46, INT64_MAX, 50.0),
    ]
    assert [r["avg_bps"] for r in found["top-dscp"]["rows"]] == [INT64_MAX * 8] * 2
    assert [(r["share_of_dscp"], r["share_of_total"]) for r in found["apps"]["rows"]] == [
        (100.0, 50.0)
    ] * 2
    assert [r["bytes"] for r in found["conversations"]["rows"]] == [INT64_MAX] * 2
    assert [r["bytes"] for r in found["flows"]["rows"]] == [INT64_MAX, INT64_MAX]
    status, out, _ = flows(capsys, str(path))
    assert status == 0
    assert f"{total:,} packets" in out
    assert not re.search(r"\s-[0-9]", out)  # no wrapped, negative counts or shares


def test_year_9999_is_refused_not_printed_as_1816(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "y.jsonl"
    path.write_text(jsonl_record(last_seen='"9999-12-31T23:59:59.999999999Z"'))
    status, out, err = flows(capsys, str(path), "--json")
    assert (status, out) == (2, "")
    assert "1816" not in err and "out of range" in err


def test_the_edges_of_the_time_range_read_exactly(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "edges.jsonl"
    path.write_text(
        jsonl_record(
            first_seen=json.dumps(iso_time(TIME_MIN_NS)),
            last_seen=json.dumps(iso_time(TIME_MAX_NS)),
        )
    )
    table = read_records(str(path))
    assert (table.first_ns, table.last_ns) == ([TIME_MIN_NS], [TIME_MAX_NS])
    # the reports, 1 ns short of the end (see the next test)
    path.write_text(
        jsonl_record(
            first_seen=json.dumps(iso_time(TIME_MIN_NS)),
            last_seen=json.dumps(iso_time(TIME_MAX_NS - 1)),
        )
    )
    meta = flows_json(capsys, str(path))["top-dscp"]["meta"]
    assert meta["first_seen"] == "1677-09-21T00:12:43.145224192Z"
    assert meta["last_seen"] == "2262-04-11T23:47:16.854775806Z"
    assert meta["span_ns"] == 2**64 - 2


@pytest.mark.xfail(
    strict=True,
    reason="DuckDB reads the timestamps ±(2**63 - 1) ns as ±infinity: epoch_ns gives NULL "
    "and the flows report fails (report engine, duckdb_engine.view_select)",
)
def test_the_last_ns_of_the_time_range_reports(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "edge.jsonl"
    path.write_text(jsonl_record(last_seen=json.dumps(iso_time(TIME_MAX_NS))))
    found = flows_json(capsys, str(path))
    assert found["flows"]["rows"][0]["last_seen"] == "2262-04-11T23:47:16.854775807Z"


@settings(max_examples=300, deadline=None)
@given(st.integers(TIME_MIN_NS, TIME_MAX_NS))
def test_time_text_is_exact_over_the_whole_range(ns: int) -> None:
    text = iso_time(ns)
    assert parse_iso_time(text) == ns
    assert iso_times(np.array([ns], np.int64)) == [text]


counts = st.one_of(st.integers(0, INT64_MAX), st.sampled_from([0, 1, INT64_MAX, INT64_MAX - 1]))
times = st.one_of(
    st.integers(TIME_MIN_NS, TIME_MAX_NS), st.sampled_from([TIME_MIN_NS, TIME_MAX_NS])
)
table_rows = st.lists(
    st.tuples(
        st.sampled_from(["10.0.0.1", "10.0.0.2", "2001:db8::1"]),
        st.sampled_from(["192.0.2.1", "2001:db8::2"]),
        st.sampled_from([0, 53, 443, 65535]),
        st.sampled_from([0, 53, 443, 65535]),
        st.sampled_from([1, 6, 17, 255]),
        counts,
        counts,
        st.integers(0, 255),
        st.sampled_from(["a", "b"]),
        times,
        times,
    ),
    max_size=25,
)


def finite(ns: int) -> int:
    """``ns``, or its neighbour where DuckDB would read ±(2**63 - 1) ns as ±infinity."""
    return ns - 1 if ns == INT64_MAX else ns + 1 if ns == -INT64_MAX else ns


report_rows = table_rows.map(lambda rows: [(*r[:9], finite(r[9]), finite(r[10])) for r in rows])


def service_port(protocol: int, sport: int, dport: int) -> int | None:
    """The apps report's port, in plain Python: the lower non-zero port of TCP/UDP/SCTP."""
    if protocol not in PORT_PROTOCOLS:
        return None
    return dport if sport == 0 else sport if dport == 0 else min(sport, dport)


@settings(max_examples=60, deadline=None)
@given(report_rows, st.sampled_from(["bytes", "packets"]))
def test_every_aggregate_is_an_exact_python_int_sum(rows: list[tuple[Any, ...]], by: str) -> None:
    table = RecordTable(path="t.jsonl", group="extended")
    for s, d, sp, dp, pr, pk, nb, ds, act, t1, t2 in rows:
        for name, value in zip(
            ("saddr", "daddr", "sport", "dport", "protocol", "npackets", "nbytes", "dsfield"),
            (s, d, sp, dp, pr, pk, nb, ds),
            strict=True,
        ):
            getattr(table, name).append(value)
        table.action.append(act)
        table.first_ns.append(min(t1, t2))
        table.last_ns.append(max(t1, t2))
    found = engine_reports(table, top=10_000, by=by)  # finite times only: see above

    def sums(key: Any) -> dict[Any, list[int]]:
        out: dict[Any, list[int]] = defaultdict(lambda: [0, 0, 0])
        for r in rows:
            acc = out[key(r)]
            acc[0] += r[5]
            acc[1] += r[6]
            acc[2] += 1
        return dict(out)

    def counted(report: str, *key: str) -> dict[Any, list[int]]:
        return {
            tuple(r[k] for k in key): [r["packets"], r["bytes"], r["flows"]]
            for r in found[report].rows
        }

    total_p, total_b = sum(r[5] for r in rows), sum(r[6] for r in rows)
    meta = found["top-dscp"].meta
    assert meta["totals"] == {"flows": len(rows), "packets": total_p, "bytes": total_b}
    assert counted("top-dscp", "dscp") == sums(lambda r: (r[7] >> 2,))
    assert counted("apps", "dscp", "protocol", "port") == sums(
        lambda r: (r[7] >> 2, r[4], service_port(r[4], r[2], r[3]))
    )
    assert counted("conversations", "dscp", "addr_a", "addr_b") == sums(
        lambda r: (r[7] >> 2, *sorted(r[:2]))
    )
    assert sorted((r["packets"], r["bytes"]) for r in found["flows"].rows) == sorted(
        (r[5], r[6]) for r in rows
    )
    for report in found.values():
        assert all(type(r["bytes"]) is int and type(r["packets"]) is int for r in report.rows)
        json.dumps(report.to_json(), allow_nan=False)
    if rows:
        first = min(min(r[9], r[10]) for r in rows)
        last = max(max(r[9], r[10]) for r in rows)
        span = last - first
        assert meta["span_ns"] == span
        assert meta["first_seen"] == iso_time(first) and meta["last_seen"] == iso_time(last)
        for r in found["top-dscp"].rows:
            assert r["avg_bps"] == (r["bytes"] * 8 * 10**9 // span if span else None)
            whole = total_b if by == "bytes" else total_p
            assert r["share"] == (round(100 * r[by] / whole, 2) if whole else 0.0)


# --- our writer's files always read back exactly -----------------------------------------------

ACTION_NAMES = st.text(
    st.sampled_from("abcdefghijklmnopqrstuvwxyzABCZ0123456789_.-,\"' é"), min_size=1, max_size=23
)


@st.composite
def flow_records(draw: st.DrawFn) -> FlowRecords:
    n = draw(st.integers(0, 6))

    def ints(low: int, high: int, dtype: Any) -> Any:
        edge = st.sampled_from([low, high])
        return np.array(
            draw(st.lists(st.one_of(st.integers(low, high), edge), min_size=n, max_size=n)), dtype
        )

    address = st.one_of(
        st.integers(0, 2**128 - 1),
        st.integers(0, 2**32 - 1).map(lambda v: (0xFFFF << 32) | v),
        st.sampled_from([0, 1, 2**128 - 1]),
    )
    s = draw(st.lists(address, min_size=n, max_size=n))
    d = draw(st.lists(address, min_size=n, max_size=n))
    first = draw(st.lists(times, min_size=n, max_size=n))
    last = [
        max(a, b) for a, b in zip(first, draw(st.lists(times, min_size=n, max_size=n)), strict=True)
    ]
    return FlowRecords(
        action=draw(ACTION_NAMES),
        saddr_hi=np.array([v >> 64 for v in s], np.uint64),
        saddr_lo=np.array([v & (2**64 - 1) for v in s], np.uint64),
        daddr_hi=np.array([v >> 64 for v in d], np.uint64),
        daddr_lo=np.array([v & (2**64 - 1) for v in d], np.uint64),
        sport=ints(0, 65535, np.uint16),
        dport=ints(0, 65535, np.uint16),
        protocol=ints(0, 255, np.uint8),
        dsfield=ints(0, 255, np.uint8),
        projid=ints(-(2**31), 2**31 - 1, np.int32),
        uid=ints(-(2**31), 2**31 - 1, np.int32),
        npackets=ints(0, INT64_MAX, np.int64),
        nbytes=ints(0, INT64_MAX, np.int64),
        first_ns=np.array(first, np.int64),
        last_ns=np.array(last, np.int64),
    )


def raw_rows(path: Path) -> list[dict[str, Any]]:
    """The projid/uid cells of a file (which RecordTable does not keep), None if unknown."""
    if path.suffix == ".parquet":
        return pq.read_table(path, columns=["projid", "uid"]).to_pylist()
    if path.suffix == ".jsonl":
        return [json.loads(line) for line in path.read_text().splitlines()]
    with open(path, newline="") as f:
        return [
            {k: (int(v) if v else None) if k in ("projid", "uid") else v for k, v in r.items()}
            for r in csv.DictReader(f)
        ]


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    st.lists(flow_records(), min_size=1, max_size=3),
    st.sampled_from(["basic", "extended"]),
    st.sampled_from(["jsonl", "csv", "parquet"]),
)
def test_what_our_writer_writes_reads_back_exactly(
    tmp_path: Path, batches: list[FlowRecords], group: str, ext: str
) -> None:
    path = tmp_path / f"w.{ext}"
    with open_record_writer(str(path), group) as w:
        for batch in batches:
            w.write(batch)
    table = read_records(str(path))
    assert table.n == w.records_written == sum(b.n for b in batches)
    if table.n or ext != "jsonl":  # an empty JSON Lines file cannot tell its group
        assert table.group == group

    def cat(name: str) -> list[int]:
        return [int(v) for b in batches for v in getattr(b, name).tolist()]

    assert table.saddr == [
        format_address(int(h), int(lo))
        for b in batches
        for h, lo in zip(b.saddr_hi, b.saddr_lo, strict=True)
    ]
    assert table.daddr == [
        format_address(int(h), int(lo))
        for b in batches
        for h, lo in zip(b.daddr_hi, b.daddr_lo, strict=True)
    ]
    for name in ("sport", "dport", "protocol", "npackets", "nbytes"):
        assert getattr(table, name) == cat(name), name
    assert table.action == [b.action for b in batches for _ in range(b.n)]
    if group == "extended":
        assert table.dsfield == cat("dsfield")
        assert (table.first_ns, table.last_ns) == (cat("first_ns"), cat("last_ns"))
        rows = raw_rows(path)
        for name in ("projid", "uid"):
            assert [r[name] for r in rows] == [None if v < 0 else v for v in cat(name)]
    if group == "extended" and table.n:  # what the report engine is given: the same sums
        stored = [batch_to_table(batch) for batch in table_batches(table)]
        for name, column in (("nbytes", "bytes"), ("npackets", "packets")):
            assert sum(v for t in stored for v in t.column(column).to_pylist()) == sum(cat(name))


# --- finding 3: a full disk keeps what can be kept ---------------------------------------------


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Path]:
    """A 64 kB tmpfs (needs root, as in CI)."""
    mount = tmp_path / "small"
    mount.mkdir()
    ci = bool(os.environ.get("CI") or os.environ.get("DIFFSERV_REQUIRE_TOOLS"))
    problem = None
    if os.geteuid() != 0:
        problem = "mounting a tmpfs needs root"
    else:
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mount)],
            check=False,
            capture_output=True,
            text=True,
        )
        if done.returncode:
            problem = f"cannot mount a tmpfs: {done.stderr.strip()}"
    if problem:
        if ci:
            pytest.fail(problem)
        pytest.skip(problem)
    try:
        yield mount
    finally:
        if subprocess.run(["umount", str(mount)], check=False).returncode:
            subprocess.run(["umount", "-l", str(mount)], check=True)  # a file left open


def random_records(rng: np.random.Generator, n: int) -> FlowRecords:
    """Records that compress badly (Parquet would otherwise fit 64 kB for a long while)."""

    def ints(dtype: Any, high: int) -> Any:
        return rng.integers(0, high, n, dtype=np.int64).astype(dtype)

    base = sample_records("rand", n)
    return FlowRecords(
        action="rand",
        saddr_hi=base.saddr_hi,
        saddr_lo=rng.integers(0, 2**63, n, dtype=np.int64).astype(np.uint64),
        daddr_hi=base.daddr_hi,
        daddr_lo=rng.integers(0, 2**63, n, dtype=np.int64).astype(np.uint64),
        sport=ints(np.uint16, 65536),
        dport=ints(np.uint16, 65536),
        protocol=ints(np.uint8, 256),
        dsfield=ints(np.uint8, 256),
        projid=ints(np.int32, 2**31),
        uid=ints(np.int32, 2**31),
        npackets=ints(np.int64, 2**62),
        nbytes=ints(np.int64, 2**62),
        first_ns=ints(np.int64, 2**61),
        last_ns=ints(np.int64, 2**61) + 2**61,
    )


def fill(w: writers.RecordWriter, limit: int = 10_000, rng: Any = None) -> HostSystemError:
    """Write 7-record batches until the file system is full; the error raised."""
    for i in range(limit):
        batch = sample_records(f"acct{i % 3}", 7) if rng is None else random_records(rng, 512)
        try:
            w.write(batch)
        except HostSystemError as exc:
            return exc
    raise AssertionError("the file system never filled")


@pytest.mark.parametrize("ext", ["jsonl", "csv"])
def test_disk_full_text_file_keeps_every_complete_record(small_fs: Path, ext: str) -> None:
    path = small_fs / f"flows.{ext}"
    w = open_record_writer(str(path), "extended")
    exc = fill(w)
    kept = w.records_written
    assert str(exc) == (
        f"cannot write {path}: No space left on device; "
        f"kept the {kept} complete records written before"
    )
    with pytest.raises(HostSystemError, match="No space left on device"):
        w.write(sample_records("late", 1))
    w.close()
    assert w.records_written == kept > 0
    assert path.read_bytes().endswith(b"\n")
    table = read_records(str(path))
    assert table.n == kept
    expected = [
        b for i in range(kept // 7 + 1) for b in sample_records(f"acct{i % 3}", 7).nbytes.tolist()
    ]
    assert table.nbytes == expected[:kept]


def test_disk_full_parquet_is_removed_and_says_so(small_fs: Path) -> None:
    path = small_fs / "flows.parquet"
    w = open_record_writer(str(path), "extended")
    try:
        exc = fill(w, limit=100, rng=np.random.default_rng(7))
    except AssertionError:  # buffered until close: the footer write fails
        with pytest.raises(HostSystemError) as info:
            w.close()
        exc = info.value
    w.close()
    assert (
        str(exc)
        == f"cannot write {path}: No space left on device; removed it, no records were kept"
    )
    assert not path.exists()
    assert w.records_written == 0
    assert os.statvfs(small_fs).f_bfree == os.statvfs(small_fs).f_blocks  # nothing left behind


def test_disk_full_before_the_csv_header(small_fs: Path) -> None:
    filler = small_fs / "filler"
    with open(filler, "wb", buffering=0) as f, pytest.raises(OSError):
        while True:
            f.write(b"\0" * 4096)
    path = small_fs / "flows.csv"
    with pytest.raises(HostSystemError, match=r"flows\.csv: No space left on device; removed it"):
        open_record_writer(str(path), "basic")
    assert not path.exists()


def test_disk_full_during_a_run_keeps_the_records(small_fs: Path, tmp_path: Path) -> None:
    """The JSON Lines records that reached the disk stay readable after a failed write."""
    path = small_fs / "flows.jsonl"
    with pytest.raises(HostSystemError), open_record_writer(str(path), "basic") as w:
        fill(w)
        raise HostSystemError("stop")
    assert read_records(str(path)).n == w.records_written > 0


def test_an_interrupted_write_keeps_whole_records(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "flows.jsonl"
    w = open_record_writer(str(path), "extended")
    w.write(sample_records("a", 3))
    real_write = os.write
    calls = []

    def half_then_ctrl_c(fd: int, data: Any) -> int:
        if fd != w._fd:  # type: ignore[attr-defined]
            return real_write(fd, data)
        calls.append(len(data))
        if len(calls) > 1:
            raise KeyboardInterrupt
        return real_write(fd, bytes(data[: len(data) // 2 + 7]))

    monkeypatch.setattr(writers.os, "write", half_then_ctrl_c)
    with pytest.raises(KeyboardInterrupt):
        w.write(sample_records("b", 5))
    monkeypatch.undo()
    w.close()
    table = read_records(str(path))
    assert table.n == w.records_written
    assert 3 < table.n < 8 and table.action == ["a"] * 3 + ["b"] * (table.n - 3)
    assert path.read_bytes().endswith(b"\n")


# --- finding 4: the fuzz targets ---------------------------------------------------------------


@functools.cache
def seeds_of(name: str) -> tuple[bytes, ...]:
    return tuple(next(t for t in TARGETS if t.name == name).seeds())


TARGET_NAMES = [t.name for t in TARGETS]


def target(name: str) -> FuzzTarget:
    return next(t for t in TARGETS if t.name == name)


def test_targets_are_the_three_formats() -> None:
    assert TARGET_NAMES == ["flows-jsonl", "flows-csv", "flows-parquet"]


@pytest.mark.parametrize("name", TARGET_NAMES)
def test_every_seed_runs_cleanly(name: str) -> None:
    seeds = seeds_of(name)
    assert len(seeds) >= 10
    for seed in seeds:
        check_one(target(name), seed)
    # the seeds written by our writer are read without an error
    for seed in seeds[:5]:
        target(name).run(seed)


@pytest.mark.parametrize("name", TARGET_NAMES)
@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_targets_on_mutated_seeds(name: str, data: st.DataObject) -> None:
    check_one(target(name), data.draw(mutated(seeds_of(name), target(name).max_len)))


@pytest.mark.parametrize("name", TARGET_NAMES)
@settings(max_examples=150, deadline=None)
@given(blob=st.binary(max_size=2048))
def test_targets_on_random_bytes(name: str, blob: bytes) -> None:
    check_one(target(name), blob)


def test_an_empty_record_file_reports_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "empty.jsonl"
    path.write_text("")
    status, out, err = flows(capsys, str(path))
    assert status == 0, err
    assert "0 records, 0 packets, 0 B" in out and out.count("no records match") == 4
    found = flows_json(capsys, str(path))
    assert all(report["rows"] == [] for report in found.values())
